/*
 * Zip-aware deltas: uncompressed views of zips, a recipe of zlib parameters
 * that re-deflate each entry exactly, and a zstd patch between the views.
 * See zipdelta.h.
 */
#include "autoconf.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
#include <zlib.h>

#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "codec/zipdelta.h"

#define MAGIC			"DZP2"
#define MAGIC_V1		"DZP1"	/* decoded: a DZP2 without its copy table */
#define MAGIC_LEN		4
#define HEADER_LEN		(MAGIC_LEN + 1)
#define EOCD_SIG		0x06054b50u
#define ZIP64_LOCATOR_SIG	0x07064b50u
#define CENTRAL_SIG		0x02014b50u
#define LOCAL_SIG		0x04034b50u
#define EOCD_LEN		22
#define CENTRAL_LEN		46
#define LOCAL_LEN		30
#define METHOD_DEFLATE		8
#define FLAG_ENCRYPTED		0x0001
#define CHUNK			(64 * 1024)
#define RECORD_MAX		21	/* two 10-byte varints and a parameter byte */
#define WINDOWLOG_MAX		31
/* Full parameter searches for entries the common parameters do not reproduce. */
#define SEARCH_BUDGET		64
/* Decode re-deflates on up to this many threads, each share at least PART_MIN bytes of view. */
#define DECODE_THREADS_MAX	4
#define PART_MIN		(4u * 1024 * 1024)

/* One entry's data in the zip, in file order. */
struct zentry {
	uint64_t	 header;	/* local header offset */
	uint64_t	 start, end;	/* compressed data */
	unsigned	 method, flags;
	uint32_t	 crc;		/* of the uncompressed data (central directory) */
	uint64_t	 usize;		/* uncompressed size (central directory) */
};

/*
 * Which DEFLATE entries (numbered in file order among the DEFLATE entries
 * only) are copied: in the target, copy[k] is the basis DEFLATE entry whose
 * compressed bytes entry k has exactly (NO_COPY: none); in the basis,
 * used[j] is 1 for an entry the target copies. Copied entries are left out
 * of both views: nothing to inflate, patch or re-deflate.
 */
#define NO_COPY		UINT64_MAX

struct obuf {
	uint8_t		*p;
	size_t		 len, alloc;
};

/* zlib streams by parameter byte, made on first use and reset between entries. */
struct zstreams {
	z_stream	*deflaters[32];
	z_stream	 inflater;
	int		 inflater_ready;
};

/*
 * Parameter byte: 0 opaque, else level 1..9 | (memLevel - 8) << 4, with
 * NESTED set when the entry's bytes in the view are the view of the zip it
 * holds (a jar in a war), one level deep.
 */
#define NESTED		0x80u
static int
param_valid(unsigned p)
{
	return (p & 0x0f) >= 1 && (p & 0x0f) <= 9 && (p >> 4) <= 1;
}

static unsigned
param_make(int level, int mem_level)
{
	return (unsigned)level | (unsigned)(mem_level - 8) << 4;
}

static uint32_t
get16(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void
obuf_put(struct obuf *b, const void *data, size_t len)
{
	if (len == 0)
		return;
	b->p = xgrow(b->p, &b->alloc, b->len + len, 1);
	memcpy(b->p + b->len, data, len);
	b->len += len;
}

static void
obuf_varint(struct obuf *b, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;

	do {
		tmp[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v != 0)
			tmp[n] |= 0x80;
		n++;
	} while (v != 0);
	obuf_put(b, tmp, n);
}

static int
get_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v)
{
	uint64_t out = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		uint8_t c;

		if (*pos >= len)
			return -1;
		c = p[(*pos)++];
		if (shift == 63 && (c & 0x7e) != 0)
			return -1;
		out |= (uint64_t)(c & 0x7f) << shift;
		if ((c & 0x80) == 0) {
			*v = out;
			return 0;
		}
	}
	return -1;
}

/*
 * The most inflated bytes a view of a zip of LEN bytes holds (zipdelta.h):
 * encoder and decoder derive it from the same size, the basis's or the
 * target's declared one, so they build the same views.
 */
static uint64_t
view_cap(uint64_t len)
{
	if (len > (ZIPDELTA_VIEW_MAX - ZIPDELTA_VIEW_SLACK) / ZIPDELTA_VIEW_RATIO)
		return ZIPDELTA_VIEW_MAX;
	return len * ZIPDELTA_VIEW_RATIO + ZIPDELTA_VIEW_SLACK;
}

/*
 * The largest view (recipe and bytes) of a zip of LEN bytes: its inflated
 * bytes, then entries kept compressed once the cap is reached and the rest
 * of the zip (at most LEN), and a recipe record (at most RECORD_MAX bytes)
 * per entry (at least 76 bytes of the zip each: local and central headers).
 */
static uint64_t
view_max(uint64_t len)
{
	if (len > ZIPDELTA_VIEW_MAX)
		len = ZIPDELTA_VIEW_MAX;
	return view_cap(len) + len + len / 76 * RECORD_MAX + 16;
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct zentry *x = a, *y = b;

	return x->header < y->header ? -1 : x->header > y->header;
}

/*
 * Parses the central directory of data into *out (sorted by offset, the
 * caller frees). Returns 0 or DS_ERR_UNSUPPORTED for anything but a plain,
 * single-disk, non-zip64 zip whose entries do not overlap.
 */
