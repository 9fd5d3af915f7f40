/*
 * One host's outcome, end to end. sender_run fills it from the receiver's
 * RESULT and its own counters; a fleet child sends it to the parent as one
 * JSON line (report_encode, report_decode); the text of one session, the
 * push summary table, every --json and the saved last-push.json are printed
 * from it. No other struct copies it on the way.
 */
#ifndef DS_REPORT_H
#define DS_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "wire/proto.h"

struct config_host;
struct json_t;

struct report {
	uint8_t		 op;		/* PROTO_OP_* the session was for */
	uint32_t	 flags;		/* PROTO_FLAG_* asked for (dry run...) */
	int		 status;	/* 0 or the session's DS_ERR_* */
	int		 started;	/* fleet: 0 when never started (canary, --max-failures) */
	char		*reason;	/* why it failed, for the summary (report_explain), or NULL */
	double		 seconds;	/* wall time of the host's session */
	struct proto_result result;	/* what the receiver answered (zero: no answer) */
	char		*release;	/* release pushed (push only) */
	/*
	 * The objects a push sent, and their encodings: a dry run encodes the
	 * same objects and counts what it would send (it sends none).
	 */
	uint64_t	 objects_sent;
	uint64_t	 object_bytes;	/* decoded bytes of the objects sent */
	uint64_t	 planned_bytes;	/* push: content bytes the plan needs sent */
	uint64_t	 bytes_sent;	/* on the wire */
	uint64_t	 bytes_received;
	uint64_t	 round_trips;	/* times the sender waited for the peer */
	int		 manifest_fetched; /* 1: the receiver's manifest was unknown */
	uint64_t	 enc_objects[PROTO_ENC_MAX + 1]; /* objects sent, by PROTO_ENC_* */
	uint64_t	 enc_bytes[PROTO_ENC_MAX + 1];	/* their encoded bytes */
	uint64_t	 signatures;	/* bases the receiver signed (unknown to the store) */
	uint64_t	 fallbacks;	/* deltas the receiver could not use: sent again whole */
	uint64_t	 cache_hits;	/* encodings taken from the store's delta cache */
	/*
	 * A site distsync never applied, whose target held files (push, verify):
	 * what was found there is adopted, not drift. found_release is the kept
	 * release that tree equals (NULL: none); identical the paths a push
	 * left as found (the rest: result's added, updated, deleted).
	 */
	int		 found;
	char		*found_release;
	uint64_t	 identical;
	/*
	 * A fleet's push (report_decode): how many drifted paths the host's
	 * push overwrote and the first of them, for the summary's restore
	 * command; the list itself stays with the host (result.drift is empty).
	 */
	uint64_t	 drift_count;
	char		*drift_first;
};

/* Makes REP an empty report of a session for OP with FLAGS; it must hold nothing. */
void	report_init(struct report *rep, uint8_t op, uint32_t flags);
/* Frees what REP holds and zeroes it; NULL is fine. */
void	report_release(struct report *rep);

/* The encoded bytes of the objects sent (or, in a dry run, to send): the DATA they take. */
uint64_t report_encoded_bytes(const struct report *rep);

/*
 * Gives a failed report without a reason one: the receiver's message, else
 * FIRST_ERROR (the first error its session logged; may be NULL), else the
 * status's text. Does nothing for a success.
 */
void	report_explain(struct report *rep, const char *first_error);

/*
 * Prints what one session did on HOST, for people: from -> to release,
 * counts, bytes sent, encodings, drift, services restarted and health; or
 * the error (rep->status).
 */
void	report_print_text(const struct report *rep, const char *host, FILE *fp);

/*
 * The same as one JSON object (a new reference), as push (one host),
 * rollback and verify --json print it: host, operation, ok, error, dry_run,
 * from, to, the counts, encodings, services, health and drift.
 */
struct json_t *report_json(const struct report *rep, const char *host);

/*
 * What verify --json prints for HOST (a new reference): host, operation,
 * ok, result ("no drift", "drifted" or "FAILED"), error, release, verified,
 * drifted (the count), drift (the paths listed; drift_complete false when
 * the list was cut), pending, last_apply (the host's history line, as
 * report_history_json gives it) and
 * found. No transfer counters: a verify sends none.
 */
struct json_t *report_verify_json(const struct report *rep, const char *host);

/*
 * Splits a history.log line "TIME ACTION ... result=TEXT" into its time,
 * action and result (pointers into a copy the caller frees as *copy); all
 * NULL for a NULL line.
 */
void	report_split_history(const char *line, char **copy, const char **time,
	    const char **action, const char **result);
/* A history.log line as status and verify --json give it: {time, action, result, line}, or null. */
struct json_t *report_history_json(const char *line);

/*
 * The error lines a session logs, held back while it runs so that a
 * failure is printed once: in its report, not also as log lines.
 */
struct report_errors {
	char	**lines;
	size_t	  count, alloc;
};

/* Holds back every error line logged from now on (log_set_capture). */
void	report_errors_hold(struct report_errors *held);
/*
 * Stops holding; gives REP (may be NULL) a reason if it failed without one
 * (report_explain, with the first line held), then logs the held lines the
 * reason does not already say, and frees them.
 */
void	report_errors_print(struct report_errors *held, struct report *rep);

/* One line about a finished host for the progress display ("A -> B, 3 files, ..."). */
void	report_line(const struct report *rep, char *buf, size_t len);

/*
 * The push summary: a table with host, from -> to, files changed, bytes sent,
 * time, services restarted, result and reason; then a count line.
 */
void	report_print_table(const struct config_host *const *hosts, const struct report *reps,
	    size_t n, FILE *fp);

/*
 * The same as one JSON document, an array of one object a line per host
 * (jsonio_write_lines), as push --json prints it for a fleet and
 * last-push.json keeps it: the fields of report_json but encodings,
 * signatures, delta_fallbacks and drift, plus result, started, encoded and
 * seconds. Returns 0 or DS_ERR_SYSTEM when FP fails (not logged).
 */
int	report_print_fleet_json(const struct config_host *const *hosts,
	    const struct report *reps, size_t n, FILE *fp);

/*
 * Reads the hosts whose "ok" is false from a document report_print_fleet_json
 * wrote, line by line (a damaged line loses only its host), into *names
 * (NULL-terminated; caller frees with xfree_strv). A name with a control
 * character is no host and is skipped. DS_ERR_NOTFOUND (logged) when there
 * is no such file.
 */
int	report_failed_hosts(const char *path, char ***names);

/*
 * REP as a JSON object for the fleet pipe (a new reference): every field
 * but the drift paths, a list no summary shows that would make the line
 * unbounded (the count, result.changed, goes).
 */
struct json_t *report_encode(const struct report *rep);

/*
 * Fills REP (which must hold nothing) from a report_encode object. Returns
 * 0, or DS_ERR_PROTO for a value that is not one (a field of the wrong
 * type, a status that is no DS_ERR_*), with REP released. Does not log.
 */
int	report_decode(const struct json_t *v, struct report *rep);

#endif
