/*
 * Fuzz target for the librsync delta path of delta.c: the input is a raw
 * librsync delta (commands), wrapped here in the zstd frame the encoding
 * carries so that the fuzzer works on the commands themselves, and decoded
 * against a fixed basis. Nothing may crash; output never passes max_out.
 *
 * Built with -DDS_LIBFUZZER it is a libFuzzer target (tools/fuzz);
 * otherwise main() replays tests/fuzz/corpus/rsync and mutates it (TAP).
 */
#include "autoconf.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include "base/err.h"
#include "base/log.h"
#include "codec/delta.h"

#define BASIS_LEN	(64 * 1024)
#define MAX_OUT		(256 * 1024)

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz-main.h"

static int basis_fd = -1, out_fd = -1;

static void
fill_text(uint8_t *p, size_t len, uint32_t seed)
{
	static const char *words[] = { "openmrs ", "module ", "concept ", "obs ", "\n" };
	size_t i = 0;

	while (i < len) {
		const char *w = words[(seed = seed * 1103515245 + 12345) >> 16 & 3 ? (seed >> 8) % 5 : 4];

		for (size_t k = 0; w[k] != '\0' && i < len; k++)
			p[i++] = (uint8_t)w[k];
	}
}

static void
setup(void)
{
	uint8_t *b;

	if (basis_fd >= 0)
		return;
	log_set_level(LOG_LEVEL_SILENT);
	basis_fd = memfd_create("basis", 0);
	out_fd = memfd_create("out", 0);
	b = malloc(BASIS_LEN);
	fill_text(b, BASIS_LEN, 1);
	if (basis_fd < 0 || out_fd < 0 || write(basis_fd, b, BASIS_LEN) != BASIS_LEN)
		abort();
	free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct delta_decoder *d = NULL;
	size_t zcap = ZSTD_compressBound(size), zlen;
	uint8_t *z = malloc(zcap);
	struct stat st;
	int r;

	setup();
	zlen = ZSTD_compress(z, zcap, data, size, 1);
	if (ZSTD_isError(zlen) || ftruncate(out_fd, 0) != 0 || lseek(out_fd, 0, SEEK_SET) != 0)
		abort();
	if (delta_decoder_new(DELTA_RSYNC, basis_fd, out_fd, MAX_OUT, &d) != 0)
		abort();
	/* Fed in two pieces, as frames arrive. */
	r = delta_decoder_feed(d, z, zlen / 2);
	if (r == 0)
		r = delta_decoder_feed(d, z + zlen / 2, zlen - zlen / 2);
	if (r == 0)
		(void)delta_decoder_finish(d, NULL, NULL);
	delta_decoder_free(d);
	free(z);
	if (fstat(out_fd, &st) != 0)
		abort();
	if (st.st_size > MAX_OUT)
		FUZZ_BROKEN();
	return 0;
}

#ifndef DS_LIBFUZZER
/* Raw librsync deltas of edited copies of the basis. */
static void
own_seeds(struct fuzz_seeds *s)
{
	for (int v = 0; v < 3; v++) {
		int tfd = memfd_create("target", 0), efd = memfd_create("enc", 0);
		size_t tlen = BASIS_LEN + 3000 * (size_t)v;
		uint8_t *t = malloc(tlen), *e = NULL, *raw = NULL;
		uint64_t elen = 0;
		unsigned long long rlen;

		fill_text(t, tlen, v == 2 ? 7 : 1);
		for (size_t i = 500 + 100 * (size_t)v; i + 8 < tlen; i += 7000)
			memcpy(t + i, "edited!", 7);
		if (tfd >= 0 && efd >= 0 && write(tfd, t, tlen) == (ssize_t)tlen &&
		    delta_encode(DELTA_RSYNC, basis_fd, tfd, 3, efd, &elen) == 0 &&
		    (e = malloc(elen)) != NULL && pread(efd, e, elen, 0) == (ssize_t)elen &&
		    (rlen = ZSTD_decompressBound(e, elen)) != ZSTD_CONTENTSIZE_ERROR &&
		    (raw = malloc(rlen + 1)) != NULL) {
			size_t got = ZSTD_decompress(raw, rlen, e, elen);

			if (!ZSTD_isError(got))
				fuzz_seed_add(s, raw, got);
		}
		free(t);
		free(e);
		free(raw);
		if (tfd >= 0)
			close(tfd);
		if (efd >= 0)
			close(efd);
	}
}

int
main(void)
{
	setup();
	return fuzz_main("rsync", 400, own_seeds);
}
#endif
