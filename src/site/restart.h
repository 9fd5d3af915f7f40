/*
 * Restarting only what changed (DESIGN.md step 7): which services a set of
 * changed paths touches and why, their order (after:), the actions (docker
 * compose v2 or v1, an argv, or none), health checks (an argv, an HTTP GET,
 * the container's own healthcheck), and run_once hooks recorded per content
 * hash in the site's state directory.
 *
 * finish.c calls, after a commit:
 *	restart_run_once(config, host, manifest, state_dir, &report)  failure: roll back
 *	restart_select(config, changed, n, &plan)
 *	restart_run(config, host, plan, &report)                       failure: roll back,
 *	    then restart_run again with the same plan (restart_plan_failed_only is not
 *	    needed: every service that was restarted saw the new files and must see the
 *	    old ones again).
 */
#ifndef DS_RESTART_H
#define DS_RESTART_H

#include <stddef.h>
#include <stdio.h>

struct config;
struct config_host;
struct config_service;
struct manifest;

/* One service the changed set touches. */
struct restart_item {
	const struct config_service *service;	/* points into the config */
	char		*why;		/* the first changed path that matched */
	int		 restart;	/* 1: will restart; 0: restart none, listed as not restarted */
	int		 reload;	/* 1: restarts because of reload_on */
};

/* Services the changed set touches, restarted ones first in after: order. */
struct restart_plan {
	struct restart_item *items;
	size_t		 count;
	size_t		 nrestart;	/* items[0..nrestart) restart, the rest do not */
};

/*
 * Builds the plan for CHANGED (N relative paths: content, mode or type
 * changed, or deleted). A service restarts when a changed path matches one of
 * its paths globs (or its reload_on globs); a restart: none service restarts
 * only for a reload_on match and is otherwise listed with restart = 0.
 * Restarted services are ordered so that each comes after the services named
 * in its after: list (config order otherwise). Returns 0, or DS_ERR_CONFIG
 * (logged) for an after: cycle or unknown name. *out is NULL on error; free
 * with restart_plan_free.
 */
int	restart_select(const struct config *config, char *const *changed_paths, size_t n,
	    struct restart_plan **out);
void	restart_plan_free(struct restart_plan *plan);

/*
 * A plan that restarts exactly the N services NAMES (a restart: none one as
 * its reload), in after: order, each with WHY (copied) as its reason: work
 * an apply owes, recorded by name (owed.h). A name no longer configured is
 * skipped with a warning. DS_ERR_CONFIG as restart_select.
 */
int	restart_select_names(const struct config *config, char *const *names, size_t n,
	    const char *why, struct restart_plan **out);

/*
 * restart_select for the change from OLD (NULL: nothing applied yet) to NEW:
 * every path whose content, mode or type changed, plus deletions, in path
 * order. For plan and push --dry-run, where no commit report exists.
 */
int	restart_select_manifests(const struct config *config, const struct manifest *old,
	    const struct manifest *new, struct restart_plan **out);

/*
 * Names of the services the plan restarts, comma-separated in restart
 * order ("backend,gateway"), or NULL when none does; caller frees. For
 * history_append's RESTARTED.
 */
char	*restart_plan_names(const struct restart_plan *plan);

/*
 * Prints what the plan would do, one line per service, for plan and
 * push --dry-run:
 *	restart backend: openmrs_modules/x-1.2.omod changed
 *	reload frontend (reload_on): frontend/index.html changed
 *	not restarted frontend (restart: none): frontend/main.js changed
 * or "no service restarts" for an empty plan. Each line starts with PREFIX
 * (may be NULL), e.g. a host name or indentation.
 */
void	restart_describe(const struct restart_plan *plan, const char *prefix, FILE *fp);

#define RESTART_POLL_MIN_MS		200	/* first pause between two health probes, doubling */
#define RESTART_POLL_MS			1000	/* longest pause between two health probes */

