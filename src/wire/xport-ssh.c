/*
 * The SSH transport over libssh (0.9/0.10).
 *
 * Blocking libssh session, read in slices: every wait is at most SLICE_MS
 * (ssh_channel_poll_timeout for reads; SSH_OPTIONS_TIMEOUT bounds the window
 * wait inside ssh_channel_write) so the idle timeout and keepalives run
 * between slices, and the remote's stderr is drained and logged as it comes
 * (it shares the channel window with stdout: left unread it would stall the
 * peer).
 *
 * Keepalive: libssh 0.10 has no ServerAliveInterval. When the peer has been
 * silent for keepalive_interval seconds we call ssh_send_keepalive(), which
 * sends the global request "keepalive@openssh.com" with want_reply set (sshd
 * answers it with REQUEST_FAILURE, as OpenSSH's ServerAliveInterval expects).
 * That keeps NAT and firewall state alive on quiet links and lets a dead TCP
 * connection surface as an error. It does not count as progress: the idle
 * timeout (xport.h) fires after idle_timeout seconds without channel data.
 *
 * Reads go through our own buffer (rbuf): a read that finds less than
 * RBUF_LOW buffered moves all the channel data libssh holds into it. When the connection is reset (a killed sshd, a
 * middlebox), Linux drops a socket's unread bytes and libssh drops what it
 * had buffered for the channel; bytes already moved to rbuf are still read
 * to the end, so a resumed transfer starts after them instead of sending
 * them again. Measured with a pull cut by killing sshd while the CPUs were
 * busy: up to 650 KB per cut was lost in libssh's channel buffer before.
 */
#include "autoconf.h"

#include <errno.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>	/* ssh_send_keepalive */

#include "base/err.h"
#include "base/hint.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "base/path.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "config/config.h"
#include "wire/known-hosts.h"
#include "wire/sshconf.h"
#include "wire/tunnel.h"
#include "wire/xport-ssh.h"
#include "wire/xport.h"

#define SLICE_MS		1000	/* longest single wait inside libssh */
#define DEFAULT_CONNECT_TIMEOUT	30	/* seconds */
#define DEFAULT_KEEPALIVE	15	/* seconds */
#define CLOSE_DRAIN_TIMEOUT	10	/* seconds close() waits for the peer to finish */
#define STDERR_LINE_MAX		2048
#define WRITE_CHUNK		(64 * 1024)
#define RBUF_MIN		(64 * 1024)
#define RBUF_MAX		(4 * 1024 * 1024)	/* > any channel window libssh grants */
#define RBUF_LOW		(64 * 1024)	/* below this much buffered, a read pumps */
#define EXIT_NOT_FOUND		127	/* POSIX shells: command not found */

enum hostkey_mode {
	HOSTKEY_STRICT,		/* an unknown key is refused */
	HOSTKEY_ACCEPT_NEW,	/* an unknown key is recorded; a changed one refused */
	HOSTKEY_TRUST,		/* distsync trust: shown, confirmed, recorded */
};

/* One SSH server on the way: a jump host or the host itself. */
struct endpoint {
	ssh_session	 session;
	char		*label;		/* starts its messages: "kirehe", "kirehe: jump host gw" */
	char		*alias;		/* as given: the host's address, a ProxyJump hop */
	int		 is_jump;
	int		 tunneled;	/* connected through a tunnel's socket */
	char		**user_files;	/* known_hosts files; new keys go to the first */
	char		*files_origin;	/* "UserKnownHostsFile at FILE:LINE", or NULL */
	char		**global_files;
	enum hostkey_mode mode;
	char		*mode_origin;	/* "StrictHostKeyChecking no at FILE:LINE", or NULL */
	char		*proxy_jump;	/* the host's ProxyJump (never a hop's), or NULL */
	char		*proxy_jump_origin;
};

/* One connection: the host and what reaching it needs. */
struct link {
	const struct config_host *host;
	const char	*name;		/* host->name, else its address */
	const char	*config_file;	/* repeated in hints, or NULL */
	int		 accept_new;	/* xport_ssh_opts.accept_new */
	int		 trust;		/* distsync trust */
	xport_ssh_confirm_fn confirm;
	void		*arg;
	char		*home;
	char		*known_hosts;	/* the host's own choice, or NULL (chosen_known_hosts) */
	struct tunnel	**tunnels;	/* one per jump host, in connection order */
	size_t		 ntunnels;
};

struct ssh_priv {
	ssh_session	 session;
	ssh_channel	 channel;
	int		 tunneled;	/* session runs over tunnels[ntunnels - 1] */
	struct tunnel	**tunnels;	/* freed after the session, the last first */
	size_t		 ntunnels;
	char		*name;		/* host name, for messages */
	char		*address;	/* host[:port] as connected, for messages */
	char		 line[STDERR_LINE_MAX];	/* partial remote stderr line */
	size_t		 line_len;
	int		 sent_eof;
	int		 closed;
	int		 close_result;
	int		 failed;	/* an error was logged; the session is unusable */
	int		 error;		/* what failed first: DS_ERR_* */
	int		 notfound_logged;
	unsigned	 keepalive;	/* seconds */
	uint64_t	 last_progress;	/* monotonic milliseconds: a timeout never fires early */
	uint64_t	 last_keepalive;
	uint8_t		*rbuf;		/* channel data moved out of libssh, not yet read */
	size_t		 rcap, roff, rlen;
};

static time_t
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* Expands a leading "~/" against home; returns a new string. */
static char *
expand_home(const char *path, const char *home)
{
	if (path[0] == '~' && (path[1] == '/' || path[1] == '\0'))
		return xasprintf("%s%s", home, path + 1);
	return xstrdup(path);
}

static int
readable(const char *path)
{
	return access(path, R_OK) == 0;
}

char *
xport_ssh_quote(const char *arg)
{
	return hint_quote(arg);
}

char *
xport_ssh_quote_argv(char *const *argv)
{
	return hint_quote_argv(argv);
}

