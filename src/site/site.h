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

#endif
