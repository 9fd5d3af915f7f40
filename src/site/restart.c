/* Restarting only the services whose artifacts changed, with health checks and run_once hooks. */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fileio.h"
#include "base/hash.h"
#include "base/http.h"
#include "base/log.h"
#include "base/path.h"
#include "base/spawn.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "config/config.h"
#include "repo/manifest.h"
#include "site/restart.h"

#define RESTART_DETECT_TIMEOUT_MS	15000	/* "docker compose version" */
#define RESTART_INSPECT_TIMEOUT_MS	30000	/* one docker inspect / compose ps */
#define RESTART_HTTP_PROBE_MS		10000	/* one HTTP GET */
#define RESTART_RUN_ONCE_FILE		"run_once.done"

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static size_t
strv_len(char *const *v)
{
	size_t n = 0;

	while (v != NULL && v[n] != NULL)
		n++;
	return n;
}

static int
glob_any(char *const *globs, const char *path)
{
	for (size_t i = 0; globs != NULL && globs[i] != NULL; i++)
		if (path_glob_match(globs[i], path))
			return 1;
	return 0;
}

/* Selection and order. */

/* Indexes of all services in an order where each follows its after: names. */
static int
restart_order(const struct config *config, size_t **order_out)
{
	size_t n = config->nservices, done = 0;
	size_t *order = xcalloc(n + 1, sizeof(*order));
	int *placed = xcalloc(n + 1, sizeof(*placed));
	int r = DS_ERR_CONFIG;

	*order_out = NULL;
	for (size_t i = 0; i < n; i++) {
		const struct config_service *s = &config->services[i];
		for (size_t a = 0; s->after != NULL && s->after[a] != NULL; a++) {
			size_t j;
			for (j = 0; j < n; j++)
				if (strcmp(config->services[j].name, s->after[a]) == 0)
					break;
			if (j == n) {
				log_error("%s:%u: service %s: after: no service named '%s'",
				    config->file ? config->file : "config", s->line, s->name,
				    s->after[a]);
				goto out;
			}
		}
	}
	while (done < n) {
		size_t pick = n;
		for (size_t i = 0; i < n && pick == n; i++) {
			const struct config_service *s = &config->services[i];
			int ready = !placed[i];
			for (size_t a = 0; ready && s->after != NULL && s->after[a] != NULL; a++)
				for (size_t j = 0; j < n; j++)
					if (!placed[j] &&
					    strcmp(config->services[j].name, s->after[a]) == 0)
						ready = 0;
			if (ready)
				pick = i;
		}
		if (pick == n) {
			for (size_t i = 0; i < n; i++)
				if (!placed[i]) {
					log_error("%s:%u: service %s: after: dependency cycle",
					    config->file ? config->file : "config",
					    config->services[i].line, config->services[i].name);
					break;
				}
			goto out;
		}
		placed[pick] = 1;
		order[done++] = pick;
	}
	*order_out = order;
	order = NULL;
	r = 0;
out:
	free(order);
	free(placed);
	return r;
}

int
restart_select(const struct config *config, char *const *changed_paths, size_t n,
    struct restart_plan **out)
{
	struct restart_plan *plan = NULL;
	size_t *order = NULL;
	int r;

