/*
 * Zip-aware deltas (the approach of Google's archive-patcher): a jar, war or
 * any other zip stores most entries DEFLATE-compressed, so one changed class
 * changes its compressed bytes completely and a delta of the compressed
 * files cannot be small. Both files are turned into an uncompressed view --
 * the zip with each DEFLATE entry's data replaced by its inflated bytes --
 * and the target's view is sent as a zstd patch against the basis's view.
 * The receiver re-deflates each entry with the zlib parameters the sender
 * found to reproduce its original bytes exactly (the recipe); an entry that
 * no parameters reproduce stays compressed in the view.
 *
 * Zips are recognised by content only (end of central directory, central
 * directory and local headers), never by name. Zip64, multi-disk or
 * overlapping zips are refused (DS_ERR_UNSUPPORTED): the caller sends a plain
 * zstd patch instead. Pure and in memory: no fds, no protocol.
 *
 * An entry whose compressed bytes the basis holds exactly (same CRC and
 * sizes, then compared) is copied: it is left out of both views, so it costs
 * neither inflating, patching nor re-deflating -- most of a release's jar.
 *
 * Stream: "DZP2", one byte of common zlib parameters, the copy table (varint
 * run count; per run varint target DEFLATE entries skipped since the last
 * run, zigzag varint basis start relative to the last run's end, even:
 * runs go strictly forward in the basis; varint length), then one zstd frame (the basis view as prefix dictionary, long
 * window) holding the recipe (varint entry count; per DEFLATE entry varint
 * bytes-before, varint length, parameter byte; a copied entry has length 0
 * and parameter 0) and the target's view. The dictionary is the basis view
 * followed by the basis itself (for opaque entries), both without the
 * copied entries. An entry that is itself a zip (a jar in a war) is, in
 * both views, the view of that zip (one level deep; parameter flag 0x80),
 * so a changed class inside a changed jar costs what it would at the top.
 * "DZP1" streams (no copy table, nothing copied or nested) decode too.
 */
#ifndef DS_ZIPDELTA_H
#define DS_ZIPDELTA_H

#include <stddef.h>
#include <stdint.h>

/*
 * Caps on untrusted input. A view of a zip of N bytes inflates at most
 * min(ZIPDELTA_VIEW_MAX, N * ZIPDELTA_VIEW_RATIO + ZIPDELTA_VIEW_SLACK)
 * bytes (entries past that stay compressed in it); encoder and decoder take
 * N from the same size (the basis's, the target's declared one), so a
 * stream cannot make the receiver hold a view its target's size does not
 * allow. ZIPDELTA_VIEW_MAX is delta.h's DELTA_MEMORY_MAX.
 */
#define ZIPDELTA_ENTRIES_MAX	(1u << 20)
#define ZIPDELTA_VIEW_MAX	((uint64_t)1 << 30)	/* inflated view of one zip */
#define ZIPDELTA_VIEW_RATIO	16			/* class files and text: 2 to 10 */
#define ZIPDELTA_VIEW_SLACK	((uint64_t)1 << 20)

/* Refuse a zip patch unless this share (percent) of DEFLATE bytes re-deflates exactly. */
#define ZIPDELTA_MIN_REPRODUCIBLE	50

struct zipdelta_stats {
	uint64_t	 entries;		/* entries in the target's central directory */
	uint64_t	 deflated;		/* of them DEFLATE */
	uint64_t	 reproduced;		/* of them re-deflated exactly (or copied) */
	uint64_t	 copied;		/* of them copied from the basis as they are */
	uint64_t	 nested;		/* of them zips whose own view replaced them */
	uint64_t	 deflated_bytes;	/* compressed bytes of DEFLATE entries */
	uint64_t	 reproduced_bytes;	/* of them reproduced */
	uint64_t	 view_bytes;		/* the target's view */
	int		 level, mem_level;	/* the most common parameters (0: none) */
};

/* Output of the decoder: returns 0 or DS_ERR_* (which stops decoding). */
typedef int (*zipdelta_emit_fn)(void *arg, const void *data, size_t len);

/* Returns 1 if data parses as a zip this module handles, else 0. */
int	zipdelta_is_zip(const uint8_t *data, size_t len);

/*
 * Encodes target against basis at zstd LEVEL (1..19) into *out (malloc'd,
 * the caller frees) of *out_len bytes; stats may be NULL. Returns 0,
 * DS_ERR_UNSUPPORTED when either is not a zip this module handles or fewer
 * than ZIPDELTA_MIN_REPRODUCIBLE percent of the target's DEFLATE bytes
 * re-deflate exactly (logged at debug level), or another DS_ERR_*.
 */
int	zipdelta_encode(const uint8_t *basis, size_t basis_len, const uint8_t *target,
	    size_t target_len, int level, uint8_t **out, size_t *out_len,
	    struct zipdelta_stats *stats);

/*
 * Decodes the stream in[0..in_len) (untrusted) against basis, passing the
 * target's bytes in order to emit; the target is declared to hold at most
 * MAX_OUT bytes. Memory is bounded by the sizes, whatever the stream says:
 * the basis's view (and the basis), the target's view (checked against
 * MAX_OUT before it is allocated), and rebuilt bytes counted against
 * MAX_OUT as they are made, on every thread; a copy table must go strictly
 * forward in the basis and copy no more than MAX_OUT. Returns 0,
 * DS_ERR_CORRUPT for a stream that is malformed, exceeds a cap or does not
 * fit the basis (logged), or the emit's error. The caller checks the
 * output's SHA-256.
 */
int	zipdelta_decode(const uint8_t *basis, size_t basis_len, const uint8_t *in,
	    size_t in_len, uint64_t max_out, zipdelta_emit_fn emit, void *arg);

#endif
