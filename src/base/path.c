#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/path.h"
#include "base/xmalloc.h"

int
path_check(const char *path, size_t len, const char **why)
{
	const char *reason = NULL;
	size_t i, start = 0;

	if (len == 0)
		reason = "empty path";
	else if (len > PATH_MAX_LEN)
		reason = "path too long";
	else if (path[0] == '/')
		reason = "absolute path";
	else if (memchr(path, '\0', len) != NULL)
		reason = "NUL in path";
	else if (memchr(path, '\n', len) != NULL)
		reason = "newline in path";
	else if (path[len - 1] == '/')
		reason = "trailing slash";
	for (i = 0; reason == NULL && i <= len; i++) {
		if (i < len && path[i] != '/')
			continue;
		if (i == start)
			reason = "empty component";
		else if (i - start == 1 && path[start] == '.')
			reason = "'.' component";
		else if (i - start == 2 && path[start] == '.' && path[start + 1] == '.')
			reason = "backtracking component '..'";
		else if (i - start > NAME_MAX)
			reason = "component too long";
		start = i + 1;
	}
	if (why != NULL)
		*why = reason;
	return reason == NULL ? 0 : DS_ERR_INVALID;
}

int
path_link_check(const char *path, const char *target, size_t len, const char **why)
{
	const char *reason = NULL;
	size_t depth = 0, i, start = 0;
	int named = 0;

	for (i = 0; i < strlen(path); i++)
		depth += path[i] == '/';
	if (len == 0)
		reason = "empty symlink target";
	else if (len > PATH_MAX_LEN)
		reason = "symlink target too long";
	else if (memchr(target, '\0', len) != NULL)
		reason = "NUL in symlink target";
	else if (target[0] == '/')
		reason = "absolute symlink target";
	for (i = 0; reason == NULL && i <= len; i++) {
		if (i < len && target[i] != '/')
			continue;
		if (i - start == 2 && target[start] == '.' && target[start + 1] == '.') {
			if (named)
				reason = "'..' after a name in a symlink target";
			else if (depth-- == 0)
				reason = "symlink target leads outside the tree";
		} else if (i > start && !(i - start == 1 && target[start] == '.'))
			named = 1;
		start = i + 1;
	}
	if (why != NULL)
		*why = reason;
	return reason == NULL ? 0 : DS_ERR_INVALID;
}

/* Matches one class "[...]" at *pp against c; advances *pp past it. */
static int
class_match(const char **pp, char c)
{
	const char *p = *pp + 1;
	int negate = 0, matched = 0;

	if (*p == '!' || *p == '^') {
		negate = 1;
		p++;
	}
	do {
		char lo = *p, hi = *p;
		if (p[1] == '-' && p[2] != ']' && p[2] != '\0') {
			hi = p[2];
			p += 2;
		}
		if (c >= lo && c <= hi)
			matched = 1;
		p++;
	} while (*p != ']' && *p != '\0');
	*pp = *p == ']' ? p + 1 : p;
	return matched != negate;
}

int
path_glob_match(const char *pattern, const char *path)
{
	const char *p = pattern, *s = path;

	while (*p != '\0') {
		if (p[0] == '*' && p[1] == '*') {
			/* "**" or "**" followed by '/': any number of components. */
			const char *rest = p + 2;
			if (*rest == '/')
				rest++;
			if (*rest == '\0')
				return 1;
			for (const char *t = s;; t++) {
				if ((t == s || t[-1] == '/') && path_glob_match(rest, t))
					return 1;
				if (*t == '\0')
					return 0;
			}
		}
		if (*p == '*') {
			p++;
			for (const char *t = s;; t++) {
				if (path_glob_match(p, t))
					return 1;
				if (*t == '\0' || *t == '/')
					return 0;
			}
		}
		if (*s == '\0')
			return 0;
		if (*p == '?') {
			if (*s == '/')
				return 0;
			p++;
			s++;
			continue;
		}
		if (*p == '[') {
			if (*s == '/' || !class_match(&p, *s))
				return 0;
			s++;
			continue;
		}
		if (*p == '\\' && p[1] != '\0')
			p++;
		if (*p != *s)
			return 0;
		p++;
		s++;
	}
	return *s == '\0';
}

int
path_glob_match_any(char *const *globs, const char *path)
{
	for (size_t i = 0; globs != NULL && globs[i] != NULL; i++)
		if (path_glob_match(globs[i], path))
			return 1;
	return 0;
}

