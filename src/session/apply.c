/* A verified release applied the same way by every session (apply.h). */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "config/config.h"
#include "repo/manifest.h"
#include "session/apply.h"
#include "site/commit.h"
#include "site/finish.h"
#include "site/journal.h"
#include "site/restart.h"
#include "site/runonce.h"
#include "site/target.h"
#include "site/trustdb.h"
#include "wire/proto.h"

static void
options(const struct apply_site *s, uint32_t flags, struct commit_opts *co)
{
	const struct config_host *own = s->trusted_host;

	memset(co, 0, sizeof(*co));
	/* Ownership and what backups cost are the site's to decide. */
	co->owner = own != NULL ? own->owner : NULL;
	co->group = own != NULL ? own->group : NULL;
	co->keep_backups = own != NULL ? own->keep_backups : CONFIG_KEEP_BACKUPS_DEFAULT;
	co->fail_on_drift = (flags & PROTO_FLAG_FAIL_ON_DRIFT) != 0;
	co->dry_run = (flags & PROTO_FLAG_DRY_RUN) != 0;
	/* What the apply will owe (run_once, restarts) is the site's own to say. */
	co->config = s->trusted;
}

static void
finish_of(const struct apply_site *s, const struct commit_opts *co, uint32_t flags,
    struct finish_site *fs)
{
	memset(fs, 0, sizeof(*fs));
	fs->t = s->t;
	/* Commands only from the site's own configuration: none without one. */
	fs->config = s->trusted;
	fs->host = s->host;
	fs->opts = co;
	fs->no_restart = (flags & PROTO_FLAG_NO_RESTART) != 0;
}

/* Fills res from a commit report. */
static void
from_report(const struct commit_report *rep, struct proto_result *res)
{
	size_t nd = xstrv_len(rep->drifted_paths);

	res->from = xstrdup(rep->from_release ? rep->from_release : "");
	res->to = xstrdup(rep->to_release ? rep->to_release : "");
	res->added = rep->added;
	res->updated = rep->updated + rep->mode_changed;
	res->deleted = rep->deleted;
	res->changed = xstrv_len(rep->changed_paths);
	/* A first apply has no drift: the paths it replaced were found (counts say how many). */
	if (nd > 0 && rep->from_release != NULL) {
		nd = proto_list_fit(rep->drifted_paths, nd);
		res->drift = xcalloc(nd + 1, sizeof(char *));
		for (size_t i = 0; i < nd; i++)
			res->drift[i] = xstrdup(rep->drifted_paths[i]);
		res->ndrift = nd;
	}
}

/* Moves what finishing reported (the services restarted, health) into res. */
static void
from_finish(struct finish_report *fr, struct proto_result *res)
{
	res->services = fr->services;
	res->nservices = fr->nservices;
	res->health = fr->health;
	if (res->health != NULL && strlen(res->health) > PROTO_STRING_MAX)
		res->health[PROTO_STRING_MAX] = '\0';
	res->runs = fr->runs;
	res->nruns = fr->nruns;
	for (size_t i = 0; i < res->nruns; i++)
		if (strlen(res->runs[i]) > PROTO_STRING_MAX)
			res->runs[i][PROTO_STRING_MAX] = '\0';
	res->pending = fr->pending;
	memset(fr, 0, sizeof(*fr));
}

/*
 * The signature check when the site pins a root: the bundle (release
 * document and keys chain) against the site's trust record. DS_ERR_SIGNATURE
 * (logged) refuses the release before anything is touched.
 */
static int
trust_check(const struct apply_site *s, const char *release, const struct manifest *to,
    const void *sig, size_t sig_len, struct trustdb_pending **pending)
{
	uint8_t digest[HASH_LEN];

	*pending = NULL;
	if (s->pins == NULL || s->pins[0] == NULL)
		return 0;
	manifest_digest(to, digest);
	return trustdb_check(s->t, s->pins, xstrv_len(s->pins), sig, sig_len, release, digest,
	    time(NULL), target_dir(s->t), pending);
}

