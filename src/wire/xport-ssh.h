/*
 * The SSH transport: an exec channel over libssh running the peer
 * ("REMOTE_COMMAND serve --root PATH ..."), with strict host-key checking,
 * agent and identity-file authentication, and the user's ~/.ssh/config.
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
};

/*
 * Connects to host->address (an alias from ~/.ssh/config works: HostName,
 * Port, User, IdentityFile, ProxyJump/ProxyCommand as libssh supports them;
 * address, user, port and identity set in the host's config override it),
 * checks the host key against host->known_hosts (default ~/.ssh/known_hosts),
 * authenticates (ssh-agent, then identity files) and runs
 * "REMOTE_COMMAND REMOTE_ARGS" in an exec channel, where REMOTE_COMMAND is
 * host->remote_command (default "distsync"; a shell command prefix such as
 * "sudo -n distsync", used as written) and remote_args is already quoted
 * for the remote shell (build it with xport_ssh_quote_argv) or NULL.
 * opts may be NULL. On success *out is a transport the caller frees with
 * xport_free(); its peer is host->name and idle_timeout/bwlimit come from
 * host. On failure *out is NULL and the error was logged naming the host:
 * DS_ERR_CONNECT (DNS, refused, unreachable, lost), DS_ERR_TIMEOUT,
 * DS_ERR_HOSTKEY (unknown, changed), DS_ERR_AUTH, DS_ERR_CONFIG
 * (no address, unreadable identity), DS_ERR_PEER (exec refused).
 */
int	xport_ssh_open(const struct config_host *host, const char *remote_args,
	    const struct xport_ssh_opts *opts, struct xport **out);

/*
 * Asked by xport_ssh_trust before recording an unknown key: returns 1 to
 * record it, 0 to refuse. fingerprint is "SHA256:...", key_type "ssh-ed25519".
 */
typedef int (*xport_ssh_confirm_fn)(const char *host_name, const char *key_type,
    const char *fingerprint, void *arg);

/*
 * "distsync trust": connects to host (as xport_ssh_open, without
 * authenticating), prints the host key's type and SHA256 fingerprint to
 * stdout, and records it in host's known_hosts when confirm returns 1
 * (confirm NULL: record without asking). Returns 0 when the key is recorded
 * or was already known, DS_ERR_HOSTKEY when it changed (logged with the
 * known_hosts file and line) or was refused, or a connect error as above.
 */
int	xport_ssh_trust(const struct config_host *host, xport_ssh_confirm_fn confirm, void *arg);

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
