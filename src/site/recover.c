/*
 * Rolling a journal forward (recover.h). Recovery is roll-forward: once the
 * journal is in place (the commit point) every step it lists is idempotent
 * and is redone by the next site_open; before that point only STATE/prep/
 * and backup links exist, and prep/ is discarded.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fault.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/path.h"
#include "base/xmalloc.h"
#include "repo/manifest.h"
#include "site/backup.h"
#include "site/commit.h"
#include "site/journal.h"
#include "site/lineage.h"
#include "site/owed.h"
#include "site/owner.h"
#include "site/perm.h"
#include "site/recover.h"
#include "site/stage.h"
#include "site/target.h"

#define JOURNAL_READ_MAX	(1024u * 1024 * 1024)

/* U: unlinks a file or symlink; skipped when absent or now a directory. */
static int
perform_unlink(int pfd, const char *base)
{
	struct stat st;

	fault_point("perform-unlink-before");
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == -1 || S_ISDIR(st.st_mode)) {
		fault_point("perform-unlink-skip");
		return 0;
	}
	if (unlinkat(pfd, base, 0) == -1 && errno != ENOENT)
		return -1;
	fault_point("perform-unlink-after");
	return 0;
}

/* R: removes a directory and what it still holds; skipped when absent or not one. */
static int
perform_rmdir(int pfd, const char *base)
{
	struct stat st;

	fault_point("perform-rmdir-before");
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == -1 || !S_ISDIR(st.st_mode))
		return 0;
	if (unlinkat(pfd, base, AT_REMOVEDIR) == -1) {
		if (errno == ENOENT)
			return 0;
		if (errno != ENOTEMPTY && errno != EEXIST)
			return -1;
		fault_point("perform-rmdir-tree");
		if (path_remove_tree_at(pfd, base) == -1)
			return -1;
	}
	fault_point("perform-rmdir-after");
	return 0;
}

/* D: makes a directory (or keeps the one there), then mode and owner. */
static int
perform_mkdir(int pfd, const char *base, const struct journal_record *rec)
{
	struct stat st;

	fault_point("perform-mkdir-before");
	if (mkdirat(pfd, base, 0700) == -1) {
		if (errno != EEXIST || fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISDIR(st.st_mode))
			return -1;
	}
	fault_point("perform-mkdir-after");
	if (fchmodat(pfd, base, rec->mode, 0) == -1)
		return -1;
	fault_point("perform-mkdir-chmod");
	owner_set_at(pfd, base, rec->uid, rec->gid);
	fault_point("perform-mkdir-chown");
	return 0;
}

/* P: renames prep/N into place (unless a crashed run did), then mode and owner. */
static int
perform_place(int prepfd, int pfd, const char *base, const struct journal_record *rec)
{
	struct stat st;
	char name[32];

	snprintf(name, sizeof(name), "%zu", rec->prep);
	fault_point("perform-rename-before");
	if (renameat(prepfd, name, pfd, base) == -1) {
		if (errno != ENOENT || fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == -1)
			return -1;
		/* Already renamed by the run that crashed. */
		fault_point("perform-rename-replayed");
	}
	fault_point("perform-rename-after");
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return -1;
	if (!S_ISLNK(st.st_mode) && (st.st_mode & 07777) != rec->mode &&
	    fchmodat(pfd, base, rec->mode, 0) == -1)
		return -1;
	fault_point("perform-rename-chmod");
	owner_set_at(pfd, base, rec->uid, rec->gid);
	fault_point("perform-rename-chown");
	return 0;
}

/* M: sets mode (not of a symlink) and owner. */
static int
perform_mode(int pfd, const char *base, const struct journal_record *rec)
{
	struct stat st;

	fault_point("perform-chmod-before");
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return -1;
	if (!S_ISLNK(st.st_mode) && fchmodat(pfd, base, rec->mode, 0) == -1)
		return -1;
	fault_point("perform-chmod-after");
	owner_set_at(pfd, base, rec->uid, rec->gid);
	fault_point("perform-chmod-chown");
	return 0;
}

