/*
 * A reader of ssh_config(5) for the few keywords xport-ssh decides itself
 * (see sshconf.h). Everything else in the files is libssh's business and is
 * skipped here without a word; only a value of ours that distsync cannot
 * use is an error.
 */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "wire/sshconf.h"

#define MAX_ARGS	256	/* words on one line */
#define MAX_DEPTH	16	/* nested Include, as ssh(1) */

struct reader {
	const struct sshconf_query *q;
	struct sshconf	*conf;
	const char	*include_dir;
	int		 depth;
};

/* One line split into words: keyword then arguments. */
struct words {
	char		*v[MAX_ARGS];
	size_t		 n;
};

static int read_file(struct reader *rd, const char *path);

const char *
sshconf_strict_name(enum sshconf_strict strict)
{
	switch (strict) {
	case SSHCONF_STRICT_YES:
		return "yes";
	case SSHCONF_STRICT_ASK:
		return "ask";
	case SSHCONF_STRICT_ACCEPT_NEW:
		return "accept-new";
	case SSHCONF_STRICT_NO:
		return "no";
	case SSHCONF_STRICT_UNSET:
	default:
		return "unset";
	}
}

/* '*' and '?' wildcards, ASCII case folded, as ssh's match_pattern. */
static int
pattern_match(const char *s, const char *p)
{
	for (; *p != '\0'; p++, s++) {
		if (*p == '*') {
			while (p[1] == '*')
				p++;
			if (p[1] == '\0')
				return 1;
			for (; *s != '\0'; s++)
				if (pattern_match(s, p + 1))
					return 1;
			return 0;
		}
		if (*s == '\0')
			return 0;
		if (*p != '?' && tolower((unsigned char)*p) != tolower((unsigned char)*s))
			return 0;
	}
	return *s == '\0';
}

/*
 * A comma-separated pattern list ("a*,!ab"): 1 when S matches a pattern and
 * no negated one, else 0.
 */
static int
pattern_list_match(const char *s, const char *list)
{
	char *copy = xstrdup(list), *pat, *save = NULL;
	int matched = 0;

	for (pat = strtok_r(copy, ",", &save); pat != NULL; pat = strtok_r(NULL, ",", &save)) {
		if (pat[0] == '!') {
			if (pattern_match(s, pat + 1)) {
				matched = 0;
				break;
			}
		} else if (pattern_match(s, pat))
			matched = 1;
	}
	free(copy);
	return matched;
}

/*
 * Splits LINE in place into words: whitespace separates, the keyword may be
 * followed by one '=', double or single quotes group (a backslash escapes
 * the next character), a word starting with '#' ends the line. Returns 0 or
 * DS_ERR_CONFIG (unterminated quote, too many words).
 */
static int
split_words(char *line, struct words *w)
{
	char *r = line, *o, quote, sep;
	int eq = 0;

	w->n = 0;
	for (;;) {
		while (*r == ' ' || *r == '\t')
			r++;
		if (w->n == 1 && !eq && *r == '=') {
			eq = 1;
			for (r++; *r == ' ' || *r == '\t'; r++)
				;
		}
		if (*r == '\0' || *r == '#')
			return 0;
		if (w->n == MAX_ARGS)
			return DS_ERR_CONFIG;
		o = r;
		w->v[w->n++] = o;
		quote = 0;
		while (*r != '\0') {
			if (quote == 0 && (*r == ' ' || *r == '\t' || (w->n == 1 && *r == '=')))
				break;
			if (*r == '\\' && r[1] != '\0') {
				*o++ = r[1];
				r += 2;
			} else if (quote == 0 && (*r == '"' || *r == '\'')) {
				quote = *r++;
			} else if (quote != 0 && *r == quote) {
				quote = 0;
				r++;
			} else
				*o++ = *r++;
		}
		if (quote != 0)
			return DS_ERR_CONFIG;
		sep = *r;
		*o = '\0';
		if (sep != '\0')
			r++;
		if (w->n == 1 && sep == '=')
			eq = 1;
	}
}

/* The local host name, whole (%l) or up to the first dot (%L). */
static char *
local_host_name(int short_name)
{
	char name[256];
	char *dot;

	if (gethostname(name, sizeof(name)) != 0)
		return xstrdup("localhost");
	name[sizeof(name) - 1] = '\0';
	if (short_name && (dot = strchr(name, '.')) != NULL)
		*dot = '\0';
	return xstrdup(name);
}

