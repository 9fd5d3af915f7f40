/* distsync: keep many sites' artifact trees identical to a release. */
#include "autoconf.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/hint.h"
#include "base/log.h"
#include "cmd/cmd.h"
#include "config/config.h"


/* One line per command; add yours here and in cmd_table. */
extern const struct cmd_entry cmd_release_entry;
extern const struct cmd_entry cmd_releases_entry;
extern const struct cmd_entry cmd_plan_entry;
extern const struct cmd_entry cmd_push_entry;
extern const struct cmd_entry cmd_status_entry;
extern const struct cmd_entry cmd_pull_entry;
extern const struct cmd_entry cmd_rollback_entry;
extern const struct cmd_entry cmd_restore_entry;
extern const struct cmd_entry cmd_verify_entry;
extern const struct cmd_entry cmd_serve_entry;
extern const struct cmd_entry cmd_trust_entry;
extern const struct cmd_entry cmd_keygen_entry;
extern const struct cmd_entry cmd_keys_entry;
extern const struct cmd_entry cmd_publish_entry;
extern const struct cmd_entry cmd_manifest_entry;
extern const struct cmd_entry cmd_config_entry;

/* Keep in the order "distsync --help" lists them. */
static const struct cmd_entry *const cmd_table[] = {
	&cmd_release_entry,
	&cmd_releases_entry,
	&cmd_plan_entry,
	&cmd_push_entry,
	&cmd_status_entry,
	&cmd_pull_entry,
	&cmd_publish_entry,
	&cmd_rollback_entry,
	&cmd_restore_entry,
	&cmd_verify_entry,
	&cmd_serve_entry,
	&cmd_trust_entry,
	&cmd_keygen_entry,
	&cmd_keys_entry,
	&cmd_manifest_entry,
	&cmd_config_entry,
	NULL
};

const char *cmd_config_file;

static void
usage_to(FILE *fp, const struct cmd_entry *entry, const char *options)
{
	fprintf(fp, "usage: distsync %s %s\n  %s\n", entry->name, entry->usage,
	    entry->summary);
	if (options != NULL && *options != '\0')
		fprintf(fp, "\noptions:\n%s", options);
}

/* After a wrong command line: the usage line and where the options are, not all of them. */
void
cmd_usage(const struct cmd_entry *entry, const char *options)
{
	(void)options;
	fprintf(stderr, "usage: distsync %s %s\n(see 'distsync %s --help')\n", entry->name,
	    entry->usage, entry->name);
}

void
cmd_help(const struct cmd_entry *entry, const char *options)
{
	usage_to(stdout, entry, options);
}

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: distsync [-c FILE] [-v|-q] COMMAND [ARGS]\n"
	    "\n"
	    "global options (before or after COMMAND):\n"
	    "  -c, --config FILE  configuration (default: ./distsync.yml)\n"
	    "  -v, --verbose      more detail: each object, its encoding, the commands run;\n"
	    "                     twice: libssh's protocol log too\n"
	    "  -q, --quiet        errors only\n"
	    "  -h, --help         this help; 'distsync COMMAND --help' for a command\n"
	    "  -V, --version      print the version\n"
	    "\n"
	    "commands:\n");
	for (size_t i = 0; cmd_table[i] != NULL; i++)
		fprintf(fp, "  %-10s %s\n", cmd_table[i]->name, cmd_table[i]->summary);
	fprintf(fp, "\nexit codes: 0 ok, 1 some host failed, 2 usage or config error,\n"
	    "3 nothing applied because of a precondition (lock, signature, space),\n"
	    "4 restore: no backup set keeps a path\n");
}

/*
 * The global -v, -q and -c given after the command ("distsync push HOST -v"),
 * taken out of the command's arguments (up to a "--") as if given before it.
 * pull's -q is pull's own; serve's arguments are its peer's and stay as they
 * came. Returns 0, or DS_ERR_USAGE (logged) for a -c without its file.
 */
static int
take_global_options(const struct cmd_entry *entry, int *argc, char **argv, int *verbose,
    int *quiet)
{
	int own_quiet = strcmp(entry->name, "pull") == 0;
	int i, j;

	if (strcmp(entry->name, "serve") == 0)
		return 0;
	for (i = j = 1; i < *argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			while (i < *argc)
				argv[j++] = argv[i++];
			break;
		}
		if (a[0] == '-' && a[1] == 'v' && a[strspn(a + 1, "v") + 1] == '\0') {
			*verbose += (int)strlen(a) - 1;
			continue;
		}
		if (strcmp(a, "--verbose") == 0) {
			(*verbose)++;
			continue;
		}
		if (!own_quiet && (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0)) {
			*quiet = 1;
			continue;
		}
		if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			if (i + 1 >= *argc) {
				log_error("%s: %s needs a configuration file", entry->name, a);
				return DS_ERR_USAGE;
			}
			cmd_config_file = argv[++i];
			continue;
		}
		if (strncmp(a, "--config=", 9) == 0) {
			cmd_config_file = a + 9;
			continue;
		}
		argv[j++] = argv[i];
	}
	argv[j] = NULL;
	*argc = j;
	return 0;
}

static int
wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return 0;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return 1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const struct cmd_entry *entry = NULL;
	struct config *config = NULL;
	int ch, r, verbose = 0, quiet = 0;

	/* '+': stop at the command name; its options are its own. */
	while ((ch = getopt_long(argc, argv, "+c:vqhV", options, NULL)) != -1) {
		switch (ch) {
		case 'c':
			cmd_config_file = optarg;
			break;
		case 'v':
			verbose++;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			usage(stdout);
			return DS_EXIT_OK;
		case 'V':
			printf("distsync %s\n", PACKAGE_VERSION);
			return DS_EXIT_OK;
		default:
			usage(stderr);
			return DS_EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		usage(stderr);
		return DS_EXIT_USAGE;
	}
	for (size_t i = 0; cmd_table[i] != NULL; i++)
		if (strcmp(cmd_table[i]->name, argv[0]) == 0)
			entry = cmd_table[i];
	if (entry == NULL) {
		log_error("unknown command '%s'; see 'distsync --help'", argv[0]);
		return DS_EXIT_USAGE;
	}
	if (take_global_options(entry, &argc, argv, &verbose, &quiet) != 0)
		return DS_EXIT_USAGE;
	if (quiet)
		log_set_level(LOG_LEVEL_ERROR);
	else if (verbose > 0)
		log_set_level(LOG_LEVEL_DEBUG);
	log_set_trace(!quiet && verbose > 1);
	optind = 0;	/* reset getopt for the command */
	if (entry->needs_config && !wants_help(argc, argv)) {
		r = config_load(cmd_config_file ? cmd_config_file : CONFIG_FILE_DEFAULT, &config);
		/*
		 * The commands a message suggests name the config this run was
		 * given (-c); the default one they find as this run did.
		 */
		hint_set_config(cmd_config_file);
		if (r != 0)
			return ds_exit_code(r);
	}
	r = entry->exec(argc, argv, config);
	config_free(config);
	return ds_exit_code(r);
}
