/*
 * Unit tests for proto.c: every message round-trips, and a mutation pass
 * (every truncation, bit flips, oversize lengths, unknown types, trailing
 * bytes) is rejected cleanly with a message naming the frame.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"
#include "tap.h"
#include "wire/proto.h"
#include "wire/xport-local.h"
#include "wire/xport.h"

static char *drift[] = { "openmrs_modules/a.omod", "frontend/x y.js", NULL };
static char *services[] = { "backend", "frontend", NULL };
static struct proto_staged staged[] = {
	{ .hash = { 1, 2, 3 }, .complete = 1, .offset = 0 },
	{ .hash = { 9 }, .complete = 0, .offset = 123456 },
	{ .hash = { 7 }, .complete = PROTO_STAGED_ENCODED(PROTO_ENC_ZSTD_PATCH), .offset = 4096 },
};

static struct proto_hello hello = {
	.magic = PROTO_MAGIC, .version = PROTO_VERSION, .caps = PROTO_CAP_ALL,
	.role = PROTO_ROLE_RECEIVER, .software = "distsync test",
};
static struct proto_error error = { .code = DS_ERR_LOCKED, .message = "locked by pid 12" };
static struct proto_open open_msg = {
	.op = PROTO_OP_PUSH, .flags = PROTO_FLAG_DRY_RUN, .lock_timeout = 30, .host = "kirehe",
	.config = (uint8_t *)"path: /x\n", .config_len = 9,
};
static struct proto_state state = {
	.release = "2024.1", .digest = { 0xaa, 0xbb }, .free_bytes = 1u << 30,
	.staged = staged, .nstaged = 2, .drift = drift, .ndrift = 2,
};
static struct proto_manifest manifest = {
	.data = (uint8_t *)"distsync-manifest 1\n", .len = 20,
};
static struct proto_object object = {
	.hash = { 7 }, .encoding = PROTO_ENC_ZSTD, .size = 1000, .offset = 10, .basis = { 0 },
};
static struct proto_commit commit = {
	.release = "2024.2", .manifest = (uint8_t *)"distsync-manifest 1\n", .manifest_len = 20,
	.signature = (uint8_t *)"sig", .signature_len = 3, .flags = PROTO_FLAG_NO_RESTART,
};
static struct proto_result result = {
	.status = 0, .flags = 0, .from = "2024.1", .to = "2024.2", .added = 1, .updated = 2,
	.deleted = 3, .changed = 6, .objects = 3, .bytes = 4096, .services = services,
	.nservices = 2, .health = "ok", .drift = drift, .ndrift = 1, .message = "",
};

static struct proto_plan plan = { .objects = 3, .bytes = 12000000 };
static struct proto_found found = { .digest = { 0x5a, 1, 2 }, .release = "2024.1" };
static char *restore_paths[] = { "openmrs_config/a.yml", "frontend/x y.js", NULL };
static struct proto_restore restore = {
	.backup = "2024.1", .in_place = 0, .paths = restore_paths, .npaths = 2,
};
static struct proto_restored restored = {
	.path = "openmrs_config/a.yml", .backup = "(pre-distsync)", .mode = 0640, .size = 1234,
	.hash = { 0xc0, 0xff, 0xee },
};

struct sample {
	uint8_t		 type;
	const void	*msg;
};

static const struct sample samples[] = {
	{ PROTO_HELLO, &hello },
	{ PROTO_ERROR, &error },
	{ PROTO_OPEN, &open_msg },
	{ PROTO_STATE, &state },
	{ PROTO_MANIFEST, &manifest },
	{ PROTO_OBJECT, &object },
	{ PROTO_COMMIT, &commit },
	{ PROTO_RESULT, &result },
	{ PROTO_PLAN, &plan },
	{ PROTO_FOUND, &found },
	{ PROTO_RESTORE, &restore },
	{ PROTO_RESTORED, &restored },
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

static int
encode(uint8_t type, const void *m, struct buf *b)
{
	switch (type) {
	case PROTO_HELLO:	return proto_hello_encode(b, m);
	case PROTO_ERROR:	return proto_error_encode(b, m);
	case PROTO_OPEN:	return proto_open_encode(b, m);
	case PROTO_STATE:	return proto_state_encode(b, m);
	case PROTO_MANIFEST:	return proto_manifest_encode(b, m);
	case PROTO_OBJECT:	return proto_object_encode(b, m);
	case PROTO_COMMIT:	return proto_commit_encode(b, m);
	case PROTO_RESULT:	return proto_result_encode(b, m);
	case PROTO_PLAN:	return proto_plan_encode(b, m);
	case PROTO_FOUND:	return proto_found_encode(b, m);
	case PROTO_RESTORE:	return proto_restore_encode(b, m);
	case PROTO_RESTORED:	return proto_restored_encode(b, m);
	}
	return DS_ERR_INVALID;
}

/* Encodes, decodes and re-encodes each sample: the bytes must be identical. */
static void
test_round_trip(void)
{
	for (size_t i = 0; i < NSAMPLES; i++) {
		struct buf *b = buf_new(0), *b2 = buf_new(0), *copy;
		struct proto_msg m;
		int r;

		CHECK(encode(samples[i].type, samples[i].msg, b) == 0, "%s encodes",
		    proto_type_name(samples[i].type));
		copy = buf_from(buf_ptr(b), buf_len(b));
		r = proto_msg_decode(samples[i].type, copy, "test", &m);
		CHECK(r == 0, "%s decodes", proto_type_name(samples[i].type));
		if (r == 0) {
			CHECK(encode(samples[i].type, &m.u, b2) == 0 && buf_len(b) == buf_len(b2) &&
			    memcmp(buf_ptr(b), buf_ptr(b2), buf_len(b)) == 0,
			    "%s re-encodes to the same bytes", proto_type_name(samples[i].type));
		}
		proto_msg_free(&m);
		buf_free(copy);
		buf_free(b);
		buf_free(b2);
	}
	{
		struct buf *b = buf_new(0);
		struct proto_msg m;

		buf_put(b, "xyz", 3);
		CHECK(proto_msg_decode(PROTO_DATA, b, "test", &m) == 0 && m.data_len == 3 &&
		    memcmp(m.data, "xyz", 3) == 0, "DATA decodes to its chunk");
		proto_msg_free(&m);
		buf_reset(b);
		CHECK(proto_msg_decode(PROTO_DATA, b, "test", &m) == DS_ERR_PROTO,
		    "empty DATA refused");
		CHECK(proto_msg_decode(PROTO_OBJECT_END, b, "test", &m) == 0, "OBJECT_END empty");
		buf_put_u8(b, 0);
		CHECK(proto_msg_decode(PROTO_OBJECT_END, b, "test", &m) == DS_ERR_PROTO,
		    "OBJECT_END with payload refused");
		buf_free(b);
	}
}

