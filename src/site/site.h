/*
 * Opening a site: the one call above target, staging and journal that every
 * session uses, so that a site is never seen half-applied.
 */
#ifndef DS_SITE_H
#define DS_SITE_H

struct target;

/*
 * Opens the target (target_open: directories, layout checks, the lock) and
 * recovers what an interrupted apply left: a journal is rolled forward, files
 * prepared before the commit point are discarded (recover_run, recover.h).
 * On return the tree is exactly one release. Errors are those of
 * target_open and recover_run, logged. Caller frees with target_close.
 */
int	site_open(const char *target_dir, const char *state_dir, unsigned lock_timeout,
	    struct target **out);

/*
 * Opens a site read-only (target_open_readonly): nothing is made, locked
 * exclusively or recovered. What an interrupted apply left is only
 * described: *pending (NULL when nothing; caller frees) says what the next
 * push or pull will complete (site_pending). Errors as target_open_readonly.
 */
int	site_open_readonly(const char *target_dir, const char *state_dir, unsigned lock_timeout,
	    struct target **out, char **pending);

/*
 * One line saying what the site still owes: "apply of 2 (from 1) was
 * interrupted; the next push or pull completes it, then: restart backend"
 * for a journal, "owed by the apply of 2: run_once on a.sql; restart
 * backend" for STATE/pending; NULL when nothing (caller frees). A damaged
 * journal or pending file is described as such. Reads only.
 */
char	*site_pending(struct target *t);

#endif
