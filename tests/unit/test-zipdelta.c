/*
 * zipdelta: zips written by python3's zipfile at several levels, by a
 * hand-made writer (entries that zlib cannot reproduce, stored entries, data
 * descriptors, a prefix, zip64) and by the zip CLI, round-tripped exactly
 * through delta_encode/delta_decode; a changed class costs far less than a
 * zstd-patch; unchanged entries are copied (and DZP1 streams still decode); zips it cannot handle are refused; a mutation pass over
 * encoded streams never crashes nor writes past the declared size.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include <zlib.h>
#include <zstd.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/spawn.h"
#include "codec/delta.h"
#include "codec/zipdelta.h"
#include "rss.h"
#include "tap.h"

/*
 * make.py MODE OUT [ARG]: writes a zip. Entries look like class files and
 * text; "changed" alters one of them.
 *   py LEVEL / changed LEVEL	zipfile, deflate at LEVEL, one stored entry
 *   big [changed]		1500 entries; changed alters every one
 *   war [changed]		jars a.jar and b.jar inside a war; changed alters
 *				two classes of a.jar
 *   mixed / mixed-changed	hand-made: zlib default, filtered and huffman-only
 *				entries, stored ones, data descriptors, a prefix
 *   zip64			hand-made with zip64 end records
 */
static const char make_py[] =
"import sys, zipfile, zlib, struct, random\n"
"mode, out = sys.argv[1], sys.argv[2]\n"
"arg = sys.argv[3] if len(sys.argv) > 3 else ''\n"
"def body(i, changed):\n"
"    r = random.Random(i)\n"
"    words = ['java/lang/Object', 'org/openmrs/Patient', 'getName', '()V', 'Code',\n"
"             'LineNumberTable', 'encounter', 'concept', str(i)]\n"
"    b = ' '.join(r.choice(words) for _ in range(200 + r.randrange(2000)))\n"
"    if changed == 'all' or (changed and i in (17, 24)): b = b.replace('concept', 'CONCEPT', 3) + ' added'\n"
"    return b.encode()\n"
"def pyzip(level, changed, n=150):\n"
"    with zipfile.ZipFile(out, 'w') as z:\n"
"        z.writestr('META-INF/MANIFEST.MF', b'Manifest-Version: 1.0\\n', zipfile.ZIP_STORED)\n"
"        for i in range(n):\n"
"            z.writestr(zipfile.ZipInfo('org/x/C%d.class' % i, (2020,1,1,0,0,0)), body(i, changed),\n"
"                       zipfile.ZIP_DEFLATED, level)\n"
"def raw(data, level, strategy):\n"
"    c = zlib.compressobj(level, zlib.DEFLATED, -15, 8, strategy)\n"
"    return c.compress(data) + c.flush()\n"
"def manual(changed, zip64):\n"
"    f = bytearray(b'#!/bin/sh\\nexec java -jar \"$0\"\\n')\n"
"    base = len(f); cd = bytearray(); n = 0\n"
"    for i in range(60):\n"
"        data = body(i, changed); crc = zlib.crc32(data)\n"
"        if i % 10 == 3: comp, method = data, 0\n"
"        elif i % 10 == 1: comp, method = raw(data, 6, zlib.Z_FILTERED), 8\n"
"        elif i % 10 == 7: comp, method = raw(data, 6, zlib.Z_HUFFMAN_ONLY), 8\n"
"        else: comp, method = raw(data, 9 if i % 2 else 6, zlib.Z_DEFAULT_STRATEGY), 8\n"
"        name = ('a/E%d.class' % i).encode(); flags = 8 if i % 2 else 0\n"
"        off = len(f) - base\n"
"        if flags: f += struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, flags, method, 0, 0, 0, 0, 0, len(name), 0)\n"
"        else: f += struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, flags, method, 0, 0, crc, len(comp), len(data), len(name), 0)\n"
"        f += name + comp\n"
"        if flags: f += struct.pack('<IIII', 0x08074b50, crc, len(comp), len(data))\n"
"        cd += struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 20, 20, flags, method, 0, 0, crc, len(comp), len(data), len(name), 0, 0, 0, 0, 0, off) + name\n"
"        n += 1\n"
"    cdoff = len(f) - base; f += cd\n"
"    if zip64:\n"
"        z64 = len(f) - base\n"
"        f += struct.pack('<IQHHIIQQQQ', 0x06064b50, 44, 45, 45, 0, 0, n, n, len(cd), cdoff)\n"
"        f += struct.pack('<IIQI', 0x07064b50, 0, z64, 1)\n"
"        f += struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, 0xffff, 0xffff, 0xffffffff, 0xffffffff, 0)\n"
"    else:\n"
"        f += struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, n, n, len(cd), cdoff, 0)\n"
"    open(out, 'wb').write(f)\n"
"if mode == 'py': pyzip(int(arg), False)\n"
"elif mode == 'changed': pyzip(int(arg), True)\n"
"elif mode == 'big': pyzip(6, 'all' if arg == 'changed' else False, 1500)\n"
"elif mode == 'war':\n"
"    import io\n"
"    def jar(changed, seed):\n"
"        b = io.BytesIO()\n"
"        with zipfile.ZipFile(b, 'w') as z:\n"
"            for i in range(seed, seed + 120):\n"
"                z.writestr(zipfile.ZipInfo('org/x/C%d.class' % i, (2020,1,1,0,0,0)), body(i, changed),\n"
"                           zipfile.ZIP_DEFLATED, 6)\n"
"        return b.getvalue()\n"
"    with zipfile.ZipFile(out, 'w') as z:\n"
"        for name, data in (('WEB-INF/lib/a.jar', jar(arg == 'changed', 0)),\n"
"                           ('WEB-INF/lib/b.jar', jar(False, 500)),\n"
"                           ('WEB-INF/web.xml', b'<web-app/>' * 50)):\n"
"            z.writestr(zipfile.ZipInfo(name, (2020,1,1,0,0,0)), data, zipfile.ZIP_DEFLATED, 6)\n"
"elif mode == 'mixed': manual(False, False)\n"
"elif mode == 'mixed-changed': manual(True, False)\n"
"elif mode == 'zip64': manual(False, True)\n"
"elif mode == 'tree':\n"
"    import os\n"
"    os.makedirs(out, exist_ok=True)\n"
"    for i in range(80):\n"
"        open(os.path.join(out, 'F%d.class' % i), 'wb').write(body(i, arg == 'changed'))\n";

