/*
 * distsync trust HOST: show the SSH key fingerprints on the way to a host
 * (its jump hosts', then its own) and record them in known_hosts.
 */
#include "autoconf.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "cmd/cmd.h"
#include "config/config.h"
#include "wire/xport-ssh.h"

static const char trust_options[] =
    "  -y, --yes              record without asking (needed when stdin is not a terminal)\n"
    "      --known-hosts FILE record in FILE (default: the host's known_hosts, else\n"
    "                         ~/.ssh/known_hosts)\n"
    "  -p, --port PORT        port, for a HOST not in the configuration\n"
    "  -l, --user USER        user, for a HOST not in the configuration\n"
    "\n"
    "HOST is a host name from the configuration (-c FILE, default ./distsync.yml;\n"
    "on a site give -c /etc/distsync/site.yml and the upstream's name), or else an\n"
    "address (an alias from ~/.ssh/config works). Keys are recorded where push and\n"
    "pull look for them: the host's known_hosts, else ~/.ssh/config's\n"
    "UserKnownHostsFile, else ~/.ssh/known_hosts. With a ProxyJump in\n"
    "~/.ssh/config each jump host's key is shown and recorded first (trust logs\n"
    "in to the jump hosts to reach HOST). A changed key is never replaced: remove\n"
    "the old entry first (the error names the file and line).\n";

static int cmd_trust_exec(int argc, char **argv, const struct config *config);

const struct cmd_entry cmd_trust_entry = {
	.name = "trust",
	.usage = "[-y] [--known-hosts FILE] [-p PORT] [-l USER] HOST",
	.summary = "show a host's SSH key fingerprints (jump hosts too) and record them",
	.needs_config = 0,
	.exec = cmd_trust_exec,
};

/* Asks on the terminal; anything but yes refuses. */
static int
confirm_on_tty(const char *who, const char *key_type, const char *fingerprint, void *arg)
{
	char answer[16];

	fprintf(stderr, "Trust %s key %s for %s? [y/N] ", key_type, fingerprint, who);
	fflush(stderr);
	if (fgets(answer, sizeof(answer), stdin) == NULL)
		return 0;
	return strcmp(answer, "y\n") == 0 || strcmp(answer, "yes\n") == 0 ||
	    strcmp(answer, "Y\n") == 0 || strcmp(answer, "YES\n") == 0;
}

/* Without a terminal nobody can compare the fingerprint: --yes says they did. */
static int
confirm_refuse(const char *who, const char *key_type, const char *fingerprint, void *arg)
{
	log_error("%s: not recording %s without confirmation: stdin is not a terminal; "
	    "compare the fingerprint, then run again with --yes", who, fingerprint);
	return 0;
}

static int
parse_port(const char *text, unsigned *out)
{
	char *end;
	unsigned long v;

	if (*text < '0' || *text > '9')
		return DS_ERR_USAGE;
	v = strtoul(text, &end, 10);
	if (*end != '\0' || v == 0 || v > 65535)
		return DS_ERR_USAGE;
	*out = (unsigned)v;
	return 0;
}

static int
cmd_trust_exec(int argc, char **argv, const struct config *config_unused)
{
	static const struct option options[] = {
		{ "yes", no_argument, NULL, 'y' },
		{ "known-hosts", required_argument, NULL, 'k' },
		{ "port", required_argument, NULL, 'p' },
		{ "user", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct config *config = NULL;
	const struct config_host *found = NULL;
	struct config_host host;
	struct xport_ssh_opts opts = { 0 };
	const char *known_hosts = NULL, *user = NULL, *file;
	unsigned port = 0;
	int ch, yes = 0, r;

	while ((ch = getopt_long(argc, argv, "+yk:p:l:h", options, NULL)) != -1) {
		switch (ch) {
		case 'y':
			yes = 1;
			break;
		case 'k':
			known_hosts = optarg;
			break;
		case 'p':
			if (parse_port(optarg, &port) != 0) {
				log_error("trust: invalid port '%s'", optarg);
				return DS_ERR_USAGE;
			}
			break;
		case 'l':
			user = optarg;
			break;
		case 'h':
			cmd_help(&cmd_trust_entry, trust_options);
			return 0;
		default:
			cmd_usage(&cmd_trust_entry, trust_options);
			return DS_ERR_USAGE;
		}
	}
	if (argc - optind != 1) {
		cmd_usage(&cmd_trust_entry, trust_options);
		return DS_ERR_USAGE;
	}
	/*
	 * A configured host is used as configured; without a configuration
	 * file (or a HOST it does not name) HOST is an SSH address, so a new
	 * site can be trusted before it is added to distsync.yml.
	 */
	file = cmd_config_file ? cmd_config_file : CONFIG_FILE_DEFAULT;
	if (cmd_config_file != NULL || access(file, F_OK) == 0) {
		if ((r = config_load(file, &config)) != 0)
			return r;
		found = config_host(config, argv[optind]);
	}
	if (found != NULL) {
		host = *found;
		if (host.address == NULL) {
			log_error("%s: a local target (no address): nothing to trust", host.name);
			r = DS_ERR_USAGE;
			goto out;
		}
	} else {
		memset(&host, 0, sizeof(host));
		host.name = argv[optind];
		host.address = argv[optind];
	}
	if (known_hosts != NULL)
		host.known_hosts = (char *)known_hosts;
	if (user != NULL)
		host.user = (char *)user;
	if (port != 0)
		host.port = port;
	opts.config_file = cmd_config_file;
	r = xport_ssh_trust(&host, &opts, yes ? NULL : isatty(STDIN_FILENO) ? confirm_on_tty :
	    confirm_refuse, NULL);
out:
	config_free(config);
	return r;
}
