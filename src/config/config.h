/* distsync.yml: parsed once with libyaml into a validated, read-only struct. */
/*
 * Rules beyond DESIGN.md's example: "defaults:" may set any host key (and
 * "parallel"); a host's own value replaces the default, lists included.
 * Groups exist by being named in hosts' "groups:"; when the optional
 * top-level "groups:" list is present, naming any other group is an error.
 * A group may not share a name with a host, and "all" (every host) is
 * reserved. Durations are seconds, or a number with s, m, h or d. YAML
 * aliases and tags are refused, and so is a file over CONFIG_MAX_SIZE.
 *
 * Each key's type, default, range and whether the receiver gets it are in
 * its row of the section's table in config-fields.c, and only there.
 */
#ifndef DS_CONFIG_H
#define DS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* Defaults that more than one layer applies; each is written only here. */
#define CONFIG_KEEP_BACKUPS_DEFAULT	2	/* backup sets a site keeps */
#define CONFIG_LOCK_TIMEOUT_DEFAULT	30	/* seconds to wait for a target's lock */
#define CONFIG_FILE_DEFAULT	"distsync.yml"	/* the repository's, without -c */

enum config_restart {
	CONFIG_RESTART_NONE,	/* static files: never restarted, except reload_on */
	CONFIG_RESTART_COMPOSE,	/* docker compose restart SERVICE */
	CONFIG_RESTART_COMMAND,	/* run an argv, no shell */
};

struct config_health {
	char		**command;	/* argv, NULL-terminated, or NULL */
	char		 *url;		/* HTTP GET must answer 2xx, or NULL */
	int		  container;	/* 1: wait for the container's own healthcheck */
	unsigned	  timeout;	/* seconds */
};

struct config_service {
	char		 *name;
	char		**paths;	/* globs ("**" crosses '/'), NULL-terminated */
	enum config_restart restart;
	char		**command;	/* argv for CONFIG_RESTART_COMMAND, or the reload_on
					   action of CONFIG_RESTART_NONE; NULL-terminated or NULL */
	char		**reload_on;	/* globs, NULL-terminated, may be empty */
	char		**after;	/* names of services restarted before this one */
	struct config_health health;
	unsigned	  line;		/* where it was defined, for messages */
};

/* How a run_once hook's runs are counted. */
enum config_each {
	CONFIG_EACH_FILE,	/* each new or changed matched file once, in path order */
	CONFIG_EACH_SET,	/* once per content of the whole matched set */
};

/* How a run_once run gets its file. */
enum config_input {
	CONFIG_INPUT_NONE,	/* only DISTSYNC_RUN_ONCE_FILE(S) in the environment */
	CONFIG_INPUT_STDIN,	/* the file's content on stdin (each: file) */
	CONFIG_INPUT_ARGUMENT,	/* the file's absolute path(s) appended to the command */
};

struct config_run_once {
	char		**paths;	/* globs, NULL-terminated */
	char		**command;	/* argv, NULL-terminated */
	char		 *service;	/* run inside this compose service (compose exec -T), or NULL */
	enum config_input input;
	enum config_each each;
	unsigned	  line;
};

struct config_host {
	char		 *name;
	char		 *address;	/* NULL: a local target, no SSH */
	char		 *user;		/* NULL: from ~/.ssh/config or the login name */
	unsigned	  port;		/* 0: from ~/.ssh/config or 22 */
	char		 *identity;	/* identity file (absolute; "~" expanded) or NULL */
	char		 *known_hosts;	/* absolute; ~/.ssh/known_hosts when address is set, else NULL */
	/*
	 * path, state and compose are absolute after loading. With an address
	 * they must be written absolute (they name directories there); without
	 * one, relative values resolve against the config file's directory.
	 */
	char		 *path;		/* target directory; never "/" */
	char		 *state;	/* state directory; default: dirname(path)/.<basename(path)>.distsync */
	char		 *compose;	/* compose project directory or NULL */
	char		 *compose_project; /* compose project name or NULL */
	char		 *remote_command; /* the program serve runs as on the host */
	char		 *owner;	/* chown applied files, or NULL */
	char		 *group;
	char		**groups;	/* group names, NULL-terminated (maybe empty) */
	uint64_t	  bwlimit;	/* bytes per second, 0 = none; see config_parse_bwlimit() */
	unsigned	  retries;
	unsigned	  retry_max_wait; /* seconds */
	unsigned	  connect_timeout; /* seconds */
	unsigned	  idle_timeout;	/* seconds */
	unsigned	  keep_backups;	/* releases kept in backup/ */
	char		**trust_root;	/* pinned root key ids; empty: releases not verified */
	char		 *site_config;	/* the site's own config there: serve --site-config */
	char		**mirrors;	/* a pull site's HTTP mirrors (or directories); empty: SSH */
	char		 *ca_file;	/* https mirrors: PEM bundle; NULL: the system's CAs */
	unsigned	  line;
};

