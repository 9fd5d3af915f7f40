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
#include "log.h"
#include "receiver.h"
#include "xport-local.h"
#include "xport.h"

extern const struct cmd_entry cmd_serve_entry;

static const char serve_options[] =
    "  --root DIR    refuse any target that is not DIR or below it (required)\n"
    "  --state DIR   state directory to use instead of the host's\n"
    "  -h, --help    this help\n"
    "\nThe protocol runs on stdin and stdout; messages go to stderr.\n";

static int
serve_exec(int argc, char **argv, const struct config *config)
{
	static const struct option options[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "state", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct receiver_options ro;
	struct xport *x;
	struct stat st;
	int ch, r;

	memset(&ro, 0, sizeof(ro));
	while ((ch = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (ch) {
		case 'r':
			ro.root = optarg;
			break;
		case 's':
			ro.state = optarg;
			break;
		case 'h':
			cmd_usage(&cmd_serve_entry, serve_options);
			return 0;
		default:
			cmd_usage(&cmd_serve_entry, serve_options);
			return DS_ERR_USAGE;
		}
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
	.usage = "--root DIR [--state DIR]",
	.summary = "be the receiving peer on stdin/stdout (run over SSH)",
	.needs_config = 0,
	.exec = serve_exec,
};
