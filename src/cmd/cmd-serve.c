/*
 * distsync serve: the receiving peer on stdin/stdout, as started over SSH
 * (also what an authorized_keys forced command runs).
 */
#include "autoconf.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/util.h"
#include "base/words.h"
#include "base/xmalloc.h"
#include "cmd/cmd.h"
#include "cmd/pull.h"
#include "config/config.h"
#include "session/receiver.h"
#include "wire/proto.h"
#include "wire/xport-local.h"
#include "wire/xport.h"

extern const struct cmd_entry cmd_serve_entry;

static const char serve_options[] =
    "  --root DIR    refuse any target that is not DIR or below it (required)\n"
    "  --state DIR   state directory to use instead of the host's\n"
    "  --site-config FILE  this site's own configuration: the only source of the\n"
    "                commands it runs (services, health, run_once), of owner,\n"
    "                keep_backups and trust_root; without it no command runs\n"
    "  --send        be the sender of a site's pull instead (with -c REPO):\n"
    "    --host NAME        the site's name in hosts: (required)\n"
    "    --release ID       that release instead of the latest\n"
    "    --dry-run, --no-restart, --lock-timeout S   passed on to the site\n"
    "    --bwlimit RATE     cap (the lower of this and the host's bwlimit)\n"
    "    --idle-timeout S   drop a link silent this long\n"
    "    --only-host NAME   serve only this host (repeatable); for an\n"
    "                       authorized_keys forced command, where the site's\n"
    "                       own options come from SSH_ORIGINAL_COMMAND;\n"
    "                       --release, --bwlimit and --idle-timeout given\n"
    "                       here hold over the site's\n"
    "  -h, --help    this help\n"
    "\nThe protocol runs on stdin and stdout; messages go to stderr.\n";

#define ONLY_MAX	64

/* The options of a pull's request, as the site sends them (cmd-pull.c). */
#define SEND_OPTIONS \
	{ "send", no_argument, NULL, 'S' }, \
	{ "host", required_argument, NULL, 'H' }, \
	{ "release", required_argument, NULL, 'E' }, \
	{ "dry-run", no_argument, NULL, 'n' }, \
	{ "no-restart", no_argument, NULL, 'R' }, \
	{ "lock-timeout", required_argument, NULL, 'L' }, \
	{ "bwlimit", required_argument, NULL, 'b' }, \
	{ "idle-timeout", required_argument, NULL, 'i' }

static const struct option send_options[] = {
	SEND_OPTIONS,
	{ NULL, 0, NULL, 0 }
};

/* Applies one of send_options to ps. Returns 0, or DS_ERR_USAGE (logged). */
static int
send_option(int ch, const char *arg, struct pull_send_options *ps)
{
	const char *why;

	switch (ch) {
	case 'S':
		return 0;
	case 'H':
		ps->host = arg;
		return 0;
	case 'E':
		ps->release = arg;
		return 0;
	case 'n':
		ps->flags |= PROTO_FLAG_DRY_RUN;
		return 0;
	case 'R':
		ps->flags |= PROTO_FLAG_NO_RESTART;
		return 0;
	case 'L':
		return util_parse_seconds("lock-timeout", arg, 86400, &ps->lock_timeout) != 0 ?
		    DS_ERR_USAGE : 0;
	case 'b':
		if (config_parse_bwlimit(arg, &ps->bwlimit, &why) != 0) {
			log_error("--bwlimit: '%s': %s", arg, why ? why : "invalid");
			return DS_ERR_USAGE;
		}
		return 0;
	case 'i':
		if (util_parse_uint(arg, 86400, &ps->idle_timeout) != 0) {
			log_error("--idle-timeout: '%s' is not a number of seconds", arg);
			return DS_ERR_USAGE;
		}
		return 0;
	}
	return DS_ERR_USAGE;
}

/*
 * A forced command's request: the pull options after "serve" in the
 * command the site asked for (its -c and remote command are not used),
 * over those of the forced command. Returns 0 or DS_ERR_USAGE (logged).
 */
static int
original_request(const char *command, struct pull_send_options *ps, char ***words_out)
{
	char **words;
	int n = 0, ch, r = 0, i;

	*words_out = NULL;
	if ((words = words_split(command, &n)) == NULL) {
		log_error("serve: the requested command is not one a distsync pull sends: %s",
		    command);
		return DS_ERR_USAGE;
	}
	*words_out = words;
	for (i = 0; i < n && strcmp(words[i], "serve") != 0; i++)
		;
	if (i >= n - 1 || strcmp(words[i + 1], "--send") != 0) {
		log_error("serve: this key may only pull (serve --send); it asked for: %s",
		    command);
		return DS_ERR_USAGE;
	}
	optind = 0;
	opterr = 0;
	while (r == 0 && (ch = getopt_long(n - i, words + i, "", send_options, NULL)) != -1) {
		if (ch == '?' || ch == ':') {
			log_error("serve: option not allowed in a pull request: %s",
			    words[i + optind - 1]);
			r = DS_ERR_USAGE;
		} else
			r = send_option(ch, optarg, ps);
	}
	opterr = 1;
	if (r == 0 && optind != n - i) {
		log_error("serve: unexpected '%s' in the pull request", words[i + optind]);
		r = DS_ERR_USAGE;
	}
	return r;
}