int
path_glob_check(const char *pattern, const char **why)
{
	const char *reason = NULL;

	if (*pattern == '\0')
		reason = "empty pattern";
	else if (pattern[0] == '/')
		reason = "pattern must be relative to the target";
	for (const char *p = pattern; reason == NULL && *p != '\0'; p++) {
		if (*p == '[') {
			const char *q = p + 1;
			if (*q == '!' || *q == '^')
				q++;
			if (*q == ']')
				q++;
			while (*q != '\0' && *q != ']')
				q++;
			if (*q != ']')
				reason = "unterminated '[' class";
			else
				p = q;
		} else if (*p == '*' && p[1] == '*' && p[2] == '*') {
			reason = "'***' is not a pattern";
		} else if (p[0] == '*' && p[1] == '*' && p[2] != '\0' && p[2] != '/') {
			reason = "'**' must be a whole path component";
		} else if (p != pattern && p[0] == '*' && p[1] == '*' && p[-1] != '/') {
			reason = "'**' must be a whole path component";
		} else if (*p == '\\' && p[1] == '\0') {
			reason = "trailing backslash";
		}
		if (p[0] == '*' && p[1] == '*')
			p++;
	}
	if (reason == NULL) {
		/* Components must be clean too: no "..", no "." */
		const char *w;
		char *copy = xstrdup(pattern);
		if (path_check(copy, strlen(copy), &w) != 0 && strcmp(w, "path too long") != 0)
			reason = w;
		free(copy);
	}
	if (why != NULL)
		*why = reason;
	return reason == NULL ? 0 : DS_ERR_INVALID;
}

int
path_open_parent(int rootfd, const char *rel, int create, const char **base)
{
	const char *p = rel, *slash;
	int fd, next;

	fd = dup(rootfd);
	if (fd == -1)
		return -1;
	while ((slash = strchr(p, '/')) != NULL) {
		char name[NAME_MAX + 1];
		size_t len = slash - p;

		if (len == 0 || len > NAME_MAX) {
			close(fd);
			errno = EINVAL;
			return -1;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next == -1 && errno == ENOENT && create) {
			if (mkdirat(fd, name, 0755) == -1 && errno != EEXIST) {
				close(fd);
				return -1;
			}
			next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		close(fd);
		if (next == -1)
			return -1;
		fd = next;
		p = slash + 1;
	}
	*base = p;
	return fd;
}

int
path_openat(int rootfd, const char *rel, int flags, mode_t mode)
{
	const char *base;
	int dirfd, fd, saved;

	dirfd = path_open_parent(rootfd, rel, (flags & O_CREAT) != 0, &base);
	if (dirfd == -1)
		return -1;
	fd = openat(dirfd, base, flags | O_NOFOLLOW | O_CLOEXEC, mode);
	saved = errno;
	close(dirfd);
	errno = saved;
	return fd;
}

char *
path_join(const char *a, const char *b)
{
	size_t la = strlen(a);

	if (la == 0)
		return xstrdup(b);
	if (a[la - 1] == '/')
		return xasprintf("%s%s", a, b);
	return xasprintf("%s/%s", a, b);
}

char *
path_absolute(const char *base, const char *path)
{
	char *joined, *out, *cwd = NULL;
	size_t n = 0;
	const char *p;

	if (path[0] == '/')
		joined = xstrdup(path);
	else {
		if (base == NULL) {
			cwd = getcwd(NULL, 0);
			if (cwd == NULL)
				cwd = xstrdup("/");
			base = cwd;
		}
		joined = path_join(base, path);
	}
	/* Normalise "//", "/./" and "/../" lexically. */
	out = xmalloc(strlen(joined) + 2);
	for (p = joined; *p != '\0';) {
		const char *e;
		size_t len;

		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		e = strchr(p, '/');
		len = e ? (size_t)(e - p) : strlen(p);
		if (len == 1 && p[0] == '.') {
			/* skip */
		} else if (len == 2 && p[0] == '.' && p[1] == '.') {
			while (n > 0 && out[n - 1] != '/')
				n--;
			if (n > 0)
				n--;
		} else {
			out[n++] = '/';
			memcpy(out + n, p, len);
			n += len;
		}
		p += len;
	}
	if (n == 0)
		out[n++] = '/';
	out[n] = '\0';
	free(joined);
	free(cwd);
	return out;
}

char *
path_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, slash - path);
}

char *
path_basename(const char *path)
{
	const char *slash = strrchr(path, '/');

	return xstrdup(slash ? slash + 1 : path);
}

int
path_mkdirs(const char *path)
{
	char *copy = xstrdup(path);
	struct stat st;

	for (char *p = copy + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, 0755) == -1 && errno != EEXIST) {
			free(copy);
			return -1;
		}
		*p = '/';
	}
	if (mkdir(copy, 0755) == -1 && errno != EEXIST) {
		free(copy);
		return -1;
	}
	free(copy);
	if (stat(path, &st) == -1)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

int
path_same_fs(const char *a, const char *b)
{
	struct stat sa, sb;

	if (stat(a, &sa) == -1 || stat(b, &sb) == -1)
		return -1;
	return sa.st_dev == sb.st_dev;
}

int
path_remove_tree_at(int parentfd, const char *name)
{
	struct stat st;
	DIR *dir;
	struct dirent *de;
	int fd, r = 0;

	if (fstatat(parentfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(parentfd, name, 0) == -1 && errno != ENOENT ? -1 : 0;
	fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return -1;
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (path_remove_tree_at(dirfd(dir), de->d_name) == -1)
			r = -1;
	}
	closedir(dir);
	if (r == 0 && unlinkat(parentfd, name, AT_REMOVEDIR) == -1 && errno != ENOENT)
		r = -1;
	return r;
}

int
path_remove_tree(const char *path)
{
	char *dir = path_dirname(path), *base = path_basename(path);
	int fd, r = -1;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd != -1) {
		r = path_remove_tree_at(fd, base);
		close(fd);
	}
	free(dir);
	free(base);
	return r;
}
