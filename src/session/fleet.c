/*
 * Many hosts in parallel: one forked child per host session, a pipe back to
 * the parent carrying the child's stderr and its records (fleet.h), canary
 * hosts first, a failure budget. The summary is report.c's to print.
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

#include <jansson.h>

#include "base/err.h"
#include "base/interrupt.h"
#include "base/jsonio.h"
#include "base/log.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "config/config.h"
#include "session/fleet.h"
#include "session/progress.h"
#include "session/report.h"

#define LINE_BUF_MAX	(64u * 1024)	/* a longer log line from a child is cut */
/*
 * A record may be longer: a result carries the receiver's message (up to
 * PROTO_MESSAGE_MAX) as escaped JSON, and a cut record would not decode.
 */
#define RECORD_MAX	(1024u * 1024)
#define BYTES_INTERVAL	0.1		/* seconds between bytes records */
#define REASON_MAX	1024

struct fleet_chan {
	int		 fd;
	double		 last_bytes;
};

struct child {
	pid_t		 pid;
	int		 fd;
	size_t		 index;		/* into hosts and results */
	int		 slot;		/* progress slot */
	double		 start;
	char		*buf;		/* NULL: the slot is free */
	size_t		 len, cap;
	int		 has_result;
};

int
fleet_worse(int a, int b)
{
	if (a == DS_ERR_INTERRUPTED || b == DS_ERR_INTERRUPTED)
		return DS_ERR_INTERRUPTED;
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	return ds_exit_code(a) == DS_EXIT_FAILED ? a : b;
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

/* Writes record V (taken) to the parent: a newline, the mark, V on one line. */
static void
send_record(struct fleet_chan *chan, json_t *v)
{
	char *text = jsonio_text(v), *line;

	line = xasprintf("\n%c%s\n", FLEET_RECORD_MARK, text);
	chan_write(chan, line, strlen(line));
	free(line);
	free(text);
	json_decref(v);
}

void
fleet_send_phase(struct fleet_chan *chan, const char *phase)
{
	if (chan == NULL)
		return;
	send_record(chan, jsonio_pack("{s:o}", "phase", jsonio_string(phase)));
}

void
fleet_send_bytes(struct fleet_chan *chan, uint64_t wire, uint64_t done, uint64_t total)
{
	double t;

	if (chan == NULL)
		return;
	t = util_now();
	if (t - chan->last_bytes < BYTES_INTERVAL && done < total)
		return;
	chan->last_bytes = t;
	send_record(chan, jsonio_pack("{s:{s:o,s:o,s:o}}", "bytes", "wire", jsonio_uint(wire),
	    "done", jsonio_uint(done), "total", jsonio_uint(total)));
}

/* The child: runs one host and reports. Never returns. */
static void
child_main(const struct fleet_options *opt, const struct config_host *host, int fd)
{
	struct report_errors held;
	struct fleet_chan chan;
	struct report rep;
	int devnull;

	memset(&chan, 0, sizeof(chan));
	memset(&rep, 0, sizeof(rep));
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
	/* The errors that make the reason are printed once, in the summary. */
	report_errors_hold(&held);
	rep.status = opt->run(host, opt->arg, &chan, &rep);
	rep.started = 1;
	report_errors_print(&held, &rep);
	send_record(&chan, jsonio_pack("{s:o}", "result", report_encode(&rep)));
	fflush(stdout);
	fflush(stderr);
	report_release(&rep);
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
	c->cap = LINE_BUF_MAX;
	c->buf = xmalloc(c->cap + 1);
	c->slot = opt->progress != NULL ? progress_host_begin(opt->progress, host->name) : -1;
	return 0;
}

/* Shows a log line of a child, naming its host when the line does not. */
static void
child_log(const struct fleet_options *opt, const struct config_host *host, const char *line)
{
	const char *rest = line;
	char *text;

	if (strncmp(rest, "distsync: ", 10) == 0)
		rest += 10;
	if (log_line_names(rest, host->name))	/* "alpha: ..." or "host alpha: ..." */
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
    struct report *res, char *line)
{
	const json_t *phase, *bytes, *result;
	struct report decoded;
	json_t *v;

	if (line[0] == '\0')
		return;		/* records start with a newline that ends any partial line */
	if (line[0] != FLEET_RECORD_MARK) {
		child_log(opt, host, line);
		return;
	}
	/* A record that does not decode is dropped: the last good result counts. */
	v = jsonio_parse(line + 1, 0);
	if ((phase = json_object_get(v, "phase")) != NULL) {
		if (json_is_string(phase) && opt->progress != NULL)
			progress_host_phase(opt->progress, c->slot, json_string_value(phase));
	} else if ((bytes = json_object_get(v, "bytes")) != NULL) {
		const json_t *wire = json_object_get(bytes, "wire"), *done =
		    json_object_get(bytes, "done"), *total = json_object_get(bytes, "total");

		if (json_is_integer(wire) && json_is_integer(done) && json_is_integer(total) &&
		    opt->progress != NULL)
			progress_host_bytes(opt->progress, c->slot,
			    (uint64_t)json_integer_value(wire), (uint64_t)json_integer_value(done),
			    (uint64_t)json_integer_value(total));
	} else if ((result = json_object_get(v, "result")) != NULL &&
	    report_decode(result, &decoded) == 0) {
		report_release(res);
		*res = decoded;
		res->started = 1;
		c->has_result = 1;
	}
	json_decref(v);
}

/* Reads what the child wrote; returns 1 at its end of stream. */
static int
child_read(const struct fleet_options *opt, const struct config_host *host, struct child *c,
    struct report *res)
{
	ssize_t n;
	char *nl;
	int full;

	if (c->len == c->cap && c->buf[0] == FLEET_RECORD_MARK && c->cap < RECORD_MAX) {
		c->cap = c->cap * 2 < RECORD_MAX ? c->cap * 2 : RECORD_MAX;
		c->buf = xreallocarray(c->buf, c->cap + 1, 1);
	}
	do
		n = read(c->fd, c->buf + c->len, c->cap - c->len);
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
	/* A record grows its buffer at the next read; a log line is cut here. */
	full = c->len == c->cap && (c->buf[0] != FLEET_RECORD_MARK || c->cap == RECORD_MAX);
	if (n <= 0 || full) {
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
    struct report *res)
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
		/* A failure's reason is printed once: in the summary. */
		if (res->status == 0)
			report_line(res, line, sizeof(line));
		else
			snprintf(line, sizeof(line), "the reason is in the summary");
		progress_host_end(opt->progress, c->slot, res->status == 0, line);
	}
	free(c->buf);
	c->buf = NULL;
}

