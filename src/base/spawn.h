/*
 * Running external programs: an argv (never a shell), in a process group of
 * its own, with a time limit, stdin from a buffer, a file or /dev/null, and
 * stdout and stderr captured together (and copied to the debug log line by
 * line).
 */
#ifndef DS_SPAWN_H
#define DS_SPAWN_H

#include <stddef.h>

#define SPAWN_OUTPUT_MAX	(64 * 1024)	/* bytes of output kept; the rest is dropped */

struct spawn_opts {
	const char	 *cwd;		/* working directory, or NULL: ours */
	char *const	 *env;		/* "NAME=value" added to our environment, NULL-terminated, or NULL */
	const void	 *input;	/* bytes written to the child's stdin, or NULL: /dev/null */
	size_t		  input_len;
	int		  stdin_fd;	/* > 0: the child's stdin instead (a file; ours stays open) */
	unsigned	  timeout_ms;	/* 0: no limit */
	size_t		  output_max;	/* 0: SPAWN_OUTPUT_MAX */
};

struct spawn_result {
	int		 exit_code;	/* exit status; 128+N when killed by signal N; -1 when not run */
	int		 timed_out;	/* 1: killed because the time limit passed */
	char		*output;	/* stdout and stderr as they came, NUL-terminated, never NULL after spawn_run */
	size_t		 output_len;
	int		 truncated;	/* 1: output passed the limit and was cut */
	unsigned long	 elapsed_ms;
};

/*
 * Runs argv (argv[0] searched in PATH) and waits for it. The child is the
 * leader of a new process group; on timeout the group gets SIGTERM, then
 * SIGKILL two seconds later. Returns 0 when it exited with status 0,
 * DS_ERR_TIMEOUT when the limit passed, DS_ERR_CHILD when it exited non-zero,
 * died by a signal or could not be executed (output then says why), or
 * DS_ERR_SYSTEM when it could not be started (logged). Nothing is logged for a
 * child's failure: the caller knows what the command was for. opts may be NULL.
 * res is always filled; release it with spawn_result_release.
 */
int	spawn_run(char *const *argv, const struct spawn_opts *opts, struct spawn_result *res);

/* Frees what spawn_run put in res (safe on a zeroed or released result). */
void	spawn_result_release(struct spawn_result *res);

/* Returns a newly allocated "argv[0] argv[1] ..." for messages, quoting words with spaces. */
char	*spawn_argv_string(char *const *argv);

#endif
