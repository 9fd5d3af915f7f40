#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zstd.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/spawn.h"
#include "codec/delta.h"
#include "rss.h"
#include "tap.h"

static const enum delta_encoding all_encodings[] = {
	DELTA_RAW, DELTA_ZSTD, DELTA_ZSTD_PATCH, DELTA_RSYNC,
};
#define NENC	(sizeof(all_encodings) / sizeof(all_encodings[0]))

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void
fill_random(uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)rng();
}

/* Text-like, compressible content. */
static void
fill_text(uint8_t *p, size_t len, unsigned seed)
{
	static const char *words[] = { "openmrs ", "module ", "patient ", "encounter ",
	    "concept ", "obs ", "visit ", "location ", "\n", "form ", "html " };
	size_t i = 0;

	while (i < len) {
		const char *w = words[(seed = seed * 1103515245 + 12345) >> 16 & 7 ? (seed >> 8) % 11 : 8];
		for (size_t k = 0; w[k] != '\0' && i < len; k++)
			p[i++] = (uint8_t)w[k];
	}
}

static int
file_hash(const char *path, uint8_t out[HASH_LEN], uint64_t *size)
{
	int fd = open(path, O_RDONLY), r;

	if (fd < 0)
		return -1;
	r = hash_fd(fd, out, size);
	close(fd);
	return r;
}

static uint64_t
size_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_size : UINT64_MAX;
}

static int
encode_files(enum delta_encoding enc, const char *basis, const char *target, int level,
    const char *out, uint64_t *len)
{
	int bfd = basis ? open(basis, O_RDONLY) : -1;
	int tfd = open(target, O_RDONLY);
	int ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int r = DS_ERR_SYSTEM;

	if ((basis == NULL || bfd >= 0) && tfd >= 0 && ofd >= 0)
		r = delta_encode(enc, bfd, tfd, level, ofd, len);
	if (bfd >= 0)
		close(bfd);
	if (tfd >= 0)
		close(tfd);
	if (ofd >= 0 && close(ofd) != 0)
		r = DS_ERR_SYSTEM;
	return r;
}

static int
decode_files(enum delta_encoding enc, const char *basis, const char *in, const char *out,
    uint64_t max_out, uint64_t *len, uint8_t hash[HASH_LEN])
{
	int bfd = basis ? open(basis, O_RDONLY) : -1;
	int ifd = open(in, O_RDONLY);
	int ofd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0644);
	int r = DS_ERR_SYSTEM;

	if ((basis == NULL || bfd >= 0) && ifd >= 0 && ofd >= 0)
		r = delta_decode(enc, bfd, ifd, ofd, max_out, len, hash);
	if (bfd >= 0)
		close(bfd);
	if (ifd >= 0)
		close(ifd);
	if (ofd >= 0 && close(ofd) != 0)
		r = DS_ERR_SYSTEM;
	return r;
}

/* Feeds in in pieces of chunk bytes through the streaming decoder. */
static int
decode_chunked(enum delta_encoding enc, const char *basis, const uint8_t *in, size_t in_len,
    size_t chunk, uint64_t max_out, uint8_t hash[HASH_LEN], uint64_t *len)
{
	struct delta_decoder *d = NULL;
	int bfd = basis ? open(basis, O_RDONLY) : -1;
	int ofd = open("chunked.out", O_RDWR | O_CREAT | O_TRUNC, 0644);
	int r;

	if ((r = delta_decoder_new(enc, bfd, ofd, max_out, &d)) != 0)
		goto out;
	for (size_t off = 0; off < in_len; off += chunk) {
		size_t n = in_len - off < chunk ? in_len - off : chunk;
		if ((r = delta_decoder_feed(d, in + off, n)) != 0)
			goto out;
	}
	r = delta_decoder_finish(d, len, hash);
out:
	delta_decoder_free(d);
	if (bfd >= 0)
		close(bfd);
	close(ofd);
	return r;
}

static uint8_t *
slurp(const char *path, size_t *len)
{
	uint64_t size = size_of(path);
	uint8_t *p;
	FILE *fp;

	if (size == UINT64_MAX || (fp = fopen(path, "rb")) == NULL)
		return NULL;
	p = malloc(size + 1);
	*len = fread(p, 1, size, fp);
	fclose(fp);
	return p;
}

