/* What an apply owes after its files: planned, kept in STATE/pending, run (owed.h). */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fault.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/path.h"
#include "base/xmalloc.h"
#include "config/config.h"
#include "repo/manifest.h"
#include "site/journal.h"
#include "site/owed.h"
#include "site/restart.h"
#include "site/runonce.h"
#include "site/target.h"

/* A pending file holds a few hundred short lines; anything this long is not one. */
#define PENDING_READ_MAX	(64u * 1024 * 1024)
/* Names owed_describe lists before "and N more". */
#define DESCRIBE_NAMES		4

static void
names_add(char ***v, size_t *n, const char *name)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*v)[i], name) == 0)
			return;
	*v = xreallocarray(*v, *n + 2, sizeof(char *));
	(*v)[(*n)++] = xstrdup(name);
	(*v)[*n] = NULL;
}

int
owed_read_pending(struct target *t, struct journal *j)
{
	char *data = NULL, *name;
	size_t len = 0;
	int r;

	memset(j, 0, sizeof(*j));
	if (target_state_fd(t) == -1)
		return 0;
	if (fileio_read_at(target_state_fd(t), OWED_PENDING_FILE, PENDING_READ_MAX, &data,
	    &len) == -1) {
		if (errno == ENOENT)
			return 0;
		log_errno("%s/%s", target_state_dir(t), OWED_PENDING_FILE);
		return DS_ERR_SYSTEM;
	}
	name = path_join(target_state_dir(t), OWED_PENDING_FILE);
	r = journal_decode(data, len, name, j);
	free(name);
	free(data);
	return r;
}

int
owed_plan(struct target *t, const struct config *config, const struct manifest *from,
    const struct manifest *to, char *const *changed, size_t n, int rollback, int migrate,
    struct journal *j)
{
	struct journal pending;
	struct restart_plan *plan = NULL;
	char **names = NULL;
	size_t nnames = 0;
	int r;

	/* A damaged pending file is reported and replaced: its restarts are lost, not the apply. */
	if (owed_read_pending(t, &pending) != 0)
		memset(&pending, 0, sizeof(pending));
	if (config != NULL && !rollback &&
	    (r = runonce_owed(config, target_state_dir(t), from, to, migrate, j, NULL)) != 0)
		goto out;
	if (config != NULL && config->nservices > 0 && n > 0) {
		if ((r = restart_select(config, changed, n, &plan)) != 0)
			goto out;
		for (size_t i = 0; i < plan->nrestart; i++)
			names_add(&names, &nnames, plan->items[i].service->name);
		restart_plan_free(plan);
		plan = NULL;
	}
	for (size_t i = 0; i < pending.count; i++)
		if (pending.records[i].kind == JOURNAL_RESTART)
			names_add(&names, &nnames, pending.records[i].path);
	if (config != NULL && nnames > 0) {
		/* One order for what this apply and an unfinished one owe: after:'s. */
		if ((r = restart_select_names(config, names, nnames, "", &plan)) != 0)
			goto out;
		for (size_t i = 0; i < plan->nrestart; i++)
			journal_add(j, JOURNAL_RESTART, plan->items[i].service->name);
	} else {
		for (size_t i = 0; i < nnames; i++)
			journal_add(j, JOURNAL_RESTART, names[i]);
	}
	r = 0;
out:
	restart_plan_free(plan);
	xfree_strv(names);
	journal_release(&pending);
	return r;
}