static int
run(char *const argv[])
{
	struct spawn_opts opts = { .timeout_ms = 60000 };
	struct spawn_result res;
	int r = spawn_run(argv, &opts, &res);

	if (r != 0)
		printf("# %s failed: %s\n", argv[0], res.output);
	spawn_result_release(&res);
	return r;
}

static int
make_zip(const char *mode, const char *out, const char *arg)
{
	char *argv[] = { "python3", "-c", (char *)make_py, (char *)mode, (char *)out,
	    (char *)arg, NULL };

	return run(argv);
}

static uint64_t
size_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static uint8_t *
slurp(const char *path, size_t *len)
{
	size_t size = (size_t)size_of(path);
	uint8_t *p = malloc(size + 1);
	FILE *fp = fopen(path, "rb");

	*len = fp != NULL ? fread(p, 1, size, fp) : 0;
	if (fp != NULL)
		fclose(fp);
	return p;
}

static int
encode(enum delta_encoding enc, const char *basis, const char *target, const char *out,
    uint64_t *len)
{
	int bfd = open(basis, O_RDONLY), tfd = open(target, O_RDONLY);
	int ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), r = DS_ERR_SYSTEM;

	*len = 0;
	if (bfd >= 0 && tfd >= 0 && ofd >= 0)
		r = delta_encode(enc, bfd, tfd, 9, ofd, len);
	if (bfd >= 0)
		close(bfd);
	if (tfd >= 0)
		close(tfd);
	if (ofd >= 0)
		close(ofd);
	return r;
}

/* Decodes in against basis; 0 if the output is exactly target. */
static int
decode_matches(const char *basis, const char *in, const char *target)
{
	uint8_t want[HASH_LEN], got[HASH_LEN];
	uint64_t size = 0, len = 0;
	int tfd = open(target, O_RDONLY), bfd = open(basis, O_RDONLY), ifd = open(in, O_RDONLY);
	int ofd = open("dec.bin", O_RDWR | O_CREAT | O_TRUNC, 0644), r = -1;

	if (tfd >= 0 && bfd >= 0 && ifd >= 0 && ofd >= 0 && hash_fd(tfd, want, &size) == 0 &&
	    delta_decode(DELTA_ZIP_PATCH, bfd, ifd, ofd, size, &len, got) == 0)
		r = len == size && memcmp(got, want, HASH_LEN) == 0 && size_of("dec.bin") == size ?
		    0 : -2;
	if (tfd >= 0)
		close(tfd);
	if (bfd >= 0)
		close(bfd);
	if (ifd >= 0)
		close(ifd);
	if (ofd >= 0)
		close(ofd);
	return r;
}