/* Encodes target against basis with enc, decodes it back and compares digests. */
static int
round_trip(enum delta_encoding enc, const char *basis, const char *target, int level,
    uint64_t *enc_len)
{
	uint8_t want[HASH_LEN], got[HASH_LEN], disk[HASH_LEN];
	uint64_t size, got_len = 0, disk_len;

	if (file_hash(target, want, &size) != 0)
		return -1;
	if (encode_files(enc, basis, target, level, "enc.bin", enc_len) != 0)
		return -2;
	if (*enc_len != size_of("enc.bin"))
		return -3;
	if (decode_files(enc, basis, "enc.bin", "dec.bin", size, &got_len, got) != 0)
		return -4;
	if (got_len != size || memcmp(got, want, HASH_LEN) != 0)
		return -5;
	if (file_hash("dec.bin", disk, &disk_len) != 0 || disk_len != size ||
	    memcmp(disk, want, HASH_LEN) != 0)
		return -6;
	return 0;
}

static void
test_names(void)
{
	CHECK(strcmp(delta_encoding_name(DELTA_ZSTD_PATCH), "zpatch") == 0, "name of zstd-patch");
	CHECK(delta_encoding_name(5) == NULL && delta_encoding_name(-1) == NULL, "unknown names");
	CHECK(delta_encoding_valid(4) && !delta_encoding_valid(5) && !delta_encoding_valid(255),
	    "valid encodings");
	CHECK(delta_encoding_needs_basis(DELTA_RSYNC) && !delta_encoding_needs_basis(DELTA_ZSTD),
	    "basis needs");
	CHECK(delta_choose(DELTA_ZSTD, 1000 + DELTA_RAW_SLACK + 1, 1000) == DELTA_RAW,
	    "grown encoding falls back to raw");
	CHECK(delta_choose(DELTA_ZSTD_PATCH, 10, 1000) == DELTA_ZSTD_PATCH, "small patch kept");
	CHECK(delta_choose(DELTA_ZSTD, 1000, 1000) == DELTA_ZSTD, "equal within slack kept");
}

/* Every encoding over a table of basis/target pairs, files and chunked streams. */
static void
test_round_trips(void)
{
	static const struct {
		const char *name;
		size_t basis_len, target_len;	/* SIZE_MAX basis: none */
		int kind;	/* 0 text, 1 random, 2 text with edits of the basis */
	} table[] = {
		{ "empty to empty", 0, 0, 0 },
		{ "no basis to N", SIZE_MAX, 100000, 0 },
		{ "0 to N", 0, 300000, 2 },
		{ "N to 0", 300000, 0, 2 },
		{ "one byte", 1, 1, 1 },
		{ "random", 200000, 200000, 1 },
		{ "text edited", 1000000, 1000500, 2 },
		{ "grow", 1000, 3000000, 2 },
	};
	uint8_t *b = malloc(4000000), *t = malloc(4000000);

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		const char *basis = table[i].basis_len == SIZE_MAX ? NULL : "basis";
		size_t tl = table[i].target_len;

		if (table[i].kind == 1) {
			fill_random(b, table[i].basis_len == SIZE_MAX ? 0 : table[i].basis_len);
			fill_random(t, tl);
		} else {
			fill_text(b, table[i].basis_len == SIZE_MAX ? 0 : table[i].basis_len, 7);
			fill_text(t, tl, table[i].kind == 2 ? 7 : 99);
			for (size_t k = 0; table[i].kind == 2 && k + 5000 < tl; k += 50000)
				fill_random(t + k, 16);
		}
		if (basis != NULL)
			tap_write_file("basis", b, table[i].basis_len);
		tap_write_file("target", t, tl);
		for (size_t e = 0; e < NENC; e++) {
			uint64_t len = 0, got_len = 0;
			uint8_t want[HASH_LEN], got[HASH_LEN];
			size_t enc_len = 0;
			uint8_t *enc;
			int r = round_trip(all_encodings[e], basis, "target", 3, &len);

			CHECK(r == 0, "%s: %s round trip (%llu -> %llu bytes, r=%d)", table[i].name,
			    delta_encoding_name(all_encodings[e]), (unsigned long long)tl,
			    (unsigned long long)len, r);
			hash_bytes(t, tl, want);
			enc = slurp("enc.bin", &enc_len);
			r = decode_chunked(all_encodings[e], basis, enc, enc_len, 1 + i * 333,
			    tl, got, &got_len);
			CHECK(r == 0 && got_len == tl && memcmp(got, want, HASH_LEN) == 0,
			    "%s: %s streamed in pieces of %zu", table[i].name,
			    delta_encoding_name(all_encodings[e]), 1 + i * 333);
			if (tl > 0) {
				r = decode_chunked(all_encodings[e], basis, enc, enc_len, 4096,
				    tl - 1, got, &got_len);
				CHECK(r == DS_ERR_CORRUPT, "%s: %s refuses output over max_out",
				    table[i].name, delta_encoding_name(all_encodings[e]));
			}
			free(enc);
		}
	}
	free(b);
	free(t);
}

