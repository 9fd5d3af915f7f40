/*
 * Unit tests for publish.c: indexes round-trip in their one encoding; every
 * truncation and bit flip is refused or decodes to another valid index;
 * malformed lines are refused; download bounds hold for lying sizes.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "codec/delta.h"
#include "repo/publish.h"
#include "tap.h"

static void
make_index(struct publish_index *ix)
{
	memset(ix, 0, sizeof(*ix));
	ix->has_from = 1;
	hash_bytes("from", 4, ix->from);
	hash_bytes("to", 2, ix->to);
	ix->count = 3;
	ix->entries = xcalloc(3, sizeof(*ix->entries));
	for (int i = 0; i < 3; i++) {
		struct publish_entry *e = &ix->entries[i];

		memset(e->hash, 0x10 * (i + 1), HASH_LEN);
		e->size = 1000u * (unsigned)(i + 1);
		e->encoding = i == 0 ? DELTA_ZSTD : i == 1 ? DELTA_ZSTD_PATCH : DELTA_ZIP_PATCH;
		e->has_basis = i > 0;
		if (i > 0)
			memset(e->basis, 0xa0 + i, HASH_LEN);
		e->bytes = 100u * (unsigned)(i + 1);
	}
}

static void
test_round_trip(void)
{
	struct publish_index ix, back;
	char *data, *again;
	size_t len, again_len;

	make_index(&ix);
	publish_index_encode(&ix, &data, &len);
	CHECK(publish_index_decode(data, len, "ix", &back) == 0, "an index decodes");
	CHECK(back.count == 3 && back.has_from && memcmp(back.from, ix.from, HASH_LEN) == 0 &&
	    back.entries[1].encoding == DELTA_ZSTD_PATCH && back.entries[2].has_basis &&
	    back.entries[2].bytes == 300 && back.entries[0].size == 1000, "with every field");
	CHECK(publish_index_find(&back, ix.entries[1].hash) == &back.entries[1], "find");
	publish_index_encode(&back, &again, &again_len);
	CHECK(again_len == len && memcmp(again, data, len) == 0, "and encodes to the same bytes");
	free(again);
	publish_index_release(&back);
	ix.has_from = 0;
	free(data);
	publish_index_encode(&ix, &data, &len);
	CHECK(publish_index_decode(data, len, "ix", &back) == 0 && !back.has_from,
	    "an index with no from (every object whole)");
	publish_index_release(&back);
	free(data);
	publish_index_release(&ix);
}

static void
test_mutations(void)
{
	struct publish_index ix, back;
	char *data, *again;
	size_t len, again_len;
	int all_ok = 1, decoded = 0;

	make_index(&ix);
	publish_index_encode(&ix, &data, &len);
	log_set_level(LOG_LEVEL_SILENT);
	for (size_t cut = 0; cut < len; cut++) {
		if (publish_index_decode(data, cut, "cut", &back) == 0) {
			/* A cut at a line end is a shorter valid index: still canonical. */
			publish_index_encode(&back, &again, &again_len);
			all_ok &= again_len == cut && memcmp(again, data, cut) == 0;
			free(again);
			publish_index_release(&back);
		}
	}
	CHECK(all_ok, "every truncation is refused or is a shorter canonical index");
	all_ok = 1;
	for (size_t bit = 0; bit < 8 * len; bit++) {
		data[bit / 8] ^= (char)(1 << (bit % 8));
		if (publish_index_decode(data, len, "flip", &back) == 0) {
			decoded++;
			publish_index_encode(&back, &again, &again_len);
			all_ok &= again_len == len && memcmp(again, data, len) == 0;
			free(again);
			publish_index_release(&back);
		}
		data[bit / 8] ^= (char)(1 << (bit % 8));
	}
	log_set_level(LOG_LEVEL_INFO);
	CHECK(all_ok, "every bit flip is refused or decodes canonically (%d of %zu decoded)",
	    decoded, 8 * len);
	free(data);
	publish_index_release(&ix);
}

static void
test_bad(void)
{
	static const char *const bad[] = {
		"",
		"distsync-index 2\nfrom -\nto 00\n",
		"distsync-index 1\nfrom -\n",
		"distsync-index 1\nfrom -\nto 0000000000000000000000000000000000000000000000000000000000000000\n"
		    "object 1111111111111111111111111111111111111111111111111111111111111111 5 raw - 5\n",
		"distsync-index 1\nfrom -\nto 0000000000000000000000000000000000000000000000000000000000000000\n"
		    "object 1111111111111111111111111111111111111111111111111111111111111111 5 zpatch - 5\n",
		"distsync-index 1\nfrom -\nto 0000000000000000000000000000000000000000000000000000000000000000\n"
		    "object 1111111111111111111111111111111111111111111111111111111111111111 05 zst - 5\n",
		"distsync-index 1\nfrom -\nto 0000000000000000000000000000000000000000000000000000000000000000\n"
		    "object 2222222222222222222222222222222222222222222222222222222222222222 5 zst - 5\n"
		    "object 1111111111111111111111111111111111111111111111111111111111111111 5 zst - 5\n",
		"distsync-index 1\nfrom -\nto 0000000000000000000000000000000000000000000000000000000000000000\n"
		    "object 1111111111111111111111111111111111111111111111111111111111111111 5 zst - 5",
		"distsync-index 1\nfrom -\nto 00000000000000000000000000000000000000000000000000000000000000AA\n",
	};
	struct publish_index back;
	int all = 1;

	log_set_level(LOG_LEVEL_SILENT);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		all &= publish_index_decode(bad[i], strlen(bad[i]), "bad", &back) == DS_ERR_INVALID;
	log_set_level(LOG_LEVEL_INFO);
	CHECK(all, "malformed indexes are refused (%zu cases)", sizeof(bad) / sizeof(bad[0]));
}

static void
test_bounds(void)
{
	struct publish_entry e;

	memset(&e, 0, sizeof(e));
	e.size = 1000;
	e.bytes = (uint64_t)1 << 50;
	CHECK(publish_fetch_max(&e) < 4096, "a lying byte count cannot make a download unbounded");
	e.bytes = 10;
	CHECK(publish_fetch_max(&e) == 10, "an honest one is the bound");
	e.size = (uint64_t)1 << 62;
	e.bytes = (uint64_t)1 << 62;
	CHECK(publish_fetch_max(&e) <= e.bytes, "huge sizes do not overflow");
}

int
main(void)
{
	tap_run("round-trip", test_round_trip);
	tap_run("mutations", test_mutations);
	tap_run("bad", test_bad);
	tap_run("bounds", test_bounds);
	return tap_done();
}