/* Logs a failed record, with who owns its directory when permission was denied. */
static void
record_failed(struct target *t, const struct journal_record *rec)
{
	int e = errno;
	char *dir;

	log_errno("%s/%s", target_dir(t), rec->path);
	if (e != EACCES && e != EPERM)
		return;
	dir = path_dirname(rec->path);
	perm_explain(target_root_fd(t), target_dir(t), dir);
	free(dir);
}

/* Performs one record on the tree; prepfd is STATE/prep (for P). */
static int
perform_record(struct target *t, int prepfd, const struct journal_record *rec)
{
	const char *base;
	int pfd, r = 0;

	if (!journal_kind_is_tree(rec->kind))
		return 0;	/* B: made before the commit point; F, O, S, L: after the tree */
	pfd = path_open_parent(target_root_fd(t), rec->path,
	    rec->kind == JOURNAL_MKDIR || rec->kind == JOURNAL_PLACE, &base);
	if (pfd == -1) {
		if ((errno == ENOENT || errno == ENOTDIR) &&
		    (rec->kind == JOURNAL_UNLINK || rec->kind == JOURNAL_RMDIR))
			return 0;
		record_failed(t, rec);
		return DS_ERR_SYSTEM;
	}
	switch (rec->kind) {
	case JOURNAL_UNLINK:
		r = perform_unlink(pfd, base);
		break;
	case JOURNAL_RMDIR:
		r = perform_rmdir(pfd, base);
		break;
	case JOURNAL_MKDIR:
		r = perform_mkdir(pfd, base, rec);
		break;
	case JOURNAL_PLACE:
		r = perform_place(prepfd, pfd, base, rec);
		break;
	case JOURNAL_MODE:
		r = perform_mode(pfd, base, rec);
		break;
	}
	if (r != 0)
		record_failed(t, rec);
	close(pfd);
	return r != 0 ? DS_ERR_SYSTEM : 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* fsyncs the directories the records touched (parents of every path, and new dirs). */
static int
fsync_dirs(struct target *t, const struct journal *j)
{
	char **dirs = xcalloc(j->count + 1, sizeof(*dirs));
	size_t n = 0;
	int r = 0, fd;

	for (size_t i = 0; i < j->count; i++) {
		if (!journal_kind_is_tree(j->records[i].kind) || j->records[i].kind == JOURNAL_MODE)
			continue;
		dirs[n++] = path_dirname(j->records[i].path);
	}
	if (n > 1)
		qsort(dirs, n, sizeof(*dirs), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && strcmp(dirs[i], dirs[i - 1]) == 0)
			continue;
		fault_point("fsync-dir");
		if (strcmp(dirs[i], ".") == 0 || strcmp(dirs[i], "") == 0)
			fd = dup(target_root_fd(t));
		else
			fd = path_openat(target_root_fd(t), dirs[i], O_RDONLY | O_DIRECTORY, 0);
		if (fd == -1) {
			if (errno == ENOENT || errno == ENOTDIR)
				continue;	/* removed, or replaced by a file */
			log_errno("%s/%s", target_dir(t), dirs[i]);
			r = DS_ERR_SYSTEM;
			continue;
		}
		if (fsync(fd) == -1) {
			log_errno("%s/%s: fsync", target_dir(t), dirs[i]);
			r = DS_ERR_SYSTEM;
		}
		close(fd);
	}
	if (r == 0 && fsync(target_root_fd(t)) == -1) {
		log_errno("%s: fsync", target_dir(t));
		r = DS_ERR_SYSTEM;
	}
	for (size_t i = 0; i < n; i++)
		free(dirs[i]);
	free(dirs);
	return r;
}

