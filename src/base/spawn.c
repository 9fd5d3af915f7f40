/* Running external programs by argv, with a time limit and captured output. */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/spawn.h"
#include "base/util.h"
#include "base/xmalloc.h"

extern char **environ;

#define SPAWN_KILL_GRACE_MS	2000	/* between SIGTERM and SIGKILL */
#define SPAWN_LINGER_MS		200	/* reading after the child exited while a grandchild holds the pipe */
#define SPAWN_SLICE_MS		20

static int
env_name_matches(const char *a, const char *b)
{
	const char *ea = strchr(a, '='), *eb = strchr(b, '=');
	size_t la = ea ? (size_t)(ea - a) : strlen(a);
	size_t lb = eb ? (size_t)(eb - b) : strlen(b);

	return la == lb && memcmp(a, b, la) == 0;
}

/* Our environment with ADD's entries replacing or extending it; array only, strings shared. */
static char **
env_build(char *const *add)
{
	size_t n = 0, nadd = 0, k = 0;
	char **env;

	while (environ != NULL && environ[n] != NULL)
		n++;
	while (add != NULL && add[nadd] != NULL)
		nadd++;
	env = xcalloc(n + nadd + 1, sizeof(*env));
	for (size_t i = 0; i < n; i++) {
		int replaced = 0;
		for (size_t j = 0; j < nadd; j++)
			if (env_name_matches(environ[i], add[j]))
				replaced = 1;
		if (!replaced)
			env[k++] = environ[i];
	}
	for (size_t j = 0; j < nadd; j++)
		env[k++] = add[j];
	env[k] = NULL;
	return env;
}

char *
spawn_argv_string(char *const *argv)
{
	size_t len = 1, off = 0;
	char *s;

	for (size_t i = 0; argv != NULL && argv[i] != NULL; i++)
		len += strlen(argv[i]) + 3;
	s = xmalloc(len);
	s[0] = '\0';
	for (size_t i = 0; argv != NULL && argv[i] != NULL; i++) {
		int quote = argv[i][0] == '\0' || strpbrk(argv[i], " \t\n\"'") != NULL;
		int w = snprintf(s + off, len - off, "%s%s%s%s", i > 0 ? " " : "",
		    quote ? "'" : "", argv[i], quote ? "'" : "");
		if (w < 0 || (size_t)w >= len - off)
			break;
		off += (size_t)w;
	}
	return s;
}

static void
output_append(struct spawn_result *res, size_t max, const char *data, size_t len)
{
	size_t room = max - res->output_len;

	if (len > room) {
		len = room;
		res->truncated = 1;
	}
	if (len == 0)
		return;
	memcpy(res->output + res->output_len, data, len);
	res->output_len += len;
	res->output[res->output_len] = '\0';
}

/* In the child: never returns. Only async-signal-safe calls from here on. */
static void
child_exec(char *const *argv, const struct spawn_opts *opts, char **env, int infd, int outfd,
    int errfd)
{
	struct sigaction sa;
	sigset_t none;
	int e;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	(void)setpgid(0, 0);
	if (dup2(infd, STDIN_FILENO) == -1 || dup2(outfd, STDOUT_FILENO) == -1 ||
	    dup2(outfd, STDERR_FILENO) == -1)
		goto fail;
	if (infd > STDERR_FILENO)
		close(infd);
	if (outfd > STDERR_FILENO)
		close(outfd);
	if (opts->cwd != NULL && chdir(opts->cwd) == -1)
		goto fail;
	environ = env;
	execvp(argv[0], argv);
fail:
	e = errno;
	(void)!write(errfd, &e, sizeof(e));
	_exit(127);
}

