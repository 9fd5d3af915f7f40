/* Unit tests of staging: verified objects, partial parts and resume, listing. */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/stat.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "codec/delta.h"
#include "site/site.h"
#include "site/stage.h"
#include "site/target.h"
#include "tap.h"

static struct target *
open_site(void)
{
	struct target *t = NULL;

	if (site_open("t", "state", 0, &t) != 0)
		return NULL;
	return t;
}

static void
test_add_bytes(void)
{
	static const struct {
		const char	*content;
		int		 corrupt;	/* give a wrong hash */
		int		 want;
	} cases[] = {
		{ "hello\n", 0, 0 },
		{ "", 0, 0 },
		{ "binary\0data", 0, 0 },
		{ "hello\n", 1, DS_ERR_CORRUPT },
		{ "x", 1, DS_ERR_CORRUPT },
	};
	struct target *t = open_site();
	uint8_t h[HASH_LEN];

	CHECK(t != NULL, "target opens");
	if (t == NULL)
		return;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].content);
		int r;

		if (i == 2)
			len = 11;
		hash_bytes(cases[i].content, len, h);
		if (cases[i].corrupt)
			h[0] ^= 0x55;
		r = stage_add_bytes(t, h, cases[i].content, len);
		CHECK(r == cases[i].want, "case %zu: stage_add_bytes returns %d (got %d)", i,
		    cases[i].want, r);
		CHECK(stage_has(t, h) == (cases[i].want == 0), "case %zu: stage_has", i);
	}
	/* A corrupt object leaves no part behind. */
	{
		struct stage_object *objs = NULL;
		size_t n = 0;
		CHECK(stage_list(t, &objs, &n) == 0 && n == 3, "three complete objects listed (%zu)", n);
		for (size_t i = 0; i < n; i++)
			CHECK(objs[i].complete, "object %zu is complete", i);
		free(objs);
	}
	CHECK(stage_clear(t) == 0, "stage_clear");
	hash_bytes("hello\n", 6, h);
	CHECK(!stage_has(t, h), "cleared");
	target_close(t);
}

static void
test_resume(void)
{
	static const char content[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	struct target *t = open_site();
	struct stage_object *objs = NULL;
	uint8_t h[HASH_LEN];
	uint64_t off = 99;
	size_t n = 0;
	int fd = -1;

	CHECK(t != NULL, "target opens");
	if (t == NULL)
		return;
	hash_bytes(content, sizeof(content) - 1, h);
	CHECK(stage_partial(t, h, &off) == 0 && off == 0, "no part yet");
	CHECK(stage_open(t, h, 0, &fd) == 0 && fd >= 0, "open part");
	CHECK(write(fd, content, 20) == 20, "write 20 bytes");
	stage_abort(t, h, fd);
	CHECK(stage_partial(t, h, &off) == 0 && off == 20, "part holds 20 bytes (%ju)", (uintmax_t)off);
	CHECK(stage_list(t, &objs, &n) == 0 && n == 1 && !objs[0].complete && objs[0].size == 20,
	    "part is listed as partial");
	free(objs);
	CHECK(stage_open(t, h, 50, &fd) == DS_ERR_INVALID, "offset past the part is refused");
	CHECK(stage_open(t, h, 15, &fd) == 0, "resume at 15 (truncating)");
	CHECK(write(fd, content + 15, sizeof(content) - 1 - 15) == (ssize_t)(sizeof(content) - 1 - 15),
	    "write the rest");
	CHECK(stage_finish(t, h, fd) == 0, "finish verifies");
	CHECK(stage_has(t, h) == 1, "complete");
	fd = stage_object_open(t, h);
	CHECK(fd >= 0, "object opens");
	if (fd >= 0) {
		uint8_t g[HASH_LEN];
		uint64_t size;
		CHECK(hash_fd(fd, g, &size) == 0 && memcmp(g, h, HASH_LEN) == 0, "object content");
		close(fd);
	}
	/* A resume that writes wrong bytes is caught and discarded. */
	hash_bytes("abc", 3, h);
	CHECK(stage_open(t, h, 0, &fd) == 0 && write(fd, "abd", 3) == 3, "write wrong bytes");
	CHECK(stage_finish(t, h, fd) == DS_ERR_CORRUPT, "finish refuses a mismatch");
	CHECK(stage_partial(t, h, &off) == 0 && off == 0, "mismatching part removed");
	CHECK(stage_check_space(t, 1) == 0, "one byte fits");
	CHECK(stage_check_space(t, UINT64_MAX / 2) == DS_ERR_NOSPACE, "an exabyte does not");
	target_close(t);
}

static void
test_add_fd(void)
{
	struct target *t = open_site();
	uint8_t h[HASH_LEN];
	char big[300000];
	int fd;

	CHECK(t != NULL, "target opens");
	if (t == NULL)
		return;
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + i / 1000);
	CHECK(tap_write_file("src", big, sizeof(big)) == 0, "source file");
	hash_bytes(big, sizeof(big), h);
	fd = open("src", O_RDONLY);
	CHECK(stage_add_fd(t, h, fd) == 0 && stage_has(t, h), "stage_add_fd of 300 kB");
	close(fd);
	h[5] ^= 1;
	fd = open("src", O_RDONLY);
	CHECK(stage_add_fd(t, h, fd) == DS_ERR_CORRUPT, "stage_add_fd with a wrong hash");
	close(fd);
	target_close(t);
}