static void
stats_of(const char *basis, const char *target, struct zipdelta_stats *st)
{
	size_t blen, tlen, olen;
	uint8_t *b = slurp(basis, &blen), *t = slurp(target, &tlen), *o = NULL;

	(void)zipdelta_encode(b, blen, t, tlen, 3, &o, &olen, st);
	free(b);
	free(t);
	free(o);
}

/* python3 zipfile at levels 1, 6, 9: every entry reproduces; a changed class costs little. */
static void
test_python_levels(void)
{
	static const char *levels[] = { "1", "6", "9" };

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		struct zipdelta_stats st;
		uint64_t zlen = 0, plen = 0, same = 0;

		if (make_zip("py", "a.jar", levels[i]) != 0 ||
		    make_zip("changed", "b.jar", levels[i]) != 0) {
			CHECK(0, "python3 makes the zips at level %s", levels[i]);
			continue;
		}
		CHECK(encode(DELTA_ZIP_PATCH, "a.jar", "b.jar", "p.bin", &plen) == 0,
		    "level %s: zippatch encodes", levels[i]);
		CHECK(decode_matches("a.jar", "p.bin", "b.jar") == 0,
		    "level %s: zippatch decodes to the exact jar", levels[i]);
		CHECK(encode(DELTA_ZSTD_PATCH, "a.jar", "b.jar", "z.bin", &zlen) == 0,
		    "level %s: zpatch encodes", levels[i]);
		CHECK(plen * 2 < zlen, "level %s: one changed class: zippatch %llu bytes, zpatch "
		    "%llu", levels[i], (unsigned long long)plen, (unsigned long long)zlen);
		stats_of("a.jar", "b.jar", &st);
		CHECK(st.entries == 151 && st.deflated == 150 && st.reproduced == 150,
		    "level %s: %llu of %llu DEFLATE entries reproduce (level %d)", levels[i],
		    (unsigned long long)st.reproduced, (unsigned long long)st.deflated, st.level);
		CHECK(encode(DELTA_ZIP_PATCH, "b.jar", "b.jar", "s.bin", &same) == 0 && same < 400 &&
		    decode_matches("b.jar", "s.bin", "b.jar") == 0,
		    "level %s: identical jars cost %llu bytes", levels[i], (unsigned long long)same);
	}
}

/* Entries zlib does not reproduce stay opaque; stored entries, descriptors, a prefix. */
static void
test_mixed(void)
{
	struct zipdelta_stats st;
	uint64_t plen = 0, zlen = 0;

	if (make_zip("mixed", "a.jar", NULL) != 0 || make_zip("mixed-changed", "b.jar", NULL) != 0) {
		CHECK(0, "python3 makes the hand-made zips");
		return;
	}
	stats_of("a.jar", "b.jar", &st);
	CHECK(st.entries == 60 && st.deflated == 54 && st.reproduced > 0 &&
	    st.reproduced < st.deflated, "%llu of %llu DEFLATE entries reproduce, the rest opaque",
	    (unsigned long long)st.reproduced, (unsigned long long)st.deflated);
	CHECK(encode(DELTA_ZIP_PATCH, "a.jar", "b.jar", "p.bin", &plen) == 0 &&
	    decode_matches("a.jar", "p.bin", "b.jar") == 0,
	    "opaque, stored, descriptor and prefixed entries round-trip exactly");
	CHECK(encode(DELTA_ZSTD_PATCH, "a.jar", "b.jar", "z.bin", &zlen) == 0 && plen < zlen,
	    "zippatch %llu bytes < zpatch %llu", (unsigned long long)plen,
	    (unsigned long long)zlen);
	/* Against a basis that is not a zip, the target still decodes (basis as is). */
	CHECK(encode(DELTA_ZIP_PATCH, "p.bin", "b.jar", "x.bin", &plen) == DS_ERR_UNSUPPORTED,
	    "a basis that is not a zip is refused");
}