static void
libssh_log(int priority, const char *function, const char *buffer, void *userdata)
{
	log_debug("libssh: %s", buffer);
}

/* host[:port] as libssh will connect, for messages. */
static char *
session_address(ssh_session session)
{
	char *host = NULL;
	unsigned port = 22;
	char *s;

	if (ssh_options_get(session, SSH_OPTIONS_HOST, &host) != SSH_OK)
		host = NULL;
	ssh_options_get_port(session, &port);
	if (port == 22)
		s = xstrdup(host ? host : "?");
	else
		s = xasprintf("%s:%u", host ? host : "?", port);
	ssh_string_free_char(host);
	return s;
}

/* The name of the user distsync runs as (the uid when it has none). */
static char *
local_user_name(void)
{
	struct passwd pw, *found = NULL;
	char buf[4096];

	if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &found) == 0 && found != NULL)
		return xstrdup(pw.pw_name);
	return xasprintf("%lu", (unsigned long)getuid());
}

/* A NULL-terminated list of A and, unless NULL, B; free with xfree_strv. */
static char **
strv_of(const char *a, const char *b)
{
	char **v = xcalloc(3, sizeof(*v));

	v[0] = xstrdup(a);
	if (b != NULL)
		v[1] = xstrdup(b);
	return v;
}

/*
 * The host's known_hosts when its configuration chose one, else NULL (then
 * ~/.ssh/config's UserKnownHostsFile and the default files apply, as for ssh).
 */
static char *
chosen_known_hosts(const struct config_host *host, const char *home)
{
	char *expanded, *path;

	if (host->known_hosts == NULL || *host->known_hosts == '\0')
		return NULL;
	expanded = expand_home(host->known_hosts, home);
	path = path_absolute(NULL, expanded);
	free(expanded);
	return path;
}

static void
link_release(struct link *l)
{
	/* The last hop first: each one runs over the one before it. */
	while (l->ntunnels > 0)
		tunnel_free(l->tunnels[--l->ntunnels]);
	free(l->tunnels);
	l->tunnels = NULL;
	free(l->home);
	free(l->known_hosts);
	l->home = l->known_hosts = NULL;
}

static void
link_init(struct link *l, const struct config_host *host, const struct xport_ssh_opts *opts)
{
	memset(l, 0, sizeof(*l));
	l->host = host;
	l->name = host->name ? host->name : host->address ? host->address : "?";
	l->config_file = opts ? opts->config_file : NULL;
	l->accept_new = opts ? opts->accept_new : 0;
	if ((l->home = util_home_dir()) == NULL)
		l->home = xstrdup("/");
	l->known_hosts = chosen_known_hosts(host, l->home);
}

/*
 * The command that records the keys of this connection, as the user can
 * paste it: "distsync [-c FILE] trust NAME". The caller frees it.
 */
static char *
trust_command(const struct link *l)
{
	const char *args[] = { "trust", l->name, NULL };

	return hint_command_config(l->config_file, args);
}

static void
endpoint_free(struct endpoint *ep)
{
	if (ep == NULL)
		return;
	tunnel_session_free(ep->session, ep->tunneled);
	free(ep->label);
	free(ep->alias);
	xfree_strv(ep->user_files);
	xfree_strv(ep->global_files);
	free(ep->files_origin);
	free(ep->mode_origin);
	free(ep->proxy_jump);
	free(ep->proxy_jump_origin);
	free(ep);
}

/*
 * Reads ~/.ssh/config and /etc/ssh/ssh_config again for what libssh does not
 * apply as ssh does (sshconf.h): which known_hosts files, what to do with an
 * unknown key, ProxyJump.
 */
static int
endpoint_ssh_config(struct link *l, struct endpoint *ep, const char *ssh_dir,
    const char *user_config)
{
	struct sshconf conf;
	struct sshconf_query q;
	char *hostname = NULL, *user = NULL, *local_user = local_user_name();
	unsigned port = 22;
	int r;

	memset(&conf, 0, sizeof(conf));
	if (ssh_options_get(ep->session, SSH_OPTIONS_HOST, &hostname) != SSH_OK)
		hostname = NULL;
	if (ssh_options_get(ep->session, SSH_OPTIONS_USER, &user) != SSH_OK)
		user = NULL;
	ssh_options_get_port(ep->session, &port);
	q.host = ep->alias;
	q.hostname = hostname;
	q.port = port;
	q.user = user;
	q.local_user = local_user;
	q.home = l->home;
	if ((r = sshconf_read_file(user_config, ssh_dir, &q, &conf)) != 0 ||
	    (r = sshconf_read_file("/etc/ssh/ssh_config", "/etc/ssh", &q, &conf)) != 0)
		goto out;
	r = DS_ERR_CONFIG;
	if (conf.proxy_jump != NULL) {
		if (ep->is_jump)
			log_debug("%s: its own ProxyJump (%s) is not followed: list every hop "
			    "in the host's ProxyJump", ep->label, conf.proxy_jump_origin);
		else {
			ep->proxy_jump = conf.proxy_jump;
			ep->proxy_jump_origin = conf.proxy_jump_origin;
			conf.proxy_jump = conf.proxy_jump_origin = NULL;
		}
		/* The hops are ours (tunnel.c), not libssh's "ssh -W". */
		if (ssh_options_set(ep->session, SSH_OPTIONS_PROXYCOMMAND, "none") != SSH_OK)
			goto libssh_error;
#if LIBSSH_VERSION_INT >= SSH_VERSION_INT(0, 11, 0)
		/* Nor libssh 0.11's own jumps. */
		if (ssh_options_set(ep->session, SSH_OPTIONS_PROXYJUMP, "none") != SSH_OK)
			goto libssh_error;
#endif
	}
	if (l->known_hosts != NULL)
		ep->user_files = strv_of(l->known_hosts, NULL);
	else if (conf.user_known_hosts != NULL) {
		ep->user_files = conf.user_known_hosts;
		conf.user_known_hosts = NULL;
		ep->files_origin = xasprintf("UserKnownHostsFile at %s",
		    conf.user_known_hosts_origin);
	} else {
		char *a = xasprintf("%s/known_hosts", ssh_dir);
		char *b = xasprintf("%s/known_hosts2", ssh_dir);

		ep->user_files = strv_of(a, b);
		free(a);
		free(b);
	}
	if (conf.global_known_hosts != NULL) {
		ep->global_files = conf.global_known_hosts;
		conf.global_known_hosts = NULL;
	} else
		ep->global_files = strv_of("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2");
	if (l->trust)
		ep->mode = HOSTKEY_TRUST;
	else if (l->accept_new)
		ep->mode = HOSTKEY_ACCEPT_NEW;
	else if (conf.strict == SSHCONF_STRICT_ACCEPT_NEW || conf.strict == SSHCONF_STRICT_NO)
		ep->mode = HOSTKEY_ACCEPT_NEW;	/* "no": a changed key is still refused */
	else
		ep->mode = HOSTKEY_STRICT;	/* yes, ask (nobody to ask), unset */
	if (conf.strict != SSHCONF_STRICT_UNSET)
		ep->mode_origin = xasprintf("StrictHostKeyChecking %s at %s",
		    sshconf_strict_name(conf.strict), conf.strict_origin);
	/*
	 * libssh orders host key algorithms by the types these two files record
	 * for the host; the check itself is known_hosts_check over all of them.
	 * Its own StrictHostKeyChecking would let "no" pass a changed key.
	 */
	if (ssh_options_set(ep->session, SSH_OPTIONS_KNOWNHOSTS, ep->user_files[0]) != SSH_OK ||
	    ssh_options_set(ep->session, SSH_OPTIONS_GLOBAL_KNOWNHOSTS,
	    ep->global_files[0]) != SSH_OK ||
	    ssh_options_set(ep->session, SSH_OPTIONS_STRICTHOSTKEYCHECK, &(int){ 1 }) != SSH_OK)
		goto libssh_error;
	r = 0;
	goto out;
libssh_error:
	log_error("%s: SSH options: %s", ep->label, ssh_get_error(ep->session));
out:
	sshconf_release(&conf);
	ssh_string_free_char(hostname);
	ssh_string_free_char(user);
	free(local_user);
	return r;
}

