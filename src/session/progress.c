/*
 * Progress display of a fleet run. The terminal mode keeps a block of live
 * lines at the bottom: before anything scrolls above it, the block is erased
 * (cursor up, clear to the end of the screen) and drawn again after. Lines are
 * cut to the terminal's width so that none wraps and the cursor arithmetic
 * holds.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "session/progress.h"

#define LIVE_LINES_MAX	30	/* host lines shown at once; the rest are summed up */
#define LINE_MAX_BYTES	512

struct progress_host {
	const char	*name;
	char		 phase[32];
	double		 start;
	uint64_t	 wire, done, total;
	double		 first_t;	/* when done first moved: the ETA's rate starts there */
	uint64_t	 first_done;
	int		 active;
};

struct progress {
	FILE		*fp;
	enum progress_mode mode;
	const char	*verb;
	struct progress_host *hosts;
	size_t		 nhosts, used;
	size_t		 finished, failed;
	uint64_t	 wire_finished;	/* bytes of hosts that ended */
	int		 owns_log;	/* progress_take_log was called */
	double		 start;
	double		 last_draw;
	int		 drawn;		/* live lines on screen now */
	int		 dirty;
};

enum progress_mode
progress_mode_for(FILE *fp)
{
	const char *term = getenv("TERM");

	if (!isatty(fileno(fp)) || term == NULL || term[0] == '\0' || strcmp(term, "dumb") == 0)
		return PROGRESS_PLAIN;
	return PROGRESS_TTY;
}

struct progress *
progress_new(FILE *fp, enum progress_mode mode, const char *verb, size_t nhosts)
{
	struct progress *p = xcalloc(1, sizeof(*p));

	p->fp = fp;
	p->mode = mode;
	p->verb = verb;
	p->nhosts = nhosts;
	p->hosts = xcalloc(nhosts > 0 ? nhosts : 1, sizeof(*p->hosts));
	p->start = util_now();
	return p;
}