/*
 * Expands a leading "~/" (or a lone "~"), ${VARIABLE}s and the %-tokens ssh
 * accepts in known-hosts file names. Returns a new string, or NULL for an
 * unknown token (*bad is its letter) or an unset or malformed variable
 * (*bad is '$').
 */
static char *
expand_path(const struct sshconf_query *q, const char *in, char *bad)
{
	size_t len = 0, cap = strlen(in) + 64;
	char *out = xmalloc(cap), *add, num[32];
	const char *s = in;

	if (s[0] == '~' && (s[1] == '/' || s[1] == '\0')) {
		add = xstrdup(q->home);
		s++;
		goto append;
	}
	while (*s != '\0') {
		if (s[0] == '$' && s[1] == '{') {
			const char *end = strchr(s + 2, '}'), *value;
			char *var;

			if (end == NULL || end == s + 2) {
				*bad = '$';
				free(out);
				return NULL;
			}
			var = xstrndup(s + 2, (size_t)(end - s - 2));
			value = getenv(var);
			free(var);
			if (value == NULL) {
				*bad = '$';
				free(out);
				return NULL;
			}
			add = xstrdup(value);
			s = end + 1;
			goto append;
		}
		if (*s != '%') {
			add = xstrndup(s, 1);
			s++;
			goto append;
		}
		switch (s[1]) {
		case '%':
			add = xstrdup("%");
			break;
		case 'd':
			add = xstrdup(q->home);
			break;
		case 'h':
			add = xstrdup(q->hostname ? q->hostname : q->host);
			break;
		case 'k':
		case 'n':
			add = xstrdup(q->host);
			break;
		case 'p':
			snprintf(num, sizeof(num), "%u", q->port ? q->port : 22);
			add = xstrdup(num);
			break;
		case 'r':
			add = xstrdup(q->user ? q->user : q->local_user);
			break;
		case 'u':
			add = xstrdup(q->local_user);
			break;
		case 'i':
			snprintf(num, sizeof(num), "%lu", (unsigned long)getuid());
			add = xstrdup(num);
			break;
		case 'l':
			add = local_host_name(0);
			break;
		case 'L':
			add = local_host_name(1);
			break;
		default:
			*bad = s[1] ? s[1] : '%';
			free(out);
			return NULL;
		}
		s += 2;
append:
		out = xgrow(out, &cap, len + strlen(add) + 1, 1);
		memcpy(out + len, add, strlen(add));
		len += strlen(add);
		free(add);
	}
	out[len] = '\0';
	return out;
}

