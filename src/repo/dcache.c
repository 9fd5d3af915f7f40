/*
 * The store's cache of encodings (see dcache.h).
 */
#include "autoconf.h"

#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
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

/* Encodes into a new file TMP at LEVEL (fds rewound first). */
static int
encode_into(const struct dcache_req *req, int bfd, int tfd, int sfd, int level, const char *tmp,
    uint64_t *len)
{
	int out, r;

	if ((bfd != -1 && lseek(bfd, 0, SEEK_SET) < 0) || lseek(tfd, 0, SEEK_SET) < 0 ||
	    (sfd != -1 && lseek(sfd, 0, SEEK_SET) < 0) ||
	    (out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444)) == -1) {
		log_errno("%s", tmp);
		return DS_ERR_SYSTEM;
	}
	if (req->enc == DELTA_RSYNC)
		r = delta_rsync_encode(sfd, tfd, level, out, len);
	else
		r = delta_encode(req->enc, bfd, tfd, level, out, len);
	if (close(out) != 0 && r == 0) {
		log_errno("%s", tmp);
		r = DS_ERR_SYSTEM;
	}
	return r;
}

int
dcache_fill(const char *path, const struct dcache_req *req, uint64_t *len, int *hit)
{
	char *tmp = NULL, *alt = NULL, *lock_path = NULL;
	uint64_t alt_len = 0;
	int tfd = -1, bfd = -1, sfd = -1, lock = -1, r;
	double t0;

	*hit = 0;
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
	if ((tfd = store_object_open(req->store, req->target)) == -1) {
		log_errno("%s: object missing from the store", req->what);
		r = DS_ERR_NOTFOUND;
		goto out;
	}
	if (req->basis != NULL && (bfd = store_object_open(req->store, req->basis)) == -1) {
		log_errno("%s: basis missing from the store", req->what);
		r = DS_ERR_NOTFOUND;
		goto out;
	}
	if (req->enc == DELTA_RSYNC && (sfd = req->sig_open(req->sig_arg)) == -1) {
		r = DS_ERR_SYSTEM;
		goto out;
	}
	tmp = xasprintf("%s.%ld.%lu.tmp", path, (long)getpid(),
	    __atomic_fetch_add(&dcache_seq, 1, __ATOMIC_RELAXED));
	t0 = util_now();
	r = encode_into(req, bfd, tfd, sfd, req->level, tmp, len);
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
		if (encode_into(req, bfd, tfd, sfd, req->alt_level, alt, &alt_len) == 0 &&
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
	if (tfd != -1)
		close(tfd);
	if (bfd != -1)
		close(bfd);
	if (sfd != -1)
		close(sfd);
	return r;
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
	r = dcache_fill(*path, &req, &e->len, &hit);
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
