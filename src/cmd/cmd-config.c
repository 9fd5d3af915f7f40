/* distsync config check [FILE]: validate a configuration and print it with defaults filled in. */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "cmd/cmd.h"
#include "config/config.h"

static int cmd_config_exec(int, char **, const struct config *);

const struct cmd_entry cmd_config_entry = {
	.name = "config",
	.usage = "check [FILE]",
	.summary = "validate a configuration and print it with defaults filled in",
	.needs_config = 0,
	.exec = cmd_config_exec,
};

static const char options[] =
    "  FILE       the configuration (default: -c FILE, else ./distsync.yml)\n"
    "  -h, --help this help\n"
    "\n"
    "Errors name FILE:LINE:COLUMN and the key; the exit code is then 2.\n";

static int
cmd_config_exec(int argc, char **argv, const struct config *unused)
{
	struct config *config = NULL;
	const char *file;
	int r;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			cmd_help(&cmd_config_entry, options);
			return 0;
		}
	}
	if (argc < 2 || strcmp(argv[1], "check") != 0) {
		if (argc >= 2)
			log_error("config: unknown subcommand '%s'", argv[1]);
		cmd_usage(&cmd_config_entry, options);
		return DS_ERR_USAGE;
	}
	if (argc > 3 || (argc == 3 && argv[2][0] == '-' && argv[2][1] != '\0')) {
		if (argc == 3)
			log_error("config check: unknown option '%s'", argv[2]);
		cmd_usage(&cmd_config_entry, options);
		return DS_ERR_USAGE;
	}
	file = argc == 3 ? argv[2] : cmd_config_file ? cmd_config_file : CONFIG_FILE_DEFAULT;
	if ((r = config_load(file, &config)) != 0)
		return r;
	config_print(config, stdout);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		log_errno("config check: cannot write the configuration");
		r = DS_ERR_SYSTEM;
	}
	config_free(config);
	return r;
}