/* The zip CLI's own deflate: exact either way, refused when too little reproduces. */
static void
test_zip_cli(void)
{
	char *mk1[] = { "python3", "-c", (char *)make_py, "tree", "d1", "", NULL };
	char *mk2[] = { "python3", "-c", (char *)make_py, "tree", "d2", "changed", NULL };
	char *z1[] = { "sh", "-c", "cd d1 && zip -q -9 -X ../a.zip *", NULL };
	char *z2[] = { "sh", "-c", "cd d2 && zip -q -6 -X ../b.zip *", NULL };
	uint64_t plen = 0;
	int r;

	if (access("/usr/bin/zip", X_OK) != 0) {
		printf("# zip is not installed: zip CLI test skipped\n");
		return;
	}
	if (run(mk1) != 0 || run(mk2) != 0 || run(z1) != 0 || run(z2) != 0) {
		CHECK(0, "zip makes the zips");
		return;
	}
	r = encode(DELTA_ZIP_PATCH, "a.zip", "b.zip", "p.bin", &plen);
	CHECK(r == DS_ERR_UNSUPPORTED || (r == 0 && decode_matches("a.zip", "p.bin", "b.zip") == 0),
	    "zip -9 to zip -6: %s", r == 0 ? "round trip exact" : "refused (too few reproduce)");
}

/* Zips this module does not handle are refused, so the sender falls back to zstd-patch. */
static void
test_refused(void)
{
	static const uint8_t text[] = "not a zip at all, just some words and more words";
	static const uint8_t empty_zip[22] = { 'P', 'K', 5, 6 };
	uint8_t *o = NULL, *t;
	size_t olen = 0, tlen;
	uint64_t plen;

	if (make_zip("zip64", "z64.jar", NULL) != 0 || make_zip("py", "a.jar", "6") != 0) {
		CHECK(0, "python3 makes the zips");
		return;
	}
	CHECK(encode(DELTA_ZIP_PATCH, "a.jar", "z64.jar", "p.bin", &plen) == DS_ERR_UNSUPPORTED &&
	    plen == 0, "zip64 refused");
	t = slurp("a.jar", &tlen);
	CHECK(zipdelta_is_zip(t, tlen) && zipdelta_is_zip(empty_zip, sizeof(empty_zip)),
	    "a zip and an empty zip are zips");
	CHECK(!zipdelta_is_zip(text, sizeof(text)) && !zipdelta_is_zip(t, tlen - 1) &&
	    !zipdelta_is_zip(t + 1, tlen - 1) && !zipdelta_is_zip(t, 10),
	    "text, truncated and shifted zips are not");
	CHECK(zipdelta_encode(t, tlen, text, sizeof(text), 3, &o, &olen, NULL) ==
	    DS_ERR_UNSUPPORTED && o == NULL, "a target that is not a zip is refused");
	CHECK(zipdelta_encode(t, tlen, empty_zip, sizeof(empty_zip), 3, &o, &olen, NULL) ==
	    DS_ERR_UNSUPPORTED, "a zip without DEFLATE entries is refused");
	/* Every truncation of a zip parses or is refused, never read past its end. */
	for (size_t cut = 0; cut < tlen; cut += 37)
		(void)zipdelta_is_zip(t, cut);
	CHECK(1, "every truncation parsed without a crash");
	free(t);
}

struct bounded {
	uint64_t	 total, max;
};