enum restart_status {
	RESTART_OK,		/* restarted (or ran) and healthy */
	RESTART_FAILED,		/* the restart action itself failed */
	RESTART_UNHEALTHY,	/* restarted, but the health check did not pass in time */
	RESTART_NOT_RUN,	/* not reached because an earlier service failed */
	RESTART_SKIPPED,	/* run_once: this content already ran */
};

struct restart_outcome {
	char		*name;		/* service name, or "run_once[N]" */
	char		*why;		/* changed path, or the run_once content hash */
	enum restart_status status;
	char		*output;	/* the action's or health check's output (failures), or NULL */
	unsigned long	 elapsed_ms;
	int		 run_once;	/* 1: a run_once hook, not a service */
	int		 reload;	/* 1: a restart: none service reloaded for reload_on */
};

/* What restart_run / restart_run_once did; the receiver sends it back. */
struct restart_report {
	struct restart_outcome *items;
	size_t		 count;
	size_t		 alloc;
	const char	*failed;	/* name of the first failure (points into items), or NULL */
	const char	*failed_output;	/* its output (points into items), or NULL */
};

void	restart_report_init(struct restart_report *report);
/*
 * Appends an outcome (NAME and WHY copied, OUTPUT taken over; both may be
 * NULL) and returns it, valid until the next append; failed and
 * failed_output follow the first failure.
 */
struct restart_outcome *restart_report_add(struct restart_report *report, const char *name,
	    const char *why, enum restart_status status, char *output, unsigned long elapsed_ms);
void	restart_report_release(struct restart_report *report);
/*
 * Prints one line per outcome and, indented, a failure's output:
 *	backend: restarted, healthy (openmrs_modules/a.omod) 12.3 s
 *	run_once[0]: ran (HASH) 0.4 s	run_once[0]: already ran (HASH)
 */
void	restart_report_print(const struct restart_report *report, const char *prefix, FILE *fp);
/* Returns a static word for a status: "restarted", "failed", "unhealthy", "not run", "skipped". */
const char *restart_status_name(enum restart_status status);

/*
 * Restarts the plan's services in order on HOST and waits for each one's
 * health check before the next. Outcomes are appended to REPORT. Stops at the
 * first failure; the services after it are reported as not run. Returns 0,
 * DS_ERR_CHILD (the restart action failed), DS_ERR_HEALTH (health check did
 * not pass within its timeout) or DS_ERR_CONFIG (a compose service on a host
 * without a compose directory); the failure is logged naming host and service.
 *
 * compose: "docker compose" (v2) when it answers, else "docker-compose" (v1),
 * with "-f FILE" when the host's compose directory holds one of the usual
 * compose file names, "--project-directory DIR", "-p NAME" when set, run in
 * that directory; the environment variable DISTSYNC_COMPOSE ("docker compose"
 * or "docker-compose") overrides the detection. command: the argv. A
 * restart: none service triggered by reload_on restarts with its command if it
 * has one, else with compose. The restart action may take health.timeout.
 *
 * Commands (restart and health) run where command.h says.
 *
 * Health: the command argv until it exits 0; the URL (http:// only) until GET
 * answers 2xx; the container's healthcheck until "healthy" (after the restart
 * began); each polled, 0.2 s apart at first and at most 1 s, until
 * health.timeout seconds passed.
 */
int	restart_run(const struct config *config, const struct config_host *host,
	    const struct restart_plan *plan, struct restart_report *report);

/*
 * GETs an http:// URL (http_get_status) and returns 0 when the status is
 * 2xx, DS_ERR_HEALTH with *status_out the status (0: no answer) otherwise,
 * DS_ERR_INVALID for a URL it cannot parse, DS_ERR_UNSUPPORTED for https.
 * Gives up after timeout_ms. detail (may be NULL) gets a newly allocated line
 * saying what happened; the caller frees it. Does not log.
 */
int	restart_http_get(const char *url, unsigned timeout_ms, int *status_out, char **detail);

#endif