	*out = NULL;
	if ((r = restart_order(config, &order)) != 0)
		return r;
	plan = xcalloc(1, sizeof(*plan));
	plan->items = xcalloc(config->nservices + 1, sizeof(*plan->items));
	/* Two passes over the same order: restarted services, then the others. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t k = 0; k < config->nservices; k++) {
			const struct config_service *s = &config->services[order[k]];
			const char *why = NULL;
			int reload = 0, restart;

			for (size_t i = 0; i < n && why == NULL; i++) {
				if (glob_any(s->reload_on, changed_paths[i])) {
					why = changed_paths[i];
					reload = 1;
				} else if (glob_any(s->paths, changed_paths[i]) &&
				    s->restart != CONFIG_RESTART_NONE)
					why = changed_paths[i];
			}
			if (why == NULL && s->restart == CONFIG_RESTART_NONE) {
				for (size_t i = 0; i < n && why == NULL; i++)
					if (glob_any(s->paths, changed_paths[i]))
						why = changed_paths[i];
			}
			if (why == NULL)
				continue;
			restart = s->restart != CONFIG_RESTART_NONE || reload;
			if (restart != (pass == 0))
				continue;
			plan->items[plan->count].service = s;
			plan->items[plan->count].why = xstrdup(why);
			plan->items[plan->count].restart = restart;
			/* A reload_on match only matters where it changes the outcome. */
			plan->items[plan->count].reload = reload && s->restart == CONFIG_RESTART_NONE;
			plan->count++;
			if (restart)
				plan->nrestart++;
		}
	}
	free(order);
	*out = plan;
	return 0;
}

void
restart_plan_free(struct restart_plan *plan)
{
	if (plan == NULL)
		return;
	for (size_t i = 0; i < plan->count; i++)
		free(plan->items[i].why);
	free(plan->items);
	free(plan);
}

struct changed_list {
	char	**paths;
	size_t	  count;
	size_t	  alloc;
};

static int
changed_collect(enum manifest_change change, const struct manifest_entry *old_entry,
    const struct manifest_entry *new_entry, void *arg)
{
	struct changed_list *list = arg;
	const struct manifest_entry *e = new_entry ? new_entry : old_entry;

	(void)change;
	list->paths = xgrow(list->paths, &list->alloc, list->count + 1, sizeof(*list->paths));
	list->paths[list->count++] = e->path;	/* borrowed: the manifests outlive the list */
	return 0;
}

int
restart_select_manifests(const struct config *config, const struct manifest *old,
    const struct manifest *new, struct restart_plan **out)
{
	struct changed_list list = { NULL, 0, 0 };
	int r;

	*out = NULL;
	if ((r = manifest_diff(old, new, changed_collect, &list)) == 0)
		r = restart_select(config, list.paths, list.count, out);
	free(list.paths);
	return r;
}

char *
restart_plan_names(const struct restart_plan *plan)
{
	size_t len = 0, off = 0;
	char *s;

	if (plan == NULL || plan->nrestart == 0)
		return NULL;
	for (size_t i = 0; i < plan->nrestart; i++)
		len += strlen(plan->items[i].service->name) + 1;
	s = xmalloc(len);
	for (size_t i = 0; i < plan->nrestart; i++) {
		size_t n = strlen(plan->items[i].service->name);
		if (i > 0)
			s[off++] = ',';
		memcpy(s + off, plan->items[i].service->name, n);
		off += n;
	}
	s[off] = '\0';
	return s;
}

void
restart_describe(const struct restart_plan *plan, const char *prefix, FILE *fp)
{
	const char *p = prefix ? prefix : "";

	if (plan == NULL || plan->count == 0) {
		fprintf(fp, "%sno service restarts\n", p);
		return;
	}
	for (size_t i = 0; i < plan->count; i++) {
		const struct restart_item *it = &plan->items[i];
		char *why = util_printable(it->why, 0);	/* a path: the peer's bytes */

		if (it->restart)
			fprintf(fp, "%srestart %s%s: %s changed\n", p, it->service->name,
			    it->reload ? " (reload_on)" : "", why);
		else
			fprintf(fp, "%snot restarted %s (restart: none): %s changed\n", p,
			    it->service->name, why);
		free(why);
	}
	if (plan->nrestart == 0)
		fprintf(fp, "%sno service restarts\n", p);
}

/* Reports. */

void
restart_report_init(struct restart_report *report)
{
	memset(report, 0, sizeof(*report));
}

void
restart_report_release(struct restart_report *report)
{
	if (report == NULL)
		return;
	for (size_t i = 0; i < report->count; i++) {
		free(report->items[i].name);
		free(report->items[i].why);
		free(report->items[i].output);
	}
	free(report->items);
	memset(report, 0, sizeof(*report));
}