static int
bounded_emit(void *arg, const void *data, size_t len)
{
	struct bounded *b = arg;

	if (len > b->max - b->total)
		return DS_ERR_CORRUPT;
	b->total += len;
	return 0;
}

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint64_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Flipped, overwritten, cut and spliced streams: an error or bounded output, never a crash. */
static void
test_mutations(void)
{
	size_t blen, tlen, elen, xlen;
	uint8_t *b, *t, *e = NULL, *x;
	int bad = 0, rejected = 0;
	struct bounded out;

	if (make_zip("mixed", "a.jar", NULL) != 0 || make_zip("mixed-changed", "b.jar", NULL) != 0) {
		CHECK(0, "python3 makes the zips");
		return;
	}
	b = slurp("a.jar", &blen);
	t = slurp("b.jar", &tlen);
	CHECK(zipdelta_encode(b, blen, t, tlen, 3, &e, &elen, NULL) == 0, "encodes");
	if (e == NULL)
		goto out;
	out.total = 0;
	out.max = tlen;
	CHECK(zipdelta_decode(b, blen, e, elen, out.max, bounded_emit, &out) == 0 && out.total == tlen,
	    "the unmutated stream decodes to %zu bytes", tlen);
	x = malloc(elen + 64);
	for (int i = 0; i < 2000; i++) {
		int r;

		memcpy(x, e, elen);
		xlen = elen;
		switch (i % 4) {
		case 0:
			x[rng() % elen] ^= (uint8_t)(1u << (rng() % 8));
			break;
		case 1:
			for (int k = 0; k < 4; k++)
				x[rng() % elen] = (uint8_t)rng();
			break;
		case 2:
			xlen = rng() % elen;
			break;
		case 3:
			/* The recipe and header live near the start: hit them harder. */
			x[5 + rng() % (elen < 64 ? elen - 5 : 59)] = (uint8_t)rng();
			break;
		}
		out.total = 0;
		out.max = tlen;
		r = zipdelta_decode(b, blen, x, xlen, out.max, bounded_emit, &out);
		if (out.total > out.max)
			bad++;
		if (r != 0)
			rejected++;
	}
	CHECK(bad == 0, "2000 mutations: no output past the limit (%d rejected)", rejected);
	/* A wrong basis: an error, never more than the declared size. */
	out.total = 0;
	out.max = tlen;
	(void)zipdelta_decode(t, tlen, e, elen, out.max, bounded_emit, &out);
	CHECK(out.total <= tlen, "a wrong basis stays within the limit");
	free(x);
out:
	free(b);
	free(t);
	free(e);
}

/* Write LEN bytes of DATA to PATH; 0 on success. */
static int
spill(const char *path, const uint8_t *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	int r = -1;

	if (fp != NULL) {
		r = fwrite(data, 1, len, fp) == len ? 0 : -1;
		if (fclose(fp) != 0)
			r = -1;
	}
	return r;
}

/*
 * Entries whose compressed bytes the basis has are copied, not patched; a
 * stream without copies still decodes under the older "DZP1" header; a copy
 * table that leaves the basis is rejected; a wrong basis never gives the
 * target's bytes.
 */
static void
test_copies(void)
{
	struct zipdelta_stats st;
	uint64_t plen = 0;
	size_t elen;
	uint8_t *e;

	if (make_zip("py", "a.jar", "6") != 0 || make_zip("changed", "b.jar", "6") != 0 ||
	    make_zip("py", "a1.jar", "1") != 0 || make_zip("changed", "b9.jar", "9") != 0) {
		CHECK(0, "python3 makes the zips");
		return;
	}
	stats_of("a.jar", "b.jar", &st);
	CHECK(st.deflated == 150 && st.copied == 148 && st.reproduced == 150,
	    "148 unchanged entries copied, 2 re-deflated (copied %llu, reproduced %llu)",
	    (unsigned long long)st.copied, (unsigned long long)st.reproduced);
	CHECK(encode(DELTA_ZIP_PATCH, "a.jar", "b.jar", "p.bin", &plen) == 0 &&
	    decode_matches("a.jar", "p.bin", "b.jar") == 0, "copied entries decode exactly");
	CHECK(decode_matches("a1.jar", "p.bin", "b.jar") != 0,
	    "against another basis with the same entries the bytes are not the target's");

	/* A copy run whose basis start is before the first entry. */
	e = slurp("p.bin", &elen);
	if (e != NULL && elen > 8 && memcmp(e, "DZP2", 4) == 0 && e[5] > 0 && e[5] < 0x80 &&
	    e[6] < 0x80) {
		e[7] = 0x7f;
		CHECK(spill("bad.bin", e, elen) == 0 && decode_matches("a.jar", "bad.bin", "b.jar") != 0,
		    "a copy table that leaves the basis is rejected");
	} else
		CHECK(0, "the stream starts with a copy table of %u runs", e != NULL ? e[5] : 0);
	free(e);

	/* Level 1 against level 9: no compressed bytes in common, nothing copied. */
	stats_of("a1.jar", "b9.jar", &st);
	CHECK(st.copied == 0 && st.reproduced == 150, "different levels: nothing copied (%llu)",
	    (unsigned long long)st.copied);
	CHECK(encode(DELTA_ZIP_PATCH, "a1.jar", "b9.jar", "n.bin", &plen) == 0,
	    "different levels: encodes");
	e = slurp("n.bin", &elen);
	if (e != NULL && elen > 6 && memcmp(e, "DZP2", 4) == 0 && e[5] == 0) {
		/* "DZP1", the parameters byte, then the zstd frame without the empty table. */
		memcpy(e, "DZP1", 4);
		memmove(e + 5, e + 6, elen - 6);
		CHECK(spill("v1.bin", e, elen - 1) == 0 &&
		    decode_matches("a1.jar", "v1.bin", "b9.jar") == 0,
		    "a DZP1 stream (no copy table) decodes exactly");
	} else
		CHECK(0, "the stream has an empty copy table");
	free(e);
}

