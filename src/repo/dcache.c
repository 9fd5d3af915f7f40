/*
 * The store's cache of encodings (see dcache.h).
 */
#include "autoconf.h"

#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/path.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "codec/delta.h"
#include "repo/dcache.h"
#include "repo/manifest.h"
#include "repo/plan.h"

static unsigned long dcache_seq;

/*
 * Takes PATH.lock exclusively, waiting for whoever holds it (another
 * session, or another thread, making the same entry). Returns the lock's
 * fd, or -1 when no lock can be had (the caller then goes on unlocked).
 */
static int
lock_entry(const char *path, char **lock_path)
{
	char *lp = xasprintf("%s.lock", path);
	struct stat a, b;
	int fd;

	for (int tries = 0; tries < 100; tries++) {
		if ((fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1)
			break;
		while (flock(fd, LOCK_EX) != 0)
			if (errno != EINTR)
				goto fail;
		/* Ours only if nobody unlinked it while we waited. */
		if (fstat(fd, &a) == 0 && stat(lp, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev) {
			*lock_path = lp;
			return fd;
		}
		close(fd);
	}
	free(lp);
	return -1;
fail:
	close(fd);
	free(lp);
	return -1;
}

/* Drops a lock from lock_entry: the name first, so a waiter retries on a fresh file. */
static void
unlock_entry(int fd, char *lock_path)
{
	if (fd == -1)
		return;
	unlink(lock_path);
	close(fd);
	free(lock_path);
}

/* 1 when the entry exists (*len), -1 when it is the empty refusal, else 0. */
static int
present(const char *path, uint64_t *len)
{
	struct stat st;

	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return 0;
	if (st.st_size == 0)
		return -1;
	*len = (uint64_t)st.st_size;
	return 1;
}

/* Encodes into OUT at LEVEL (fds rewound first). */
static int
encode_fd(const struct dcache_req *req, int bfd, int tfd, int sfd, int level, int out,
    uint64_t *len)
{
	if ((bfd != -1 && lseek(bfd, 0, SEEK_SET) < 0) || lseek(tfd, 0, SEEK_SET) < 0 ||
	    (sfd != -1 && lseek(sfd, 0, SEEK_SET) < 0)) {
		log_errno("%s: seek", req->what);
		return DS_ERR_SYSTEM;
	}
	if (req->enc == DELTA_RSYNC)
		return delta_rsync_encode(sfd, tfd, level, out, len);
	return delta_encode(req->enc, bfd, tfd, level, out, len);
}

/* Encodes into a new file TMP at LEVEL, already created as *out (closed here). */
static int
encode_into(const struct dcache_req *req, int bfd, int tfd, int sfd, int level, const char *tmp,
    int out, uint64_t *len)
{
	int r = encode_fd(req, bfd, tfd, sfd, level, out, len);

	if (close(out) != 0 && r == 0) {
		log_errno("%s", tmp);
		r = DS_ERR_SYSTEM;
	}
	return r;
}

/*
 * Creates TMP, an entry being written; makes deltas/ again when it is gone
 * (an admin may clear a cache). Returns an fd, or -1 with errno set.
 */
static int
create_tmp(const char *tmp)
{
	char *dir;
	int fd;

	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444)) != -1 ||
	    errno != ENOENT)
		return fd;
	dir = path_dirname(tmp);
	if (mkdir(dir, 0755) == 0)
		log_info("%s: the delta cache was missing: made again", dir);
	free(dir);
	return open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
}

/* An unnamed file for an encoding: O_TMPFILE in the store's tmp/, else memory. */
static int
anon_open(const struct store *store)
{
	char *dir = xasprintf("%s/tmp", store_dir(store));
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd == -1)
		fd = memfd_create("distsync-encoding", MFD_CLOEXEC);
	if (fd == -1)
		log_errno("%s: no scratch file for an encoding", dir);
	free(dir);
	return fd;
}

/* Opens the inputs of REQ: target, basis (patches), signature (rsync). 0 or DS_ERR_* (logged). */
static int
open_inputs(const struct dcache_req *req, int *tfd, int *bfd, int *sfd)
{
	*tfd = *bfd = *sfd = -1;
	if ((*tfd = store_object_open(req->store, req->target)) == -1) {
		log_errno("%s: object missing from the store", req->what);
		return DS_ERR_NOTFOUND;
	}
	if (req->basis != NULL && (*bfd = store_object_open(req->store, req->basis)) == -1) {
		log_errno("%s: basis missing from the store", req->what);
		return DS_ERR_NOTFOUND;
	}
	if (req->enc == DELTA_RSYNC && (*sfd = req->sig_open(req->sig_arg)) == -1)
		return DS_ERR_SYSTEM;
	return 0;
}

