/*
 * Many hosts in parallel: one forked child per host session, a pipe back to
 * the parent carrying the child's stderr and its records (fleet.h), canary
 * hosts first, a failure budget, and the summary as a table or JSON.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "config/config.h"
#include "session/fleet.h"
#include "session/progress.h"

#define LINE_BUF_MAX	(64u * 1024)	/* a longer line from a child is cut */
#define BYTES_INTERVAL	0.1		/* seconds between bytes records */
#define REASON_MAX	1024

struct fleet_chan {
	int		 fd;
	double		 last_bytes;
	char		*first_error;	/* the first error the child logged */
};

struct child {
	pid_t		 pid;
	int		 fd;
	size_t		 index;		/* into hosts and results */
	int		 slot;		/* progress slot */
	double		 start;
	char		*buf;
	size_t		 len;
	int		 has_result;
};

int
fleet_worse(int a, int b)
{
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	return ds_exit_code(a) == DS_EXIT_FAILED ? a : b;
}

void
fleet_result_release(struct fleet_result *res)
{
	if (res == NULL)
		return;
	free(res->from);
	free(res->to);
	free(res->services);
	free(res->health);
	free(res->reason);
	free(res->last);
	memset(res, 0, sizeof(*res));
}

/* Appends VALUE percent-encoded to the memstream. */
static void
put_value(FILE *fp, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++) {
		if (*p <= 0x20 || *p == '%' || *p == '=' || *p == 0x7f)
			fprintf(fp, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
		else
			fputc(*p, fp);
	}
}

/* Decodes a percent-encoded value of len bytes into a new string; NUL bytes become '?'. */
static char *
get_value(const char *s, size_t len)
{
	char *out = xmalloc(len + 1);
	size_t j = 0;

	for (size_t i = 0; i < len; i++) {
		int hi, lo;

		if (s[i] == '%' && i + 2 < len && (hi = util_hexval(s[i + 1])) >= 0 &&
		    (lo = util_hexval(s[i + 2])) >= 0) {
			out[j++] = hi == 0 && lo == 0 ? '?' : (char)(hi * 16 + lo);
			i += 2;
		} else
			out[j++] = s[i];
	}
	out[j] = '\0';
	return out;
}

/* Writes one whole record line to the parent (a short line is one atomic write). */
static void
chan_write(struct fleet_chan *chan, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(chan->fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		data += n;
		len -= (size_t)n;
	}
}

void
fleet_send_phase(struct fleet_chan *chan, const char *phase)
{
	char *line = NULL;
	size_t size = 0;
	FILE *fp;

	if (chan == NULL || (fp = open_memstream(&line, &size)) == NULL)
		return;
	fprintf(fp, "\n%cphase ", FLEET_RECORD_MARK);
	put_value(fp, phase);
	fputc('\n', fp);
	if (fclose(fp) == 0)
		chan_write(chan, line, size);
	free(line);
}

void
fleet_send_bytes(struct fleet_chan *chan, uint64_t wire, uint64_t done, uint64_t total)
{
	char line[128];
	double t;
	int n;

	if (chan == NULL)
		return;
	t = util_now();
	if (t - chan->last_bytes < BYTES_INTERVAL && done < total)
		return;
	chan->last_bytes = t;
	n = snprintf(line, sizeof(line), "\n%cbytes %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
	    FLEET_RECORD_MARK, wire, done, total);
	if (n > 0 && (size_t)n < sizeof(line))
		chan_write(chan, line, (size_t)n);
}

static void
put_field(FILE *fp, const char *key, const char *value)
{
	if (value == NULL)
		return;
	fprintf(fp, " %s=", key);
	put_value(fp, value);
}

static void
put_number(FILE *fp, const char *key, uint64_t value)
{
	fprintf(fp, " %s=%" PRIu64, key, value);
}

