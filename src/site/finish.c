/* Restarts, rollback on failure and the records after an apply (finish.h). */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "compat/compat.h"
#include "config/config.h"
#include "site/commit.h"
#include "site/finish.h"
#include "site/history.h"
#include "site/restart.h"
#include "site/target.h"

/* Joins names with ',' for history.log; "-" when empty. Caller frees. */
static char *
join_names(char **names, size_t n)
{
	size_t len = 2;
	char *s;

	for (size_t i = 0; i < n; i++)
		len += strlen(names[i]) + 1;
	s = xcalloc(1, len);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			strlcat(s, ",", len);
		strlcat(s, names[i], len);
	}
	if (n == 0)
		strlcpy(s, "-", len);
	return s;
}

/* The services that restarted healthy and the health word, from what ran. */
static void
report_restarts(const struct restart_report *rr, int r, struct finish_report *out)
{
	for (size_t i = 0; i < rr->count; i++) {
		if (rr->items[i].status != RESTART_OK ||
		    strncmp(rr->items[i].name, "run_once", 8) == 0)
			continue;
		out->services = xreallocarray(out->services, out->nservices + 2, sizeof(char *));
		out->services[out->nservices++] = xstrdup(rr->items[i].name);
		out->services[out->nservices] = NULL;
	}
	if (r != 0 && rr->failed != NULL)
		out->health = xasprintf("%s failed%s%s", rr->failed,
		    rr->failed_output ? ": " : "", rr->failed_output ? rr->failed_output : "");
	else if (r != 0)
		out->health = xstrdup("failed");
	else
		out->health = xstrdup(out->nservices > 0 ? "ok" : "none");
}

/* The files back as they were, and the services that saw the new ones restarted again. */
static void
roll_back(const struct finish_site *s, const struct restart_plan *plan,
    struct restart_report *again)
{
	struct commit_opts bo = *s->opts;
	struct commit_report back;

	memset(&back, 0, sizeof(back));
	bo.fail_on_drift = 0;
	bo.dry_run = 0;
	if (commit_rollback(s->t, &bo, &back) != 0)
		log_error("%s: rollback after the failed restart failed too", s->host->name);
	else if (plan != NULL)
		restart_run(s->config, s->host, plan, again);
	commit_report_release(&back);
}

/*
 * Restarts what the changed paths touch (after TO's run_once hooks, when TO
 * is not NULL). On a failure the files are rolled back and the same
 * services restarted again on the old files.
 */
static int
run_restarts(const struct finish_site *s, const struct manifest *to,
    const struct commit_report *rep, struct finish_report *out)
{
	struct restart_report rr, rr2;
	struct restart_plan *plan = NULL;
	size_t n = 0;
	int r;

	if (s->config == NULL || (s->config->nservices == 0 && s->config->nrun_once == 0)) {
		out->health = xstrdup("none");
		return 0;
	}
	restart_report_init(&rr);
	restart_report_init(&rr2);
	while (rep->changed_paths != NULL && rep->changed_paths[n] != NULL)
		n++;
	if (to != NULL && (r = restart_run_once(s->config, s->host, to,
	    target_state_dir(s->t), &rr)) != 0)
		goto failed;
	if ((r = restart_select(s->config, rep->changed_paths, n, &plan)) != 0)
		goto out;
	if ((r = restart_run(s->config, s->host, plan, &rr)) != 0)
		goto failed;
	goto out;
failed:
	log_error("%s: %s failed; rolling the files back", s->host->name,
	    rr.failed ? rr.failed : "a restart");
	roll_back(s, plan, &rr2);
out:
	report_restarts(&rr, r, out);
	restart_plan_free(plan);
	restart_report_release(&rr);
	restart_report_release(&rr2);
	return r;
}

int
finish_apply(const struct finish_site *s, const struct manifest *to,
    const struct commit_report *rep, int r, struct finish_report *out)
{
	const struct commit_opts *co = s->opts;
	char *restarted;

	memset(out, 0, sizeof(*out));
	if (r == 0 && !co->dry_run && !rep->noop && !s->no_restart)
		r = run_restarts(s, to, rep, out);
	if (out->health == NULL)
		out->health = xstrdup(s->no_restart ? "not restarted" : "none");
	if (co->dry_run)
		return r;
	restarted = join_names(out->services, out->nservices);
	if (history_append(s->t, "apply", rep, restarted, r) != 0)
		log_warn("%s: history.log not written", target_state_dir(s->t));
	free(restarted);
	/* The site's logs show each release's arrival, whatever the initiator keeps. */
	log_syslog_event("host %s: apply release %s (from %s) in %s: %s", s->host->name,
	    co->release_id, rep->from_release != NULL && rep->from_release[0] != '\0' ?
	    rep->from_release : "none", target_dir(s->t), r == 0 ? "ok" : ds_strerror(r));
	return r;
}

int
finish_rollback(const struct finish_site *s, const struct commit_report *rep, int r,
    struct finish_report *out)
{
	char *restarted;

	memset(out, 0, sizeof(*out));
	if (r == 0 && !s->opts->dry_run && !rep->noop && !s->no_restart)
		r = run_restarts(s, NULL, rep, out);
	if (out->health == NULL)
		out->health = xstrdup("none");
	if (s->opts->dry_run)
		return r;
	restarted = join_names(out->services, out->nservices);
	history_append(s->t, "rollback", rep, restarted, r);
	free(restarted);
	return r;
}

void
finish_report_release(struct finish_report *r)
{
	if (r == NULL)
		return;
	xfree_strv(r->services);
	free(r->health);
	memset(r, 0, sizeof(*r));
}