/* Identical content (also a rename: same bytes under a new name) costs almost nothing. */
static void
test_identical(void)
{
	size_t len = 3 * 1024 * 1024;
	uint8_t *p = malloc(len);
	uint64_t enc_len;

	fill_random(p, len);
	tap_write_file("old-name-1.0.jar", p, len);
	tap_write_file("new-name-1.1.jar", p, len);
	CHECK(round_trip(DELTA_ZSTD_PATCH, "old-name-1.0.jar", "new-name-1.1.jar", 9,
	    &enc_len) == 0 && enc_len < 1024, "zstd-patch of identical 3 MiB: %llu bytes",
	    (unsigned long long)enc_len);
	CHECK(round_trip(DELTA_RSYNC, "old-name-1.0.jar", "new-name-1.1.jar", 9,
	    &enc_len) == 0 && enc_len < 200, "rsync of identical 3 MiB: %llu bytes",
	    (unsigned long long)enc_len);
	CHECK(round_trip(DELTA_ZSTD, NULL, "new-name-1.1.jar", 9, &enc_len) == 0 &&
	    delta_choose(DELTA_ZSTD, enc_len, len) == DELTA_RAW,
	    "random data: zstd (%llu bytes) is not chosen over raw", (unsigned long long)enc_len);
	free(p);
}

