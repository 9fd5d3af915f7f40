#include "autoconf.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>

#include "base/err.h"
#include "base/spawn.h"
#include "base/xmalloc.h"
#include "tap.h"

static int
process_gone(pid_t pid)
{
	char path[64], state = 0;
	FILE *fp;

	if (kill(pid, 0) == -1 && errno == ESRCH)
		return 1;
	/* A zombie waiting for a reaper that is not us is gone too. */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fp = fopen(path, "r")) == NULL)
		return 1;
	if (fscanf(fp, "%*d %*s %c", &state) != 1)
		state = 0;
	fclose(fp);
	return state == 'Z';
}

/* 1 if TEXT starts with the decimal number WANT (after blanks). */
static int
atoi_safe_eq(const char *text, unsigned long want)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(text, &end, 10);
	return errno == 0 && end != text && v == want;
}

static pid_t
read_pid(const char *file)
{
	FILE *fp = fopen(file, "r");
	int pid = -1;

	if (fp == NULL)
		return -1;
	if (fscanf(fp, "%d", &pid) != 1)
		pid = -1;
	fclose(fp);
	return pid;
}

static void
test_exit_codes(void)
{
	static const struct {
		const char *argv[5];
		int r, exit_code;
		const char *output;
	} table[] = {
		{ { "true", NULL }, 0, 0, "" },
		{ { "false", NULL }, DS_ERR_CHILD, 1, "" },
		{ { "sh", "-c", "exit 3", NULL }, DS_ERR_CHILD, 3, "" },
		{ { "sh", "-c", "kill -9 $$", NULL }, DS_ERR_CHILD, 137, "" },
		{ { "sh", "-c", "echo out; echo err >&2", NULL }, 0, 0, "out\nerr\n" },
		{ { "printf", "%s", "a b", NULL }, 0, 0, "a b" },
		{ { "/nonexistent/program", NULL }, DS_ERR_CHILD, 127, "cannot run /nonexistent/program" },
		{ { "no-such-program-distsync", "x", NULL }, DS_ERR_CHILD, 127, "No such file" },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		struct spawn_result res;
		int r = spawn_run((char *const *)table[i].argv, NULL, &res);
		CHECK(r == table[i].r && res.exit_code == table[i].exit_code &&
		    strstr(res.output, table[i].output) != NULL,
		    "%s %s: r=%d exit=%d", table[i].argv[0],
		    table[i].argv[1] ? table[i].argv[1] : "", r, res.exit_code);
		spawn_result_release(&res);
	}
	{
		struct spawn_result res;
		char *empty[] = { NULL };
		CHECK(spawn_run(empty, NULL, &res) == DS_ERR_INVALID && res.exit_code == -1,
		    "an empty argv is refused");
		spawn_result_release(&res);
	}
	/* No shell: metacharacters reach the program as bytes. */
	{
		struct spawn_result res;
		char *argv[] = { "echo", "$HOME;", "`id`", "|", "*", NULL };
		int r = spawn_run(argv, NULL, &res);
		CHECK(r == 0 && strcmp(res.output, "$HOME; `id` | *\n") == 0,
		    "arguments are not interpreted by a shell");
		spawn_result_release(&res);
	}
}

static void
test_io(void)
{
	struct spawn_result res;
	char cwd[4096];
	char *cat[] = { "cat", NULL };
	char *pwd[] = { "pwd", NULL };
	char *env_argv[] = { "sh", "-c", "echo \"$DS_TEST_A-$DS_TEST_B\"", NULL };
	char *env_add[] = { "DS_TEST_A=one", "DS_TEST_B=two", NULL };
	char *yes[] = { "sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x", NULL };
	char *big_input_argv[] = { "wc", "-c", NULL };
	char *early_close[] = { "true", NULL };
	struct spawn_opts opts;
	char *big;
	int r;

	memset(&opts, 0, sizeof(opts));
	opts.input = "hello\nworld\n";
	opts.input_len = 12;
	r = spawn_run(cat, &opts, &res);
	CHECK(r == 0 && strcmp(res.output, "hello\nworld\n") == 0, "stdin from a buffer");
	spawn_result_release(&res);

	r = spawn_run(cat, NULL, &res);
	CHECK(r == 0 && res.output_len == 0, "stdin is /dev/null by default");
	spawn_result_release(&res);

	memset(&opts, 0, sizeof(opts));
	opts.cwd = "/";
	r = spawn_run(pwd, &opts, &res);
	CHECK(r == 0 && strcmp(res.output, "/\n") == 0, "runs in cwd");
	spawn_result_release(&res);

	opts.cwd = "/nonexistent-dir";
	r = spawn_run(pwd, &opts, &res);
	CHECK(r == DS_ERR_CHILD && strstr(res.output, "nonexistent-dir") != NULL,
	    "a missing cwd is reported");
	spawn_result_release(&res);

	if (getcwd(cwd, sizeof(cwd)) == NULL)
		cwd[0] = '\0';
	memset(&opts, 0, sizeof(opts));
	opts.env = env_add;
	setenv("DS_TEST_A", "old", 1);
	r = spawn_run(env_argv, &opts, &res);
	CHECK(r == 0 && strcmp(res.output, "one-two\n") == 0, "environment added and replaced");
	CHECK(strcmp(getenv("DS_TEST_A"), "old") == 0, "our own environment is untouched");
	unsetenv("DS_TEST_A");
	spawn_result_release(&res);

	memset(&opts, 0, sizeof(opts));
	opts.output_max = 1000;
	r = spawn_run(yes, &opts, &res);
	CHECK(r == 0 && res.output_len == 1000 && res.truncated && strlen(res.output) == 1000,
	    "output beyond the limit is cut, the child still finishes (%zu bytes)", res.output_len);
	spawn_result_release(&res);

	/* More input than a socket buffer holds, to a reader. */
	big = xmalloc(1 << 20);
	memset(big, 'y', 1 << 20);
	memset(&opts, 0, sizeof(opts));
	opts.input = big;
	opts.input_len = 1 << 20;
	r = spawn_run(big_input_argv, &opts, &res);
	CHECK(r == 0 && atoi_safe_eq(res.output, 1 << 20), "1 MiB of stdin arrives whole");
	spawn_result_release(&res);
	/* ... and to a child that never reads it: no SIGPIPE, no hang. */
	r = spawn_run(early_close, &opts, &res);
	CHECK(r == 0, "a child that ignores its stdin does not hurt us");
	spawn_result_release(&res);
	free(big);
}

