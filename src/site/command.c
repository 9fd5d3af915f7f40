/* Where a site's commands run, and docker compose v2 or v1 (command.h). */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/path.h"
#include "base/spawn.h"
#include "base/xmalloc.h"
#include "config/config.h"
#include "site/command.h"

#define COMMAND_DETECT_TIMEOUT_MS	15000	/* "docker compose version" */

char *
command_config_path(const struct config *config, const char *path)
{
	if (path == NULL)
		return NULL;
	return path_absolute(config->dir, path);
}

void
command_ctx_init(struct command_ctx *ctx, const struct config *config,
    const struct config_host *host)
{
	static const char *const names[] = {
		"compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml", NULL
	};
	size_t n = 0;

	memset(ctx, 0, sizeof(*ctx));
	ctx->config = config;
	ctx->host = host;
	ctx->target = command_config_path(config, host->path);
	ctx->compose_dir = command_config_path(config, host->compose);
	/*
	 * Commands such as "docker compose exec db ..." expect the compose
	 * directory; without one, paths in a command are the config's.
	 */
	if (ctx->compose_dir != NULL)
		ctx->workdir = xstrdup(ctx->compose_dir);
	else if (config->dir != NULL)
		ctx->workdir = xstrdup(config->dir);
	else if (ctx->target != NULL)
		ctx->workdir = xstrdup(ctx->target);
	ctx->env[n++] = xasprintf("DISTSYNC_TARGET=%s", ctx->target ? ctx->target : "");
	ctx->env[n++] = xasprintf("DISTSYNC_HOST=%s", host->name ? host->name : "");
	if (host->compose_project != NULL)
		ctx->env[n++] = xasprintf("COMPOSE_PROJECT_NAME=%s", host->compose_project);
	ctx->env[n] = NULL;
	for (size_t i = 0; ctx->compose_dir != NULL && names[i] != NULL; i++) {
		char *f = path_join(ctx->compose_dir, names[i]);
		if (access(f, R_OK) == 0) {
			ctx->compose_file = f;
			break;
		}
		free(f);
	}
}

void
command_ctx_release(struct command_ctx *ctx)
{
	free(ctx->target);
	free(ctx->compose_dir);
	free(ctx->compose_file);
	free(ctx->workdir);
	for (size_t i = 0; ctx->env[i] != NULL; i++)
		free(ctx->env[i]);
	memset(ctx, 0, sizeof(*ctx));
}

enum compose_kind { COMPOSE_UNKNOWN, COMPOSE_V2, COMPOSE_V1, COMPOSE_MISSING };

static enum compose_kind
compose_detect(void)
{
	static enum compose_kind kind = COMPOSE_UNKNOWN;
	static char *const v2[] = { "docker", "compose", "version", NULL };
	static char *const v1[] = { "docker-compose", "version", NULL };
	struct spawn_opts opts = { .timeout_ms = COMMAND_DETECT_TIMEOUT_MS };
	struct spawn_result res;
	const char *forced = getenv("DISTSYNC_COMPOSE");

	if (forced != NULL && strcmp(forced, "docker compose") == 0)
		return COMPOSE_V2;
	if (forced != NULL && strcmp(forced, "docker-compose") == 0)
		return COMPOSE_V1;
	if (kind != COMPOSE_UNKNOWN)
		return kind;
	kind = COMPOSE_MISSING;
	if (spawn_run(v2, &opts, &res) == 0)
		kind = COMPOSE_V2;
	spawn_result_release(&res);
	if (kind == COMPOSE_MISSING) {
		if (spawn_run(v1, &opts, &res) == 0)
			kind = COMPOSE_V1;
		spawn_result_release(&res);
	}
	log_debug("docker compose: %s", kind == COMPOSE_V2 ? "v2 plugin (docker compose)" :
	    kind == COMPOSE_V1 ? "v1 (docker-compose)" : "not found");
	return kind;
}

int
command_compose_argv(const struct command_ctx *ctx, const char *what, char *const *args,
    char ***out)
{
	enum compose_kind kind;
	size_t n = 0;
	char **argv;

	*out = NULL;
	if (ctx->compose_dir == NULL) {
		log_error("host %s: %s uses docker compose, but the host has no compose "
		    "directory (hosts.%s.compose)", ctx->host->name, what, ctx->host->name);
		return DS_ERR_CONFIG;
	}
	if ((kind = compose_detect()) == COMPOSE_MISSING) {
		log_error("host %s: %s: neither 'docker compose' nor 'docker-compose' works here",
		    ctx->host->name, what);
		return DS_ERR_CHILD;
	}
	argv = xcalloc(10 + xstrv_len(args), sizeof(*argv));
	if (kind == COMPOSE_V2) {
		argv[n++] = "docker";
		argv[n++] = "compose";
	} else
		argv[n++] = "docker-compose";
	if (ctx->compose_file != NULL) {
		argv[n++] = "-f";
		argv[n++] = ctx->compose_file;
	}
	argv[n++] = "--project-directory";
	argv[n++] = ctx->compose_dir;
	if (ctx->host->compose_project != NULL) {
		argv[n++] = "-p";
		argv[n++] = ctx->host->compose_project;
	}
	for (size_t i = 0; args != NULL && args[i] != NULL; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	*out = argv;
	return 0;
}

int
command_compose_run(const struct command_ctx *ctx, const char *what, char *const *args,
    unsigned timeout_ms, struct spawn_result *res)
{
	struct spawn_opts opts = { .cwd = ctx->compose_dir, .timeout_ms = timeout_ms };
	char **argv = NULL;
	int r;

	memset(res, 0, sizeof(*res));
	if ((r = command_compose_argv(ctx, what, args, &argv)) != 0)
		return r;
	r = spawn_run(argv, &opts, res);
	free(argv);
	return r;
}
