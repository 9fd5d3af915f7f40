/*
 * Fuzz target for the delta decoders (untrusted bytes from the peer or a
 * bundle). Input: one byte choosing the encoding, one byte choosing the
 * chunk size the stream is fed in, then the stream. The decoder must not
 * crash, and must never write more than max_out. Encoding byte 0xff is
 * delta_buf_decode (COMMIT's packed manifest) against the same basis.
 *
 * Built with -DDS_LIBFUZZER it is a libFuzzer target (--enable-fuzzing);
 * otherwise main() runs a short deterministic mutation pass over valid
 * encodings of every kind and reports it as TAP, for make check.
 */
#include "autoconf.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "codec/delta.h"

#define BASIS_LEN	(64 * 1024)
#define MAX_OUT		(256 * 1024)

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz-main.h"

#define SEL_BUF		0xff	/* the first byte for delta_buf_decode */

static int basis_fd = -1, out_fd = -1;
static uint8_t *basis_mem;
static int overlong;

static void
fill_basis(uint8_t *p, size_t len)
{
	static const char *words[] = { "openmrs ", "module ", "concept ", "obs ", "\n" };
	uint32_t seed = 1;
	size_t i = 0;

	while (i < len) {
		const char *w = words[(seed = seed * 1103515245 + 12345) >> 16 & 3 ? (seed >> 8) % 5 : 4];

		for (size_t k = 0; w[k] != '\0' && i < len; k++)
			p[i++] = (uint8_t)w[k];
	}
}

static int
setup(void)
{
	uint8_t *b;

	if (basis_fd >= 0)
		return 0;
	log_set_level(LOG_LEVEL_ERROR);
	basis_fd = memfd_create("basis", 0);
	out_fd = memfd_create("out", 0);
	if (basis_fd < 0 || out_fd < 0)
		return -1;
	b = malloc(BASIS_LEN);
	fill_basis(b, BASIS_LEN);
	if (write(basis_fd, b, BASIS_LEN) != BASIS_LEN) {
		free(b);
		return -1;
	}
	basis_mem = b;		/* kept: delta_buf_decode's prefix */
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct delta_decoder *d = NULL;
	size_t chunk, off;
	struct stat st;
	int r;

	if (setup() != 0)
		abort();
	if (size < 2)
		return 0;
	if (data[0] == SEL_BUF) {
		uint8_t *o = NULL;
		size_t olen = 0;

		if (delta_buf_decode(basis_mem, BASIS_LEN, data + 2, size - 2, MAX_OUT, "fuzz", &o,
		    &olen) == 0 && olen > MAX_OUT) {
			overlong++;
#ifdef DS_LIBFUZZER
			abort();
#endif
		}
		free(o);
		return 0;
	}
	chunk = 1 + (size_t)data[1] * 97;
	if (ftruncate(out_fd, 0) != 0 || lseek(out_fd, 0, SEEK_SET) != 0)
		abort();
	r = delta_decoder_new((enum delta_encoding)(data[0] % DELTA_ENCODING_COUNT), basis_fd,
	    out_fd, MAX_OUT, &d);
	if (r != 0)
		abort();
	for (off = 2; off < size && r == 0; off += chunk)
		r = delta_decoder_feed(d, data + off, size - off < chunk ? size - off : chunk);
	if (r == 0)
		(void)delta_decoder_finish(d, NULL, NULL);
	delta_decoder_free(d);
	if (fstat(out_fd, &st) != 0)
		abort();
	if (st.st_size > MAX_OUT) {
		overlong++;
#ifdef DS_LIBFUZZER
		abort();
#endif
	}
	return 0;
}

#ifndef DS_LIBFUZZER
static uint64_t rng_state = 88172645463325252ULL;

static uint64_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* A valid stream of enc (with the two header bytes) in *out. */
static int
make_seed(enum delta_encoding enc, uint8_t **out, size_t *len)
{
	int tfd = memfd_create("target", 0), efd = memfd_create("enc", 0);
	uint8_t *t = malloc(BASIS_LEN + 4000);
	uint64_t elen = 0;
	int r = -1;

	fill_basis(t, BASIS_LEN + 4000);
	for (size_t i = 1000; i < BASIS_LEN; i += 9000)
		memcpy(t + i, "edited!", 7);
	if (tfd < 0 || efd < 0 || write(tfd, t, BASIS_LEN + 4000) != BASIS_LEN + 4000)
		goto out;
	if ((int)enc == DELTA_ENCODING_COUNT) {		/* SEL_BUF: a packed manifest */
		uint8_t *p = NULL;
		size_t plen = 0;

		if (delta_buf_encode(basis_mem, BASIS_LEN, t, BASIS_LEN + 4000, 3, &p, &plen) != 0)
			goto out;
		*out = malloc(plen + 2);
		(*out)[0] = SEL_BUF;
		(*out)[1] = 40;
		memcpy(*out + 2, p, plen);
		free(p);
		*len = plen + 2;
		r = 0;
		goto out;
	}
	if (delta_encode(enc, delta_encoding_needs_basis(enc) ? basis_fd : -1, tfd, 3, efd,
	    &elen) != 0)
		goto out;
	*out = malloc(elen + 2);
	(*out)[0] = (uint8_t)enc;
	(*out)[1] = 40;
	if (pread(efd, *out + 2, elen, 0) != (ssize_t)elen)
		goto out;
	*len = elen + 2;
	r = 0;
out:
	free(t);
	if (tfd >= 0)
		close(tfd);
	if (efd >= 0)
		close(efd);
	return r;
}

