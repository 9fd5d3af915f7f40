/*
 * Encodings of one file's content, with or without a basis the receiver
 * already holds. Pure and fd-based: no protocol, no store, no paths.
 *
 *	raw		the bytes themselves
 *	zstd		one zstd frame of the whole file
 *	zstd-patch	one zstd frame with the basis as prefix dictionary and a
 *			window covering basis and target (like zstd --patch-from)
 *	rsync		a librsync delta against a signature of the basis,
 *			in one zstd frame
 *	zippatch	for zips: a zstd patch between their uncompressed views
 *			and the zlib parameters that re-deflate the target's
 *			entries exactly (zipdelta.h); its decoder holds the
 *			encoded stream in memory
 *
 * Every zstd frame carries its content checksum, and decoders refuse more
 * output than the caller's declared size, so a corrupt delta or a basis that
 * is not the one the encoder used ends in DS_ERR_CORRUPT (or, rarely, in a
 * file whose SHA-256 the caller finds wrong) -- never in silent overlong
 * output. Files of any size are streamed; only the basis (and, for zstd
 * encodings, the target) is mmapped.
 */
#ifndef DS_DELTA_H
#define DS_DELTA_H

#include <stddef.h>
#include <stdint.h>

#include "base/hash.h"

/* Values travel on the wire (OBJECT.encoding): never renumber. */
enum delta_encoding {
	DELTA_RAW = 0,
	DELTA_ZSTD = 1,
	DELTA_ZSTD_PATCH = 2,
	DELTA_RSYNC = 3,
	DELTA_ZIP_PATCH = 4,
};
#define DELTA_ENCODING_COUNT	5

#define DELTA_LEVEL_DEFAULT	9	/* a sane middle: nearly level 19's size, a fifth of its CPU */
#define DELTA_LEVEL_PRECOMPUTE	19	/* release --precompute */
#define DELTA_LEVEL_MIN		1
#define DELTA_LEVEL_MAX		19

/*
 * The ceiling on what a decoder holds for one stream, whatever the stream
 * asks: zstd's window (history buffer), and the inflated bytes of each
 * uncompressed view of a zip patch (ZIPDELTA_VIEW_MAX; a view also holds
 * the zip's own headers and the entries it keeps compressed, at most the
 * zip's size). Below it every decoder is bounded by the declared sizes: a
 * zstd window must not exceed what basis and target need (the encoders
 * never ask more), a zip view what its zip's size allows (zipdelta.h), a
 * zip patch's rebuilt bytes and a librsync delta's output the declared
 * size. Patches of files larger than this reach back at most this far.
 */
#define DELTA_WINDOWLOG_MAX	30
#define DELTA_MEMORY_MAX	((uint64_t)1 << DELTA_WINDOWLOG_MAX)	/* 1 GiB */

/* An encoding larger than raw by more than this is not worth sending. */
#define DELTA_RAW_SLACK		64

/* Short name for file names and messages ("raw", "zst", "zpatch", "rsync", "zippatch"); NULL if unknown. */
const char	*delta_encoding_name(int enc);
/* Returns 1 if enc (e.g. a byte from the wire) names an encoding, else 0. */
int		 delta_encoding_valid(int enc);
/* Returns 1 if enc needs a basis (zstd-patch, rsync, zippatch), else 0. */
int		 delta_encoding_needs_basis(int enc);

/*
 * Returns enc if ENCODED_LEN bytes of it are worth sending for a target of
 * RAW_LEN bytes, else DELTA_RAW (already-compressed data must not grow).
 */
enum delta_encoding delta_choose(enum delta_encoding enc, uint64_t encoded_len, uint64_t raw_len);

/*
 * Encodes target_fd (a regular file, read from offset 0) by ENC into out_fd
 * (written at its current offset) and stores the encoded length in *out_len
 * (may be NULL). basis_fd (a regular file) is needed by zstd-patch and rsync
 * (for rsync the signature is computed here: use delta_rsync_encode when only
 * the receiver's signature is at hand); -1 means an empty basis. LEVEL is a
 * zstd level, DELTA_LEVEL_MIN..MAX (0: default). Returns 0 or DS_ERR_*;
 * zippatch returns DS_ERR_UNSUPPORTED (nothing written) when basis and
 * target are not both zips it handles or it does not pay: use zstd-patch.
 */
int	delta_encode(enum delta_encoding enc, int basis_fd, int target_fd, int level,
	    int out_fd, uint64_t *out_len);

/*
 * Decodes in_fd (read to its end) against basis_fd (-1: none/empty) into
 * out_fd. Produces at most MAX_OUT bytes, else DS_ERR_CORRUPT. Writes the
 * decoded length to *out_len and its SHA-256 to out_hash (both may be NULL).
 * out_fd should be empty past its current offset (runs of zeros become holes).
 */
int	delta_decode(enum delta_encoding enc, int basis_fd, int in_fd, int out_fd,
	    uint64_t max_out, uint64_t *out_len, uint8_t out_hash[HASH_LEN]);

/*
 * Writes a librsync signature (RabinKarp rollsum + BLAKE2, block about the
 * square root of the size, the smallest strong sum safe for the size) of
 * basis_fd (-1: empty) to out_fd; *sig_len (may be NULL) gets its length.
 */
int	delta_signature(int basis_fd, int out_fd, uint64_t *sig_len);

/*
 * Encodes target_fd as an rsync delta against the signature read from sig_fd
 * (untrusted: a malformed one is DS_ERR_INVALID) into out_fd, zstd level LEVEL.
 */
int	delta_rsync_encode(int sig_fd, int target_fd, int level, int out_fd,
	    uint64_t *out_len);

/*
 * Streaming decoder for data arriving in chunks (a receiver fed by frames):
 * new, any number of feeds, finish, free. basis_fd must stay open and
 * unchanged until free. Each call returns 0 or DS_ERR_*; after an error only
 * free is allowed. finish fails (DS_ERR_CORRUPT) if the stream is truncated.
 */
struct delta_decoder;

int	delta_decoder_new(enum delta_encoding enc, int basis_fd, int out_fd,
	    uint64_t max_out, struct delta_decoder **out);
int	delta_decoder_feed(struct delta_decoder *d, const void *data, size_t len);
/* Ends the stream; *out_len and out_hash (may be NULL) get the decoded length and SHA-256. */
int	delta_decoder_finish(struct delta_decoder *d, uint64_t *out_len,
	    uint8_t out_hash[HASH_LEN]);
/* Frees the decoder (NULL is fine); does not close the fds. */
void	delta_decoder_free(struct delta_decoder *d);

/*
 * A buffer as one zstd frame (with its checksum) that PREFIX (may be empty)
 * serves as a prefix dictionary for, as a zstd patch serves a file: a
 * release's manifest against the one the site holds. *out (caller frees).
 * The window covers prefix and content, at most 2^DELTA_BUF_WINDOWLOG_MAX.
 */
#define DELTA_BUF_WINDOWLOG_MAX	26
int	delta_buf_encode(const void *prefix, size_t plen, const void *src, size_t slen,
	    int level, uint8_t **out, size_t *out_len);
/*
 * Decodes such a frame (untrusted) against the same PREFIX: at most MAX bytes
 * out, a window no larger than prefix and MAX need, the whole input one
 * frame. 0 and *out (caller frees), or DS_ERR_CORRUPT (logged, naming WHAT).
 */
int	delta_buf_decode(const void *prefix, size_t plen, const void *src, size_t slen,
	    size_t max, const char *what, uint8_t **out, size_t *out_len);

#endif
