/*
 * Permission errors an admin can act on: which path, who owns it, its mode,
 * and the user distsync runs as ("/opt/o3/distribution/db/conf.d is owned
 * by root (mode 0755), distsync runs as openmrs: chown it to openmrs, or run
 * distsync as root with owner: set for the host"). An apply checks what it
 * will write before its commit point, so a tree it cannot change is refused
 * with the tree untouched (exit 3) rather than half-done.
 */
#ifndef DS_PERM_H
#define DS_PERM_H

/*
 * Logs why the user distsync runs as may not change REL under ROOTFD
 * (shown as DIR/REL; REL "." or "" is DIR itself): its owner, group and
 * mode, and what to do. Logged as an error naming the path. Keeps errno.
 */
void	perm_explain(int rootfd, const char *dir, const char *rel);

/*
 * 0 when the user distsync runs as may create and remove entries in the
 * directory REL under ROOTFD (write and search; what is not a directory yet
 * counts as writable: the apply makes it, and its parent is checked), else
 * DS_ERR_PRECONDITION with perm_explain's message.
 */
int	perm_check_dir(int rootfd, const char *dir, const char *rel);

/*
 * 0 when the user distsync runs as may change the mode of REL under
 * ROOTFD (its owner, or root; absent, a symlink, or with ONLY_DIR not a
 * directory, counts as yes: the apply replaces it), else
 * DS_ERR_PRECONDITION with perm_explain's message.
 */
int	perm_check_owner(int rootfd, const char *dir, const char *rel, int only_dir);

#endif