int
main(void)
{
	const int rounds = getenv("DS_FUZZ_ROUNDS") ? (int)strtol(getenv("DS_FUZZ_ROUNDS"), NULL, 10) : 1500;
	int count = 0, failed = 0;

	/* Thousands of rejected streams would each log a line. */
	if (getenv("DS_TEST_VERBOSE") == NULL && freopen("/dev/null", "w", stderr) == NULL)
		return 1;
	if (setup() != 0) {
		printf("Bail out! memfd_create failed\n");
		return 1;
	}
	for (int e = 0; e <= DELTA_ENCODING_COUNT; e++) {	/* COUNT: SEL_BUF */
		const char *name = e == DELTA_ENCODING_COUNT ? "manifest frame" :
		    delta_encoding_name(e);
		uint8_t *seed = NULL, *buf;
		size_t len = 0;

		if (e == DELTA_ZIP_PATCH) {
			/* Its seeds must be zips: test-zipdelta mutates those streams. */
			printf("ok %d - # SKIP %s: mutated in test-zipdelta\n", ++count, name);
			continue;
		}
		if (make_seed((enum delta_encoding)e, &seed, &len) != 0) {
			printf("not ok %d - seed for %s\n", ++count, name);
			failed++;
			continue;
		}
		buf = malloc(len + 64);
		overlong = 0;
		LLVMFuzzerTestOneInput(seed, len);
		for (int i = 0; i < rounds; i++) {
			size_t n = len, edits = 1 + rng() % 4;

			memcpy(buf, seed, len);
			for (size_t k = 0; k < edits; k++) {
				size_t pos = 2 + rng() % (n - 2);

				switch (rng() % 5) {
				case 0:
					buf[pos] ^= (uint8_t)(1u << (rng() % 8));
					break;
				case 1:
					buf[pos] = (uint8_t)rng();
					break;
				case 2:
					n = pos;	/* truncate */
					break;
				case 3:
					if (n < len + 64)
						buf[n++] = (uint8_t)rng();	/* trailing byte */
					break;
				default:
					buf[1] = (uint8_t)rng();	/* another chunking */
					break;
				}
				if (n <= 2)
					break;
			}
			LLVMFuzzerTestOneInput(buf, n);
		}
		/* Pure noise, too. */
		for (int i = 0; i < rounds / 4; i++) {
			size_t n = 2 + rng() % 64;

			for (size_t k = 0; k < n; k++)
				buf[k] = (uint8_t)rng();
			buf[0] = e == DELTA_ENCODING_COUNT ? SEL_BUF : (uint8_t)e;
			LLVMFuzzerTestOneInput(buf, n);
		}
		printf("%s %d - %s: %d mutated streams, none crashed, %d wrote past max_out\n",
		    overlong == 0 ? "ok" : "not ok", ++count, name, rounds + rounds / 4, overlong);
		if (overlong != 0)
			failed++;
		free(seed);
		free(buf);
	}
	/* The seed corpus: streams of every encoding, and any that once broke a decoder. */
	{
		struct fuzz_seeds seeds = { NULL, NULL, 0 };
		const char *top = getenv("top_srcdir");
		char dir[4096];
		int n;

		snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/delta",
		    top != NULL ? top : TOP_SRCDIR);
		n = fuzz_read_corpus(dir, &seeds);
		overlong = 0;
		for (int i = 0; i < n; i++)
			LLVMFuzzerTestOneInput(seeds.data[i], seeds.len[i]);
		printf("%s %d - corpus delta: %d inputs replayed, %d wrote past max_out\n",
		    n > 0 && overlong == 0 ? "ok" : "not ok", ++count, n, overlong);
		if (n <= 0 || overlong != 0)
			failed++;
		if (getenv("DS_FUZZ_WRITE_SEEDS") != NULL) {
			struct fuzz_seeds own = { NULL, NULL, 0 };

			for (int e = 0; e <= DELTA_ENCODING_COUNT; e++) {
				uint8_t *seed = NULL;
				size_t len = 0;

				if (e != DELTA_ZIP_PATCH &&
				    make_seed((enum delta_encoding)e, &seed, &len) == 0)
					fuzz_seed_add(&own, seed, len);
				free(seed);
			}
			fuzz_write_seeds(getenv("DS_FUZZ_WRITE_SEEDS"), &own, 0);
			fuzz_seeds_free(&own);
		}
		fuzz_seeds_free(&seeds);
	}
	printf("1..%d\n", count);
	return failed ? 1 : 0;
}
#endif
