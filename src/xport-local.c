/*
 * A local target without SSH: fork, and the child runs the same receiver
 * code that `distsync serve` runs remotely, over a socketpair.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "log.h"
#include "receiver.h"
#include "xport-local.h"
#include "xport.h"

int
xport_local_open(const struct config *config, const struct config_host *host,
    struct xport **out)
{
	struct receiver_options ro = { .config = config, .host = host };
	struct xport *child_x;
	int sv[2], r;
	pid_t pid;

	*out = NULL;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		log_errno("%s: socketpair", host->name);
		return DS_ERR_SYSTEM;
	}
	fflush(NULL);
	if ((pid = fork()) < 0) {
		log_errno("%s: fork", host->name);
		close(sv[0]);
		close(sv[1]);
		return DS_ERR_SYSTEM;
	}
	if (pid == 0) {
		close(sv[0]);
		signal(SIGPIPE, SIG_IGN);
		log_set_prefix(host->name);
		child_x = xport_fd_new(sv[1], sv[1], "initiator");
		r = receiver_run(child_x, &ro);
		xport_free(child_x);
		fflush(NULL);
		_exit(r == 0 ? 0 : ds_exit_code(r));
	}
	close(sv[1]);
	*out = xport_fd_new(sv[0], sv[0], host->name);
	xport_fd_set_child(*out, pid);
	(*out)->idle_timeout = host->idle_timeout;
	(*out)->bwlimit = host->bwlimit;
	return 0;
}

int
xport_exec_open(char *const *argv, const char *peer, struct xport **out)
{
	int sv[2];
	pid_t pid;

	*out = NULL;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		log_errno("%s: socketpair", peer);
		return DS_ERR_SYSTEM;
	}
	fflush(NULL);
	if ((pid = fork()) < 0) {
		log_errno("%s: fork", peer);
		close(sv[0]);
		close(sv[1]);
		return DS_ERR_SYSTEM;
	}
	if (pid == 0) {
		if (dup2(sv[1], STDIN_FILENO) < 0 || dup2(sv[1], STDOUT_FILENO) < 0)
			_exit(127);
		execv(argv[0], argv);
		log_errno("%s: cannot run %s", peer, argv[0]);
		_exit(127);
	}
	close(sv[1]);
	*out = xport_fd_new(sv[0], sv[0], peer);
	xport_fd_set_child(*out, pid);
	return 0;
}