static int
zip_parse(const uint8_t *data, size_t len, struct zentry **out, size_t *nout)
{
	struct zentry *v = NULL;
	uint64_t eocd = UINT64_MAX, cd_off, cd_size, p, count, prev_end = 0, shift;
	size_t lowest;

	*out = NULL;
	*nout = 0;
	if (len < EOCD_LEN)
		return DS_ERR_UNSUPPORTED;
	lowest = len - EOCD_LEN > 0xffff ? len - EOCD_LEN - 0xffff : 0;
	for (size_t i = len - EOCD_LEN + 1; i-- > lowest;) {
		if (get32(data + i) == EOCD_SIG && i + EOCD_LEN + get16(data + i + 20) == len) {
			eocd = i;
			break;
		}
	}
	if (eocd == UINT64_MAX)
		return DS_ERR_UNSUPPORTED;
	count = get16(data + eocd + 10);
	cd_size = get32(data + eocd + 12);
	cd_off = get32(data + eocd + 16);
	if (get16(data + eocd + 4) != 0 || get16(data + eocd + 6) != 0 ||
	    get16(data + eocd + 8) != count || count == 0xffff ||
	    cd_size == 0xffffffffu || cd_off == 0xffffffffu ||
	    (eocd >= 20 && get32(data + eocd - 20) == ZIP64_LOCATOR_SIG) ||
	    cd_size > eocd || cd_off > eocd - cd_size || count > ZIPDELTA_ENTRIES_MAX)
		return DS_ERR_UNSUPPORTED;
	/*
	 * A zip behind a prefix (a self-running jar's shell script) keeps its
	 * offsets relative to its own start: shift them, as unzip does.
	 */
	shift = eocd - cd_size - cd_off;
	cd_off += shift;
	v = xreallocarray(NULL, count > 0 ? count : 1, sizeof(*v));
	p = cd_off;
	for (uint64_t k = 0; k < count; k++) {
		const uint8_t *c = data + p, *l;
		uint64_t csize, header, name_len, extra_len;

		if (cd_off + cd_size - p < CENTRAL_LEN || get32(c) != CENTRAL_SIG)
			goto bad;
		csize = get32(c + 20);
		header = get32(c + 42);
		if (csize == 0xffffffffu || get32(c + 24) == 0xffffffffu ||
		    header == 0xffffffffu || get16(c + 34) != 0)
			goto bad;
		header += shift;
		p += CENTRAL_LEN + (uint64_t)get16(c + 28) + get16(c + 30) + get16(c + 32);
		if (p > cd_off + cd_size || header > cd_off || cd_off - header < LOCAL_LEN)
			goto bad;
		l = data + header;
		if (get32(l) != LOCAL_SIG)
			goto bad;
		name_len = get16(l + 26);
		extra_len = get16(l + 28);
		v[k].header = header;
		v[k].start = header + LOCAL_LEN + name_len + extra_len;
		v[k].end = v[k].start + csize;
		v[k].method = get16(c + 10);
		v[k].flags = get16(c + 8);
		v[k].crc = get32(c + 16);
		v[k].usize = get32(c + 24);
		if (v[k].end > cd_off)
			goto bad;
	}
	qsort(v, count, sizeof(*v), entry_cmp);
	for (uint64_t k = 0; k < count; k++) {
		if (v[k].header < prev_end)
			goto bad;
		prev_end = v[k].end;
	}
	*out = v;
	*nout = count;
	return 0;
bad:
	free(v);
	return DS_ERR_UNSUPPORTED;
}

int
zipdelta_is_zip(const uint8_t *data, size_t len)
{
	struct zentry *v;
	size_t n;

	if (zip_parse(data, len, &v, &n) != 0)
		return 0;
	free(v);
	return 1;
}

static void
zstreams_release(struct zstreams *z)
{
	for (size_t i = 0; i < 32; i++) {
		if (z->deflaters[i] != NULL) {
			deflateEnd(z->deflaters[i]);
			free(z->deflaters[i]);
		}
	}
	if (z->inflater_ready)
		inflateEnd(&z->inflater);
	memset(z, 0, sizeof(*z));
}

/* A raw deflater for parameter byte p, reset; NULL if zlib refuses. */
static z_stream *
deflater(struct zstreams *z, unsigned p)
{
	z_stream *s = z->deflaters[p];

	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		if (deflateInit2(s, (int)(p & 0x0f), Z_DEFLATED, -15, (int)(p >> 4) + 8,
		    Z_DEFAULT_STRATEGY) != Z_OK) {
			log_error("zipdelta: zlib deflateInit2 failed");
			free(s);
			return NULL;
		}
		z->deflaters[p] = s;
	} else if (deflateReset(s) != Z_OK)
		return NULL;
	return s;
}

/*
 * Inflates the raw DEFLATE data src[0..len) onto dst, at most cap bytes.
 * Returns 0 when the stream ends exactly at len, else -1 with dst as it was.
 */
static int
inflate_onto(struct zstreams *z, const uint8_t *src, size_t len, struct obuf *dst, uint64_t cap)
{
	size_t start = dst->len;
	int ret;

	if (!z->inflater_ready) {
		if (inflateInit2(&z->inflater, -15) != Z_OK)
			return -1;
		z->inflater_ready = 1;
	} else if (inflateReset(&z->inflater) != Z_OK)
		return -1;
	z->inflater.next_in = (Bytef *)(uintptr_t)src;
	z->inflater.avail_in = 0;
	for (;;) {
		size_t room;
		uInt give;

		if (z->inflater.avail_in == 0) {
			size_t used = (size_t)(z->inflater.next_in - src);

			give = len - used > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uInt)(len - used);
			z->inflater.avail_in = give;
		}
		if (dst->len - start >= cap)
			goto fail;
		room = cap - (dst->len - start) < CHUNK * 4 ? (size_t)(cap - (dst->len - start)) :
		    CHUNK * 4;
		dst->p = xgrow(dst->p, &dst->alloc, dst->len + room, 1);
		z->inflater.next_out = dst->p + dst->len;
		z->inflater.avail_out = (uInt)room;
		ret = inflate(&z->inflater, Z_NO_FLUSH);
		dst->len += room - z->inflater.avail_out;
		if (ret == Z_STREAM_END) {
			if ((size_t)(z->inflater.next_in - src) != len ||
			    z->inflater.avail_in != 0)
				goto fail;
			return 0;
		}
		if (ret != Z_OK && !(ret == Z_BUF_ERROR && z->inflater.avail_out == 0))
			goto fail;
	}
fail:
	dst->len = start;
	return -1;
}

/* Returns 1 if deflating in with parameter p gives exactly orig. */
static int
reproduces(struct zstreams *z, unsigned p, const uint8_t *in, size_t in_len,
    const uint8_t *orig, size_t orig_len)
{
	uint8_t chunk[CHUNK];
	size_t pos = 0;
	z_stream *s;
	int ret;

	if (in_len > UINT32_MAX || (s = deflater(z, p)) == NULL)
		return 0;
	s->next_in = (Bytef *)(uintptr_t)in;
	s->avail_in = (uInt)in_len;
	for (;;) {
		size_t made;

		s->next_out = chunk;
		s->avail_out = sizeof(chunk);
		ret = deflate(s, Z_FINISH);
		made = sizeof(chunk) - s->avail_out;
		if (made > orig_len - pos || memcmp(chunk, orig + pos, made) != 0)
			return 0;
		pos += made;
		if (ret == Z_STREAM_END)
			return pos == orig_len;
		if (ret != Z_OK && ret != Z_BUF_ERROR)
			return 0;
	}
}

