/*
 * Peak memory of one call, for tests that bound what a hostile input can
 * make a decoder allocate: the call runs in a forked child, whose peak RSS
 * (ru_maxrss) grows from what it inherited by what the call touched.
 */
#ifndef DS_TEST_RSS_H
#define DS_TEST_RSS_H

#include <sys/resource.h>
#include <sys/wait.h>

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

/*
 * Runs fn(arg) in a child; *growth_mb gets how far its peak RSS rose, in
 * MiB, and *result what fn returned. Returns 0, or -1 when the child could
 * not be run or died (a crash is a failure too).
 */
static inline int
rss_run(int (*fn)(void *), void *arg, long *growth_mb, int *result)
{
	int fds[2], status;
	long out[2] = { 0, 0 };
	pid_t pid;

	fflush(stdout);
	if (pipe(fds) != 0 || (pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		struct rusage before, after;

		close(fds[0]);
		getrusage(RUSAGE_SELF, &before);
		out[1] = fn(arg);
		getrusage(RUSAGE_SELF, &after);
		out[0] = (after.ru_maxrss - before.ru_maxrss) / 1024;
		if (write(fds[1], out, sizeof(out)) != (ssize_t)sizeof(out))
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	if (read(fds[0], out, sizeof(out)) != (ssize_t)sizeof(out)) {
		close(fds[0]);
		waitpid(pid, &status, 0);
		return -1;
	}
	close(fds[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -1;
	*growth_mb = out[0];
	*result = (int)out[1];
	return 0;
}

#endif
