/*
 * Whole-file I/O: the one write loop, the one bounded reader and the one
 * atomic replace the project uses. Nothing here logs: the caller knows which
 * file it was and what it was for. Errors are -1 with errno set.
 */
#ifndef DS_FILEIO_H
#define DS_FILEIO_H

#include <stddef.h>

/* Writes all LEN bytes of DATA to FD, retrying short writes and EINTR; 0 or -1. */
int	fileio_write_all(int fd, const void *data, size_t len);

/*
 * Reads FD from its current offset to its end into a new NUL-terminated
 * block (*out, caller frees; *len excludes the NUL; LEN may be NULL). More
 * than MAX bytes fails with errno EFBIG and nothing allocated; *out is NULL
 * on any failure.
 */
int	fileio_read_fd(int fd, size_t max, char **out, size_t *len);

/*
 * fileio_read_fd of NAME under DIRFD (AT_FDCWD: a path), opened without
 * following a final symlink (ELOOP). ENOENT is returned as is, so a caller
 * can treat an absent file as empty.
 */
int	fileio_read_at(int dirfd, const char *name, size_t max, char **out, size_t *len);

/*
 * Copies IN from its current offset to its end onto OUT at its current
 * offset: copy_file_range where the kernel and filesystem allow it (a
 * reflink or server-side copy), else read and write. 0 or -1 (ENOSPC for a
 * full disk).
 */
int	fileio_copy_fd(int in, int out);

/*
 * Replaces NAME under DIRFD with DATA atomically: writes NAME.tmp (mode
 * 0644, never through a symlink), fsyncs it and renames it over NAME. The
 * caller fsyncs DIRFD when the rename must survive a crash. On failure
 * NAME is unchanged and errno says why (ENOSPC for a full disk).
 */
int	fileio_write_atomic_at(int dirfd, const char *name, const void *data, size_t len);

/*
 * Replaces the file PATH with DATA atomically where several processes may
 * write it at once (the repository's store): a temp file named with the
 * pid, fsync, rename, then an fsync of the directory. On failure PATH is
 * unchanged, the temp file is removed and errno says why.
 */
int	fileio_write_atomic(const char *path, const void *data, size_t len);

#endif