static void	view_build(const uint8_t *, size_t, unsigned, const uint64_t *, const uint8_t *,
		    struct zipdelta_stats *, struct obuf *, int, uint64_t);

/*
 * An entry's inflated bytes plain[0..len) at bytes->p + before that are a zip
 * of their own: replaces them by that zip's view (entries reproduced or kept
 * as they are, as for the outer zip) when, for the target (stats), at least
 * ZIPDELTA_MIN_REPRODUCIBLE percent of its DEFLATE bytes reproduce; for the
 * basis by the view followed by the zip itself. Returns 1 when replaced.
 */
static int
nested_view(const uint8_t *plain, size_t len, unsigned common, struct zipdelta_stats *stats,
    struct obuf *bytes, size_t before, uint64_t cap)
{
	struct zipdelta_stats ns;
	struct obuf nv = { NULL, 0, 0 };
	int ok;

	if (!zipdelta_is_zip(plain, len))
		return 0;
	memset(&ns, 0, sizeof(ns));
	view_build(plain, len, common, NULL, NULL, stats != NULL ? &ns : NULL, &nv, 0,
	    cap - before);
	ok = nv.len <= cap - before && (stats == NULL ||
	    ns.reproduced_bytes >= ns.deflated_bytes / 100 * ZIPDELTA_MIN_REPRODUCIBLE);
	if (ok && stats == NULL) {
		/*
		 * The basis (a dictionary only): the view, then the zip as it
		 * is, for a target whose version of it stays unnested.
		 */
		obuf_put(&nv, plain, len);
		ok = nv.len <= cap - before;
	}
	if (ok) {
		bytes->len = before;
		obuf_put(bytes, nv.p, nv.len);
		if (stats != NULL)
			stats->nested++;
	}
	free(nv.p);
	return ok;
}

/*
 * Builds the view of a zip (recipe, then bytes) into *view, inflating at
 * most CAP bytes in all (entries past it stay compressed). For the target
 * (stats != NULL) each DEFLATE entry is inflated only if some parameters
 * re-deflate it exactly; for the basis every DEFLATE entry that inflates is,
 * recorded with parameter common. data that is not a zip is its own view.
 */
static void
view_build(const uint8_t *data, size_t len, unsigned common, const uint64_t *copy,
    const uint8_t *used, struct zipdelta_stats *stats, struct obuf *view, int nest, uint64_t cap)
{
	static const int levels[] = { 6, 9, 1, 2, 3, 4, 5, 7, 8 };
	struct obuf recipe = { NULL, 0, 0 }, bytes = { NULL, 0, 0 };
	struct zstreams z;
	struct zentry *v = NULL;
	uint64_t counts[32] = { 0 }, records = 0, failed_searches = 0, d = 0;
	unsigned learned = 0, seen[32];
	size_t n = 0, pos = 0, mark = 0, nseen = 0;

	memset(&z, 0, sizeof(z));
	if (zip_parse(data, len, &v, &n) != 0)
		n = 0;
	for (size_t k = 0; k < n; k++) {
		const uint8_t *src = data + v[k].start;
		size_t clen = (size_t)(v[k].end - v[k].start), before;
		unsigned p = 0;

		if (stats != NULL)
			stats->entries++;
		if (v[k].method != METHOD_DEFLATE)
			continue;
		if (stats != NULL) {
			stats->deflated++;
			stats->deflated_bytes += clen;
		}
		obuf_put(&bytes, data + pos, (size_t)(v[k].start - pos));
		pos = (size_t)v[k].end;
		before = bytes.len;
		if ((copy != NULL && copy[d] != NO_COPY) || (used != NULL && used[d])) {
			/* Copied: no bytes in the view, the decoder takes the basis's. */
			if (stats != NULL) {
				stats->reproduced++;
				stats->reproduced_bytes += clen;
				stats->copied++;
			}
			d++;
			obuf_varint(&recipe, before - mark);
			obuf_varint(&recipe, 0);
			obuf_put(&recipe, &(uint8_t){ 0 }, 1);
			mark = bytes.len;
			records++;
			continue;
		}
		d++;
		if ((v[k].flags & FLAG_ENCRYPTED) == 0 && bytes.len < cap &&
		    inflate_onto(&z, src, clen, &bytes, cap - bytes.len) == 0) {
			const uint8_t *plain = bytes.p + before;
			size_t plain_len = bytes.len - before;

			if (stats == NULL)
				p = common;
			else {
				/* Parameters seen so far first, most used first; then the rest. */
				for (size_t i = 0; i < nseen && p == 0; i++)
					if (reproduces(&z, seen[i], plain, plain_len, src, clen))
						p = seen[i];
				if (p == 0 && failed_searches < SEARCH_BUDGET) {
					for (size_t m = 8; m <= 9 && p == 0; m++)
						for (size_t i = 0; i < 9 && p == 0; i++) {
							unsigned q = param_make(levels[i], (int)m);

							if (counts[q] == 0 && reproduces(&z, q,
							    plain, plain_len, src, clen))
								p = q;
						}
					if (p == 0)
						failed_searches++;
				}
			}
			if (p == 0)
				bytes.len = before;
		}
		if (p != 0 && stats != NULL) {
			stats->reproduced++;
			stats->reproduced_bytes += clen;
			if (counts[p]++ == 0)
				seen[nseen++] = p;
			/* Keep seen ordered by use: one bubble step suffices per count. */
			for (size_t i = nseen; i-- > 1;)
				if (counts[seen[i]] > counts[seen[i - 1]]) {
					unsigned t = seen[i];

					seen[i] = seen[i - 1];
					seen[i - 1] = t;
				}
			learned = seen[0];
		}
		if (p != 0 && nest && bytes.len - before >= LOCAL_LEN &&
		    get32(bytes.p + before) == LOCAL_SIG && nested_view(bytes.p + before,
		    bytes.len - before, common, stats, &bytes, before, cap))
			p |= NESTED;
		if (p == 0)
			obuf_put(&bytes, src, clen);
		obuf_varint(&recipe, before - mark);
		obuf_varint(&recipe, bytes.len - before);
		obuf_put(&recipe, &(uint8_t){ (uint8_t)p }, 1);
		mark = bytes.len;
		records++;
	}
	obuf_put(&bytes, data + pos, len - pos);
	if (stats != NULL) {
		stats->view_bytes = bytes.len;
		stats->level = learned != 0 ? (int)(learned & 0x0f) : 0;
		stats->mem_level = learned != 0 ? (int)(learned >> 4) + 8 : 0;
	}
	view->len = 0;
	obuf_varint(view, records);
	obuf_put(view, recipe.p, recipe.len);
	obuf_put(view, bytes.p, bytes.len);
	free(recipe.p);
	free(bytes.p);
	free(v);
	zstreams_release(&z);
}