/* Decodes data as type; returns the decoder's result and frees what it made. */
static int
try_decode(uint8_t type, const uint8_t *data, size_t len)
{
	struct buf *b = buf_from(data, len);
	struct proto_msg m;
	int r;

	r = proto_msg_decode(type, b, "test", &m);
	proto_msg_free(&m);
	buf_free(b);
	return r;
}

/* Sends stderr to a file while fn runs, then returns what was logged (caller frees). */
static char *
captured_log(void)
{
	size_t cap = 16 * 1024 * 1024, len = 0;
	char *s = calloc(1, cap);
	int fd = open("stderr.log", O_RDONLY);
	ssize_t n;

	if (fd >= 0) {
		while (len < cap - 1 && (n = read(fd, s + len, cap - 1 - len)) > 0)
			len += (size_t)n;
		close(fd);
	}
	return s;
}

static void
test_mutations(void)
{
	int saved = dup(2), fd = open("stderr.log", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	size_t trunc_bad = 0, trail_bad = 0, flips = 0, flip_ok = 0, total_cuts = 0;

	dup2(fd, 2);
	close(fd);
	for (size_t i = 0; i < NSAMPLES; i++) {
		struct buf *b = buf_new(0);
		uint8_t *p;
		size_t len;

		encode(samples[i].type, samples[i].msg, b);
		len = buf_len(b);
		p = malloc(len + 1);
		memcpy(p, buf_ptr(b), len);
		for (size_t cut = 0; cut < len; cut++, total_cuts++)
			if (try_decode(samples[i].type, p, cut) != DS_ERR_PROTO)
				trunc_bad++;
		p[len] = 0;
		if (try_decode(samples[i].type, p, len + 1) != DS_ERR_PROTO)
			trail_bad++;
		for (size_t pos = 0; pos < len; pos++) {
			for (int bit = 0; bit < 8; bit++) {
				p[pos] ^= (uint8_t)(1u << bit);
				if (try_decode(samples[i].type, p, len) == 0)
					flip_ok++;
				p[pos] ^= (uint8_t)(1u << bit);
				flips++;
			}
		}
		/* Every 4-byte window set to a huge length. */
		for (size_t pos = 0; pos + 4 <= len; pos++) {
			uint8_t save[4];

			memcpy(save, p + pos, 4);
			memset(p + pos, 0xff, 4);
			try_decode(samples[i].type, p, len);
			p[pos] = 0x7f;
			try_decode(samples[i].type, p, len);
			memcpy(p + pos, save, 4);
		}
		free(p);
		buf_free(b);
	}
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	CHECK(trunc_bad == 0, "all %zu truncations refused (%zu accepted)", total_cuts, trunc_bad);
	CHECK(trail_bad == 0, "a trailing byte is refused for every message");
	CHECK(flips > 0, "%zu bit flips decoded without a crash (%zu still valid)", flips, flip_ok);
	{
		char *log = captured_log();

		CHECK(strstr(log, "test: STATE frame: ") != NULL, "errors name the STATE frame");
		CHECK(strstr(log, "test: RESULT frame: trailing bytes") != NULL,
		    "errors name the RESULT frame and the reason");
		CHECK(strstr(log, "HELLO frame: bad magic") != NULL, "bad magic is named");
		free(log);
	}
}

static void
test_semantic_checks(void)
{
	struct buf *b = buf_new(0);
	struct proto_state st = state;
	struct proto_open op = open_msg;
	struct proto_object ob = object;
	char *bad_drift[] = { "../etc/passwd", NULL };
	char *abs_drift[] = { "/etc/passwd", NULL };

	st.drift = bad_drift;
	st.ndrift = 1;
	proto_state_encode(b, &st);
	CHECK(try_decode(PROTO_STATE, buf_ptr(b), buf_len(b)) == DS_ERR_PROTO,
	    "a drift path with .. is refused");
	buf_reset(b);
	st.drift = abs_drift;
	proto_state_encode(b, &st);
	CHECK(try_decode(PROTO_STATE, buf_ptr(b), buf_len(b)) == DS_ERR_PROTO,
	    "an absolute drift path is refused");
	buf_reset(b);
	op.op = 9;
	proto_open_encode(b, &op);
	CHECK(try_decode(PROTO_OPEN, buf_ptr(b), buf_len(b)) == DS_ERR_PROTO,
	    "an unknown operation is refused");
	buf_reset(b);
	op = open_msg;
	op.flags = 1u << 20;
	proto_open_encode(b, &op);
	CHECK(try_decode(PROTO_OPEN, buf_ptr(b), buf_len(b)) == DS_ERR_PROTO,
	    "unknown flags are refused");
	buf_reset(b);
	ob.offset = ob.size + 1;
	proto_object_encode(b, &ob);
	CHECK(try_decode(PROTO_OBJECT, buf_ptr(b), buf_len(b)) == DS_ERR_PROTO,
	    "an offset past the size is refused");
	buf_reset(b);
	ob = object;
	ob.encoding = 200;
	proto_object_encode(b, &ob);
	CHECK(try_decode(PROTO_OBJECT, buf_ptr(b), buf_len(b)) == DS_ERR_PROTO,
	    "an unknown encoding is refused");
	buf_reset(b);
	/* A list count far beyond what the frame holds is refused before allocating. */
	buf_put_cstring(b, "r");
	buf_put(b, state.digest, HASH_LEN);
	buf_put_u64(b, 0);
	buf_put_u32(b, 0xffffffffu);
	CHECK(try_decode(PROTO_STATE, buf_ptr(b), buf_len(b)) == DS_ERR_PROTO,
	    "a huge staged count is refused");
	buf_free(b);
}

/* RESTORE and RESTORED: paths from the peer, the flag, the mode, bounded. */
static void
test_restore(void)
{
	struct buf *b = buf_new(0);
	struct proto_restore rq = restore;
	struct proto_restored rd = restored;
	char *up[] = { "../x", NULL }, *abs[] = { "/etc/passwd", NULL };
	char *dot[] = { "openmrs_config/./a.yml", NULL }, *none[] = { NULL };
	struct proto_msg m;

	rq.paths = up;
	rq.npaths = 1;
	proto_restore_encode(b, &rq);
	CHECK(try_decode(PROTO_RESTORE, buf_ptr(b), buf_len(b)) == DS_ERR_PROTO,
	    "RESTORE of ../x is refused");
	buf_reset(b);
	rq.paths = abs;
	proto_restore_encode(b, &rq);
	CHECK(try_decode(PROTO_RESTORE, buf_ptr(b), buf_len(b)) == DS_ERR_PROTO,
	    "RESTORE of an absolute path is refused");
	buf_reset(b);
	rq.paths = dot;
	proto_restore_encode(b, &rq);
	CHECK(try_decode(PROTO_RESTORE, buf_ptr(b), buf_len(b)) == DS_ERR_PROTO,
	    "RESTORE of a path with a . component is refused");
	buf_reset(b);
	rq = restore;
	rq.paths = none;
	rq.npaths = 0;
	CHECK(proto_restore_encode(b, &rq) == DS_ERR_INVALID, "RESTORE of no path not encoded");
	buf_put_cstring(b, "");
	buf_put_u8(b, 0);
	buf_put_u32(b, 0);
	CHECK(try_decode(PROTO_RESTORE, buf_ptr(b), buf_len(b)) == DS_ERR_PROTO,
	    "RESTORE of no path is refused");
	buf_reset(b);
	buf_put_cstring(b, "");
	buf_put_u8(b, 2);
	buf_put_u32(b, 1);
	buf_put_cstring(b, "a");
	CHECK(try_decode(PROTO_RESTORE, buf_ptr(b), buf_len(b)) == DS_ERR_PROTO,
	    "RESTORE with an in-place flag of 2 is refused");
	buf_reset(b);
	buf_put_cstring(b, "");
	buf_put_u8(b, 1);
	buf_put_u32(b, 0xffffffffu);
	CHECK(try_decode(PROTO_RESTORE, buf_ptr(b), buf_len(b)) == DS_ERR_PROTO,
	    "RESTORE with a huge path count is refused before allocating");
	buf_reset(b);
	rq = restore;
	rq.in_place = 1;
	rq.backup = "";
	proto_restore_encode(b, &rq);
	CHECK(proto_msg_decode(PROTO_RESTORE, b, "test", &m) == 0 && m.u.restore.in_place == 1 &&
	    m.u.restore.backup[0] == '\0' && m.u.restore.npaths == 2 &&
	    strcmp(m.u.restore.paths[1], "frontend/x y.js") == 0,
	    "RESTORE in place, any set, decodes");
	proto_msg_free(&m);
	buf_reset(b);
	rd.path = "../../etc/shadow";
	proto_restored_encode(b, &rd);
	CHECK(try_decode(PROTO_RESTORED, buf_ptr(b), buf_len(b)) == DS_ERR_PROTO,
	    "RESTORED naming ../ is refused");
	buf_reset(b);
	rd = restored;
	rd.backup = "";
	proto_restored_encode(b, &rd);
	CHECK(try_decode(PROTO_RESTORED, buf_ptr(b), buf_len(b)) == DS_ERR_PROTO,
	    "RESTORED without a backup set is refused");
	buf_reset(b);
	rd = restored;
	rd.mode = 0100644;
	CHECK(proto_restored_encode(b, &rd) == DS_ERR_INVALID, "a mode with type bits not encoded");
	buf_put_cstring(b, restored.path);
	buf_put_cstring(b, restored.backup);
	buf_put_u32(b, 0100644);
	buf_put_u64(b, 1);
	buf_put(b, restored.hash, HASH_LEN);
	CHECK(try_decode(PROTO_RESTORED, buf_ptr(b), buf_len(b)) == DS_ERR_PROTO,
	    "RESTORED with type bits in its mode is refused");
	buf_free(b);
	CHECK(strcmp(proto_type_name(PROTO_RESTORED), "RESTORED") == 0 &&
	    strcmp(proto_type_name(PROTO_RESTORE), "RESTORE") == 0, "the new frames are named");
}

static void
test_frames(void)
{
	struct buf *stream = buf_new(0), *payload = buf_new(0), *pl = buf_new(0);
	uint8_t type, hdr[5];
	int r, saved, fd;

	proto_hello_encode(payload, &hello);
	CHECK(proto_frame_put(stream, PROTO_HELLO, payload) == 0, "frame put");
	CHECK(proto_frame_put(stream, PROTO_OBJECT_END, NULL) == 0, "empty frame put");
	/* Every prefix of the stream is "incomplete", never an error. */
	{
		size_t len = buf_len(stream), bad = 0;

		for (size_t cut = 0; cut < buf_len(payload) + 5; cut++) {
			struct buf *part = buf_from(buf_ptr(stream), cut);

			if (proto_frame_get(part, "test", &type, pl) != 1 || buf_len(part) != cut)
				bad++;
			buf_free(part);
		}
		CHECK(bad == 0, "every truncated frame waits for more bytes");
		(void)len;
	}
	CHECK(proto_frame_get(stream, "test", &type, pl) == 0 && type == PROTO_HELLO &&
	    buf_len(pl) == buf_len(payload), "first frame");
	CHECK(proto_frame_get(stream, "test", &type, pl) == 0 && type == PROTO_OBJECT_END &&
	    buf_len(pl) == 0, "second frame");
	CHECK(proto_frame_get(stream, "test", &type, pl) == 1, "no more frames");

	saved = dup(2);
	fd = open("stderr.log", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	dup2(fd, 2);
	close(fd);
	/* Oversize length. */
	buf_reset(stream);
	buf_put_u32(stream, PROTO_FRAME_MAX + 1);
	buf_put_u8(stream, PROTO_DATA);
	r = proto_frame_get(stream, "test", &type, pl);
	CHECK(r == DS_ERR_PROTO, "a frame over 16 MiB is refused from its header");
	/* Unknown types. */
	buf_reset(stream);
	buf_put_u32(stream, 1);
	buf_put_u8(stream, 0);
	CHECK(proto_frame_get(stream, "test", &type, pl) == DS_ERR_PROTO, "type 0 refused");
	buf_reset(stream);
	buf_put_u32(stream, 1);
	buf_put_u8(stream, PROTO_TYPE_MAX + 1);
	CHECK(proto_frame_get(stream, "test", &type, pl) == DS_ERR_PROTO, "type past max refused");
	buf_reset(stream);
	buf_put_u32(stream, 0);
	buf_put_u8(stream, PROTO_HELLO);
	CHECK(proto_frame_get(stream, "test", &type, pl) == DS_ERR_PROTO, "length 0 refused");
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	{
		char *log = captured_log();

		CHECK(strstr(log, "DATA frame of 16777217 bytes is over") != NULL,
		    "the oversize message names the frame");
		free(log);
	}
	(void)hdr;
	buf_free(stream);
	buf_free(payload);
	buf_free(pl);
}

/* Frames over a real socketpair through the fd transport, including a large DATA. */
static void
test_xport(void)
{
	int sv[2];
	struct xport *a, *b;
	struct buf *pl = buf_new(0), *big = buf_new(0);
	struct proto_msg m;
	uint8_t *dst;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
		CHECK(0, "socketpair");
		return;
	}
	buf_reserve(big, PROTO_CHUNK_MAX, &dst);
	for (size_t i = 0; i < PROTO_CHUNK_MAX; i++)
		dst[i] = (uint8_t)(i * 7);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		a = xport_fd_new(sv[1], sv[1], "child");
		proto_send_hello(a, PROTO_ROLE_RECEIVER, PROTO_CAP_ALL);
		proto_send(a, PROTO_DATA, big);
		proto_send_error(a, DS_ERR_LOCKED, "locked by pid %d", 42);
		xport_free(a);
		buf_free(pl);
		buf_free(big);
		_exit(0);
	}
	close(sv[1]);
	b = xport_fd_new(sv[0], sv[0], "peer");
	b->idle_timeout = 10;
	CHECK(proto_recv_msg(b, PROTO_HELLO, pl, &m) == 0 &&
	    m.u.hello.caps == PROTO_CAP_ALL, "HELLO over a socketpair");
	proto_msg_free(&m);
	CHECK(proto_recv_msg(b, PROTO_DATA, pl, &m) == 0 && m.data_len == PROTO_CHUNK_MAX &&
	    memcmp(m.data, buf_ptr(big), PROTO_CHUNK_MAX) == 0, "1 MiB DATA intact");
	proto_msg_free(&m);
	CHECK(proto_recv_msg(b, PROTO_RESULT, pl, &m) == DS_ERR_LOCKED,
	    "the peer's ERROR keeps its precondition code");
	CHECK(proto_recv_msg(b, 0, pl, &m) == DS_ERR_CONNECT, "EOF is a connection error");
	CHECK(b->bytes_in > PROTO_CHUNK_MAX, "bytes counted: %llu",
	    (unsigned long long)b->bytes_in);
	xport_fd_set_child(b, pid);
	CHECK(xport_close(b) == 0, "child reaped with status 0");
	xport_free(b);
	buf_free(pl);
	buf_free(big);
}

