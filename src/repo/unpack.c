#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "base/err.h"
#include "base/log.h"
#include "base/path.h"
#include "base/xmalloc.h"
#include "repo/unpack.h"

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

static int
write_data(struct archive *a, int fd, const char *archive, const char *name)
{
	const void *block;
	size_t size;
	la_int64_t offset;
	int r;

	while ((r = archive_read_data_block(a, &block, &size, &offset)) == ARCHIVE_OK) {
		size_t off = 0;
		if (lseek(fd, offset, SEEK_SET) == -1) {
			log_errno("%s: %s", archive, name);
			return DS_ERR_SYSTEM;
		}
		while (off < size) {
			ssize_t n = write(fd, (const char *)block + off, size - off);
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1) {
				log_errno("%s: %s", archive, name);
				return DS_ERR_SYSTEM;
			}
			off += n;
		}
	}
	if (r != ARCHIVE_EOF) {
		log_error("%s: %s: %s", archive, name, archive_error_string(a));
		return DS_ERR_INVALID;
	}
	/* Sparse tails: make the size right. */
	return 0;
}

int
unpack_archive(const char *archive, const char *dest, unsigned strip)
{
	struct archive *a = archive_read_new();
	struct archive_entry *entry;
	int rootfd = -1, r = DS_ERR_INVALID, ar;

	archive_read_support_filter_all(a);
	archive_read_support_format_all(a);
	if (archive_read_open_filename(a, archive, 64 * 1024) != ARCHIVE_OK) {
		log_error("%s: %s", archive, archive_error_string(a));
		goto out;
	}
	if ((rootfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		log_errno("%s", dest);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	while ((ar = archive_read_next_header(a, &entry)) == ARCHIVE_OK) {
		const char *full = archive_entry_pathname(entry), *name, *why, *base;
		char *clean;
		mode_t type = archive_entry_filetype(entry);
		mode_t mode = archive_entry_perm(entry) & 07777;
		int dirfd, fd;

		if (full == NULL || (name = strip_components(full, strip)) == NULL)
			continue;
		clean = xstrdup(name);
		if (clean[strlen(clean) - 1] == '/')
			clean[strlen(clean) - 1] = '\0';
		if (path_check(clean, strlen(clean), &why) != 0) {
			log_error("%s: entry '%s': %s", archive, full, why);
			free(clean);
			goto out;
		}
		if (type == AE_IFDIR) {
			dirfd = path_open_parent(rootfd, clean, 1, &base);
			if (dirfd == -1 || (mkdirat(dirfd, base, mode | 0700) == -1 && errno != EEXIST)) {
				log_errno("%s: entry '%s'", archive, full);
				if (dirfd != -1)
					close(dirfd);
				free(clean);
				r = DS_ERR_SYSTEM;
				goto out;
			}
			(void)fchmodat(dirfd, base, mode | 0700, 0);
			close(dirfd);
		} else if (type == AE_IFREG) {
			fd = path_openat(rootfd, clean, O_WRONLY | O_CREAT | O_EXCL, 0600);
			if (fd == -1) {
				log_errno("%s: entry '%s'", archive, full);
				free(clean);
				r = errno == EEXIST ? DS_ERR_INVALID : DS_ERR_SYSTEM;
				goto out;
			}
			r = write_data(a, fd, archive, full);
			if (r == 0 && (ftruncate(fd, archive_entry_size(entry)) == -1 ||
			    fchmod(fd, mode) == -1)) {
				log_errno("%s: entry '%s'", archive, full);
				r = DS_ERR_SYSTEM;
			}
			close(fd);
			if (r != 0) {
				free(clean);
				goto out;
			}
			r = DS_ERR_INVALID;
		} else if (type == AE_IFLNK) {
			const char *target = archive_entry_symlink(entry);
			dirfd = path_open_parent(rootfd, clean, 1, &base);
			if (target == NULL || dirfd == -1 || symlinkat(target, dirfd, base) == -1) {
				log_errno("%s: entry '%s'", archive, full);
				if (dirfd != -1)
					close(dirfd);
				free(clean);
				r = DS_ERR_SYSTEM;
				goto out;
			}
			close(dirfd);
		} else {
			/* Hardlinks, devices, fifos: not part of a release tree. */
			log_error("%s: entry '%s': only files, directories and symlinks are supported",
			    archive, full);
			free(clean);
			goto out;
		}
		free(clean);
	}
	if (ar != ARCHIVE_EOF) {
		log_error("%s: %s", archive, archive_error_string(a));
		goto out;
	}
	r = 0;
out:
	if (rootfd != -1)
		close(rootfd);
	archive_read_free(a);
	return r;
}
