/*
 * A hostile site for tests/func/restore-hostile.sh: it stands where
 * `distsync serve` would (started over SSH as the host's remote_command)
 * and answers the initiator with what an honest site never sends:
 *
 *	hostile-site MODE [ignored...]
 *
 * For a restore (OPEN, RESTORE), MODE says how the first path is answered:
 *   other      RESTORED for evil.txt, a path the initiator did not ask for
 *   dotdot     RESTORED for ../escaped.txt
 *   absolute   RESTORED for /tmp/hostile-site-absolute.txt
 *   overlong   RESTORED declaring 4 bytes, then the whole content in DATA
 *   wronghash  content that does not hash to what RESTORED declared
 *   extra      the path asked for, then RESTORED for extra.txt, then RESULT
 *   setuid     the path asked for with mode 04755
 *   filetype   the path asked for with mode 0120777 (a symlink's type bits)
 *   huge       the path asked for declaring 2^62 bytes, then content without end
 * For a dry-run push (plan HOST), MODE "plan" answers with a site plan whose
 * service names, reasons, run_once runs, pending work and drift carry
 * terminal escapes, and a service of every kind.
 * It prints what it did on stderr and exits 0 once it has said its piece.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/xmalloc.h"
#include "wire/proto.h"
#include "wire/xport.h"

static const char content[] = "written by a hostile site\n";

/* ESC ] 0 ; title BEL, clear screen, a colour: what a terminal would obey. */
#define ESCAPES	"\033]0;pwned\007\033[2J\033[31m"

/* RESTORED as the encoder would write it, without its checks. */
static int
send_restored(struct xport *x, const char *path, uint32_t mode, uint64_t size,
    const uint8_t hash[HASH_LEN])
{
	struct buf *b = buf_new(PROTO_FRAME_MAX);
	int r;

	buf_put_cstring(b, path);
	buf_put_cstring(b, "1.0");
	buf_put_u32(b, mode);
	buf_put_u64(b, size);
	buf_put(b, hash, HASH_LEN);
	r = proto_send(x, PROTO_RESTORED, b);
	buf_free(b);
	return r;
}

static int
send_content(struct xport *x, const void *data, size_t len)
{
	struct buf *b = buf_new(PROTO_FRAME_MAX);
	int r;

	buf_put(b, data, len);
	if ((r = proto_send(x, PROTO_DATA, b)) == 0)
		r = proto_send(x, PROTO_OBJECT_END, NULL);
	buf_free(b);
	return r;
}

/* One DATA frame of a megabyte of zeros. */
static int
send_content_chunk(struct xport *x)
{
	struct buf *b = buf_new(PROTO_FRAME_MAX);
	uint8_t *dst;
	int r;

	buf_reserve(b, PROTO_CHUNK_MAX, &dst);
	memset(dst, 0, PROTO_CHUNK_MAX);
	r = proto_send(x, PROTO_DATA, b);
	buf_free(b);
	return r;
}

/* One file: RESTORED for PATH with MODE, then the content. */
static int
send_file(struct xport *x, const char *path, uint32_t mode)
{
	uint8_t h[HASH_LEN];
	int r;

	hash_bytes(content, sizeof(content) - 1, h);
	if ((r = send_restored(x, path, mode, sizeof(content) - 1, h)) != 0)
		return r;
	return send_content(x, content, sizeof(content) - 1);
}

static int
send_result(struct xport *x, struct proto_result *res)
{
	if (res->from == NULL)
		res->from = (char *)"";
	if (res->to == NULL)
		res->to = (char *)"";
	if (res->health == NULL)
		res->health = (char *)"none";
	if (res->message == NULL)
		res->message = (char *)"";
	return proto_send_msg(x, PROTO_RESULT, res);
}

static int
restore(struct xport *x, struct buf *in, const char *mode)
{
	struct proto_result res;
	struct proto_msg m;
	char *path;
	uint8_t h[HASH_LEN];
	int r;

	if ((r = proto_recv_msg(x, PROTO_RESTORE, in, &m)) != 0)
		return r;
	path = xstrdup(m.u.restore.paths[0]);
	fprintf(stderr, "hostile-site: asked for %s; answering '%s'\n", path, mode);
	hash_bytes(content, sizeof(content) - 1, h);
	if (strcmp(mode, "other") == 0)
		r = send_file(x, "evil.txt", 0644);
	else if (strcmp(mode, "dotdot") == 0)
		r = send_file(x, "../escaped.txt", 0644);
	else if (strcmp(mode, "absolute") == 0)
		r = send_file(x, "/tmp/hostile-site-absolute.txt", 0644);
	else if (strcmp(mode, "overlong") == 0) {
		uint8_t h4[HASH_LEN];

		hash_bytes(content, 4, h4);
		if ((r = send_restored(x, path, 0644, 4, h4)) == 0)
			r = send_content(x, content, sizeof(content) - 1);
	} else if (strcmp(mode, "wronghash") == 0) {
		if ((r = send_restored(x, path, 0644, sizeof(content) - 1, h)) == 0)
			r = send_content(x, "WRITTEN BY A HOSTILE SITE\n", sizeof(content) - 1);
	} else if (strcmp(mode, "extra") == 0) {
		if ((r = send_file(x, path, 0644)) == 0)
			r = send_file(x, "extra.txt", 0644);
	} else if (strcmp(mode, "setuid") == 0)
		r = send_file(x, path, 04755);
	else if (strcmp(mode, "filetype") == 0)
		r = send_file(x, path, 0120777);
	else if (strcmp(mode, "huge") == 0) {
		/* Until the initiator hangs up: a disk filler. */
		if ((r = send_restored(x, path, 0644, UINT64_C(1) << 62, h)) == 0)
			while ((r = send_content_chunk(x)) == 0)
				;
	}
	else
		r = DS_ERR_USAGE;
	proto_msg_free(&m);
	if (r == 0) {
		memset(&res, 0, sizeof(res));
		res.drift = (char *[]){ path, NULL };
		res.ndrift = 1;
		r = send_result(x, &res);
	}
	free(path);
	return r;
}

