#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/path.h"
#include "base/xmalloc.h"
#include "repo/manifest.h"
#include "site/target.h"

struct target {
	char	*dir;
	char	*state;
	int	 root_fd;	/* -1: a read-only open of a target that does not exist */
	int	 state_fd;	/* -1: a read-only open of a site never applied to */
	int	 lock_fd;
	int	 readonly;	/* target_open_readonly: nothing is written */
};

char *
target_default_state_dir(const char *target_dir)
{
	char *abs = path_absolute(NULL, target_dir);
	char *parent = path_dirname(abs);
	char *base = path_basename(abs);
	char *name = xasprintf(".%s.distsync", base);
	char *out = path_join(parent, name);

	free(abs);
	free(parent);
	free(base);
	free(name);
	return out;
}

/* Returns 1 if INNER is OUTER or below it (both absolute and resolved). */
static int
path_within(const char *outer, const char *inner)
{
	size_t n = strlen(outer);

	if (strcmp(outer, "/") == 0)
		return 1;
	return strncmp(outer, inner, n) == 0 && (inner[n] == '\0' || inner[n] == '/');
}

static int
check_layout(const char *dir, const char *state)
{
	char *rdir = realpath(dir, NULL), *rstate = realpath(state, NULL);
	int r = DS_ERR_PRECONDITION, same;

	if (rdir == NULL || rstate == NULL) {
		log_errno("%s", rdir == NULL ? dir : state);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	if (path_within(rdir, rstate) || path_within(rstate, rdir)) {
		log_error("%s: the state directory %s must not be inside the target "
		    "(nor the target inside it)", dir, state);
		goto out;
	}
	if ((same = path_same_fs(rdir, rstate)) != 1) {
		if (same == 0)
			log_error("%s: the state directory %s is on another filesystem; it must be on "
			    "the target's filesystem so that files move into place atomically",
			    dir, state);
		else
			log_errno("%s: cannot stat", state);
		r = same == 0 ? DS_ERR_PRECONDITION : DS_ERR_SYSTEM;
		goto out;
	}
	r = 0;
out:
	free(rdir);
	free(rstate);
	return r;
}

/* Reads "pid N since T" from the lock file for the message a waiter prints. */
static void
lock_holder(int fd, char *buf, size_t size)
{
	ssize_t n = pread(fd, buf, size - 1, 0);

	if (n <= 0) {
		snprintf(buf, size, "an unknown process");
		return;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

/*
 * Waits up to TIMEOUT seconds for flock OP (LOCK_EX or LOCK_SH) on the open
 * lock file; DS_ERR_LOCKED (logged, naming the holder) when it stays held.
 */
static int
lock_wait(struct target *t, int op, unsigned timeout)
{
	struct timespec start, now, pause = { 0, 100 * 1000 * 1000 };
	char line[128];

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (flock(t->lock_fd, op | LOCK_NB) == -1) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			log_errno("%s/lock", t->state);
			return DS_ERR_SYSTEM;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= (time_t)timeout) {
			lock_holder(t->lock_fd, line, sizeof(line));
			log_error("%s: locked by %s", t->dir, line);
			return DS_ERR_LOCKED;
		}
		nanosleep(&pause, NULL);
	}
	return 0;
}

static int
take_lock(struct target *t, unsigned timeout)
{
	char line[128], stamp[64];
	time_t wall;
	struct tm tm;
	int n, r;

	t->lock_fd = openat(t->state_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (t->lock_fd == -1) {
		log_errno("%s/lock", t->state);
		return DS_ERR_SYSTEM;
	}
	if ((r = lock_wait(t, LOCK_EX, timeout)) != 0)
		return r;
	wall = time(NULL);
	gmtime_r(&wall, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	n = snprintf(line, sizeof(line), "pid %ld since %s\n", (long)getpid(), stamp);
	if (ftruncate(t->lock_fd, 0) == -1 || pwrite(t->lock_fd, line, (size_t)n, 0) != n) {
		log_errno("%s/lock", t->state);
		return DS_ERR_SYSTEM;
	}
	return 0;
}

/* 1 when STATE (absolute) is TARGET_DIR's default state directory. */
static int
is_default_state(const char *target_dir, const char *state)
{
	char *deflt = target_default_state_dir(target_dir);
	int same = strcmp(deflt, state) == 0;

	free(deflt);
	return same;
}

int
target_state_dir_check(const char *target_dir, const char *state_dir)
{
	char *state = path_absolute(NULL, state_dir);
	struct stat st;
	int link;

	if (!is_default_state(target_dir, state) || lstat(state, &st) == -1 ||
	    S_ISDIR(st.st_mode)) {
		free(state);
		return 0;
	}
	link = S_ISLNK(st.st_mode);
	free(state);
	state = NULL;
	log_error("%s: the state directory is %s, not a directory: refused (a default "
	    "state directory is never followed elsewhere)", state_dir,
	    link ? "a symlink" : "another kind of file");
	return DS_ERR_PRECONDITION;
}

int
target_open(const char *dir, const char *state, unsigned lock_timeout, struct target **out)
{
	struct target *t = xcalloc(1, sizeof(*t));
	int r = DS_ERR_SYSTEM, nofollow;

	*out = NULL;
	t->root_fd = t->state_fd = t->lock_fd = -1;
	t->dir = path_absolute(NULL, dir);
	t->state = state != NULL ? path_absolute(NULL, state) : target_default_state_dir(dir);
	nofollow = is_default_state(t->dir, t->state) ? O_NOFOLLOW : 0;
	if ((r = target_state_dir_check(t->dir, t->state)) != 0)
		goto out;
	r = DS_ERR_SYSTEM;
	if (path_mkdirs(t->dir) == -1) {
		log_errno("%s: cannot create the target directory", t->dir);
		goto out;
	}
	if (path_mkdirs(t->state) == -1) {
		log_errno("%s: cannot create the state directory", t->state);
		goto out;
	}
	if ((r = check_layout(t->dir, t->state)) != 0)
		goto out;
	r = DS_ERR_SYSTEM;
	if ((t->root_fd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		log_errno("%s", t->dir);
		goto out;
	}
	if ((t->state_fd = open(t->state, O_RDONLY | O_DIRECTORY | O_CLOEXEC | nofollow)) == -1) {
		log_errno("%s", t->state);
		goto out;
	}
	if ((r = take_lock(t, lock_timeout)) != 0)
		goto out;
	if ((mkdirat(t->state_fd, "staging", 0755) == -1 && errno != EEXIST) ||
	    (mkdirat(t->state_fd, "backup", 0755) == -1 && errno != EEXIST)) {
		log_errno("%s: cannot create staging/ or backup/", t->state);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	*out = t;
	t = NULL;
	r = 0;
out:
	target_close(t);
	return r;
}

/* Opens DIR as a directory; -1 with errno ENOENT when it is not there (not logged). */
static int
open_dir_if_there(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd == -1 && errno != ENOENT)
		log_errno("%s", dir);
	return fd;
}

int
target_open_readonly(const char *dir, const char *state, unsigned lock_timeout,
    struct target **out)
{
	struct target *t = xcalloc(1, sizeof(*t));
	int r = DS_ERR_SYSTEM;

	*out = NULL;
	t->root_fd = t->state_fd = t->lock_fd = -1;
	t->readonly = 1;
	t->dir = path_absolute(NULL, dir);
	t->state = state != NULL ? path_absolute(NULL, state) : target_default_state_dir(dir);
	if ((t->root_fd = open_dir_if_there(t->dir)) == -1 && errno != ENOENT)
		goto out;
	if ((t->state_fd = open_dir_if_there(t->state)) == -1 && errno != ENOENT)
		goto out;
	if (t->root_fd != -1 && t->state_fd != -1 && (r = check_layout(t->dir, t->state)) != 0)
		goto out;
	/* Wait out an apply in progress, without making a lock file that is not there. */
	if (t->state_fd != -1) {
		t->lock_fd = openat(t->state_fd, "lock", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (t->lock_fd == -1 && errno != ENOENT) {
			log_errno("%s/lock", t->state);
			r = DS_ERR_SYSTEM;
			goto out;
		}
		if (t->lock_fd != -1 && (r = lock_wait(t, LOCK_SH, lock_timeout)) != 0)
			goto out;
	}
	*out = t;
	t = NULL;
	r = 0;
out:
	target_close(t);
	return r;
}

int
target_exists(const struct target *t)
{
	return t->root_fd != -1;
}

void
target_close(struct target *t)
{
	if (t == NULL)
		return;
	if (t->lock_fd != -1) {
		/* Closing drops the flock; the stale pid line is harmless. */
		close(t->lock_fd);
	}
	if (t->root_fd != -1)
		close(t->root_fd);
	if (t->state_fd != -1)
		close(t->state_fd);
	free(t->dir);
	free(t->state);
	free(t);
}

const char *
target_dir(const struct target *t)
{
	return t->dir;
}

const char *
target_state_dir(const struct target *t)
{
	return t->state;
}

int
target_root_fd(const struct target *t)
{
	return t->root_fd;
}

int
target_state_fd(const struct target *t)
{
	return t->state_fd;
}

/* A state file holds one id; anything this long is not one. */
#define STATE_FILE_MAX	(64u * 1024)

/* Reads a one-line state file such as current.id; *out is NULL when absent. */
static int
read_id(struct target *t, const char *name, char **out)
{
	char *data = NULL;

	*out = NULL;
	if (t->state_fd == -1)
		return 0;	/* a read-only open of a site never applied to */
	if (fileio_read_at(t->state_fd, name, STATE_FILE_MAX, &data, NULL) == -1) {
		if (errno == ENOENT)
			return 0;
		log_errno("%s/%s", t->state, name);
		return DS_ERR_SYSTEM;
	}
	data[strcspn(data, "\n")] = '\0';
	if (data[0] != '\0')
		*out = data;
	else
		free(data);
	return 0;
}

int
target_read_id(struct target *t, const char *name, char **out)
{
	return read_id(t, name, out);
}

int
target_write_state(struct target *t, const char *name, const void *data, size_t len)
{
	if (t->readonly) {
		log_error("%s/%s: the site was opened read-only", t->state, name);
		return DS_ERR_SYSTEM;
	}
	if (fileio_write_atomic_at(t->state_fd, name, data, len) == -1) {
		log_errno("%s/%s", t->state, name);
		return errno == ENOSPC ? DS_ERR_NOSPACE : DS_ERR_SYSTEM;
	}
	return 0;
}

int
target_sync_state(struct target *t)
{
	if (fsync(t->state_fd) == -1) {
		log_errno("%s: fsync", t->state);
		return DS_ERR_SYSTEM;
	}
	return 0;
}

int
target_current(struct target *t, char **release_id, struct manifest **m)
{
	char *id = NULL, *file = NULL;
	struct manifest *cur = NULL;
	struct stat st;
	int r;

	if (release_id != NULL)
		*release_id = NULL;
	if (m != NULL)
		*m = NULL;
	if ((r = read_id(t, "current.id", &id)) != 0)
		goto out;
	if (m != NULL) {
		if (t->state_fd == -1 ||
		    fstatat(t->state_fd, "current.manifest", &st, AT_SYMLINK_NOFOLLOW) == -1) {
			if (t->state_fd != -1 && errno != ENOENT) {
				log_errno("%s/current.manifest", t->state);
				r = DS_ERR_SYSTEM;
				goto out;
			}
			cur = manifest_new();
		} else {
			file = path_join(t->state, "current.manifest");
			if ((r = manifest_load(file, &cur)) != 0)
				goto out;
		}
	}
	if (release_id != NULL) {
		*release_id = id;
		id = NULL;
	}
	if (m != NULL) {
		*m = cur;
		cur = NULL;
	}
	r = 0;
out:
	free(id);
	free(file);
	manifest_free(cur);
	return r;
}

struct drift_walk {
	char	**paths;
	size_t	  count, alloc;
};

static int
drift_add(enum manifest_change change, const struct manifest_entry *old_entry,
    const struct manifest_entry *new_entry, void *arg)
{
	struct drift_walk *w = arg;

	w->paths = xgrow(w->paths, &w->alloc, w->count + 2, sizeof(*w->paths));
	w->paths[w->count++] = xstrdup(new_entry != NULL ? new_entry->path : old_entry->path);
	w->paths[w->count] = NULL;
	return 0;
}

int
target_verify(struct target *t, struct manifest **scan_out, char ***drifted)
{
	struct manifest *cur = NULL, *scan = NULL;
	struct drift_walk w = { NULL, 0, 0 };
	char *cache = path_join(t->state, "current.stat"), *id = NULL;
	int r;

	if (scan_out != NULL)
		*scan_out = NULL;
	if (drifted != NULL)
		*drifted = NULL;
	if ((r = target_current(t, &id, &cur)) != 0)
		goto out;
	/* Read-only use of the cache: an apply rewrites it; drift just gets rehashed. */
	if (t->root_fd == -1)
		scan = manifest_new();	/* a read-only open of a target not there yet */
	else if ((r = manifest_scan_cached(t->dir, NULL, cache, NULL, 0, &scan, NULL)) != 0)
		goto out;
	/* Never applied: what is there was found, not changed behind distsync's back. */
	if (id != NULL && (r = manifest_diff(cur, scan, drift_add, &w)) != 0)
		goto out;
	if (w.paths == NULL)
		w.paths = xcalloc(1, sizeof(*w.paths));
	if (drifted != NULL) {
		*drifted = w.paths;
		w.paths = NULL;
	}
	if (scan_out != NULL) {
		*scan_out = scan;
		scan = NULL;
	}
	r = 0;
out:
	xfree_strv(w.paths);
	manifest_free(cur);
	manifest_free(scan);
	free(cache);
	free(id);
	return r;
}
