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
#include "site/command.h"
#include "site/restart.h"

#define RESTART_INSPECT_TIMEOUT_MS	30000	/* one docker inspect / compose ps */
#define RESTART_HTTP_PROBE_MS		10000	/* one HTTP GET */

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
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
				if (path_glob_match_any(s->reload_on, changed_paths[i])) {
					why = changed_paths[i];
					reload = 1;
				} else if (path_glob_match_any(s->paths, changed_paths[i]) &&
				    s->restart != CONFIG_RESTART_NONE)
					why = changed_paths[i];
			}
			if (why == NULL && s->restart == CONFIG_RESTART_NONE) {
				for (size_t i = 0; i < n && why == NULL; i++)
					if (path_glob_match_any(s->paths, changed_paths[i]))
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

int
restart_select_names(const struct config *config, char *const *names, size_t n,
    const char *why, struct restart_plan **out)
{
	struct restart_plan *plan;
	size_t *order = NULL;
	int r;

	*out = NULL;
	for (size_t i = 0; i < n; i++) {
		size_t k;

		for (k = 0; k < config->nservices; k++)
			if (strcmp(config->services[k].name, names[i]) == 0)
				break;
		if (k == config->nservices)
			log_warn("service %s is owed a restart but is no longer configured; "
			    "not restarted", names[i]);
	}
	if ((r = restart_order(config, &order)) != 0)
		return r;
	plan = xcalloc(1, sizeof(*plan));
	plan->items = xcalloc(config->nservices + 1, sizeof(*plan->items));
	for (size_t k = 0; k < config->nservices; k++) {
		const struct config_service *s = &config->services[order[k]];
		size_t i;

		for (i = 0; i < n; i++)
			if (strcmp(s->name, names[i]) == 0)
				break;
		if (i == n)
			continue;
		plan->items[plan->count].service = s;
		plan->items[plan->count].why = xstrdup(why);
		plan->items[plan->count].restart = 1;
		plan->items[plan->count].reload = s->restart == CONFIG_RESTART_NONE;
		plan->count++;
		plan->nrestart++;
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
			fprintf(fp, "%s%s %s%s: %s changed\n", p, it->reload ? "reload" : "restart",
			    it->service->name, it->reload ? " (reload_on)" : "", why);
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

struct restart_outcome *
restart_report_add(struct restart_report *report, const char *name, const char *why,
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
	o->reload = 0;
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
		else if (o->reload && o->status == RESTART_OK)
			fprintf(fp, "%s%s: reloaded", p, o->name);
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

/* The id of SERVICE's container (caller frees), or NULL with a reason in *why. */
static char *
compose_container_id(const struct command_ctx *ctx, const char *service, char **why)
{
	char *args[] = { "ps", "-q", (char *)service, NULL };
	struct spawn_result res;
	char *id = NULL, *what = xasprintf("service %s", service);
	size_t len;
	int r;

	*why = NULL;
	r = command_compose_run(ctx, what, args, RESTART_INSPECT_TIMEOUT_MS, &res);
	free(what);
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
health_wait(const struct command_ctx *ctx, const struct config_service *s,
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

/*
 * The last line a command printed that says something (trailing blank
 * lines skipped), at most 200 bytes, or NULL: caller frees.
 */
static char *
last_line(const char *out)
{
	size_t end, start;

	if (out == NULL)
		return NULL;
	end = strlen(out);
	while (end > 0 && (out[end - 1] == '\n' || out[end - 1] == '\r' || out[end - 1] == ' '))
		end--;
	if (end == 0)
		return NULL;
	start = end;
	while (start > 0 && out[start - 1] != '\n')
		start--;
	if (end - start > 200)
		start = end - 200;
	return xstrndup(out + start, end - start);
}

/* Restarts one service and waits for its health; *output gets the failure's text. */
static int
restart_one(const struct command_ctx *ctx, const struct restart_item *it, int *unhealthy,
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
		char *what = xasprintf("service %s", s->name);

		r = command_compose_run(ctx, what, args, timeout_ms, &res);
		free(what);
	}
	if (r != 0) {
		char *cmd = s->command ? spawn_argv_string(s->command) : xstrdup("compose restart");
		char *said = last_line(res.output);

		/* The command's own last word says why: in the log line and the reason. */
		if (r != DS_ERR_CONFIG)
			log_error("host %s: service %s: %s failed: %s (exit %d)%s%s", ctx->host->name,
			    s->name, cmd, ds_strerror(r), res.exit_code, said ? ": " : "",
			    said ? said : "");
		if (res.output == NULL)	/* compose was not even started */
			*output = xasprintf("%s: %s", cmd, r == DS_ERR_CONFIG ?
			    "the host has no compose directory" : "no docker compose found");
		else
			*output = xasprintf("%s: %s (exit %d)%s%s\n%s", cmd, ds_strerror(r),
			    res.exit_code, said ? ": " : "", said ? said : "", res.output);
		free(said);
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
	log_info("host %s: service %s %s (%s changed), healthy", ctx->host->name, s->name,
	    it->reload ? "reloaded for reload_on" : "restarted", it->why);
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
	struct command_ctx ctx;
	int r = 0;
	size_t i;

	command_ctx_init(&ctx, config, host);
	for (i = 0; i < plan->nrestart; i++) {
		const struct restart_item *it = &plan->items[i];
		uint64_t start = util_now_ms();
		char *output = NULL;
		int unhealthy;

		r = restart_one(&ctx, it, &unhealthy, &output);
		restart_report_add(report, it->service->name, it->why,
		    r == 0 ? RESTART_OK : unhealthy ? RESTART_UNHEALTHY : RESTART_FAILED,
		    output, (unsigned long)(util_now_ms() - start))->reload = it->reload;
		if (r != 0)
			break;
	}
	for (i = i + 1; r != 0 && i < plan->nrestart; i++)
		restart_report_add(report, plan->items[i].service->name, plan->items[i].why,
		    RESTART_NOT_RUN, NULL, 0);
	command_ctx_release(&ctx);
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
