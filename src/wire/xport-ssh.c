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
#include "base/log.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "config/config.h"
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
	HOSTKEY_STRICT,
	HOSTKEY_ACCEPT_NEW,
	HOSTKEY_TRUST,
};

struct ssh_priv {
	ssh_session	 session;
	ssh_channel	 channel;
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
	time_t		 last_progress;	/* monotonic seconds */
	time_t		 last_keepalive;
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
	static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789_-+=./:,@%";
	size_t len = 0, i, n;
	char *out;

	if (*arg != '\0' && strspn(arg, safe) == strlen(arg))
		return xstrdup(arg);
	for (i = 0; arg[i] != '\0'; i++)
		len += arg[i] == '\'' ? 4 : 1;
	out = xmalloc(len + 3);
	n = 0;
	out[n++] = '\'';
	for (i = 0; arg[i] != '\0'; i++) {
		if (arg[i] == '\'') {
			memcpy(out + n, "'\\''", 4);
			n += 4;
		} else
			out[n++] = arg[i];
	}
	out[n++] = '\'';
	out[n] = '\0';
	return out;
}

char *
xport_ssh_quote_argv(char *const *argv)
{
	char *out = xstrdup(""), *quoted, *joined;

	for (size_t i = 0; argv[i] != NULL; i++) {
		quoted = xport_ssh_quote(argv[i]);
		joined = xasprintf("%s%s%s", out, i > 0 ? " " : "", quoted);
		free(quoted);
		free(out);
		out = joined;
	}
	return out;
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

/* The host as known_hosts names it: "host", or "[host]:port" off port 22. */
static char *
known_hosts_name(ssh_session session)
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
		s = xasprintf("[%s]:%u", host ? host : "?", port);
	ssh_string_free_char(host);
	for (char *c = s; *c != '\0'; c++)	/* libssh matches lowercase names */
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	return s;
}

/*
 * A session configured for host: address, ~/.ssh/config, then what the
 * host's config sets explicitly, the known_hosts file and connect timeout.
 */
static int
session_new(const struct config_host *host, ssh_session *out, char **known_hosts_out)
{
	ssh_session session = NULL;
	char *home = NULL, *ssh_dir = NULL, *user_config = NULL, *path = NULL;
	char *known_hosts = NULL;
	long timeout;
	bool no = false;
	int verbosity, r = DS_ERR_CONFIG;

	*out = NULL;
	*known_hosts_out = NULL;
	if (host->address == NULL || *host->address == '\0') {
		log_error("%s: no address configured: a local target is not reached over SSH",
		    host->name);
		return DS_ERR_CONFIG;
	}
	if (log_get_level() >= LOG_LEVEL_DEBUG) {
		ssh_set_log_callback(libssh_log);
		verbosity = SSH_LOG_PROTOCOL;
	} else
		verbosity = SSH_LOG_NOLOG;
	if ((session = ssh_new()) == NULL) {
		log_error("%s: cannot create an SSH session", host->name);
		return DS_ERR_SYSTEM;
	}
	if ((home = util_home_dir()) == NULL)
		home = xstrdup("/");
	ssh_dir = xasprintf("%s/.ssh", home);
	user_config = xasprintf("%s/config", ssh_dir);
	if (ssh_options_set(session, SSH_OPTIONS_LOG_VERBOSITY, &verbosity) != SSH_OK ||
	    ssh_options_set(session, SSH_OPTIONS_HOST, host->address) != SSH_OK ||
	    ssh_options_set(session, SSH_OPTIONS_SSH_DIR, ssh_dir) != SSH_OK) {
		log_error("%s: address '%s': %s", host->name, host->address, ssh_get_error(session));
		goto out;
	}
	/*
	 * libssh would read ~/.ssh/config from the passwd home at connect time;
	 * read it (and the system file) now, from $HOME, so that explicit
	 * settings below win and tests can point HOME elsewhere.
	 */
	if (readable(user_config) && ssh_options_parse_config(session, user_config) != 0) {
		log_error("%s: %s: %s", host->name, user_config, ssh_get_error(session));
		goto out;
	}
	if (readable("/etc/ssh/ssh_config") &&
	    ssh_options_parse_config(session, "/etc/ssh/ssh_config") != 0) {
		log_error("%s: /etc/ssh/ssh_config: %s", host->name, ssh_get_error(session));
		goto out;
	}
	if (ssh_options_set(session, SSH_OPTIONS_PROCESS_CONFIG, &no) != SSH_OK)
		goto libssh_error;
	if (host->user != NULL && ssh_options_set(session, SSH_OPTIONS_USER, host->user) != SSH_OK)
		goto libssh_error;
	if (host->port != 0 && ssh_options_set(session, SSH_OPTIONS_PORT, &host->port) != SSH_OK)
		goto libssh_error;
	if (host->identity != NULL) {
		path = expand_home(host->identity, home);
		/* Prepended: tried before ~/.ssh/config's and the default ones. */
		if (ssh_options_set(session, SSH_OPTIONS_IDENTITY, path) != SSH_OK)
			goto libssh_error;
	}
	if (host->known_hosts != NULL)
		known_hosts = expand_home(host->known_hosts, home);
	else
		known_hosts = xasprintf("%s/known_hosts", ssh_dir);
	if (ssh_options_set(session, SSH_OPTIONS_KNOWNHOSTS, known_hosts) != SSH_OK)
		goto libssh_error;
	timeout = host->connect_timeout ? host->connect_timeout : DEFAULT_CONNECT_TIMEOUT;
	if (ssh_options_set(session, SSH_OPTIONS_TIMEOUT, &timeout) != SSH_OK)
		goto libssh_error;
	*out = session;
	*known_hosts_out = known_hosts;
	session = NULL;
	known_hosts = NULL;
	r = 0;
	goto out;
libssh_error:
	log_error("%s: SSH options: %s", host->name, ssh_get_error(session));
out:
	if (session != NULL)
		ssh_free(session);
	free(home);
	free(ssh_dir);
	free(user_config);
	free(path);
	free(known_hosts);
	return r;
}