static int
term_width(struct progress *p)
{
	struct winsize ws;

	if (ioctl(fileno(p->fp), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
		return ws.ws_col;
	return 80;
}

/* Copies s to out with every control character made a '?', cut to width. */
static void
clean(char *out, size_t len, const char *s, size_t width)
{
	size_t i = 0;

	if (len == 0)
		return;
	if (width + 1 < len)
		len = width + 1;
	for (const unsigned char *q = (const unsigned char *)s; *q != '\0' && i + 1 < len; q++)
		out[i++] = (*q < 0x20 || *q == 0x7f) ? '?' : (char)*q;
	out[i] = '\0';
}

static void
put_line(struct progress *p, const char *text, size_t width)
{
	char line[LINE_MAX_BYTES];

	clean(line, sizeof(line), text, width);
	fprintf(p->fp, "%s\n", line);
}

static void
erase(struct progress *p)
{
	if (p->mode != PROGRESS_TTY || p->drawn == 0)
		return;
	fprintf(p->fp, "\033[%dA\r\033[J", p->drawn);
	p->drawn = 0;
}

static void
format_rate(double bytes, double seconds, char *buf, size_t len)
{
	char b[24];

	if (seconds < 0.05) {
		snprintf(buf, len, "-");
		return;
	}
	util_format_bytes((uint64_t)(bytes / seconds), b, sizeof(b));
	snprintf(buf, len, "%s/s", b);
}

static void
format_eta(const struct progress_host *h, double t, char *buf, size_t len)
{
	double elapsed = t - h->first_t, left;

	/* The rate since content started to move: connecting and planning are behind. */
	if (h->total == 0 || h->first_t == 0 || h->done >= h->total || elapsed < 1.0 ||
	    h->done <= h->first_done) {
		snprintf(buf, len, "--:--");
		return;
	}
	/* Rounded to the nearest second, not truncated: "0:00" only when it is done. */
	left = elapsed * (double)(h->total - h->done) / (double)(h->done - h->first_done) + 0.5;
	if (left > 359999)
		left = 359999;
	if (left >= 3600)
		snprintf(buf, len, "%d:%02d:%02d", (int)left / 3600, ((int)left / 60) % 60,
		    (int)left % 60);
	else
		snprintf(buf, len, "%d:%02d", (int)left / 60, (int)left % 60);
}

static void
draw(struct progress *p)
{
	char line[LINE_MAX_BYTES], sent[32], total[32], rate[48], eta[16];
	size_t width = (size_t)term_width(p) - 1, shown = 0, active = 0;
	const char *moved = strcmp(p->verb, "pull") == 0 ? "received" : "sent";
	uint64_t wire = p->wire_finished;
	double t = util_now();

	erase(p);
	for (size_t i = 0; i < p->used; i++) {
		struct progress_host *h = &p->hosts[i];

		if (!h->active)
			continue;
		active++;
		wire += h->wire;
		if (shown >= LIVE_LINES_MAX)
			continue;
		util_format_bytes(h->wire, sent, sizeof(sent));
		format_rate((double)h->wire, t - h->start, rate, sizeof(rate));
		if (h->total > 0) {
			util_format_bytes(h->total, total, sizeof(total));
			format_eta(h, t, eta, sizeof(eta));
			/* Percent and ETA first: a narrow terminal cuts the end. */
			snprintf(line, sizeof(line), "  %-16s %-10s %3d%% of %-9s ETA %-7s %9s %s, %s",
			    h->name, h->phase,
			    h->done >= h->total ? 100 :
			    (int)(100.0 * (double)h->done / (double)h->total), total, eta, sent,
			    moved, rate);
		} else
			snprintf(line, sizeof(line), "  %-16s %-10s %9s %s, %s", h->name,
			    h->phase, sent, moved, rate);
		put_line(p, line, width);
		shown++;
	}
	if (active > shown) {
		snprintf(line, sizeof(line), "  ... and %zu more active", active - shown);
		put_line(p, line, width);
		shown++;
	}
	util_format_bytes(wire, sent, sizeof(sent));
	format_rate((double)wire, t - p->start, rate, sizeof(rate));
	snprintf(line, sizeof(line), "%s: %zu/%zu hosts done, %zu failed, %zu active, %s %s, %s",
	    p->verb, p->finished, p->nhosts, p->failed, active, sent, moved, rate);
	put_line(p, line, width);
	shown++;
	fflush(p->fp);
	p->drawn = (int)shown;
	p->last_draw = t;
	p->dirty = 0;
}

void
progress_tick(struct progress *p)
{
	if (p == NULL || p->mode != PROGRESS_TTY || !p->dirty)
		return;
	if (util_now() - p->last_draw >= 1.0 / PROGRESS_HZ)
		draw(p);
}

/* Prints one event line: plainly, or above the live block. */
static void
event(struct progress *p, const char *text)
{
	if (p->mode == PROGRESS_TTY) {
		erase(p);
		put_line(p, text, (size_t)term_width(p) - 1);
		draw(p);
		return;
	}
	put_line(p, text, LINE_MAX_BYTES - 1);
	fflush(p->fp);
}

int
progress_host_begin(struct progress *p, const char *host)
{
	struct progress_host *h;
	char line[LINE_MAX_BYTES];

	if (p->used == p->nhosts) {
		p->hosts = xreallocarray(p->hosts, p->nhosts + 1, sizeof(*p->hosts));
		p->nhosts++;
	}
	h = &p->hosts[p->used];
	memset(h, 0, sizeof(*h));
	h->name = host;
	h->start = util_now();
	h->active = 1;
	snprintf(h->phase, sizeof(h->phase), "starting");
	if (p->mode == PROGRESS_PLAIN) {
		snprintf(line, sizeof(line), "%s: started", host);
		event(p, line);
	} else
		p->dirty = 1;
	return (int)p->used++;
}

void
progress_host_phase(struct progress *p, int slot, const char *phase)
{
	struct progress_host *h;
	char line[LINE_MAX_BYTES];

	if (slot < 0 || (size_t)slot >= p->used)
		return;
	h = &p->hosts[slot];
	if (strcmp(h->phase, phase) == 0)
		return;
	snprintf(h->phase, sizeof(h->phase), "%s", phase);
	if (p->mode == PROGRESS_PLAIN) {
		snprintf(line, sizeof(line), "%s: %s", h->name, phase);
		event(p, line);
	}
	p->dirty = 1;
}

void
progress_host_bytes(struct progress *p, int slot, uint64_t wire, uint64_t done, uint64_t total)
{
	struct progress_host *h;

	if (slot < 0 || (size_t)slot >= p->used)
		return;
	h = &p->hosts[slot];
	h->wire = wire;
	if (h->first_t == 0 && done > 0) {
		h->first_t = util_now();
		h->first_done = done;
	} else if (done < h->first_done) {
		h->first_t = 0;	/* a new attempt counts afresh */
	}
	h->done = done;
	h->total = total;
	p->dirty = 1;
}

void
progress_host_end(struct progress *p, int slot, int ok, const char *summary)
{
	struct progress_host *h;
	char line[LINE_MAX_BYTES];

	if (slot < 0 || (size_t)slot >= p->used)
		return;
	h = &p->hosts[slot];
	if (!h->active)
		return;
	h->active = 0;
	p->finished++;
	p->wire_finished += h->wire;
	if (!ok)
		p->failed++;
	if (p->mode == PROGRESS_QUIET)
		return;
	snprintf(line, sizeof(line), "%s: %s%s", h->name, ok ? "" : "FAILED: ", summary);
	event(p, line);
}

static void
log_writer(const char *line, void *arg)
{
	progress_log(arg, line);
}

void
progress_take_log(struct progress *p)
{
	log_set_writer(log_writer, p);
	p->owns_log = 1;
}

void
progress_log(struct progress *p, const char *line)
{
	if (p->mode == PROGRESS_TTY) {
		event(p, line);
		return;
	}
	put_line(p, line, LINE_MAX_BYTES - 1);
	fflush(p->fp);
}

void
progress_free(struct progress *p)
{
	if (p == NULL)
		return;
	if (p->owns_log)
		log_set_writer(NULL, NULL);
	erase(p);
	fflush(p->fp);
	free(p->hosts);
	free(p);
}