/*
 * The dictionary: the basis's view, then the basis as it is, so an entry
 * the target keeps compressed (opaque) still finds its old compressed bytes;
 * the entries the target copies (used, may be NULL) are left out of both.
 */
static void
basis_prefix(const uint8_t *basis, size_t basis_len, unsigned common, const uint8_t *used,
    int nest, struct obuf *prefix)
{
	struct zentry *v = NULL;
	size_t n = 0, pos = 0, d = 0;

	view_build(basis, basis_len, common, NULL, used, NULL, prefix, nest, view_cap(basis_len));
	if (used != NULL && zip_parse(basis, basis_len, &v, &n) == 0) {
		for (size_t k = 0; k < n; k++) {
			if (v[k].method != METHOD_DEFLATE)
				continue;
			if (used[d++]) {
				obuf_put(prefix, basis + pos, (size_t)(v[k].start - pos));
				pos = (size_t)v[k].end;
			}
		}
	}
	obuf_put(prefix, basis + pos, basis_len - pos);
	free(v);
}

/* DEFLATE entries of a parsed zip, in file order: *out[d] indexes v. */
static size_t
deflate_entries(const struct zentry *v, size_t n, size_t **out)
{
	size_t *idx = xcalloc(n + 1, sizeof(*idx)), m = 0;

	for (size_t k = 0; k < n; k++)
		if (v[k].method == METHOD_DEFLATE)
			idx[m++] = k;
	*out = idx;
	return m;
}

/* For sorting basis DEFLATE entries by what identifies their content. */
struct keyed {
	uint32_t	 crc;
	uint64_t	 csize, usize;
	size_t		 d;		/* DEFLATE index */
};

static int
keyed_cmp(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;

	if (x->crc != y->crc)
		return x->crc < y->crc ? -1 : 1;
	if (x->csize != y->csize)
		return x->csize < y->csize ? -1 : 1;
	if (x->usize != y->usize)
		return x->usize < y->usize ? -1 : 1;
	return x->d < y->d ? -1 : x->d > y->d;
}

/*
 * Keeps the longest run of copies whose basis entries go strictly forward
 * (the decoder refuses any other copy table: each basis entry is copied at
 * most once, so a table cannot multiply the basis) and drops the others to
 * NO_COPY: those entries travel in the views, where the patch finds them.
 * Rebuilds used; returns how many copies are kept.
 */
static size_t
copies_forward(uint64_t *copy, size_t n, uint8_t *used, size_t bd)
{
	size_t *tail = xcalloc(n + 1, sizeof(*tail)), *prev = xcalloc(n + 1, sizeof(*prev));
	size_t len = 0, k;

	/* Patience sorting: tail[i] ends the best increasing run of length i + 1. */
	for (k = 0; k < n; k++) {
		size_t lo = 0, hi = len;

		if (copy[k] == NO_COPY)
			continue;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;

			if (copy[tail[mid]] < copy[k])
				lo = mid + 1;
			else
				hi = mid;
		}
		prev[k] = lo > 0 ? tail[lo - 1] : SIZE_MAX;
		tail[lo] = k;
		if (lo == len)
			len++;
	}
	memset(used, 0, bd + 1);
	{
		uint8_t *keep = xcalloc(n + 1, 1);

		for (k = len > 0 ? tail[len - 1] : SIZE_MAX; k != SIZE_MAX; k = prev[k])
			keep[k] = 1;
		for (k = 0; k < n; k++) {
			if (copy[k] == NO_COPY)
				continue;
			if (keep[k])
				used[copy[k]] = 1;
			else
				copy[k] = NO_COPY;
		}
		free(keep);
	}
	free(tail);
	free(prev);
	return len;
}

/*
 * Finds the target's DEFLATE entries whose compressed bytes some basis
 * DEFLATE entry has exactly (same CRC and sizes, then compared): *copy per
 * target DEFLATE entry (NO_COPY or the basis DEFLATE index), *used per
 * basis DEFLATE entry, the copies going strictly forward in the basis
 * (copies_forward). Returns how many entries are copied.
 */
static size_t
find_copies(const uint8_t *basis, size_t basis_len, const uint8_t *target, size_t target_len,
    uint64_t **copy, uint8_t **used)
{
	struct zentry *bv = NULL, *tv = NULL;
	struct keyed *keys;
	size_t bn = 0, tn = 0, bd, td, *bidx, *tidx, found = 0;

	*copy = NULL;
	*used = NULL;
	if (zip_parse(basis, basis_len, &bv, &bn) != 0 ||
	    zip_parse(target, target_len, &tv, &tn) != 0) {
		free(bv);
		return 0;
	}
	bd = deflate_entries(bv, bn, &bidx);
	td = deflate_entries(tv, tn, &tidx);
	keys = xcalloc(bd + 1, sizeof(*keys));
	for (size_t j = 0; j < bd; j++) {
		const struct zentry *e = &bv[bidx[j]];

		keys[j].crc = e->crc;
		keys[j].csize = e->end - e->start;
		keys[j].usize = e->usize;
		keys[j].d = j;
	}
	qsort(keys, bd, sizeof(*keys), keyed_cmp);
	*copy = xcalloc(td + 1, sizeof(**copy));
	*used = xcalloc(bd + 1, 1);
	for (size_t k = 0; k < td; k++) {
		const struct zentry *t = &tv[tidx[k]];
		struct keyed want = { t->crc, t->end - t->start, t->usize, 0 };
		size_t lo = 0, hi = bd;

		(*copy)[k] = NO_COPY;
		if ((t->flags & FLAG_ENCRYPTED) != 0)
			continue;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;

			if (keyed_cmp(&keys[mid], &want) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < bd && keys[lo].crc == want.crc && keys[lo].csize == want.csize &&
		    keys[lo].usize == want.usize; lo++) {
			const struct zentry *b = &bv[bidx[keys[lo].d]];

			if ((b->flags & FLAG_ENCRYPTED) == 0 &&
			    memcmp(basis + b->start, target + t->start, (size_t)want.csize) == 0) {
				(*copy)[k] = keys[lo].d;
				(*used)[keys[lo].d] = 1;
				found++;
				break;
			}
		}
	}
	if (found > 0)
		found = copies_forward(*copy, td, *used, bd);
	free(keys);
	free(bidx);
	free(tidx);
	free(bv);
	free(tv);
	return found;
}

