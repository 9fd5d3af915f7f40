/*
 * Unpacking a release's source tree from an archive: every entry is
 * created under the destination's fd, never through a symlink, and the
 * archive cannot make more bytes than its limit nor more than the disk holds.
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "base/err.h"
#include "base/log.h"
#include "base/path.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "repo/manifest.h"
#include "repo/unpack.h"

#define BLOCK_SIZE	(64 * 1024)

/* One unpacking: the archive, where it goes, what it made so far. */
struct unpack {
	struct archive	*a;
	const char	*name;		/* the archive, for messages */
	int		 rootfd;
	unsigned	 strip;
	uint64_t	 max_bytes;
	uint64_t	 total;		/* bytes of the files unpacked so far */
	char		**links;	/* symlinks made so far, sorted (strcmp) */
	size_t		 nlinks, alinks;
};

/* Drops STRIP leading components and a "./" prefix; NULL when nothing is left. */
static const char *
strip_components(const char *name, unsigned strip)
{
	while (name[0] == '.' && name[1] == '/')
		name += 2;
	for (unsigned i = 0; i < strip; i++) {
		const char *slash = strchr(name, '/');
		if (slash == NULL)
			return NULL;
		name = slash + 1;
	}
	return *name == '\0' ? NULL : name;
}

/* Index of the first symlink path >= PATH. */
static size_t
link_lower(const struct unpack *u, const char *path)
{
	size_t lo = 0, hi = u->nlinks;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(u->links[mid], path) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * The symlink an earlier entry made at PATH or at one of its parents, or
 * NULL: an entry there would be created through it or replace it.
 */
static const char *
link_on_path(const struct unpack *u, const char *path)
{
	char *prefix = xstrdup(path);
	const char *found = NULL;

	for (char *p = prefix; found == NULL; p++) {
		char c = *p;

		if (c != '/' && c != '\0')
			continue;
		*p = '\0';
		{
			size_t i = link_lower(u, prefix);

			if (i < u->nlinks && strcmp(u->links[i], prefix) == 0)
				found = u->links[i];
		}
		*p = c;
		if (c == '\0')
			break;
	}
	free(prefix);
	return found;
}

static void
link_add(struct unpack *u, const char *path)
{
	size_t i = link_lower(u, path);

	u->links = xgrow(u->links, &u->alinks, u->nlinks + 1, sizeof(*u->links));
	memmove(u->links + i + 1, u->links + i, (u->nlinks - i) * sizeof(*u->links));
	u->links[i] = xstrdup(path);
	u->nlinks++;
}

/*
 * Logs the failure of a system call on entry FULL: a path through something
 * that is not a directory (an earlier file, a symlink) or an entry that
 * exists already is the archive's fault (DS_ERR_INVALID), anything else the
 * system's.
 */
static int
entry_errno(const struct unpack *u, const char *full)
{
	int e = errno;

	if (e == EEXIST) {
		log_error("%s: entry '%s' replaces an earlier entry", u->name, full);
		return DS_ERR_INVALID;
	}
	if (e == ENOTDIR || e == ELOOP) {
		log_error("%s: entry '%s' goes through an earlier entry that is not a directory",
		    u->name, full);
		return DS_ERR_INVALID;
	}
	errno = e;
	log_errno("%s: entry '%s'", u->name, full);
	return e == ENOSPC || e == EDQUOT ? DS_ERR_NOSPACE : DS_ERR_SYSTEM;
}

/*
 * Checks that LEN more bytes fit the limit and the filesystem (the file
 * here, then every file unpacked so far and this one as store objects).
 */
static int
room_for(const struct unpack *u, uint64_t len, const char *full)
{
	struct statvfs sv;
	uint64_t avail, need;
	char limit[32], have[32], want[32];

	if (len > u->max_bytes - u->total) {
		util_format_bytes(u->max_bytes, limit, sizeof(limit));
		log_error("%s: entry '%s': the archive unpacks to more than %s, the most a "
		    "release may hold", u->name, full, limit);
		return DS_ERR_INVALID;
	}
	if (fstatvfs(u->rootfd, &sv) != 0) {
		log_errno("%s: entry '%s': statvfs", u->name, full);
		return DS_ERR_SYSTEM;
	}
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	/* Cannot overflow: total + len <= max_bytes, far below 2^62. */
	need = 2 * len + u->total + UNPACK_FREE_RESERVE;
	if (avail < need) {
		util_format_bytes(avail, have, sizeof(have));
		util_format_bytes(need, want, sizeof(want));
		log_error("%s: entry '%s': not enough free space to unpack and store it "
		    "(%s free, %s needed)", u->name, full, have, want);
		return DS_ERR_NOSPACE;
	}
	return 0;
}

/*
 * Copies the entry's data into fd, never past DECLARED (UINT64_MAX: the
 * archive did not say; then the limit bounds it). *extent gets the end of
 * the data written.
 */
static int
write_data(struct unpack *u, int fd, const char *full, uint64_t declared, uint64_t *extent)
{
	const void *block;
	size_t size;
	la_int64_t offset;
	int r;

	*extent = 0;
	while ((r = archive_read_data_block(u->a, &block, &size, &offset)) == ARCHIVE_OK) {
		uint64_t end;

		if (offset < 0 || (uint64_t)offset > UINT64_MAX - size) {
			log_error("%s: entry '%s': data at a bad offset", u->name, full);
			return DS_ERR_INVALID;
		}
		end = (uint64_t)offset + size;
		if (declared != UINT64_MAX && end > declared) {
			log_error("%s: entry '%s': data runs past the entry's size", u->name, full);
			return DS_ERR_INVALID;
		}
		if (declared == UINT64_MAX && end > *extent && (r = room_for(u, end, full)) != 0)
			return r;
		if (size > 0 && pwrite(fd, block, size, (off_t)offset) != (ssize_t)size) {
			if (errno == 0)
				errno = EIO;
			return entry_errno(u, full);
		}
		if (end > *extent)
			*extent = end;
	}
	if (r != ARCHIVE_EOF) {
		log_error("%s: entry '%s': %s", u->name, full, archive_error_string(u->a));
		return DS_ERR_INVALID;
	}
	return 0;
}

/* A directory: made here or already made by an earlier entry, never a symlink. */
static int
make_dir(struct unpack *u, const char *clean, const char *full, unsigned mode)
{
	const char *base;
	int dirfd, fd = -1, r;

	if ((dirfd = path_open_parent(u->rootfd, clean, 1, &base)) == -1)
		return entry_errno(u, full);
	if (mkdirat(dirfd, base, 0700) == -1 && errno != EEXIST) {
		r = entry_errno(u, full);
		goto out;
	}
	/* Whatever is there now is what gets the mode: open it, refusing a symlink. */
	if ((fd = openat(dirfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		if (errno == ENOTDIR || errno == ELOOP) {
			log_error("%s: entry '%s' replaces an earlier entry that is not a "
			    "directory", u->name, full);
			r = DS_ERR_INVALID;
		} else
			r = entry_errno(u, full);
		goto out;
	}
	/* Owner rwx: later entries are created inside. */
	if (fchmod(fd, manifest_mode_clean(mode) | 0700) == -1) {
		r = entry_errno(u, full);
		goto out;
	}
	r = 0;
out:
	if (fd != -1)
		close(fd);
	close(dirfd);
	return r;
}

static int
make_file(struct unpack *u, struct archive_entry *entry, const char *clean, const char *full,
    unsigned mode)
{
	uint64_t declared = UINT64_MAX, extent = 0;
	int fd, r;

	if (archive_entry_size_is_set(entry)) {
		la_int64_t size = archive_entry_size(entry);

		if (size < 0) {
			log_error("%s: entry '%s': negative size", u->name, full);
			return DS_ERR_INVALID;
		}
		declared = (uint64_t)size;
		if ((r = room_for(u, declared, full)) != 0)
			return r;
	}
	if ((fd = path_openat(u->rootfd, clean, O_WRONLY | O_CREAT | O_EXCL, 0600)) == -1)
		return entry_errno(u, full);
	if ((r = write_data(u, fd, full, declared, &extent)) != 0)
		goto out;
	if (declared == UINT64_MAX)
		declared = extent;
	/* Sparse entries and holes at the end: the size is the declared one. */
	if (ftruncate(fd, (off_t)declared) == -1 || fchmod(fd, manifest_mode_clean(mode)) == -1) {
		r = entry_errno(u, full);
		goto out;
	}
	u->total += declared;
	r = 0;
out:
	close(fd);
	return r;
}

static int
make_link(struct unpack *u, struct archive_entry *entry, const char *clean, const char *full)
{
	const char *target = archive_entry_symlink(entry), *base;
	int dirfd, r = 0;

	if (target == NULL || *target == '\0') {
		log_error("%s: entry '%s': symlink without a target", u->name, full);
		return DS_ERR_INVALID;
	}
	if ((dirfd = path_open_parent(u->rootfd, clean, 1, &base)) == -1)
		return entry_errno(u, full);
	if (symlinkat(target, dirfd, base) == -1)
		r = entry_errno(u, full);
	else
		link_add(u, clean);
	close(dirfd);
	return r;
}

/* One entry; 0 or DS_ERR_* (logged). */
static int
unpack_entry(struct unpack *u, struct archive_entry *entry)
{
	const char *full = archive_entry_pathname(entry), *name, *why, *link;
	mode_t type = archive_entry_filetype(entry);
	unsigned mode = (unsigned)archive_entry_perm(entry);
	char *clean;
	size_t len;
	int r;

	if (full == NULL) {
		log_error("%s: an entry has no usable name", u->name);
		return DS_ERR_INVALID;
	}
	if ((name = strip_components(full, u->strip)) == NULL)
		return 0;
	clean = xstrdup(name);
	len = strlen(clean);
	if (clean[len - 1] == '/')
		clean[--len] = '\0';
	if (path_check(clean, len, &why) != 0) {
		log_error("%s: entry '%s': %s", u->name, full, why);
		r = DS_ERR_INVALID;
	} else if ((link = link_on_path(u, clean)) != NULL) {
		log_error("%s: entry '%s' %s the symlink '%s' an earlier entry made: refused",
		    u->name, full, strcmp(link, clean) == 0 ? "replaces" : "goes through", link);
		r = DS_ERR_INVALID;
	} else if (archive_entry_hardlink(entry) != NULL) {
		log_error("%s: entry '%s': hardlinks are not supported", u->name, full);
		r = DS_ERR_INVALID;
	} else if (type == AE_IFDIR)
		r = make_dir(u, clean, full, mode);
	else if (type == AE_IFREG)
		r = make_file(u, entry, clean, full, mode);
	else if (type == AE_IFLNK)
		r = make_link(u, entry, clean, full);
	else {
		/* Devices, fifos, sockets: not part of a release tree. */
		log_error("%s: entry '%s': only files, directories and symlinks are supported",
		    u->name, full);
		r = DS_ERR_INVALID;
	}
	free(clean);
	return r;
}

/* Formats and filters of a release archive, and nothing else (mtree reads local files). */
static int
unpack_formats(struct unpack *u)
{
	int (*const setup[])(struct archive *) = {
		archive_read_support_format_tar, archive_read_support_format_zip,
		archive_read_support_filter_gzip, archive_read_support_filter_bzip2,
		archive_read_support_filter_xz, archive_read_support_filter_lzma,
		archive_read_support_filter_lz4, archive_read_support_filter_zstd,
	};

	for (size_t i = 0; i < sizeof(setup) / sizeof(setup[0]); i++) {
		if (setup[i](u->a) < ARCHIVE_WARN) {
			log_error("%s: libarchive: %s", u->name, archive_error_string(u->a));
			return DS_ERR_SYSTEM;
		}
	}
	return 0;
}

/* Reads every entry of the opened archive into DEST. */
static int
unpack_run(struct unpack *u, const char *dest)
{
	struct archive_entry *entry;
	int ar, r;

	if ((u->rootfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		log_errno("%s", dest);
		return DS_ERR_SYSTEM;
	}
	while ((ar = archive_read_next_header(u->a, &entry)) == ARCHIVE_OK ||
	    ar == ARCHIVE_WARN) {
		if ((r = unpack_entry(u, entry)) != 0)
			return r;
	}
	if (ar != ARCHIVE_EOF) {
		log_error("%s: %s", u->name, archive_error_string(u->a));
		return DS_ERR_INVALID;
	}
	return 0;
}

static void
unpack_release(struct unpack *u)
{
	if (u->rootfd != -1)
		close(u->rootfd);
	archive_read_free(u->a);
	for (size_t i = 0; i < u->nlinks; i++)
		free(u->links[i]);
	free(u->links);
}

static void
unpack_init(struct unpack *u, const char *name, unsigned strip, uint64_t max_bytes)
{
	memset(u, 0, sizeof(*u));
	u->a = archive_read_new();
	u->name = name;
	u->rootfd = -1;
	u->strip = strip;
	u->max_bytes = max_bytes != 0 ? max_bytes : UNPACK_MAX_BYTES_DEFAULT;
}

int
unpack_archive(const char *archive, const char *dest, unsigned strip, uint64_t max_bytes)
{
	struct unpack u;
	int r;

	unpack_init(&u, archive, strip, max_bytes);
	if ((r = unpack_formats(&u)) != 0)
		goto out;
	if (archive_read_open_filename(u.a, archive, BLOCK_SIZE) != ARCHIVE_OK) {
		log_error("%s: %s", archive, archive_error_string(u.a));
		r = DS_ERR_INVALID;
		goto out;
	}
	r = unpack_run(&u, dest);
out:
	unpack_release(&u);
	return r;
}

int
unpack_memory(const void *data, size_t len, const char *name, const char *dest,
    unsigned strip, uint64_t max_bytes)
{
	struct unpack u;
	int r;

	unpack_init(&u, name, strip, max_bytes);
	if ((r = unpack_formats(&u)) != 0)
		goto out;
	if (archive_read_open_memory(u.a, data, len) != ARCHIVE_OK) {
		log_error("%s: %s", name, archive_error_string(u.a));
		r = DS_ERR_INVALID;
		goto out;
	}
	r = unpack_run(&u, dest);
out:
	unpack_release(&u);
	return r;
}
