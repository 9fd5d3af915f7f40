/*
 * Many hosts at once. Each host's session runs in its own forked child (so
 * libssh and every other global state is never shared), at most `parallel`
 * at a time. A child talks to the parent through one pipe that also carries
 * its stderr: log lines as they are, and records, each one line starting
 * with FLEET_RECORD_MARK:
 *
 *	\001phase PHASE                 the session reached PHASE
 *	\001bytes WIRE DONE TOTAL       bytes on the wire, content bytes done/planned
 *	\001result KEY=VALUE ...        the host's final result (last record)
 *
 * Each record is preceded by a newline, which ends a log line the child left
 * unfinished (empty lines are ignored). The last result record counts.
 * Fields are separated by one space; values are percent-encoded (every byte
 * <= 0x20, '%', '=' and 0x7f as %XX), so a record is always one line.
 * A child that ends without a result record failed ("session process died").
 */
#ifndef DS_FLEET_H
#define DS_FLEET_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct config_host;
struct progress;

#define FLEET_RECORD_MARK	'\001'

/* What one host's run produced; the same struct for push and status. */
struct fleet_result {
	int		 status;	/* 0 or a DS_ERR_* */
	int		 started;	/* 0: never started (canary, --max-failures) */
	char		*from;		/* release before ("" none), or NULL unknown */
	char		*to;		/* release after, or NULL */
	uint64_t	 added, updated, deleted;
	uint64_t	 changed;	/* paths changed (push) or drifted (status) */
	uint64_t	 objects;	/* objects sent */
	uint64_t	 object_bytes;	/* content bytes of the objects sent */
	uint64_t	 bytes_sent;	/* on the wire */
	uint64_t	 bytes_received;
	unsigned	 round_trips;
	uint64_t	 encoded;	/* objects sent encoded (delta or compressed) */
	uint64_t	 cache_hits;	/* of those, encodings found in the delta cache */
	int		 dry_run;
	char		*services;	/* restarted, comma-separated, or NULL */
	char		*health;	/* "ok", "none", what failed, or NULL */
	char		*reason;	/* why it failed, or NULL */
	char		*last;		/* status: the host's last history.log line, or NULL */
	double		 seconds;	/* wall time of the host's session */
};

/* A child's end of the pipe to the parent. */
struct fleet_chan;

/*
 * Runs one host's session in the child and fills res (status included).
 * Returns res->status. Progress goes through fleet_send_phase/_bytes.
 */
typedef int	fleet_host_fn(const struct config_host *host, void *arg, struct fleet_chan *chan,
		    struct fleet_result *res);

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
 * results[i] (zeroed first) for hosts[i]. Hosts not started because a canary
 * failed or max_failures was reached get started = 0, status
 * DS_ERR_PRECONDITION and a reason. Returns 0 when every host succeeded,
 * else the worst status (a failure before a precondition). The caller
 * releases each result with fleet_result_release.
 */
int	fleet_run(const struct fleet_options *opt, const struct config_host *const *hosts,
	    size_t n, struct fleet_result *results);
void	fleet_result_release(struct fleet_result *res);

/* Child side: reports reaching PHASE; a NULL chan (not forked) does nothing. */
void	fleet_send_phase(struct fleet_chan *chan, const char *phase);
/* Child side: reports bytes, at most a few times a second (rate-limited here). */
void	fleet_send_bytes(struct fleet_chan *chan, uint64_t wire, uint64_t done, uint64_t total);

/*
 * Worse of two statuses for an exit code: any status beats 0, a failure
 * (exit 1) beats a precondition (exit 3).
 */
int	fleet_worse(int a, int b);

/* One line about a finished host for the progress display ("A -> B, 3 files, ..."). */
void	fleet_result_line(const struct fleet_result *res, char *buf, size_t len);

/*
 * The push summary: a table with host, from -> to, files changed, bytes sent,
 * time, services restarted, result and reason; then a count line.
 */
void	fleet_print_table(const struct config_host *const *hosts, const struct fleet_result *res,
	    size_t n, FILE *fp);
/*
 * The same as one JSON document: an array of one object per host with the
 * fields of sender_report_json plus "result", "reason", "started", "seconds".
 */
void	fleet_print_json(const struct config_host *const *hosts, const struct fleet_result *res,
	    size_t n, FILE *fp);
/* One host's object of fleet_print_json, on one line (no newline). */
void	fleet_result_json(const char *host, const struct fleet_result *res, FILE *fp);

/*
 * Reads the hosts whose "ok" is false from a report fleet_print_json wrote
 * (one host object per line) into *names (NULL-terminated; caller frees with
 * xfree_strv). DS_ERR_NOTFOUND (logged) when there is no report.
 */
int	fleet_report_failed(const char *path, char ***names);

#endif
