/* Unit tests for buf.c: round trips, limits, and getters failing cleanly on overrun. */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "tap.h"

static void
test_round_trip(void)
{
	struct buf *b = buf_new(0);
	uint8_t u8, *blob = NULL;
	uint32_t u32;
	uint64_t u64;
	char *s = NULL;
	const uint8_t *p;
	size_t len;

	CHECK(buf_put_u8(b, 0xab) == 0 && buf_put_u32(b, 0xdeadbeef) == 0 &&
	    buf_put_u64(b, 0x0102030405060708ull) == 0, "put integers");
	CHECK(buf_put_cstring(b, "hello") == 0 && buf_put_string(b, "a\0b", 3) == 0 &&
	    buf_put_cstring(b, NULL) == 0, "put strings");
	CHECK(buf_len(b) == 1 + 4 + 8 + 9 + 7 + 4, "length is %zu", buf_len(b));
	CHECK(buf_ptr(b)[1] == 0xde && buf_ptr(b)[4] == 0xef, "u32 is big-endian");
	CHECK(buf_get_u8(b, &u8) == 0 && u8 == 0xab, "get u8");
	CHECK(buf_get_u32(b, &u32) == 0 && u32 == 0xdeadbeef, "get u32");
	CHECK(buf_get_u64(b, &u64) == 0 && u64 == 0x0102030405060708ull, "get u64");
	CHECK(buf_get_cstring(b, &s, 0) == 0 && strcmp(s, "hello") == 0, "get cstring");
	free(s);
	s = NULL;
	CHECK(buf_get_cstring(b, &s, 0) == DS_ERR_INVALID && s == NULL,
	    "a string with NUL is refused as a C string");
	CHECK(buf_len(b) == 7 + 4, "nothing consumed by the refusal");
	CHECK(buf_get_string(b, &blob, &len) == 0 && len == 3 && memcmp(blob, "a\0b", 3) == 0,
	    "get blob");
	free(blob);
	CHECK(buf_get_string_direct(b, &p, &len) == 0 && len == 0, "empty string");
	CHECK(buf_len(b) == 0, "all consumed");
	CHECK(buf_get_u8(b, &u8) == DS_ERR_INVALID, "get from empty fails");
	buf_free(b);
	buf_free(NULL);
}

static void
test_limits(void)
{
	struct buf *b = buf_new(10);
	uint8_t *dst;

	CHECK(buf_put(b, "0123456789", 10) == 0, "fill to the maximum");
	CHECK(buf_put_u8(b, 1) == DS_ERR_INVALID, "one byte past the maximum is refused");
	CHECK(buf_len(b) == 10, "refused put changed nothing");
	CHECK(buf_consume(b, 4) == 0 && buf_put(b, "abcd", 4) == 0,
	    "consumed space is reusable");
	CHECK(memcmp(buf_ptr(b), "456789abcd", 10) == 0, "content after sliding");
	CHECK(buf_set_max(b, 5) == DS_ERR_INVALID, "cannot shrink below the content");
	CHECK(buf_reserve(b, SIZE_MAX, &dst) == DS_ERR_INVALID, "huge reserve refused");
	CHECK(buf_unreserve(b, 11) == DS_ERR_INVALID && buf_unreserve(b, 4) == 0 &&
	    buf_len(b) == 6, "unreserve");
	buf_reset(b);
	CHECK(buf_len(b) == 0 && buf_max(b) == 10, "reset keeps the maximum");
	CHECK(buf_put_string(b, "0123456", 7) == DS_ERR_INVALID, "string with prefix over max");
	buf_free(b);
}

/* Every truncation of a string field fails and consumes nothing. */
static void
test_overruns(void)
{
	struct buf *src = buf_new(0), *b;
	const uint8_t *p;
	uint8_t *blob;
	uint64_t u64;
	uint32_t u32;
	char *s;
	size_t len, total;
	int bad = 0;

	buf_put_cstring(src, "some string");
	total = buf_len(src);
	for (size_t cut = 0; cut < total; cut++) {
		b = buf_from(buf_ptr(src), cut);
		if (buf_get_string_direct(b, &p, &len) != DS_ERR_INVALID || buf_len(b) != cut)
			bad++;
		if (buf_get_string(b, &blob, &len) != DS_ERR_INVALID || blob != NULL)
			bad++;
		if (buf_get_cstring(b, &s, 0) != DS_ERR_INVALID || s != NULL)
			bad++;
		if (cut < 8 && buf_get_u64(b, &u64) != DS_ERR_INVALID)
			bad++;
		if (cut < 4 && (buf_get_u32(b, &u32) != DS_ERR_INVALID || buf_len(b) != cut))
			bad++;
		buf_free(b);
	}
	CHECK(bad == 0, "every truncation of a string is refused without consuming");
	b = buf_new(0);
	buf_put_u32(b, 0xffffffff);
	buf_put(b, "abc", 3);
	CHECK(buf_get_string_direct(b, &p, &len) == DS_ERR_INVALID, "length 2^32-1 refused");
	buf_free(b);
	b = buf_from(buf_ptr(src), total);
	CHECK(buf_get_cstring(b, &s, 5) == DS_ERR_INVALID && buf_len(b) == total,
	    "string over maxlen refused");
	buf_free(b);
	buf_free(src);
}

static void
test_growth(void)
{
	struct buf *b = buf_new(0);
	uint32_t v;
	int bad = 0;

	for (uint32_t i = 0; i < 100000; i++)
		if (buf_put_u32(b, i) != 0)
			bad++;
	for (uint32_t i = 0; i < 100000; i++)
		if (buf_get_u32(b, &v) != 0 || v != i)
			bad++;
	CHECK(bad == 0 && buf_len(b) == 0, "100000 values in and out");
	buf_free(b);
}

/* The text builders: formatted text, hex, a NUL-terminated copy, the maximum kept. */
static void
test_text(void)
{
	struct buf *b = buf_new(0), *small = buf_new(8);
	char *s;
	size_t len;
	char big[3000];

	CHECK(buf_printf(b, "%s=%d;", "n", 42) == 0 && buf_put_hex(b, "\x01\xab", 2) == 0,
	    "printf and hex");
	s = buf_dup_cstring(b, &len);
	CHECK(strcmp(s, "n=42;01ab") == 0 && len == 9, "the text is exact");
	free(s);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK(buf_printf(b, "%s", big) == 0 && buf_len(b) == 9 + sizeof(big) - 1,
	    "a line longer than any first guess");
	CHECK(buf_printf(small, "%s", "12345678") == 0, "fill to the maximum");
	CHECK(buf_printf(small, "x") == DS_ERR_INVALID && buf_len(small) == 8,
	    "printf past the maximum is refused and changes nothing");
	CHECK(buf_put_hex(small, "\x01", 1) == DS_ERR_INVALID && buf_len(small) == 8,
	    "hex past the maximum is refused");
	buf_consume(small, 8);
	s = buf_dup_cstring(small, NULL);
	CHECK(s != NULL && s[0] == '\0', "empty buffer gives the empty string");
	free(s);
	buf_free(b);
	buf_free(small);
}

int
main(void)
{
	tap_run("round-trip", test_round_trip);
	tap_run("limits", test_limits);
	tap_run("overruns", test_overruns);
	tap_run("growth", test_growth);
	tap_run("text", test_text);
	return tap_done();
}
