/*
 * What follows an apply or a rollback on the site (DESIGN.md step 7): the
 * work it owes (owed.h: the run_once runs of the new tree, then restarts of
 * the services its changes touch, with their health checks), on a failure
 * the files rolled back and what the rollback owes run in turn; then the
 * history.log line and, for an apply, the syslog line. The receiver calls
 * it after commit_apply or commit_rollback and sends what it reports back.
 * Work still pending from an apply an earlier session did not finish runs
 * here too.
 */
#ifndef DS_FINISH_H
#define DS_FINISH_H

#include <stddef.h>

struct commit_opts;
struct commit_report;
struct config;
struct config_host;
struct target;

/* The site an apply finishes on. */
struct finish_site {
	struct target		*t;
	const struct config	*config;	/* services and run_once; NULL: none */
	const struct config_host *host;
	const struct commit_opts *opts;		/* the apply's; a rollback after a failed
						   restart reuses them (no dry run, drift allowed) */
	int			 no_restart;	/* the initiator asked for no restart */
};

/* What finishing did. */
struct finish_report {
	char		**services;	/* services restarted and healthy, in restart order;
					   NULL-terminated, or NULL for none */
	size_t		  nservices;
	/*
	 * "ok" (services restarted, all healthy), "none" (nothing to restart),
	 * "not restarted" (no_restart), "SERVICE failed[: OUTPUT]" or "failed".
	 */
	char		 *health;
	char		**runs;		/* run_once runs: "run_once[N] PATH: ran 0.2 s" or
					   "...: failed"; NULL-terminated, or NULL */
	size_t		  nruns;
	char		 *pending;	/* what is still owed afterwards (owed_describe), or NULL */
};

/*
 * Finishes commit_apply (REP its report, RESULT its return value): when it
 * succeeded and was no dry run, runs what STATE/pending owes (this apply's
 * and an unfinished one's), rolling the files back (commit_rollback) and
 * running what the rollback owes when a run or a restart fails; with
 * no_restart the owed work is dropped, logged. Unless a dry run, appends the
 * history line ("apply") and logs the apply to syslog. Fills OUT (free with
 * finish_report_release). Returns RESULT, or the failure of a run or a
 * restart (DS_ERR_CHILD, DS_ERR_HEALTH, DS_ERR_TIMEOUT, DS_ERR_CONFIG;
 * logged).
 */
int	finish_apply(const struct finish_site *site, const struct commit_report *rep,
	    int result, struct finish_report *out);

/*
 * finish_apply for commit_rollback: a failed restart is reported and stays
 * pending (the files are not rolled back again), the history line says
 * "rollback", no syslog line.
 */
int	finish_rollback(const struct finish_site *site, const struct commit_report *rep,
	    int result, struct finish_report *out);

/* Frees what r holds and zeroes it. */
void	finish_report_release(struct finish_report *r);

#endif