/*
 * What the forced command itself said holds over the site's request: its
 * --release is a pin (a request for another release is refused), its
 * --bwlimit a ceiling, its --idle-timeout the limit. The site keeps its own
 * dry run, no-restart and lock timeout. Returns 0 or DS_ERR_USAGE (logged).
 */
static int
forced_pins(const struct pull_send_options *forced, struct pull_send_options *ps)
{
	if (forced->release != NULL) {
		if (ps->release != NULL && strcmp(ps->release, forced->release) != 0) {
			log_error("serve: this key may pull only release %s; it asked for %s",
			    forced->release, ps->release);
			return DS_ERR_USAGE;
		}
		ps->release = forced->release;
	}
	if (forced->bwlimit > 0 && (ps->bwlimit == 0 || ps->bwlimit > forced->bwlimit))
		ps->bwlimit = forced->bwlimit;
	if (forced->idle_timeout > 0)
		ps->idle_timeout = forced->idle_timeout;
	return 0;
}

/* The pull half: checks --only-host, then runs pull_send. */
static int
serve_send(struct pull_send_options *ps, const char *const *only, size_t nonly)
{
	const char *orig = getenv("SSH_ORIGINAL_COMMAND");
	struct pull_send_options forced = *ps;
	char **words = NULL, list[512];
	size_t used = 0;
	int r = 0, allowed = nonly == 0;

	if (nonly > 0 && orig != NULL && ((r = original_request(orig, ps, &words)) != 0 ||
	    (r = forced_pins(&forced, ps)) != 0))
		goto out;
	if (ps->host == NULL && nonly == 1)
		ps->host = only[0];
	if (ps->host == NULL) {
		cmd_usage(&cmd_serve_entry, serve_options);
		r = DS_ERR_USAGE;
		goto out;
	}
	list[0] = '\0';
	for (size_t i = 0; i < nonly; i++) {
		if (strcmp(only[i], ps->host) == 0)
			allowed = 1;
		used += (size_t)snprintf(list + used, used < sizeof(list) ? sizeof(list) - used : 0,
		    "%s%s", i > 0 ? ", " : "", only[i]);
		if (used >= sizeof(list))
			used = sizeof(list) - 1;
	}
	if (!allowed) {
		log_error("serve: host '%s' may not pull here: this key may pull only %s",
		    ps->host, list);
		r = DS_ERR_CONFIG;
		goto out;
	}
	ps->config_file = cmd_config_file;
	r = pull_send(ps);
out:
	words_free(words);
	return r;
}

static int
serve_exec(int argc, char **argv, const struct config *config)
{
	static const struct option options[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "state", required_argument, NULL, 's' },
		{ "site-config", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ "only-host", required_argument, NULL, 'O' },
		SEND_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	const char *only[ONLY_MAX];
	size_t nonly = 0;
	struct pull_send_options ps;
	int send = 0;
	struct receiver_options ro;
	const char *site_file = NULL;
	struct xport *x;
	struct stat st;
	int ch, r;

	(void)config;
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
		case 'C':
			site_file = optarg;
			break;
		case 'O':
			if (nonly == ONLY_MAX) {
				log_error("--only-host: at most %d hosts", ONLY_MAX);
				return DS_ERR_USAGE;
			}
			only[nonly++] = optarg;
			break;
		case 'h':
			cmd_help(&cmd_serve_entry, serve_options);
			return 0;
		case 'S':
			send = 1;
			/* FALLTHROUGH */
		case 'H':
		case 'E':
		case 'n':
		case 'R':
		case 'L':
		case 'b':
		case 'i':
			if ((r = send_option(ch, optarg, &ps)) != 0)
				return r;
			break;
		default:
			cmd_usage(&cmd_serve_entry, serve_options);
			return DS_ERR_USAGE;
		}
	}
	/*
	 * Run by sshd, its stderr is the initiator's to print: each line says
	 * its level there, so the initiator's -q silences this side's info.
	 */
	if (getenv("SSH_CONNECTION") != NULL)
		log_set_level_tags(1);
	if (send) {
		if (optind != argc || ro.root != NULL || site_file != NULL) {
			cmd_usage(&cmd_serve_entry, serve_options);
			return DS_ERR_USAGE;
		}
		return serve_send(&ps, only, nonly);
	}
	if (optind != argc || ro.root == NULL || nonly > 0) {
		cmd_usage(&cmd_serve_entry, serve_options);
		return DS_ERR_USAGE;
	}
	/* A root that does not exist yet is the target of a first push, made then. */
	if (stat(ro.root, &st) == 0 && !S_ISDIR(st.st_mode)) {
		log_error("--root %s: not a directory", ro.root);
		return DS_ERR_USAGE;
	}
	/* Loaded in the session: a file that does not load is told to the initiator. */
	ro.site_config_file = site_file;
	signal(SIGPIPE, SIG_IGN);
	x = xport_fd_new(STDIN_FILENO, STDOUT_FILENO, "initiator");
	r = receiver_run(x, &ro);
	xport_free(x);

	return r;
}

const struct cmd_entry cmd_serve_entry = {
	.name = "serve",
	.usage = "--root DIR [--state DIR] [--site-config FILE] | --send --host NAME [--release ID] [--only-host NAME] [...]",
	.summary = "be the receiving peer on stdin/stdout (run over SSH)",
	.needs_config = 0,
	.exec = serve_exec,
};
