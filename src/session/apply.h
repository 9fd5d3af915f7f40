/*
 * The end every session comes to: a release whose objects are staged and
 * verified is checked against the site's trust, applied with the atomic
 * engine, and finished (run_once, restarts, history), and what happened is
 * put in a RESULT. The receiver (SSH push and pull) and the mirror pull
 * (HTTP) call it alike, so the outcome cannot depend on the transport.
 */
#ifndef DS_APPLY_H
#define DS_APPLY_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct config_host;
struct manifest;
struct proto_result;
struct target;

/* A site, as a session opened it, and what it trusts. */
struct apply_site {
	struct target		*t;
	/* The site's own configuration: its commands; NULL: none run. */
	const struct config	*trusted;
	/* Its host entry: owner, group, keep_backups; NULL: the defaults. */
	const struct config_host *trusted_host;
	const struct config_host *host;		/* the host served (names in messages) */
	char *const		*pins;		/* root key ids releases must chain to; NULL: none */
	const char		*who;		/* the peer, for messages */
	int			 preview;	/* a dry run fills RESULT's site plan */
};

/* What an apply found on the site, for a session's summary. */
struct apply_outcome {
	int		 first;		/* 1: distsync had never applied to the site */
	uint64_t	 identical;	/* paths a first apply kept as it found them */
};

/*
 * Applies RELEASE (manifest TO) with FLAGS (PROTO_FLAG_*, the site's own
 * included): the signature bundle SIG (SIG_LEN bytes, may be empty) is
 * checked when the site pins a root and recorded once applied (not on a dry
 * run); then commit_apply and finish_apply. Fills RES's from, to, counts,
 * drift, services, health and flags (the caller adds what it received),
 * and OUT (may be NULL). A first apply reports no drift: what it replaced
 * was found there, not changed since distsync applied. A dry run of a site
 * with preview set adds the site plan (apply_preview). Returns 0 or the
 * DS_ERR_* that stopped it (logged).
 */
int	apply_release(const struct apply_site *s, const char *release, const struct manifest *to,
	    const void *sig, size_t sig_len, uint32_t flags, struct proto_result *res,
	    struct apply_outcome *out);

/*
 * The site plan of a change (a dry run, distsync plan): into RES (siteplan
 * set; restarts, services and would_run replaced) the services CONFIG (the
 * site's own; NULL: nothing runs) would restart for the N CHANGED paths,
 * each with the path that matched, in restart order, and the run_once runs
 * the change from FROM (NULL: none applied) to TO owes, as STATE_DIR's done
 * file records them. Changes nothing. Returns 0, DS_ERR_CONFIG (an after:
 * cycle) or DS_ERR_SYSTEM (the done file unreadable), logged.
 */
int	apply_preview(const struct config *config, const char *state_dir,
	    const struct manifest *from, const struct manifest *to, char *const *changed,
	    size_t n, struct proto_result *res);

/*
 * Rolls back (commit_rollback, finish_rollback) to RELEASE, a backup the site
 * keeps, or with NULL to the state before the last apply.
 */
int	apply_rollback(const struct apply_site *s, uint32_t flags, const char *release,
	    struct proto_result *res);

#endif
