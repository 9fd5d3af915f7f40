/*
 * Fuzz target for a published tree's index decoder (repo/publish.c): what
 * a mirror, any web server or CDN, serves to a pulling site, untrusted
 * until the manifest it names is checked. Nothing may crash or leak, and
 * the decoder keeps one encoding: an index it accepts encodes again to the
 * same bytes, with every entry's download bound (publish_fetch_max) finite.
 *
 * Built with -DDS_LIBFUZZER it is a libFuzzer target (tools/fuzz);
 * otherwise main() replays tests/fuzz/corpus/index and mutates it (TAP).
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/delta.h"
#include "repo/publish.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz-main.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct publish_index ix;

	memset(&ix, 0, sizeof(ix));
	if (publish_index_decode(data, size, "fuzz", &ix) == 0) {
		char *again;
		size_t n;

		publish_index_encode(&ix, &again, &n);
		if (n != size || memcmp(again, data, n) != 0)
			FUZZ_BROKEN();
		free(again);
		for (size_t i = 0; i < ix.count; i++)
			if (publish_index_find(&ix, ix.entries[i].hash) != &ix.entries[i])
				FUZZ_BROKEN();
	}
	publish_index_release(&ix);
	return 0;
}

#ifndef DS_LIBFUZZER
static void
own_seeds(struct fuzz_seeds *s)
{
	struct publish_entry e[3];
	struct publish_index ix;
	char *out;
	size_t len;

	memset(e, 0, sizeof(e));
	memset(&ix, 0, sizeof(ix));
	for (int i = 0; i < 3; i++) {
		memset(e[i].hash, 0x10 * (i + 1), HASH_LEN);
		e[i].size = 1000u << (4 * i);
	}
	e[0].encoding = DELTA_ZSTD;
	e[0].bytes = 400;
	e[1].encoding = DELTA_ZSTD_PATCH;
	e[1].has_basis = 1;
	memset(e[1].basis, 0xab, HASH_LEN);
	e[1].bytes = 1200;
	e[2].encoding = DELTA_ZIP_PATCH;
	e[2].has_basis = 1;
	memset(e[2].basis, 0xcd, HASH_LEN);
	e[2].bytes = 5000;
	memset(ix.to, 0x77, HASH_LEN);
	ix.entries = e;
	ix.count = 1;
	publish_index_encode(&ix, &out, &len);
	fuzz_seed_add(s, out, len);
	free(out);
	ix.has_from = 1;
	memset(ix.from, 0x66, HASH_LEN);
	ix.count = 3;
	publish_index_encode(&ix, &out, &len);
	fuzz_seed_add(s, out, len);
	free(out);
}

int
main(void)
{
	return fuzz_main("index", 3000, own_seeds);
}
#endif
