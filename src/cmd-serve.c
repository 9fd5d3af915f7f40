/*
 * distsync serve: the receiving peer on stdin/stdout, as started over SSH
 * (also what an authorized_keys forced command runs).
 */
#include "autoconf.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "err.h"
#include "config.h"
#include "log.h"
#include "proto.h"
#include "pull.h"
#include "receiver.h"
#include "util.h"
#include "xport-local.h"
#include "xport.h"

extern const struct cmd_entry cmd_serve_entry;

static const char serve_options[] =
    "  --root DIR    refuse any target that is not DIR or below it (required)\n"
    "  --state DIR   state directory to use instead of the host's\n"
    "  --send        be the sender of a site's pull instead (with -c REPO):\n"
    "    --host NAME        the site's name in hosts: (required)\n"
    "    --release ID       that release instead of the latest\n"
    "    --dry-run, --no-restart, --lock-timeout S   passed on to the site\n"
    "    --bwlimit RATE     cap (the lower of this and the host's bwlimit)\n"
    "    --idle-timeout S   drop a link silent this long\n"
    "  -h, --help    this help\n"
    "\nThe protocol runs on stdin and stdout; messages go to stderr.\n";

static int
serve_exec(int argc, char **argv, const struct config *config)
{
	static const struct option options[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "state", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "send", no_argument, NULL, 'S' },
		{ "host", required_argument, NULL, 'H' },
		{ "release", required_argument, NULL, 'E' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "no-restart", no_argument, NULL, 'R' },
		{ "lock-timeout", required_argument, NULL, 'L' },
		{ "bwlimit", required_argument, NULL, 'b' },
		{ "idle-timeout", required_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 }
	};
	struct pull_send_options ps;
	const char *why;
	int send = 0;
	struct receiver_options ro;
	struct xport *x;
	struct stat st;
	int ch, r;

	memset(&ro, 0, sizeof(ro));
	memset(&ps, 0, sizeof(ps));
	while ((ch = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (ch) {
		case 'r':
			ro.root = optarg;
			break;
		case 's':
			ro.state = optarg;
			break;
		case 'S':
			send = 1;
			break;
		case 'H':
			ps.host = optarg;
			break;
		case 'E':
			ps.release = optarg;
			break;
		case 'n':
			ps.flags |= PROTO_FLAG_DRY_RUN;
			break;
		case 'R':
			ps.flags |= PROTO_FLAG_NO_RESTART;
			break;
		case 'L':
			if (util_parse_seconds("lock-timeout", optarg, 86400, &ps.lock_timeout) != 0)
				return DS_ERR_USAGE;
			break;
		case 'b':
			if (config_parse_bwlimit(optarg, &ps.bwlimit, &why) != 0) {
				log_error("--bwlimit: '%s': %s", optarg, why ? why : "invalid");
				return DS_ERR_USAGE;
			}
			break;
		case 'i':
			if (util_parse_uint(optarg, 86400, &ps.idle_timeout) != 0) {
				log_error("--idle-timeout: '%s' is not a number of seconds", optarg);
				return DS_ERR_USAGE;
			}
			break;
		case 'h':
			cmd_usage(&cmd_serve_entry, serve_options);
			return 0;
		default:
			cmd_usage(&cmd_serve_entry, serve_options);
			return DS_ERR_USAGE;
		}
	}
	if (send) {
		if (optind != argc || ps.host == NULL || ro.root != NULL) {
			cmd_usage(&cmd_serve_entry, serve_options);
			return DS_ERR_USAGE;
		}
		ps.config_file = cmd_config_file;
		return pull_send(&ps);
	}
	if (optind != argc || ro.root == NULL) {
		cmd_usage(&cmd_serve_entry, serve_options);
		return DS_ERR_USAGE;
	}
	/* A root that does not exist yet is the target of a first push, made then. */
	if (stat(ro.root, &st) == 0 && !S_ISDIR(st.st_mode)) {
		log_error("--root %s: not a directory", ro.root);
		return DS_ERR_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	x = xport_fd_new(STDIN_FILENO, STDOUT_FILENO, "initiator");
	r = receiver_run(x, &ro);
	xport_free(x);
	return r;
}

const struct cmd_entry cmd_serve_entry = {
	.name = "serve",
	.usage = "--root DIR [--state DIR] | --send --host NAME [--release ID] [...]",
	.summary = "be the receiving peer on stdin/stdout (run over SSH)",
	.needs_config = 0,
	.exec = serve_exec,
};