/* Writes the copy table: runs of (target start, basis start, length), as varint deltas. */
static void
copies_put(struct obuf *out, const uint64_t *copy, size_t n)
{
	struct obuf runs = { NULL, 0, 0 };
	uint64_t nruns = 0, tprev = 0, bprev = 0;

	if (copy == NULL)
		n = 0;
	for (size_t k = 0; k < n;) {
		size_t len = 1;
		int64_t db;

		if (copy[k] == NO_COPY) {
			k++;
			continue;
		}
		while (k + len < n && copy[k + len] != NO_COPY && copy[k + len] == copy[k] + len)
			len++;
		db = (int64_t)copy[k] - (int64_t)bprev;
		obuf_varint(&runs, k - tprev);
		obuf_varint(&runs, (uint64_t)(db < 0 ? ((uint64_t)-db << 1) - 1 : (uint64_t)db << 1));
		obuf_varint(&runs, len);
		tprev = k + len;
		bprev = copy[k] + len;
		nruns++;
		k += len;
	}
	obuf_varint(out, nruns);
	obuf_put(out, runs.p, runs.len);
	free(runs.p);
}

/*
 * Reads the copy table at in[*pos..len) (untrusted) for a target of at most
 * ZIPDELTA_ENTRIES_MAX DEFLATE entries and a basis of bd: fills *copy (size
 * *ntcopy, NO_COPY elsewhere) and *used (size bd). Runs go strictly forward
 * in the basis (a zigzag start that steps back is refused), so each basis
 * entry is copied at most once. Returns 0 or -1.
 */
static int
copies_get(const uint8_t *in, size_t len, size_t *pos, size_t bd, uint64_t **copy,
    size_t *ncopy, uint8_t **used)
{
	uint64_t nruns, tnext = 0, bnext = 0;
	uint64_t *c = NULL;
	size_t cap = 0;

	*copy = NULL;
	*ncopy = 0;
	*used = xcalloc(bd + 1, 1);
	if (get_varint(in, len, pos, &nruns) != 0 || nruns > ZIPDELTA_ENTRIES_MAX)
		return -1;
	for (uint64_t r = 0; r < nruns; r++) {
		uint64_t dt, zb, n, b;

		if (get_varint(in, len, pos, &dt) != 0 || get_varint(in, len, pos, &zb) != 0 ||
		    get_varint(in, len, pos, &n) != 0 || n == 0 ||
		    dt > ZIPDELTA_ENTRIES_MAX || n > ZIPDELTA_ENTRIES_MAX ||
		    tnext + dt + n > ZIPDELTA_ENTRIES_MAX)
			goto bad;
		if ((zb & 1) != 0 || (zb >> 1) > bd - bnext)
			goto bad;
		b = bnext + (zb >> 1);
		if (n > bd - b)
			goto bad;
		c = xgrow(c, &cap, tnext + dt + n, sizeof(*c));
		for (uint64_t k = *ncopy; k < tnext + dt; k++)
			c[k] = NO_COPY;
		for (uint64_t k = 0; k < n; k++) {
			c[tnext + dt + k] = b + k;
			(*used)[b + k] = 1;
		}
		tnext += dt + n;
		bnext = b + n;
		*ncopy = (size_t)tnext;
	}
	*copy = c;
	return 0;
bad:
	free(c);
	return -1;
}

static unsigned
window_for(uint64_t span)
{
	unsigned w = ZSTD_WINDOWLOG_MIN;

	while (w < WINDOWLOG_MAX && ((uint64_t)1 << w) < span)
		w++;
	return w;
}

static int
zstd_ok(size_t r, const char *what)
{
	if (ZSTD_isError(r)) {
		log_error("zipdelta: %s: %s", what, ZSTD_getErrorName(r));
		return DS_ERR_SYSTEM;
	}
	return 0;
}

int
zipdelta_encode(const uint8_t *basis, size_t basis_len, const uint8_t *target,
    size_t target_len, int level, uint8_t **out, size_t *out_len, struct zipdelta_stats *stats)
{
	struct zipdelta_stats st;
	struct obuf tview = { NULL, 0, 0 }, bview = { NULL, 0, 0 }, head = { NULL, 0, 0 };
	ZSTD_CCtx *cctx = NULL;
	uint64_t *copy = NULL;
	uint8_t *buf = NULL, *used = NULL;
	size_t bound, made, tdeflated;
	unsigned common;
	int r;

	*out = NULL;
	*out_len = 0;
	memset(&st, 0, sizeof(st));
	if (!zipdelta_is_zip(basis, basis_len) || !zipdelta_is_zip(target, target_len)) {
		log_debug("zipdelta: basis or target is not a zip this encoding handles");
		r = DS_ERR_UNSUPPORTED;
		goto out;
	}
	/* Entries whose compressed bytes the basis has: copied, not patched. */
	(void)find_copies(basis, basis_len, target, target_len, &copy, &used);
	view_build(target, target_len, 0, copy, NULL, &st, &tview, 1, view_cap(target_len));
	tdeflated = (size_t)st.deflated;
	if (tview.len > view_max(target_len)) {
		/* Cannot happen (view_build keeps to view_cap); the decoder would refuse it. */
		log_debug("zipdelta: the target's view is larger than its size allows");
		r = DS_ERR_UNSUPPORTED;
		goto out;
	}
	if (st.deflated_bytes == 0 ||
	    st.reproduced_bytes < st.deflated_bytes / 100 * ZIPDELTA_MIN_REPRODUCIBLE) {
		log_debug("zipdelta: %llu of %llu DEFLATE bytes re-deflate exactly: not worth it",
		    (unsigned long long)st.reproduced_bytes, (unsigned long long)st.deflated_bytes);
		r = DS_ERR_UNSUPPORTED;
		goto out;
	}
	common = st.level != 0 ? param_make(st.level, st.mem_level) : 0;
	basis_prefix(basis, basis_len, common, used, 1, &bview);
	if ((cctx = ZSTD_createCCtx()) == NULL) {
		log_error("zipdelta: cannot create a zstd context");
		r = DS_ERR_SYSTEM;
		goto out;
	}
	if ((r = zstd_ok(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level),
	    "zstd level")) != 0 ||
	    (r = zstd_ok(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1),
	    "zstd checksum")) != 0 ||
	    (r = zstd_ok(ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog,
	    (int)window_for((uint64_t)tview.len + bview.len)), "zstd window")) != 0 ||
	    (r = zstd_ok(ZSTD_CCtx_setParameter(cctx, ZSTD_c_enableLongDistanceMatching, 1),
	    "zstd long matching")) != 0 ||
	    (r = zstd_ok(ZSTD_CCtx_refPrefix(cctx, bview.p, bview.len), "zstd prefix")) != 0)
		goto out;
	obuf_put(&head, MAGIC, MAGIC_LEN);
	obuf_put(&head, &(uint8_t){ (uint8_t)common }, 1);
	copies_put(&head, copy, tdeflated);
	bound = ZSTD_compressBound(tview.len);
	buf = xmalloc(head.len + bound);
	memcpy(buf, head.p, head.len);
	made = ZSTD_compress2(cctx, buf + head.len, bound, tview.p, tview.len);
	if ((r = zstd_ok(made, "zstd compression")) != 0)
		goto out;
	*out = buf;
	*out_len = head.len + made;
	buf = NULL;
	r = 0;