int
spawn_run(char *const *argv, const struct spawn_opts *opts, struct spawn_result *res)
{
	static const struct spawn_opts no_opts;
	int inpair[2] = { -1, -1 }, outpipe[2] = { -1, -1 }, errpipe[2] = { -1, -1 };
	int status = 0, exited = 0, killed = 0, child_errno = 0, r = DS_ERR_SYSTEM;
	uint64_t start, deadline = 0, kill_at = 0, exited_at = 0;
	size_t max, input_off = 0;
	char **env = NULL, *argstr = NULL;
	pid_t pid = -1;

	if (opts == NULL)
		opts = &no_opts;
	memset(res, 0, sizeof(*res));
	res->exit_code = -1;
	max = opts->output_max ? opts->output_max : SPAWN_OUTPUT_MAX;
	res->output = xmalloc(max + 1);
	res->output[0] = '\0';
	if (argv == NULL || argv[0] == NULL) {
		log_error("spawn: empty command");
		return DS_ERR_INVALID;
	}
	start = util_now_ms();
	if (opts->timeout_ms > 0)
		deadline = start + opts->timeout_ms;

	/* A socket for stdin so that a child closing it early cannot SIGPIPE us. */
	if (opts->stdin_fd > 0) {
		if ((inpair[0] = fcntl(opts->stdin_fd, F_DUPFD_CLOEXEC, 3)) == -1) {
			log_errno("%s: stdin", argv[0]);
			goto out;
		}
	} else if (opts->input != NULL) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, inpair) == -1) {
			log_errno("%s: socketpair", argv[0]);
			goto out;
		}
		shutdown(inpair[0], SHUT_WR);
		shutdown(inpair[1], SHUT_RD);
	} else if ((inpair[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1) {
		log_errno("%s: /dev/null", argv[0]);
		goto out;
	}
	if (pipe2(outpipe, O_CLOEXEC) == -1 || pipe2(errpipe, O_CLOEXEC) == -1) {
		log_errno("%s: pipe", argv[0]);
		goto out;
	}
	env = env_build(opts->env);

	if ((pid = fork()) == -1) {
		log_errno("%s: fork", argv[0]);
		goto out;
	}
	if (pid == 0)
		child_exec(argv, opts, env, inpair[0], outpipe[1], errpipe[1]);
	(void)setpgid(pid, pid);	/* also here: whichever runs first wins the race */
	close(inpair[0]);
	inpair[0] = -1;
	close(outpipe[1]);
	outpipe[1] = -1;
	close(errpipe[1]);
	errpipe[1] = -1;
	if (inpair[1] != -1) {
		(void)fcntl(inpair[1], F_SETFL, fcntl(inpair[1], F_GETFL) | O_NONBLOCK);
		if (opts->input_len == 0) {
			close(inpair[1]);
			inpair[1] = -1;
		}
	}
	(void)fcntl(outpipe[0], F_SETFL, fcntl(outpipe[0], F_GETFL) | O_NONBLOCK);

	for (;;) {
		struct pollfd pfd[2];
		nfds_t nfd = 0;
		uint64_t now;

		if (!exited) {
			pid_t w = waitpid(pid, &status, WNOHANG);
			if (w == pid) {
				exited = 1;
				exited_at = util_now_ms();
			} else if (w == -1 && errno != EINTR) {
				log_errno("%s: waitpid", argv[0]);
				goto out;
			}
		}
		now = util_now_ms();
		if (exited && (outpipe[0] == -1 || now >= exited_at + SPAWN_LINGER_MS))
			break;
		if (!exited && deadline != 0 && now >= deadline && !killed) {
			(void)kill(-pid, SIGTERM);
			killed = 1;
			res->timed_out = 1;
			kill_at = now + SPAWN_KILL_GRACE_MS;
		}
		if (killed == 1 && !exited && now >= kill_at) {
			(void)kill(-pid, SIGKILL);
			killed = 2;
		}
		if (outpipe[0] != -1) {
			pfd[nfd].fd = outpipe[0];
			pfd[nfd].events = POLLIN;
			nfd++;
		}
		if (inpair[1] != -1) {
			pfd[nfd].fd = inpair[1];
			pfd[nfd].events = POLLOUT;
			nfd++;
		}
		if (poll(pfd, nfd, SPAWN_SLICE_MS) == -1 && errno != EINTR) {
			log_errno("%s: poll", argv[0]);
			goto out;
		}
		if (outpipe[0] != -1) {
			char buf[8192];
			ssize_t n;

			while ((n = read(outpipe[0], buf, sizeof(buf))) > 0)
				output_append(res, max, buf, (size_t)n);
			if (n == 0) {
				close(outpipe[0]);
				outpipe[0] = -1;
			} else if (errno != EAGAIN && errno != EINTR) {
				log_errno("%s: reading its output", argv[0]);
				goto out;
			}
		}
		if (inpair[1] != -1) {
			ssize_t n = send(inpair[1], (const char *)opts->input + input_off,
			    opts->input_len - input_off, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0)
				input_off += (size_t)n;
			/* A child that stops reading its stdin early is its own business. */
			if (input_off == opts->input_len ||
			    (n == -1 && errno != EAGAIN && errno != EINTR)) {
				close(inpair[1]);
				inpair[1] = -1;
			}
		}
	}

	if (read(errpipe[0], &child_errno, sizeof(child_errno)) == (ssize_t)sizeof(child_errno)) {
		char msg[512];
		int w = snprintf(msg, sizeof(msg), "cannot run %s%s%s: %s\n", argv[0],
		    opts->cwd ? " in " : "", opts->cwd ? opts->cwd : "", strerror(child_errno));
		if (w > 0)
			output_append(res, max, msg, (size_t)w < sizeof(msg) ? (size_t)w : sizeof(msg) - 1);
	}
	if (WIFEXITED(status))
		res->exit_code = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		res->exit_code = 128 + WTERMSIG(status);
	pid = -1;
	if (res->timed_out)
		r = DS_ERR_TIMEOUT;
	else if (child_errno != 0 || res->exit_code != 0)
		r = DS_ERR_CHILD;
	else
		r = 0;

	if (log_get_level() >= LOG_LEVEL_DEBUG) {
		const char *line = res->output;
		argstr = spawn_argv_string(argv);
		log_debug("ran %s: exit %d%s, %lu ms", argstr, res->exit_code,
		    res->timed_out ? " (timed out)" : "", (unsigned long)(util_now_ms() - start));
		while (line != NULL && *line != '\0') {
			const char *nl = strchr(line, '\n');
			int len = nl ? (int)(nl - line) : (int)strlen(line);
			log_debug("%s: %.*s", argv[0], len, line);
			line = nl ? nl + 1 : NULL;
		}
	}
out:
	if (pid > 0) {
		/* Bailing out on an internal error: do not leave the child behind. */
		(void)kill(-pid, SIGKILL);
		while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
			;
	}
	res->elapsed_ms = (unsigned long)(util_now_ms() - start);
	for (int i = 0; i < 2; i++) {
		if (inpair[i] != -1)
			close(inpair[i]);
		if (outpipe[i] != -1)
			close(outpipe[i]);
		if (errpipe[i] != -1)
			close(errpipe[i]);
	}
	free(env);
	free(argstr);
	return r;
}

void
spawn_result_release(struct spawn_result *res)
{
	if (res == NULL)
		return;
	free(res->output);
	res->output = NULL;
	res->output_len = 0;
}
