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

/* One run of a child: its pipes, its state, its deadlines. */
struct run {
	char *const		*argv;
	const struct spawn_opts	*opts;
	struct spawn_result	*res;
	size_t			 max;		/* output bytes kept */
	int			 in[2];		/* [0] the child's stdin, [1] ours to feed it */
	int			 out[2];	/* its stdout and stderr */
	int			 err[2];	/* its exec failure's errno */
	pid_t			 pid;
	int			 status, exited, killed;
	size_t			 input_off;
	uint64_t		 start, deadline, kill_at, exited_at;
};

/* The child's stdin: a dup of opts->stdin_fd, a socket we feed opts->input on, or /dev/null. */
static int
run_stdin(struct run *u)
{
	const struct spawn_opts *o = u->opts;

	/* A socket for stdin so that a child closing it early cannot SIGPIPE us. */
	if (o->stdin_fd > 0) {
		if ((u->in[0] = fcntl(o->stdin_fd, F_DUPFD_CLOEXEC, 3)) == -1) {
			log_errno("%s: stdin", u->argv[0]);
			return DS_ERR_SYSTEM;
		}
	} else if (o->input != NULL) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, u->in) == -1) {
			log_errno("%s: socketpair", u->argv[0]);
			return DS_ERR_SYSTEM;
		}
		shutdown(u->in[0], SHUT_WR);
		shutdown(u->in[1], SHUT_RD);
	} else if ((u->in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1) {
		log_errno("%s: /dev/null", u->argv[0]);
		return DS_ERR_SYSTEM;
	}
	return 0;
}

static void
close_fd(int *fd)
{
	if (*fd != -1)
		close(*fd);
	*fd = -1;
}

/* Forks and execs the child with its pipes; the parent keeps its ends, non-blocking. */
static int
run_start(struct run *u, char **env)
{
	int r;

	if ((r = run_stdin(u)) != 0)
		return r;
	if (pipe2(u->out, O_CLOEXEC) == -1 || pipe2(u->err, O_CLOEXEC) == -1) {
		log_errno("%s: pipe", u->argv[0]);
		return DS_ERR_SYSTEM;
	}
	if ((u->pid = fork()) == -1) {
		log_errno("%s: fork", u->argv[0]);
		return DS_ERR_SYSTEM;
	}
	if (u->pid == 0)
		child_exec(u->argv, u->opts, env, u->in[0], u->out[1], u->err[1]);
	(void)setpgid(u->pid, u->pid);	/* also here: whichever runs first wins the race */
	close_fd(&u->in[0]);
	close_fd(&u->out[1]);
	close_fd(&u->err[1]);
	if (u->in[1] != -1) {
		(void)fcntl(u->in[1], F_SETFL, fcntl(u->in[1], F_GETFL) | O_NONBLOCK);
		if (u->opts->input_len == 0)
			close_fd(&u->in[1]);
	}
	(void)fcntl(u->out[0], F_SETFL, fcntl(u->out[0], F_GETFL) | O_NONBLOCK);
	return 0;
}

/* Past the deadline: SIGTERM to the child's group, SIGKILL after the grace. */
static void
run_enforce_deadline(struct run *u, uint64_t now)
{
	if (!u->exited && u->deadline != 0 && now >= u->deadline && !u->killed) {
		(void)kill(-u->pid, SIGTERM);
		u->killed = 1;
		u->res->timed_out = 1;
		u->kill_at = now + SPAWN_KILL_GRACE_MS;
	}
	if (u->killed == 1 && !u->exited && now >= u->kill_at) {
		(void)kill(-u->pid, SIGKILL);
		u->killed = 2;
	}
}

/* Reads what output is there and feeds what input it takes; 0 or DS_ERR_SYSTEM. */
static int
run_io(struct run *u)
{
	if (u->out[0] != -1) {
		char buf[8192];
		ssize_t n;

		while ((n = read(u->out[0], buf, sizeof(buf))) > 0)
			output_append(u->res, u->max, buf, (size_t)n);
		if (n == 0)
			close_fd(&u->out[0]);
		else if (errno != EAGAIN && errno != EINTR) {
			log_errno("%s: reading its output", u->argv[0]);
			return DS_ERR_SYSTEM;
		}
	}
	if (u->in[1] != -1) {
		ssize_t n = send(u->in[1], (const char *)u->opts->input + u->input_off,
		    u->opts->input_len - u->input_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0)
			u->input_off += (size_t)n;
		/* A child that stops reading its stdin early is its own business. */
		if (u->input_off == u->opts->input_len ||
		    (n == -1 && errno != EAGAIN && errno != EINTR))
			close_fd(&u->in[1]);
	}
	return 0;
}