/*
 * A war holding jars: the changed jar travels as the view of its own
 * entries, so two changed classes cost about what they cost in the jar
 * alone; the unchanged jar is copied; the war rebuilds exactly, and mutated
 * streams stay within bounds.
 */
static void
test_nested(void)
{
	struct zipdelta_stats st;
	struct bounded out;
	uint64_t wlen = 0, jlen = 0, zlen = 0;
	size_t blen, tlen, elen;
	uint8_t *b = NULL, *t = NULL, *e = NULL, *x = NULL;
	int bad = 0;

	if (make_zip("war", "a.war", "") != 0 || make_zip("war", "b.war", "changed") != 0 ||
	    make_zip("py", "a.jar", "6") != 0 || make_zip("changed", "b.jar", "6") != 0) {
		CHECK(0, "python3 makes the wars");
		return;
	}
	stats_of("a.war", "b.war", &st);
	CHECK(st.deflated == 3 && st.nested == 1 && st.copied == 2,
	    "the changed jar is nested, the rest copied (nested %llu, copied %llu)",
	    (unsigned long long)st.nested, (unsigned long long)st.copied);
	CHECK(encode(DELTA_ZIP_PATCH, "a.war", "b.war", "w.bin", &wlen) == 0 &&
	    decode_matches("a.war", "w.bin", "b.war") == 0, "the war rebuilds exactly");
	CHECK(encode(DELTA_ZIP_PATCH, "a.jar", "b.jar", "j.bin", &jlen) == 0 &&
	    encode(DELTA_ZSTD_PATCH, "a.war", "b.war", "z.bin", &zlen) == 0 &&
	    wlen < 2 * jlen + 1024 && wlen * 4 < zlen,
	    "two changed classes in a jar in a war: %llu bytes (the jar alone %llu, a zstd "
	    "patch %llu)", (unsigned long long)wlen, (unsigned long long)jlen,
	    (unsigned long long)zlen);
	b = slurp("a.war", &blen);
	t = slurp("b.war", &tlen);
	e = slurp("w.bin", &elen);
	if (b == NULL || t == NULL || e == NULL || elen < 16)
		goto out;
	x = malloc(elen);
	for (int i = 0; i < 600 && x != NULL; i++) {
		memcpy(x, e, elen);
		x[rng() % elen] ^= (uint8_t)(1u << (rng() % 8));
		if (i % 3 == 0)
			x[5 + rng() % (elen - 5)] = (uint8_t)rng();
		out.total = 0;
		out.max = tlen;
		(void)zipdelta_decode(b, blen, x, elen, out.max, bounded_emit, &out);
		if (out.total > out.max)
			bad++;
	}
	CHECK(bad == 0, "600 mutations of the war's stream: no output past the limit");
out:
	free(b);
	free(t);
	free(e);
	free(x);
}

/*
 * A war-sized view (about 18 MB): decode re-deflates it in shares on helper
 * threads (one per core, up to 4) and emits them in order; the bytes must be
 * the target's exactly, and a corrupt share must fail the whole decode.
 */
static void
test_big(void)
{
	uint64_t plen;
	size_t elen;
	uint8_t *e;
	FILE *fp;

	if (!tap_full("big: an 18 MB view re-deflated in shares"))
		return;
	if (make_zip("big", "big-a.jar", "") != 0 || make_zip("big", "big-b.jar", "changed") != 0) {
		CHECK(0, "python3 makes the big zips");
		return;
	}
	CHECK(encode(DELTA_ZIP_PATCH, "big-a.jar", "big-b.jar", "big.bin", &plen) == 0,
	    "big: zippatch encodes (%llu bytes for %llu)", (unsigned long long)plen,
	    (unsigned long long)size_of("big-b.jar"));
	CHECK(decode_matches("big-a.jar", "big.bin", "big-b.jar") == 0,
	    "big: decodes to the exact zip (%ld cores)", sysconf(_SC_NPROCESSORS_ONLN));
	/* A wrong byte in the last share's deflate parameters or bytes. */
	e = slurp("big.bin", &elen);
	if (elen > 64) {
		e[elen - 40] ^= 0x55;
		fp = fopen("big-bad.bin", "wb");
		if (fp != NULL) {
			fwrite(e, 1, elen, fp);
			fclose(fp);
		}
		CHECK(decode_matches("big-a.jar", "big-bad.bin", "big-b.jar") != 0,
		    "big: a corrupt stream does not decode to the zip");
	}
	free(e);
}