/*
 * Runs argv with a time limit of 300 ms, doubled until the child had time to
 * write READY (a loaded machine may not even start a shell in 300 ms): what
 * is tested is what happens at the limit, which needs the child ready by then.
 */
static int
spawn_run_ready(char *const *argv, const char *ready, struct spawn_opts *opts,
    struct spawn_result *res)
{
	int r;

	for (opts->timeout_ms = 300;; opts->timeout_ms *= 2) {
		unlink(ready);
		r = spawn_run(argv, opts, res);
		if (read_pid(ready) > 0 || opts->timeout_ms >= 10000)
			return r;
		spawn_result_release(res);
	}
}

static void
test_timeout(void)
{
	struct spawn_result res;
	struct spawn_opts opts;
	char *sleeper[] = { "sleep", "30", NULL };
	char *group[] = { "sh", "-c", "sleep 30 & echo $! > bg.pid; wait", NULL };
	char *stubborn[] = { "sh", "-c", "trap '' TERM; echo $$ > sh.pid; while :; do sleep 0.1; done", NULL };
	char *detach[] = { "sh", "-c", "sleep 60 & echo $! > bg.pid; echo done", NULL };
	pid_t bg;
	int r;

	/* The bounds below only tell "killed at the limit" from "ran its course". */
	memset(&opts, 0, sizeof(opts));
	opts.timeout_ms = 300;
	r = spawn_run(sleeper, &opts, &res);
	CHECK(r == DS_ERR_TIMEOUT && res.timed_out && res.elapsed_ms < 15000,
	    "a slow child is killed at its time limit (%lu ms)", res.elapsed_ms);
	spawn_result_release(&res);

	r = spawn_run_ready(group, "bg.pid", &opts, &res);
	bg = read_pid("bg.pid");
	CHECK(r == DS_ERR_TIMEOUT && bg > 0, "timeout of a shell with a background child");
	/* Killed, then reaped by init: wait for that, a minute at most. */
	for (int i = 0; i < 3000 && bg > 0 && !process_gone(bg); i++)
		usleep(20000);
	CHECK(bg > 0 && process_gone(bg), "the whole process group was killed (pid %d)", (int)bg);
	if (bg > 0 && !process_gone(bg))
		kill(bg, SIGKILL);
	spawn_result_release(&res);

	/* sh.pid is written after the trap: SIGTERM came when it was ignored. */
	r = spawn_run_ready(stubborn, "sh.pid", &opts, &res);
	CHECK(r == DS_ERR_TIMEOUT && res.exit_code == 128 + SIGKILL && res.elapsed_ms >= 2000 &&
	    res.elapsed_ms < 30000, "SIGTERM ignored: SIGKILL after the grace period (%lu ms, exit %d)",
	    res.elapsed_ms, res.exit_code);
	spawn_result_release(&res);

	/* A grandchild holding the output pipe does not keep us waiting. */
	opts.timeout_ms = 120000;
	r = spawn_run(detach, &opts, &res);
	bg = read_pid("bg.pid");
	CHECK(r == 0 && strcmp(res.output, "done\n") == 0 && res.elapsed_ms < 30000,
	    "returns when the child exits although a grandchild holds the pipe (%lu ms)",
	    res.elapsed_ms);
	if (bg > 0)
		kill(bg, SIGKILL);
	spawn_result_release(&res);
}

static void
test_argv_string(void)
{
	static const struct { const char *argv[4]; const char *want; } table[] = {
		{ { "docker", "compose", "restart", NULL }, "docker compose restart" },
		{ { "sh", "-c", "echo hi", NULL }, "sh -c 'echo hi'" },
		{ { "a", "", NULL }, "a ''" },
		{ { NULL }, "" },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		char *s = spawn_argv_string((char *const *)table[i].argv);
		CHECK(strcmp(s, table[i].want) == 0, "argv string '%s'", s);
		free(s);
	}
}

int
main(void)
{
	signal(SIGPIPE, SIG_DFL);	/* we must not need SIG_IGN */
	tap_run("exit-codes", test_exit_codes);
	tap_run("io", test_io);
	tap_run("timeout", test_timeout);
	tap_run("argv-string", test_argv_string);
	return tap_done();
}
