/* Relative paths from untrusted sources, globs, and *at() helpers under a root fd. */
#ifndef DS_PATH_H
#define DS_PATH_H

#include <stddef.h>
#include <sys/types.h>

#define PATH_MAX_LEN	4096	/* longest relative path accepted */

/*
 * Returns 0 when PATH is a clean relative path: not empty, not absolute, no
 * "..", "." or empty components, no NUL and no newline within len, no
 * trailing '/', at most PATH_MAX_LEN bytes. Otherwise returns DS_ERR_INVALID
 * and, if why is not NULL, points it to a static reason. This is the rule
 * for a path in a tree of ours, wherever it comes in (a scan, an archive,
 * a manifest from a peer, a journal): what one refuses, none accepts.
 */
int	path_check(const char *path, size_t len, const char **why);

/*
 * Returns 0 when a symlink at PATH (clean, path_check) whose target is the
 * LEN bytes of TARGET stays inside the tree, however the tree's other
 * symlinks resolve: TARGET is not empty, not absolute, holds no NUL, is at
 * most PATH_MAX_LEN bytes, has ".." only as leading components (after a
 * name, "a/.." climbs out when a is a symlink to "."), and those do not
 * climb above the root. Otherwise DS_ERR_INVALID with *why (if why is not
 * NULL) pointing to a static reason.
 */
int	path_link_check(const char *path, const char *target, size_t len, const char **why);

/*
 * Matches a glob against a relative path: '*' and '?' stay within a component,
 * "**" matches any number of components (including none), "[...]" classes.
 * Returns 1 on a match, 0 otherwise.
 */
int	path_glob_match(const char *pattern, const char *path);

/* 1 when any glob of the NULL-terminated GLOBS (may be NULL: none) matches PATH. */
int	path_glob_match_any(char *const *globs, const char *path);

/* Returns 0 if PATTERN is a well-formed glob, else DS_ERR_INVALID with *why set. */
int	path_glob_check(const char *pattern, const char **why);

/*
 * Opens the directory that contains REL under ROOTFD without following any
 * symlink, optionally creating missing directories with mode 0755. Returns a
 * directory fd (caller closes) and points *base at REL's last component, or
 * -1 with errno set.
 */
int	path_open_parent(int rootfd, const char *rel, int create, const char **base);

/* Opens REL under ROOTFD with openat flags, never following a symlink on the way. */
int	path_openat(int rootfd, const char *rel, int flags, mode_t mode);

/* Joins a and b with one '/'; caller frees. */
char	*path_join(const char *a, const char *b);

/* Returns a newly allocated absolute, normalised form of PATH relative to BASE (or cwd if NULL). */
char	*path_absolute(const char *base, const char *path);

/* Returns a newly allocated directory part / last component of PATH. */
char	*path_dirname(const char *path);
char	*path_basename(const char *path);

/* mkdir -p with mode 0755; returns 0 or -1 with errno set. */
int	path_mkdirs(const char *path);

/* Returns 1 if both paths are on the same filesystem (st_dev), 0 if not, -1 on error. */
int	path_same_fs(const char *a, const char *b);

/* Removes a directory tree (no symlink is followed); returns 0 or -1. */
int	path_remove_tree(const char *path);
/*
 * Removes NAME under PARENTFD, a file or a whole tree, without following
 * symlinks; an entry that is already gone is not an error. 0 or -1 (errno).
 */
int	path_remove_tree_at(int parentfd, const char *name);

#endif
