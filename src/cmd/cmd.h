/* One file per command; each exports a struct cmd_entry listed in main.c's table. */
#ifndef DS_CMD_H
#define DS_CMD_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct config_host;
struct report;

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

/* Prints "usage: distsync NAME USAGE" and the command's options to stderr (a usage error). */
void	cmd_usage(const struct cmd_entry *entry, const char *options);
/* The same to stdout, for --help (so it pipes into a pager). */
void	cmd_help(const struct cmd_entry *entry, const char *options);

/*
 * The options the session commands (push, pull, status, rollback, verify)
 * share, as getopt_long values: 'r' --release ID, 'n' --dry-run,
 * 'F' --fail-on-drift, 'R' --no-restart, 'L' --lock-timeout S, 'J' --json,
 * 'j' --parallel N. Each command lists in its own option table the ones it
 * takes.
 */
#define CMD_PARALLEL_MAX	1000	/* hosts at once */

struct cmd_session_opts {
	const char	*release;	/* a checked release id, or NULL: the latest */
	uint32_t	 flags;		/* PROTO_FLAG_* */
	unsigned	 lock_timeout;	/* seconds; CONFIG_LOCK_TIMEOUT_DEFAULT unless given */
	int		 json;
	unsigned	 parallel;	/* hosts at once, 1..CMD_PARALLEL_MAX; 0: not given */
};

/* Sets O to the defaults: no release, no flags, the default lock timeout, text. */
void	cmd_session_defaults(struct cmd_session_opts *o);

/*
 * Takes option CH with its argument ARG into O when it is one of the shared
 * ones: returns 1 when it was, 0 for any other CH, DS_ERR_USAGE (logged)
 * for a value that is not valid.
 */
int	cmd_session_option(int ch, const char *arg, struct cmd_session_opts *o);

/*
 * One session of OP (PROTO_OP_ROLLBACK, _VERIFY or _RELEASES) with HOST:
 * connects, asks with O's flags, lock timeout and release (rollback: the
 * state to return to), fills REP (report_init'd here; release it with
 * report_release) and returns its status, also in REP. Logs its errors.
 */
int	cmd_host_session(const struct config *config, const struct config_host *host, int op,
	    const struct cmd_session_opts *o, struct report *rep);

/*
 * Resolves the HOST|GROUP arguments of a command to hosts (config order, no
 * duplicates; *hosts is an array of *count pointers into config the caller
 * frees); no names means every host. A name that is neither a host nor a
 * group is logged, naming the config file (with a "did you mean"), and is
 * DS_ERR_USAGE: exit 2.
 */
int	cmd_resolve_hosts(const struct config *config, char *const *names, size_t nnames,
	    const struct config_host ***hosts, size_t *count);

/*
 * cmd_resolve_hosts for the commands that act on a site (status, releases,
 * rollback, verify): with a site's own config (site:), the one site itself,
 * named by site.host or its upstream's entry (or no name), its target local
 * whatever link the upstream has; any other name is DS_ERR_USAGE (logged).
 * The site's entry is static: one site per process.
 */
int	cmd_resolve_targets(const struct config *config, char *const *names, size_t nnames,
	    const struct config_host ***hosts, size_t *count);

/*
 * Runs a one-host session of OP (PROTO_OP_ROLLBACK or PROTO_OP_VERIFY) for
 * the command ENTRY: parses [--no-restart] [--release ID] (rollback only)
 * [--lock-timeout S] [--json] HOST|GROUP..., prints the report (several
 * hosts: one after the other, then one row each), and returns the worst
 * DS_ERR_* code (a verify that finds drift returns DS_ERR_CORRUPT, exit 1).
 * HELP is its option text.
 */
int	cmd_host_op(int argc, char **argv, const struct config *config,
	    const struct cmd_entry *entry, const char *help, int op);

/* The -c value given to main, or NULL. */
extern const char *cmd_config_file;

#endif
