/*
 * Who owns what an apply places: the host's owner and group (config) as
 * ids, set on each new file, directory and symlink. Ownership is best
 * effort: an unprivileged run keeps its own ids and says so in a warning.
 */
#ifndef DS_OWNER_H
#define DS_OWNER_H

/*
 * Looks up OWNER and GROUP (either NULL or "": leave alone, -1). Returns 0,
 * or DS_ERR_CONFIG (logged) for a name the system does not know.
 */
int	owner_resolve(const char *owner, const char *group, long *uid, long *gid);

/*
 * Sets the owner of NAME under DIRFD (not following a symlink) to UID:GID;
 * nothing when both are -1. A failure is logged as a warning, not returned.
 */
void	owner_set_at(int dirfd, const char *name, long uid, long gid);

#endif
