/* Transports without SSH: a forked child over a socketpair. */
#ifndef DS_XPORT_LOCAL_H
#define DS_XPORT_LOCAL_H

struct xport;

/*
 * Forks a child that runs CHILD_MAIN(x, ARG) over one end of a socketpair
 * (its log lines prefixed with PEER; it exits with ds_exit_code of the
 * result), and returns the other end as *out, named PEER (caller frees with
 * xport_free; closing reaps the child and returns its exit code).
 */
int	xport_fork_open(const char *peer, int (*child_main)(struct xport *x, void *arg),
	    void *arg, struct xport **out);

/*
 * Runs ARGV (no shell) with its stdin and stdout on a socketpair and returns
 * the other end as *out, named PEER; closing reaps the child. Used to run
 * `distsync serve` locally, which exercises the remote path without SSH.
 */
int	xport_exec_open(char *const *argv, const char *peer, struct xport **out);

#endif
