/* Backup sets of replaced states (backup.h). */
#include "autoconf.h"

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fault.h"
#include "base/fileio.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/path.h"
#include "base/xmalloc.h"
#include "config/config.h"
#include "repo/manifest.h"
#include "site/backup.h"
#include "site/owner.h"
#include "site/target.h"

#define FOUND_MANIFEST	"found.manifest"	/* backup/ID/: the drifted tree ID was replaced in */

int
backup_begin(struct target *t, const char *id, const struct manifest *m, int replace,
    const struct manifest *found, int *objfd)
{
	char *objdir = xasprintf("backup/%s/objects", id);
	char *file = xasprintf("%s/backup/%s", target_state_dir(t), id);
	int sfd = target_state_fd(t), r;

	*objfd = -1;
	if (path_mkdirs(file) == -1 || (mkdirat(sfd, objdir, 0755) == -1 && errno != EEXIST) ||
	    (*objfd = openat(sfd, objdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		log_errno("%s/%s", target_state_dir(t), objdir);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	/* Touch the set: pruning keeps the newest. */
	utimensat(sfd, file + strlen(target_state_dir(t)) + 1, NULL, 0);
	free(file);
	file = xasprintf("%s/backup/%s/manifest", target_state_dir(t), id);
	if ((replace || access(file, F_OK) == -1) && (r = manifest_save(m, file)) != 0)
		goto out;
	free(file);
	file = xasprintf("%s/backup/%s/" FOUND_MANIFEST, target_state_dir(t), id);
	if (found != NULL) {
		if ((r = manifest_save(found, file)) != 0)
			goto out;
	} else if (unlink(file) == -1 && errno != ENOENT) {
		log_errno("%s", file);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	r = 0;
out:
	if (r != 0 && *objfd != -1) {
		close(*objfd);
		*objfd = -1;
	}
	free(objdir);
	free(file);
	return r;
}

int
backup_save(struct target *t, int objfd, const char *path, const uint8_t hash[HASH_LEN],
    int is_symlink)
{
	char hex[HASH_HEX_LEN + 1];
	const char *base;
	struct stat st;
	int pfd, in = -1, out = -1, r = DS_ERR_SYSTEM;
	char buf[PATH_MAX_LEN + 1];
	ssize_t n;

	hash_to_hex(hash, hex);
	if (fstatat(objfd, hex, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if ((pfd = path_open_parent(target_root_fd(t), path, 0, &base)) == -1) {
		log_errno("%s/%s", target_dir(t), path);
		return DS_ERR_SYSTEM;
	}
	fault_point("backup-one");
	if (is_symlink) {
		fault_point("backup-symlink");
		if ((n = readlinkat(pfd, base, buf, sizeof(buf) - 1)) == -1)
			goto fail;
		out = openat(objfd, "tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (out == -1 || fileio_write_all(out, buf, (size_t)n) == -1 || fsync(out) == -1 ||
		    renameat(objfd, "tmp", objfd, hex) == -1)
			goto fail;
	} else if (linkat(pfd, base, objfd, hex, 0) == -1) {
		if (errno == EEXIST)
			goto done;
		fault_point("backup-copy");
		if ((in = openat(pfd, base, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
			goto fail;
		out = openat(objfd, "tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (out == -1 || fileio_copy_fd(in, out) == -1 || fsync(out) == -1 ||
		    renameat(objfd, "tmp", objfd, hex) == -1)
			goto fail;
	}
done:
	r = 0;
	goto out;
fail:
	r = errno == ENOSPC ? DS_ERR_NOSPACE : DS_ERR_SYSTEM;
	log_errno("backup of %s/%s", target_dir(t), path);
out:
	if (in != -1)
		close(in);
	if (out != -1)
		close(out);
	close(pfd);
	return r;
}

int
backup_sync(struct target *t, const char *id, int objfd)
{
	if (fsync(objfd) == -1) {
		log_errno("backup/%s/objects: fsync", id);
		return DS_ERR_SYSTEM;
	}
	return 0;
}

int
backup_load(struct target *t, const char *id, struct manifest **m, struct manifest **found)
{
	char *file = xasprintf("%s/backup/%s/manifest", target_state_dir(t), id);
	int r;

	*m = NULL;
	*found = NULL;
	if (access(file, F_OK) == -1) {
		log_error("%s: no backup of release %s is kept (never replaced here, or "
		    "pruned by keep_backups); 'distsync releases HOST' lists those kept",
		    target_dir(t), id);
		r = DS_ERR_NOTFOUND;
		goto out;
	}
	if ((r = manifest_load(file, m)) != 0)
		goto out;
	free(file);
	file = xasprintf("%s/backup/%s/" FOUND_MANIFEST, target_state_dir(t), id);
	if (access(file, F_OK) == 0 && (r = manifest_load(file, found)) != 0)
		goto out;
	r = 0;
out:
	if (r != 0) {
		manifest_free(*m);
		*m = NULL;
	}
	free(file);
	return r;
}

char *
backup_find(struct target *t, const uint8_t hash[HASH_LEN])
{
	char hex[HASH_HEX_LEN + 1], *found = NULL;
	struct dirent *de;
	struct stat st;
	DIR *dir;
	int fd;

	hash_to_hex(hash, hex);
	fd = openat(target_state_fd(t), "backup", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1 || (dir = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return NULL;
	}
	while (found == NULL && (de = readdir(dir)) != NULL) {
		char *rel;
		if (de->d_name[0] == '.')
			continue;
		rel = xasprintf("backup/%s/objects/%s", de->d_name, hex);
		if (fstatat(target_state_fd(t), rel, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode))
			found = rel;
		else
			free(rel);
	}
	closedir(dir);
	return found;
}

struct backup_set {
	char	*name;
	int64_t	 mtime;	/* ns: several applies can fall in one second */
	size_t	 rank;	/* position in the preferred list, or SIZE_MAX */
};

static int
backup_set_cmp(const void *a, const void *b)
{
	const struct backup_set *x = a, *y = b;

	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	if (x->mtime != y->mtime)
		return x->mtime > y->mtime ? -1 : 1;
	return strcmp(x->name, y->name);
}

/*
 * The backup sets, preferred first (PREFER's order, may be NULL), then
 * newest first: *sets (caller frees with sets_free), *n. DIR is the open
 * backup directory (caller closes), NULL when there is none.
 */
static void
sets_list(struct target *t, char *const *prefer, DIR **dirp, struct backup_set **out,
    size_t *count)
{
	struct backup_set *sets = NULL;
	size_t n = 0, alloc = 0;
	struct dirent *de;
	struct stat st;
	DIR *dir;
	int fd;

	*dirp = NULL;
	*out = NULL;
	*count = 0;
	fd = openat(target_state_fd(t), "backup", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1 || (dir = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return;
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.' || fstatat(dirfd(dir), de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) == -1 || !S_ISDIR(st.st_mode))
			continue;
		sets = xgrow(sets, &alloc, n + 1, sizeof(*sets));
		sets[n].name = xstrdup(de->d_name);
		sets[n].mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		sets[n].rank = SIZE_MAX;
		for (size_t i = 0; prefer != NULL && prefer[i] != NULL; i++)
			if (strcmp(prefer[i], de->d_name) == 0) {
				sets[n].rank = i;
				break;
			}
		n++;
	}
	if (n > 1)
		qsort(sets, n, sizeof(*sets), backup_set_cmp);
	*dirp = dir;
	*out = sets;
	*count = n;
}

static void
sets_free(struct backup_set *sets, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(sets[i].name);
	free(sets);
}

void
backup_prune(struct target *t, unsigned keep, char *const *prefer)
{
	struct backup_set *sets;
	size_t n;
	DIR *dir;

	if (keep == 0)
		keep = CONFIG_KEEP_BACKUPS_DEFAULT;
	sets_list(t, prefer, &dir, &sets, &n);
	if (dir == NULL)
		return;
	fault_point("prune-start");
	for (size_t i = 0; i < n; i++) {
		/* The first preferred set (the one just made) is never pruned. */
		if (i >= keep && sets[i].rank != 0) {
			fault_point("prune-backup");
			if (path_remove_tree_at(dirfd(dir), sets[i].name) == -1)
				log_warn("%s/backup/%s: %s", target_state_dir(t), sets[i].name,
				    strerror(errno));
		}
	}
	sets_free(sets, n);
	closedir(dir);
}

/* The first file under directory PATH in M ("PATH/..."), or NULL; caller frees. */
static char *
file_under(const struct manifest *m, const char *path)
{
	size_t n = strlen(path);

	for (size_t i = 0; i < m->count; i++) {
		const struct manifest_entry *e = &m->entries[i];

		if (e->type == MANIFEST_FILE && strncmp(e->path, path, n) == 0 && e->path[n] == '/')
			return xstrdup(e->path);
	}
	return NULL;
}

/*
 * PATH in set SET: its entry in found.manifest, else in the manifest, when
 * a regular file whose content objects/ keeps. 1 and *k filled, 0 when the
 * set does not keep it, or an error (logged). When PATH was a directory
 * there, *UNDER (if still NULL) names the first file under it.
 */
static int
kept_in(struct target *t, const char *set, const char *path, struct backup_kept *k,
    char **under)
{
	struct manifest *m = NULL, *found = NULL;
	const struct manifest_entry *e = NULL;
	char hex[HASH_HEX_LEN + 1], *rel = NULL;
	struct stat st;
	int r;

	if ((r = backup_load(t, set, &m, &found)) != 0)
		return r;
	if (found != NULL)
		e = manifest_find(found, path);
	if (e == NULL)
		e = manifest_find(m, path);
	r = 0;
	if (e != NULL && e->type == MANIFEST_DIR && *under == NULL)
		*under = file_under(found != NULL && manifest_find(found, path) != NULL ? found : m,
		    path);
	if (e == NULL || e->type != MANIFEST_FILE)
		goto out;
	hash_to_hex(e->hash, hex);
	rel = xasprintf("backup/%s/objects/%s", set, hex);
	if (fstatat(target_state_fd(t), rel, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
	    !S_ISREG(st.st_mode) || (uint64_t)st.st_size != e->size)
		goto out;
	k->set = xstrdup(set);
	k->mode = e->mode & 07777;
	k->size = e->size;
	memcpy(k->hash, e->hash, HASH_LEN);
	r = 1;
out:
	free(rel);
	manifest_free(m);
	manifest_free(found);
	return r;
}

int
backup_kept_find(struct target *t, const char *set, const char *path, struct backup_kept *k)
{
	struct backup_set *sets = NULL;
	char *under = NULL;
	size_t n = 0;
	DIR *dir = NULL;
	int r;

	memset(k, 0, sizeof(*k));
	if (set != NULL) {
		/* A set that is gone (logged) keeps nothing either. */
		if ((r = kept_in(t, set, path, k, &under)) < 0)
			return r == DS_ERR_NOTFOUND ? DS_ERR_NOTKEPT : r;
		if (r == 0 && under != NULL)
			log_error("%s: %s: it was a directory in backup set %s, which keeps the "
			    "files that were under it: name those (the first: %s)", target_dir(t),
			    path, set, under);
		else if (r == 0)
			log_error("%s: %s: backup set %s keeps no copy of it (it was not replaced "
			    "when that state was, or it was not a regular file)", target_dir(t),
			    path, set);
		free(under);
		return r == 0 ? DS_ERR_NOTKEPT : 0;
	}
	sets_list(t, NULL, &dir, &sets, &n);
	r = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		/* A set that cannot be read is not the one that keeps it: go on. */
		if ((r = kept_in(t, sets[i].name, path, k, &under)) < 0)
			r = 0;
	}
	if (r == 0 && under != NULL) {
		log_error("%s: %s: it was a directory in a backup set, which keeps the files "
		    "that were under it: name those (the first: %s)", target_dir(t), path, under);
		r = DS_ERR_NOTKEPT;
	} else if (r == 0) {
		log_error("%s: %s: no backup set keeps a copy of it (%zu set%s kept; a file is "
		    "kept only when an apply replaced or removed it)", target_dir(t), path, n,
		    n == 1 ? "" : "s");
		r = DS_ERR_NOTKEPT;
	} else
		r = 0;
	free(under);
	sets_free(sets, n);
	if (dir != NULL)
		closedir(dir);
	return r;
}

int
backup_kept_open(struct target *t, const struct backup_kept *k)
{
	char hex[HASH_HEX_LEN + 1], *rel;
	int fd;

	hash_to_hex(k->hash, hex);
	rel = xasprintf("backup/%s/objects/%s", k->set, hex);
	if ((fd = openat(target_state_fd(t), rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		log_errno("%s/%s", target_state_dir(t), rel);
	free(rel);
	return fd;
}

int
backup_put_prepare(struct target *t, const struct backup_kept *k, const char *path, long uid,
    long gid, struct backup_put *put)
{
	const char *base;
	struct stat st;
	int in = -1, out = -1, r = DS_ERR_SYSTEM;

	memset(put, 0, sizeof(*put));
	put->pfd = -1;
	if ((put->pfd = path_open_parent(target_root_fd(t), path, 1, &base)) == -1) {
		log_errno("%s/%s", target_dir(t), path);
		return DS_ERR_SYSTEM;
	}
	put->base = xstrdup(base);
	if (fstatat(put->pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
		log_error("%s/%s: is a directory now; not replaced", target_dir(t), path);
		r = DS_ERR_INVALID;
		goto out;
	}
	put->tmp = xasprintf(".%s.distsync-restore", base);
	(void)unlinkat(put->pfd, put->tmp, 0);
	if ((in = backup_kept_open(t, k)) == -1)
		goto out;
	out = openat(put->pfd, put->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (out != -1)
		owner_set_at(put->pfd, put->tmp, uid, gid);
	if (out == -1 || fileio_copy_fd(in, out) == -1 || fchmod(out, (mode_t)k->mode) == -1 ||
	    fsync(out) == -1) {
		r = errno == ENOSPC ? DS_ERR_NOSPACE : DS_ERR_SYSTEM;
		log_errno("%s/%s: copying back the copy of backup set %s", target_dir(t), path,
		    k->set);
		if (out == -1) {
			free(put->tmp);	/* not ours to remove */
			put->tmp = NULL;
		}
		goto out;
	}
	r = 0;
out:
	if (in != -1)
		close(in);
	if (out != -1)
		close(out);
	if (r != 0)
		backup_put_abort(put);
	return r;
}

int
backup_put_commit(struct target *t, struct backup_put *put, const char *path)
{
	int r = 0;

	if (renameat(put->pfd, put->tmp, put->pfd, put->base) == -1 || fsync(put->pfd) == -1) {
		log_errno("%s/%s: putting it back", target_dir(t), path);
		r = DS_ERR_SYSTEM;
	} else {
		free(put->tmp);
		put->tmp = NULL;
	}
	backup_put_abort(put);
	return r;
}

void
backup_put_abort(struct backup_put *put)
{
	if (put->pfd != -1 && put->tmp != NULL)
		(void)unlinkat(put->pfd, put->tmp, 0);
	if (put->pfd != -1)
		close(put->pfd);
	free(put->tmp);
	free(put->base);
	memset(put, 0, sizeof(*put));
	put->pfd = -1;
}

void
backup_kept_release(struct backup_kept *k)
{
	free(k->set);
	memset(k, 0, sizeof(*k));
}
