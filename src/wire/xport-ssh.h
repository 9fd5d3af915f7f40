/*
 * The SSH transport: an exec channel over libssh running the peer
 * ("REMOTE_COMMAND serve --root PATH ..."), with strict host-key checking,
 * agent and identity-file authentication, the user's ~/.ssh/config, and
 * ProxyJump hops of its own (tunnel.h).
 */
#ifndef DS_XPORT_SSH_H
#define DS_XPORT_SSH_H

#include <stddef.h>

struct config_host;
struct xport;

struct xport_ssh_opts {
	/*
	 * 1: an unknown host key is recorded in known_hosts and accepted, as
	 * OpenSSH's StrictHostKeyChecking=accept-new. A changed key is refused
	 * whatever this says.
	 */
	int		 accept_new;
	/* Seconds of silence from the peer before a keepalive; 0: 15 (or less, see .c). */
	unsigned	 keepalive_interval;
	/*
	 * The configuration file the host came from, as the user named it, or
	 * NULL for ./distsync.yml: a message that suggests "distsync trust"
	 * repeats it ("distsync -c FILE trust HOST"), so that it works as
	 * printed and records where this connection looks.
	 */
	const char	*config_file;
};

/*
 * Connects to host->address (an alias from ~/.ssh/config works: HostName,
 * Port, User, IdentityFile, ProxyCommand as libssh supports them; address,
 * user, port and identity set in the host's config override it), through
 * the jump hosts of its ProxyJump (each one's key checked and named in
 * messages; jump hosts are reached directly, their own ProxyJump is not
 * followed), authenticates (ssh-agent, then identity files) and runs
 * "REMOTE_COMMAND REMOTE_ARGS" in an exec channel, where REMOTE_COMMAND is
 * host->remote_command (default "distsync"; a shell command prefix such as
 * "sudo -n distsync", used as written) and remote_args is already quoted
 * for the remote shell (build it with xport_ssh_quote_argv) or NULL.
 *
 * Host keys, for the host and every jump host alike: looked up in the
 * host's known_hosts when its configuration chose one, else in the files of
 * ~/.ssh/config's UserKnownHostsFile for that name, else in
 * ~/.ssh/known_hosts (and known_hosts2), then in the global files
 * (GlobalKnownHostsFile, else /etc/ssh/ssh_known_hosts{,2}). An unknown key
 * is refused, naming its fingerprint and the "distsync trust" command that
 * records it, unless opts->accept_new or ~/.ssh/config's
 * StrictHostKeyChecking is accept-new or no: then it is recorded in the
 * first user file. A changed or @revoked key is refused in every mode.
 *
 * opts may be NULL. On success *out is a transport the caller frees with
 * xport_free(); its peer is host->name and idle_timeout/bwlimit come from
 * host. On failure *out is NULL and the error was logged naming the host
 * (and the jump host): DS_ERR_CONNECT (DNS, refused, unreachable, lost, a
 * jump host refusing to forward), DS_ERR_TIMEOUT, DS_ERR_HOSTKEY (unknown,
 * changed, revoked, unreadable known_hosts), DS_ERR_AUTH, DS_ERR_CONFIG (no
 * address, unreadable identity, a bad ~/.ssh/config value), DS_ERR_PEER
 * (exec refused).
 */
int	xport_ssh_open(const struct config_host *host, const char *remote_args,
	    const struct xport_ssh_opts *opts, struct xport **out);

/*
 * Asked by xport_ssh_trust before recording an unknown key: returns 1 to
 * record it, 0 to refuse. who names the server ("kirehe", "kirehe: jump
 * host gw"), fingerprint is "SHA256:...", key_type "ssh-ed25519".
 */
typedef int (*xport_ssh_confirm_fn)(const char *who, const char *key_type,
    const char *fingerprint, void *arg);

/*
 * "distsync trust": connects to host as xport_ssh_open does, without
 * authenticating to the host itself. For each server on the way (the jump
 * hosts of its ProxyJump, which it authenticates to, then the host) prints
 * the key's type and SHA256 fingerprint to stdout and, when the key is
 * unknown, records it in that server's first known_hosts file if confirm
 * returns 1 (confirm NULL: record without asking). Returns 0 when every key
 * is recorded or was already known, DS_ERR_HOSTKEY when one changed (logged
 * with the known_hosts file and line) or was refused, or an error of
 * xport_ssh_open's. opts->config_file is used as there; opts may be NULL.
 */
int	xport_ssh_trust(const struct config_host *host, const struct xport_ssh_opts *opts,
	    xport_ssh_confirm_fn confirm, void *arg);

/*
 * Returns arg quoted for a POSIX shell ('...' with ' as '\''), unchanged
 * when it needs no quoting. The caller frees it.
 */
char	*xport_ssh_quote(const char *arg);

/*
 * Returns argv (NULL-terminated) quoted with xport_ssh_quote and joined by
 * spaces: a string for xport_ssh_open's remote_args. The caller frees it.
 */
char	*xport_ssh_quote_argv(char *const *argv);

#endif
