/*
 * The one-host operations that are a single session with the receiver:
 * rollback and verify (cmd-rollback.c, cmd-verify.c).
 */
#include "autoconf.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "base/util.h"
#include "cmd/cmd.h"
#include "config/config.h"
#include "session/connect.h"
#include "session/sender.h"
#include "wire/proto.h"
#include "wire/xport.h"

int
cmd_host_op(int argc, char **argv, const struct config *config,
    const struct cmd_entry *entry, const char *help, int op)
{
	static const struct option options[] = {
		{ "no-restart", no_argument, NULL, 'R' },
		{ "lock-timeout", required_argument, NULL, 'L' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const struct config_host *host;
	struct sender_options so;
	struct sender_report rep;
	struct xport *x = NULL;
	unsigned lock_timeout = CONFIG_LOCK_TIMEOUT_DEFAULT;
	int ch, json = 0, r;

	memset(&so, 0, sizeof(so));
	memset(&rep, 0, sizeof(rep));
	so.op = op;
	while ((ch = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (ch) {
		case 'R':
			if (so.op != PROTO_OP_ROLLBACK)
				goto usage;
			so.flags |= PROTO_FLAG_NO_RESTART;
			break;
		case 'L':
			if (util_parse_seconds("lock-timeout", optarg, 86400, &lock_timeout) != 0)
				return DS_ERR_USAGE;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			cmd_usage(entry, help);
			return 0;
		default:
			goto usage;
		}
	}
	if (argc - optind != 1)
		goto usage;
	if ((host = config_host(config, argv[optind])) == NULL) {
		log_error("no host named '%s' in %s", argv[optind], config->file);
		return DS_ERR_NOTFOUND;
	}
	signal(SIGPIPE, SIG_IGN);
	so.config = config;
	so.host = host;
	so.lock_timeout = lock_timeout;
	if ((r = connect_host(config, host, &x)) == 0) {
		r = sender_run(x, &so, &rep);
		xport_close(x);
	}
	if (so.op == PROTO_OP_VERIFY && r == 0 && rep.result.changed > 0)
		r = DS_ERR_CORRUPT;	/* drift found: exit 1 */
	if (json) {
		sender_report_json(&rep, host->name, so.op, r, stdout);
		printf("\n");
	} else
		sender_report_print(&rep, host->name, so.op, r, stdout);
	sender_report_release(&rep);
	xport_free(x);
	return r;
usage:
	cmd_usage(entry, help);
	return DS_ERR_USAGE;
}
