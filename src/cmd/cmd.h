/* One file per command; each exports a struct cmd_entry listed in main.c's table. */
#ifndef DS_CMD_H
#define DS_CMD_H

struct config;

struct cmd_entry {
	const char	*name;
	const char	*usage;		/* arguments after the command name */
	const char	*summary;	/* one line for "distsync --help" */
	int		 needs_config;	/* 1: main loads -c FILE (default distsync.yml) first */
	/*
	 * Runs the command with argv[0] == name; returns a DS_ERR_* code that
	 * main maps to the exit code. config is NULL when needs_config is 0.
	 */
	int		(*exec)(int argc, char **argv, const struct config *config);
};

/* Prints "usage: distsync NAME USAGE" and the command's options to stderr. */
void	cmd_usage(const struct cmd_entry *entry, const char *options);

/*
 * Runs a one-host session of OP (PROTO_OP_ROLLBACK or PROTO_OP_VERIFY) for
 * the command ENTRY: parses [--no-restart (rollback only)] [--lock-timeout S]
 * [--json] HOST, prints the report, and returns the DS_ERR_* code (a verify
 * that finds drift returns DS_ERR_CORRUPT, exit 1). HELP is its option text.
 */
int	cmd_host_op(int argc, char **argv, const struct config *config,
	    const struct cmd_entry *entry, const char *help, int op);

/* The -c value given to main, or NULL. */
extern const char *cmd_config_file;

#endif