int
apply_preview(const struct config *config, const char *state_dir, const struct manifest *from,
    const struct manifest *to, char *const *changed, size_t n, struct proto_result *res)
{
	struct restart_plan *plan = NULL;
	struct journal j;
	size_t nrun = 0;
	int r;

	memset(&j, 0, sizeof(j));
	for (size_t i = 0; res->restarts != NULL && i < res->nrestarts; i++) {
		free(res->restarts[i].name);
		free(res->restarts[i].why);
	}
	free(res->restarts);
	xfree_strv(res->services);
	xfree_strv(res->would_run);
	res->restarts = NULL;
	res->services = res->would_run = NULL;
	res->nrestarts = res->nservices = res->nwould_run = 0;
	res->siteplan = 1;
	if (config == NULL)
		return 0;
	if (config->nservices > 0 && n > 0 &&
	    (r = restart_select(config, changed, n, &plan)) != 0)
		return r;
	if (plan != NULL && plan->count > 0) {
		size_t count = plan->count < PROTO_LIST_MAX ? plan->count : PROTO_LIST_MAX;

		res->restarts = xcalloc(count, sizeof(*res->restarts));
		res->services = xcalloc(count + 1, sizeof(char *));
		for (size_t i = 0; i < count; i++) {
			const struct restart_item *it = &plan->items[i];

			res->restarts[i].name = xstrdup(it->service->name);
			res->restarts[i].why = xstrdup(it->why);
			res->restarts[i].kind = !it->restart ? PROTO_RESTART_NONE :
			    it->reload ? PROTO_RESTART_RELOAD : PROTO_RESTART_RESTART;
			if (it->restart)
				res->services[res->nservices++] = xstrdup(it->service->name);
		}
		res->nrestarts = count;
	}
	restart_plan_free(plan);
	if ((r = runonce_owed(config, state_dir, from, to, 0, &j, NULL)) != 0)
		goto out;
	res->would_run = xcalloc(j.count + 1, sizeof(char *));
	for (size_t i = 0; i < j.count && nrun < PROTO_LIST_MAX; i++) {
		const struct journal_record *rec = &j.records[i];

		if (rec->kind == JOURNAL_RUN_FILE)
			res->would_run[nrun++] = xasprintf("run_once[%zu] %s", rec->prep, rec->path);
		else if (rec->kind == JOURNAL_RUN_SET)
			res->would_run[nrun++] = xasprintf("run_once[%zu] (each: set)", rec->prep);
	}
	res->nwould_run = nrun;
out:
	journal_release(&j);
	return r;
}

/* A dry run's site plan for the change the commit report describes. */
static int
preview(const struct apply_site *s, const struct manifest *to,
    const struct commit_report *rep, struct proto_result *res)
{
	struct manifest *cur = NULL;
	int r;

	if ((r = target_current(s->t, NULL, &cur)) != 0)
		return r;
	r = apply_preview(s->trusted, target_state_dir(s->t), cur, to, rep->changed_paths,
	    xstrv_len(rep->changed_paths), res);
	manifest_free(cur);
	return r;
}

int
apply_release(const struct apply_site *s, const char *release, const struct manifest *to,
    const void *sig, size_t sig_len, uint32_t flags, struct proto_result *res,
    struct apply_outcome *out)
{
	struct trustdb_pending *pending = NULL;
	struct commit_report rep;
	struct commit_opts co;
	struct finish_site fs;
	struct finish_report fr;
	int r;

	memset(&rep, 0, sizeof(rep));
	res->flags = flags;
	if ((r = trust_check(s, release, to, sig, sig_len, &pending)) != 0) {
		/* Refused untouched: the report names the release the site keeps. */
		char *cur = NULL;

		if (res->from == NULL && target_current(s->t, &cur, NULL) == 0)
			res->from = xstrdup(cur != NULL ? cur : "");
		if (res->to == NULL)
			res->to = xstrdup(release);
		free(cur);
		return r;
	}
	options(s, flags, &co);
	co.release_id = release;
	co.to = to;
	r = commit_apply(s->t, &co, &rep);
	if (out != NULL) {
		out->first = rep.from_release == NULL;
		out->identical = rep.unchanged;
	}
	/* Applied: the release is the newest this site trusts (dry runs record nothing). */
	if (r == 0 && pending != NULL && !co.dry_run && trustdb_record(s->t, pending) != 0)
		log_warn("%s: release %s applied, but its signature could not be recorded",
		    target_dir(s->t), release);
	trustdb_pending_free(pending);
	from_report(&rep, res);
	finish_of(s, &co, flags, &fs);
	r = finish_apply(&fs, &rep, r, &fr);
	from_finish(&fr, res);
	if (r == 0 && co.dry_run && s->preview)
		r = preview(s, to, &rep, res);
	commit_report_release(&rep);
	return r;
}

int
apply_rollback(const struct apply_site *s, uint32_t flags, const char *release,
    struct proto_result *res)
{
	struct commit_report rep;
	struct commit_opts co;
	struct finish_site fs;
	struct finish_report fr;
	int r;

	memset(&rep, 0, sizeof(rep));
	options(s, flags, &co);
	co.rollback_to = release;
	co.keep_nonempty = 1;	/* emptying a production site takes its name */
	r = commit_rollback(s->t, &co, &rep);
	res->flags = flags;
	from_report(&rep, res);
	finish_of(s, &co, flags, &fs);
	r = finish_rollback(&fs, &rep, r, &fr);
	from_finish(&fr, res);
	commit_report_release(&rep);
	return r;
}