/* Little-endian writers and a varint, for streams made by hand below. */
static void
put_le(uint8_t **p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		*(*p)++ = (uint8_t)(v >> (8 * i));
}

static void
put_varint(uint8_t **p, uint64_t v)
{
	do {
		*(*p)++ = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
		v >>= 7;
	} while (v != 0);
}

/*
 * A zip of one DEFLATE entry whose compressed bytes are about LEN random
 * bytes (level 0: stored blocks inside DEFLATE); *zlen its size. Caller frees.
 */
static uint8_t *
one_entry_zip(size_t len, size_t *zlen)
{
	uint8_t *plain = malloc(len), *zip = malloc(len + len / 100 + 1024), *p;
	z_stream zs;
	size_t clen;

	for (size_t i = 0; i < len; i++)
		plain[i] = (uint8_t)rng();
	memset(&zs, 0, sizeof(zs));
	p = zip + 30 + 1;
	if (deflateInit2(&zs, 0, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	zs.next_in = plain;
	zs.avail_in = (uInt)len;
	zs.next_out = p;
	zs.avail_out = (uInt)(len + len / 100 + 512);
	if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
		abort();
	clen = zs.total_out;
	deflateEnd(&zs);
	p = zip;
	put_le(&p, 0x04034b50, 4);
	put_le(&p, 20, 2), put_le(&p, 0, 2), put_le(&p, 8, 2), put_le(&p, 0, 4);
	put_le(&p, crc32(0, plain, (uInt)len), 4);
	put_le(&p, clen, 4), put_le(&p, len, 4), put_le(&p, 1, 2), put_le(&p, 0, 2);
	*p++ = 'a';
	p += clen;
	put_le(&p, 0x02014b50, 4);
	put_le(&p, 20, 2), put_le(&p, 20, 2), put_le(&p, 0, 2), put_le(&p, 8, 2);
	put_le(&p, 0, 4), put_le(&p, crc32(0, plain, (uInt)len), 4);
	put_le(&p, clen, 4), put_le(&p, len, 4), put_le(&p, 1, 2);
	put_le(&p, 0, 2), put_le(&p, 0, 2), put_le(&p, 0, 2), put_le(&p, 0, 2);
	put_le(&p, 0, 4), put_le(&p, 0, 4);
	*p++ = 'a';
	put_le(&p, 0x06054b50, 4);
	put_le(&p, 0, 2), put_le(&p, 0, 2), put_le(&p, 1, 2), put_le(&p, 1, 2);
	put_le(&p, 47, 4), put_le(&p, 30 + 1 + clen, 4), put_le(&p, 0, 2);
	*zlen = (size_t)(p - zip);
	free(plain);
	return zip;
}

/* What the child of a memory test decodes: a basis file, a stream file, the declared size. */
struct hostile {
	const char	*basis, *stream;
	uint64_t	 declared;
};

static int
hostile_decode(void *arg)
{
	const struct hostile *h = arg;
	int bfd = open(h->basis, O_RDONLY), ifd = open(h->stream, O_RDONLY);
	int ofd = open("hostile.out", O_RDWR | O_CREAT | O_TRUNC, 0644), r = DS_ERR_SYSTEM;
	uint64_t len;

	if (bfd >= 0 && ifd >= 0 && ofd >= 0)
		r = delta_decode(DELTA_ZIP_PATCH, bfd, ifd, ofd, h->declared, &len, NULL);
	return r;
}

/*
 * The audit's stream: a copy table whose runs step back (odd zigzag basis
 * start) so the one 64 KiB basis entry is copied 16384 times, all of them
 * after 8 MiB of view so a helper thread rebuilds them into a buffer of its
 * own. It used to grow that buffer to 1 GiB for a 16 MiB target; now the
 * table is refused (runs must go forward) and the decode stays within
 * the declared size plus 64 MiB.
 */
static void
test_copy_table_bomb(void)
{
	const size_t copies = 16384, gap = 8u << 20;
	size_t zlen, vlen, flen, slen;
	uint8_t *zip = one_entry_zip(64 * 1024, &zlen), *view, *frame, *stream, *p;
	struct hostile h = { "basis.jar", "bomb.bin", 16u << 20 };
	long growth = -1;
	int r = 0;

	view = calloc(1, gap + copies * 3 + 16);
	p = view;
	put_varint(&p, copies);
	put_varint(&p, gap), *p++ = 0, *p++ = 0;	/* first copy after the gap */
	for (size_t k = 1; k < copies; k++)
		*p++ = 0, *p++ = 0, *p++ = 0;
	vlen = (size_t)(p - view) + gap;		/* the gap's bytes: zeros */
	frame = malloc(ZSTD_compressBound(vlen));
	flen = ZSTD_compress(frame, ZSTD_compressBound(vlen), view, vlen, 1);
	stream = malloc(16 + copies * 3 + flen);
	p = stream;
	memcpy(p, "DZP2", 4), p += 4;
	*p++ = 0;
	put_varint(&p, copies);
	put_varint(&p, 0), put_varint(&p, 0), put_varint(&p, 1);
	for (size_t k = 1; k < copies; k++)
		put_varint(&p, 0), put_varint(&p, 1), put_varint(&p, 1);	/* back one, copy one */
	memcpy(p, frame, flen), p += flen;
	slen = (size_t)(p - stream);
	CHECK(!ZSTD_isError(flen) && spill("basis.jar", zip, zlen) == 0 &&
	    spill("bomb.bin", stream, slen) == 0, "a %zu-byte stream copying one entry %zu times",
	    slen, copies);
	CHECK(rss_run(hostile_decode, &h, &growth, &r) == 0, "the decode ran in a child");
	CHECK(r == DS_ERR_CORRUPT, "it is refused as corrupt (%d)", r);
	CHECK(growth >= 0 && (uint64_t)growth <= (h.declared >> 20) + 64,
	    "peak RSS grew by %ld MiB, at most the declared %llu MiB + 64 MiB", growth,
	    (unsigned long long)(h.declared >> 20));
	free(zip);
	free(view);
	free(frame);
	free(stream);
}

/*
 * A target whose unchanged entries come in another order than the basis's:
 * only copies going forward in the basis are kept (the decoder refuses a
 * table that steps back), the others travel in the views; it round-trips.
 */
static void
test_copies_reordered(void)
{
	static const char reorder_py[] =
	"import sys, zipfile\n"
	"src, out = sys.argv[1], sys.argv[2]\n"
	"with zipfile.ZipFile(src) as a, zipfile.ZipFile(out, 'w') as b:\n"
	"    infos = a.infolist()\n"
	"    infos = infos[100:] + infos[:100]\n"
	"    for i in infos:\n"
	"        b.writestr(i, a.read(i.filename), i.compress_type, 6)\n";
	char *argv[] = { "python3", "-c", (char *)reorder_py, "a.jar", "r.jar", NULL };
	struct zipdelta_stats st;
	uint64_t plen = 0;

	if (make_zip("py", "a.jar", "6") != 0 || run(argv) != 0) {
		CHECK(0, "python3 makes the zips");
		return;
	}
	stats_of("a.jar", "r.jar", &st);
	CHECK(st.deflated == 150 && st.copied == 99,
	    "a rotated zip: the longest forward run is copied (%llu of 150)",
	    (unsigned long long)st.copied);
	CHECK(encode(DELTA_ZIP_PATCH, "a.jar", "r.jar", "p.bin", &plen) == 0 &&
	    decode_matches("a.jar", "p.bin", "r.jar") == 0, "it decodes exactly (%llu bytes)",
	    (unsigned long long)plen);
}

int
main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	/* Decoders log every rejected stream; the mutation pass makes thousands. */
	if (getenv("DS_TEST_VERBOSE") == NULL && freopen("/dev/null", "w", stderr) == NULL)
		return 1;
	tap_run("python-levels", test_python_levels);
	tap_run("mixed", test_mixed);
	tap_run("zip-cli", test_zip_cli);
	tap_run("refused", test_refused);
	tap_run("copies", test_copies);
	tap_run("mutations", test_mutations);
	tap_run("nested", test_nested);
	tap_run("big", test_big);
	tap_run("copy-table-bomb", test_copy_table_bomb);
	tap_run("copies-reordered", test_copies_reordered);
	return tap_done();
}
