/*
 * Fuzz target for the zip-aware patch decoder (zipdelta_decode) against a
 * real basis: a jar of text-like classes, one stored entry and a nested jar,
 * made here with zlib. Nothing may crash; the decoder never emits more than
 * the declared size. An input whose first byte is even is the stream as it
 * is; an odd one is [1 byte][header length][header][view]: the harness
 * compresses the view (recipe and bytes) itself, so that mutations reach
 * the recipe, the copies, nested zips and the rebuild behind the zstd
 * frame's checksum.
 *
 * Built with -DDS_LIBFUZZER it is a libFuzzer target (tools/fuzz);
 * otherwise main() replays tests/fuzz/corpus/zipdelta and mutates it (TAP).
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>

#include "base/err.h"
#include "base/log.h"
#include "codec/zipdelta.h"

#define MAX_OUT		(256 * 1024)

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz-main.h"

struct zbuf {
	uint8_t	*p;
	size_t	 len, cap;
};

static void
zb_put(struct zbuf *b, const void *data, size_t len)
{
	if (len == 0)
		return;
	if (b->len + len > b->cap) {
		b->cap = (b->len + len) * 2;
		b->p = realloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
}

static void
zb_le(struct zbuf *b, uint32_t v, int n)
{
	uint8_t t[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };

	zb_put(b, t, (size_t)n);
}

/* One entry of a zip being written. */
struct zent {
	char	 name[32];
	uint32_t crc, csize, usize, offset;
	int	 method;
	struct zbuf plain;	/* DEFLATE entries: the bytes the view holds */
	int	 param;		/* their recipe parameter */
};

/* Raw DEFLATE of data at level into out. */
static void
deflate_raw(const uint8_t *data, size_t len, int level, struct zbuf *out)
{
	z_stream zs;
	uint8_t chunk[4096];
	int ret;

	memset(&zs, 0, sizeof(zs));
	if (deflateInit2(&zs, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	zs.next_in = (Bytef *)(uintptr_t)data;
	zs.avail_in = (uInt)len;
	do {
		zs.next_out = chunk;
		zs.avail_out = sizeof(chunk);
		ret = deflate(&zs, Z_FINISH);
		zb_put(out, chunk, sizeof(chunk) - zs.avail_out);
	} while (ret == Z_OK);
	deflateEnd(&zs);
}

/* Appends an entry (DEFLATE at level, or stored for level 0). */
static void
zip_add(struct zbuf *z, struct zent *e, const char *name, const uint8_t *data, size_t len,
    int level)
{
	struct zbuf c = { NULL, 0, 0 };

	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", name);
	zb_put(&e->plain, data, len);
	e->param = level;	/* level 1..9, memLevel 8 */
	e->crc = (uint32_t)crc32(0, data, (uInt)len);
	e->usize = (uint32_t)len;
	e->method = level > 0 ? 8 : 0;
	if (level > 0)
		deflate_raw(data, len, level, &c);
	else
		zb_put(&c, data, len);
	e->csize = (uint32_t)c.len;
	e->offset = (uint32_t)z->len;
	zb_le(z, 0x04034b50, 4), zb_le(z, 20, 2), zb_le(z, 0, 2), zb_le(z, (uint32_t)e->method, 2);
	zb_le(z, 0, 4), zb_le(z, e->crc, 4), zb_le(z, e->csize, 4), zb_le(z, e->usize, 4);
	zb_le(z, (uint32_t)strlen(e->name), 2), zb_le(z, 0, 2);
	zb_put(z, e->name, strlen(e->name));
	zb_put(z, c.p, c.len);
	free(c.p);
}

static void
zip_finish(struct zbuf *z, const struct zent *e, size_t n)
{
	uint32_t cd = (uint32_t)z->len;

	for (size_t i = 0; i < n; i++) {
		zb_le(z, 0x02014b50, 4), zb_le(z, 20, 2), zb_le(z, 20, 2), zb_le(z, 0, 2);
		zb_le(z, (uint32_t)e[i].method, 2), zb_le(z, 0, 4), zb_le(z, e[i].crc, 4);
		zb_le(z, e[i].csize, 4), zb_le(z, e[i].usize, 4);
		zb_le(z, (uint32_t)strlen(e[i].name), 2), zb_le(z, 0, 2), zb_le(z, 0, 2);
		zb_le(z, 0, 2), zb_le(z, 0, 2), zb_le(z, 0, 4), zb_le(z, e[i].offset, 4);
		zb_put(z, e[i].name, strlen(e[i].name));
	}
	zb_le(z, 0x06054b50, 4), zb_le(z, 0, 2), zb_le(z, 0, 2);
	zb_le(z, (uint32_t)n, 2), zb_le(z, (uint32_t)n, 2);
	zb_le(z, (uint32_t)(z->len - cd - 12), 4), zb_le(z, cd, 4), zb_le(z, 0, 2);
}

/* Text like a class file's strings; VARIANT changes some of it. */
static size_t
body(uint8_t *out, int i, int variant)
{
	static const char *words[] = { "java/lang/Object ", "org/openmrs/Patient ", "getName ",
	    "()V ", "Code ", "LineNumberTable ", "encounter ", "concept " };
	uint32_t seed = (uint32_t)i * 2654435761u + 1;
	size_t n = 0, want = 300 + (size_t)(i * 37 % 900);

	while (n < want) {
		const char *w = words[(seed = seed * 1103515245 + 12345) >> 16 & 7];

		memcpy(out + n, w, strlen(w));
		n += strlen(w);
	}
	if (variant != 0 && i % 3 == variant % 3)
		memcpy(out + 40, "CHANGED", 7);
	return n;
}

static void
zb_varint(struct zbuf *b, uint64_t v)
{
	do {
		uint8_t c = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));

		zb_put(b, &c, 1);
		v >>= 7;
	} while (v != 0);
}

