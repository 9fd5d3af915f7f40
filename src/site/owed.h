/*
 * The work an apply owes once its files are in place (DESIGN.md step 7):
 * the run_once runs of the new tree (runonce.h), then the restarts of the
 * services its changes touch, each with its health check, in after: order.
 *
 * An apply decides what it owes before its commit point and records it in
 * its journal (F, O and S records, journal.h), so whoever finishes the
 * apply, even after a crash, owes the same. The replay moves them to
 * STATE/pending (a journal with only those records); the session that
 * finishes the apply runs them and removes the file. A later apply before
 * that takes the restarts still pending into its own (its run_once runs are
 * recomputed from the done file anyway). Read-only commands (status,
 * verify, plan) only report what is pending.
 */
#ifndef DS_OWED_H
#define DS_OWED_H

#include <stddef.h>

struct config;
struct config_host;
struct journal;
struct manifest;
struct restart_report;
struct target;

#define OWED_PENDING_FILE	"pending"	/* in the state directory */

/*
 * Appends to J what an apply from FROM to TO (its manifests; FROM NULL for
 * none) owes under CONFIG (NULL: no commands, only the restarts still
 * pending): run_once runs unless ROLLBACK (a rollback runs none, and drops
 * those still pending), then the restarts CHANGED (N paths) and STATE/pending
 * call for. MIGRATE as runonce_owed (0 for a dry run). Returns 0, or
 * DS_ERR_CONFIG / DS_ERR_SYSTEM (logged).
 */
int	owed_plan(struct target *t, const struct config *config, const struct manifest *from,
	    const struct manifest *to, char *const *changed, size_t n, int rollback,
	    int migrate, struct journal *j);

/*
 * During a replay: writes J's owed records (with its from, to and keep) as
 * STATE/pending, or removes the file when J owes nothing. Durable after
 * target_sync_state. Returns 0, DS_ERR_NOSPACE or DS_ERR_SYSTEM (logged).
 */
int	owed_write_pending(struct target *t, const struct journal *j);

/*
 * Reads STATE/pending into *j (zeroed first; j->to NULL when there is
 * none). Returns 0, DS_ERR_CORRUPT (a damaged file, logged) or
 * DS_ERR_SYSTEM (logged). Reads only.
 */
int	owed_read_pending(struct target *t, struct journal *j);

/* Removes STATE/pending durably; 0 or DS_ERR_SYSTEM (logged). */
int	owed_drop_pending(struct target *t);

/*
 * One line saying what J owes: "restart db, backend; run_once on
 * trusted_sql/001.sql, trusted_sql/002.sql", shortened past a few names;
 * NULL when J owes nothing. Caller frees.
 */
char	*owed_describe(const struct journal *j);

/*
 * Runs what J (a pending file) owes on HOST: its run_once runs, then its
 * restarts with their health checks, stopping at the first failure.
 * Outcomes go to REPORT. Returns 0, or runonce_run's and restart_run's
 * errors (logged). Does not remove the pending file.
 */
int	owed_run(struct target *t, const struct config *config, const struct config_host *host,
	    const struct journal *j, struct restart_report *report);

#endif