static void
send_result(struct fleet_chan *chan, const struct fleet_result *res)
{
	char *line = NULL;
	size_t size = 0;
	FILE *fp;

	if ((fp = open_memstream(&line, &size)) == NULL)
		return;
	fprintf(fp, "\n%cresult status=%d", FLEET_RECORD_MARK, res->status);
	put_field(fp, "from", res->from);
	put_field(fp, "to", res->to);
	put_number(fp, "added", res->added);
	put_number(fp, "updated", res->updated);
	put_number(fp, "deleted", res->deleted);
	put_number(fp, "changed", res->changed);
	put_number(fp, "objects", res->objects);
	put_number(fp, "object_bytes", res->object_bytes);
	put_number(fp, "sent", res->bytes_sent);
	put_number(fp, "received", res->bytes_received);
	put_number(fp, "round_trips", res->round_trips);
	put_number(fp, "encoded", res->encoded);
	put_number(fp, "cache_hits", res->cache_hits);
	put_number(fp, "dry_run", (uint64_t)(res->dry_run != 0));
	put_field(fp, "services", res->services);
	put_field(fp, "health", res->health);
	put_field(fp, "reason", res->reason != NULL ? res->reason :
	    res->status != 0 ? chan->first_error : NULL);
	put_field(fp, "last", res->last);
	fputc('\n', fp);
	if (fclose(fp) == 0)
		chan_write(chan, line, size);
	free(line);
}

static uint64_t
number(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return 0;
	return (uint64_t)v;
}