/* Until the child has exited and its output is drained (or lingered on). */
static int
run_wait(struct run *u)
{
	for (;;) {
		struct pollfd pfd[2];
		nfds_t nfd = 0;
		uint64_t now;
		int r;

		if (!u->exited) {
			pid_t w = waitpid(u->pid, &u->status, WNOHANG);
			if (w == u->pid) {
				u->exited = 1;
				u->exited_at = util_now_ms();
			} else if (w == -1 && errno != EINTR) {
				log_errno("%s: waitpid", u->argv[0]);
				return DS_ERR_SYSTEM;
			}
		}
		now = util_now_ms();
		if (u->exited && (u->out[0] == -1 || now >= u->exited_at + SPAWN_LINGER_MS))
			return 0;
		run_enforce_deadline(u, now);
		if (u->out[0] != -1) {
			pfd[nfd].fd = u->out[0];
			pfd[nfd++].events = POLLIN;
		}
		if (u->in[1] != -1) {
			pfd[nfd].fd = u->in[1];
			pfd[nfd++].events = POLLOUT;
		}
		if (poll(pfd, nfd, SPAWN_SLICE_MS) == -1 && errno != EINTR) {
			log_errno("%s: poll", u->argv[0]);
			return DS_ERR_SYSTEM;
		}
		if ((r = run_io(u)) != 0)
			return r;
	}
}

/* The exited child's result: exit code, an exec failure in its output, the error code. */
static int
run_result(struct run *u)
{
	struct spawn_result *res = u->res;
	int child_errno = 0;

	if (read(u->err[0], &child_errno, sizeof(child_errno)) == (ssize_t)sizeof(child_errno)) {
		char msg[512];
		const char *cwd = u->opts->cwd;
		int w = snprintf(msg, sizeof(msg), "cannot run %s%s%s: %s\n", u->argv[0],
		    cwd ? " in " : "", cwd ? cwd : "", strerror(child_errno));
		if (w > 0)
			output_append(res, u->max, msg,
			    (size_t)w < sizeof(msg) ? (size_t)w : sizeof(msg) - 1);
	}
	if (WIFEXITED(u->status))
		res->exit_code = WEXITSTATUS(u->status);
	else if (WIFSIGNALED(u->status))
		res->exit_code = 128 + WTERMSIG(u->status);
	u->pid = -1;
	if (res->timed_out)
		return DS_ERR_TIMEOUT;
	if (child_errno != 0 || res->exit_code != 0)
		return DS_ERR_CHILD;
	return 0;
}

/* At debug level: the command, how it ended, and each line of its output. */
static void
run_log(const struct run *u)
{
	const char *line = u->res->output;
	char *argstr;

	if (log_get_level() < LOG_LEVEL_DEBUG)
		return;
	argstr = spawn_argv_string(u->argv);
	log_debug("ran %s: exit %d%s, %lu ms", argstr, u->res->exit_code,
	    u->res->timed_out ? " (timed out)" : "", (unsigned long)(util_now_ms() - u->start));
	while (line != NULL && *line != '\0') {
		const char *nl = strchr(line, '\n');
		int len = nl ? (int)(nl - line) : (int)strlen(line);
		log_debug("%s: %.*s", u->argv[0], len, line);
		line = nl ? nl + 1 : NULL;
	}
	free(argstr);
}

int
spawn_run(char *const *argv, const struct spawn_opts *opts, struct spawn_result *res)
{
	static const struct spawn_opts no_opts;
	struct run u;
	char **env = NULL;
	int r;

	if (opts == NULL)
		opts = &no_opts;
	memset(res, 0, sizeof(*res));
	res->exit_code = -1;
	memset(&u, 0, sizeof(u));
	u.argv = argv;
	u.opts = opts;
	u.res = res;
	u.pid = -1;
	u.in[0] = u.in[1] = u.out[0] = u.out[1] = u.err[0] = u.err[1] = -1;
	u.max = opts->output_max ? opts->output_max : SPAWN_OUTPUT_MAX;
	res->output = xmalloc(u.max + 1);
	res->output[0] = '\0';
	if (argv == NULL || argv[0] == NULL) {
		log_error("spawn: empty command");
		return DS_ERR_INVALID;
	}
	u.start = util_now_ms();
	if (opts->timeout_ms > 0)
		u.deadline = u.start + opts->timeout_ms;
	env = env_build(opts->env);
	if ((r = run_start(&u, env)) == 0 && (r = run_wait(&u)) == 0) {
		r = run_result(&u);
		run_log(&u);
	}
	if (u.pid > 0) {
		/* Bailing out on an internal error: do not leave the child behind. */
		(void)kill(-u.pid, SIGKILL);
		while (waitpid(u.pid, &u.status, 0) == -1 && errno == EINTR)
			;
	}
	res->elapsed_ms = (unsigned long)(util_now_ms() - u.start);
	for (int i = 0; i < 2; i++) {
		close_fd(&u.in[i]);
		close_fd(&u.out[i]);
		close_fd(&u.err[i]);
	}
	free(env);
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