/*
 * The view of the zip z of entries e[0..n): as zipdelta's encoder makes it
 * when nothing is copied (zipdelta.h): varint records, per DEFLATE entry
 * varint gap, varint length, parameter; then the zip with each DEFLATE
 * entry's data replaced by its plain bytes (or, 0x80 in the parameter, by
 * the view of the zip it holds).
 */
static void
make_view(const struct zbuf *z, struct zent *e, size_t n, struct zbuf *view)
{
	struct zbuf recipe = { NULL, 0, 0 }, bytes = { NULL, 0, 0 };
	size_t pos = 0, mark = 0, records = 0;

	for (size_t i = 0; i < n; i++) {
		size_t start = e[i].offset + 30 + strlen(e[i].name);
		uint8_t p = (uint8_t)e[i].param;

		if (e[i].method != 8)
			continue;
		zb_put(&bytes, z->p + pos, start - pos);
		zb_varint(&recipe, bytes.len - mark);
		zb_varint(&recipe, e[i].plain.len);
		zb_put(&recipe, &p, 1);
		zb_put(&bytes, e[i].plain.p, e[i].plain.len);
		mark = bytes.len;
		pos = start + e[i].csize;
		records++;
	}
	zb_put(&bytes, z->p + pos, z->len - pos);
	memset(view, 0, sizeof(*view));
	zb_varint(view, records);
	zb_put(view, recipe.p, recipe.len);
	zb_put(view, bytes.p, bytes.len);
	free(recipe.p);
	free(bytes.p);
}

/*
 * A jar: 12 classes (VARIANT edits some), a stored manifest, a nested jar;
 * its view into *view unless NULL.
 */
static void
make_jar(struct zbuf *z, int variant, int nested, struct zbuf *view)
{
	struct zent e[16];
	uint8_t text[2048];
	size_t n = 0;

	memset(z, 0, sizeof(*z));
	zip_add(z, &e[n++], "META-INF/MANIFEST.MF", (const uint8_t *)"Manifest-Version: 1.0\n", 22, 0);
	for (int i = 0; i < (nested ? 12 : 5); i++) {
		char name[32];
		int k = variant == 3 ? (i + 5) % 12 : i;	/* variant 3: reordered */

		snprintf(name, sizeof(name), "org/x/C%d.class", k);
		zip_add(z, &e[n++], name, text, body(text, k, variant), 6);
	}
	if (nested) {
		struct zbuf inner, inner_view;

		make_jar(&inner, variant == 2 ? 1 : 0, 0, &inner_view);
		zip_add(z, &e[n++], "WEB-INF/lib/inner.jar", inner.p, inner.len, 6);
		/* In the view the nested jar is its own view. */
		free(e[n - 1].plain.p);
		e[n - 1].plain = inner_view;
		e[n - 1].param |= 0x80;
		free(inner.p);
	}
	zip_finish(z, e, n);
	if (view != NULL)
		make_view(z, e, n, view);
	for (size_t i = 0; i < n; i++)
		free(e[i].plain.p);
}