/*
 * A session configured for ALIAS (the host's address, or a jump host):
 * ~/.ssh/config, then what distsync's configuration sets explicitly (for
 * the host) or the ProxyJump entry (USER, PORT, for a jump host).
 */
static int
endpoint_new(struct link *l, const char *alias, const char *user, unsigned port, int is_jump,
    struct endpoint **out)
{
	const struct config_host *host = l->host;
	struct endpoint *ep;
	char *ssh_dir = NULL, *user_config = NULL, *path = NULL;
	long timeout;
	bool no = false;
	int verbosity, r = DS_ERR_CONFIG;

	*out = NULL;
	ep = xcalloc(1, sizeof(*ep));
	ep->alias = xstrdup(alias);
	ep->is_jump = is_jump;
	ep->label = is_jump ? xasprintf("%s: jump host %s", l->name, alias) : xstrdup(l->name);
	if (log_trace()) {
		ssh_set_log_callback(libssh_log);
		verbosity = SSH_LOG_PROTOCOL;
	} else
		verbosity = SSH_LOG_NOLOG;
	if ((ep->session = ssh_new()) == NULL) {
		log_error("%s: cannot create an SSH session", ep->label);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	ssh_dir = xasprintf("%s/.ssh", l->home);
	user_config = xasprintf("%s/config", ssh_dir);
	if (ssh_options_set(ep->session, SSH_OPTIONS_LOG_VERBOSITY, &verbosity) != SSH_OK ||
	    ssh_options_set(ep->session, SSH_OPTIONS_HOST, alias) != SSH_OK ||
	    ssh_options_set(ep->session, SSH_OPTIONS_SSH_DIR, ssh_dir) != SSH_OK) {
		log_error("%s: address '%s': %s", ep->label, alias, ssh_get_error(ep->session));
		goto out;
	}
	/*
	 * libssh would read ~/.ssh/config from the passwd home at connect time;
	 * read it (and the system file) now, from $HOME, so that explicit
	 * settings below win and tests can point HOME elsewhere.
	 */
	if (readable(user_config) && ssh_options_parse_config(ep->session, user_config) != 0) {
		log_error("%s: %s: %s", ep->label, user_config, ssh_get_error(ep->session));
		goto out;
	}
	if (readable("/etc/ssh/ssh_config") &&
	    ssh_options_parse_config(ep->session, "/etc/ssh/ssh_config") != 0) {
		log_error("%s: /etc/ssh/ssh_config: %s", ep->label, ssh_get_error(ep->session));
		goto out;
	}
	if (ssh_options_set(ep->session, SSH_OPTIONS_PROCESS_CONFIG, &no) != SSH_OK)
		goto libssh_error;
	if (!is_jump) {
		user = host->user;
		port = host->port;
	}
	if (user != NULL && ssh_options_set(ep->session, SSH_OPTIONS_USER, user) != SSH_OK)
		goto libssh_error;
	if (port != 0 && ssh_options_set(ep->session, SSH_OPTIONS_PORT, &port) != SSH_OK)
		goto libssh_error;
	if (!is_jump && host->identity != NULL) {
		path = expand_home(host->identity, l->home);
		/* Prepended: tried before ~/.ssh/config's and the default ones. */
		if (ssh_options_set(ep->session, SSH_OPTIONS_IDENTITY, path) != SSH_OK)
			goto libssh_error;
	}
	timeout = host->connect_timeout ? host->connect_timeout : DEFAULT_CONNECT_TIMEOUT;
	if (ssh_options_set(ep->session, SSH_OPTIONS_TIMEOUT, &timeout) != SSH_OK)
		goto libssh_error;
	if ((r = endpoint_ssh_config(l, ep, ssh_dir, user_config)) != 0)
		goto out;
	*out = ep;
	ep = NULL;
	r = 0;
	goto out;
libssh_error:
	log_error("%s: SSH options: %s", ep->label, ssh_get_error(ep->session));
out:
	endpoint_free(ep);
	free(ssh_dir);
	free(user_config);
	free(path);
	return r;
}

/* Turns ssh_connect's failure into one clear message and an error code. */
static int
connect_error(const struct link *l, const struct endpoint *ep)
{
	const char *msg = ssh_get_error(ep->session);
	char *address = session_address(ep->session);
	int r = DS_ERR_CONNECT;

	if (strstr(msg, "resolve") != NULL || strstr(msg, "Name or service not known") != NULL ||
	    strstr(msg, "not known") != NULL || strstr(msg, "Temporary failure in name") != NULL)
		log_error("%s: cannot resolve the host name of %s (DNS): %s", ep->label,
		    address, msg);
	else if (strstr(msg, "refused") != NULL)
		log_error("%s: connection to %s refused: no SSH server listens there", ep->label,
		    address);
	else if (strstr(msg, "imeout") != NULL || strstr(msg, "timed out") != NULL) {
		log_error("%s: connecting to %s timed out after %u s", ep->label, address,
		    l->host->connect_timeout ? l->host->connect_timeout :
		    DEFAULT_CONNECT_TIMEOUT);
		r = DS_ERR_TIMEOUT;
	} else if (strstr(msg, "unreachable") != NULL || strstr(msg, "No route") != NULL)
		log_error("%s: %s is unreachable: %s", ep->label, address, msg);
	else
		log_error("%s: cannot connect to %s%s: %s", ep->label, address,
		    ep->tunneled ? " through the jump host" : "", msg);
	free(address);
	return r;
}

/* The user files, then the global ones: what a key is looked up in. */
static char **
endpoint_files(const struct endpoint *ep)
{
	size_t n = 0, i;
	char **v;

	for (i = 0; ep->user_files[i] != NULL; i++)
		n++;
	for (i = 0; ep->global_files[i] != NULL; i++)
		n++;
	v = xcalloc(n + 1, sizeof(*v));
	n = 0;
	for (i = 0; ep->user_files[i] != NULL; i++)
		v[n++] = ep->user_files[i];
	for (i = 0; ep->global_files[i] != NULL; i++)
		v[n++] = ep->global_files[i];
	return v;	/* the strings stay ep's: free only the array */
}

/* Says what refused an unknown key and which command records it. */
static void
log_unknown(const struct link *l, const struct endpoint *ep, const char *address,
    const char *type, const char *fingerprint)
{
	char *command = trust_command(l);
	char *origin = ep->files_origin ? xasprintf(" (%s)", ep->files_origin) : xstrdup("");
	char *then = ep->is_jump ? xasprintf(": it asks about each key on the way to %s, "
	    "this jump host's first", l->name) : xstrdup("");

	log_error("%s: unknown host key for %s: %s key %s is not in %s%s. Nothing was sent. "
	    "Check the fingerprint with the server's administrator, then run '%s'%s",
	    ep->label, address, type, fingerprint, ep->user_files[0], origin, command, then);
	free(command);
	free(origin);
	free(then);
}

/* A key that differs from the recorded one: refused in every mode. */
static void
log_changed(const struct link *l, const struct endpoint *ep, const char *address,
    const char *type, const char *fingerprint, const struct known_hosts_result *res,
    const char *name)
{
	char *command = trust_command(l), *qname = xport_ssh_quote(name);
	char *qfile = xport_ssh_quote(res->file);
	char *mode = ep->mode_origin ? xasprintf(", not %s either", ep->mode_origin) :
	    xstrdup("");
	char *what = res->state == KNOWN_HOSTS_CHANGED ?
	    xasprintf("which does not match the %s key recorded at %s:%u", res->recorded_type,
	    res->file, res->line) :
	    xasprintf("and %s:%u records a %s key for it instead", res->file, res->line,
	    res->recorded_type);

	log_error("%s: HOST KEY CHANGED for %s: it now offers %s key %s, %s. Someone may be "
	    "intercepting the connection, or the server was reinstalled. Nothing was sent, "
	    "and no option overrides this%s. Only if you know the change is legitimate: "
	    "remove that entry (ssh-keygen -R %s -f %s) and run '%s'", ep->label, address,
	    type, fingerprint, what, mode, qname, qfile, command);
	free(command);
	free(qname);
	free(qfile);
	free(mode);
	free(what);
}

/*
 * Checks the server's host key against the endpoint's known_hosts files in
 * its mode. For HOSTKEY_TRUST prints the key and asks l->confirm. Logs and
 * returns DS_ERR_HOSTKEY when the key is not (or no longer) trusted.
 */
static int
check_host_key(const struct link *l, const struct endpoint *ep)
{
	struct known_hosts_result res = { .state = KNOWN_HOSTS_UNKNOWN };
	ssh_key key = NULL;
	unsigned char *hash = NULL;
	size_t hash_len = 0;
	char *fingerprint = NULL, *address = session_address(ep->session), *name = NULL;
	char *host = NULL, **files = NULL;
	const char *type = "?";
	unsigned port = 22;
	int r = DS_ERR_HOSTKEY;

	if (ssh_get_server_publickey(ep->session, &key) != SSH_OK ||
	    ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hash_len) != 0 ||
	    (fingerprint = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash,
	    hash_len)) == NULL) {
		log_error("%s: cannot read the host key of %s: %s", ep->label, address,
		    ssh_get_error(ep->session));
		goto out;
	}
	type = ssh_key_type_to_char(ssh_key_type(key));
	if (type == NULL)
		type = "unknown";
	if (ssh_options_get(ep->session, SSH_OPTIONS_HOST, &host) != SSH_OK)
		host = NULL;
	ssh_options_get_port(ep->session, &port);
	name = known_hosts_name(host ? host : "?", port);
	files = endpoint_files(ep);
	if (known_hosts_check(files, name, key, &res) != 0) {
		log_error("%s: cannot check the host key of %s: nothing was sent", ep->label,
		    address);
		goto out;
	}
	if (ep->mode == HOSTKEY_TRUST)
		printf("%s (%s): %s key %s\n", ep->label, address, type, fingerprint);
	switch (res.state) {
	case KNOWN_HOSTS_MATCH:
		if (ep->mode == HOSTKEY_TRUST)
			printf("%s: already trusted in %s\n", ep->label, res.file);
		r = 0;
		break;
	case KNOWN_HOSTS_REVOKED:
		log_error("%s: the host key of %s (%s %s) is marked @revoked at %s:%u. Nothing "
		    "was sent", ep->label, address, type, fingerprint, res.file, res.line);
		break;
	case KNOWN_HOSTS_CHANGED:
	case KNOWN_HOSTS_OTHER_TYPE:
		log_changed(l, ep, address, type, fingerprint, &res, name);
		break;
	case KNOWN_HOSTS_UNKNOWN:
		if (ep->mode == HOSTKEY_STRICT) {
			log_unknown(l, ep, address, type, fingerprint);
			break;
		}
		if (ep->mode == HOSTKEY_TRUST && l->confirm != NULL &&
		    !l->confirm(ep->label, type, fingerprint, l->arg)) {
			log_error("%s: host key not trusted; nothing recorded", ep->label);
			break;
		}
		if (known_hosts_record(ep->user_files[0], name, key) != 0)
			break;
		if (ep->mode == HOSTKEY_TRUST)
			printf("%s: recorded in %s\n", ep->label, ep->user_files[0]);
		else
			log_warn("%s: recorded new host key for %s (%s %s) in %s%s%s%s", ep->label,
			    address, type, fingerprint, ep->user_files[0],
			    ep->mode_origin && !l->accept_new ? " (" : "",
			    ep->mode_origin && !l->accept_new ? ep->mode_origin : "",
			    ep->mode_origin && !l->accept_new ? ")" : "");
		r = 0;
		break;
	}
	fflush(stdout);
