/*
 * The two halves of `distsync pull`: the site runs cmd-pull.c (the receiver,
 * applying to its own target), which runs `distsync -c REPO serve --send
 * --host NAME` on the upstream over SSH; that remote half is pull_send().
 */
#ifndef DS_PULL_H
#define DS_PULL_H

#include <stdint.h>

struct pull_send_options {
	const char	*config_file;	/* the repository's config (-c), or NULL: distsync.yml */
	const char	*host;		/* the site's name in the repository's hosts: */
	const char	*release;	/* release id, or NULL: the latest */
	uint32_t	 flags;		/* PROTO_FLAG_* */
	unsigned	 lock_timeout;	/* seconds the site's receiver waits for its lock */
	uint64_t	 bwlimit;	/* bytes per second; 0: the host's config */
	unsigned	 idle_timeout;	/* seconds; 0: the host's config */
};

/*
 * Runs the sender of a pull on stdin/stdout: loads the repository, finds
 * the host, streams what the site lacks. Writes nothing but protocol to
 * stdout; errors go to stderr (the site prints them). Returns 0 when the
 * site applied the release, else a DS_ERR_*.
 */
int	pull_send(const struct pull_send_options *opt);

#endif