static int fail(const char *name, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Logs "NAME:LINE: message" and returns DS_ERR_CONFIG. */
static int
fail(const char *name, unsigned line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("%s:%u: %s", name, line, msg);
	return DS_ERR_CONFIG;
}

/* A file list (UserKnownHostsFile, GlobalKnownHostsFile), expanded. */
static int
set_files(struct reader *rd, const char *name, unsigned line, const struct words *w,
    char ***dst, char **origin)
{
	char **files, bad = 0;
	size_t i;

	if (*dst != NULL || w->n < 2)
		return 0;
	/* "none": ssh keeps no such file; distsync then uses its default. */
	if (w->n == 2 && strcasecmp(w->v[1], "none") == 0)
		return 0;
	files = xcalloc(w->n, sizeof(*files));
	for (i = 1; i < w->n; i++) {
		if ((files[i - 1] = expand_path(rd->q, w->v[i], &bad)) == NULL) {
			xfree_strv(files);
			if (bad == '$')
				return fail(name, line, "%s: an unset or malformed ${VARIABLE}",
				    w->v[i]);
			return fail(name, line, "%%%c: a token distsync does not expand in a "
			    "known_hosts file name", bad);
		}
	}
	*dst = files;
	if (origin != NULL)
		*origin = xasprintf("%s:%u", name, line);
	return 0;
}

/* "Match CRITERIA...": 1 when every criterion holds, 0 when one does not. */
static int
match_line(struct reader *rd, const char *name, unsigned line, const struct words *w,
    int *active)
{
	const struct sshconf_query *q = rd->q;
	const char *hostname = q->hostname ? q->hostname : q->host;
	const char *user = q->user ? q->user : q->local_user;
	int result = 1, negate, m;
	size_t i = 1;

	if (w->n < 2)
		return fail(name, line, "Match needs a criterion");
	while (i < w->n) {
		const char *c = w->v[i++];

		negate = c[0] == '!';
		if (negate)
			c++;
		if (strcasecmp(c, "all") == 0)
			m = 1;
		else if (strcasecmp(c, "final") == 0)
			m = 1;		/* one pass here: the final one */
		else if (strcasecmp(c, "canonical") == 0)
			m = 0;		/* distsync does not canonicalize names */
		else if (strcasecmp(c, "host") == 0 || strcasecmp(c, "originalhost") == 0 ||
		    strcasecmp(c, "user") == 0 || strcasecmp(c, "localuser") == 0) {
			if (i == w->n)
				return fail(name, line, "Match %s needs an argument", c);
			if (strcasecmp(c, "host") == 0)
				m = pattern_list_match(hostname, w->v[i]);
			else if (strcasecmp(c, "originalhost") == 0)
				m = pattern_list_match(q->host, w->v[i]);
			else if (strcasecmp(c, "user") == 0)
				m = pattern_list_match(user, w->v[i]);
			else
				m = pattern_list_match(q->local_user, w->v[i]);
			i++;
		} else if (strcasecmp(c, "exec") == 0 || strcasecmp(c, "localnetwork") == 0 ||
		    strcasecmp(c, "tagged") == 0) {
			/* Not evaluated (a shell, the network): the block is skipped. */
			log_debug("%s:%u: Match %s is not evaluated by distsync; its block is "
			    "ignored for host keys and ProxyJump", name, line, c);
			i++;
			result = 0;
			continue;
		} else
			return fail(name, line, "Match: unknown criterion '%s'", c);
		if (negate)
			m = !m;
		if (!m)
			result = 0;
	}
	*active = result;
	return 0;
}

/* "Host PATTERN...": active when a pattern matches and no negated one does. */
static void
host_line(struct reader *rd, const struct words *w, int *active)
{
	int matched = 0;

	for (size_t i = 1; i < w->n; i++) {
		if (w->v[i][0] == '!') {
			if (pattern_match(rd->q->host, w->v[i] + 1)) {
				*active = 0;
				return;
			}
		} else if (pattern_match(rd->q->host, w->v[i]))
			matched = 1;
	}
	*active = matched;
}

static int
include_line(struct reader *rd, const char *name, unsigned line, const struct words *w)
{
	glob_t g;
	char *pattern, bad = 0;
	int r = 0, gr;

	if (rd->depth >= MAX_DEPTH)
		return fail(name, line, "Include nested too deep (%d levels)", MAX_DEPTH);
	for (size_t i = 1; i < w->n && r == 0; i++) {
		if (w->v[i][0] == '~')
			pattern = expand_path(rd->q, w->v[i], &bad);
		else if (w->v[i][0] == '/')
			pattern = xstrdup(w->v[i]);
		else
			pattern = xasprintf("%s/%s", rd->include_dir, w->v[i]);
		if (pattern == NULL)
			return fail(name, line, "Include: cannot expand '%s'", w->v[i]);
		memset(&g, 0, sizeof(g));
		gr = glob(pattern, 0, NULL, &g);
		if (gr == 0) {
			rd->depth++;
			for (size_t k = 0; k < g.gl_pathc && r == 0; k++)
				r = read_file(rd, g.gl_pathv[k]);
			rd->depth--;
		} else if (gr != GLOB_NOMATCH)
			log_debug("%s:%u: Include %s: cannot list it", name, line, pattern);
		globfree(&g);
		free(pattern);
	}
	return r;
}

static int
strict_value(const char *name, unsigned line, const char *v, enum sshconf_strict *out)
{
	if (strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0)
		*out = SSHCONF_STRICT_YES;
	else if (strcasecmp(v, "no") == 0 || strcasecmp(v, "false") == 0 ||
	    strcasecmp(v, "off") == 0)
		*out = SSHCONF_STRICT_NO;
	else if (strcasecmp(v, "ask") == 0)
		*out = SSHCONF_STRICT_ASK;
	else if (strcasecmp(v, "accept-new") == 0)
		*out = SSHCONF_STRICT_ACCEPT_NEW;
	else
		return fail(name, line, "StrictHostKeyChecking: '%s' is not yes, no, ask or "
		    "accept-new", v);
	return 0;
}

/* One line. *active says whether the current Host/Match block applies. */
static int
process_line(struct reader *rd, const char *name, unsigned line, char *text, int *active)
{
	struct sshconf *conf = rd->conf;
	struct sshconf_hop *hops = NULL;
	struct words w;
	const char *kw;
	size_t nhops = 0;

	if (split_words(text, &w) != 0)
		return fail(name, line, "cannot split the line into words (a quote is not "
		    "closed?)");
	if (w.n == 0)
		return 0;
	kw = w.v[0];
	if (strcasecmp(kw, "Host") == 0) {
		host_line(rd, &w, active);
		return 0;
	}
	if (strcasecmp(kw, "Match") == 0)
		return match_line(rd, name, line, &w, active);
	if (!*active)
		return 0;
	if (strcasecmp(kw, "Include") == 0)
		return include_line(rd, name, line, &w);
	if (strcasecmp(kw, "UserKnownHostsFile") == 0)
		return set_files(rd, name, line, &w, &conf->user_known_hosts,
		    &conf->user_known_hosts_origin);
	if (strcasecmp(kw, "GlobalKnownHostsFile") == 0)
		return set_files(rd, name, line, &w, &conf->global_known_hosts, NULL);
	if (strcasecmp(kw, "StrictHostKeyChecking") == 0) {
		if (conf->strict != SSHCONF_STRICT_UNSET || w.n < 2)
			return 0;
		if (strict_value(name, line, w.v[1], &conf->strict) != 0)
			return DS_ERR_CONFIG;
		conf->strict_origin = xasprintf("%s:%u", name, line);
		return 0;
	}
	if (strcasecmp(kw, "ProxyJump") == 0) {
		if (conf->proxy_set || w.n < 2)
			return 0;
		if (sshconf_parse_jump(w.v[1], &hops, &nhops) != 0)
			return fail(name, line, "ProxyJump: '%s' is not a list of "
			    "[user@]host[:port]", w.v[1]);
		sshconf_hops_free(hops, nhops);
		conf->proxy_set = 1;
		if (nhops > 0) {
			conf->proxy_jump = xstrdup(w.v[1]);
			conf->proxy_jump_origin = xasprintf("%s:%u", name, line);
		}
		return 0;
	}
	if (strcasecmp(kw, "ProxyCommand") == 0) {
		conf->proxy_set = 1;
		return 0;
	}
	return 0;
}

static int
read_text(struct reader *rd, const char *name, char *data, size_t len)
{
	char *line = data, *end, *stop = data + len;
	unsigned n = 0;
	int active = 1, r;

	while (line < stop) {
		n++;
		end = memchr(line, '\n', (size_t)(stop - line));
		if (end == NULL)
			end = stop;
		if (memchr(line, '\0', (size_t)(end - line)) != NULL) {
			log_error("%s:%u: a NUL byte in the line", name, n);
			return DS_ERR_CONFIG;
		}
		*end = '\0';
		if (end > line && end[-1] == '\r')
			end[-1] = '\0';
		if ((r = process_line(rd, name, n, line, &active)) != 0)
			return r;
		line = end + 1;
	}
	return 0;
}

static int
read_file(struct reader *rd, const char *path)
{
	char *data = NULL;
	size_t len = 0;
	int fd, r;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		log_errno("%s: cannot read the SSH configuration", path);
		return DS_ERR_SYSTEM;
	}
	if (fileio_read_fd(fd, SSHCONF_MAX_SIZE, &data, &len) != 0) {
		if (errno == EFBIG)
			log_error("%s: larger than %d bytes: not an SSH configuration", path,
			    SSHCONF_MAX_SIZE);
		else
			log_errno("%s: cannot read the SSH configuration", path);
		close(fd);
		return errno == EFBIG ? DS_ERR_CONFIG : DS_ERR_SYSTEM;
	}
	close(fd);
	r = read_text(rd, path, data, len);
	free(data);
	return r;
}

