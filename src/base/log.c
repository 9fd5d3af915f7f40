#include "autoconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "base/log.h"
#include "base/util.h"

static enum log_level current_level = LOG_LEVEL_INFO;
static int trace;	/* -vv: libraries' own logs too */
static int syslog_open;
static int level_tags;
static char prefix[128];
static int (*capture_fn)(const char *, void *);
static void *capture_arg;
static void (*writer_fn)(const char *, void *);
static void *writer_arg;

void
log_set_writer(void (*fn)(const char *line, void *arg), void *arg)
{
	writer_fn = fn;
	writer_arg = arg;
}

void
log_set_level_tags(int on)
{
	level_tags = on;
}

void
log_set_capture(int (*fn)(const char *line, void *arg), void *arg)
{
	capture_fn = fn;
	capture_arg = arg;
}

void
log_set_level(enum log_level level)
{
	current_level = level;
}

void
log_set_trace(int on)
{
	trace = on;
}

int
log_trace(void)
{
	return trace;
}

enum log_level
log_get_level(void)
{
	return current_level;
}

void
log_set_prefix(const char *p)
{
	if (p == NULL)
		prefix[0] = '\0';
	else
		snprintf(prefix, sizeof(prefix), "%s: ", p);
}

void
log_open_syslog(void)
{
	if (!syslog_open)
		openlog("distsync", LOG_PID, LOG_USER);
	syslog_open = 1;
}

void
log_syslog_event(const char *fmt, ...)
{
	va_list ap;

	if (!syslog_open)
		log_open_syslog();
	va_start(ap, fmt);
	vsyslog(LOG_NOTICE, fmt, ap);
	va_end(ap);
}

/*
 * Whether LINE already names what the prefix does ("kirehe: ..." or "host
 * kirehe: ..." under the prefix "kirehe: "): then it is not said twice.
 */
int
log_line_names(const char *line, const char *name)
{
	size_t n = strlen(name);

	if (n == 0)
		return 0;
	if (strncmp(line, "host ", 5) == 0)
		line += 5;
	return strncmp(line, name, n) == 0 && line[n] == ':' && line[n + 1] == ' ';
}

static const char *
prefix_for(const char *line)
{
	char name[sizeof(prefix)];
	size_t n = strlen(prefix);

	if (n < 2)
		return prefix;
	memcpy(name, prefix, n - 2);	/* "kirehe: " -> "kirehe" */
	name[n - 2] = '\0';
	return log_line_names(line, name) ? "" : prefix;
}

/*
 * Every line is made printable (util_printable) where it is made: the
 * arguments of many carry a peer's bytes (paths, ids, messages), and a
 * terminal must not take them for escape sequences.
 */
static void
vlog(enum log_level level, int priority, const char *err, const char *fmt, va_list ap)
{
	char raw[4096], line[4096];
	int captured = 0;

	vsnprintf(raw, sizeof(raw), fmt, ap);
	util_printable_buf(raw, 0, line, sizeof(line));
	if (capture_fn != NULL && level == LOG_LEVEL_ERROR) {
		char full[4200];

		snprintf(full, sizeof(full), "%s%s%s", line, err ? ": " : "", err ? err : "");
		if (capture_fn(full, capture_arg))
			captured = 1;
	}
	if (level <= current_level && !captured) {
		char full[4400];

		const char *tag = "";

		if (level == LOG_LEVEL_WARN)
			tag = "warning: ";
		else if (level_tags && level == LOG_LEVEL_INFO)
			tag = "info: ";
		else if (level_tags && level == LOG_LEVEL_DEBUG)
			tag = "debug: ";
		snprintf(full, sizeof(full), "distsync: %s%s%s%s%s", prefix_for(line), tag, line,
		    err ? ": " : "", err ? err : "");
		if (writer_fn != NULL)
			writer_fn(full, writer_arg);
		else
			fprintf(stderr, "%s\n", full);	/* one write: hosts do not interleave */
	}
	if (syslog_open && level <= LOG_LEVEL_WARN)
		syslog(priority, "%s%s%s%s", prefix_for(line), line, err ? ": " : "",
		    err ? err : "");
}

#define LOG_FN(name, level, priority)				\
void								\
name(const char *fmt, ...)					\
{								\
	va_list ap;						\
	va_start(ap, fmt);					\
	vlog(level, priority, NULL, fmt, ap);			\
	va_end(ap);						\
}
LOG_FN(log_error, LOG_LEVEL_ERROR, LOG_ERR)
LOG_FN(log_warn, LOG_LEVEL_WARN, LOG_WARNING)
LOG_FN(log_info, LOG_LEVEL_INFO, LOG_INFO)
LOG_FN(log_debug, LOG_LEVEL_DEBUG, LOG_DEBUG)

void
log_errno(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERROR, LOG_ERR, strerror(saved), fmt, ap);
	va_end(ap);
	errno = saved;
}