out:
	if (stats != NULL)
		*stats = st;
	ZSTD_freeCCtx(cctx);
	free(buf);
	free(tview.p);
	free(bview.p);
	free(head.p);
	free(copy);
	free(used);
	return r;
}

/*
 * Decompresses the frame in[0..len) against prefix into *view. Its declared
 * content size, at most MAX, is allocated once and zstd writes straight
 * into it (stable output: no window buffer of its own); the frame's window
 * may cover prefix and view, no more.
 */
static int
unpatch(const uint8_t *in, size_t len, const struct obuf *prefix, uint64_t max,
    struct obuf *view)
{
	unsigned long long declared = ZSTD_getFrameContentSize(in, len);
	ZSTD_DCtx *dctx = NULL;
	ZSTD_inBuffer zi = { in, len, 0 };
	ZSTD_outBuffer zo;
	int r;

	if (declared == ZSTD_CONTENTSIZE_UNKNOWN || declared == ZSTD_CONTENTSIZE_ERROR) {
		log_error("zipdelta: the stream's zstd frame is malformed");
		return DS_ERR_CORRUPT;
	}
	if (declared > max) {
		log_error("zipdelta: the stream's view declares %llu bytes, more than the %llu "
		    "its target's size allows", declared, (unsigned long long)max);
		return DS_ERR_CORRUPT;
	}
	if ((dctx = ZSTD_createDCtx()) == NULL) {
		log_error("zipdelta: cannot create a zstd context");
		return DS_ERR_SYSTEM;
	}
	if ((r = zstd_ok(ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax,
	    (int)window_for((uint64_t)prefix->len + declared)), "zstd window limit")) != 0 ||
	    (r = zstd_ok(ZSTD_DCtx_setParameter(dctx, ZSTD_d_stableOutBuffer, 1),
	    "zstd stable output")) != 0 ||
	    (r = zstd_ok(ZSTD_DCtx_refPrefix(dctx, prefix->p, prefix->len), "zstd prefix")) != 0)
		goto out;
	view->p = xmalloc((size_t)declared + 1);
	view->alloc = (size_t)declared + 1;
	view->len = 0;
	zo.dst = view->p;
	zo.size = (size_t)declared;
	zo.pos = 0;
	for (;;) {
		size_t in_was = zi.pos, out_was = zo.pos;
		size_t ret = ZSTD_decompressStream(dctx, &zo, &zi);

		if (ZSTD_isError(ret)) {
			log_error("zipdelta: stream is corrupt or its basis differs: %s",
			    ZSTD_getErrorName(ret));
			r = DS_ERR_CORRUPT;
			goto out;
		}
		if (ret == 0)
			break;
		if (zi.pos == in_was && zo.pos == out_was) {
			log_error("zipdelta: stream is truncated or longer than it declares");
			r = DS_ERR_CORRUPT;
			goto out;
		}
	}
	view->len = zo.pos;
	if (zi.pos != zi.size || view->len != declared) {
		log_error("zipdelta: the zstd frame ends before its declared size or bytes follow it");
		r = DS_ERR_CORRUPT;
		goto out;
	}
	r = 0;
out:
	ZSTD_freeDCtx(dctx);
	return r;
}

/* Deflates in[0..len) with parameter p through emit. */
static int
redeflate(struct zstreams *z, unsigned p, const uint8_t *in, size_t len, zipdelta_emit_fn emit,
    void *arg)
{
	uint8_t chunk[CHUNK];
	z_stream *s;
	int ret, r;

	if (len > UINT32_MAX || (s = deflater(z, p)) == NULL)
		return DS_ERR_CORRUPT;
	s->next_in = (Bytef *)(uintptr_t)in;
	s->avail_in = (uInt)len;
	do {
		s->next_out = chunk;
		s->avail_out = sizeof(chunk);
		ret = deflate(s, Z_FINISH);
		if (ret != Z_OK && ret != Z_STREAM_END && ret != Z_BUF_ERROR)
			return DS_ERR_CORRUPT;
		if ((r = emit(arg, chunk, sizeof(chunk) - s->avail_out)) != 0)
			return r;
	} while (ret != Z_STREAM_END);
	return 0;
}

/* One recipe record, located in the view. */
struct record {
	uint64_t	 pos;		/* view offset of the entry's bytes (after its gap) */
	uint64_t	 gap, len;
	unsigned	 p;
	const uint8_t	*src;		/* a copied entry: the basis's compressed bytes */
	size_t		 src_len;
};

/*
 * What a decode may produce, shared by its threads: the target's declared
 * size. Every byte is counted as it is made, by whichever thread makes it,
 * so no helper's buffer outgrows the target.
 */
struct budget {
	_Atomic uint64_t used;
	uint64_t	 max;
};

static int
budget_take(struct budget *b, size_t len)
{
	uint64_t before = atomic_fetch_add(&b->used, (uint64_t)len);

	return before > b->max || len > b->max - before ? DS_ERR_CORRUPT : 0;
}