out:
	known_hosts_result_release(&res);
	ssh_string_free_char(fingerprint);
	ssh_clean_pubkey_hash(&hash);
	ssh_key_free(key);
	ssh_string_free_char(host);
	free(address);
	free(name);
	free(files);
	return r;
}

/* Public-key authentication: agent and identities, then host->identity alone. */
static int
authenticate(const struct link *l, const struct endpoint *ep)
{
	const struct config_host *host = l->host;
	ssh_session session = ep->session;
	char *user = NULL, *address = session_address(session), *path = NULL;
	ssh_key key = NULL;
	int rc, r = DS_ERR_AUTH;

	rc = ssh_userauth_none(session, NULL);
	if (rc == SSH_AUTH_SUCCESS) {
		r = 0;
		goto out;
	}
	if (rc == SSH_AUTH_ERROR)
		goto lost;
	rc = ssh_userauth_publickey_auto(session, NULL, NULL);
	if (rc == SSH_AUTH_SUCCESS) {
		r = 0;
		goto out;
	}
	if (rc == SSH_AUTH_ERROR)
		goto lost;
	if (host->identity != NULL) {
		/* Says why when the configured key itself is the problem. */
		path = expand_home(host->identity, l->home);
		if (ssh_pki_import_privkey_file(path, NULL, NULL, NULL, &key) != SSH_OK) {
			log_error("%s: cannot load identity %s (%s; a key with a passphrase "
			    "must be loaded into ssh-agent)", ep->label, path,
			    access(path, R_OK) == 0 ? "not a private key or encrypted" :
			    strerror(errno));
			goto out;
		}
		rc = ssh_userauth_publickey(session, NULL, key);
		if (rc == SSH_AUTH_SUCCESS) {
			r = 0;
			goto out;
		}
		if (rc == SSH_AUTH_ERROR)
			goto lost;
	}
	if (ssh_options_get(session, SSH_OPTIONS_USER, &user) != SSH_OK)
		user = NULL;
	log_error("%s: authentication failed for %s@%s: the server accepted none of the keys "
	    "tried (ssh-agent, %s%s~/.ssh/config IdentityFile and default keys)", ep->label,
	    user ? user : "?", address, path ? path : "", path ? ", " : "");
	goto out;
lost:
	log_error("%s: connection to %s lost during authentication: %s", ep->label, address,
	    ssh_get_error(session));
	r = DS_ERR_CONNECT;
out:
	ssh_key_free(key);
	ssh_string_free_char(user);
	free(address);
	free(path);
	return r;
}

