/*
 * Where a site's commands run (restarts, health checks, run_once): the
 * working directory, the environment, and docker compose, v2 plugin or v1
 * binary, whichever this machine has. restart.c and runonce.c share it.
 *
 * Commands run in the host's compose directory, else the config file's
 * directory, else the target, with DISTSYNC_TARGET (the absolute target),
 * DISTSYNC_HOST and, when the host names a compose project,
 * COMPOSE_PROJECT_NAME in their environment, as the user distsync runs as.
 */
#ifndef DS_COMMAND_H
#define DS_COMMAND_H

struct config;
struct config_host;
struct spawn_result;

struct command_ctx {
	const struct config *config;
	const struct config_host *host;
	char	*target;	/* absolute target directory, or NULL */
	char	*compose_dir;	/* absolute, or NULL */
	char	*compose_file;	/* absolute, or NULL: let compose look */
	char	*workdir;	/* where commands run (see above) */
	char	*env[5];	/* DISTSYNC_TARGET, DISTSYNC_HOST, COMPOSE_PROJECT_NAME; NULL-ended */
};

/* Fills ctx for HOST of CONFIG; release with command_ctx_release. Does not fail. */
void	command_ctx_init(struct command_ctx *ctx, const struct config *config,
	    const struct config_host *host);
void	command_ctx_release(struct command_ctx *ctx);

/* PATH made absolute against the config file's directory (caller frees); NULL for NULL. */
char	*command_config_path(const struct config *config, const char *path);

/*
 * The argv of a compose subcommand: "docker compose" (v2) when it answers,
 * else "docker-compose" (v1) (DISTSYNC_COMPOSE, "docker compose" or
 * "docker-compose", overrides the detection), with "-f FILE" when the
 * compose directory holds one of the usual compose file names,
 * "--project-directory DIR", "-p NAME" when the host names a project, then
 * ARGS. WHAT names the user of compose in messages ("service backend",
 * "run_once[0]"). *out is an array the caller frees (its strings are
 * borrowed from ctx and ARGS). DS_ERR_CONFIG (logged) when the host has no
 * compose directory, DS_ERR_CHILD (logged) when no compose works here.
 */
int	command_compose_argv(const struct command_ctx *ctx, const char *what, char *const *args,
	    char ***out);

/*
 * Runs a compose subcommand (command_compose_argv's) in the compose
 * directory within TIMEOUT_MS; res is the caller's to release (spawn.h),
 * and zeroed (output NULL) when compose could not even be started.
 */
int	command_compose_run(const struct command_ctx *ctx, const char *what, char *const *args,
	    unsigned timeout_ms, struct spawn_result *res);

#endif
