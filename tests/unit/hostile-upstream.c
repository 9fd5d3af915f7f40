/*
 * A hostile peer for tests/func/trust.sh: it stands where `distsync serve
 * --send` would (a pull's upstream, started over SSH as the host's
 * remote_command) or where a push initiator would (stdin/stdout into
 * `distsync serve`), and tries to make the site run commands and write
 * files it did not agree to:
 *
 *	hostile-upstream MARK [MODE] [ignored...]
 *
 * It sends OPEN with a configuration whose services, health check and
 * run_once all `touch MARK...`, ignores the site's dry run and no-restart,
 * sends one object and COMMITs a release holding it with no flags. MODE
 * "rollback" asks for a rollback instead. It prints what the site answered
 * on stderr and exits 0 when the site ended the session (whatever it said).
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "repo/manifest.h"
#include "wire/proto.h"
#include "wire/xport.h"

static const char payload[] = "written by a hostile peer\n";

int
main(int argc, char **argv)
{
	struct xport *x = xport_fd_new(STDIN_FILENO, STDOUT_FILENO, "site");
	struct buf *in = buf_new(0), *data = buf_new(0);
	const char *mark, *mode;
	struct proto_open open;
	struct proto_object ob;
	struct proto_commit commit;
	struct proto_msg m;
	char *config, *manifest, hex[HASH_HEX_LEN + 1];
	uint8_t hash[HASH_LEN];
	uint64_t caps;
	int r;

	if (argc < 2) {
		fprintf(stderr, "usage: hostile-upstream MARK [rollback] ...\n");
		return 2;
	}
	mark = argv[1];
	mode = argc > 2 ? argv[2] : "push";
	hash_bytes(payload, sizeof(payload) - 1, hash);
	hash_to_hex(hash, hex);
	/* Commands everywhere a configuration can carry one. */
	config = xasprintf(
	    "distribution: {name: evil}\n"
	    "services:\n"
	    "  evil:\n"
	    "    paths: [\"**\"]\n"
	    "    restart: command\n"
	    "    command: [/bin/sh, -c, \"touch %s.restart\"]\n"
	    "    health: {command: [/bin/sh, -c, \"touch %s.health\"], timeout: 5}\n"
	    "run_once:\n"
	    "  - {paths: [\"**\"], command: [/bin/sh, -c, \"touch %s.run_once\"]}\n"
	    "hosts:\n"
	    "  site: {path: /tmp/hostile-elsewhere, owner: nobody, keep_backups: 1000}\n",
	    mark, mark, mark);
	if ((r = proto_send_hello(x, PROTO_ROLE_INITIATOR, PROTO_CAP_ALL)) != 0 ||
	    (r = proto_recv_msg(x, PROTO_HELLO, in, &m)) != 0)
		goto out;
	r = proto_hello_check(&m.u.hello, "site", PROTO_ROLE_RECEIVER, PROTO_CAP_ALL, &caps);
	proto_msg_free(&m);
	if (r != 0)
		goto out;
	memset(&open, 0, sizeof(open));
	open.op = strcmp(mode, "rollback") == 0 ? PROTO_OP_ROLLBACK : PROTO_OP_PUSH;
	open.flags = 0;		/* whatever the site asked for */
	open.lock_timeout = 5;
	open.host = (char *)"site";
	open.config = (uint8_t *)config;
	open.config_len = strlen(config);
	if ((r = proto_send_msg(x, PROTO_OPEN, &open)) != 0)
		goto out;
	/* STATE (or, for a rollback, the RESULT; or an ERROR: the site refused). */
	if ((r = proto_recv_msg(x, 0, in, &m)) != 0)
		goto out;
	fprintf(stderr, "hostile: the site answered OPEN with %s\n", proto_type_name(m.type));
	if (m.type != PROTO_STATE) {
		proto_msg_free(&m);
		goto out;
	}
	proto_msg_free(&m);
	memset(&ob, 0, sizeof(ob));
	memcpy(ob.hash, hash, HASH_LEN);
	ob.encoding = PROTO_ENC_RAW;
	ob.size = sizeof(payload) - 1;
	buf_put(data, payload, sizeof(payload) - 1);
	if ((r = proto_send_msg(x, PROTO_OBJECT, &ob)) != 0 ||
	    (r = proto_send(x, PROTO_DATA, data)) != 0 ||
	    (r = proto_send(x, PROTO_OBJECT_END, NULL)) != 0) {
		fprintf(stderr, "hostile: the site stopped taking objects\n");
		goto answer;
	}
	manifest = xasprintf("distsync-manifest 1\nf 0644 %zu %s hostile.txt\n",
	    sizeof(payload) - 1, hex);
	memset(&commit, 0, sizeof(commit));
	commit.release = (char *)"evil-1";
	commit.manifest = (uint8_t *)manifest;
	commit.manifest_len = strlen(manifest);
	commit.flags = 0;	/* no dry run, restarts wanted */
	r = proto_send_msg(x, PROTO_COMMIT, &commit);
	free(manifest);
answer:
	/* Whatever the site says last. */
	if (proto_recv_msg(x, 0, in, &m) == 0) {
		fprintf(stderr, "hostile: the site answered %s", proto_type_name(m.type));
		if (m.type == PROTO_RESULT)
			fprintf(stderr, " status %d: %s", m.u.result.status, m.u.result.message);
		else if (m.type == PROTO_ERROR)
			fprintf(stderr, ": %s", m.u.error.message);
		fprintf(stderr, "\n");
		proto_msg_free(&m);
	}
	r = 0;
out:
	free(config);
	buf_free(in);
	buf_free(data);
	xport_free(x);
	return r == 0 ? 0 : 1;
}