const char *
restart_status_name(enum restart_status status)
{
	switch (status) {
	case RESTART_OK:
		return "restarted";
	case RESTART_FAILED:
		return "failed";
	case RESTART_UNHEALTHY:
		return "unhealthy";
	case RESTART_NOT_RUN:
		return "not run";
	case RESTART_SKIPPED:
		return "skipped";
	}
	return "unknown";
}

/* Appends an outcome; output is taken over (may be NULL). */
static struct restart_outcome *
report_add(struct restart_report *report, const char *name, const char *why,
    enum restart_status status, char *output, unsigned long elapsed_ms)
{
	struct restart_outcome *o;

	report->items = xgrow(report->items, &report->alloc, report->count + 1,
	    sizeof(*report->items));
	o = &report->items[report->count++];
	o->name = xstrdup(name);
	o->why = why ? xstrdup(why) : NULL;
	o->status = status;
	o->output = output;
	o->elapsed_ms = elapsed_ms;
	o->run_once = 0;
	/* items may have moved: refresh the pointers into it. */
	report->failed = NULL;
	report->failed_output = NULL;
	for (size_t i = 0; i < report->count; i++) {
		if (report->items[i].status == RESTART_FAILED ||
		    report->items[i].status == RESTART_UNHEALTHY) {
			report->failed = report->items[i].name;
			report->failed_output = report->items[i].output;
			break;
		}
	}
	return o;
}

void
restart_report_print(const struct restart_report *report, const char *prefix, FILE *fp)
{
	const char *p = prefix ? prefix : "";

	for (size_t i = 0; i < report->count; i++) {
		const struct restart_outcome *o = &report->items[i];
		if (o->run_once && o->status == RESTART_OK)
			fprintf(fp, "%s%s: ran", p, o->name);
		else if (o->run_once && o->status == RESTART_SKIPPED)
			fprintf(fp, "%s%s: already ran", p, o->name);
		else
			fprintf(fp, "%s%s: %s", p, o->name, restart_status_name(o->status));
		if (o->status == RESTART_OK && !o->run_once)
			fprintf(fp, ", healthy");
		if (o->why != NULL)
			fprintf(fp, " (%s)", o->why);
		if (o->status != RESTART_NOT_RUN && o->status != RESTART_SKIPPED)
			fprintf(fp, " %lu.%lu s", o->elapsed_ms / 1000, o->elapsed_ms % 1000 / 100);
		fprintf(fp, "\n");
		if (o->output != NULL && o->status != RESTART_OK && *o->output != '\0') {
			const char *line = o->output;
			while (line != NULL && *line != '\0') {
				const char *nl = strchr(line, '\n');
				int len = nl ? (int)(nl - line) : (int)strlen(line);
				fprintf(fp, "%s  | %.*s\n", p, len, line);
				line = nl ? nl + 1 : NULL;
			}
		}
	}
}

/* Running things. */

struct restart_ctx {
	const struct config *config;
	const struct config_host *host;
	char	*target;	/* absolute target directory */
	char	*compose_dir;	/* absolute, or NULL */
	char	*compose_file;	/* absolute, or NULL: let compose look */
	char	*workdir;	/* where commands run: compose dir, else config dir, else target */
	char	*env[5];	/* DISTSYNC_TARGET, DISTSYNC_HOST, COMPOSE_PROJECT_NAME for commands */
};

static char *
config_relative(const struct config *config, const char *path)
{
	if (path == NULL)
		return NULL;
	return path_absolute(config->dir, path);
}

