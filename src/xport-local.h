/* Transports without SSH: a forked local receiver, or a pair of fds (serve). */
#ifndef DS_XPORT_LOCAL_H
#define DS_XPORT_LOCAL_H

#include <sys/types.h>

struct config;
struct config_host;
struct xport;

/*
 * Forks a child that runs receiver_run() for HOST's local target over one
 * end of a socketpair, and returns the other end as *out (caller frees with
 * xport_free; closing reaps the child and returns its exit code).
 */
int	xport_local_open(const struct config *config, const struct config_host *host,
	    struct xport **out);

/*
 * Runs ARGV (no shell) with its stdin and stdout on a socketpair and returns
 * the other end as *out, named PEER; closing reaps the child. Used to run
 * `distsync serve` locally, which exercises the remote path without SSH.
 */
int	xport_exec_open(char *const *argv, const char *peer, struct xport **out);

/*
 * Wraps two already open fds (e.g. stdin and stdout of `serve`) as a
 * transport named PEER. close closes both fds and returns 0.
 */
struct xport *xport_fd_new(int in_fd, int out_fd, const char *peer);

/* Makes closing x also reap CHILD, returning its exit status (or DS_ERR_CHILD on a signal). */
void	xport_fd_set_child(struct xport *x, pid_t child);

#endif
