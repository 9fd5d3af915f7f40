/* distsync push: send a release to hosts and apply it there atomically. */
#include "autoconf.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "proto.h"
#include "sender.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"
#include "xport.h"

#define LOCK_TIMEOUT_DEFAULT	30	/* seconds to wait for a target's lock */

extern const struct cmd_entry cmd_push_entry;

static const char push_options[] =
    "  --release ID        push this release (default: the latest); older ones too\n"
    "  --dry-run           say what would change; change nothing\n"
    "  --fail-on-drift     refuse when files changed on the host since the last apply\n"
    "  --no-restart        apply the files but restart no service\n"
    "  --lock-timeout S    wait up to S seconds for the host's lock (default 30)\n"
    "  --json              one JSON object per host, in an array\n"
    "  -h, --help          this help\n";

/* Worse of two results for the exit code: any failure beats success. */
static int
worse(int a, int b)
{
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	/* A failed host (exit 1) outranks a precondition (exit 3) for the summary. */
	return ds_exit_code(a) == DS_EXIT_FAILED ? a : b;
}

static int
push_exec(int argc, char **argv, const struct config *config)
{
	static const struct option options[] = {
		{ "release", required_argument, NULL, 'r' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "fail-on-drift", no_argument, NULL, 'F' },
		{ "no-restart", no_argument, NULL, 'R' },
		{ "lock-timeout", required_argument, NULL, 'L' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const struct config_host **hosts = NULL;
	struct sender_options so;
	struct store *store = NULL;
	size_t nhosts = 0;
	unsigned lock_timeout = LOCK_TIMEOUT_DEFAULT;
	int ch, json = 0, r, worst = 0;

	memset(&so, 0, sizeof(so));
	so.op = PROTO_OP_PUSH;
	while ((ch = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (ch) {
		case 'r':
			if (store_release_id_check(optarg) != 0) {
				log_error("--release: '%s' is not a release id", optarg);
				return DS_ERR_USAGE;
			}
			so.release = optarg;
			break;
		case 'n':
			so.flags |= PROTO_FLAG_DRY_RUN;
			break;
		case 'F':
			so.flags |= PROTO_FLAG_FAIL_ON_DRIFT;
			break;
		case 'R':
			so.flags |= PROTO_FLAG_NO_RESTART;
			break;
		case 'L':
			if (util_parse_uint(optarg, 86400, &lock_timeout) != 0) {
				log_error("--lock-timeout: '%s' is not a number of seconds (0..86400)",
				    optarg);
				return DS_ERR_USAGE;
			}
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			cmd_usage(&cmd_push_entry, push_options);
			return 0;
		default:
			cmd_usage(&cmd_push_entry, push_options);
			return DS_ERR_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		cmd_usage(&cmd_push_entry, push_options);
		return DS_ERR_USAGE;
	}
	if ((r = config_resolve_hosts(config, argv, (size_t)argc, &hosts, &nhosts)) != 0)
		return r;
	if ((r = store_open(config->distribution.store, 0, &store)) != 0)
		goto out;
	signal(SIGPIPE, SIG_IGN);
	so.config = config;
	so.store = store;
	so.lock_timeout = lock_timeout;
	so.level = config->distribution.level;
	if (json)
		printf("[");
	for (size_t i = 0; i < nhosts; i++) {
		struct sender_report rep;
		struct xport *x = NULL;
		int hr, cr;

		memset(&rep, 0, sizeof(rep));
		so.host = hosts[i];
		hr = sender_connect(config, hosts[i], &x);
		if (hr == 0) {
			hr = sender_run(x, &so, &rep);
			cr = xport_close(x);
			if (hr == 0 && cr != 0)
				log_warn("%s: the receiver exited with status %d", hosts[i]->name, cr);
		}
		if (json) {
			printf("%s", i ? "," : "");
			sender_report_json(&rep, hosts[i]->name, PROTO_OP_PUSH, hr, stdout);
		} else
			sender_report_print(&rep, hosts[i]->name, PROTO_OP_PUSH, hr, stdout);
		fflush(stdout);
		worst = worse(worst, hr);
		sender_report_release(&rep);
		xport_free(x);
	}
	if (json)
		printf("]\n");
	r = worst;
out:
	store_free(store);
	free(hosts);
	return r;
}

const struct cmd_entry cmd_push_entry = {
	.name = "push",
	.usage = "[--release ID] [--dry-run] [--fail-on-drift] [--no-restart] "
	    "[--lock-timeout S] [--json] HOST|GROUP...",
	.summary = "send a release to hosts and apply it atomically",
	.needs_config = 1,
	.exec = push_exec,
};
