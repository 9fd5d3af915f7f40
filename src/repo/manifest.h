/*
 * A manifest is the sorted list of a tree's entries. Its canonical form is
 *
 *	distsync-manifest 1\n
 *	TYPE MODE SIZE SHA256 PATH\n	(one per entry, sorted by PATH bytes)
 *
 * TYPE is f (file), d (directory) or l (symlink); MODE four octal digits;
 * SIZE decimal; SHA256 64 hex digits (of the content; of the link target for a
 * symlink; all zero for a directory); PATH escaped: '\\' as "\\\\", bytes below
 * 0x21 and 0x7f as "\\xHH". The digest of a manifest is the SHA-256 of those bytes.
 */
#ifndef DS_MANIFEST_H
#define DS_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/hash.h"

#define MANIFEST_FILE		'f'
#define MANIFEST_DIR		'd'
#define MANIFEST_SYMLINK	'l'

struct manifest_entry {
	char		*path;		/* clean relative path (path_check) */
	char		 type;		/* MANIFEST_FILE, _DIR or _SYMLINK */
	unsigned	 mode;		/* permission bits, <= 07777 */
	uint64_t	 size;		/* bytes; link target length; 0 for a dir */
	uint8_t		 hash[HASH_LEN];
	char		*link;		/* symlink target when known (scan), else NULL */
};

struct manifest {
	struct manifest_entry *entries;	/* sorted by path (strcmp) */
	size_t		 count;
	size_t		 alloc;
};

/*
 * The permission bits a manifest records and a release carries: rwx for
 * owner, group and others. Setuid, setgid and sticky are stripped wherever a
 * mode enters a tree of ours (a scanned source tree, an unpacked archive):
 * a release must not be a way to plant a setuid file on every site.
 */
#define MANIFEST_MODE_BITS	0777
/* Returns MODE with everything outside MANIFEST_MODE_BITS cleared. */
unsigned	manifest_mode_clean(unsigned mode);

/* Returns an empty manifest; free with manifest_free (NULL is fine). */
struct manifest	*manifest_new(void);
void		 manifest_free(struct manifest *m);

/* Appends a copy of e (path and link are duplicated). Call manifest_sort after bulk adds. */
void	manifest_add(struct manifest *m, const struct manifest_entry *e);
/* Sorts by path; returns DS_ERR_INVALID (logging the path) on a duplicate. */
int	manifest_sort(struct manifest *m);

/* Binary search; returns the entry or NULL. */
const struct manifest_entry *manifest_find(const struct manifest *m, const char *path);

/* Encodes canonical bytes into a newly allocated buffer (caller frees). */
void	manifest_encode(const struct manifest *m, char **out, size_t *len);
/* SHA-256 of the canonical bytes. */
void	manifest_digest(const struct manifest *m, uint8_t out[HASH_LEN]);

/*
 * Strictly decodes canonical bytes: rejects a bad header, unsorted or
 * duplicate paths, unclean paths (path_check), bad hex, overlong fields,
 * NUL, a missing final newline, or a file under a path that is not a
 * directory. Errors are logged as "NAME:LINE: reason". *out is NULL on error.
 */
int	manifest_decode(const char *data, size_t len, const char *name, struct manifest **out);

/*
 * The rule for an entry of a tree of ours, the same wherever one comes in
 * (a scan, an unpacked archive, a peer's COMMIT, a bundle or a mirror): a
 * clean path (path_check: no newline either), a file, directory or symlink,
 * no permission bit outside MANIFEST_MODE_BITS, and for a symlink whose
 * target LINK (LEN bytes) is known, one that stays inside the tree
 * (path_link_check). LINK NULL checks the rest. Returns 0, or
 * DS_ERR_INVALID with *why (if not NULL) pointing to a static reason.
 */
int	manifest_entry_check(const struct manifest_entry *e, const char *link, size_t len,
	    const char **why);

/* Reads and decodes a manifest file. */
int	manifest_load(const char *file, struct manifest **out);
/* Writes canonical bytes to FILE atomically (temp file, fsync, rename, fsync dir). */
int	manifest_save(const struct manifest *m, const char *file);

/* Total bytes of regular files. */
uint64_t manifest_total_size(const struct manifest *m);

/* A difference between two manifests, for one path. */
enum manifest_change {
	MANIFEST_ADDED,		/* only in the new manifest */
	MANIFEST_DELETED,	/* only in the old manifest */
	MANIFEST_CHANGED,	/* type or content differs */
	MANIFEST_MODE,		/* only the mode differs */
};

/*
 * Calls fn for each path that differs between old (may be NULL: empty) and
 * new, in path order. fn returns 0 to go on; anything else stops the walk and
 * is returned.
 */
int	manifest_diff(const struct manifest *old, const struct manifest *new,
	    int (*fn)(enum manifest_change change, const struct manifest_entry *old_entry,
		const struct manifest_entry *new_entry, void *arg), void *arg);

/* Statistics of one scan. */
struct manifest_scan_stats {
	uint64_t	files;
	uint64_t	bytes;		/* bytes of all regular files */
	uint64_t	hashed_files;	/* files read because the cache did not vouch for them */
	uint64_t	hashed_bytes;
};

/*
 * Scans the tree at ROOT into a manifest: files, directories and symlinks
 * (a symlink pointing outside ROOT is an error; devices, fifos and sockets are
 * rejected by name). The root itself is not an entry. Entries named in
 * EXCLUDE (top-level names, NULL-terminated, may be NULL) are skipped.
 *
 * CACHE_FILE (may be NULL) is a stat cache: a file whose size, mtime, ctime
 * and inode match its cached record is not reread. The cache is rewritten
 * atomically after a successful scan. Hashing runs on `threads` threads
 * (0: the number of online CPUs).
 */
int	manifest_scan(const char *root, char *const *exclude, const char *cache_file,
	    unsigned threads, struct manifest **out, struct manifest_scan_stats *stats);

/*
 * Writes CACHE_FILE for the tree at ROOT that is known to hold M (just
 * applied): each file is stat'ed, not read, and recorded with M's digest.
 * A file changed between the apply and this call would be vouched for with
 * the old digest, so call it only right after writing the tree. Files that
 * cannot be stat'ed are left out (they will be rehashed).
 */
int	manifest_statcache_write(const char *root, const struct manifest *m, const char *cache_file);

/* Like manifest_scan, reading the cache from CACHE_IN and writing it to CACHE_OUT (either may be NULL). */
int	manifest_scan_cached(const char *root, char *const *exclude, const char *cache_in,
	    const char *cache_out, unsigned threads, struct manifest **out,
	    struct manifest_scan_stats *stats);

#endif