/* The caller's emit, counted. */
struct counted {
	struct budget	*budget;
	zipdelta_emit_fn emit;
	void		*arg;
};

static int
counted_emit(void *arg, const void *data, size_t len)
{
	struct counted *c = arg;
	int r;

	if ((r = budget_take(c->budget, len)) != 0)
		return r;
	return c->emit(c->arg, data, len);
}

/* A run of records rebuilt by a helper thread into its own buffer. */
struct part {
	const uint8_t		*bytes;		/* the view's bytes section */
	const struct record	*rec;
	size_t			 first, end;	/* records [first, end) */
	uint64_t		 nested_max;
	struct budget		*budget;
	struct obuf		 out;
	pthread_t		 thread;
	int			 started, result;
};

static int
part_emit(void *arg, const void *data, size_t len)
{
	struct part *pt = arg;
	int r;

	if ((r = budget_take(pt->budget, len)) != 0)
		return r;
	obuf_put(&pt->out, data, len);
	return 0;
}

/*
 * Parses a view's recipe (untrusted): *rec (records *nrec, caller frees),
 * the bytes section at view + *base of *avail bytes, entries ending at *end
 * in it. NESTED parameters are allowed only when nested_ok. Returns 0 or -1
 * (logged).
 */
static int
records_parse(const uint8_t *view, size_t vlen, int nested_ok, struct record **rec_out,
    uint64_t *nrec, size_t *base, uint64_t *avail, uint64_t *end)
{
	struct record *rec;
	uint64_t records, pos = 0;
	size_t rpos = 0;

	*rec_out = NULL;
	if (get_varint(view, vlen, &rpos, &records) != 0 || records > ZIPDELTA_ENTRIES_MAX ||
	    records > (vlen - rpos) / 3) {
		log_error("zipdelta: recipe is malformed");
		return -1;
	}
	rec = xcalloc(records + 1, sizeof(*rec));
	for (uint64_t k = 0; k < records; k++) {
		unsigned p;

		if (get_varint(view, vlen, &rpos, &rec[k].gap) != 0 ||
		    get_varint(view, vlen, &rpos, &rec[k].len) != 0 || rpos >= vlen)
			goto bad;
		p = view[rpos++];
		if (p != 0 && !param_valid(p & ~NESTED))
			goto bad;
		if ((p & NESTED) != 0 && !nested_ok)
			goto bad;
		rec[k].p = p;
	}
	*base = rpos;
	*avail = vlen - rpos;
	for (uint64_t k = 0; k < records; k++) {
		if (rec[k].gap > *avail - pos || rec[k].len > *avail - pos - rec[k].gap) {
			log_error("zipdelta: recipe points past its view");
			free(rec);
			return -1;
		}
		rec[k].pos = pos + rec[k].gap;
		pos += rec[k].gap + rec[k].len;
	}
	*rec_out = rec;
	*nrec = records;
	*end = pos;
	return 0;
bad:
	log_error("zipdelta: recipe is malformed");
	free(rec);
	return -1;
}

static int	rebuild(const uint8_t *, const struct record *, size_t, size_t, uint64_t,
		    zipdelta_emit_fn, void *);

/* A nested zip's bytes, before they are deflated: at most max. */
struct nested_buf {
	struct obuf	 out;
	uint64_t	 max;
};

static int
nested_put(void *arg, const void *data, size_t len)
{
	struct nested_buf *b = arg;

	if (len > b->max - b->out.len) {
		log_error("zipdelta: a nested zip is larger than its target's size allows");
		return DS_ERR_CORRUPT;
	}
	obuf_put(&b->out, data, len);
	return 0;
}

/*
 * Rebuilds the zip whose view is view[0..len), at most MAX bytes, then
 * deflates it with p through emit.
 */
static int
nested_emit(struct zstreams *z, unsigned p, const uint8_t *view, size_t len, uint64_t max,
    zipdelta_emit_fn emit, void *arg)
{
	struct nested_buf nb = { { NULL, 0, 0 }, max };
	struct record *rec = NULL;
	uint64_t n, avail, end;
	size_t base;
	int r;

	if (records_parse(view, len, 0, &rec, &n, &base, &avail, &end) != 0)
		return DS_ERR_CORRUPT;
	r = rebuild(view + base, rec, 0, (size_t)n, max, nested_put, &nb);
	if (r == 0)
		r = nested_put(&nb, view + base + end, (size_t)(avail - end));
	if (r == 0)
		r = redeflate(z, p, nb.out.p != NULL ? nb.out.p : (const uint8_t *)"", nb.out.len,
		    emit, arg);
	free(rec);
	free(nb.out.p);
	return r;
}

/*
 * Emits records [first, end): each one's gap bytes, then its entry copied
 * from the basis, re-deflated, rebuilt from its nested view (at most
 * NESTED_MAX bytes before deflating) and re-deflated, or as is.
 */
static int
rebuild(const uint8_t *bytes, const struct record *rec, size_t first, size_t end,
    uint64_t nested_max, zipdelta_emit_fn emit, void *arg)
{
	struct zstreams z;
	int r = 0;

	memset(&z, 0, sizeof(z));
	for (size_t k = first; k < end && r == 0; k++) {
		if ((r = emit(arg, bytes + rec[k].pos - rec[k].gap, (size_t)rec[k].gap)) != 0)
			break;
		if (rec[k].src != NULL)
			r = emit(arg, rec[k].src, rec[k].src_len);
		else if ((rec[k].p & NESTED) != 0)
			r = nested_emit(&z, rec[k].p & ~NESTED, bytes + rec[k].pos,
			    (size_t)rec[k].len, nested_max, emit, arg);
		else if (rec[k].p == 0)
			r = emit(arg, bytes + rec[k].pos, (size_t)rec[k].len);
		else
			r = redeflate(&z, rec[k].p, bytes + rec[k].pos, (size_t)rec[k].len, emit,
			    arg);
	}
	zstreams_release(&z);
	return r;
}

static void *
part_main(void *arg)
{
	struct part *pt = arg;

	pt->result = rebuild(pt->bytes, pt->rec, pt->first, pt->end, pt->nested_max, part_emit,
	    pt);
	return NULL;
}