/*
 * Connects EP (through FD, a tunnel's socket, when FD >= 0: the session
 * owns it from here on, whatever happens) and checks its host key.
 */
static int
endpoint_connect(const struct link *l, struct endpoint *ep, int fd)
{
	if (fd >= 0) {
		if (ssh_options_set(ep->session, SSH_OPTIONS_FD, &fd) != SSH_OK) {
			log_error("%s: SSH options: %s", ep->label, ssh_get_error(ep->session));
			close(fd);
			return DS_ERR_SYSTEM;
		}
		ep->tunneled = 1;
	}
	if (ssh_connect(ep->session) != SSH_OK)
		return connect_error(l, ep);
	return check_host_key(l, ep);
}

/*
 * Connects to the host, through the jump hosts of its ProxyJump, each one's
 * key checked and each one authenticated; *out is the host's endpoint,
 * connected and its key checked (not authenticated). The tunnels are in
 * l->tunnels, freed by link_release after the host's session.
 */
static int
link_connect(struct link *l, struct endpoint **out)
{
	struct endpoint *target = NULL, **hops = NULL;
	struct sshconf_hop *spec = NULL;
	struct tunnel *t;
	char *next_host = NULL;
	size_t nspec = 0, i;
	unsigned next_port;
	int fd = -1, r;

	*out = NULL;
	if (l->host->address == NULL || *l->host->address == '\0') {
		log_error("%s: no address configured: a local target is not reached over SSH",
		    l->name);
		return DS_ERR_CONFIG;
	}
	if ((r = endpoint_new(l, l->host->address, NULL, 0, 0, &target)) != 0)
		return r;
	if (target->proxy_jump != NULL) {
		/* sshconf checked the syntax when it read it. */
		if (sshconf_parse_jump(target->proxy_jump, &spec, &nspec) != 0) {
			r = DS_ERR_CONFIG;
			goto out;
		}
		log_debug("%s: through %s (ProxyJump at %s)", l->name, target->proxy_jump,
		    target->proxy_jump_origin);
		hops = xcalloc(nspec, sizeof(*hops));
		for (i = 0; i < nspec; i++)
			if ((r = endpoint_new(l, spec[i].host, spec[i].user, spec[i].port, 1,
			    &hops[i])) != 0)
				goto out;
	}
	for (i = 0; i < nspec; i++) {
		struct endpoint *next = i + 1 < nspec ? hops[i + 1] : target;

		r = endpoint_connect(l, hops[i], fd);
		fd = -1;
		if (r != 0 || (r = authenticate(l, hops[i])) != 0)
			goto out;
		ssh_string_free_char(next_host);
		if (ssh_options_get(next->session, SSH_OPTIONS_HOST, &next_host) != SSH_OK) {
			next_host = NULL;
			log_error("%s: no host name", next->label);
			r = DS_ERR_CONFIG;
			goto out;
		}
		next_port = 22;
		ssh_options_get_port(next->session, &next_port);
		if ((r = tunnel_open(hops[i]->session, hops[i]->tunneled, next_host, next_port,
		    hops[i]->label, &fd, &t)) != 0)
			goto out;
		hops[i]->session = NULL;	/* the tunnel's now */
		l->tunnels = xreallocarray(l->tunnels, l->ntunnels + 1, sizeof(*l->tunnels));
		l->tunnels[l->ntunnels++] = t;
	}
	r = endpoint_connect(l, target, fd);
	fd = -1;
	if (r != 0)
		goto out;
	*out = target;
	target = NULL;
out:
	if (fd >= 0)
		close(fd);
	endpoint_free(target);
	for (i = 0; hops != NULL && i < nspec; i++)
		endpoint_free(hops[i]);
	free(hops);
	sshconf_hops_free(spec, nspec);
	ssh_string_free_char(next_host);
	return r;
}

