/*
 * Many hosts at once. Each host's session runs in its own forked child (so
 * libssh and every other global state is never shared), at most `parallel`
 * at a time. A child talks to the parent through one pipe that also carries
 * its stderr: log lines as they are, and records, each one line of
 * FLEET_RECORD_MARK and one JSON object (jansson; jsonio.h):
 *
 *	{"phase":PHASE}                         the session reached PHASE
 *	{"bytes":{"wire":N,"done":N,"total":N}} bytes on the wire, content bytes
 *	                                        done/planned
 *	{"result":REPORT}                       the host's report (report_encode),
 *	                                        the last record
 *
 * Each record is preceded by a newline, which ends a log line the child left
 * unfinished (empty lines are ignored). The last result record that decodes
 * counts; a record that does not decode is dropped. A child that ends
 * without a result failed ("session process died").
 */
#ifndef DS_FLEET_H
#define DS_FLEET_H

#include <stddef.h>
#include <stdint.h>

struct config_host;
struct progress;
struct report;

#define FLEET_RECORD_MARK	'\001'

/* A child's end of the pipe to the parent. */
struct fleet_chan;

/*
 * Runs one host's session in the child and fills REP (zeroed; sender_run
 * fills it). Returns the session's status, which becomes rep->status. The
 * error lines the child logs are held until it returns: a failure without a
 * reason gets one (report_explain, with the first of them), and only those
 * the reason does not say are printed (report_errors_print), so a failure
 * shows once, in the summary. Progress goes through fleet_send_phase/_bytes.
 */
typedef int	fleet_host_fn(const struct config_host *host, void *arg, struct fleet_chan *chan,
		    struct report *rep);

struct fleet_options {
	unsigned	 parallel;	/* children at once; 0 means 1 */
	unsigned	 canary;	/* these first hosts run first; the rest only if all pass */
	unsigned	 max_failures;	/* start no new host after this many failures; 0: no limit */
	struct progress	*progress;	/* may be NULL */
	fleet_host_fn	*run;
	void		*arg;
};

/*
 * Runs opt->run for each of the n hosts, each in a forked child, and fills
 * reports[i] (zeroed first) for hosts[i], with its wall time, started = 1
 * and a reason when it failed (without the host name it may begin with).
 * Hosts not started because a canary failed or max_failures was reached get
 * started = 0, status DS_ERR_PRECONDITION and a reason. Returns 0 when every
 * host succeeded, else the worst status (a failure before a precondition).
 * The caller releases each report with report_release.
 */
int	fleet_run(const struct fleet_options *opt, const struct config_host *const *hosts,
	    size_t n, struct report *reports);

/* Child side: reports reaching PHASE; a NULL chan (not forked) does nothing. */
void	fleet_send_phase(struct fleet_chan *chan, const char *phase);
/* Child side: reports bytes, at most a few times a second (rate-limited here). */
void	fleet_send_bytes(struct fleet_chan *chan, uint64_t wire, uint64_t done, uint64_t total);

/*
 * Worse of two statuses for an exit code: any status beats 0, a failure
 * (exit 1) beats a precondition (exit 3).
 */
int	fleet_worse(int a, int b);

#endif