static void
ctx_init(struct restart_ctx *ctx, const struct config *config, const struct config_host *host)
{
	static const char *const names[] = {
		"compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml", NULL
	};
	size_t n = 0;

	memset(ctx, 0, sizeof(*ctx));
	ctx->config = config;
	ctx->host = host;
	ctx->target = config_relative(config, host->path);
	ctx->compose_dir = config_relative(config, host->compose);
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

static void
ctx_release(struct restart_ctx *ctx)
{
	free(ctx->target);
	free(ctx->compose_dir);
	free(ctx->compose_file);
	free(ctx->workdir);
	for (size_t i = 0; ctx->env[i] != NULL; i++)
		free(ctx->env[i]);
}

enum compose_kind { COMPOSE_UNKNOWN, COMPOSE_V2, COMPOSE_V1, COMPOSE_MISSING };

static enum compose_kind
compose_detect(void)
{
	static enum compose_kind kind = COMPOSE_UNKNOWN;
	static char *const v2[] = { "docker", "compose", "version", NULL };
	static char *const v1[] = { "docker-compose", "version", NULL };
	struct spawn_opts opts = { .timeout_ms = RESTART_DETECT_TIMEOUT_MS };
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

/* argv for compose with ARGS appended; caller frees the array only (strings are borrowed). */
static int
compose_argv(const struct restart_ctx *ctx, const char *service, char *const *args, char ***out)
{
	enum compose_kind kind;
	size_t n = 0;
	char **argv;

	*out = NULL;
	if (ctx->compose_dir == NULL) {
		log_error("host %s: service %s restarts with docker compose, but the host has no "
		    "compose directory (hosts.%s.compose)", ctx->host->name, service, ctx->host->name);
		return DS_ERR_CONFIG;
	}
	if ((kind = compose_detect()) == COMPOSE_MISSING) {
		log_error("host %s: service %s: neither 'docker compose' nor 'docker-compose' "
		    "works here", ctx->host->name, service);
		return DS_ERR_CHILD;
	}
	argv = xcalloc(10 + strv_len(args), sizeof(*argv));
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

/* Runs a compose subcommand for SERVICE; the result is the caller's to release. */
static int
compose_run(const struct restart_ctx *ctx, const char *service, char *const *args,
    unsigned timeout_ms, struct spawn_result *res)
{
	struct spawn_opts opts = { .cwd = ctx->compose_dir, .timeout_ms = timeout_ms };
	char **argv = NULL;
	int r;

	memset(res, 0, sizeof(*res));
	if ((r = compose_argv(ctx, service, args, &argv)) != 0)
		return r;
	r = spawn_run(argv, &opts, res);
	free(argv);
	return r;
}

/* The id of SERVICE's container (caller frees), or NULL with a reason in *why. */
static char *
compose_container_id(const struct restart_ctx *ctx, const char *service, char **why)
{
	char *args[] = { "ps", "-q", (char *)service, NULL };
	struct spawn_result res;
	char *id = NULL;
	size_t len;
	int r;

	*why = NULL;
	r = compose_run(ctx, service, args, RESTART_INSPECT_TIMEOUT_MS, &res);
	if (r == 0) {
		len = strspn(res.output, "0123456789abcdef");
		if (len > 0)
			id = xstrndup(res.output, len);
		else
			*why = xasprintf("compose ps -q %s: no container", service);
	} else
		*why = xasprintf("compose ps -q %s: %s%s", service, ds_strerror(r),
		    res.output ? res.output : "");
	spawn_result_release(&res);
	return id;
}

/* "STARTEDAT STATUS" of a container; STATUS is "none" without a healthcheck. */
static int
container_state(const char *id, char **started, char **status, char **why)
{
	char *argv[] = { "docker", "inspect", "--format",
	    "{{.State.StartedAt}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
	    (char *)id, NULL };
	struct spawn_opts opts = { .timeout_ms = RESTART_INSPECT_TIMEOUT_MS };
	struct spawn_result res;
	char *sp;
	int r;

	*started = *status = *why = NULL;
	r = spawn_run(argv, &opts, &res);
	if (r == 0 && (sp = strchr(res.output, ' ')) != NULL) {
		*started = xstrndup(res.output, (size_t)(sp - res.output));
		*status = xstrndup(sp + 1, strcspn(sp + 1, "\r\n"));
	} else {
		*why = xasprintf("docker inspect %s: %s: %s", id, ds_strerror(r), res.output);
		if (r == 0)
			r = DS_ERR_CHILD;
	}
	spawn_result_release(&res);
	return r;
}

/* The output of the container's last health probe, or NULL. */
static char *
container_health_log(const char *id)
{
	char *argv[] = { "docker", "inspect", "--format",
	    "{{if .State.Health}}{{range .State.Health.Log}}exit {{.ExitCode}}: {{.Output}}\n{{end}}{{end}}",
	    (char *)id, NULL };
	struct spawn_opts opts = { .timeout_ms = RESTART_INSPECT_TIMEOUT_MS };
	struct spawn_result res;
	char *out = NULL;

	if (spawn_run(argv, &opts, &res) == 0 && res.output_len > 0)
		out = xstrdup(res.output);
	spawn_result_release(&res);
	return out;
}

static unsigned
remaining_ms(uint64_t deadline)
{
	uint64_t now = util_now_ms();

	return now >= deadline ? 0 : (unsigned)(deadline - now);
}

/*
 * Polls the service's health checks until all pass or the deadline passes.
 * started_before is the container's StartedAt before the restart (or NULL).
 * On failure *detail says what the last probe saw.
 */
static int
health_wait(const struct restart_ctx *ctx, const struct config_service *s,
    const char *container_id, const char *started_before, char **detail)
{
	const struct config_health *h = &s->health;
	uint64_t deadline = util_now_ms() + (uint64_t)(h->timeout ? h->timeout : 300) * 1000;
	char *id = container_id ? xstrdup(container_id) : NULL, *last = NULL;
	unsigned pause = RESTART_POLL_MIN_MS;
	int r = DS_ERR_HEALTH;

	*detail = NULL;
	for (;;) {
		int pass = 1;

		free(last);
		last = NULL;
		if (h->command != NULL) {
			struct spawn_opts opts = { .cwd = ctx->workdir, .env = ctx->env,
			    .timeout_ms = remaining_ms(deadline) > 1000 ? remaining_ms(deadline) : 1000 };
			struct spawn_result res;
			int rr = spawn_run(h->command, &opts, &res);
			if (rr != 0) {
				char *cmd = spawn_argv_string(h->command);
				pass = 0;
				last = xasprintf("health command %s: %s (exit %d)\n%s", cmd,
				    ds_strerror(rr), res.exit_code, res.output);
				free(cmd);
			}
			spawn_result_release(&res);
		}
		if (pass && h->url != NULL) {
			unsigned t = remaining_ms(deadline);
			int status = 0, rr;
			char *why = NULL;
			if (t > RESTART_HTTP_PROBE_MS)
				t = RESTART_HTTP_PROBE_MS;
			rr = restart_http_get(h->url, t > 1000 ? t : 1000, &status, &why);
			if (rr != 0) {
				pass = 0;
				last = why;
				why = NULL;
				if (rr == DS_ERR_INVALID || rr == DS_ERR_UNSUPPORTED) {
					r = DS_ERR_CONFIG;
					break;
				}
			}
			free(why);
		}
		if (pass && h->container) {
			char *started = NULL, *status = NULL, *why = NULL;
			if (id == NULL)
				id = compose_container_id(ctx, s->name, &why);
			if (id != NULL && container_state(id, &started, &status, &why) == 0) {
				if (strcmp(status, "none") == 0) {
					last = xasprintf("container %s of service %s has no healthcheck",
					    id, s->name);
					free(started);
					free(status);
					break;
				}
				if (started_before != NULL && strcmp(started, started_before) == 0) {
					pass = 0;
					last = xasprintf("container %.12s has not restarted yet", id);
				} else if (strcmp(status, "healthy") != 0) {
					char *log = container_health_log(id);
					pass = 0;
					last = xasprintf("container %.12s health: %s\n%s", id, status,
					    log ? log : "");
					free(log);
				}
			} else {
				pass = 0;
				last = why;
				why = NULL;
			}
			free(why);
			free(started);
			free(status);
		}
		if (pass) {
			r = 0;
			break;
		}
		if (remaining_ms(deadline) == 0)
			break;
		/* Quick probes first: most services come up within a second or never. */
		sleep_ms(remaining_ms(deadline) < pause ? remaining_ms(deadline) : pause);
		pause = pause * 2 < RESTART_POLL_MS ? pause * 2 : RESTART_POLL_MS;
	}
	if (r != 0)
		*detail = last ? last : xstrdup("health check did not pass");
	else
		free(last);
	free(id);
	return r;
}

/* Restarts one service and waits for its health; *output gets the failure's text. */
static int
restart_one(const struct restart_ctx *ctx, const struct restart_item *it, int *unhealthy,
    char **output)
{
	const struct config_service *s = it->service;
	unsigned timeout_ms = (s->health.timeout ? s->health.timeout : 300) * 1000U;
	char *before = NULL, *detail = NULL, *id = NULL;
	struct spawn_result res;
	int r;

	*unhealthy = 0;
	*output = NULL;
	memset(&res, 0, sizeof(res));
	/* The container keeps its id across a restart; StartedAt tells the new run. */
	if (s->health.container && ctx->compose_dir != NULL) {
		char *why = NULL, *status = NULL;
		id = compose_container_id(ctx, s->name, &why);
		if (id != NULL && container_state(id, &before, &status, &why) != 0)
			before = NULL;
		free(why);
		free(status);
	}
	if (s->command != NULL) {
		struct spawn_opts opts = { .cwd = ctx->workdir, .env = ctx->env,
		    .timeout_ms = timeout_ms };
		r = spawn_run(s->command, &opts, &res);
	} else {
		char *args[] = { "restart", s->name, NULL };
		r = compose_run(ctx, s->name, args, timeout_ms, &res);
	}
	if (r != 0) {
		char *cmd = s->command ? spawn_argv_string(s->command) : xstrdup("compose restart");
		if (r != DS_ERR_CONFIG)
			log_error("host %s: service %s: %s failed: %s (exit %d)", ctx->host->name, s->name,
			    cmd, ds_strerror(r), res.exit_code);
		if (res.output == NULL)	/* compose was not even started */
			*output = xasprintf("%s: %s", cmd, r == DS_ERR_CONFIG ?
			    "the host has no compose directory" : "no docker compose found");
		else
			*output = xasprintf("%s: %s (exit %d)\n%s", cmd, ds_strerror(r),
			    res.exit_code, res.output);
		free(cmd);
		if (r != DS_ERR_CONFIG)
			r = DS_ERR_CHILD;
		goto out;
	}
	if ((r = health_wait(ctx, s, id, before, &detail)) != 0) {
		log_error("host %s: service %s: health check failed: %.*s", ctx->host->name,
		    s->name, (int)strcspn(detail, "\n"), detail);
		*unhealthy = 1;
		*output = detail;
		detail = NULL;
		if (r != DS_ERR_CONFIG)
			r = DS_ERR_HEALTH;
		goto out;
	}
	log_info("host %s: service %s restarted (%s changed), healthy", ctx->host->name, s->name,
	    it->why);
out:
	spawn_result_release(&res);
	free(before);
	free(detail);
	free(id);
	return r;
}

int
restart_run(const struct config *config, const struct config_host *host,
    const struct restart_plan *plan, struct restart_report *report)
{
	struct restart_ctx ctx;
	int r = 0;
	size_t i;

	ctx_init(&ctx, config, host);
	for (i = 0; i < plan->nrestart; i++) {
		const struct restart_item *it = &plan->items[i];
		uint64_t start = util_now_ms();
		char *output = NULL;
		int unhealthy;

		r = restart_one(&ctx, it, &unhealthy, &output);
		report_add(report, it->service->name, it->why,
		    r == 0 ? RESTART_OK : unhealthy ? RESTART_UNHEALTHY : RESTART_FAILED,
		    output, (unsigned long)(util_now_ms() - start));
		if (r != 0)
			break;
	}
	for (i = i + 1; r != 0 && i < plan->nrestart; i++)
		report_add(report, plan->items[i].service->name, plan->items[i].why,
		    RESTART_NOT_RUN, NULL, 0);
	ctx_release(&ctx);
	return r;
}

/* run_once. */

int
restart_run_once_hash(const struct config *config, size_t index, const struct manifest *manifest,
    char hex[65])
{
	const struct config_run_once *ro = &config->run_once[index];
	struct hash_ctx *h = hash_ctx_new();
	uint8_t digest[HASH_LEN];
	char ehex[HASH_HEX_LEN + 1];
	int matched = 0;

	hex[0] = '\0';
	for (size_t i = 0; ro->command != NULL && ro->command[i] != NULL; i++)
		hash_ctx_update(h, ro->command[i], strlen(ro->command[i]) + 1);
	hash_ctx_update(h, "\n", 1);
	for (size_t i = 0; manifest != NULL && i < manifest->count; i++) {
		const struct manifest_entry *e = &manifest->entries[i];
		if (e->type == MANIFEST_DIR || !glob_any(ro->paths, e->path))
			continue;
		matched = 1;
		hash_to_hex(e->hash, ehex);
		hash_ctx_update(h, e->path, strlen(e->path) + 1);
		hash_ctx_update(h, ehex, HASH_HEX_LEN);
		hash_ctx_update(h, "\n", 1);
	}
	hash_ctx_final(h, digest);
	hash_ctx_free(h);
	if (matched)
		hash_to_hex(digest, hex);
	return matched;
}

/* A done file holds one line per hook run; far more than any site runs. */
#define RUN_ONCE_DONE_MAX	(64u * 1024 * 1024)

/* Reads the done file into a NUL-terminated buffer (empty when absent). */
static int
run_once_read(const char *file, char **out)
{
	if (fileio_read_at(AT_FDCWD, file, RUN_ONCE_DONE_MAX, out, NULL) == -1) {
		if (errno == ENOENT) {
			*out = xstrdup("");
			return 0;
		}
		log_errno("%s", file);
		return DS_ERR_SYSTEM;
	}
	return 0;
}

static int
run_once_seen(const char *done, const char *hex)
{
	const char *p = done;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, hex, HASH_HEX_LEN) == 0 &&
		    (p[HASH_HEX_LEN] == '\n' || p[HASH_HEX_LEN] == ' ' || p[HASH_HEX_LEN] == '\0'))
			return 1;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return 0;
}

/* Appends "HASH INDEX\n" to the done file and makes it durable. */
static int
run_once_record(const char *state_dir, const char *file, const char *hex, size_t index)
{
	char *line = xasprintf("%s %zu\n", hex, index);
	size_t len = strlen(line), off = 0;
	int fd = -1, dfd = -1, created, r = DS_ERR_SYSTEM;

	created = access(file, F_OK) != 0;
	if ((fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)) == -1) {
		log_errno("%s", file);
		goto out;
	}
	while (off < len) {
		ssize_t n = write(fd, line + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_errno("%s: write", file);
			goto out;
		}
		off += (size_t)n;
	}
	if (fsync(fd) == -1) {
		log_errno("%s: fsync", file);
		goto out;
	}
	if (created) {
		if ((dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
		    fsync(dfd) == -1) {
			log_errno("%s: fsync", state_dir);
			goto out;
		}
	}
	r = 0;
out:
	if (fd != -1 && close(fd) == -1 && r == 0) {
		log_errno("%s: close", file);
		r = DS_ERR_SYSTEM;
	}
	if (dfd != -1)
		close(dfd);
	free(line);
	return r;
}

int
restart_run_once(const struct config *config, const struct config_host *host,
    const struct manifest *manifest, const char *state_dir, struct restart_report *report)
{
	struct restart_ctx ctx;
	char *dir = NULL, *file = NULL, *done = NULL;
	int r = 0;

	ctx_init(&ctx, config, host);
	if (config->nrun_once == 0)
		goto out;
	if (state_dir == NULL)
		state_dir = host->state;
	if (state_dir == NULL) {
		log_error("host %s: run_once needs a state directory", host->name);
		r = DS_ERR_CONFIG;
		goto out;
	}
	dir = config_relative(config, state_dir);
	if (path_mkdirs(dir) == -1) {
		log_errno("%s", dir);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	file = path_join(dir, RESTART_RUN_ONCE_FILE);
	if ((r = run_once_read(file, &done)) != 0)
		goto out;
	for (size_t i = 0; i < config->nrun_once; i++) {
		const struct config_run_once *ro = &config->run_once[i];
		char hex[HASH_HEX_LEN + 1], name[32], *env[8], *cmd;
		struct spawn_opts opts = { .cwd = ctx.workdir, .env = env,
		    .timeout_ms = RESTART_RUN_ONCE_TIMEOUT * 1000U };
		struct spawn_result res;
		size_t nenv = 0;

		snprintf(name, sizeof(name), "run_once[%zu]", i);
		if (!restart_run_once_hash(config, i, manifest, hex))
			continue;
		if (run_once_seen(done, hex)) {
			log_debug("host %s: %s: content %.12s already ran", host->name, name, hex);
			report_add(report, name, hex, RESTART_SKIPPED, NULL, 0)->run_once = 1;
			continue;
		}
		while (ctx.env[nenv] != NULL) {
			env[nenv] = xstrdup(ctx.env[nenv]);
			nenv++;
		}
		env[nenv++] = xasprintf("DISTSYNC_STATE=%s", dir);
		env[nenv++] = xasprintf("DISTSYNC_RUN_ONCE_HASH=%s", hex);
		env[nenv] = NULL;
		r = spawn_run(ro->command, &opts, &res);
		cmd = spawn_argv_string(ro->command);
		if (r != 0) {
			log_error("host %s: %s (%s:%u): %s: %s (exit %d)", host->name, name,
			    config->file ? config->file : "config", ro->line, cmd, ds_strerror(r),
			    res.exit_code);
			report_add(report, name, hex, RESTART_FAILED,
			    xasprintf("%s: %s (exit %d)\n%s", cmd, ds_strerror(r), res.exit_code,
			    res.output), res.elapsed_ms)->run_once = 1;
			if (r != DS_ERR_TIMEOUT)
				r = DS_ERR_CHILD;
		} else {
			log_info("host %s: %s ran %s for content %.12s", host->name, name, cmd, hex);
			report_add(report, name, hex, RESTART_OK, NULL, res.elapsed_ms)->run_once = 1;
			r = run_once_record(dir, file, hex, i);
		}
		free(cmd);
		spawn_result_release(&res);
		for (size_t k = 0; env[k] != NULL; k++)
			free(env[k]);
		if (r != 0)
			goto out;
	}
out:
	free(done);
	free(file);
	free(dir);
	ctx_release(&ctx);
	return r;
}

/* Health URLs stay http:// only; the HTTP itself is base/http.c's. */
int
restart_http_get(const char *url, unsigned timeout_ms, int *status_out, char **detail)
{
	int r;

	*status_out = 0;
	if (detail != NULL)
		*detail = NULL;
	if (strncmp(url, "https://", 8) == 0) {
		if (detail != NULL)
			*detail = xasprintf("%s: https is not supported; use a command health check",
			    url);
		return DS_ERR_UNSUPPORTED;
	}
	r = http_get_status(url, timeout_ms, status_out, detail);
	if (r == 0 || r == DS_ERR_INVALID)
		return r;
	return DS_ERR_HEALTH;
}
