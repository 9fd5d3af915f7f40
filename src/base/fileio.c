/* Whole-file I/O (fileio.h). */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/fault.h"
#include "base/fileio.h"
#include "base/path.h"
#include "base/xmalloc.h"

#define COPY_CHUNK	(1024 * 1024)	/* read/write copies move this much at a time */

int
fileio_write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
fileio_read_fd(int fd, size_t max, char **out, size_t *lenp)
{
	size_t len = 0, alloc = 0;
	char *p = NULL;
	ssize_t n;
	int saved;

	*out = NULL;
	if (lenp != NULL)
		*lenp = 0;
	for (;;) {
		/* One byte past MAX tells a file of exactly MAX bytes from a larger one. */
		if (alloc - len < 2) {
			size_t want = alloc == 0 ? 4096 : alloc * 2;

			if (want > max + 2)
				want = max + 2;
			if (want <= alloc) {
				free(p);
				errno = EFBIG;
				return -1;
			}
			p = xreallocarray(p, want, 1);
			alloc = want;
		}
		n = read(fd, p + len, alloc - len - 1);
		if (n == 0)
			break;
		if (n == -1) {
			if (errno == EINTR)
				continue;
			saved = errno;
			free(p);
			errno = saved;
			return -1;
		}
		len += (size_t)n;
		if (len > max) {
			free(p);
			errno = EFBIG;
			return -1;
		}
	}
	p[len] = '\0';
	*out = p;
	if (lenp != NULL)
		*lenp = len;
	return 0;
}

int
fileio_read_at(int dirfd, const char *name, size_t max, char **out, size_t *len)
{
	int fd, r, saved;

	*out = NULL;
	if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return -1;
	r = fileio_read_fd(fd, max, out, len);
	saved = errno;
	close(fd);
	errno = saved;
	return r;
}

int
fileio_copy_fd(int in, int out)
{
	char *buf = NULL;
	ssize_t n;
	int r = -1, saved;

#ifdef HAVE_COPY_FILE_RANGE
	for (;;) {
		n = copy_file_range(in, NULL, out, NULL, 64 * COPY_CHUNK, 0);
		if (n == 0)
			return 0;
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
			    errno == EOPNOTSUPP)
				break;
			return -1;
		}
	}
	/* Fall back to read/write from where copy_file_range stopped (nothing was copied). */
#endif
	buf = xmalloc(COPY_CHUNK);
	for (;;) {
		n = read(in, buf, COPY_CHUNK);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto out;
		if (n == 0)
			break;
		if (fileio_write_all(out, buf, (size_t)n) == -1)
			goto out;
	}
	r = 0;
out:
	saved = errno;
	free(buf);
	errno = saved;
	return r;
}

int
fileio_write_atomic_at(int dirfd, const char *name, const void *data, size_t len)
{
	char *tmp = xasprintf("%s.tmp", name);
	int fd, r = -1, saved = 0;

	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	fault_point("atomic-tmp-created");
	if (fd == -1 || fileio_write_all(fd, data, len) == -1 || fsync(fd) == -1) {
		saved = errno;
		if (fd != -1)
			unlinkat(dirfd, tmp, 0);
		goto out;
	}
	fault_point("atomic-tmp-synced");
	if (renameat(dirfd, tmp, dirfd, name) == -1) {
		saved = errno;
		unlinkat(dirfd, tmp, 0);
		goto out;
	}
	r = 0;
out:
	if (fd != -1)
		close(fd);
	free(tmp);
	if (r != 0)
		errno = saved;
	return r;
}

int
fileio_write_atomic(const char *path, const void *data, size_t len)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	char *dir = path_dirname(path);
	int fd, dfd, r = -1, saved = 0;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd == -1) {
		saved = errno;
		goto out;
	}
	if (fileio_write_all(fd, data, len) == -1 || fsync(fd) == -1) {
		saved = errno;
		close(fd);
		unlink(tmp);
		goto out;
	}
	if (close(fd) == -1 || rename(tmp, path) == -1) {
		saved = errno;
		unlink(tmp);
		goto out;
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		(void)fsync(dfd);
		close(dfd);
	}
	r = 0;
out:
	free(tmp);
	free(dir);
	if (r != 0)
		errno = saved;
	return r;
}
