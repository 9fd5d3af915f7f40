/*
 * Transports without SSH: a forked child running a function of the caller's
 * (a local target's receiver) or a program (`distsync serve`), over a
 * socketpair. The transport knows nothing of what the child does.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "wire/xport-local.h"
#include "wire/xport.h"

/*
 * A socketpair and a fork: in the parent *pid is the child and sv[0] ours;
 * in the child *pid is 0 and sv[1] its end. Logs and returns DS_ERR_SYSTEM.
 */
static int
fork_pair(const char *peer, int sv[2], pid_t *pid)
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		log_errno("%s: socketpair", peer);
		return DS_ERR_SYSTEM;
	}
	fflush(NULL);
	if ((*pid = fork()) < 0) {
		log_errno("%s: fork", peer);
		close(sv[0]);
		close(sv[1]);
		return DS_ERR_SYSTEM;
	}
	if (*pid == 0)
		close(sv[0]);
	else
		close(sv[1]);
	return 0;
}

int
xport_fork_open(const char *peer, int (*child_main)(struct xport *x, void *arg), void *arg,
    struct xport **out)
{
	struct xport *child_x;
	int sv[2], r;
	pid_t pid;

	*out = NULL;
	if ((r = fork_pair(peer, sv, &pid)) != 0)
		return r;
	if (pid == 0) {
		signal(SIGPIPE, SIG_IGN);
		log_set_prefix(peer);
		child_x = xport_fd_new(sv[1], sv[1], "initiator");
		r = child_main(child_x, arg);
		xport_free(child_x);
		fflush(NULL);
		_exit(r == 0 ? 0 : ds_exit_code(r));
	}
	*out = xport_fd_new(sv[0], sv[0], peer);
	xport_fd_set_child(*out, pid);
	return 0;
}

int
xport_exec_open(char *const *argv, const char *peer, struct xport **out)
{
	int sv[2], r;
	pid_t pid;

	*out = NULL;
	if ((r = fork_pair(peer, sv, &pid)) != 0)
		return r;
	if (pid == 0) {
		if (dup2(sv[1], STDIN_FILENO) < 0 || dup2(sv[1], STDOUT_FILENO) < 0)
			_exit(127);
		execv(argv[0], argv);
		log_errno("%s: cannot run %s", peer, argv[0]);
		_exit(127);
	}
	*out = xport_fd_new(sv[0], sv[0], peer);
	xport_fd_set_child(*out, pid);
	return 0;
}
