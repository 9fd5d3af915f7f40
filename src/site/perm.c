/* Permission errors with the owner, the mode and the user (perm.h). */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "site/perm.h"

static const char *
rel_or_dot(const char *rel)
{
	return rel == NULL || rel[0] == '\0' ? "." : rel;
}

/* A user's name, else its number. */
static void
user_name(uid_t uid, char *buf, size_t size)
{
	struct passwd *pw = getpwuid(uid);

	if (pw != NULL)
		snprintf(buf, size, "%s", pw->pw_name);
	else
		snprintf(buf, size, "uid %lu", (unsigned long)uid);
}

static void
group_name(gid_t gid, char *buf, size_t size)
{
	struct group *gr = getgrgid(gid);

	if (gr != NULL)
		snprintf(buf, size, "%s", gr->gr_name);
	else
		snprintf(buf, size, "gid %lu", (unsigned long)gid);
}

void
perm_explain(int rootfd, const char *dir, const char *rel)
{
	const char *r = rel_or_dot(rel);
	char owner[64], group[64], me[64];
	struct stat st;
	int saved = errno;

	user_name(geteuid(), me, sizeof(me));
	if (fstatat(rootfd, r, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		log_error("%s%s%s: %s (distsync runs as %s)", dir, strcmp(r, ".") ? "/" : "",
		    strcmp(r, ".") ? r : "", strerror(saved), me);
		errno = saved;
		return;
	}
	user_name(st.st_uid, owner, sizeof(owner));
	group_name(st.st_gid, group, sizeof(group));
	log_error("%s%s%s is owned by %s:%s (mode %04o) and distsync runs as %s: chown it "
	    "to %s, or run distsync as root with owner: set for the host",
	    dir, strcmp(r, ".") ? "/" : "", strcmp(r, ".") ? r : "", owner, group,
	    (unsigned)(st.st_mode & 07777), me, me);
	errno = saved;
}

int
perm_check_dir(int rootfd, const char *dir, const char *rel)
{
	const char *r = rel_or_dot(rel);
	struct stat st;

	/* Not there, or not a directory yet: the apply makes it, in a parent checked too. */
	if (fstatat(rootfd, r, &st, AT_SYMLINK_NOFOLLOW) == -1 || !S_ISDIR(st.st_mode))
		return 0;
	if (faccessat(rootfd, r, W_OK | X_OK, AT_EACCESS) == 0)
		return 0;
	if (errno != EACCES && errno != EPERM)
		return 0;	/* the apply itself says what else is wrong */
	perm_explain(rootfd, dir, r);
	return DS_ERR_PRECONDITION;
}

int
perm_check_owner(int rootfd, const char *dir, const char *rel, int only_dir)
{
	const char *r = rel_or_dot(rel);
	struct stat st;

	if (geteuid() == 0 || fstatat(rootfd, r, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
	    S_ISLNK(st.st_mode) || (only_dir && !S_ISDIR(st.st_mode)) || st.st_uid == geteuid())
		return 0;
	errno = EPERM;
	perm_explain(rootfd, dir, r);
	return DS_ERR_PRECONDITION;
}
