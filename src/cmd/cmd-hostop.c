/*
 * What the session commands share: their common options (push, pull,
 * rollback, verify), and the one-host operations that are a single session
 * with the receiver, rollback and verify (cmd-rollback.c, cmd-verify.c).
 */
#include "autoconf.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/err.h"
#include "base/jsonio.h"
#include "base/log.h"
#include "base/util.h"
#include "cmd/cmd.h"
#include "config/config.h"
#include "repo/store.h"
#include "site/commit.h"
#include "session/connect.h"
#include "session/report.h"
#include "session/sender.h"
#include "wire/proto.h"
#include "wire/xport.h"

void
cmd_session_defaults(struct cmd_session_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->lock_timeout = CONFIG_LOCK_TIMEOUT_DEFAULT;
}

int
cmd_session_option(int ch, const char *arg, struct cmd_session_opts *o)
{
	switch (ch) {
	case 'r':
		if (store_release_id_check(arg) != 0) {
			log_error("--release: '%s' is not a release id", arg);
			return DS_ERR_USAGE;
		}
		o->release = arg;
		return 1;
	case 'n':
		o->flags |= PROTO_FLAG_DRY_RUN;
		return 1;
	case 'F':
		o->flags |= PROTO_FLAG_FAIL_ON_DRIFT;
		return 1;
	case 'R':
		o->flags |= PROTO_FLAG_NO_RESTART;
		return 1;
	case 'L':
		if (util_parse_seconds("lock-timeout", arg, 86400, &o->lock_timeout) != 0)
			return DS_ERR_USAGE;
		return 1;
	case 'J':
		o->json = 1;
		return 1;
	case 'j':
		if (util_parse_uint(arg, CMD_PARALLEL_MAX, &o->parallel) != 0 || o->parallel == 0) {
			log_error("--parallel: '%s' is not a number of hosts (1..%d)", arg,
			    CMD_PARALLEL_MAX);
			return DS_ERR_USAGE;
		}
		return 1;
	}
	return 0;
}

int
cmd_host_session(const struct config *config, const struct config_host *host, int op,
    const struct cmd_session_opts *o, struct report *rep)
{
	struct sender_options so;
	struct xport *x = NULL;
	int r;

	signal(SIGPIPE, SIG_IGN);
	memset(&so, 0, sizeof(so));
	so.op = (uint8_t)op;
	so.flags = o->flags;
	so.config = config;
	so.host = host;
	so.release = o->release;
	so.lock_timeout = o->lock_timeout;
	report_init(rep, so.op, so.flags);
	if ((r = connect_host(config, host, &x)) == 0) {
		r = sender_run(x, &so, rep);
		xport_close(x);
	}
	rep->status = r;
	xport_free(x);
	return r;
}

int
cmd_host_op(int argc, char **argv, const struct config *config,
    const struct cmd_entry *entry, const char *help, int op)
{
	static const struct option options[] = {
		{ "no-restart", no_argument, NULL, 'R' },
		{ "release", required_argument, NULL, 'r' },
		{ "lock-timeout", required_argument, NULL, 'L' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const struct config_host *host;
	struct cmd_session_opts o;
	struct report rep;
	int ch, r;

	cmd_session_defaults(&o);
	while ((ch = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if ((ch == 'R' || ch == 'r') && op != PROTO_OP_ROLLBACK)
			goto usage;
		if (ch == 'r') {
			/* A rollback may also return to the tree found before the first apply. */
			if (commit_state_id_check(optarg) != 0) {
				log_error("--release: '%s' is not a release id", optarg);
				return DS_ERR_USAGE;
			}
			o.release = optarg;
			continue;
		}
		if ((r = cmd_session_option(ch, optarg, &o)) < 0)
			return r;
		if (r == 1)
			continue;
		if (ch == 'h') {
			cmd_usage(entry, help);
			return 0;
		}
		goto usage;
	}
	if (argc - optind != 1)
		goto usage;
	if ((host = config_host(config, argv[optind])) == NULL) {
		log_error("no host named '%s' in %s", argv[optind], config->file);
		return DS_ERR_NOTFOUND;
	}
	r = cmd_host_session(config, host, op, &o, &rep);
	if (op == PROTO_OP_VERIFY && r == 0 && rep.result.changed > 0)
		r = DS_ERR_CORRUPT;	/* drift found: exit 1 */
	rep.status = r;
	if (o.json) {
		json_t *v = report_json(&rep, host->name);

		jsonio_write(stdout, v);
		printf("\n");
		json_decref(v);
	} else
		report_print_text(&rep, host->name, stdout);
	report_release(&rep);
	return r;
usage:
	cmd_usage(entry, help);
	return DS_ERR_USAGE;
}
