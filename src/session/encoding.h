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
 * resume at an offset. The sender (sender.c) speaks the protocol; this file
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
	struct proto_signature	*sigs;		/* answers to SIGNATURE_REQUEST, by path;
						   owned by the sender */
	size_t			 nsigs;
};

/* How one object goes on the wire. */
struct encoded {
	const struct plan_object *po;
	uint8_t		 enc;		/* PROTO_ENC_* */
	uint8_t		 basis[HASH_LEN]; /* delta encodings: the basis content */
	char		*cache;		/* the cached encoding to stream; NULL: stream the object */
	uint64_t	 len;		/* bytes of the cached encoding */
	int		 hit;		/* 1: the cache had it */
};

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
 * e->len, e->hit) when it is not there yet; an object best sent as it is
 * gets PROTO_ENC_RAW and no cache. Thread-safe for different e. Errors of
 * the cache are logged there and end in a plain encoding.
 */
void	encoding_decide(const struct encoding_ctx *ctx, struct encoded *e);

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