int
fleet_run(const struct fleet_options *opt, const struct config_host *const *hosts, size_t n,
    struct report *reports)
{
	unsigned parallel = opt->parallel > 0 ? opt->parallel : 1;
	size_t canary = opt->canary < n ? opt->canary : n;
	size_t next = 0, limit = canary > 0 ? canary : n;
	size_t running = 0, failures = 0;
	struct child *children;
	struct pollfd *pfd;
	char *stop = NULL;
	int worst = 0, forwarded = 0;

	for (size_t i = 0; i < n; i++)
		memset(&reports[i], 0, sizeof(reports[i]));
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
				reports[next].status = DS_ERR_SYSTEM;
				reports[next].reason = xstrdup("could not start its session process");
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
					if (reports[i].status != 0) {
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
			struct report *res;

			if (c->buf == NULL)
				continue;
			if ((pfd[k++].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
				continue;
			res = &reports[c->index];
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
		if (interrupt_signal() != 0 && !forwarded) {
			/* Each running session stops and reports; no new one starts. */
			for (size_t j = 0; j < parallel; j++)
				if (children[j].buf != NULL)
					(void)kill(children[j].pid, interrupt_signal());
			forwarded = 1;
			if (stop == NULL)
				stop = xstrdup("interrupted");
			worst = DS_ERR_INTERRUPTED;
		}
	}
	for (size_t i = next; i < n; i++) {
		reports[i].started = 0;
		reports[i].status = DS_ERR_PRECONDITION;
		reports[i].reason = xasprintf("not started: %s", stop != NULL ? stop : "stopped");
		worst = fleet_worse(worst, DS_ERR_PRECONDITION);
		if (opt->progress != NULL) {
			int slot = progress_host_begin(opt->progress, hosts[i]->name);

			progress_host_end(opt->progress, slot, 0, reports[i].reason);
		}
	}
	free(stop);
	free(children);
	free(pfd);
	return worst;
}
