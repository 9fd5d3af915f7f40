#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fault.h"
#include "base/fileio.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "codec/delta.h"
#include "site/stage.h"
#include "site/target.h"

/* Space kept free beyond what an operation needs, so a full disk is refused early. */
#define STAGE_SPACE_MARGIN	(4u * 1024 * 1024)

/* STATE/staging, made when missing. */
static int
staging_fd(struct target *t)
{
	int fd = openat(target_state_fd(t), "staging", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd == -1 && errno == ENOENT) {
		if (mkdirat(target_state_fd(t), "staging", 0755) == -1 && errno != EEXIST)
			return -1;
		fd = openat(target_state_fd(t), "staging", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	return fd;
}

/* STATE/staging for looking only: -1 when it is not there. */
static int
staging_fd_existing(struct target *t)
{
	return openat(target_state_fd(t), "staging", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static void
names(const uint8_t hash[HASH_LEN], char hex[HASH_HEX_LEN + 1], char part[HASH_HEX_LEN + 6])
{
	hash_to_hex(hash, hex);
	snprintf(part, HASH_HEX_LEN + 6, "%s.part", hex);
}

int
stage_has(struct target *t, const uint8_t hash[HASH_LEN])
{
	char hex[HASH_HEX_LEN + 1], part[HASH_HEX_LEN + 6];
	struct stat st;
	int fd, r;

	if ((fd = staging_fd_existing(t)) == -1)
		return 0;
	names(hash, hex, part);
	r = fstatat(fd, hex, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
	close(fd);
	return r;
}

int
stage_partial(struct target *t, const uint8_t hash[HASH_LEN], uint64_t *offset)
{
	char hex[HASH_HEX_LEN + 1], part[HASH_HEX_LEN + 6];
	struct stat st;
	int fd, r = 0;

	*offset = 0;
	if ((fd = staging_fd(t)) == -1) {
		log_errno("%s/staging", target_state_dir(t));
		return DS_ERR_SYSTEM;
	}
	names(hash, hex, part);
	if (fstatat(fd, part, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISREG(st.st_mode))
			*offset = (uint64_t)st.st_size;
	} else if (errno != ENOENT) {
		log_errno("%s/staging/%s", target_state_dir(t), part);
		r = DS_ERR_SYSTEM;
	}
	close(fd);
	return r;
}

int
stage_list(struct target *t, struct stage_object **objects, size_t *count)
{
	struct stage_object *list = NULL;
	size_t n = 0, alloc = 0, len;
	struct dirent *de;
	struct stat st;
	DIR *dir;
	int fd;

	*objects = NULL;
	*count = 0;
	/* Looking only: no staging (or state) directory, as a read-only open has, lists none. */
	fd = staging_fd_existing(t);
	if (fd == -1 && (errno == ENOENT || target_state_fd(t) == -1))
		return 0;
	if (fd == -1 || (dir = fdopendir(fd)) == NULL) {
		log_errno("%s/staging", target_state_dir(t));
		if (fd != -1)
			close(fd);
		return DS_ERR_SYSTEM;
	}
	while ((de = readdir(dir)) != NULL) {
		struct stage_object o;

		len = strlen(de->d_name);
		if (len != HASH_HEX_LEN && !(len == HASH_HEX_LEN + 5 &&
		    strcmp(de->d_name + HASH_HEX_LEN, ".part") == 0))
			continue;
		if (hash_from_hex(de->d_name, HASH_HEX_LEN, o.hash) != 0)
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISREG(st.st_mode))
			continue;
		o.size = (uint64_t)st.st_size;
		o.complete = len == HASH_HEX_LEN;
		list = xgrow(list, &alloc, n + 1, sizeof(*list));
		list[n++] = o;
	}
	closedir(dir);
	*objects = list;
	*count = n;
	return 0;
}

/* Bytes available on the state directory's filesystem; 0 and logged when unknown. */
static int
available(struct target *t, uint64_t *avail)
{
	struct statvfs sv;

	if (fstatvfs(target_state_fd(t), &sv) == -1) {
		log_errno("%s: statvfs", target_state_dir(t));
		return DS_ERR_SYSTEM;
	}
	*avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	return 0;
}

/* 1 when BYTES and the margin fit in AVAIL. */
static int
fits(uint64_t bytes, uint64_t avail)
{
	return bytes <= UINT64_MAX - STAGE_SPACE_MARGIN && bytes + STAGE_SPACE_MARGIN <= avail;
}

static int
no_space(struct target *t, uint64_t bytes, uint64_t avail)
{
	log_error("%s: not enough free space: %" PRIu64 " bytes needed (plus a %u byte "
	    "margin), %" PRIu64 " available; nothing was changed", target_dir(t), bytes,
	    STAGE_SPACE_MARGIN, avail);
	return DS_ERR_NOSPACE;
}

int
stage_check_space(struct target *t, uint64_t bytes)
{
	uint64_t avail;
	int r;

	if ((r = available(t, &avail)) != 0)
		return r;
	return fits(bytes, avail) ? 0 : no_space(t, bytes, avail);
}

uint64_t
stage_usage(struct target *t)
{
	struct dirent *de;
	struct stat st;
	uint64_t bytes = 0;
	DIR *dir;
	int fd;

	if ((fd = staging_fd_existing(t)) == -1 || (dir = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return 0;
	}
	while ((de = readdir(dir)) != NULL)
		if (de->d_name[0] != '.' &&
		    fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode))
			bytes += (uint64_t)st.st_blocks * 512;
	closedir(dir);
	return bytes;
}

/* A staging entry another session left, as stage_reserve sees it. */
struct leftover {
	char		 name[STAGE_NAME_MAX];
	uint8_t		 hash[HASH_LEN];
	int		 complete;
	struct timespec	 mtime;
};

static int
leftover_cmp(const void *a, const void *b)
{
	const struct leftover *x = a, *y = b;

	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* The entries of staging KEEP does not claim, oldest first (*list: caller frees). */
static size_t
leftovers(DIR *dir, int (*keep)(const uint8_t *, void *), void *arg, struct leftover **list)
{
	struct leftover *v = NULL;
	size_t n = 0, alloc = 0, len;
	struct dirent *de;
	struct stat st;

	while ((de = readdir(dir)) != NULL) {
		struct leftover l;

		len = strlen(de->d_name);
		if (len < HASH_HEX_LEN || len >= sizeof(l.name) ||
		    (len > HASH_HEX_LEN && de->d_name[HASH_HEX_LEN] != '.') ||
		    hash_from_hex(de->d_name, HASH_HEX_LEN, l.hash) != 0 ||
		    fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISREG(st.st_mode) || (keep != NULL && keep(l.hash, arg)))
			continue;
		memcpy(l.name, de->d_name, len + 1);
		l.complete = len == HASH_HEX_LEN;
		l.mtime = st.st_mtim;
		v = xgrow(v, &alloc, n + 1, sizeof(*v));
		v[n++] = l;
	}
	if (n > 0)
		qsort(v, n, sizeof(*v), leftover_cmp);
	*list = v;
	return n;
}

int
stage_reserve(struct target *t, uint64_t bytes, int (*keep)(const uint8_t *hash, void *arg),
    void (*gone)(const uint8_t *hash, void *arg), void *arg)
{
	struct leftover *list = NULL;
	uint64_t avail;
	size_t n, i, removed = 0;
	DIR *dir;
	int fd, r;

	if ((r = available(t, &avail)) != 0 || fits(bytes, avail))
		return r;
	if (bytes > UINT64_MAX - STAGE_SPACE_MARGIN)
		return no_space(t, bytes, avail);
	if ((fd = staging_fd(t)) == -1 || (dir = fdopendir(fd)) == NULL) {
		log_errno("%s/staging", target_state_dir(t));
		if (fd != -1)
			close(fd);
		return DS_ERR_SYSTEM;
	}
	n = leftovers(dir, keep, arg, &list);
	for (i = 0; i < n && !fits(bytes, avail); i++) {
		if (unlinkat(dirfd(dir), list[i].name, 0) == -1)
			continue;
		removed++;
		if (list[i].complete && gone != NULL)
			gone(list[i].hash, arg);
		if ((r = available(t, &avail)) != 0)
			break;
	}
	closedir(dir);
	free(list);
	if (removed > 0)
		log_info("%s: %zu staged file%s of earlier sessions removed to make room",
		    target_state_dir(t), removed, removed == 1 ? "" : "s");
	if (r == 0 && !fits(bytes, avail))
		r = no_space(t, bytes, avail);
	return r;
}

int
stage_open(struct target *t, const uint8_t hash[HASH_LEN], uint64_t offset, int *out)
{
	char hex[HASH_HEX_LEN + 1], part[HASH_HEX_LEN + 6];
	struct stat st;
	int dfd, fd = -1, r = DS_ERR_SYSTEM;

	*out = -1;
	names(hash, hex, part);
	if ((dfd = staging_fd(t)) == -1) {
		log_errno("%s/staging", target_state_dir(t));
		return DS_ERR_SYSTEM;
	}
	fd = openat(dfd, part, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd == -1 || fstat(fd, &st) == -1) {
		log_errno("%s/staging/%s", target_state_dir(t), part);
		goto out;
	}
	if ((uint64_t)st.st_size < offset) {
		log_error("%s/staging/%s: resume offset %" PRIu64 " is past its %jd bytes",
		    target_state_dir(t), part, offset, (intmax_t)st.st_size);
		r = DS_ERR_INVALID;
		goto out;
	}
	if (ftruncate(fd, (off_t)offset) == -1 || lseek(fd, (off_t)offset, SEEK_SET) == -1) {
		log_errno("%s/staging/%s", target_state_dir(t), part);
		goto out;
	}
	*out = fd;
	fd = -1;
	r = 0;
out:
	if (fd != -1)
		close(fd);
	close(dfd);
	return r;
}

/* stage_finish, re-reading the part to verify its hash only when verify. */
static int
finish(struct target *t, const uint8_t hash[HASH_LEN], int fd, int verify)
{
	char hex[HASH_HEX_LEN + 1], part[HASH_HEX_LEN + 6];
	uint8_t got[HASH_LEN];
	uint64_t size;
	int dfd = -1, r = DS_ERR_SYSTEM;

	names(hash, hex, part);
	if ((dfd = staging_fd(t)) == -1) {
		log_errno("%s/staging", target_state_dir(t));
		goto out;
	}
	fault_point("stage-finish-before-fsync");
	if (fsync(fd) == -1) {
		r = errno == ENOSPC ? DS_ERR_NOSPACE : DS_ERR_SYSTEM;
		log_errno("%s/staging/%s: fsync", target_state_dir(t), part);
		goto out;
	}
	if (verify && (lseek(fd, 0, SEEK_SET) == -1 || hash_fd(fd, got, &size) != 0)) {
		log_errno("%s/staging/%s: read", target_state_dir(t), part);
		goto out;
	}
	if (verify && memcmp(got, hash, HASH_LEN) != 0) {
		log_error("%s/staging/%s: content does not match its SHA-256 (%" PRIu64
		    " bytes); discarded", target_state_dir(t), part, size);
		unlinkat(dfd, part, 0);
		r = DS_ERR_CORRUPT;
		goto out;
	}
	fault_point("stage-finish-before-rename");
	if (renameat(dfd, part, dfd, hex) == -1) {
		log_errno("%s/staging/%s: rename", target_state_dir(t), part);
		goto out;
	}
	fault_point("stage-finish-after-rename");
	r = 0;
out:
	close(fd);
	if (dfd != -1)
		close(dfd);
	return r;
}

int
stage_finish(struct target *t, const uint8_t hash[HASH_LEN], int fd)
{
	return finish(t, hash, fd, 1);
}

int
stage_finish_hashed(struct target *t, const uint8_t hash[HASH_LEN], int fd)
{
	return finish(t, hash, fd, 0);
}

void
stage_abort(struct target *t, const uint8_t hash[HASH_LEN], int fd)
{
	if (fd != -1)
		close(fd);
}

int
stage_add_bytes(struct target *t, const uint8_t hash[HASH_LEN], const void *data, size_t len)
{
	char hex[HASH_HEX_LEN + 1];
	int fd, r;

	if (stage_has(t, hash))
		return 0;
	if ((r = stage_open(t, hash, 0, &fd)) != 0)
		return r;
	if (fileio_write_all(fd, data, len) == -1) {
		r = errno == ENOSPC ? DS_ERR_NOSPACE : DS_ERR_SYSTEM;
		hash_to_hex(hash, hex);
		log_errno("%s/staging/%s.part: write", target_state_dir(t), hex);
		close(fd);
		return r;
	}
	return stage_finish(t, hash, fd);
}

int
stage_add_fd(struct target *t, const uint8_t hash[HASH_LEN], int in)
{
	char hex[HASH_HEX_LEN + 1], buf[128 * 1024];
	ssize_t n;
	int fd, r;

	if (stage_has(t, hash))
		return 0;
	if ((r = stage_open(t, hash, 0, &fd)) != 0)
		return r;
	hash_to_hex(hash, hex);
	for (;;) {
		n = read(in, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			log_errno("staging %s: read", hex);
			close(fd);
			return DS_ERR_SYSTEM;
		}
		if (n == 0)
			break;
		if (fileio_write_all(fd, buf, (size_t)n) == -1) {
			r = errno == ENOSPC ? DS_ERR_NOSPACE : DS_ERR_SYSTEM;
			log_errno("%s/staging/%s.part: write", target_state_dir(t), hex);
			close(fd);
			return r;
		}
	}
	return stage_finish(t, hash, fd);
}

int
stage_object_open(struct target *t, const uint8_t hash[HASH_LEN])
{
	char hex[HASH_HEX_LEN + 1], part[HASH_HEX_LEN + 6];
	int dfd, fd, saved;

	names(hash, hex, part);
	if ((dfd = staging_fd_existing(t)) == -1)
		return -1;
	fd = openat(dfd, hex, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	saved = errno;
	close(dfd);
	errno = saved;
	return fd;
}

int
stage_object_size(struct target *t, const uint8_t hash[HASH_LEN], uint64_t *size)
{
	char hex[HASH_HEX_LEN + 1], part[HASH_HEX_LEN + 6];
	struct stat st;
	int fd, r;

	if ((fd = staging_fd_existing(t)) == -1)
		return 0;
	names(hash, hex, part);
	r = fstatat(fd, hex, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
	if (r)
		*size = (uint64_t)st.st_size;
	close(fd);
	return r;
}

int
stage_object_link(struct target *t, const uint8_t hash[HASH_LEN], int dirfd, const char *name)
{
	char hex[HASH_HEX_LEN + 1], part[HASH_HEX_LEN + 6];
	int fd, r, saved;

	if ((fd = staging_fd_existing(t)) == -1)
		return -1;
	names(hash, hex, part);
	r = linkat(fd, hex, dirfd, name, 0);
	saved = errno;
	close(fd);
	errno = saved;
	return r;
}

/* "HEX.ENC.part" into name; ENCODING must have a name (delta_encoding_name). */
static void
encoded_name(const uint8_t hash[HASH_LEN], int encoding, char *name, size_t size)
{
	char hex[HASH_HEX_LEN + 1];
	const char *enc = delta_encoding_name(encoding);

	hash_to_hex(hash, hex);
	snprintf(name, size, "%s.%s.part", hex, enc != NULL ? enc : "unknown");
}

void
stage_encoded_name(const uint8_t hash[HASH_LEN], int encoding, char *name)
{
	static const char dir[] = "staging/";

	memcpy(name, dir, sizeof(dir) - 1);
	encoded_name(hash, encoding, name + sizeof(dir) - 1, STAGE_NAME_MAX - (sizeof(dir) - 1));
}

/* Which staged stream NAME is: 1 and *part filled, else 0. */
static int
encoded_parse(int dirfd, const char *name, struct stage_encoded *part)
{
	char want[STAGE_NAME_MAX];
	struct stat st;

	if (strlen(name) <= HASH_HEX_LEN + 1 || name[HASH_HEX_LEN] != '.' ||
	    hash_from_hex(name, HASH_HEX_LEN, part->hash) != 0)
		return 0;
	for (int enc = 0; enc < DELTA_ENCODING_COUNT; enc++) {
		if (!delta_encoding_needs_basis(enc))
			continue;
		encoded_name(part->hash, enc, want, sizeof(want));
		if (strcmp(want, name) != 0 || fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(st.st_mode) || st.st_size == 0)
			continue;
		part->encoding = enc;
		part->size = (uint64_t)st.st_size;
		return 1;
	}
	return 0;
}

void
stage_list_encoded(struct target *t, struct stage_encoded **parts, size_t *count)
{
	struct stage_encoded *list = NULL, part;
	size_t n = 0, alloc = 0;
	struct dirent *de;
	DIR *dir;
	int fd;

	*parts = NULL;
	*count = 0;
	if ((fd = staging_fd_existing(t)) == -1 || (dir = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return;
	}
	while ((de = readdir(dir)) != NULL) {
		if (!encoded_parse(dirfd(dir), de->d_name, &part))
			continue;
		list = xgrow(list, &alloc, n + 1, sizeof(*list));
		list[n++] = part;
	}
	closedir(dir);
	*parts = list;
	*count = n;
}

int
stage_encoded_open(struct target *t, const uint8_t hash[HASH_LEN], int encoding, int *out,
    uint64_t *size)
{
	char name[STAGE_NAME_MAX];
	struct stat st;
	int dfd, fd;

	*out = -1;
	*size = 0;
	encoded_name(hash, encoding, name, sizeof(name));
	if ((dfd = staging_fd(t)) == -1) {
		log_errno("%s/staging", target_state_dir(t));
		return DS_ERR_SYSTEM;
	}
	fd = openat(dfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd == -1 || fstat(fd, &st) == -1) {
		log_errno("%s/staging/%s", target_state_dir(t), name);
		if (fd != -1)
			close(fd);
		close(dfd);
		return DS_ERR_SYSTEM;
	}
	close(dfd);
	*out = fd;
	*size = (uint64_t)st.st_size;
	return 0;
}

int
stage_encoded_seek(struct target *t, const uint8_t hash[HASH_LEN], int encoding, int fd,
    uint64_t offset)
{
	char name[STAGE_NAME_MAX];

	if (ftruncate(fd, (off_t)offset) == -1 || lseek(fd, (off_t)offset, SEEK_SET) == -1) {
		encoded_name(hash, encoding, name, sizeof(name));
		log_errno("%s/staging/%s", target_state_dir(t), name);
		return DS_ERR_SYSTEM;
	}
	return 0;
}

void
stage_encoded_remove(struct target *t, const uint8_t hash[HASH_LEN], int encoding)
{
	char name[STAGE_NAME_MAX];
	int fd;

	if ((fd = staging_fd_existing(t)) == -1)
		return;
	encoded_name(hash, encoding, name, sizeof(name));
	unlinkat(fd, name, 0);
	close(fd);
}

int
stage_scratch_open(struct target *t)
{
	char *tmpl = xasprintf("%s/staging/.scratch.XXXXXX", target_state_dir(t));
	int fd;

	if ((fd = mkstemp(tmpl)) == -1)
		log_errno("%s", tmpl);
	else
		unlink(tmpl);
	free(tmpl);
	return fd;
}

int
stage_clear(struct target *t)
{
	struct dirent *de;
	DIR *dir;
	int fd, r = 0;

	if ((fd = staging_fd(t)) == -1 || (dir = fdopendir(fd)) == NULL) {
		log_errno("%s/staging", target_state_dir(t));
		if (fd != -1)
			close(fd);
		return DS_ERR_SYSTEM;
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		fault_point("stage-clear-unlink");
		if (unlinkat(dirfd(dir), de->d_name, 0) == -1 && errno != ENOENT) {
			log_errno("%s/staging/%s", target_state_dir(t), de->d_name);
			r = DS_ERR_SYSTEM;
		}
	}
	closedir(dir);
	return r;
}
