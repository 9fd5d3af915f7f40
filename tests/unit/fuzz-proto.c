/*
 * Fuzz target for the protocol decoders (untrusted bytes from the peer).
 * Input: a byte stream cut into frames by proto_frame_get, each payload
 * decoded by its type; and the whole input decoded as each type's payload.
 * Nothing may crash, leak or read out of bounds.
 *
 * Built with -DDS_LIBFUZZER it is a libFuzzer target (--enable-fuzzing);
 * otherwise main() runs a short deterministic random-mutation pass over a
 * valid session's frames and reports it as TAP, for make check.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "wire/proto.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz-main.h"

static size_t accepted;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf *in, *payload, *copy;
	struct proto_msg m;
	uint8_t type;
	int r;

	log_set_level(LOG_LEVEL_ERROR);
	in = buf_from(data, size);
	payload = buf_new(PROTO_FRAME_MAX);
	while ((r = proto_frame_get(in, NULL, &type, payload)) == 0) {
		if (proto_msg_decode(type, payload, NULL, &m) == 0)
			accepted++;
		proto_msg_free(&m);
	}
	for (type = PROTO_TYPE_MIN; type <= PROTO_TYPE_MAX; type++) {
		copy = buf_from(data, size);
		if (proto_msg_decode(type, copy, NULL, &m) == 0)
			accepted++;
		proto_msg_free(&m);
		buf_free(copy);
	}
	buf_free(payload);
	buf_free(in);
	return 0;
}

#ifndef DS_LIBFUZZER
#include <fcntl.h>
#include <unistd.h>

/* A valid session: one frame of every message type. */
static void
session(struct buf *out)
{
	static char *paths[] = { "a/b.omod", "frontend/index.html", NULL };
	struct proto_hello h = { PROTO_MAGIC, PROTO_VERSION, PROTO_CAP_ALL, PROTO_ROLE_RECEIVER,
	    (char *)"distsync fuzz" };
	struct proto_error e = { -7, (char *)"locked" };
	struct proto_open o = { PROTO_OP_ROLLBACK, 0, 5, (char *)"h", (uint8_t *)"x: 1\n", 5,
	    (char *)"r0" };
	struct proto_staged st1 = { { 1 }, 0, 99 };
	struct proto_state s = { (char *)"r1", { 2 }, 1000, &st1, 1, paths, 2 };
	struct proto_manifest mf = { (uint8_t *)"distsync-manifest 1\n", 20 };
	struct proto_object ob = { { 3 }, PROTO_ENC_ZSTD, 100, 0, { 0 } };
	struct proto_commit c = { (char *)"r2", (uint8_t *)"m", 1, NULL, 0, 0 };
	struct proto_restart rs = { (char *)"db", PROTO_RESTART_RELOAD, (char *)"a/b.omod" };
	struct proto_result res = { 0, 0, (char *)"r1", (char *)"r2", 1, 2, 3, 4, 5, 6, paths, 1,
	    (char *)"ok", paths, 2, (char *)"", 1, (char *)"restart db", paths, 2, paths, 1,
	    1, &rs, 1, paths, 1 };
	struct buf *p = buf_new(0);

#define FRAME(t, enc, msg) do { buf_reset(p); enc(p, msg); proto_frame_put(out, t, p); } while (0)
	FRAME(PROTO_HELLO, proto_hello_encode, &h);
	FRAME(PROTO_ERROR, proto_error_encode, &e);
	FRAME(PROTO_OPEN, proto_open_encode, &o);
	FRAME(PROTO_STATE, proto_state_encode, &s);
	FRAME(PROTO_MANIFEST, proto_manifest_encode, &mf);
	FRAME(PROTO_OBJECT, proto_object_encode, &ob);
	buf_reset(p);
	buf_put(p, "chunk", 5);
	proto_frame_put(out, PROTO_DATA, p);
	proto_frame_put(out, PROTO_OBJECT_END, NULL);
	proto_frame_put(out, PROTO_MANIFEST_REQUEST, NULL);
	FRAME(PROTO_COMMIT, proto_commit_encode, &c);
	FRAME(PROTO_RESULT, proto_result_encode, &res);
#undef FRAME
	buf_free(p);
}

int
main(void)
{
	struct buf *s = buf_new(0);
	uint32_t seed = 12345;
	uint8_t *data;
	size_t len, valid, iterations = 20000;
	int saved, fd;

	session(s);
	len = buf_len(s);
	if (getenv("DS_FUZZ_WRITE_SEEDS") != NULL) {
		struct fuzz_seeds own = { NULL, NULL, 0 };

		fuzz_seed_add(&own, buf_ptr(s), len);
		fuzz_write_seeds(getenv("DS_FUZZ_WRITE_SEEDS"), &own, 0);
		fuzz_seeds_free(&own);
	}
	data = malloc(len);
	/* Decoding errors are expected by the thousand: send them to /dev/null. */
	saved = dup(2);
	fd = open("/dev/null", O_WRONLY);
	dup2(fd, 2);
	close(fd);
	/* The unmutated session decodes completely. */
	accepted = 0;
	LLVMFuzzerTestOneInput(buf_ptr(s), len);
	valid = accepted;
	printf("%s 1 - the valid session decodes (%zu messages)\n", valid >= 11 ? "ok" : "not ok",
	    valid);
	/* Mutations: 1-4 random byte changes, and a random truncation a third of the time. */
	for (size_t i = 0; i < iterations; i++) {
		size_t n = len, k;

		memcpy(data, buf_ptr(s), len);
		seed = seed * 1103515245 + 12345;
		for (k = 0; k < 1 + (seed >> 16) % 4; k++) {
			seed = seed * 1103515245 + 12345;
			data[(seed >> 8) % len] ^= (uint8_t)(1 + (seed >> 20) % 255);
		}
		if ((seed >> 4) % 3 == 0)
			n = (seed >> 10) % len;
		LLVMFuzzerTestOneInput(data, n);
	}
	dup2(saved, 2);
	close(saved);
	printf("ok 2 - %zu mutated sessions decoded without a crash\n", iterations);
	/* The seed corpus: inputs that once broke a decoder stay in it. */
	{
		struct fuzz_seeds seeds = { NULL, NULL, 0 };
		const char *top = getenv("top_srcdir");
		char dir[4096];
		int n;

		snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/proto",
		    top != NULL ? top : TOP_SRCDIR);
		n = fuzz_read_corpus(dir, &seeds);
		saved = dup(2);
		fd = open("/dev/null", O_WRONLY);
		dup2(fd, 2);
		close(fd);
		for (int i = 0; i < n; i++)
			LLVMFuzzerTestOneInput(seeds.data[i], seeds.len[i]);
		dup2(saved, 2);
		close(saved);
		printf("%s 3 - corpus proto: %d inputs replayed\n", n > 0 ? "ok" : "not ok", n);
		if (n <= 0)
			valid = 0;
		fuzz_seeds_free(&seeds);
	}
	printf("1..3\n");
	free(data);
	buf_free(s);
	return valid >= 11 ? 0 : 1;
}
#endif