/* Turns ssh_connect's failure into one clear message and an error code. */
static int
connect_error(const struct config_host *host, ssh_session session)
{
	const char *msg = ssh_get_error(session);
	char *address = session_address(session);
	int r = DS_ERR_CONNECT;

	if (strstr(msg, "resolve") != NULL || strstr(msg, "Name or service not known") != NULL ||
	    strstr(msg, "not known") != NULL || strstr(msg, "Temporary failure in name") != NULL)
		log_error("%s: cannot resolve the host name of %s (DNS): %s", host->name,
		    address, msg);
	else if (strstr(msg, "refused") != NULL)
		log_error("%s: connection to %s refused: no SSH server listens there", host->name,
		    address);
	else if (strstr(msg, "imeout") != NULL || strstr(msg, "timed out") != NULL) {
		log_error("%s: connecting to %s timed out after %u s", host->name, address,
		    host->connect_timeout ? host->connect_timeout : DEFAULT_CONNECT_TIMEOUT);
		r = DS_ERR_TIMEOUT;
	} else if (strstr(msg, "unreachable") != NULL || strstr(msg, "No route") != NULL)
		log_error("%s: %s is unreachable: %s", host->name, address, msg);
	else
		log_error("%s: cannot connect to %s: %s", host->name, address, msg);
	free(address);
	return r;
}

/*
 * Returns the 1-based line of FILE that records a key for NAME ("host" or
 * "[host]:port", hashed entries included), or 0 when there is none.
 */
static unsigned
known_hosts_line(const char *file, const char *name)
{
	struct ssh_knownhosts_entry *entry;
	FILE *fp;
	char *line = NULL, *p;
	size_t alloc = 0, len;
	unsigned n = 0, found = 0;

	if ((fp = fopen(file, "r")) == NULL)
		return 0;
	while (found == 0 && getline(&line, &alloc, fp) != -1) {
		n++;
		len = strlen(line);
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		for (p = line; *p == ' ' || *p == '\t'; p++)
			;
		if (*p == '\0' || *p == '#' || *p == '@')
			continue;
		entry = NULL;
		if (ssh_known_hosts_parse_line(name, p, &entry) == SSH_OK)
			found = n;
		if (entry != NULL)
			ssh_knownhosts_entry_free(entry);
	}
	free(line);
	fclose(fp);
	return found;
}

/*
 * Checks the server's host key against known_hosts in the given mode. For
 * HOSTKEY_TRUST prints the key and asks confirm. Logs and returns
 * DS_ERR_HOSTKEY when the key is not (or no longer) trusted.
 */
