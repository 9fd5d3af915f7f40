/*
 * The initiating side of a session: for a push it is the sender (plans from
 * the receiver's state and streams the objects the receiver lacks, then
 * COMMIT); for rollback, verify and releases it only asks and reads the
 * RESULT; for a restore it asks for paths and takes their content.
 * Only sender.c and receiver.c speak proto.
 */
#ifndef DS_SENDER_H
#define DS_SENDER_H

#include <stdint.h>

struct config;
struct config_host;
struct manifest;
struct proto_restore;
struct proto_restored;
struct report;
struct store;
struct xport;

struct sender_options {
	uint8_t		 op;		/* PROTO_OP_PUSH, _ROLLBACK, _VERIFY, _RELEASES, _RESTORE */
	const struct config *config;	/* the repository's config */
	const struct config_host *host;	/* the target host */
	struct store	*store;		/* push: the repository's store (not owned) */
	const char	*release;	/* push: release id, NULL: the latest; rollback: the
					   state to return to, NULL: the previous one */
	uint32_t	 flags;		/* PROTO_FLAG_* */
	unsigned	 lock_timeout;	/* seconds the receiver waits for its lock */
	int		 level;		/* zstd level for whole-file objects; 0: config's */
	/*
	 * Push progress (may be NULL): wire bytes sent so far, content bytes of
	 * the objects sent and planned; called after the plan and per DATA chunk.
	 */
	void		(*progress)(void *arg, uint64_t wire, uint64_t done, uint64_t total);
	void		*progress_arg;
	/*
	 * Push (may be NULL): where to keep the tree the receiver holds, as
	 * its manifest (its release, or the tree found on a site never
	 * applied; NULL when the session did not get that far), for a plan.
	 * What it held before is freed; the caller frees with manifest_free.
	 */
	struct manifest	**site;
	/*
	 * Restore (PROTO_OP_RESTORE): the request, sent after OPEN. For each
	 * RESTORED that carries content, restore_begin returns an fd to write
	 * it to (-1: stop, logged); restore_end then says whether the content
	 * arrived whole and matched its SHA-256 (ok 1) or not (ok 0: discard
	 * it), and is called alone (ok 1) for a file put back in place. Both
	 * return 0 or a DS_ERR_* (logged).
	 */
	const struct proto_restore *restore;
	int		(*restore_begin)(void *arg, const struct proto_restored *rd);
	int		(*restore_end)(void *arg, const struct proto_restored *rd, int ok);
	void		*restore_arg;
};

/*
 * Runs one session over x as the initiator. Returns 0 when the receiver
 * reported success, else a DS_ERR_* (the peer's status when it sent one),
 * also left in report->status. REPORT must hold nothing (fresh, or
 * released): it is filled as far as the session got either way, op and
 * flags from OPT, and must be released with report_release. Errors are
 * logged once, prefixed by the host name for remote ones.
 */
int	sender_run(struct xport *x, const struct sender_options *opt, struct report *report);

#endif