/* Delta streams (HEX.ENC.part) and the look-ups the apply makes. */
static void
test_encoded(void)
{
	struct target *t = open_site();
	struct stage_encoded *parts = NULL;
	struct stage_object *objs = NULL;
	char name[STAGE_NAME_MAX], hex[HASH_HEX_LEN + 1], want[STAGE_NAME_MAX], path[256];
	uint8_t h[HASH_LEN], other[HASH_LEN];
	uint64_t size = 99;
	size_t n = 9;
	struct stat st;
	int fd = -1, dfd;

	CHECK(t != NULL, "target opens");
	if (t == NULL)
		return;
	hash_bytes("decoded", 7, h);
	hash_bytes("other", 5, other);
	stage_list_encoded(t, &parts, &n);
	CHECK(parts == NULL && n == 0, "no streams yet");
	stage_encoded_name(h, DELTA_ZSTD_PATCH, name);
	hash_to_hex(h, hex);
	snprintf(want, sizeof(want), "staging/%s.%s.part", hex, delta_encoding_name(DELTA_ZSTD_PATCH));
	CHECK(strcmp(name, want) == 0, "a stream is named %s", want);
	CHECK(stage_encoded_open(t, h, DELTA_ZSTD_PATCH, &fd, &size) == 0 && fd >= 0 && size == 0,
	    "a new stream is empty");
	stage_list_encoded(t, &parts, &n);
	CHECK(n == 0, "an empty stream is not listed");
	free(parts);
	CHECK(write(fd, "0123456789", 10) == 10, "write 10 bytes");
	close(fd);
	CHECK(stage_encoded_open(t, other, DELTA_RSYNC, &fd, &size) == 0 &&
	    write(fd, "abc", 3) == 3, "a second stream");
	close(fd);
	tap_write_file("state/staging/not-a-stream.zpatch.part", "x", 1);
	stage_list_encoded(t, &parts, &n);
	CHECK(n == 2, "two streams listed (%zu)", n);
	for (size_t i = 0; i < n; i++) {
		if (memcmp(parts[i].hash, h, HASH_LEN) == 0)
			CHECK(parts[i].encoding == DELTA_ZSTD_PATCH && parts[i].size == 10,
			    "the first with its encoding and size");
		else
			CHECK(memcmp(parts[i].hash, other, HASH_LEN) == 0 &&
			    parts[i].encoding == DELTA_RSYNC && parts[i].size == 3,
			    "the second with its encoding and size");
	}
	free(parts);
	CHECK(stage_list(t, &objs, &n) == 0 && n == 0, "streams are not objects");
	free(objs);
	CHECK(stage_encoded_open(t, h, DELTA_ZSTD_PATCH, &fd, &size) == 0 && size == 10,
	    "reopened at its 10 bytes");
	CHECK(stage_encoded_seek(t, h, DELTA_ZSTD_PATCH, fd, 4) == 0 && write(fd, "x", 1) == 1,
	    "cut to 4 and appended");
	close(fd);
	CHECK(stage_encoded_open(t, h, DELTA_ZSTD_PATCH, &fd, &size) == 0 && size == 5,
	    "now 5 bytes");
	close(fd);
	snprintf(path, sizeof(path), "state/%s", want);
	CHECK(access(path, F_OK) == 0, "the stream is where its name says");
	stage_encoded_remove(t, h, DELTA_ZSTD_PATCH);
	CHECK(access(path, F_OK) == -1 && errno == ENOENT, "removed");

	/* Look-ups of complete objects. */
	CHECK(stage_object_size(t, h, &size) == 0, "no object: no size");
	CHECK(stage_add_bytes(t, h, "decoded", 7) == 0 && stage_object_size(t, h, &size) == 1 &&
	    size == 7, "object size 7");
	dfd = open(".", O_RDONLY | O_DIRECTORY);
	CHECK(stage_object_link(t, h, dfd, "linked") == 0 && stat("linked", &st) == 0 &&
	    st.st_nlink == 2 && st.st_size == 7, "hard-linked out of staging");
	CHECK(stage_object_link(t, other, dfd, "none") == -1 && errno == ENOENT,
	    "a missing object cannot be linked");
	close(dfd);
	fd = stage_scratch_open(t);
	CHECK(fd >= 0 && write(fd, "scratch", 7) == 7, "a scratch file");
	if (fd >= 0)
		close(fd);
	CHECK(stage_list(t, &objs, &n) == 0 && n == 1, "the scratch file leaves nothing listed");
	free(objs);
	target_close(t);
}

int
main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	tap_run("stage-add-bytes", test_add_bytes);
	tap_run("stage-resume", test_resume);
	tap_run("stage-add-fd", test_add_fd);
	tap_run("stage-encoded", test_encoded);
	return tap_done();
}