/* How many threads a decode of VIEW_LEN bytes uses. */
static size_t
decode_threads(uint64_t view_len)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t by_size = view_len / PART_MIN;

	if (n < 1)
		n = 1;
	if (n > DECODE_THREADS_MAX)
		n = DECODE_THREADS_MAX;
	if (by_size < (uint64_t)n)
		n = by_size > 0 ? (long)by_size : 1;
	return (size_t)n;
}

int
zipdelta_decode(const uint8_t *basis, size_t basis_len, const uint8_t *in, size_t in_len,
    uint64_t max_out, zipdelta_emit_fn emit, void *arg)
{
	struct obuf bview = { NULL, 0, 0 }, tview = { NULL, 0, 0 };
	struct record *rec = NULL;
	struct part parts[DECODE_THREADS_MAX];
	struct budget budget;
	struct counted main_emit = { &budget, emit, arg };
	struct zentry *bv = NULL;
	uint64_t records = 0, pos = 0, avail = 0, *copy = NULL, known, nested_max;
	size_t base = 0, nparts = 0, first, hpos = HEADER_LEN, bn = 0, bd = 0, ncopy = 0;
	size_t *bidx = NULL;
	uint8_t *used = NULL;
	const uint8_t *bytes;
	unsigned common;
	int r, v2;

	memset(parts, 0, sizeof(parts));
	atomic_init(&budget.used, 0);
	budget.max = max_out;
	nested_max = view_max(max_out);
	v2 = in_len >= HEADER_LEN && memcmp(in, MAGIC, MAGIC_LEN) == 0;
	if (in_len < HEADER_LEN || (!v2 && memcmp(in, MAGIC_V1, MAGIC_LEN) != 0) ||
	    (in[MAGIC_LEN] != 0 && !param_valid(in[MAGIC_LEN]))) {
		log_error("zipdelta: stream does not start with a zip patch header");
		r = DS_ERR_CORRUPT;
		goto out;
	}
	common = in[MAGIC_LEN];
	r = DS_ERR_CORRUPT;
	known = 0;
	if (v2) {
		if (zip_parse(basis, basis_len, &bv, &bn) == 0)
			bd = deflate_entries(bv, bn, &bidx);
		if (copies_get(in, in_len, &hpos, bd, &copy, &ncopy, &used) != 0) {
			log_error("zipdelta: copy table is malformed, steps back or does not fit "
			    "the basis");
			goto out;
		}
		/* Copied bytes are output: more than the target holds is refused here. */
		for (size_t k = 0; k < ncopy; k++) {
			if (copy[k] != NO_COPY)
				known += bv[bidx[copy[k]]].end - bv[bidx[copy[k]]].start;
		}
		if (known > max_out) {
			log_error("zipdelta: copy table copies %llu bytes, more than the target's "
			    "declared %llu", (unsigned long long)known, (unsigned long long)max_out);
			goto out;
		}
	}
	basis_prefix(basis, basis_len, common, used, v2, &bview);
	if ((r = unpatch(in + hpos, in_len - hpos, &bview, view_max(max_out), &tview)) != 0)
		goto out;
	free(bview.p);
	bview.p = NULL;
	r = DS_ERR_CORRUPT;
	if (records_parse(tview.p, tview.len, v2, &rec, &records, &base, &avail, &pos) != 0)
		goto out;
	if (ncopy > records) {
		log_error("zipdelta: copy table names entries the recipe lacks");
		goto out;
	}
	for (size_t k = 0; k < ncopy; k++) {
		const struct zentry *e;

		if (copy[k] == NO_COPY)
			continue;
		if (rec[k].len != 0 || rec[k].p != 0) {
			log_error("zipdelta: a copied entry has bytes in the view");
			goto out;
		}
		e = &bv[bidx[copy[k]]];
		rec[k].src = basis + e->start;
		rec[k].src_len = (size_t)(e->end - e->start);
	}
	/* Gaps, copies, entries as they are and the tail: output known before any is made. */
	known += avail - pos;
	for (uint64_t k = 0; k < records; k++)
		known += rec[k].gap + (rec[k].src == NULL && rec[k].p == 0 ? rec[k].len : 0);
	if (known > max_out) {
		log_error("zipdelta: the stream rebuilds at least %llu bytes, more than the "
		    "target's declared %llu", (unsigned long long)known,
		    (unsigned long long)max_out);
		goto out;
	}
	bytes = tview.p + base;
	/*
	 * The first share is rebuilt here straight into emit; the others on
	 * helper threads into buffers, emitted in order after it. All count
	 * against the one budget.
	 */
	nparts = decode_threads(pos);
	first = 0;
	for (size_t i = 1; i < nparts; i++) {
		uint64_t cut = pos / nparts * i;
		size_t k = first;

		while (k < records && rec[k].pos + rec[k].len <= cut)
			k++;
		parts[i].bytes = bytes;
		parts[i].rec = rec;
		parts[i].first = k;
		parts[i].nested_max = nested_max;
		parts[i].budget = &budget;
		parts[i - 1].end = k;
		first = k;
	}
	parts[nparts - 1].end = (size_t)records;
	for (size_t i = 1; i < nparts; i++)
		parts[i].started = pthread_create(&parts[i].thread, NULL, part_main,
		    &parts[i]) == 0;
	r = rebuild(bytes, rec, 0, parts[0].end, nested_max, counted_emit, &main_emit);
	for (size_t i = 1; i < nparts; i++) {
		if (!parts[i].started)	/* no thread: rebuild it here */
			part_main(&parts[i]);
		else
			pthread_join(parts[i].thread, NULL);
		parts[i].started = 0;
		if (r == 0)
			r = parts[i].result;
		/* Counted when made. */
		if (r == 0 && parts[i].out.len > 0)
			r = emit(arg, parts[i].out.p, parts[i].out.len);
		free(parts[i].out.p);
		parts[i].out.p = NULL;
	}
	if (r == 0)
		r = counted_emit(&main_emit, bytes + pos, (size_t)(avail - pos));
	if (r != 0 && atomic_load(&budget.used) > budget.max)
		log_error("zipdelta: the stream rebuilds more than the target's declared %llu bytes",
		    (unsigned long long)max_out);
out:
	for (size_t i = 1; i < nparts; i++) {
		if (parts[i].started)
			pthread_join(parts[i].thread, NULL);
		free(parts[i].out.p);
	}
	free(rec);
	free(bview.p);
	free(tview.p);
	free(bv);
	free(bidx);
	free(copy);
	free(used);
	return r;
}