/* A signature from the receiver, a delta from the sender, and hostile signatures. */
static void
test_signature(void)
{
	size_t len = 2 * 1024 * 1024;
	uint8_t *b = malloc(len), *t = malloc(len);
	uint8_t want[HASH_LEN], got[HASH_LEN];
	uint64_t sig_len = 0, d_len = 0, got_len = 0, size;
	int bfd, tfd, sfd, ofd, r;

	fill_text(b, len, 3);
	memcpy(t, b, len);
	fill_random(t + len / 2, 1000);
	tap_write_file("basis", b, len);
	tap_write_file("target", t, len);
	bfd = open("basis", O_RDONLY);
	sfd = open("sig", O_RDWR | O_CREAT | O_TRUNC, 0644);
	r = delta_signature(bfd, sfd, &sig_len);
	CHECK(r == 0 && sig_len == size_of("sig") && sig_len > 12 && sig_len < len / 50,
	    "signature of 2 MiB: %llu bytes", (unsigned long long)sig_len);
	lseek(sfd, 0, SEEK_SET);
	tfd = open("target", O_RDONLY);
	ofd = open("enc.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
	r = delta_rsync_encode(sfd, tfd, 9, ofd, &d_len);
	CHECK(r == 0 && d_len < 5000, "rsync delta against the signature: %llu bytes",
	    (unsigned long long)d_len);
	close(ofd);
	file_hash("target", want, &size);
	r = decode_files(DELTA_RSYNC, "basis", "enc.bin", "dec.bin", len, &got_len, got);
	CHECK(r == 0 && got_len == len && memcmp(got, want, HASH_LEN) == 0, "rsync delta applies");

	/* Hostile signatures: garbage, truncated, empty. */
	static const struct { const char *name; size_t keep; int garbage; } bad[] = {
		{ "garbage", 4096, 1 }, { "empty", 0, 0 }, { "header only", 6, 0 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t junk[4096];
		int fd;

		if (bad[i].garbage)
			fill_random(junk, sizeof(junk));
		else if (pread(sfd, junk, bad[i].keep, 0) != (ssize_t)bad[i].keep)
			memset(junk, 0, sizeof(junk));
		tap_write_file("badsig", junk, bad[i].keep);
		fd = open("badsig", O_RDONLY);
		ofd = open("enc2.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
		r = delta_rsync_encode(fd, tfd, 3, ofd, &d_len);
		CHECK(r == DS_ERR_INVALID, "%s signature rejected (r=%d)", bad[i].name, r);
		close(fd);
		close(ofd);
	}
	/* A truncated signature is still a signature of fewer blocks: the delta must work. */
	{
		uint8_t *sig = malloc(sig_len);
		int fd;

		CHECK(pread(sfd, sig, sig_len, 0) == (ssize_t)sig_len, "read signature");
		tap_write_file("shortsig", sig, sig_len / 2);
		fd = open("shortsig", O_RDONLY);
		ofd = open("enc3.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
		r = delta_rsync_encode(fd, tfd, 3, ofd, &d_len);
		close(fd);
		close(ofd);
		if (r == 0) {
			r = decode_files(DELTA_RSYNC, "basis", "enc3.bin", "dec.bin", len,
			    &got_len, got);
			CHECK(r == 0 && memcmp(got, want, HASH_LEN) == 0,
			    "delta from half a signature applies");
		} else
			CHECK(r == DS_ERR_INVALID, "half a signature rejected");
		free(sig);
	}
	close(bfd);
	close(tfd);
	close(sfd);
	free(b);
	free(t);
}

/* A patch decoded against another basis is an error or a digest mismatch, never silent. */
static void
test_basis_mismatch(void)
{
	size_t len = 500000;
	uint8_t *b = malloc(len), *t = malloc(len);
	uint8_t want[HASH_LEN], got[HASH_LEN];
	uint64_t enc_len, got_len, size;
	static const struct { const char *name; size_t len; } other[] = {
		{ "same size", 500000 }, { "shorter", 1000 }, { "empty", 0 }, { "longer", 900000 },
	};
	uint8_t *o = malloc(900000);

	fill_text(b, len, 11);
	memcpy(t, b, len);
	fill_random(t + 1000, 100);
	tap_write_file("basis", b, len);
	tap_write_file("target", t, len);
	file_hash("target", want, &size);
	for (size_t e = 2; e < NENC; e++) {
		enum delta_encoding enc = all_encodings[e];

		CHECK(encode_files(enc, "basis", "target", 3, "enc.bin", &enc_len) == 0,
		    "%s encode", delta_encoding_name(enc));
		for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
			int r;

			fill_text(o, other[i].len, 12);
			if (other[i].len > 0)
				memcpy(o, b, other[i].len < 20000 ? other[i].len / 2 : 20000);
			tap_write_file("other", o, other[i].len);
			r = decode_files(enc, "other", "enc.bin", "dec.bin", len, &got_len, got);
			CHECK(r != 0 || memcmp(got, want, HASH_LEN) != 0,
			    "%s against a wrong basis (%s): %s", delta_encoding_name(enc),
			    other[i].name, r != 0 ? ds_strerror(r) : "digest mismatch");
			if (enc == DELTA_ZSTD_PATCH)
				CHECK(r == DS_ERR_CORRUPT, "zstd-patch detects the wrong basis itself");
		}
	}
	free(b);
	free(t);
	free(o);
}

/* Flipped bytes, truncations and trailing bytes: errors, never overlong output. */
static void
test_corrupt(void)
{
	size_t len = 200000;
	uint8_t *b = malloc(len), *t = malloc(len);
	uint8_t want[HASH_LEN];

	fill_text(b, len, 21);
	memcpy(t, b, len);
	fill_random(t + 5000, 3000);
	fill_text(t + 100000, 2000, 5);
	tap_write_file("basis", b, len);
	tap_write_file("target", t, len);
	hash_bytes(t, len, want);
	for (size_t e = 1; e < NENC; e++) {
		enum delta_encoding enc = all_encodings[e];
		uint8_t *enc_data, got[HASH_LEN];
		size_t enc_len = 0, detected = 0, wrong = 0, tried = 0, over = 0;
		uint64_t elen, got_len;

		encode_files(enc, "basis", "target", 3, "enc.bin", &elen);
		enc_data = slurp("enc.bin", &enc_len);
		for (size_t pos = 0; pos < enc_len; pos += 1 + enc_len / 400) {
			for (int kind = 0; kind < 3; kind++) {
				size_t n = enc_len;
				int r;

				uint8_t saved = enc_data[pos];
				if (kind == 0)
					enc_data[pos] ^= (uint8_t)(1u << (pos % 8));
				else if (kind == 1)
					enc_data[pos] = (uint8_t)rng();
				else
					n = pos;
				if (kind == 1 && enc_data[pos] == saved)
					continue;
				tried++;
				r = decode_chunked(enc, "basis", enc_data, n, 8192, len, got, &got_len);
				if (r != 0)
					detected++;
				else if (memcmp(got, want, HASH_LEN) != 0)
					wrong++;
				if (size_of("chunked.out") > len)
					over++;
				enc_data[pos] = saved;
			}
		}
		CHECK(over == 0, "%s: no corrupted stream wrote more than max_out (%zu tried)",
		    delta_encoding_name(enc), tried);
		if (enc == DELTA_RSYNC)
			CHECK(detected + wrong > 0, "rsync: %zu of %zu corruptions decoded with an "
			    "error, %zu left to the digest check", detected, tried, wrong);
		else
			CHECK(wrong == 0, "%s: %zu of %zu corruptions detected by the decoder, "
			    "%zu undetected", delta_encoding_name(enc), detected, tried, wrong);
		/* Trailing bytes after a valid stream. */
		{
			uint8_t *longer = malloc(enc_len + 8);
			int r;

			memcpy(longer, enc_data, enc_len);
			memset(longer + enc_len, 0x28, 8);
			r = decode_chunked(enc, "basis", longer, enc_len + 8, 100, len, got, &got_len);
			CHECK(r == DS_ERR_CORRUPT, "%s: trailing bytes rejected",
			    delta_encoding_name(enc));
			free(longer);
		}
		free(enc_data);
	}
	free(b);
	free(t);
}

static int
run_argv(char *const argv[])
{
	struct spawn_opts opts = { .timeout_ms = 60000 };
	struct spawn_result res;
	int r = spawn_run(argv, &opts, &res);

	if (r != 0)
		printf("# %s: %s\n", argv[0], res.output);
	spawn_result_release(&res);
	return r;
}

static void
skip(const char *why)
{
	const char *ci = getenv("CI");

	if (ci != NULL && strcmp(ci, "true") == 0) {
		CHECK(0, "cannot run under CI: %s", why);
		return;
	}
	tap_count++;
	printf("ok %d # SKIP %s\n", tap_count, why);
}

/* Two jars whose entries differ only in their timestamps: the patch is tiny. */
static void
test_jar_timestamps(void)
{
	static const char script[] =
	    "import sys, zipfile, random\n"
	    "rnd = random.Random(5)\n"
	    "words = ['openmrs', 'module', 'concept', 'patient', 'class', 'void', 'return']\n"
	    "for out, year in (('a.jar', 2021), ('b.jar', 2024)):\n"
	    "    rnd.seed(5)\n"
	    "    with zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as z:\n"
	    "        for i in range(300):\n"
	    "            info = zipfile.ZipInfo('org/openmrs/m/C%d.class' % i, (year, 3, 4, 5, 6, 8))\n"
	    "            info.compress_type = zipfile.ZIP_DEFLATED\n"
	    "            body = ' '.join(rnd.choice(words) + str(rnd.randrange(1000)) for _ in range(800))\n"
	    "            z.writestr(info, body)\n";
	char *argv[] = { "python3", "-c", (char *)script, NULL };
	uint64_t enc_len, size;

	if (run_argv(argv) != 0) {
		skip("python3 is needed to build jars (apt-get install python3)");
		return;
	}
	size = size_of("b.jar");
	CHECK(round_trip(DELTA_ZSTD_PATCH, "a.jar", "b.jar", 9, &enc_len) == 0 &&
	    enc_len * 20 < size, "jar with new timestamps: zstd-patch %llu of %llu bytes",
	    (unsigned long long)enc_len, (unsigned long long)size);
	CHECK(round_trip(DELTA_RSYNC, "a.jar", "b.jar", 9, &enc_len) == 0 && enc_len < size,
	    "jar with new timestamps: rsync %llu of %llu bytes",
	    (unsigned long long)enc_len, (unsigned long long)size);
	CHECK(round_trip(DELTA_ZSTD, NULL, "b.jar", 9, &enc_len) == 0,
	    "jar alone: zstd %llu of %llu bytes", (unsigned long long)enc_len,
	    (unsigned long long)size);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
write_at(int fd, const void *p, size_t len, off_t off)
{
	return pwrite(fd, p, len, off) == (ssize_t)len ? 0 : -1;
}

/*
 * A sparse file over 2 GiB patched against itself with small changes (about
 * 30 s: only with DS_TEST_FULL=1; DS_TEST_BIG=all adds the rsync encoding).
 */
static void
test_big_sparse(void)
{
	const uint64_t size = (2ULL << 30) + (1 << 20);	/* past every 31-bit offset */
	const char *env = getenv("DS_TEST_BIG");
	uint8_t block[65536], want[HASH_LEN], got[HASH_LEN];
	uint64_t enc_len = 0, got_len = 0, n;
	int bfd, tfd;
	double t0;

	if (!tap_full("zstd-patch of a 2 GiB sparse file"))
		return;
	bfd = open("basis", O_RDWR | O_CREAT | O_TRUNC, 0644);
	tfd = open("target", O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(bfd >= 0 && tfd >= 0 && ftruncate(bfd, (off_t)size) == 0 &&
	    ftruncate(tfd, (off_t)size) == 0, "two sparse files of %llu bytes",
	    (unsigned long long)size);
	fill_random(block, sizeof(block));
	/* The same random blocks near both ends of each, and one change in each place. */
	CHECK(write_at(bfd, block, sizeof(block), 0) == 0 &&
	    write_at(bfd, block, sizeof(block), (off_t)(size - sizeof(block))) == 0 &&
	    write_at(tfd, block, sizeof(block), 0) == 0 &&
	    write_at(tfd, block, sizeof(block), (off_t)(size - sizeof(block))) == 0 &&
	    write_at(tfd, "changed", 7, 100) == 0 &&
	    write_at(tfd, "changed", 7, (off_t)(size - 1000)) == 0 &&
	    write_at(tfd, "middle", 6, (off_t)(size / 2 + 3)) == 0, "contents written");
	close(bfd);
	close(tfd);
	file_hash("target", want, &n);

	t0 = now();
	CHECK(encode_files(DELTA_ZSTD_PATCH, "basis", "target", 1, "enc.bin", &enc_len) == 0 &&
	    enc_len < 200000, "zstd-patch of 2 GiB: %llu bytes in %.1f s",
	    (unsigned long long)enc_len, now() - t0);
	t0 = now();
	CHECK(decode_files(DELTA_ZSTD_PATCH, "basis", "enc.bin", "dec.bin", size, &got_len,
	    got) == 0 && got_len == size && memcmp(got, want, HASH_LEN) == 0,
	    "zstd-patch of 2 GiB decodes in %.1f s", now() - t0);
	unlink("dec.bin");
	if (env == NULL || strcmp(env, "all") != 0) {
		printf("# rsync on 2 GiB (20 s more) runs with DS_TEST_BIG=all\n");
		return;
	}
	t0 = now();
	CHECK(encode_files(DELTA_RSYNC, "basis", "target", 1, "enc.bin", &enc_len) == 0 &&
	    enc_len < 200000, "rsync delta of 2 GiB: %llu bytes in %.1f s",
	    (unsigned long long)enc_len, now() - t0);
	t0 = now();
	CHECK(decode_files(DELTA_RSYNC, "basis", "enc.bin", "dec.bin", size, &got_len,
	    got) == 0 && got_len == size && memcmp(got, want, HASH_LEN) == 0,
	    "rsync delta of 2 GiB decodes in %.1f s", now() - t0);
	CHECK(size_of("dec.bin") == size, "decoded file has the full length");
}

/*
 * A zstd frame made by hand: window log WLOG, content size FCS, then
 * RLE blocks of zeros up to FCS (4 bytes per 128 KiB). Returns its length.
 */
static size_t
rle_frame(uint8_t *out, unsigned wlog, uint64_t fcs)
{
	uint8_t *p = out;

	memcpy(p, "\x28\xb5\x2f\xfd", 4), p += 4;
	*p++ = 0xc0;				/* 8-byte content size, no checksum */
	*p++ = (uint8_t)((wlog - 10) << 3);	/* window descriptor, mantissa 0 */
	for (int i = 0; i < 8; i++)
		*p++ = (uint8_t)(fcs >> (8 * i));
	while (fcs > 0) {
		uint32_t n = fcs < (128u << 10) ? (uint32_t)fcs : 128u << 10;
		uint32_t h = n << 3 | 1u << 1 | (fcs == n);

		*p++ = (uint8_t)h, *p++ = (uint8_t)(h >> 8), *p++ = (uint8_t)(h >> 16);
		*p++ = 0;
		fcs -= n;
	}
	return (size_t)(p - out);
}

/* What the child of a memory test decodes. */
struct hostile {
	enum delta_encoding enc;
	const char	*basis, *stream;
	uint64_t	 declared;
};

static int
hostile_decode(void *arg)
{
	const struct hostile *h = arg;
	uint64_t len;

	return decode_files(h->enc, h->basis, h->stream, "hostile.out", h->declared, &len, NULL);
}

/*
 * zstd-patch streams asking for more window than their sizes need: the
 * audit's 2 GiB window (a 48 KiB stream made the receiver touch its whole
 * declared 1.5 GiB) is refused before any allocation, as is a 1 GiB window
 * for a 4 MiB target; a window that fits basis and target still decodes.
 */
static void
test_window_bomb(void)
{
	const uint64_t big = (uint64_t)3 << 29;	/* 1.5 GiB */
	uint8_t *frame = malloc((big >> 17) * 4 + 64);
	uint8_t basis[1024] = { 0 };
	struct hostile h = { DELTA_ZSTD_PATCH, "basis", "bomb.zst", big };
	uint64_t len = 0;
	size_t n;
	long growth = -1;
	int r = 0;

	n = rle_frame(frame, 31, big);
	CHECK(tap_write_file("basis", basis, sizeof(basis)) == 0 &&
	    tap_write_file("bomb.zst", frame, n) == 0, "a %zu-byte zstd-patch with a 2 GiB window "
	    "declaring 1.5 GiB", n);
	CHECK(rss_run(hostile_decode, &h, &growth, &r) == 0, "the decode ran in a child");
	CHECK(r == DS_ERR_CORRUPT, "it is refused as corrupt (%d)", r);
	CHECK(growth >= 0 && growth <= 64, "peak RSS grew by %ld MiB, at most 64 MiB", growth);

	n = rle_frame(frame, 30, 4u << 20);
	CHECK(tap_write_file("wide.zst", frame, n) == 0 &&
	    decode_files(DELTA_ZSTD_PATCH, "basis", "wide.zst", "wide.out", 4u << 20, &len,
	    NULL) == DS_ERR_CORRUPT, "a 1 GiB window for a 4 MiB target is refused");
	n = rle_frame(frame, 23, 4u << 20);
	CHECK(tap_write_file("fits.zst", frame, n) == 0 &&
	    decode_files(DELTA_ZSTD_PATCH, "basis", "fits.zst", "fits.out", 4u << 20, &len,
	    NULL) == 0 && len == 4u << 20, "an 8 MiB window for basis and a 4 MiB target decodes");
	n = rle_frame(frame, 28, 4u << 20);
	CHECK(tap_write_file("plain.zst", frame, n) == 0 &&
	    decode_files(DELTA_ZSTD, NULL, "plain.zst", "plain.out", 4u << 20, &len,
	    NULL) == DS_ERR_CORRUPT, "a 256 MiB window for a whole-file 4 MiB zstd is refused");
	free(frame);
}

/*
 * An rsync delta (in its zstd frame) of one-byte copies, many more than the
 * declared size: refused once the output passes it, memory flat.
 */
static void
test_rsync_bomb(void)
{
	const size_t copies = 4u << 20;
	uint8_t *delta = malloc(4 + copies * 3 + 1), *z, *p = delta;
	uint8_t basis[1024];
	struct hostile h = { DELTA_RSYNC, "basis", "bomb.rs", 1u << 20 };
	size_t zlen;
	long growth = -1;
	int r = 0;

	memset(basis, 'b', sizeof(basis));
	memcpy(p, "\x72\x73\x02\x36", 4), p += 4;
	for (size_t k = 0; k < copies; k++)
		*p++ = 0x45, *p++ = 0, *p++ = 1;	/* COPY position 0, length 1 */
	*p++ = 0;					/* END */
	z = malloc(ZSTD_compressBound((size_t)(p - delta)));
	zlen = ZSTD_compress(z, ZSTD_compressBound((size_t)(p - delta)), delta,
	    (size_t)(p - delta), 3);
	CHECK(!ZSTD_isError(zlen) && tap_write_file("basis", basis, sizeof(basis)) == 0 &&
	    tap_write_file("bomb.rs", z, zlen) == 0,
	    "a %zu-byte rsync delta of %zu one-byte copies", zlen, copies);
	CHECK(rss_run(hostile_decode, &h, &growth, &r) == 0, "the decode ran in a child");
	CHECK(r == DS_ERR_CORRUPT, "it is refused as corrupt (%d)", r);
	CHECK(growth >= 0 && growth <= 64, "peak RSS grew by %ld MiB, at most 64 MiB", growth);
	free(delta);
	free(z);
}

/* A text of N lines like a manifest's, line K changed when K < N. */
static char *
lines_text(size_t n, size_t k, size_t *len)
{
	char *t = malloc(n * 160 + 1), *p = t;

	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "f 0644 %zu frontend/app-%zu/chunk-%zu.js %064zx\n", i * 7, i % 13, i,
		    i * 2654435761u + (i == k ? 1 : 0));
	*len = (size_t)(p - t);
	return t;
}

/*
 * delta_buf_encode / delta_buf_decode (a release's manifest against the
 * site's): round trip, a small change costs little, and a frame that
 * decodes to more than allowed, against another prefix, cut short or with
 * bytes after it is refused.
 */
static void
test_buf(void)
{
	size_t alen, blen, plen, dlen;
	char *a = lines_text(2000, 2000, &alen), *b = lines_text(2000, 777, &blen);
	uint8_t *packed = NULL, *out = NULL;

	CHECK(delta_buf_encode(a, alen, b, blen, 19, &packed, &plen) == 0, "encodes");
	CHECK(plen < 200, "one line of 2000 changed: %zu bytes for %zu", plen, blen);
	CHECK(delta_buf_decode(a, alen, packed, plen, blen, "t", &out, &dlen) == 0 &&
	    dlen == blen && memcmp(out, b, blen) == 0, "decodes to the text");
	free(out);
	out = NULL;
	CHECK(delta_buf_decode(a, alen, packed, plen, blen - 1, "t", &out, &dlen) ==
	    DS_ERR_CORRUPT && out == NULL, "refused when it decodes to more than allowed");
	{
		size_t clen;
		char *c = lines_text(1500, 3, &clen);

		CHECK(delta_buf_decode(c, clen, packed, plen, blen, "t", &out, &dlen) ==
		    DS_ERR_CORRUPT, "refused against another prefix (its checksum)");
		free(c);
	}
	CHECK(delta_buf_decode(a, alen, packed, plen - 1, blen, "t", &out, &dlen) ==
	    DS_ERR_CORRUPT, "refused cut short");
	packed = realloc(packed, plen + 1);
	packed[plen] = 0;
	CHECK(delta_buf_decode(a, alen, packed, plen + 1, blen, "t", &out, &dlen) ==
	    DS_ERR_CORRUPT, "refused with a byte after the frame");
	free(packed);
	packed = NULL;
	CHECK(delta_buf_encode(NULL, 0, b, blen, 19, &packed, &plen) == 0 && plen < blen &&
	    delta_buf_decode(NULL, 0, packed, plen, blen, "t", &out, &dlen) == 0 &&
	    dlen == blen && memcmp(out, b, blen) == 0, "no prefix: %zu bytes for %zu", plen,
	    blen);
	free(out);
	free(packed);
	free(a);
	free(b);
}

int
main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	tap_run("delta-buf", test_buf);
	/* Decoders log every rejected stream; the corruption tests make thousands. */
	if (getenv("DS_TEST_VERBOSE") == NULL && freopen("/dev/null", "w", stderr) == NULL)
		return 1;
	tap_run("delta-names", test_names);
	tap_run("delta-round-trips", test_round_trips);
	tap_run("delta-identical", test_identical);
	tap_run("delta-signature", test_signature);
	tap_run("delta-basis-mismatch", test_basis_mismatch);
	tap_run("delta-corrupt", test_corrupt);
	tap_run("delta-jar", test_jar_timestamps);
	tap_run("delta-big-sparse", test_big_sparse);
	tap_run("delta-window-bomb", test_window_bomb);
	tap_run("delta-rsync-bomb", test_rsync_bomb);
	return tap_done();
}