/* Parses the KEY=VALUE fields of a result record into res. */
static void
parse_result(const char *fields, struct fleet_result *res)
{
	const char *p = fields;

	while (*p != '\0') {
		const char *end = strchr(p, ' '), *eq;
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		char *key, *value;

		eq = memchr(p, '=', len);
		if (eq != NULL) {
			key = xstrndup(p, (size_t)(eq - p));
			value = get_value(eq + 1, len - (size_t)(eq - p) - 1);
#define STR(k, f) else if (strcmp(key, k) == 0) { free(res->f); res->f = value; value = NULL; }
#define NUM(k, f) else if (strcmp(key, k) == 0) res->f = number(value);
			if (strcmp(key, "status") == 0) {
				char *rest;
				long v = strtol(value, &rest, 10);

				res->status = *rest != '\0' || rest == value || v > 0 || v < -1000 ?
				    DS_ERR_PROTO : (int)v;
			}
			STR("from", from) STR("to", to) STR("services", services)
			STR("health", health) STR("reason", reason) STR("last", last)
			NUM("added", added) NUM("updated", updated) NUM("deleted", deleted)
			NUM("changed", changed) NUM("objects", objects)
			NUM("object_bytes", object_bytes) NUM("sent", bytes_sent)
			NUM("received", bytes_received) NUM("encoded", encoded)
			NUM("cache_hits", cache_hits)
			else if (strcmp(key, "round_trips") == 0)
				res->round_trips = (unsigned)number(value);
			else if (strcmp(key, "dry_run") == 0)
				res->dry_run = number(value) != 0;
#undef STR
#undef NUM
			free(key);
			free(value);
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
}

static int
capture_first_error(const char *line, void *arg)
{
	struct fleet_chan *chan = arg;

	if (chan->first_error == NULL)
		chan->first_error = xstrdup(line);
	return 0;	/* still printed: the parent shows it */
}

/* The child: runs one host and reports. Never returns. */
static void
child_main(const struct fleet_options *opt, const struct config_host *host, int fd)
{
	struct fleet_chan chan;
	struct fleet_result res;
	int devnull;

	memset(&chan, 0, sizeof(chan));
	memset(&res, 0, sizeof(res));
	chan.fd = fd;
	/* Everything the session prints reaches the parent, as lines. */
	if (dup2(fd, STDERR_FILENO) < 0)
		_exit(127);
	if ((devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0) {
		dup2(devnull, STDIN_FILENO);
		dup2(STDERR_FILENO, STDOUT_FILENO);
		close(devnull);
	}
	signal(SIGPIPE, SIG_IGN);
	log_set_capture(capture_first_error, &chan);
	res.started = 1;
	res.status = opt->run(host, opt->arg, &chan, &res);
	log_set_capture(NULL, NULL);
	send_result(&chan, &res);
	fflush(stdout);
	fflush(stderr);
	fleet_result_release(&res);
	free(chan.first_error);
	_exit(0);
}

static int
start_child(const struct fleet_options *opt, const struct config_host *host, size_t index,
    struct child *c)
{
	int fds[2];
	pid_t pid;

	memset(c, 0, sizeof(*c));
	if (pipe2(fds, O_CLOEXEC) != 0) {
		log_errno("%s: pipe", host->name);
		return DS_ERR_SYSTEM;
	}
	fflush(NULL);	/* nothing buffered is written twice */
	if ((pid = fork()) < 0) {
		log_errno("%s: fork", host->name);
		close(fds[0]);
		close(fds[1]);
		return DS_ERR_SYSTEM;
	}
	if (pid == 0) {
		close(fds[0]);
		child_main(opt, host, fds[1]);
	}
	close(fds[1]);
	c->pid = pid;
	c->fd = fds[0];
	c->index = index;
	c->start = util_now();
	c->buf = xmalloc(LINE_BUF_MAX + 1);
	c->slot = opt->progress != NULL ? progress_host_begin(opt->progress, host->name) : -1;
	return 0;
}

/* Shows a log line of a child, naming its host when the line does not. */
static void
child_log(const struct fleet_options *opt, const struct config_host *host, const char *line)
{
	const char *rest = line;
	char *text;
	size_t hl = strlen(host->name);

	if (strncmp(rest, "distsync: ", 10) == 0)
		rest += 10;
	if (strncmp(rest, host->name, hl) == 0 && rest[hl] == ':')
		text = xasprintf("distsync: %s", rest);
	else
		text = xasprintf("distsync: %s: %s", host->name, rest);
	if (opt->progress != NULL)
		progress_log(opt->progress, text);
	else
		fprintf(stderr, "%s\n", text);
	free(text);
}

static void
child_line(const struct fleet_options *opt, const struct config_host *host, struct child *c,
    struct fleet_result *res, char *line)
{
	if (line[0] == '\0')
		return;		/* records start with a newline that ends any partial line */
	if (line[0] != FLEET_RECORD_MARK) {
		child_log(opt, host, line);
		return;
	}
	line++;
	if (strncmp(line, "phase ", 6) == 0) {
		char *phase = get_value(line + 6, strlen(line + 6));

		if (opt->progress != NULL)
			progress_host_phase(opt->progress, c->slot, phase);
		free(phase);
	} else if (strncmp(line, "bytes ", 6) == 0) {
		unsigned long long w, d, t;

		if (sscanf(line + 6, "%llu %llu %llu", &w, &d, &t) == 3 && opt->progress != NULL)
			progress_host_bytes(opt->progress, c->slot, w, d, t);
	} else if (strncmp(line, "result ", 7) == 0) {
		fleet_result_release(res);
		parse_result(line + 7, res);
		res->started = 1;
		c->has_result = 1;
	}
}

/* Reads what the child wrote; returns 1 at its end of stream. */
static int
child_read(const struct fleet_options *opt, const struct config_host *host, struct child *c,
    struct fleet_result *res)
{
	ssize_t n;
	char *nl;

	do
		n = read(c->fd, c->buf + c->len, LINE_BUF_MAX - c->len);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n > 0)
		c->len += (size_t)n;
	c->buf[c->len] = '\0';
	while ((nl = memchr(c->buf, '\n', c->len)) != NULL) {
		size_t used = (size_t)(nl - c->buf) + 1;

		*nl = '\0';
		child_line(opt, host, c, res, c->buf);
		memmove(c->buf, c->buf + used, c->len - used);
		c->len -= used;
		c->buf[c->len] = '\0';
	}
	if (n <= 0 || c->len == LINE_BUF_MAX) {
		/* The end, or a line too long: take what there is as a line. */
		if (c->len > 0)
			child_line(opt, host, c, res, c->buf);
		c->len = 0;
	}
	return n <= 0;
}

/* Reaps the child and completes its result. */
static void
child_finish(const struct fleet_options *opt, const struct config_host *host, struct child *c,
    struct fleet_result *res)
{
	char line[REASON_MAX];
	int status = 0;
	pid_t w;

	close(c->fd);
	do
		w = waitpid(c->pid, &status, 0);
	while (w < 0 && errno == EINTR);
	res->seconds = util_now() - c->start;
	res->started = 1;
	if (!c->has_result) {
		res->status = DS_ERR_CHILD;
		free(res->reason);
		if (w > 0 && WIFSIGNALED(status))
			res->reason = xasprintf("the session process died of signal %d",
			    WTERMSIG(status));
		else
			res->reason = xasprintf("the session process ended without a result "
			    "(exit %d)", w > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	if (res->status != 0 && res->reason == NULL)
		res->reason = xstrdup(ds_strerror(res->status));
	if (res->reason != NULL) {
		/* The table names the host already. */
		size_t hl = strlen(host->name);

		if (strncmp(res->reason, host->name, hl) == 0 && res->reason[hl] == ':' &&
		    res->reason[hl + 1] == ' ')
			memmove(res->reason, res->reason + hl + 2, strlen(res->reason + hl + 2) + 1);
	}
	if (opt->progress != NULL) {
		fleet_result_line(res, line, sizeof(line));
		progress_host_end(opt->progress, c->slot, res->status == 0, line);
	}
	free(c->buf);
	c->buf = NULL;
}

int
fleet_run(const struct fleet_options *opt, const struct config_host *const *hosts, size_t n,
    struct fleet_result *results)
{
	unsigned parallel = opt->parallel > 0 ? opt->parallel : 1;
	size_t canary = opt->canary < n ? opt->canary : n;
	size_t next = 0, limit = canary > 0 ? canary : n;
	size_t running = 0, failures = 0;
	struct child *children;
	struct pollfd *pfd;
	char *stop = NULL;
	int worst = 0;

	for (size_t i = 0; i < n; i++)
		memset(&results[i], 0, sizeof(results[i]));
	children = xcalloc(parallel, sizeof(*children));
	pfd = xcalloc(parallel, sizeof(*pfd));
	for (;;) {
		size_t k;

		while (stop == NULL && running < parallel && next < limit) {
			struct child *c = NULL;

			for (size_t j = 0; j < parallel; j++)
				if (children[j].buf == NULL) {
					c = &children[j];
					break;
				}
			if (start_child(opt, hosts[next], next, c) != 0) {
				results[next].status = DS_ERR_SYSTEM;
				results[next].reason = xstrdup("could not start its session process");
				worst = fleet_worse(worst, DS_ERR_SYSTEM);
				failures++;
				next++;
				continue;
			}
			next++;
			running++;
		}
		if (running == 0) {
			if (stop == NULL && next == limit && limit < n) {
				/* The canaries are done: go on only if every one applied. */
				for (size_t i = 0; i < limit && canary > 0; i++)
					if (results[i].status != 0) {
						stop = xasprintf("canary %s failed", hosts[i]->name);
						break;
					}
				if (stop == NULL) {
					limit = n;
					continue;
				}
			}
			break;
		}
		k = 0;
		for (size_t j = 0; j < parallel; j++)
			if (children[j].buf != NULL) {
				pfd[k].fd = children[j].fd;
				pfd[k].events = POLLIN;
				pfd[k].revents = 0;
				k++;
			}
		if (poll(pfd, (nfds_t)k, 1000 / PROGRESS_HZ) < 0 && errno != EINTR) {
			log_errno("poll");
			break;
		}
		k = 0;
		for (size_t j = 0; j < parallel; j++) {
			struct child *c = &children[j];
			struct fleet_result *res;

			if (c->buf == NULL)
				continue;
			if ((pfd[k++].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
				continue;
			res = &results[c->index];
			if (!child_read(opt, hosts[c->index], c, res))
				continue;
			child_finish(opt, hosts[c->index], c, res);
			running--;
			worst = fleet_worse(worst, res->status);
			if (res->status != 0 && ++failures >= opt->max_failures &&
			    opt->max_failures > 0 && stop == NULL)
				stop = xasprintf("%zu host%s failed (--max-failures %u)", failures,
				    failures == 1 ? "" : "s", opt->max_failures);
		}
		progress_tick(opt->progress);
	}
	for (size_t i = next; i < n; i++) {
		results[i].started = 0;
		results[i].status = DS_ERR_PRECONDITION;
		results[i].reason = xasprintf("not started: %s", stop != NULL ? stop : "stopped");
		worst = fleet_worse(worst, DS_ERR_PRECONDITION);
		if (opt->progress != NULL) {
			int slot = progress_host_begin(opt->progress, hosts[i]->name);

			progress_host_end(opt->progress, slot, 0, results[i].reason);
		}
	}
	free(stop);
	free(children);
	free(pfd);
	return worst;
}

void
fleet_result_line(const struct fleet_result *res, char *buf, size_t len)
{
	char sent[32];

	if (res->status != 0) {
		snprintf(buf, len, "%s", res->reason != NULL ? res->reason :
		    ds_strerror(res->status));
		for (char *p = buf; *p != '\0'; p++)
			if (*p == '\n')
				*p = ' ';
		return;
	}
	util_format_bytes(res->bytes_sent, sent, sizeof(sent));
	snprintf(buf, len, "%s%s -> %s, %" PRIu64 " file%s changed, %s sent, %.1f s",
	    res->dry_run ? "dry run, " : "",
	    res->from != NULL && res->from[0] != '\0' ? res->from : "(none)",
	    res->to != NULL ? res->to : "?", res->changed, res->changed == 1 ? "" : "s", sent,
	    res->seconds);
}

static const char *
result_word(const struct fleet_result *res)
{
	if (!res->started)
		return "not started";
	if (res->status != 0)
		return "FAILED";
	return res->dry_run ? "dry run" : "ok";
}

/* A cell's text with control characters and newlines made visible and safe. */
static char *
cell(const char *s)
{
	char *out = xstrdup(s != NULL ? s : "");

	for (char *p = out; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return out;
}

void
fleet_print_table(const struct config_host *const *hosts, const struct fleet_result *res,
    size_t n, FILE *fp)
{
	enum { C_HOST, C_RELEASE, C_FILES, C_SENT, C_TIME, C_SERVICES, C_RESULT, C_REASON, NCOL };
	static const char *head[NCOL] = { "HOST", "FROM -> TO", "FILES", "SENT", "TIME",
	    "RESTARTED", "RESULT", "REASON" };
	size_t width[NCOL], ok = 0, failed = 0, idle = 0;
	char ***cells = xcalloc(n, sizeof(char **));
	uint64_t total = 0;

	for (int c = 0; c < NCOL; c++)
		width[c] = strlen(head[c]);
	for (size_t i = 0; i < n; i++) {
		const struct fleet_result *r = &res[i];
		char sent[32];

		cells[i] = xcalloc(NCOL, sizeof(char *));
		cells[i][C_HOST] = cell(hosts[i]->name);
		if (r->to != NULL)
			cells[i][C_RELEASE] = xasprintf("%s -> %s",
			    r->from != NULL && r->from[0] != '\0' ? r->from : "(none)", r->to);
		else
			cells[i][C_RELEASE] = xstrdup("-");
		cells[i][C_FILES] = r->started && r->to != NULL ?
		    xasprintf("%" PRIu64, r->changed) : xstrdup("-");
		util_format_bytes(r->bytes_sent, sent, sizeof(sent));
		cells[i][C_SENT] = r->started ? xstrdup(sent) : xstrdup("-");
		cells[i][C_TIME] = r->started ? xasprintf("%.1f s", r->seconds) : xstrdup("-");
		cells[i][C_SERVICES] = cell(r->services != NULL && r->services[0] != '\0' ?
		    r->services : "-");
		cells[i][C_RESULT] = xstrdup(result_word(r));
		cells[i][C_REASON] = cell(r->status != 0 ? (r->reason != NULL ? r->reason :
		    ds_strerror(r->status)) : "");
		for (int c = 0; c < NCOL; c++)
			if (strlen(cells[i][c]) > width[c])
				width[c] = strlen(cells[i][c]);
		total += r->bytes_sent;
		if (!r->started)
			idle++;
		else if (r->status != 0)
			failed++;
		else
			ok++;
	}
	for (int c = 0; c < NCOL - 1; c++)
		fprintf(fp, "%-*s  ", (int)width[c], head[c]);
	fprintf(fp, "%s\n", head[NCOL - 1]);
	for (size_t i = 0; i < n; i++) {
		for (int c = 0; c < NCOL; c++) {
			if (c == NCOL - 1)
				fprintf(fp, "%s\n", cells[i][c]);
			else if (c == C_FILES || c == C_SENT || c == C_TIME)
				fprintf(fp, "%*s  ", (int)width[c], cells[i][c]);
			else
				fprintf(fp, "%-*s  ", (int)width[c], cells[i][c]);
			free(cells[i][c]);
		}
		free(cells[i]);
	}
	free(cells);
	{
		char sent[32];

		util_format_bytes(total, sent, sizeof(sent));
		fprintf(fp, "%zu host%s: %zu ok, %zu failed, %zu not started; %s sent\n", n,
		    n == 1 ? "" : "s", ok, failed, idle, sent);
	}
}

static void
json_string_or_null(FILE *fp, const char *s)
{
	if (s != NULL)
		util_json_string(fp, s);
	else
		fprintf(fp, "null");
}

void
fleet_result_json(const char *host, const struct fleet_result *r, FILE *fp)
{
	fprintf(fp, "{\"host\":");
	util_json_string(fp, host);
	fprintf(fp, ",\"operation\":\"push\",\"ok\":%s,\"result\":\"%s\",\"started\":%s,"
	    "\"error\":", r->status == 0 ? "true" : "false", result_word(r),
	    r->started ? "true" : "false");
	json_string_or_null(fp, r->status == 0 ? NULL : r->reason != NULL ? r->reason :
	    ds_strerror(r->status));
	fprintf(fp, ",\"dry_run\":%s,\"from\":", r->dry_run ? "true" : "false");
	json_string_or_null(fp, r->from != NULL && r->from[0] != '\0' ? r->from : NULL);
	fprintf(fp, ",\"to\":");
	json_string_or_null(fp, r->to);
	fprintf(fp, ",\"added\":%" PRIu64 ",\"updated\":%" PRIu64 ",\"deleted\":%" PRIu64
	    ",\"changed\":%" PRIu64 ",\"objects_sent\":%" PRIu64 ",\"object_bytes\":%" PRIu64
	    ",\"bytes_sent\":%" PRIu64 ",\"bytes_received\":%" PRIu64 ",\"round_trips\":%u"
	    ",\"encoded\":%" PRIu64 ",\"cache_hits\":%" PRIu64
	    ",\"seconds\":%.3f,\"services\":[", r->added, r->updated, r->deleted, r->changed,
	    r->objects, r->object_bytes, r->bytes_sent, r->bytes_received, r->round_trips,
	    r->encoded, r->cache_hits, r->seconds);
	if (r->services != NULL && r->services[0] != '\0') {
		char *copy = xstrdup(r->services), *p = copy, *comma;
		int first = 1;

		do {
			if ((comma = strchr(p, ',')) != NULL)
				*comma = '\0';
			fprintf(fp, "%s", first ? "" : ",");
			util_json_string(fp, p);
			first = 0;
			p = comma + 1;
		} while (comma != NULL);
		free(copy);
	}
	fprintf(fp, "],\"health\":");
	json_string_or_null(fp, r->health);
	fprintf(fp, "}");
}

void
fleet_print_json(const struct config_host *const *hosts, const struct fleet_result *res,
    size_t n, FILE *fp)
{
	fprintf(fp, "[\n");
	for (size_t i = 0; i < n; i++) {
		fleet_result_json(hosts[i]->name, &res[i], fp);
		fprintf(fp, "%s\n", i + 1 < n ? "," : "");
	}
	fprintf(fp, "]\n");
}

/* Reads a JSON string literal at s (after its opening quote) into a new string, or NULL. */
static char *
json_unquote(const char *s)
{
	size_t len = strlen(s), j = 0;
	char *out = xmalloc(len + 1);

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"') {
			out[j] = '\0';
			return out;
		}
		if (s[i] == '\\') {
			if (i + 1 >= len || (s[i + 1] != '"' && s[i + 1] != '\\' && s[i + 1] != '/'))
				break;	/* host names need no other escape */
			i++;
		}
		out[j++] = s[i];
	}
	free(out);
	return NULL;
}

int
fleet_report_failed(const char *path, char ***names)
{
	char *line = NULL, **v = NULL;
	size_t cap = 0, count = 0, alloc = 0;
	ssize_t len;
	FILE *fp;

	*names = NULL;
	if ((fp = fopen(path, "re")) == NULL) {
		log_errno("%s: no report of a previous push", path);
		return DS_ERR_NOTFOUND;
	}
	while ((len = getline(&line, &cap, fp)) != -1) {
		const char *h = strstr(line, "{\"host\":\"");
		char *name;

		if (h == NULL || strstr(line, ",\"ok\":false") == NULL)
			continue;
		if ((name = json_unquote(h + 9)) == NULL)
			continue;
		v = xgrow(v, &alloc, count + 2, sizeof(char *));
		v[count++] = name;
		v[count] = NULL;
	}
	free(line);
	fclose(fp);
	if (v == NULL)
		v = xcalloc(1, sizeof(char *));
	*names = v;
	return 0;
}