/* Logs one line of the remote's stderr, naming the host. */
static void
remote_line(struct ssh_priv *p, char *line, size_t len)
{
	const char *text = line, *name = p->name, *sep = ": ";
	enum log_level level = LOG_LEVEL_ERROR;

	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
		len--;
	line[len] = '\0';
	if (len == 0)
		return;
	/* A remote distsync already says "distsync: "; ours says it once. */
	if (strncmp(text, "distsync: ", 10) == 0)
		text += 10;
	/* Its level, as serve marks it (log_set_level_tags): -q silences info. */
	if (strncmp(text, "warning: ", 9) == 0)
		level = LOG_LEVEL_WARN, text += 9;
	else if (strncmp(text, "info: ", 6) == 0)
		level = LOG_LEVEL_INFO, text += 6;
	else if (strncmp(text, "debug: ", 7) == 0)
		level = LOG_LEVEL_DEBUG, text += 7;
	/* The host's name first, unless the line names it ("host NAME: "). */
	if (log_line_names(text, p->name))
		name = sep = "";
	if (level == LOG_LEVEL_WARN)
		log_warn("%s%s%s", name, sep, text);
	else if (level == LOG_LEVEL_INFO)
		log_info("%s%s%s", name, sep, text);
	else if (level == LOG_LEVEL_DEBUG)
		log_debug("%s%s%s", name, sep, text);
	else
		log_error("%s%s%s", name, sep, text);
}

/* Reads what the remote wrote to stderr so far and logs complete lines. */
static void
drain_stderr(struct ssh_priv *p, int flush)
{
	char buf[4096];
	int n;

	while ((n = ssh_channel_read_nonblocking(p->channel, buf, sizeof(buf), 1)) > 0) {
		p->last_progress = util_now_ms();
		for (int i = 0; i < n; i++) {
			if (buf[i] == '\n' || p->line_len == sizeof(p->line) - 1) {
				remote_line(p, p->line, p->line_len);
				p->line_len = 0;
				if (buf[i] == '\n')
					continue;
			}
			p->line[p->line_len++] = buf[i];
		}
	}
	if (flush && p->line_len > 0) {
		remote_line(p, p->line, p->line_len);
		p->line_len = 0;
	}
}

static int
lost(struct ssh_priv *p, const char *doing)
{
	if (!p->failed)
		log_error("%s: connection to %s lost while %s: %s", p->name, p->address, doing,
		    ssh_get_error(p->session));
	if (!p->failed)
		p->error = DS_ERR_CONNECT;
	p->failed = 1;
	return DS_ERR_CONNECT;
}

/* Between slices: the idle timeout, keepalives, a session closed under us. */
static int
idle_check(struct xport *x, const char *doing)
{
	struct ssh_priv *p = x->priv;
	uint64_t now = util_now_ms(), quiet;

	if (ssh_get_status(p->session) & (SSH_CLOSED | SSH_CLOSED_ERROR))
		return lost(p, doing);
	if (x->idle_timeout != 0 && now - p->last_progress >= (uint64_t)x->idle_timeout * 1000) {
		if (!p->failed)
			log_error("%s: no data from %s for %u s while %s: timed out", p->name,
			    p->address, x->idle_timeout, doing);
		if (!p->failed)
			p->error = DS_ERR_TIMEOUT;
		p->failed = 1;
		return DS_ERR_TIMEOUT;
	}
	quiet = now - (p->last_keepalive > p->last_progress ? p->last_keepalive :
	    p->last_progress);
	if (quiet >= (uint64_t)p->keepalive * 1000) {
		log_debug("%s: sending a keepalive", p->name);
		ssh_send_keepalive(p->session);
		p->last_keepalive = util_now_ms();
		if (ssh_get_status(p->session) & (SSH_CLOSED | SSH_CLOSED_ERROR))
			return lost(p, doing);
	}
	return 0;
}