struct config_distribution {
	char		*name;
	char		*source;	/* absolute after loading */
	char		*store;		/* absolute after loading */
	unsigned	 keep_releases;
	char		*signing_key;	/* absolute, or NULL: releases are not signed */
	char		*signing_passphrase_file; /* its passphrase, for unattended signing */
	char		*channel;	/* what signed releases are cut and published for */
	char		*timestamp_key;	/* signs mirror pointers; NULL: signing_key */
	char		*publish_dir;	/* default tree of `distsync publish` */
	unsigned	 publish_deltas; /* patches from the last N releases when publishing */
	unsigned	 publish_expires; /* seconds a published pointer stays valid */
	int		 level;		/* zstd level for deltas */
};

/*
 * "site:" in a site's own config, for `distsync pull`: where the repository
 * is and which of its hosts this site is. The upstream's hosts: entry holds
 * the SSH link (address, user, port, identity, known_hosts, remote_command,
 * bwlimit, retries, timeouts) and, for pull, the local target (path, state).
 */
struct config_site {
	char		*upstream;	/* name of the hosts: entry to pull from; NULL: no site: */
	char		*repository;	/* the repository's config file on the upstream, or NULL */
	char		*host;		/* this site's name in the repository's hosts: */
};

struct config {
	char		*file;		/* as given */
	char		*dir;		/* absolute directory of the file; base of relative paths */
	struct config_distribution distribution;
	struct config_service *services;
	size_t		 nservices;
	struct config_run_once *run_once;
	size_t		 nrun_once;
	struct config_host *hosts;	/* defaults already merged into each host */
	size_t		 nhosts;
	char		**groups;	/* the optional top-level "groups:" list, or NULL */
	unsigned	 parallel;	/* default -j */
	struct config_site site;	/* all NULL unless "site:" is present */
};

/* A configuration larger than this is refused before parsing. */
#define CONFIG_MAX_SIZE	(1024 * 1024)

/*
 * Loads and validates FILE. On error logs "FILE:LINE:COLUMN: key: message"
 * (with "did you mean ..." for an unknown key), sets *out to NULL and returns
 * DS_ERR_CONFIG. The caller frees *out with config_free().
 */
int	config_load(const char *file, struct config **out);

/*
 * Like config_load() for LEN bytes at DATA; NAME is used in messages and its
 * directory (against the cwd) is the base of relative paths.
 */
int	config_load_mem(const char *data, size_t len, const char *name, struct config **out);
void	config_free(struct config *config);

/*
 * Writes the effective configuration (defaults filled in) as YAML to fp, a
 * FILE *; for a site's own config (site:), only what a site uses (no field
 * marked CONFIG_FIELD_REPO_ONLY, no groups, no defaults). The output loads
 * again with config_load_mem().
 */
void	config_print(const struct config *config, void *fp);

/*
 * Writes the document the receiver of HOST needs to fp (a FILE *): the
 * services, run_once, and of the distribution and of HOST (by name, with no
 * address) the keys marked CONFIG_FIELD_RECEIVER in config-fields.c.
 * config_load_mem() reads it back into an equivalent local host.
 */
void	config_print_host(const struct config *config, const struct config_host *host, void *fp);

/*
 * Parses a bandwidth limit into bytes per second (0 = no limit):
 *   "0", "250000"      plain numbers are bytes per second;
 *   "256k", "2M", "1G" binary multiples of bytes per second (K = 1024, as rsync);
 *   "256kbit", "2Mbit" decimal bits per second (a link's speed: 256kbit = 32000 B/s).
 * Suffixes are case-insensitive; no spaces. Returns 0, or DS_ERR_INVALID with
 * *why set to a static reason (why may be NULL). Nothing is logged.
 */
int	config_parse_bwlimit(const char *text, uint64_t *out, const char **why);

/* Returns the host named NAME, or NULL. */
const struct config_host *config_host(const struct config *config, const char *name);

/*
 * Resolves names (hosts or groups) to a list of hosts, in config order, without
 * duplicates. Logs and returns DS_ERR_NOTFOUND for a name that is neither.
 * *out is an array of *count pointers into config; caller frees the array.
 */
int	config_resolve_hosts(const struct config *config, char *const *names, size_t nnames,
	    const struct config_host ***out, size_t *count);

/* Returns the service named NAME, or NULL. */
const struct config_service *config_service(const struct config *config, const char *name);

#endif
