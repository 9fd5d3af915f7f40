/*
 * A published tree: what `distsync publish` writes and an HTTP mirror
 * serves, with no code of ours on the server. Every file but the channel
 * pointers is immutable and named by its content or version, so a cache
 * can never serve a mix of two publications:
 *
 *	keys/N.keys				keys documents, version 1..N (trust.h)
 *	releases/SHA256.release			signed release documents, by digest
 *	manifests/SHA256.manifest		release manifests, by digest
 *	objects/ab/SHA256.zst			every object, one zstd frame
 *	deltas/BASIS-TARGET.ENC			patches (zpatch, zippatch) by pair
 *	indexes/TO.index			every object of release TO, whole
 *	indexes/FROM-TO.index			what a site at FROM downloads to reach TO
 *	channels/CHANNEL.pointer		the signed, expiring pointer: written
 *						last, atomically; the only file replaced
 *
 * FROM and TO are manifest digests. An index (below) lists, per object the
 * site may need, the object's size and what to download: the whole object
 * or a patch against a basis; a site knows the bytes before it downloads.
 * Indexes are not signed: a wrong one can only cost bytes, since every
 * object is checked against the signed manifest's SHA-256 before use, and
 * every download is bounded by the sizes declared here (publish_fetch_max).
 *
 *	distsync-index 1
 *	from SHA256|-
 *	to SHA256
 *	object HASH SIZE ENC BASIS|- BYTES	one per object, HASH ascending
 */
#ifndef DS_PUBLISH_H
#define DS_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

#include "base/hash.h"

#define PUBLISH_INDEX_MAX	(64u * 1024 * 1024)	/* bytes of one index */

struct publish_entry {
	uint8_t		 hash[HASH_LEN];
	uint64_t	 size;		/* the object's own size */
	int		 encoding;	/* DELTA_ZSTD (whole), DELTA_ZSTD_PATCH or DELTA_ZIP_PATCH */
	int		 has_basis;
	uint8_t		 basis[HASH_LEN];
	uint64_t	 bytes;		/* what is downloaded */
};

struct publish_index {
	int		 has_from;
	uint8_t		 from[HASH_LEN];
	uint8_t		 to[HASH_LEN];
	struct publish_entry *entries;	/* HASH ascending, unique */
	size_t		 count;
};

/* The index's canonical bytes (entries must be in HASH order; caller frees). */
void	publish_index_encode(const struct publish_index *ix, char **out, size_t *len);
/*
 * Decodes an index strictly (one encoding; encodings and sizes checked;
 * entries sorted and unique). DS_ERR_INVALID, logged naming NAME and the
 * line. Caller frees with publish_index_release.
 */
int	publish_index_decode(const void *data, size_t len, const char *name,
	    struct publish_index *out);
void	publish_index_release(struct publish_index *ix);
/* The entry for HASH, or NULL. */
const struct publish_entry *publish_index_find(const struct publish_index *ix,
	    const uint8_t hash[HASH_LEN]);

/*
 * The most bytes a download of entry E may take: a mirror that sends more is
 * lying. Whole objects: zstd's bound on SIZE; patches: BYTES as declared, at
 * most that bound too (a patch larger than the whole object is never used).
 */
uint64_t publish_fetch_max(const struct publish_entry *e);

/* Relative paths in a published tree (caller frees). */
char	*publish_path_keys(uint64_t version);
char	*publish_path_release(const uint8_t digest[HASH_LEN]);
char	*publish_path_manifest(const uint8_t digest[HASH_LEN]);
char	*publish_path_object(const uint8_t hash[HASH_LEN]);
char	*publish_path_entry(const struct publish_entry *e);
/* FROM NULL: the index of every object of TO, whole. */
char	*publish_path_index(const uint8_t *from, const uint8_t to[HASH_LEN]);
char	*publish_path_pointer(const char *channel);

#endif