/*
 * Waits (a few slices at most) for the remote's exit status; returns it, or
 * -1 when the channel closed without one or it did not come.
 */
static int
wait_exit_status(struct ssh_priv *p, int slices)
{
	int status = -1;

	for (int i = 0; i < slices; i++) {
		status = ssh_channel_get_exit_status(p->channel);
		if (status != -1 || ssh_channel_is_closed(p->channel) ||
		    (ssh_get_status(p->session) & (SSH_CLOSED | SSH_CLOSED_ERROR)))
			break;
	}
	return status;
}

static void
log_not_found(struct ssh_priv *p)
{
	if (!p->notfound_logged)
		log_error("distsync not found on %s: install it there or set remote_command",
		    p->name);
	p->notfound_logged = 1;
	p->error = DS_ERR_NOTFOUND;
	p->failed = 1;
}

/*
 * Moves the stdout data libssh holds into rbuf (growing it up to RBUF_MAX).
 * Returns 0 when libssh has no more for now (or rbuf is full), else what
 * libssh returned: SSH_EOF, or SSH_ERROR once the session failed (rbuf keeps
 * what was moved before).
 */
static int
pump(struct ssh_priv *p)
{
	int n;

	if (p->roff == p->rlen)
		p->roff = p->rlen = 0;
	for (;;) {
		if (p->rlen == p->rcap) {
			if (p->roff > 0) {
				memmove(p->rbuf, p->rbuf + p->roff, p->rlen - p->roff);
				p->rlen -= p->roff;
				p->roff = 0;
			} else if (p->rcap < RBUF_MAX) {
				p->rcap = p->rcap == 0 ? RBUF_MIN : p->rcap * 2;
				p->rbuf = xreallocarray(p->rbuf, p->rcap, 1);
			} else
				return 0;	/* full: libssh keeps the rest (its window closes) */
		}
		n = ssh_channel_read_nonblocking(p->channel, p->rbuf + p->rlen,
		    (uint32_t)(p->rcap - p->rlen), 0);
		if (n <= 0)
			return n;
		p->rlen += (size_t)n;
	}
}

static ssize_t
ssh_xport_read(struct xport *x, void *buf, size_t len)
{
	struct ssh_priv *p = x->priv;
	int n, r;

	for (;;) {
		/*
		 * With RBUF_LOW buffered already, serve from rbuf alone: a pump is a
		 * poll(2) into libssh, not worth paying for every frame. Below it,
		 * pump before and after drain_stderr, whose socket read may meet
		 * the reset.
		 */
		n = 0;
		if (p->rlen - p->roff < RBUF_LOW) {
			(void)pump(p);
			drain_stderr(p, 0);
			n = pump(p);
		}
		if (p->rlen > p->roff) {
			if (len > p->rlen - p->roff)
				len = p->rlen - p->roff;
			memcpy(buf, p->rbuf + p->roff, len);
			p->roff += len;
			p->last_progress = util_now_ms();
			return (ssize_t)len;
		}
		if (n == SSH_EOF) {
			/* The status tells a missing program from a finished peer. */
			if (wait_exit_status(p, 2) == EXIT_NOT_FOUND) {
				drain_stderr(p, 1);
				log_not_found(p);
				return DS_ERR_NOTFOUND;
			}
			drain_stderr(p, 1);
			return 0;
		}
		if (n < 0)
			return lost(p, "reading");
		n = ssh_channel_poll_timeout(p->channel, SLICE_MS, 0);
		if (n == SSH_ERROR)
			return lost(p, "reading");
		if (n != 0)
			continue;
		if ((r = idle_check(x, "reading")) != 0)
			return r;
	}
}

static int
ssh_xport_write(struct xport *x, const void *buf, size_t len)
{
	struct ssh_priv *p = x->priv;
	const char *cp = buf;
	int n, r;

	if (p->sent_eof) {
		log_error("%s: write after shutdown", p->name);
		return DS_ERR_INVALID;
	}
	while (len > 0) {
		drain_stderr(p, 0);
		/* Blocks at most SSH_OPTIONS_TIMEOUT (a slice) for window space. */
		n = ssh_channel_write(p->channel, cp, len > WRITE_CHUNK ? WRITE_CHUNK : len);
		if (n == SSH_ERROR || ssh_channel_is_closed(p->channel)) {
			if (!p->failed && wait_exit_status(p, 1) == EXIT_NOT_FOUND) {
				drain_stderr(p, 1);
				log_not_found(p);
				return DS_ERR_NOTFOUND;
			}
			return lost(p, "writing");
		}
		if (n > 0) {
			cp += n;
			len -= n;
			p->last_progress = util_now_ms();
			continue;
		}
		if ((r = idle_check(x, "writing")) != 0)
			return r;
	}
	return 0;
}

static int
ssh_xport_shutdown(struct xport *x)
{
	struct ssh_priv *p = x->priv;

	if (p->sent_eof)
		return 0;
	p->sent_eof = 1;
	if (ssh_channel_send_eof(p->channel) != SSH_OK)
		return lost(p, "sending end of stream");
	return 0;
}

