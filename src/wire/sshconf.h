/*
 * What OpenSSH's client configuration (~/.ssh/config, /etc/ssh/ssh_config)
 * says about one host, for the settings xport-ssh decides itself because
 * libssh 0.10 does not apply them as ssh(1) does: UserKnownHostsFile (libssh
 * keeps the first file only), GlobalKnownHostsFile, StrictHostKeyChecking
 * (libssh ignores accept-new, and with "no" accepts even a changed key) and
 * ProxyJump (libssh runs "ssh -W" for it, whose host-key failures it cannot
 * report). libssh reads the same files for everything else (HostName, Port,
 * User, IdentityFile, ProxyCommand).
 *
 * Evaluated as ssh_config(5) says: the first value obtained for a keyword
 * wins; "Host" patterns match the host as given (an alias), "Match host" the
 * name after HostName; Include reads files (globs; relative to ~/.ssh for the
 * user's file, /etc/ssh for the system's) in the enclosing block's context.
 * Match criteria that need a shell or the network (exec, localnetwork,
 * tagged, canonical) are not evaluated: their block does not apply.
 */
#ifndef DS_SSHCONF_H
#define DS_SSHCONF_H

#include <stddef.h>

/* A configuration file larger than this is refused. */
#define SSHCONF_MAX_SIZE	(1024 * 1024)

enum sshconf_strict {
	SSHCONF_STRICT_UNSET,		/* not set: ssh's default, ask */
	SSHCONF_STRICT_YES,
	SSHCONF_STRICT_ASK,
	SSHCONF_STRICT_ACCEPT_NEW,
	SSHCONF_STRICT_NO,
};

/* The host being connected to, as the configuration's conditions see it. */
struct sshconf_query {
	const char	*host;		/* as given: Host, Match originalhost, %n, %k */
	const char	*hostname;	/* after HostName: Match host, %h; NULL: host */
	unsigned	 port;		/* %p; 0: 22 */
	const char	*user;		/* remote user: Match user, %r; NULL: local_user */
	const char	*local_user;	/* Match localuser, %u */
	const char	*home;		/* ~ and %d */
};

struct sshconf {
	/* NULL-terminated, "~" and %-tokens expanded; NULL: not set ("none" included). */
	char		**user_known_hosts;
	char		**global_known_hosts;
	char		 *user_known_hosts_origin;	/* "FILE:LINE" that set it, or NULL */
	enum sshconf_strict strict;
	char		 *strict_origin;		/* "FILE:LINE" that set it, or NULL */
	/*
	 * ProxyJump and ProxyCommand share one slot (the first of either
	 * wins): proxy_set says one was seen, proxy_jump holds ProxyJump's
	 * value when it won and is not "none".
	 */
	int		  proxy_set;
	char		 *proxy_jump;
	char		 *proxy_jump_origin;
};

/*
 * Applies the lines of the configuration file PATH that concern Q on top of
 * CONF (a zeroed struct at first; values already set stay). INCLUDE_DIR is
 * the base of relative Include paths. A missing file is not an error.
 * Returns 0, or DS_ERR_CONFIG (logged as "PATH:LINE: ...") for a value
 * distsync cannot use, DS_ERR_SYSTEM for an unreadable file.
 */
int	sshconf_read_file(const char *path, const char *include_dir,
	    const struct sshconf_query *q, struct sshconf *conf);

/* As sshconf_read_file for LEN bytes at DATA; NAME is used in messages. */
int	sshconf_read_mem(const char *name, const char *data, size_t len,
	    const char *include_dir, const struct sshconf_query *q, struct sshconf *conf);

/* Frees what CONF holds and zeroes it. */
void	sshconf_release(struct sshconf *conf);

/* The name of a StrictHostKeyChecking value ("accept-new"), for messages. */
const char *sshconf_strict_name(enum sshconf_strict strict);

/* One hop of a ProxyJump list. */
struct sshconf_hop {
	char		*user;		/* NULL: from the configuration for host */
	char		*host;		/* an address or an alias of the configuration */
	unsigned	 port;		/* 0: from the configuration for host */
};

/*
 * Parses a ProxyJump value, "[user@]host[:port]" or "ssh://[user@]host[:port]"
 * separated by commas (IPv6 addresses in brackets), into *hops (caller frees
 * with sshconf_hops_free), in the order they are connected. "none" gives no
 * hop. Returns 0 or DS_ERR_INVALID (not logged).
 */
int	sshconf_parse_jump(const char *spec, struct sshconf_hop **hops, size_t *nhops);
void	sshconf_hops_free(struct sshconf_hop *hops, size_t nhops);

#endif
