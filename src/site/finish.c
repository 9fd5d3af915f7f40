/* The owed work, rollback on failure and the records after an apply (finish.h). */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/fault.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "compat/compat.h"
#include "config/config.h"
#include "site/commit.h"
#include "site/finish.h"
#include "site/history.h"
#include "site/journal.h"
#include "site/owed.h"
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

static void
strv_append(char ***v, size_t *n, char *s)
{
	*v = xreallocarray(*v, *n + 2, sizeof(char *));
	(*v)[(*n)++] = s;
	(*v)[*n] = NULL;
}

/*
 * What failed, in one line for the summary: NAME, the output's first line
 * (the command, its exit and last word; or what the health check saw) and,
 * when it adds something, the output's last line (a health log's reason).
 * Caller frees.
 */
static char *
failure_line(const char *name, const char *output)
{
	size_t first, end, start;

	if (output == NULL)
		return xasprintf("%s failed", name);
	first = strcspn(output, "\n");
	end = strlen(output);
	while (end > first && (output[end - 1] == '\n' || output[end - 1] == ' '))
		end--;
	start = end;
	while (start > first && output[start - 1] != '\n')
		start--;
	if (start <= first || end - start > 200 ||
	    memmem(output, first, output + start, end - start) != NULL)
		return xasprintf("%s failed: %.*s", name, (int)first, output);
	return xasprintf("%s failed: %.*s: %.*s", name, (int)first, output, (int)(end - start),
	    output + start);
}

/* The services that restarted healthy, the runs, and the health word, from what ran. */
static void
report_restarts(const struct restart_report *rr, int r, struct finish_report *out)
{
	for (size_t i = 0; i < rr->count; i++) {
		const struct restart_outcome *o = &rr->items[i];

		if (o->run_once) {
			if (o->status == RESTART_OK || o->status == RESTART_FAILED)
				strv_append(&out->runs, &out->nruns, xasprintf("%s %s: %s %lu.%lu s",
				    o->name, o->why != NULL ? o->why : "",
				    o->status == RESTART_OK ? "ran" : "failed", o->elapsed_ms / 1000,
				    o->elapsed_ms % 1000 / 100));
			continue;
		}
		if (o->status == RESTART_OK)
			strv_append(&out->services, &out->nservices, xstrdup(o->name));
	}
	if (r != 0 && rr->failed != NULL)
		out->health = failure_line(rr->failed, rr->failed_output);
	else if (r != 0)
		out->health = xstrdup("failed");
	else
		out->health = xstrdup(out->nservices > 0 ? "ok" : "none");
}

/* What STATE/pending still owes, for the report; NULL when nothing. */
static char *
still_pending(struct target *t)
{
	struct journal j;
	char *s = NULL;

	if (owed_read_pending(t, &j) == 0)
		s = owed_describe(&j);
	journal_release(&j);
	return s;
}

/*
 * Runs what STATE/pending owes into REPORT; 0 and the file removed when all
 * of it passed. *nothing is 1 when nothing was owed.
 */
static int
run_pending(const struct finish_site *s, struct restart_report *report, int *nothing)
{
	struct journal j;
	int r;

	*nothing = 1;
	if ((r = owed_read_pending(s->t, &j)) != 0 || j.to == NULL)
		goto out;
	*nothing = 0;
	fault_point("finish-owed-start");
	if ((r = owed_run(s->t, s->config, s->host, &j, report)) == 0)
		r = owed_drop_pending(s->t);
out:
	journal_release(&j);
	return r;
}

/* The files back as they were, and what the rollback owes run. */
static void
roll_back(const struct finish_site *s, struct restart_report *again)
{
	struct commit_opts bo = *s->opts;
	struct commit_report back;
	int nothing;

	memset(&back, 0, sizeof(back));
	bo.fail_on_drift = 0;
	bo.dry_run = 0;
	bo.rollback_to = NULL;
	if (commit_rollback(s->t, &bo, &back) != 0)
		log_error("%s: rollback after the failed restart failed too", s->host->name);
	else if (run_pending(s, again, &nothing) != 0)
		log_error("%s: the restarts after the rollback failed; they stay pending",
		    s->host->name);
	commit_report_release(&back);
}

/*
 * Runs the work pending after an apply (UNDO: roll the apply back when it
 * fails) and fills OUT.
 */
static int
finish_owed(const struct finish_site *s, int undo, struct finish_report *out)
{
	struct restart_report rr, rr2;
	int r, nothing;

	if (s->no_restart) {
		char *what = still_pending(s->t);

		if (what != NULL) {
			log_info("%s: not done (no restart was asked): %s", s->host->name, what);
			owed_drop_pending(s->t);
		}
		free(what);
		out->health = xstrdup("not restarted");
		return 0;
	}
	restart_report_init(&rr);
	restart_report_init(&rr2);
	r = run_pending(s, &rr, &nothing);
	if (r != 0 && undo) {
		log_error("%s: %s failed; rolling the files back", s->host->name,
		    rr.failed ? rr.failed : "a restart");
		roll_back(s, &rr2);
	}
	report_restarts(&rr, r, out);
	out->pending = still_pending(s->t);
	restart_report_release(&rr);
	restart_report_release(&rr2);
	return r;
}

int
finish_apply(const struct finish_site *s, const struct commit_report *rep, int r,
    struct finish_report *out)
{
	const struct commit_opts *co = s->opts;
	char *restarted;

	memset(out, 0, sizeof(*out));
	if (r == 0 && !co->dry_run)
		r = finish_owed(s, 1, out);
	if (out->health == NULL)
		out->health = xstrdup(s->no_restart ? "not restarted" : "none");
	if (co->dry_run) {
		out->pending = still_pending(s->t);
		return r;
	}
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
	if (r == 0 && !s->opts->dry_run)
		r = finish_owed(s, 0, out);
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
	xfree_strv(r->runs);
	free(r->health);
	free(r->pending);
	memset(r, 0, sizeof(*r));
}
