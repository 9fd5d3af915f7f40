/*
 * Backup sets: STATE/backup/ID/ holds what an apply replaced when the site
 * was in state ID (a release, or a COMMIT_ID_* of commit.h), so a rollback
 * can return to ID exactly:
 *
 *	backup/ID/manifest		ID's manifest
 *	backup/ID/found.manifest	the drifted tree ID was replaced in (absent: no drift)
 *	backup/ID/objects/HEX		content of each replaced file or symlink target
 *
 * An apply fills the set before its commit point (backup_begin, backup_save,
 * backup_sync); its rollback reads it (backup_load, backup_find); each
 * finished apply prunes the oldest sets (backup_prune). `distsync restore`
 * gets files back (backup_kept_find, backup_kept_open, backup_put_prepare,
 * backup_put_commit).
 */
#ifndef DS_BACKUP_H
#define DS_BACKUP_H

#include <stdint.h>

#include "base/hash.h"

struct manifest;
struct target;

/*
 * Opens backup/ID/ for an apply that replaces state ID, creating it, and
 * marks it the newest set. Writes M as its manifest when REPLACE or when
 * the set has none yet; writes FOUND as found.manifest, or removes an older
 * one when FOUND is NULL. *objfd is backup/ID/objects (caller closes).
 * Returns 0, or DS_ERR_SYSTEM / DS_ERR_NOSPACE (logged).
 */
int	backup_begin(struct target *t, const char *id, const struct manifest *m, int replace,
	    const struct manifest *found, int *objfd);

/*
 * Saves the content PATH holds in the tree (HASH; a symlink when IS_SYMLINK)
 * as OBJFD/HEX: a hard link when possible, else a copy; nothing when HEX is
 * there already. Returns 0, or DS_ERR_SYSTEM / DS_ERR_NOSPACE (logged).
 */
int	backup_save(struct target *t, int objfd, const char *path, const uint8_t hash[HASH_LEN],
	    int is_symlink);

/* fsyncs backup/ID/objects (OBJFD from backup_begin); 0 or DS_ERR_SYSTEM (logged). */
int	backup_sync(struct target *t, const char *id, int objfd);

/*
 * Reads the set of state ID: *m its manifest, *found its found.manifest or
 * NULL (caller frees both with manifest_free). DS_ERR_NOTFOUND (logged)
 * when the set is gone, else manifest_load's errors.
 */
int	backup_load(struct target *t, const char *id, struct manifest **m,
	    struct manifest **found);

/*
 * Content HASH in any backup set: "backup/ID/objects/HEX" relative to the
 * state directory (caller frees), or NULL.
 */
char	*backup_find(struct target *t, const uint8_t hash[HASH_LEN]);

/*
 * Removes the backup sets beyond the first KEEP (0: the default): those
 * named in PREFER (NULL-terminated, may be NULL) first, in its order, then
 * the others newest first. PREFER[0] (the next rollback's) is never removed.
 * Failures are logged as warnings.
 */
void	backup_prune(struct target *t, unsigned keep, char *const *prefer);

/* One file as a backup set keeps it (backup_kept_find). */
struct backup_kept {
	char		*set;		/* the set's id (caller frees with backup_kept_release) */
	unsigned	 mode;		/* permission bits it had */
	uint64_t	 size;
	uint8_t		 hash[HASH_LEN];
};

/*
 * Finds the content PATH (path_check'd by the caller) had when set SET was
 * replaced: the tree found there (found.manifest: overwritten drift) before
 * the set's manifest, and only when its content is kept (objects/HEX). SET
 * NULL: the newest set that keeps PATH. Fills *k. Returns 0,
 * DS_ERR_NOTKEPT (logged, naming the path and the sets looked at) when no
 * set keeps it as a regular file or SET does not exist, or manifest_load's
 * errors.
 */
int	backup_kept_find(struct target *t, const char *set, const char *path,
	    struct backup_kept *k);

/* Opens K's content read-only, never through a symlink: an fd, or -1 (logged). */
int	backup_kept_open(struct target *t, const struct backup_kept *k);

/* A file being put back: its copy staged beside PATH, not yet renamed over it. */
struct backup_put {
	int	 pfd;		/* PATH's directory; -1 when none */
	char	*base;		/* PATH's last component */
	char	*tmp;		/* the staged copy in pfd; NULL when none */
};

/*
 * Puts K's content back at PATH in the tree atomically, in two steps so that
 * several paths go back all or none: backup_put_prepare writes a temp file in
 * PATH's directory (no symlink followed on the way) with K's mode, owner
 * UID:GID (-1: left as is; owner.h), and fsyncs it; refuses a directory at
 * PATH. backup_put_commit renames it over PATH and fsyncs the directory;
 * backup_put_abort removes it. Both prepare and commit return 0, or
 * DS_ERR_SYSTEM / DS_ERR_NOSPACE / DS_ERR_INVALID (logged); after a failed
 * prepare, PUT holds nothing and PATH is as it was.
 */
int	backup_put_prepare(struct target *t, const struct backup_kept *k, const char *path,
	    long uid, long gid, struct backup_put *put);
int	backup_put_commit(struct target *t, struct backup_put *put, const char *path);
void	backup_put_abort(struct backup_put *put);

/* Frees what K holds; K may be zeroed. */
void	backup_kept_release(struct backup_kept *k);

#endif