/*
 * RESULT's site plan (PROTO_CAP_SITEPLAN): it round-trips with the site tail
 * before it; every cut inside it, a trailing byte, an unknown kind, a reason
 * that is not a clean path, an empty name and a count beyond the frame are
 * refused; the encoder refuses what the decoder would.
 */
static struct proto_restart restarts[] = {
	{ .name = "backend", .kind = PROTO_RESTART_RESTART, .why = "openmrs_modules/a.omod" },
	{ .name = "frontend", .kind = PROTO_RESTART_RELOAD, .why = "frontend/index.html" },
	{ .name = "static", .kind = PROTO_RESTART_NONE, .why = "frontend/x y.js" },
};
static char *would_run[] = { "run_once[0] trusted_sql/002.sql", NULL };

/* Encodes R; returns the length of the encoding without the site plan in *plain. */
static struct buf *
siteplan_encode(const struct proto_result *r, size_t *plain)
{
	struct proto_result no = *r;
	struct buf *b = buf_new(0);

	no.siteplan = 0;
	no.tail = 1;
	proto_result_encode(b, &no);
	*plain = buf_len(b);
	buf_reset(b);
	if (proto_result_encode(b, r) != 0) {
		buf_free(b);
		return NULL;
	}
	return b;
}

static void
test_siteplan(void)
{
	struct proto_result r = result, bad;
	struct proto_restart bad_items[1];
	struct proto_msg m;
	struct buf *b, *b2, *copy;
	size_t plain, cut_bad = 0, flips = 0;
	int saved, fd, dec;

	r.siteplan = 1;
	r.restarts = restarts;
	r.nrestarts = 3;
	r.would_run = would_run;
	r.nwould_run = 1;
	b = siteplan_encode(&r, &plain);
	CHECK(b != NULL && buf_len(b) > plain, "a RESULT with a site plan encodes (tail first)");
	copy = buf_from(buf_ptr(b), buf_len(b));
	dec = proto_msg_decode(PROTO_RESULT, copy, "test", &m);
	CHECK(dec == 0 && m.u.result.siteplan && m.u.result.tail && m.u.result.nrestarts == 3 &&
	    strcmp(m.u.result.restarts[1].name, "frontend") == 0 &&
	    m.u.result.restarts[1].kind == PROTO_RESTART_RELOAD &&
	    strcmp(m.u.result.restarts[2].why, "frontend/x y.js") == 0 &&
	    m.u.result.nwould_run == 1 &&
	    strcmp(m.u.result.would_run[0], would_run[0]) == 0, "it decodes field for field");
	b2 = buf_new(0);
	CHECK(dec == 0 && proto_result_encode(b2, &m.u.result) == 0 &&
	    buf_len(b2) == buf_len(b) && memcmp(buf_ptr(b), buf_ptr(b2), buf_len(b)) == 0,
	    "and re-encodes to the same bytes");
	proto_msg_free(&m);
	buf_free(copy);
	buf_free(b2);

	saved = dup(2);
	fd = open("stderr.log", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	dup2(fd, 2);
	close(fd);
	/* Without it (an older peer's RESULT with the tail) it decodes; any cut inside is refused. */
	CHECK(try_decode(PROTO_RESULT, buf_ptr(b), plain) == 0,
	    "a RESULT that stops before the site plan is one without it");
	for (size_t cut = plain + 1; cut < buf_len(b); cut++)
		if (try_decode(PROTO_RESULT, buf_ptr(b), cut) != DS_ERR_PROTO)
			cut_bad++;
	CHECK(cut_bad == 0, "all %zu cuts inside the site plan refused (%zu accepted)",
	    buf_len(b) - plain - 1, cut_bad);
	{
		uint8_t *p = malloc(buf_len(b) + 1);

		memcpy(p, buf_ptr(b), buf_len(b));
		p[buf_len(b)] = 0;
		CHECK(try_decode(PROTO_RESULT, p, buf_len(b) + 1) == DS_ERR_PROTO,
		    "a trailing byte after the site plan is refused");
		for (size_t pos = plain; pos < buf_len(b); pos++)
			for (int bit = 0; bit < 8; bit++, flips++) {
				p[pos] ^= (uint8_t)(1u << bit);
				try_decode(PROTO_RESULT, p, buf_len(b));
				p[pos] ^= (uint8_t)(1u << bit);
			}
		/* The kind byte of the first entry: after the count and the name (u32 length, bytes). */
		p[plain + 4 + 4 + strlen("backend")] = PROTO_RESTART_MAX + 1;
		CHECK(try_decode(PROTO_RESULT, p, buf_len(b)) == DS_ERR_PROTO,
		    "an unknown restart kind is refused");
		memcpy(p, buf_ptr(b), buf_len(b));
		/* A count beyond what the frame holds, refused before allocating. */
		memset(p + plain, 0xff, 4);
		CHECK(try_decode(PROTO_RESULT, p, buf_len(b)) == DS_ERR_PROTO,
		    "a huge site plan count is refused");
		free(p);
	}
	CHECK(flips > 0, "%zu bit flips in the site plan decoded without a crash", flips);
	buf_free(b);

	bad = r;
	bad.restarts = bad_items;
	bad.nrestarts = 1;
	bad_items[0] = restarts[0];
	bad_items[0].why = "../etc/passwd";
	b = siteplan_encode(&bad, &plain);
	CHECK(b != NULL && try_decode(PROTO_RESULT, buf_ptr(b), buf_len(b)) == DS_ERR_PROTO,
	    "a reason that is not a clean path is refused");
	buf_free(b);
	bad_items[0] = restarts[0];
	bad_items[0].name = "";
	b = siteplan_encode(&bad, &plain);
	CHECK(b != NULL && try_decode(PROTO_RESULT, buf_ptr(b), buf_len(b)) == DS_ERR_PROTO,
	    "an empty service name is refused");
	buf_free(b);
	bad_items[0] = restarts[0];
	bad_items[0].kind = 7;
	CHECK(siteplan_encode(&bad, &plain) == NULL, "the encoder refuses an unknown kind");
	bad.nrestarts = PROTO_LIST_MAX + 1;
	CHECK(siteplan_encode(&bad, &plain) == NULL, "and a list over PROTO_LIST_MAX");
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	{
		char *log = captured_log();

		CHECK(strstr(log, "test: RESULT frame: bad restart kind in the site plan") != NULL,
		    "errors name the RESULT frame and the site plan");
		free(log);
	}
}

static char logged[2][256];
static int nlogged;

static void
keep_line(const char *line, void *arg)
{
	(void)arg;
	if (nlogged < 2)
		snprintf(logged[nlogged], sizeof(logged[0]), "%s", line);
	nlogged++;
}

/* A peer's error lines name the peer once, also when a line names it already. */
static void
test_log_lines(void)
{
	log_set_writer(keep_line, NULL);
	proto_log_lines("kirehe", "host kirehe: service backend failed\ndisk full");
	CHECK(nlogged == 2, "two lines: %d", nlogged);
	CHECK(strcmp(logged[0], "distsync: host kirehe: service backend failed") == 0,
	    "the line naming its host is not prefixed again: %s", logged[0]);
	CHECK(strcmp(logged[1], "distsync: kirehe: disk full") == 0,
	    "the other is: %s", logged[1]);
	log_set_writer(NULL, NULL);
}

int
main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	tap_run("log lines", test_log_lines);
	tap_run("round-trip", test_round_trip);
	tap_run("mutations", test_mutations);
	tap_run("semantic", test_semantic_checks);
	tap_run("restore", test_restore);
	tap_run("frames", test_frames);
	tap_run("xport", test_xport);
	tap_run("siteplan", test_siteplan);
	return tap_done();
}