/* Work after the journal is gone: nothing here affects which release the tree is. */
static void
cleanup(struct target *t, const struct journal *j)
{
	char **prefer, **keep;
	size_t n = 0;

	fault_point("cleanup-prep");
	if (path_remove_tree_at(target_state_fd(t), "prep") == -1)
		log_warn("%s/prep: %s", target_state_dir(t), strerror(errno));
	fault_point("cleanup-staging");
	stage_clear(t);
	/*
	 * What a pruning keeps first: the rollback list, then the set just made
	 * (a rollback's, for a --release back); never the current state's own.
	 */
	prefer = lineage_of(j);
	while (prefer[n] != NULL)
		n++;
	keep = xcalloc(n + 2, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		keep[i] = prefer[i];
	if (j->from != NULL && strcmp(j->from, j->to) != 0)
		keep[n] = j->from;
	fault_point("cleanup-backups");
	backup_prune(t, j->keep, keep);
	free(keep);
	xfree_strv(prefer);
	fault_point("cleanup-done");
}

/* Removes current.* (idempotent: a replay may do it twice). */
static int
remove_current(struct target *t)
{
	static const char *const names[] = {
		"current.id", "current.manifest", "current.stat", "prep/manifest"
	};
	int sfd = target_state_fd(t);

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (unlinkat(sfd, names[i], 0) == -1 && errno != ENOENT) {
			log_errno("%s/%s", target_state_dir(t), names[i]);
			return DS_ERR_SYSTEM;
		}
	}
	return 0;
}