/* A dry run: STATE, FOUND, then after the initiator's COMMIT a RESULT with a site plan. */
static int
plan(struct xport *x, struct buf *in)
{
	struct proto_restart restarts[] = {
		{ (char *)"web" ESCAPES, PROTO_RESTART_RESTART, (char *)"conf/" ESCAPES "a" },
		{ (char *)"db" ESCAPES, PROTO_RESTART_RELOAD, (char *)"db/" ESCAPES "b" },
		{ (char *)"idle" ESCAPES, PROTO_RESTART_NONE, (char *)"idle/" ESCAPES "c" },
	};
	char *would_run[] = { (char *)"run_once[0] " ESCAPES "x", NULL };
	char *drift[] = { (char *)"drifted" ESCAPES, NULL };
	struct proto_result res;
	struct proto_state st;
	struct proto_found found;
	struct proto_msg m;
	int r;

	memset(&st, 0, sizeof(st));
	st.release = (char *)"";
	st.free_bytes = UINT64_C(1) << 40;
	st.drift = drift;
	st.ndrift = 1;
	memset(&found, 0, sizeof(found));
	found.release = (char *)"";
	if ((r = proto_send_msg(x, PROTO_STATE, &st)) != 0 ||
	    (r = proto_send_msg(x, PROTO_FOUND, &found)) != 0)
		return r;
	/* Whatever comes before COMMIT (FOUND; no object in a dry run) is read and dropped. */
	for (;;) {
		if ((r = proto_recv_msg(x, 0, in, &m)) != 0)
			return r;
		if (m.type == PROTO_COMMIT)
			break;
		fprintf(stderr, "hostile-site: dropped %s\n", proto_type_name(m.type));
		proto_msg_free(&m);
	}
	proto_msg_free(&m);
	memset(&res, 0, sizeof(res));
	res.flags = PROTO_FLAG_DRY_RUN;
	res.from = (char *)"";
	res.to = (char *)"1.0";
	res.pending = (char *)"pending " ESCAPES "work";
	res.tail = 1;
	res.siteplan = 1;
	res.restarts = restarts;
	res.nrestarts = sizeof(restarts) / sizeof(restarts[0]);
	res.would_run = would_run;
	res.nwould_run = 1;
	res.drift = drift;
	res.ndrift = 1;
	fprintf(stderr, "hostile-site: a site plan with escapes\n");
	return send_result(x, &res);
}

int
main(int argc, char **argv)
{
	struct xport *x = xport_fd_new(STDIN_FILENO, STDOUT_FILENO, "initiator");
	struct buf *in = buf_new(PROTO_FRAME_MAX);
	struct proto_msg m;
	uint64_t caps;
	uint8_t op;
	int r;

	if (argc < 2) {
		fprintf(stderr, "usage: hostile-site MODE [ignored...]\n");
		return 2;
	}
	if ((r = proto_recv_msg(x, PROTO_HELLO, in, &m)) != 0)
		goto out;
	r = proto_hello_check(&m.u.hello, "initiator", PROTO_ROLE_INITIATOR, PROTO_CAP_ALL,
	    &caps);
	proto_msg_free(&m);
	if (r != 0 || (r = proto_recv_msg(x, PROTO_OPEN, in, &m)) != 0)
		goto out;
	op = m.u.open.op;
	proto_msg_free(&m);
	if ((r = proto_send_hello(x, PROTO_ROLE_RECEIVER, PROTO_CAP_ALL)) != 0)
		goto out;
	if (op == PROTO_OP_RESTORE)
		r = restore(x, in, argv[1]);
	else if (op == PROTO_OP_PUSH && strcmp(argv[1], "plan") == 0)
		r = plan(x, in);
	else
		r = DS_ERR_USAGE;
	/* The initiator may have hung up after a refusal: that is its answer. */
	fprintf(stderr, "hostile-site: done (%d)\n", r);
	r = 0;
out:
	buf_free(in);
	xport_free(x);
	return r == 0 ? 0 : 1;
}