int
sshconf_read_file(const char *path, const char *include_dir, const struct sshconf_query *q,
    struct sshconf *conf)
{
	struct reader rd = { q, conf, include_dir, 0 };

	return read_file(&rd, path);
}

int
sshconf_read_mem(const char *name, const char *data, size_t len, const char *include_dir,
    const struct sshconf_query *q, struct sshconf *conf)
{
	struct reader rd = { q, conf, include_dir, 0 };
	char *copy;
	int r;

	if (len > SSHCONF_MAX_SIZE) {
		log_error("%s: larger than %d bytes: not an SSH configuration", name,
		    SSHCONF_MAX_SIZE);
		return DS_ERR_CONFIG;
	}
	copy = xmalloc(len + 1);
	memcpy(copy, data, len);
	copy[len] = '\0';
	r = read_text(&rd, name, copy, len);
	free(copy);
	return r;
}

void
sshconf_release(struct sshconf *conf)
{
	xfree_strv(conf->user_known_hosts);
	xfree_strv(conf->global_known_hosts);
	free(conf->user_known_hosts_origin);
	free(conf->strict_origin);
	free(conf->proxy_jump);
	free(conf->proxy_jump_origin);
	memset(conf, 0, sizeof(*conf));
}

void
sshconf_hops_free(struct sshconf_hop *hops, size_t nhops)
{
	for (size_t i = 0; i < nhops; i++) {
		free(hops[i].user);
		free(hops[i].host);
	}
	free(hops);
}