/* Reads and decodes STATE/journal into *j. */
static int
read_journal(struct target *t, const char *name, struct journal *j)
{
	char *data = NULL;
	size_t len = 0;
	int fd, r;

	memset(j, 0, sizeof(*j));
	if ((fd = openat(target_state_fd(t), "journal", O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1 ||
	    fileio_read_fd(fd, JOURNAL_READ_MAX, &data, &len) == -1) {
		log_errno("%s", name);
		if (fd != -1)
			close(fd);
		return DS_ERR_SYSTEM;
	}
	close(fd);
	r = journal_decode(data, len, name, j);
	free(data);
	return r;
}

/* Performs every record; a P whose prep/ is gone must already be in place. */
static int
perform_records(struct target *t, const struct journal *j)
{
	int prepfd, r = 0;

	prepfd = openat(target_state_fd(t), "prep",
	    O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (prepfd == -1 && errno != ENOENT) {
		log_errno("%s/prep", target_state_dir(t));
		return DS_ERR_SYSTEM;
	}
	fault_point("replay-start");
	for (size_t i = 0; i < j->count; i++) {
		if (j->records[i].kind == JOURNAL_PLACE && prepfd == -1) {
			/* prep/ is gone only when every rename was done; verify the target. */
			struct stat st;
			if (fstatat(target_root_fd(t), j->records[i].path, &st,
			    AT_SYMLINK_NOFOLLOW) == -1) {
				log_errno("%s/%s: journaled file is missing and prep/ is gone",
				    target_dir(t), j->records[i].path);
				r = DS_ERR_CORRUPT;
				break;
			}
			continue;
		}
		if ((r = perform_record(t, prepfd, &j->records[i])) != 0)
			break;
		fault_point("replay-op-done");
	}
	if (prepfd != -1)
		close(prepfd);
	return r;
}

/* previous.id, then current.manifest and current.id (or no current.* at all). */
static int
write_state(struct target *t, const struct journal *j)
{
	char *line;
	int sfd = target_state_fd(t), r;

	/* Re-applying the current release (repairing drift) keeps the rollback target. */
	if (j->from != NULL && strcmp(j->from, j->to) != 0) {
		line = xasprintf("%s\n", j->from);
		r = target_write_state(t, "previous.id", line, strlen(line));
		free(line);
		if (r != 0)
			return r;
	}
	fault_point("replay-previous-written");
	if ((r = lineage_write(t, j)) != 0)
		return r;
	fault_point("replay-lineage-written");
	if (strcmp(j->to, COMMIT_ID_EMPTY) == 0) {
		/* Back to an empty target distsync never applied to: no current state. */
		if ((r = remove_current(t)) != 0)
			return r;
		fault_point("replay-manifest-renamed");
	} else {
		if (renameat(sfd, "prep/manifest", sfd, "current.manifest") == -1 &&
		    errno != ENOENT) {
			log_errno("%s/current.manifest", target_state_dir(t));
			return DS_ERR_SYSTEM;
		}
		fault_point("replay-manifest-renamed");
		line = xasprintf("%s\n", j->to);
		r = target_write_state(t, "current.id", line, strlen(line));
		free(line);
		if (r != 0)
			return r;
	}
	fault_point("replay-id-written");
	/* What the apply owes outlives the journal: the tree is done, its restarts are not. */
	if ((r = owed_write_pending(t, j)) != 0)
		return r;
	fault_point("replay-pending-written");
	return 0;
}

/* The manifest the tree now holds, for its stat cache; NULL for an empty target. */
static struct manifest *
tree_manifest(struct target *t, const struct journal *j)
{
	struct manifest *now = NULL;
	char *mfile;

	if (strcmp(j->to, COMMIT_ID_EMPTY) == 0)
		return NULL;
	/* A rollback that restored drift: the tree is prep/tree.manifest, not the state. */
	mfile = path_join(target_state_dir(t), RECOVER_TREE_MANIFEST);
	if (access(mfile, F_OK) == -1) {
		free(mfile);
		mfile = path_join(target_state_dir(t), "current.manifest");
	}
	if (manifest_load(mfile, &now) != 0)
		log_warn("%s: could not read %s for the stat cache", target_dir(t), mfile);
	free(mfile);
	return now;
}

int
recover_replay(struct target *t)
{
	char *name = path_join(target_state_dir(t), "journal");
	char *cache = path_join(target_state_dir(t), "current.stat");
	struct manifest *now = NULL;
	struct journal j;
	int r;

	if ((r = read_journal(t, name, &j)) != 0)
		goto out;
	if ((r = perform_records(t, &j)) != 0)
		goto out;
	fault_point("replay-ops-done");
	if ((r = fsync_dirs(t, &j)) != 0)
		goto out;
	fault_point("replay-dirs-synced");
	if ((r = write_state(t, &j)) != 0)
		goto out;
	if ((r = target_sync_state(t)) != 0)
		goto out;
	fault_point("replay-state-synced");
	/*
	 * The tree now holds this manifest. Its stat cache is written after the
	 * cleanup below: unlinking staged names changes the ctime of the files
	 * they were linked to, which would void a cache written before.
	 */
	now = tree_manifest(t, &j);
	if (unlinkat(target_state_fd(t), "journal", 0) == -1) {
		log_errno("%s", name);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	fault_point("replay-journal-removed");
	if ((r = target_sync_state(t)) != 0)
		goto out;
	fault_point("replay-journal-synced");
	cleanup(t, &j);
	/* Stat it, do not reread it: verify and the next no-op then rehash nothing. */
	if (now != NULL && manifest_statcache_write(target_dir(t), now, cache) != 0)
		log_warn("%s: could not refresh the stat cache", target_dir(t));
	fault_point("replay-cache-written");
	r = 0;
out:
	manifest_free(now);
	journal_release(&j);
	free(name);
	free(cache);
	return r;
}

int
recover_peek(struct target *t, struct journal *j)
{
	struct stat st;
	char *name;
	int r;

	memset(j, 0, sizeof(*j));
	if (target_state_fd(t) == -1 ||
	    fstatat(target_state_fd(t), "journal", &st, AT_SYMLINK_NOFOLLOW) == -1)
		return 0;
	name = path_join(target_state_dir(t), "journal");
	r = read_journal(t, name, j);
	free(name);
	return r;
}

int
recover_run(struct target *t)
{
	struct stat st;
	int sfd = target_state_fd(t), r;

	if (fstatat(sfd, "journal", &st, AT_SYMLINK_NOFOLLOW) == 0) {
		log_warn("%s: completing an apply that was interrupted; what it owes (run_once, "
		    "restarts) runs when this session finishes", target_dir(t));
		fault_point("recover-journal-found");
		if ((r = recover_replay(t)) != 0)
			return r;
		return 0;
	}
	if (errno != ENOENT) {
		log_errno("%s/journal", target_state_dir(t));
		return DS_ERR_SYSTEM;
	}
	/* No journal: anything prepared belongs to an apply that never committed. */
	unlinkat(sfd, "journal.tmp", 0);
	if (fstatat(sfd, "prep", &st, AT_SYMLINK_NOFOLLOW) == 0) {
		log_info("%s: discarding files prepared by an apply that did not commit",
		    target_dir(t));
		fault_point("recover-discard-prep");
		if (path_remove_tree_at(sfd, "prep") == -1) {
			log_errno("%s/prep", target_state_dir(t));
			return DS_ERR_SYSTEM;
		}
	}
	return 0;
}
