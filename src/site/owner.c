/* Ownership of applied files (owner.h). */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "site/owner.h"

int
owner_resolve(const char *owner, const char *group, long *uid, long *gid)
{
	struct passwd *pw;
	struct group *gr;

	*uid = *gid = -1;
	if (owner != NULL && *owner != '\0') {
		if ((pw = getpwnam(owner)) == NULL) {
			log_error("owner '%s': no such user", owner);
			return DS_ERR_CONFIG;
		}
		*uid = (long)pw->pw_uid;
	}
	if (group != NULL && *group != '\0') {
		if ((gr = getgrnam(group)) == NULL) {
			log_error("group '%s': no such group", group);
			return DS_ERR_CONFIG;
		}
		*gid = (long)gr->gr_gid;
	}
	return 0;
}

void
owner_set_at(int dirfd, const char *name, long uid, long gid)
{
	if (uid == -1 && gid == -1)
		return;
	/* Ownership is best effort only when unprivileged; a root run must not fail silently. */
	if (fchownat(dirfd, name, (uid_t)uid, (gid_t)gid, AT_SYMLINK_NOFOLLOW) == -1)
		log_warn("%s: chown %ld:%ld: %s", name, uid, gid, strerror(errno));
}