/* "[user@]host[:port]", host maybe "[v6]". */
static int
parse_hop(const char *s, struct sshconf_hop *hop)
{
	const char *at, *host, *colon = NULL, *end;
	unsigned long port = 0;
	char *stop;

	memset(hop, 0, sizeof(*hop));
	if (strncmp(s, "ssh://", 6) == 0)
		s += 6;
	if ((at = strrchr(s, '@')) != NULL) {
		if (at == s)
			return DS_ERR_INVALID;
		hop->user = xstrndup(s, (size_t)(at - s));
		host = at + 1;
	} else
		host = s;
	if (host[0] == '[') {
		if ((end = strchr(host, ']')) == NULL || end == host + 1)
			goto bad;
		hop->host = xstrndup(host + 1, (size_t)(end - host - 1));
		if (end[1] == ':')
			colon = end + 1;
		else if (end[1] != '\0')
			goto bad;
	} else {
		colon = strchr(host, ':');
		end = colon ? colon : host + strlen(host);
		if (end == host)
			goto bad;
		hop->host = xstrndup(host, (size_t)(end - host));
	}
	if (colon != NULL) {
		if (colon[1] < '0' || colon[1] > '9')
			goto bad;
		errno = 0;
		port = strtoul(colon + 1, &stop, 10);
		if (errno != 0 || *stop != '\0' || port == 0 || port > 65535)
			goto bad;
		hop->port = (unsigned)port;
	}
	for (const char *c = hop->host; *c != '\0'; c++)
		if (*c == ' ' || *c == '\t' || *c == '/' || *c == '@' || *c == ',')
			goto bad;
	return 0;
bad:
	free(hop->user);
	free(hop->host);
	memset(hop, 0, sizeof(*hop));
	return DS_ERR_INVALID;
}

int
sshconf_parse_jump(const char *spec, struct sshconf_hop **hops, size_t *nhops)
{
	struct sshconf_hop *v = NULL;
	char *copy, *item, *save = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	*hops = NULL;
	*nhops = 0;
	if (strcasecmp(spec, "none") == 0)
		return 0;
	if (*spec == '\0' || spec[strlen(spec) - 1] == ',' || spec[0] == ',' ||
	    strstr(spec, ",,") != NULL)
		return DS_ERR_INVALID;
	copy = xstrdup(spec);
	for (item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
		v = xgrow(v, &cap, n + 1, sizeof(*v));
		if ((r = parse_hop(item, &v[n])) != 0)
			break;
		n++;
	}
	free(copy);
	if (r != 0) {
		sshconf_hops_free(v, n);
		return r;
	}
	*hops = v;
	*nhops = n;
	return 0;
}
