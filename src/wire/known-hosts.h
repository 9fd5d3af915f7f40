/*
 * known_hosts files as ssh(1) reads them: several files at once (the user's
 * list, then the global one), plain and hashed host names, "[host]:port" off
 * port 22, @revoked keys; and appending a key. libssh 0.10 reads one user
 * file and one global file, stops at a line it cannot parse and ignores
 * @revoked; this module is what xport-ssh decides with.
 */
#ifndef DS_KNOWN_HOSTS_H
#define DS_KNOWN_HOSTS_H

#include <libssh/libssh.h>

/* A known_hosts file larger than this is refused. */
#define KNOWN_HOSTS_MAX_SIZE	(16 * 1024 * 1024)

enum known_hosts_state {
	KNOWN_HOSTS_MATCH,	/* a line records this key for the host */
	KNOWN_HOSTS_UNKNOWN,	/* no line records a key for the host */
	KNOWN_HOSTS_CHANGED,	/* a line records another key of the same type */
	KNOWN_HOSTS_OTHER_TYPE,	/* only keys of other types are recorded */
	KNOWN_HOSTS_REVOKED,	/* a @revoked line names this key */
};

struct known_hosts_result {
	enum known_hosts_state state;
	char		*file;		/* the deciding line's file; NULL when UNKNOWN */
	unsigned	 line;		/* its line number, 1-based */
	char		*recorded_type;	/* CHANGED, OTHER_TYPE: the recorded key's type */
};

/*
 * The host as known_hosts names it: "host", or "[host]:port" off port 22,
 * lowercased. The caller frees it.
 */
char	*known_hosts_name(const char *host, unsigned port);

/*
 * Looks KEY up for NAME (from known_hosts_name) in FILES (NULL-terminated;
 * a missing file is as an empty one; a line that does not parse is skipped)
 * and fills *RES (release it with known_hosts_result_release): REVOKED wins
 * over MATCH, MATCH over CHANGED, CHANGED over OTHER_TYPE. Returns 0, or
 * DS_ERR_SYSTEM / DS_ERR_INVALID for a file that cannot be read or is over
 * KNOWN_HOSTS_MAX_SIZE (logged naming it).
 */
int	known_hosts_check(char *const *files, const char *name, ssh_key key,
	    struct known_hosts_result *res);

void	known_hosts_result_release(struct known_hosts_result *res);

/*
 * Appends "NAME TYPE BASE64" for KEY to FILE, creating it (mode 0600) and,
 * when missing, its directory (mode 0700). Returns 0 or DS_ERR_SYSTEM
 * (logged naming the file).
 */
int	known_hosts_record(const char *file, const char *name, ssh_key key);

#endif