static int
ssh_xport_close(struct xport *x)
{
	struct ssh_priv *p = x->priv;
	time_t deadline;
	char sink[16384];
	int n, status, r = 0;

	if (p->closed)
		return p->close_result;
	p->closed = 1;
	/*
	 * Ctrl-C: the session ends now. Reading the peer to its end would wait
	 * for what it still sends (a pull's object at the link's rate, up to
	 * CLOSE_DRAIN_TIMEOUT); closing tells it to stop.
	 */
	if (interrupt_signal() != 0) {
		p->failed = 1;
		if (p->error == 0)
			p->error = DS_ERR_INTERRUPTED;
	}
	if (!p->sent_eof && !p->failed && ssh_channel_is_open(p->channel)) {
		p->sent_eof = 1;
		ssh_channel_send_eof(p->channel);
	}
	/* Let the peer finish: read to its end of stream, logging its stderr. */
	deadline = now_seconds() + CLOSE_DRAIN_TIMEOUT;
	while (!p->failed && now_seconds() < deadline) {
		drain_stderr(p, 0);
		n = ssh_channel_read_nonblocking(p->channel, sink, sizeof(sink), 0);
		if (n == SSH_EOF || ssh_channel_is_closed(p->channel))
			break;
		if (n < 0) {
			r = lost(p, "closing");
			break;
		}
		if (n == 0 && ssh_channel_poll_timeout(p->channel, SLICE_MS, 0) == SSH_ERROR) {
			r = lost(p, "closing");
			break;
		}
	}
	status = p->failed && r == 0 && !p->notfound_logged ? -1 :
	    wait_exit_status(p, 3);
	drain_stderr(p, 1);
	if (status == EXIT_NOT_FOUND) {
		log_not_found(p);
		r = DS_ERR_NOTFOUND;
	} else if (status >= 0)
		r = status;
	else if (r == 0 && !p->failed) {
		log_error("%s: the remote command ended without an exit status "
		    "(killed by a signal, or the connection dropped)", p->name);
		r = DS_ERR_PEER;
	} else if (r == 0)
		r = p->error;
	ssh_channel_close(p->channel);
	/* libssh's ssh_disconnect frees the session's channels itself. */
	ssh_channel_free(p->channel);
	p->channel = NULL;
	/* Over a tunnel the session ends at ssh_free, closing the socket (tunnel.h). */
	if (!p->tunneled)
		ssh_disconnect(p->session);
	p->close_result = r;
	return r;
}

static void
ssh_xport_free_priv(struct xport *x)
{
	struct ssh_priv *p = x->priv;

	if (p == NULL)
		return;
	if (p->channel != NULL)
		ssh_channel_free(p->channel);
	if (p->session != NULL) {
		if (!p->tunneled && ssh_is_connected(p->session))
			ssh_disconnect(p->session);
		ssh_free(p->session);
	}
	while (p->ntunnels > 0)
		tunnel_free(p->tunnels[--p->ntunnels]);
	free(p->tunnels);
	free(p->rbuf);
	free(p->name);
	free(p->address);
	free(p);
	x->priv = NULL;
}

static const struct xport_ops ssh_xport_ops = {
	.read = ssh_xport_read,
	.write = ssh_xport_write,
	.shutdown = ssh_xport_shutdown,
	.close = ssh_xport_close,
	.free_priv = ssh_xport_free_priv,
};

int
xport_ssh_open(const struct config_host *host, const char *remote_args,
    const struct xport_ssh_opts *opts, struct xport **out)
{
	struct ssh_priv *p = NULL;
	struct xport *x = NULL;
	struct endpoint *target = NULL;
	struct link l;
	char *command = NULL;
	const char *remote_command;
	long slice = SLICE_MS / 1000;
	int r;

	*out = NULL;
	link_init(&l, host, opts);
	p = xcalloc(1, sizeof(*p));
	p->name = xstrdup(l.name);
	r = link_connect(&l, &target);
	/* The tunnels end with the transport, after its session. */
	p->tunnels = l.tunnels;
	p->ntunnels = l.ntunnels;
	l.tunnels = NULL;
	l.ntunnels = 0;
	if (r != 0)
		goto out;
	if ((r = authenticate(&l, target)) != 0)
		goto out;
	p->session = target->session;
	p->tunneled = target->tunneled;
	target->session = NULL;
	p->address = session_address(p->session);
	remote_command = host->remote_command && *host->remote_command ? host->remote_command :
	    "distsync";
	if (remote_args != NULL && *remote_args != '\0')
		command = xasprintf("%s %s", remote_command, remote_args);
	else
		command = xstrdup(remote_command);
	if ((p->channel = ssh_channel_new(p->session)) == NULL ||
	    ssh_channel_open_session(p->channel) != SSH_OK) {
		log_error("%s: %s refused a session channel: %s", p->name, p->address,
		    ssh_get_error(p->session));
		r = DS_ERR_PEER;
		goto out;
	}
	log_debug("%s: running: %s", p->name, command);
	if (ssh_channel_request_exec(p->channel, command) != SSH_OK) {
		log_error("%s: %s refused to run '%s': %s", p->name, p->address, command,
		    ssh_get_error(p->session));
		r = DS_ERR_PEER;
		goto out;
	}
	/* From now on every libssh wait is one slice; the loops do the rest. */
	if (ssh_options_set(p->session, SSH_OPTIONS_TIMEOUT, &slice) != SSH_OK) {
		log_error("%s: SSH options: %s", p->name, ssh_get_error(p->session));
		r = DS_ERR_SYSTEM;
		goto out;
	}
	x = xcalloc(1, sizeof(*x));
	x->ops = &ssh_xport_ops;
	x->priv = p;
	x->peer = xstrdup(p->name);
	x->bwlimit = host->bwlimit;
	x->idle_timeout = host->idle_timeout;
	p->keepalive = opts && opts->keepalive_interval ? opts->keepalive_interval :
	    DEFAULT_KEEPALIVE;
	if (x->idle_timeout != 0 && p->keepalive > x->idle_timeout / 3)
		p->keepalive = x->idle_timeout / 3 ? x->idle_timeout / 3 : 1;
	p->last_progress = p->last_keepalive = util_now_ms();
	p = NULL;
	*out = x;
	r = 0;
out:
	/* The host's session goes before the tunnels it runs over. */
	endpoint_free(target);
	if (p != NULL) {
		struct xport tmp = { .priv = p };

		ssh_xport_free_priv(&tmp);
	}
	link_release(&l);
	free(command);
	return r;
}

int
xport_ssh_trust(const struct config_host *host, const struct xport_ssh_opts *opts,
    xport_ssh_confirm_fn confirm, void *arg)
{
	struct endpoint *target = NULL;
	struct link l;
	int r;

	link_init(&l, host, opts);
	l.trust = 1;
	l.confirm = confirm;
	l.arg = arg;
	r = link_connect(&l, &target);
	endpoint_free(target);
	link_release(&l);
	return r;
}