static void
close_inputs(int tfd, int bfd, int sfd)
{
	if (tfd != -1)
		close(tfd);
	if (bfd != -1)
		close(bfd);
	if (sfd != -1)
		close(sfd);
}

int
dcache_encode_anon(const struct dcache_req *req, int *fd, uint64_t *len)
{
	int tfd, bfd, sfd, out = -1, r;

	*fd = -1;
	if ((r = open_inputs(req, &tfd, &bfd, &sfd)) != 0)
		goto out;
	if ((out = anon_open(req->store)) == -1) {
		r = DS_ERR_SYSTEM;
		goto out;
	}
	if ((r = encode_fd(req, bfd, tfd, sfd, req->level, out, len)) != 0)
		goto out;
	if (lseek(out, 0, SEEK_SET) != 0) {
		log_errno("%s: seek", req->what);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	*fd = out;
	out = -1;
out:
	if (out != -1)
		close(out);
	close_inputs(tfd, bfd, sfd);
	return r;
}

/* Says once per process that the cache cannot be written, and why. */
static void
warn_unwritable(const char *path)
{
	static int warned;
	char *dir;

	if (__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
		return;
	dir = path_dirname(path);
	log_warn("%s: the delta cache cannot be written (%s): deltas are made for each "
	    "session and not kept", dir, strerror(errno));
	free(dir);
}

int
dcache_fill(const char *path, const struct dcache_req *req, uint64_t *len, int *hit, int *anon)
{
	char *tmp = NULL, *alt = NULL, *lock_path = NULL;
	uint64_t alt_len = 0;
	int tfd = -1, bfd = -1, sfd = -1, lock = -1, out, r;
	double t0;

	*hit = 0;
	if (anon != NULL)
		*anon = -1;
	if ((r = present(path, len)) != 0) {
		*hit = r > 0;
		return r > 0 ? 0 : DS_ERR_UNSUPPORTED;
	}
	lock = lock_entry(path, &lock_path);
	if ((r = present(path, len)) != 0) {
		*hit = r > 0;
		r = r > 0 ? 0 : DS_ERR_UNSUPPORTED;
		goto out;
	}
	tmp = xasprintf("%s.%ld.%lu.tmp", path, (long)getpid(),
	    __atomic_fetch_add(&dcache_seq, 1, __ATOMIC_RELAXED));
	if ((out = create_tmp(tmp)) == -1) {
		if (anon == NULL) {
			log_errno("%s", tmp);
			r = DS_ERR_SYSTEM;
			goto out;
		}
		/* The push goes on with the encoding made here, kept nowhere. */
		warn_unwritable(path);
		free(tmp);
		tmp = NULL;
		r = dcache_encode_anon(req, anon, len);
		goto out;
	}
	if ((r = open_inputs(req, &tfd, &bfd, &sfd)) != 0) {
		close(out);
		goto out;
	}
	t0 = util_now();
	r = encode_into(req, bfd, tfd, sfd, req->level, tmp, out, len);
	if (r == DS_ERR_UNSUPPORTED && req->enc == DELTA_ZIP_PATCH) {
		/* Not zips: the empty file says so, to every later fill. */
		if (rename(tmp, path) == 0) {
			free(tmp);
			tmp = NULL;
		}
		goto out;
	}
	if (r != 0)
		goto out;
	if (req->alt_level != 0 && req->alt_level != req->level) {
		alt = xasprintf("%s.alt", tmp);
		if ((out = create_tmp(alt)) != -1 &&
		    encode_into(req, bfd, tfd, sfd, req->alt_level, alt, out, &alt_len) == 0 &&
		    alt_len < *len && rename(alt, tmp) == 0)
			*len = alt_len;
	}
	log_debug("%s: encoded as %s at level %d: %" PRIu64 " bytes in %.2f s", req->what,
	    delta_encoding_name(req->enc), req->level, *len, util_now() - t0);
	if (rename(tmp, path) != 0) {
		log_errno("%s", path);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	free(tmp);
	tmp = NULL;
out:
	if (tmp != NULL)
		unlink(tmp);
	if (alt != NULL)
		unlink(alt);
	free(tmp);
	free(alt);
	unlock_entry(lock, lock_path);
	close_inputs(tfd, bfd, sfd);
	return r;
}

/* Age past which a temp file in deltas/ is debris whoever wrote it. */
#define TIDY_TMP_AGE	(24 * 3600)

/* 1 when the temp file NAME (ENTRY.PID.N.tmp[.alt]) is debris. */
static int
tmp_is_debris(int dfd, const char *name)
{
	const char *tmp = strstr(name, ".tmp"), *p;
	struct stat st;
	long pid = 0;
	int dots = 0;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return 0;
	if (st.st_mtime + TIDY_TMP_AGE < time(NULL))
		return 1;
	/* The pid is the second field back from ".tmp". */
	for (p = tmp; p > name && dots < 2; p--)
		if (p[-1] == '.')
			dots++;
	if (dots == 2)
		pid = strtol(p + 1, NULL, 10);
	return pid > 0 && kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}

/* 1 when the lock file NAME is held by nobody (and now by us, fd in *held). */
static int
lock_is_free(int dfd, const char *name, int *held)
{
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	*held = -1;
	if (fd == -1)
		return 0;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		return 0;
	}
	*held = fd;
	return 1;
}

size_t
dcache_tidy(const struct store *store)
{
	char *dir = xasprintf("%s/deltas", store_dir(store));
	size_t removed = 0, len;
	DIR *d;

	if ((d = opendir(dir)) == NULL) {
		free(dir);
		return 0;
	}
	for (struct dirent *de; (de = readdir(d)) != NULL;) {
		const char *name = de->d_name;
		int held = -1, gone = 0;

		len = strlen(name);
		if (len > 5 && strcmp(name + len - 5, ".lock") == 0) {
			/* Unlinked while held, as unlock_entry does: a waiter tries a new file. */
			if (lock_is_free(dirfd(d), name, &held))
				gone = unlinkat(dirfd(d), name, 0) == 0;
			if (held != -1)
				close(held);
		} else if (strstr(name, ".tmp") != NULL) {
			if (tmp_is_debris(dirfd(d), name))
				gone = unlinkat(dirfd(d), name, 0) == 0;
		} else if (len > 6 && strcmp(name + len - 6, ".rsync") == 0)
			gone = unlinkat(dirfd(d), name, 0) == 0;
		removed += gone;
	}
	closedir(d);
	if (removed > 0)
		log_debug("%s: %zu leftover file%s removed", dir, removed, removed == 1 ? "" : "s");
	free(dir);
	return removed;
}

/* One patch at the precompute levels (see dcache_fill_pair). */
static int
fill_patch(struct store *store, int enc, const struct plan_object *po,
    struct dcache_pair_entry *e, char **path)
{
	struct dcache_req req;
	int hit = 0, r;

	*path = store_delta_path(store, po->basis->hash, po->entry->hash,
	    delta_encoding_name(enc));
	memset(&req, 0, sizeof(req));
	req.store = store;
	req.enc = enc;
	req.basis = po->basis->hash;
	req.target = po->entry->hash;
	req.what = *path;
	req.level = DELTA_LEVEL_PRECOMPUTE;
	req.alt_level = DELTA_LEVEL_DEFAULT;
	r = dcache_fill(*path, &req, &e->len, &hit, NULL);
	e->made = !hit;
	e->enc = enc;
	e->path = *path;
	return r;
}

int
dcache_fill_pair(struct store *store, const struct manifest *from, const struct manifest *to,
    int (*fn)(const struct dcache_pair_entry *e, void *arg), void *arg)
{
	struct plan *plan = plan_make(from, to);
	int r = 0;

	for (size_t j = 0; j < plan->nobjects && r == 0; j++) {
		const struct plan_object *po = &plan->objects[j];
		struct dcache_pair_entry e;
		char *path = NULL;

		if (po->basis == NULL || po->entry->type != MANIFEST_FILE || po->entry->size == 0)
			continue;
		memset(&e, 0, sizeof(e));
		e.po = po;
		/* A zip pair gets the zip-aware patch the sender prefers; others a zstd patch. */
		r = fill_patch(store, DELTA_ZIP_PATCH, po, &e, &path);
		if (r == DS_ERR_UNSUPPORTED) {
			free(path);
			r = fill_patch(store, DELTA_ZSTD_PATCH, po, &e, &path);
		}
		if (r == 0 && fn != NULL)
			r = fn(&e, arg);
		free(path);
	}
	plan_free(plan);
	return r;
}
