/*
 * Progress of many hosts at once, for people. On a terminal: one live line
 * per active host (phase, bytes, rate, ETA) and a total line, redrawn in
 * place with ANSI cursor moves at most PROGRESS_HZ times a second; finished
 * hosts and log lines scroll above the live block. Otherwise (cron, CI, a
 * pipe): one plain line per event, no control characters at all.
 */
#ifndef DS_PROGRESS_H
#define DS_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

#define PROGRESS_HZ	10

enum progress_mode {
	PROGRESS_QUIET,		/* nothing but log lines */
	PROGRESS_PLAIN,		/* one line per event */
	PROGRESS_TTY,		/* live block redrawn in place */
};

struct progress;

/*
 * Returns a display writing to fp for nhosts hosts in MODE; VERB names the
 * operation in the total line ("push"). Free with progress_free.
 */
struct progress	*progress_new(FILE *fp, enum progress_mode mode, const char *verb,
		    size_t nhosts);
/* Erases the live block (a terminal) and frees p; NULL is fine. */
void		 progress_free(struct progress *p);
/* PROGRESS_TTY when fp is a terminal and TERM is not "dumb", else PROGRESS_PLAIN. */
enum progress_mode progress_mode_for(FILE *fp);

/* Host HOST (a stable string kept by the caller) starts; returns its slot. */
int	progress_host_begin(struct progress *p, const char *host);
/* The host's session reached PHASE ("connecting", "sending"...). */
void	progress_host_phase(struct progress *p, int slot, const char *phase);
/* Bytes so far on the wire, and content bytes done out of total planned. */
void	progress_host_bytes(struct progress *p, int slot, uint64_t wire, uint64_t done,
	    uint64_t total);
/* The host is finished; SUMMARY is one line (no host name), ok 0 for a failure. */
void	progress_host_end(struct progress *p, int slot, int ok, const char *summary);
/*
 * Routes every log line (log.c) above the live block until progress_free,
 * so messages do not tear it; for a single process drawing on a terminal.
 */
void	progress_take_log(struct progress *p);
/* Prints one log line above the live block (control characters are replaced). */
void	progress_log(struct progress *p, const char *line);
/* Redraws the live block when it is due (terminal mode); cheap to call often. */
void	progress_tick(struct progress *p);

#endif
