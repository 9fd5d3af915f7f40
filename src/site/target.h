/*
 * An opened site: the target directory (exactly the release tree) and its
 * state directory (same filesystem, never inside the target), with the lock
 * held for as long as the target is open.
 *
 *	STATE/lock			flock(2); holds "pid start-time"
 *	STATE/current.manifest		release applied last (absent: never applied)
 *	STATE/current.id		its release id, or "(pre-distsync)" after a rollback
 *					to the files a first apply found (commit.h)
 *	STATE/current.stat		stat cache of the tree written at apply
 *	STATE/previous.id		state a rollback returns to: a release, or after a
 *					first apply "(pre-distsync)" or "(none)" (empty)
 *	STATE/journal			present only while an apply is committed but
 *					unfinished (journal.h, recover.h)
 *	STATE/prep/			files prepared for the apply in progress (recover.h)
 *	STATE/staging/HEX[.part]	objects received; HEX.ENC.part: delta streams (stage.h)
 *	STATE/backup/ID/		manifest + objects/HEX of release ID's replaced files;
 *					found.manifest: the drifted tree ID was replaced in
 *					(backup.h)
 *	STATE/history.log		one line per apply (history.h)
 */
#ifndef DS_TARGET_H
#define DS_TARGET_H

#include <stddef.h>

struct manifest;
struct target;

/*
 * The default state directory of TARGET_DIR: ".NAME.distsync" next to it
 * (e.g. /opt/openmrs/distribution -> /opt/openmrs/.distribution.distsync).
 * Caller frees.
 */
char	*target_default_state_dir(const char *target_dir);

/*
 * Opens a site. Creates TARGET_DIR and STATE_DIR (NULL: the default) when
 * missing; refuses with DS_ERR_PRECONDITION (logged) a state directory on
 * another filesystem than the target, one inside the target (or the
 * reverse), or a default state directory (STATE_DIR NULL or naming it) that
 * is a symlink or not a directory: that name sits beside the target, where
 * a release applied to an enclosing tree can plant one. Takes the lock: a second opener waits up to LOCK_TIMEOUT seconds,
 * then logs "TARGET: locked by pid N since T" and returns DS_ERR_LOCKED.
 * Does not look at a journal an interrupted apply left: open a site with
 * site_open (site.h), which recovers it. Caller frees with target_close.
 */
int	target_open(const char *target_dir, const char *state_dir, unsigned lock_timeout,
	    struct target **out);

/*
 * Opens a site to look at it, changing nothing (status, verify, plan,
 * releases): no directory is made, no lock file created, no recovery done.
 * A target or state directory that does not exist is a site with nothing
 * applied (target_exists tells; current is none, verify finds no drift). A
 * lock file that exists is taken shared: an apply in progress is waited for
 * as target_open waits (DS_ERR_LOCKED), other readers are not. Layout
 * errors as target_open's. target_write_state refuses. Caller frees with
 * target_close.
 */
int	target_open_readonly(const char *target_dir, const char *state_dir,
	    unsigned lock_timeout, struct target **out);

/* 1 when the target directory exists (always after target_open), else 0. */
int	target_exists(const struct target *t);

/*
 * The check target_open makes before it creates anything: 0 when STATE_DIR
 * may serve as TARGET_DIR's state directory, DS_ERR_PRECONDITION (logged)
 * when it is TARGET_DIR's default and a symlink or not a directory. For a
 * caller that writes into the state directory before target_open (pull's
 * pull.lock).
 */
int	target_state_dir_check(const char *target_dir, const char *state_dir);

/* Releases the lock and frees t; NULL is fine. */
void	target_close(struct target *t);

/* Absolute paths of the target and state directories (owned by t). */
const char *target_dir(const struct target *t);
const char *target_state_dir(const struct target *t);

/*
 * Directory fds of the target and state directories (owned by t; do not
 * close); -1 after target_open_readonly of one that does not exist.
 */
int	target_root_fd(const struct target *t);
int	target_state_fd(const struct target *t);

/*
 * Reads the one-line state file NAME (e.g. "current.id", "previous.id") of the
 * state directory into *out (caller frees; NULL when the file is absent).
 */
int	target_read_id(struct target *t, const char *name, char **out);

/*
 * Replaces the state file NAME with DATA atomically (fileio_write_atomic_at).
 * Returns 0, DS_ERR_NOSPACE or DS_ERR_SYSTEM (logged). The rename is
 * durable only after target_sync_state.
 */
int	target_write_state(struct target *t, const char *name, const void *data, size_t len);

/* fsyncs the state directory: renames and removals in it survive a crash. */
int	target_sync_state(struct target *t);

/*
 * The release applied last: *release_id (caller frees; NULL if never applied)
 * and *m (caller frees with manifest_free; an empty manifest if never
 * applied). Either out pointer may be NULL.
 */
int	target_current(struct target *t, char **release_id, struct manifest **m);

/*
 * Rescans the tree, rehashing only what the stat cache recorded at apply
 * does not vouch for, and compares it with current.manifest. *scan (may be
 * NULL; caller frees with manifest_free) is the tree as it is; *drifted
 * (may be NULL; NULL-terminated, free with xfree_strv) lists, in path
 * order, every path whose type, mode or content differs, or that is extra
 * or missing. Drift is a difference from what distsync applied last: on a
 * site it never applied (no current.id) the list is empty, and *scan is the
 * tree as found. Returns 0 whether or not anything drifted.
 */
int	target_verify(struct target *t, struct manifest **scan, char ***drifted);

#endif
