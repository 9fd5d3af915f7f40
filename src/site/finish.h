/*
 * What follows an apply or a rollback on the site (DESIGN.md step 7): the
 * run_once hooks of the new release, a restart of the services whose files
 * changed (restart.h), and on a failure the files rolled back and the same
 * services restarted on them; then the history.log line and, for an apply,
 * the syslog line. The receiver calls it after commit_apply or
 * commit_rollback and sends what it reports back.
 */
#ifndef DS_FINISH_H
#define DS_FINISH_H

#include <stddef.h>

struct commit_opts;
struct commit_report;
struct config;
struct config_host;
struct manifest;
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
	 * "not restarted" (an apply with no_restart), "SERVICE failed[: OUTPUT]"
	 * or "failed".
	 */
	char		 *health;
};

/*
 * Finishes commit_apply of TO (REP its report, RESULT its return value):
 * when the apply succeeded, changed something and was no dry run, runs the
 * run_once hooks TO asks for and restarts what REP's changed paths touch,
 * rolling the files back (commit_rollback) and restarting the same services
 * again when a hook or a restart fails. Unless a dry run, appends the
 * history line ("apply") and logs the apply to syslog. Fills OUT (free with
 * finish_report_release). Returns RESULT, or the failure of a hook or
 * restart (DS_ERR_CHILD, DS_ERR_HEALTH, DS_ERR_CONFIG; logged).
 */
int	finish_apply(const struct finish_site *site, const struct manifest *to,
	    const struct commit_report *rep, int result, struct finish_report *out);

/*
 * finish_apply for commit_rollback: no run_once, the history line says
 * "rollback", no syslog line.
 */
int	finish_rollback(const struct finish_site *site, const struct commit_report *rep,
	    int result, struct finish_report *out);

/* Frees what r holds and zeroes it. */
void	finish_report_release(struct finish_report *r);

#endif