static struct zbuf basis;

struct bounded {
	uint64_t	 total;
};

static int
bounded_emit(void *arg, const void *data, size_t len)
{
	struct bounded *b = arg;

	(void)data;
	b->total += len;
	if (b->total > MAX_OUT)
		FUZZ_BROKEN();	/* the decoder must stop at the declared size itself */
	return 0;
}

/* The stream of a structured input: the header, then the view compressed here. */
static int
structured(const uint8_t *data, size_t size, struct zbuf *stream)
{
	size_t hlen, bound, made;

	if (size < 2 || (hlen = data[1]) > size - 2)
		return -1;
	memset(stream, 0, sizeof(*stream));
	zb_put(stream, data + 2, hlen);
	bound = ZSTD_compressBound(size - 2 - hlen);
	stream->p = realloc(stream->p, stream->len + bound + 1);
	made = ZSTD_compress(stream->p + stream->len, bound, data + 2 + hlen, size - 2 - hlen, 1);
	if (ZSTD_isError(made)) {
		free(stream->p);
		return -1;
	}
	stream->len += made;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bounded out = { 0 };
	struct zbuf stream;

	if (basis.p == NULL) {
		log_set_level(LOG_LEVEL_SILENT);
		make_jar(&basis, 0, 1, NULL);
	}
	if (size > 0 && (data[0] & 1) != 0) {
		if (structured(data, size, &stream) != 0)
			return 0;
		(void)zipdelta_decode(basis.p, basis.len, stream.p, stream.len, MAX_OUT,
		    bounded_emit, &out);
		free(stream.p);
	} else
		(void)zipdelta_decode(basis.p, basis.len, data, size, MAX_OUT, bounded_emit, &out);
	return 0;
}

#ifndef DS_LIBFUZZER
/* Collects what a decode emits. */
static int
collect(void *arg, const void *data, size_t len)
{
	zb_put(arg, data, len);
	return 0;
}

/*
 * Patches from the basis to edited, nested-edited and reordered jars, and
 * structured inputs (a view made here) for an edited jar, with and
 * without common parameters; the views must
 * rebuild their jars exactly, or the seeds would not reach the rebuild.
 */
static void
own_seeds(struct fuzz_seeds *s)
{
	static const uint8_t headers[][8] = {
		{ 6, 'D', 'Z', 'P', '2', 0, 0 },	/* no copies */
		{ 6, 'D', 'Z', 'P', '2', 6, 0 },	/* common parameters: level 6 */
	};

	LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
	for (int v = 1; v <= 3; v++) {
		struct zbuf t, view, input, stream, got = { NULL, 0, 0 };
		uint8_t *e = NULL;
		size_t elen = 0;

		make_jar(&t, v, 1, &view);
		if (zipdelta_encode(basis.p, basis.len, t.p, t.len, 3, &e, &elen, NULL) == 0)
			fuzz_seed_add(s, e, elen);
		free(e);
		for (size_t h = 0; v == 1 && h < sizeof(headers) / sizeof(headers[0]); h++) {
			memset(&input, 0, sizeof(input));
			zb_put(&input, "\x01", 1);
			zb_put(&input, headers[h], (size_t)headers[h][0] + 1);
			zb_put(&input, view.p, view.len);
			got.len = 0;
			if (structured(input.p, input.len, &stream) != 0 ||
			    zipdelta_decode(basis.p, basis.len, stream.p, stream.len, MAX_OUT,
			    collect, &got) != 0 || got.len != t.len || memcmp(got.p, t.p, t.len) != 0)
				FUZZ_BROKEN();	/* the seed does not rebuild its jar */
			else
				fuzz_seed_add(s, input.p, input.len);
			free(stream.p);
			free(input.p);
		}
		free(got.p);
		free(view.p);
		free(t.p);
	}
}

int
main(void)
{
	int r = fuzz_main("zipdelta", 1000, own_seeds);

	free(basis.p);
	return r;
}
#endif
