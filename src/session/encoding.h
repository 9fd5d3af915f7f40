/*
 * How each object of a push goes on the wire. In this order of preference:
 *	rsync		against the receiver's own file when its path drifted, or
 *			when the store lacks the basis content (signatures asked
 *			for in one batch: encoding_signature_paths)
 *	zippatch	against the basis the plan chose, when both are zips and
 *			the receiver decodes DZP2 streams
 *	zstd-patch	against that basis, from the store's copy
 *	zstd / raw	whole; raw when zstd cannot shrink it
 * and a delta larger than the content goes raw (delta_choose). Encodings are
 * written once into the store's deltas/ (dcache.c: made once however many
 * hosts need them at once) and streamed from there, so a second host at the
 * same release costs a file read, and an encoded stream is stable enough to
 * resume at an offset. An rsync delta is made against a signature the site
 * sent, a basis only the site vouches for: it is made for the session into
 * an unnamed file and never cached (made again, the same bytes, to resume),
 * so no site can grow the store. The sender (sender.c) speaks the protocol; this file
 * only decides.
 */
#ifndef DS_ENCODING_H
#define DS_ENCODING_H

#include <stddef.h>
#include <stdint.h>

#include "base/hash.h"

struct config;
struct plan;
struct plan_object;
struct proto_signature;
struct proto_state;
struct store;

/* What the policy knows of one push session; read-only while objects are encoded. */
struct encoding_ctx {
	struct store		*store;		/* the repository's store */
	uint64_t		 caps;		/* the receiver's PROTO_CAP_* */
	int			 level;		/* zstd level of deltas (encoding_delta_level) */
	const struct proto_state *st;		/* the receiver's STATE: its drifted paths */
	/*
	 * Answers to SIGNATURE_REQUEST, by path (encoding_signature_add):
	 * their blobs are in the spool, not in memory (sig NULL, sig_len
	 * kept), at sig_offsets[i].
	 */
	struct proto_signature	*sigs;
	size_t			 nsigs, asigs;
	uint64_t		*sig_offsets;
	int			 sig_spool;	/* unnamed file in the store's tmp/; -1: none yet */
	uint64_t		 spooled;	/* bytes in it */
};

/*
 * Signature bytes one session keeps (spooled on disk, never in memory):
 * past this the receiver's further signatures are dropped and those
 * objects go without rsync. An honest one is about 36 bytes per block of
 * sqrt(size): tens of MB for a whole first sync of a large tree.
 */
#define ENCODING_SIGNATURES_MAX	((uint64_t)1 << 30)

/* How one object goes on the wire. */
struct encoded {
	const struct plan_object *po;
	uint8_t		 enc;		/* PROTO_ENC_* */
	uint8_t		 basis[HASH_LEN]; /* delta encodings: the basis content */
	char		*cache;		/* the cached encoding to stream; NULL: stream the object */
	int		 fd;		/* or an unnamed one (rsync, an unwritable cache); -1: none */
	uint64_t	 len;		/* bytes of the encoding */
	int		 hit;		/* 1: the cache had it */
};

/*
 * Sets up CTX empty (no signatures, no spool) for STORE; free what it holds
 * with encoding_ctx_release.
 */
void	encoding_ctx_init(struct encoding_ctx *ctx, struct store *store);
void	encoding_ctx_release(struct encoding_ctx *ctx);

/*
 * Keeps SIG, the receiver's answer for one path, in the order asked: its
 * blob goes to the session's spool (an unnamed file in the store's tmp/)
 * and is freed, so however many signatures a receiver sends, one at a time
 * is in memory. Past ENCODING_SIGNATURES_MAX spooled bytes, or when no
 * spool can be made, it is kept as absent (present 0: no rsync for it),
 * said once. CTX takes what SIG holds; SIG is left empty.
 */
void	encoding_signature_add(struct encoding_ctx *ctx, struct proto_signature *sig);

/* The zstd level of whole-file streams: LEVEL, else the config's, else 3. */
int	encoding_zstd_level(int level, const struct config *config);
/* The zstd level of deltas: LEVEL, else the config's, within DELTA_LEVEL_MIN..MAX. */
int	encoding_delta_level(int level, const struct config *config);

/*
 * The encoding of an object streamed from the store (not cached), from byte
 * OFFSET of its SIZE: PROTO_ENC_RAW for content zstd cannot shrink (zip-based
 * .war/.omod mostly) or a receiver without PROTO_CAP_ZSTD, else
 * PROTO_ENC_ZSTD. Reads a probe of fd; does not log.
 */
uint8_t	encoding_for_stream(uint64_t caps, int fd, uint64_t offset, uint64_t size);

/*
 * Decides e->po's encoding and basis, making the cached encoding (e->cache,
 * e->len, e->hit) when it is not there yet, or an unnamed one (e->fd); an
 * object best sent as it is gets PROTO_ENC_RAW and neither. Thread-safe for
 * different e. Errors of the cache are logged there and end in a plain
 * encoding. encoding_release frees what e holds (e->fd closed).
 */
void	encoding_decide(const struct encoding_ctx *ctx, struct encoded *e);
void	encoding_release(struct encoded *e);

/*
 * The paths of the receiver's files whose signatures the policy needs, in
 * one batch: drifted paths the release replaces, and bases whose content
 * the store lacks (pruned, or a site this store never synced). Sorted,
 * unique, at most PROTO_LIST_MAX; *paths (caller frees the array, not the
 * strings, which point into PLAN) is NULL when there are none.
 */
size_t	encoding_signature_paths(const struct encoding_ctx *ctx, const struct plan *plan,
	    char ***paths);

/* Forgets the cached deltas of PO's object, which the receiver could not use. */
void	encoding_drop_cached(const struct encoding_ctx *ctx, const struct plan_object *po);

#endif