static int
check_host_key(const struct config_host *host, ssh_session session, const char *known_hosts,
    enum hostkey_mode mode, xport_ssh_confirm_fn confirm, void *arg)
{
	ssh_key key = NULL;
	unsigned char *hash = NULL;
	size_t hash_len = 0;
	char *fingerprint = NULL, *address = session_address(session), *where, *key_name;
	const char *type = "?";
	enum ssh_known_hosts_e state;
	unsigned line;
	int r = DS_ERR_HOSTKEY;

	if (ssh_get_server_publickey(session, &key) != SSH_OK ||
	    ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hash_len) != 0 ||
	    (fingerprint = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash,
	    hash_len)) == NULL) {
		log_error("%s: cannot read the host key of %s: %s", host->name, address,
		    ssh_get_error(session));
		goto out;
	}
	type = ssh_key_type_to_char(ssh_key_type(key));
	if (type == NULL)
		type = "unknown";
	if (mode == HOSTKEY_TRUST)
		printf("%s (%s): %s key %s\n", host->name, address, type, fingerprint);
	state = ssh_session_is_known_server(session);
	switch (state) {
	case SSH_KNOWN_HOSTS_OK:
		if (mode == HOSTKEY_TRUST)
			printf("%s: already trusted in %s\n", host->name, known_hosts);
		r = 0;
		break;
	case SSH_KNOWN_HOSTS_CHANGED:
	case SSH_KNOWN_HOSTS_OTHER:
		key_name = known_hosts_name(session);
		line = known_hosts_line(known_hosts, key_name);
		where = line ? xasprintf("%s:%u", known_hosts, line) : xstrdup(known_hosts);
		log_error("%s: HOST KEY CHANGED for %s: it now offers %s key %s, which does not "
		    "match the key recorded in %s. Someone may be intercepting the connection, "
		    "or the server was reinstalled. Nothing was sent, and no option overrides "
		    "this. Only if you know the change is legitimate: remove that entry "
		    "(ssh-keygen -R '%s' -f %s) and run 'distsync trust %s'", host->name,
		    address, type, fingerprint, where, key_name, known_hosts, host->name);
		free(where);
		free(key_name);
		break;
	case SSH_KNOWN_HOSTS_UNKNOWN:
	case SSH_KNOWN_HOSTS_NOT_FOUND:
		if (mode == HOSTKEY_STRICT) {
			log_error("%s: unknown host key for %s: %s key %s is not in %s. Nothing "
			    "was sent. Check the fingerprint with the server's administrator, "
			    "then run 'distsync trust %s' (or use --accept-new)", host->name,
			    address, type, fingerprint, known_hosts, host->name);
			break;
		}
		if (mode == HOSTKEY_TRUST && confirm != NULL &&
		    !confirm(host->name, type, fingerprint, arg)) {
			log_error("%s: host key not trusted; nothing recorded", host->name);
			break;
		}
		if (ssh_session_update_known_hosts(session) != SSH_OK) {
			log_error("%s: cannot record the host key in %s: %s", host->name,
			    known_hosts, ssh_get_error(session));
			break;
		}
		if (mode == HOSTKEY_TRUST)
			printf("%s: recorded in %s\n", host->name, known_hosts);
		else
			log_warn("%s: recorded new host key for %s (%s %s) in %s", host->name,
			    address, type, fingerprint, known_hosts);
		r = 0;
		break;
	case SSH_KNOWN_HOSTS_ERROR:
	default:
		log_error("%s: cannot check the host key of %s against %s: %s", host->name,
		    address, known_hosts, ssh_get_error(session));
		break;
	}
out:
	ssh_string_free_char(fingerprint);
	ssh_clean_pubkey_hash(&hash);
	ssh_key_free(key);
	free(address);
	return r;
}