int
owed_write_pending(struct target *t, const struct journal *j)
{
	struct journal owed;
	char *bytes;
	size_t len;
	int r;

	memset(&owed, 0, sizeof(owed));
	for (size_t i = 0; i < j->count; i++) {
		const struct journal_record *src = &j->records[i];
		struct journal_record *rec;

		if (!journal_kind_is_owed(src->kind))
			continue;
		rec = journal_add(&owed, src->kind, src->path);
		rec->prep = src->prep;
		memcpy(rec->hash, src->hash, HASH_LEN);
	}
	if (owed.count == 0) {
		journal_release(&owed);
		if (unlinkat(target_state_fd(t), OWED_PENDING_FILE, 0) == -1 && errno != ENOENT) {
			log_errno("%s/%s", target_state_dir(t), OWED_PENDING_FILE);
			return DS_ERR_SYSTEM;
		}
		return 0;
	}
	owed.from = j->from != NULL ? xstrdup(j->from) : NULL;
	owed.to = xstrdup(j->to);
	owed.keep = j->keep;
	bytes = journal_encode(&owed, &len);
	r = target_write_state(t, OWED_PENDING_FILE, bytes, len);
	free(bytes);
	journal_release(&owed);
	return r;
}

int
owed_drop_pending(struct target *t)
{
	if (unlinkat(target_state_fd(t), OWED_PENDING_FILE, 0) == -1) {
		if (errno == ENOENT)
			return 0;
		log_errno("%s/%s", target_state_dir(t), OWED_PENDING_FILE);
		return DS_ERR_SYSTEM;
	}
	return target_sync_state(t);
}

/* Appends "WORD a, b, c and N more" of the records of KIND (or KIND2) to *s. */
static void
describe_kind(char **s, const struct journal *j, char kind, char kind2, const char *word)
{
	size_t total = 0, shown = 0;
	char *out = *s;

	for (size_t i = 0; i < j->count; i++)
		if (j->records[i].kind == kind || j->records[i].kind == kind2)
			total++;
	if (total == 0)
		return;
	out = xasprintf("%s%s%s", out != NULL ? out : "", out != NULL ? "; " : "", word);
	free(*s);
	for (size_t i = 0; i < j->count && shown < DESCRIBE_NAMES; i++) {
		const struct journal_record *rec = &j->records[i];
		char *next;

		if (rec->kind != kind && rec->kind != kind2)
			continue;
		if (rec->kind == JOURNAL_RUN_SET)
			next = xasprintf("%s%s run_once[%zu]'s set", out, shown > 0 ? "," : "",
			    rec->prep);
		else
			next = xasprintf("%s%s %s", out, shown > 0 ? "," : "", rec->path);
		free(out);
		out = next;
		shown++;
	}
	if (total > shown) {
		char *next = xasprintf("%s and %zu more", out, total - shown);

		free(out);
		out = next;
	}
	*s = out;
}

char *
owed_describe(const struct journal *j)
{
	char *s = NULL;

	describe_kind(&s, j, JOURNAL_RUN_FILE, JOURNAL_RUN_SET, "run_once on");
	describe_kind(&s, j, JOURNAL_RESTART, JOURNAL_RESTART, "restart");
	return s;
}

int
owed_run(struct target *t, const struct config *config, const struct config_host *host,
    const struct journal *j, struct restart_report *report)
{
	struct restart_plan *plan = NULL;
	struct manifest *tree = NULL;
	char **names = NULL, *why;
	size_t nnames = 0;
	int r = 0, sets = 0;

	if (config == NULL || j->count == 0)
		return 0;
	for (size_t i = 0; i < j->count; i++) {
		if (j->records[i].kind == JOURNAL_RESTART)
			names_add(&names, &nnames, j->records[i].path);
		sets |= j->records[i].kind == JOURNAL_RUN_SET;
	}
	/* A set's files are the tree's: the manifest the apply left. */
	if (sets && (r = target_current(t, NULL, &tree)) != 0)
		goto out;
	if ((r = runonce_run(config, host, target_state_dir(t), tree, j->records, j->count,
	    report)) != 0)
		goto out;
	fault_point("owed-run-once-done");
	if (nnames == 0)
		goto out;
	why = xasprintf("release %s", j->to != NULL ? j->to : "?");
	r = restart_select_names(config, names, nnames, why, &plan);
	free(why);
	if (r == 0)
		r = restart_run(config, host, plan, report);
out:
	restart_plan_free(plan);
	manifest_free(tree);
	xfree_strv(names);
	return r;
}
