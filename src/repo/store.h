/*
 * The repository's store: objects by SHA-256, release manifests, and a cache
 * of encodings (deltas) reused for every host and for resume.
 *
 *	DIR/objects/ab/cdef...		read-only copies, never hardlinks
 *	DIR/releases/ID.manifest	canonical manifest of release ID
 *	DIR/releases/ID.release		its signed release document, when signed (signing.h)
 *	DIR/releases/SEQUENCE		the last sequence a signed release was given
 *	DIR/keys/N.keys			the chain of signed keys documents, 1..N
 *	DIR/releases/ORDER		release ids, oldest first, one per line
 *	DIR/releases/LATEST		id of the newest release
 *	DIR/deltas/BASIS-TARGET.ENC	cached encodings
 *	DIR/tmp/			scratch on the same filesystem
 */
#ifndef DS_STORE_H
#define DS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "base/hash.h"

struct manifest;
struct store;

/*
 * Opens (or with create, makes) the store at DIR. Its cache directories
 * (deltas/, tmp/) are made again when they are gone. Caller frees with
 * store_free.
 */
int	store_open(const char *dir, int create, struct store **out);
void	store_free(struct store *store);
const char *store_dir(const struct store *store);

/* Returns 1 if the object is present, 0 if not. */
int	store_has(const struct store *store, const uint8_t hash[HASH_LEN]);
/* Returns the object's path (caller frees); the file may not exist. */
char	*store_object_path(const struct store *store, const uint8_t hash[HASH_LEN]);
/* Opens an object read-only; returns an fd or -1 with errno set. */
int	store_object_open(const struct store *store, const uint8_t hash[HASH_LEN]);

/*
 * Adds the content of the file at PATH, which must hash to HASH (checked while
 * copying: a file that changed since it was hashed is an error naming PATH).
 * Copies with a reflink when the filesystem can, never a hardlink; the stored
 * object is mode 0444. Does nothing if the object is present.
 */
int	store_add_file(struct store *store, const char *path, const uint8_t hash[HASH_LEN]);
/* Flushes the store's filesystem (one syncfs after many adds, not one fsync per object). */
int	store_sync(struct store *store);
/* Adds a memory block (e.g. a symlink target) as an object. */
int	store_add_bytes(struct store *store, const void *data, size_t len, uint8_t hash_out[HASH_LEN]);

/* Writes releases/ID.manifest, appends ID to ORDER and sets LATEST. Refuses an existing ID. */
int	store_release_save(struct store *store, const char *id, const struct manifest *m);
/* Loads a release; DS_ERR_NOTFOUND (logged, naming the id) if absent. */
int	store_release_load(const struct store *store, const char *id, struct manifest **out);
/* The newest release id (caller frees), or DS_ERR_NOTFOUND when there is none. */
int	store_release_latest(const struct store *store, char **id);
/* Release ids oldest first; *ids is NULL-terminated, free with xfree_strv. */
int	store_release_list(const struct store *store, char ***ids, size_t *count);
/*
 * Finds the kept release whose manifest digest is DIGEST, trying HINT (a
 * release id, may be NULL or "") first, then the newest first: *id (caller
 * frees) and *m (may be NULL; caller frees with manifest_free), both NULL
 * when none matches (not an error). Returns 0, or an error of reading the
 * release list.
 */
int	store_release_find(const struct store *store, const char *hint,
	    const uint8_t digest[HASH_LEN], char **id, struct manifest **m);
/* Returns 0 if ID may name a release: [A-Za-z0-9._+-], 1..128 bytes, not "." or "..". */
int	store_release_id_check(const char *id);

/*
 * Keeps the newest KEEP releases, deletes older manifests, every object no
 * kept release references, and the cached encodings of such objects (or
 * against such a basis); reports counts through the out pointers (may be
 * NULL). What sessions left in the cache goes with dcache_tidy.
 */
int	store_prune(struct store *store, unsigned keep, size_t *releases_removed,
	    size_t *objects_removed, size_t *deltas_removed);

/* Path of a cached encoding of TARGET against BASIS (may be NULL) by ENCODING; caller frees. */
char	*store_delta_path(const struct store *store, const uint8_t *basis,
	    const uint8_t target[HASH_LEN], const char *encoding);

/* A new temp file path under DIR/tmp (caller frees); the file is not created. */
char	*store_tmp_path(const struct store *store, const char *hint);

#endif