/* Public-key authentication: agent and identities, then host->identity alone. */
static int
authenticate(const struct config_host *host, ssh_session session)
{
	char *user = NULL, *address = session_address(session), *home = NULL, *path = NULL;
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
		if ((home = util_home_dir()) == NULL)
			home = xstrdup("/");
		path = expand_home(host->identity, home);
		if (ssh_pki_import_privkey_file(path, NULL, NULL, NULL, &key) != SSH_OK) {
			log_error("%s: cannot load identity %s (%s; a key with a passphrase "
			    "must be loaded into ssh-agent)", host->name, path,
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
	    "tried (ssh-agent, %s%s~/.ssh/config IdentityFile and default keys)", host->name,
	    user ? user : "?", address, path ? path : "", path ? ", " : "");
	goto out;
lost:
	log_error("%s: connection to %s lost during authentication: %s", host->name, address,
	    ssh_get_error(session));
	r = DS_ERR_CONNECT;
out:
	ssh_key_free(key);
	ssh_string_free_char(user);
	free(address);
	free(home);
	free(path);
	return r;
}

/* Connects and verifies the host key; *out is a connected session. */
static int
session_connect(const struct config_host *host, enum hostkey_mode mode,
    xport_ssh_confirm_fn confirm, void *arg, ssh_session *out)
{
	ssh_session session = NULL;
	char *known_hosts = NULL;
	int r;

	*out = NULL;
	if ((r = session_new(host, &session, &known_hosts)) != 0)
		return r;
	if (ssh_connect(session) != SSH_OK) {
		r = connect_error(host, session);
		goto out;
	}
	if ((r = check_host_key(host, session, known_hosts, mode, confirm, arg)) != 0)
		goto out;
	*out = session;
	session = NULL;
out:
	if (session != NULL) {
		ssh_disconnect(session);
		ssh_free(session);
	}
	free(known_hosts);
	return r;
}

/* Logs one line of the remote's stderr, naming the host. */
static void
remote_line(struct ssh_priv *p, char *line, size_t len)
{
	const char *text = line;

	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
		len--;
	line[len] = '\0';
	if (len == 0)
		return;
	/* A remote distsync already says "distsync: "; ours says it once. */
	if (strncmp(text, "distsync: ", 10) == 0)
		text += 10;
	if (strncmp(text, "warning: ", 9) == 0)
		log_warn("%s: %s", p->name, text + 9);
	else
		log_error("%s: %s", p->name, text);
}

/* Reads what the remote wrote to stderr so far and logs complete lines. */
static void
drain_stderr(struct ssh_priv *p, int flush)
{
	char buf[4096];
	int n;

	while ((n = ssh_channel_read_nonblocking(p->channel, buf, sizeof(buf), 1)) > 0) {
		p->last_progress = now_seconds();
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
	time_t now = now_seconds(), quiet;

	if (ssh_get_status(p->session) & (SSH_CLOSED | SSH_CLOSED_ERROR))
		return lost(p, doing);
	if (x->idle_timeout != 0 && now - p->last_progress >= (time_t)x->idle_timeout) {
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
	if (quiet >= (time_t)p->keepalive) {
		log_debug("%s: sending a keepalive", p->name);
		ssh_send_keepalive(p->session);
		p->last_keepalive = now_seconds();
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
			p->last_progress = now_seconds();
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
			p->last_progress = now_seconds();
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
		if (ssh_is_connected(p->session))
			ssh_disconnect(p->session);
		ssh_free(p->session);
	}
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
	char *command = NULL;
	const char *remote_command;
	long slice = SLICE_MS / 1000;
	int r;

	*out = NULL;
	p = xcalloc(1, sizeof(*p));
	p->name = xstrdup(host->name ? host->name : host->address ? host->address : "?");
	r = session_connect(host, opts && opts->accept_new ? HOSTKEY_ACCEPT_NEW : HOSTKEY_STRICT,
	    NULL, NULL, &p->session);
	if (r != 0)
		goto out;
	p->address = session_address(p->session);
	if ((r = authenticate(host, p->session)) != 0)
		goto out;
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
	p->last_progress = p->last_keepalive = now_seconds();
	p = NULL;
	*out = x;
	r = 0;
out:
	if (p != NULL) {
		struct xport tmp = { .priv = p };

		ssh_xport_free_priv(&tmp);
	}
	free(command);
	return r;
}

int
xport_ssh_trust(const struct config_host *host, xport_ssh_confirm_fn confirm, void *arg)
{
	ssh_session session = NULL;
	int r;

	r = session_connect(host, HOSTKEY_TRUST, confirm, arg, &session);
	if (session != NULL) {
		ssh_disconnect(session);
		ssh_free(session);
	}
	return r;
}
