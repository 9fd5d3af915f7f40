/*
 * distsync plan: what a push would change on a host, and which services
 * would restart. A local host is looked at here; a remote one through a
 * dry-run push (the receiver opens the site read-only and, with
 * PROTO_CAP_SITEPLAN, says from its own configuration what would restart).
 * Both print through one printer.
 */
#include "autoconf.h"

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "base/err.h"
#include "base/fileio.h"
#include "base/jsonio.h"
#include "base/log.h"
#include "base/path.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "cmd/cmd.h"
#include "config/config.h"
#include "repo/manifest.h"
#include "repo/plan.h"
#include "repo/store.h"
#include "codec/delta.h"
#include "session/apply.h"
#include "session/report.h"
#include "session/retry.h"
#include "session/sender.h"
#include "site/site.h"
#include "site/target.h"
#include "wire/proto.h"

extern const struct cmd_entry cmd_plan_entry;

static const char plan_options[] =
    "  --release ID  plan for this release (default: the latest)\n"
    "  --json        machine-readable output\n"
    "  -h, --help    this help\n"
    "\n"
    "Every host, local or over SSH: the paths added, updated and deleted, each\n"
    "new file's basis, the bytes to send, and the services that would restart\n"
    "and why, as the site's own configuration says. Changes nothing there.\n";

static const char *
change_word(enum manifest_change c)
{
	switch (c) {
	case MANIFEST_ADDED:	return "added";
	case MANIFEST_DELETED:	return "deleted";
	case MANIFEST_CHANGED:	return "updated";
	default:		return "mode";
	}
}

static const struct plan_object *
object_for(const struct plan *p, const struct manifest_entry *e)
{
	for (size_t i = 0; i < p->nobjects; i++)
		if (p->objects[i].entry == e)
			return &p->objects[i];
	return NULL;
}

/* A release id file's first line holds the id; anything past this is not one. */
#define ID_FILE_MAX	(64u * 1024)

/* Reads the first line of a one-line file into a new string, or NULL (absent, empty, too big). */
static char *
read_line_file(const char *file)
{
	char *data = NULL;
	size_t len = 0;

	if (fileio_read_at(AT_FDCWD, file, ID_FILE_MAX, &data, &len) != 0)
		return NULL;
	if (len == 0) {
		free(data);
		return NULL;
	}
	data[strcspn(data, "\n")] = '\0';
	return data;
}

/*
 * What a plan found: the state applied last (from), or on a site never
 * applied whose target holds files, those files (found: 1, found_release the
 * kept release they equal or NULL); wire: the dry run of the push, as it
 * would encode each object (NULL when it could not run); site: the site
 * plan (services, run_once; apply_preview), NULL when the site could not
 * say; verified: the site checks releases against a pinned root.
 */
struct plan_site {
	const char		*from;
	int			 found;
	const char		*found_release;
	const struct report	*wire;
	const struct proto_result *site;
	int			 verified;
};

/* Prints the services part of a plan: what restarts and why, the run_once runs. */
static void
print_services(const struct config_host *host, const struct proto_result *sp)
{
	size_t nrestart = 0;

	printf("services:\n");
	if (sp == NULL) {
		printf("  unknown: the site's distsync is too old to say which services would "
		    "restart\n");
		return;
	}
	/* Names and paths are the site's: printed escaped. */
	for (size_t i = 0; i < sp->nrestarts; i++) {
		const struct proto_restart *it = &sp->restarts[i];
		char *name = util_printable(it->name, 0), *why = util_printable(it->why, 0);

		if (it->kind == PROTO_RESTART_NONE)
			printf("  not restarted %s (restart: none): %s changed\n", name, why);
		else {
			/* Worded as restart_describe words a local plan. */
			printf("  %s %s%s: %s changed\n",
			    it->kind == PROTO_RESTART_RELOAD ? "reload" : "restart", name,
			    it->kind == PROTO_RESTART_RELOAD ? " (reload_on)" : "", why);
			nrestart++;
		}
		free(name);
		free(why);
	}
	if (nrestart == 0 && host->address != NULL && host->site_config == NULL && sp->nrestarts == 0)
		/* The initiator's services are not the site's (serve --site-config). */
		printf("  no service restarts (%s names no site_config: a site runs only the "
		    "commands of its own configuration)\n", host->name);
	else if (nrestart == 0)
		printf("  no service restarts\n");
	if (sp->nwould_run == 0)
		return;
	printf("run_once:\n");
	for (size_t i = 0; i < sp->nwould_run; i++) {
		char *run = util_printable(sp->would_run[i], 0);

		printf("  %s\n", run);
		free(run);
	}
}

/* "(never synced)", the release applied last, or the files found ("found release A, ..."). */
static char *
from_text(const struct plan_site *ps)
{
	if (ps->from != NULL)
		return xstrdup(ps->from);
	if (!ps->found)
		return xstrdup("(never synced)");
	return ps->found_release != NULL ?
	    xasprintf("(found release %s, not yet managed)", ps->found_release) :
	    xstrdup("(found files of no kept release, not yet managed)");
}

static void
print_text(const struct config_host *host, const char *release, const struct plan_site *ps,
    const struct plan *p, char **drifted)
{
	char bytes[32], *from = from_text(ps), *safe;

	util_format_bytes(p->object_bytes, bytes, sizeof(bytes));
	safe = util_printable(from, 0);	/* a release the site named */
	printf("plan for %s (%s%s%s): %s -> %s\n", host->name,
	    host->address != NULL ? host->address : "", host->address != NULL ? ":" : "",
	    host->path, safe, release);
	free(safe);
	free(from);
	if (ps->found)
		printf("  %zu identical, %zu changed, %zu extra, %zu missing\n", p->unchanged,
		    p->updated + p->mode_changed, p->deleted, p->added);
	else
		printf("  %zu added, %zu updated, %zu deleted, %zu mode only, %zu unchanged\n",
		    p->added, p->updated, p->deleted, p->mode_changed, p->unchanged);
	if (ps->wire != NULL) {
		const struct report *w = ps->wire;
		char content[32], encoded[32];
		const char *sep = ":";

		util_format_bytes(w->object_bytes, content, sizeof(content));
		util_format_bytes(report_encoded_bytes(w), encoded, sizeof(encoded));
		printf("  %" PRIu64 " object%s to send (%s of content, %s encoded)",
		    w->objects_sent, w->objects_sent == 1 ? "" : "s", content, encoded);
		for (int enc = 0; enc <= PROTO_ENC_MAX; enc++) {
			char b[32];

			if (w->enc_objects[enc] == 0)
				continue;
			util_format_bytes(w->enc_bytes[enc], b, sizeof(b));
			printf("%s %s %" PRIu64 " (%s)", sep, delta_encoding_name(enc),
			    w->enc_objects[enc], b);
			sep = ",";
		}
		if (w->signatures > 0)
			printf("; %" PRIu64 " signature%s", w->signatures,
			    w->signatures == 1 ? "" : "s");
		printf("\n");
	} else
		printf("  %zu object%s to send, %s before compression\n", p->nobjects,
		    p->nobjects == 1 ? "" : "s", bytes);
	if (!ps->verified)
		printf("  releases not verified (no trust_root): the site applies what it is sent\n");
	/* Paths from the site (its manifest, its drift) are printed escaped. */
	for (size_t i = 0; drifted != NULL && drifted[i] != NULL; i++) {
		char *path = util_printable(drifted[i], 0);

		printf("  drift   %s (changed on the site since the last apply)\n", path);
		free(path);
	}
	for (size_t i = 0; i < p->count; i++) {
		const struct plan_item *it = &p->items[i];
		const struct manifest_entry *e = it->new ? it->new : it->old;
		const struct plan_object *o = it->new ? object_for(p, it->new) : NULL;
		char size[32], *path = util_printable(e->path, 0), *basis;

		util_format_bytes(e->size, size, sizeof(size));
		printf("  %-7s %s%s", change_word(it->change), path,
		    e->type == MANIFEST_DIR ? "/" : "");
		free(path);
		if (it->change != MANIFEST_DELETED && e->type == MANIFEST_FILE)
			printf(" (%s)", size);
		if (o != NULL && o->basis != NULL && o->basis_kind != PLAN_BASIS_SAME_PATH) {
			basis = util_printable(o->basis->path, 0);
			printf("  basis %s [%s]", basis, plan_basis_name(o->basis_kind));
			free(basis);
		} else if (it->new != NULL && it->new->type == MANIFEST_FILE && o == NULL &&
		    it->change != MANIFEST_MODE)
			printf("  [content already on the site]");
		printf("\n");
	}
	print_services(host, ps->site);
}

static void
print_json(const struct config_host *host, const char *release, const struct plan_site *ps,
    const struct plan *p, char **drifted)
{
	json_t *o, *changes = json_array(), *drift = json_array(), *services = json_null();
	json_t *found = json_null(), *wire = json_null(), *runs = json_null();

	for (size_t i = 0; i < p->count; i++) {
		const struct plan_item *it = &p->items[i];
		const struct manifest_entry *e = it->new ? it->new : it->old;
		const struct plan_object *ob = it->new ? object_for(p, it->new) : NULL;
		char type[2] = { (char)e->type, '\0' };
		json_t *c = jsonio_pack("{s:s,s:o,s:s,s:o}", "change", change_word(it->change),
		    "path", jsonio_string(e->path), "type", type, "size", jsonio_uint(e->size));

		if (ob != NULL) {
			json_object_set_new(c, "send", json_true());
			json_object_set_new(c, "basis",
			    jsonio_string(ob->basis ? ob->basis->path : NULL));
			if (ob->basis)
				json_object_set_new(c, "basis_kind",
				    json_string(plan_basis_name(ob->basis_kind)));
		}
		json_array_append_new(changes, c);
	}
	for (size_t i = 0; drifted != NULL && drifted[i] != NULL; i++)
		json_array_append_new(drift, jsonio_string(drifted[i]));
	/* null: the site could not say (an older distsync there). */
	if (ps->site != NULL) {
		services = json_array();
		runs = json_array();
		for (size_t i = 0; i < ps->site->nrestarts; i++) {
			const struct proto_restart *it = &ps->site->restarts[i];

			json_array_append_new(services, jsonio_pack("{s:o,s:b,s:b,s:o}",
			    "name", jsonio_string(it->name),
			    "restart", it->kind != PROTO_RESTART_NONE,
			    "reload", it->kind == PROTO_RESTART_RELOAD,
			    "why", jsonio_string(it->why)));
		}
		for (size_t i = 0; i < ps->site->nwould_run; i++)
			json_array_append_new(runs, jsonio_string(ps->site->would_run[i]));
	}
	if (ps->found)
		found = jsonio_pack("{s:o,s:o,s:o,s:o,s:o}", "release",
		    jsonio_string(ps->found_release), "identical", jsonio_uint(p->unchanged),
		    "changed", jsonio_uint(p->updated + p->mode_changed),
		    "extra", jsonio_uint(p->deleted), "missing", jsonio_uint(p->added));
	if (ps->wire != NULL) {
		json_t *encodings = json_object();

		for (int enc = 0; enc <= PROTO_ENC_MAX; enc++)
			json_object_set_new(encodings, delta_encoding_name(enc),
			    jsonio_pack("{s:o,s:o}", "objects", jsonio_uint(ps->wire->enc_objects[enc]),
			    "bytes", jsonio_uint(ps->wire->enc_bytes[enc])));
		wire = jsonio_pack("{s:o,s:o,s:o,s:o,s:o}",
		    "objects", jsonio_uint(ps->wire->objects_sent),
		    "object_bytes", jsonio_uint(ps->wire->object_bytes),
		    "encoded_bytes", jsonio_uint(report_encoded_bytes(ps->wire)),
		    "signatures", jsonio_uint(ps->wire->signatures), "encodings", encodings);
	}
	o = jsonio_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:b}",
	    "host", jsonio_string(host->name), "release", jsonio_string(release),
	    "from", jsonio_string(ps->from), "added", jsonio_uint(p->added),
	    "updated", jsonio_uint(p->updated), "deleted", jsonio_uint(p->deleted),
	    "mode_changed", jsonio_uint(p->mode_changed), "unchanged", jsonio_uint(p->unchanged),
	    "objects", jsonio_uint(p->nobjects), "object_bytes", jsonio_uint(p->object_bytes),
	    "changes", changes, "drifted", drift, "services", services, "found", found,
	    "wire", wire, "run_once", runs, "verified", ps->verified != 0);
	jsonio_write(stdout, o);
	printf("\n");
	json_decref(o);
}

/* Paths that differ between the last applied manifest and the tree as it is. */
static int
collect_drift(enum manifest_change c, const struct manifest_entry *a,
    const struct manifest_entry *b, void *arg)
{
	char ***v = arg;
	size_t n = 0;

	while (*v != NULL && (*v)[n] != NULL)
		n++;
	*v = xreallocarray(*v, n + 2, sizeof(char *));
	(*v)[n] = xstrdup(b ? b->path : a->path);
	(*v)[n + 1] = NULL;
	return 0;
}

/*
 * Says what the site still owes (an interrupted apply, restarts not done),
 * which the plan does not show: a look that changes nothing on the site.
 */
static int
plan_pending(const struct config_host *host)
{
	struct target *t = NULL;
	char *pending = NULL;
	int r, busy;

	r = site_open_readonly(host->path, host->state, 0, &t, &pending);
	if (r == DS_ERR_LOCKED)
		log_warn("%s: an apply is in progress; this plan may be out of date", host->name);
	else if (r == 0 && pending != NULL)
		log_warn("%s: pending: %s", host->name, pending);
	busy = r != 0 || pending != NULL;
	free(pending);
	target_close(t);
	return busy;
}

/*
 * The push's dry run: each object encoded as the push would encode it (the
 * encodings stay in the store's delta cache for that push), nothing sent
 * or changed; the receiver opens the site read-only. SITE (may be NULL)
 * gets the tree the site holds (sender.h). Returns 0 and fills REP, else
 * the session's error (logged).
 */
static int
plan_wire(const struct config *config, struct store *store, const struct config_host *host,
    const char *release, struct report *rep, struct manifest **site)
{
	struct sender_options so;

	memset(&so, 0, sizeof(so));
	so.op = PROTO_OP_PUSH;
	so.config = config;
	so.host = host;
	so.store = store;
	so.release = release;
	so.flags = PROTO_FLAG_DRY_RUN;
	so.lock_timeout = CONFIG_LOCK_TIMEOUT_DEFAULT;
	so.level = config->distribution.level;
	so.site = site;
	return sync_host_with_retries(config, host, &so, rep, NULL);
}

static void
print_plan(const struct config_host *host, const char *release, const struct plan_site *ps,
    const struct plan *p, char **drifted, int json)
{
	if (json)
		print_json(host, release, ps, p, drifted);
	else
		print_text(host, release, ps, p, drifted);
}

/*
 * Plans one host over SSH: the dry-run push gives the tree the site holds,
 * its drift and what it would send; the site's own answer (PROTO_CAP_SITEPLAN)
 * which services would restart. Returns a DS_ERR_* code (logged).
 */
static int
plan_remote(const struct config *config, struct store *store, const struct config_host *host,
    const char *release, const struct manifest *target, int json)
{
	const struct proto_result *res;
	struct manifest *site = NULL;
	struct plan *p = NULL;
	struct plan_site ps;
	struct report wire;
	int r;

	memset(&ps, 0, sizeof(ps));
	memset(&wire, 0, sizeof(wire));
	if ((r = plan_wire(config, store, host, release, &wire, &site)) != 0) {
		log_error("%s: no plan: its dry run failed (%s)", host->name, ds_strerror(r));
		goto out;
	}
	res = &wire.result;
	if (site == NULL)
		site = manifest_new();
	if (res->pending != NULL && res->pending[0] != '\0') {
		char *pending = util_printable(res->pending, 0);

		log_warn("%s: pending: %s", host->name, pending);
		free(pending);
	}
	ps.from = res->from != NULL && res->from[0] != '\0' ? res->from : NULL;
	ps.found = wire.found;
	ps.found_release = wire.found_release;
	ps.wire = &wire;
	ps.site = res->siteplan ? res : NULL;
	ps.verified = (res->flags & PROTO_RESULT_VERIFIED) != 0;
	p = plan_make(site, target);
	print_plan(host, release, &ps, p, res->drift, json);
out:
	plan_free(p);
	manifest_free(site);
	report_release(&wire);
	return r;
}

/* Plans one local host; returns a DS_ERR_* code. */
static int
plan_host(const struct config *config, struct store *store, const struct config_host *host,
    const char *release, const struct manifest *target, int json)
{
	struct manifest *site = NULL, *applied = NULL;
	struct proto_result sp;
	struct plan *p = NULL;
	struct plan_site ps;
	struct report wire;
	char *cache = NULL, *applied_file = NULL, *id_file = NULL, *from = NULL, **drifted = NULL;
	char *found_release = NULL;
	uint8_t digest[HASH_LEN];
	struct stat st;
	int r;

	if (host->address != NULL)
		return plan_remote(config, store, host, release, target, json);
	memset(&sp, 0, sizeof(sp));
	cache = path_join(host->state, "current.stat");
	applied_file = path_join(host->state, "current.manifest");
	id_file = path_join(host->state, "current.id");
	if (stat(host->path, &st) == -1) {
		(void)plan_pending(host);	/* says an apply in progress, if any */
		site = manifest_new();	/* nothing there yet: everything is added */
	} else if ((r = manifest_scan_cached(host->path, NULL, cache, NULL, 0, &site, NULL)) != 0)
		goto out;
	memset(&ps, 0, sizeof(ps));
	report_init(&wire, PROTO_OP_PUSH, PROTO_FLAG_DRY_RUN);
	if (access(applied_file, F_OK) == 0) {
		if ((r = manifest_load(applied_file, &applied)) != 0)
			goto out;
		from = read_line_file(id_file);
		manifest_diff(applied, site, collect_drift, &drifted);
	} else if (site->count > 0) {
		/* Never applied: the files found are adopted, not drift; a kept release? */
		ps.found = 1;
		manifest_digest(site, digest);
		if ((r = store_release_find(store, NULL, digest, &found_release, NULL)) != 0)
			goto out;
	}
	ps.from = from;
	ps.found_release = found_release;
	ps.verified = host->trust_root != NULL && host->trust_root[0] != NULL;
	p = plan_make(site, target);
	/* A local host's configuration is the site's own: it says what would restart. */
	if ((r = apply_preview(config, host->state, applied, target, p->changed_paths,
	    p->nchanged_paths, &sp)) != 0)
		goto out;
	ps.site = &sp;
	/*
	 * The bytes to send: the push's own encodings, from its dry run, on a
	 * target that exists and owes nothing (what a push would complete
	 * first is not what this plan shows).
	 */
	if (stat(host->path, &st) == 0 && !plan_pending(host)) {
		report_release(&wire);
		if (plan_wire(config, store, host, release, &wire, NULL) == 0)
			ps.wire = &wire;
	}
	print_plan(host, release, &ps, p, drifted, json);
	r = 0;
out:
	report_release(&wire);
	proto_result_free(&sp);
	free(found_release);
	plan_free(p);
	manifest_free(site);
	manifest_free(applied);
	xfree_strv(drifted);
	free(cache);
	free(applied_file);
	free(id_file);
	free(from);
	return r;
}

static int
plan_exec(int argc, char **argv, const struct config *config)
{
	static const struct option options[] = {
		{ "release", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const struct config_host **hosts = NULL;
	struct store *store = NULL;
	struct manifest *target = NULL;
	char *release = NULL;
	size_t nhosts = 0;
	int ch, json = 0, r, failed = 0;

	while ((ch = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (ch) {
		case 'r':
			free(release);
			release = xstrdup(optarg);
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			cmd_help(&cmd_plan_entry, plan_options);
			free(release);
			return 0;
		default:
			cmd_usage(&cmd_plan_entry, plan_options);
			free(release);
			return DS_ERR_USAGE;
		}
	}
	if (optind == argc) {
		log_error("plan: name at least one host or group");
		cmd_usage(&cmd_plan_entry, plan_options);
		free(release);
		return DS_ERR_USAGE;
	}
	if ((r = cmd_resolve_hosts(config, argv + optind, (size_t)(argc - optind), &hosts,
	    &nhosts)) != 0)
		goto out;
	if ((r = store_open(config->distribution.store, 0, &store)) != 0)
		goto out;
	if (release == NULL && (r = store_release_latest(store, &release)) != 0)
		goto out;
	if ((r = store_release_load(store, release, &target)) != 0) {
		r = r == DS_ERR_NOTFOUND ? DS_ERR_USAGE : r;
		goto out;
	}
	for (size_t i = 0; i < nhosts; i++) {
		int hr = plan_host(config, store, hosts[i], release, target, json);
		if (hr != 0) {
			failed++;
			r = hr;
		}
	}
	if (failed > 1 || (failed == 1 && nhosts > 1))
		r = DS_ERR_PEER;
out:
	manifest_free(target);
	store_free(store);
	free(hosts);
	free(release);
	return r;
}

const struct cmd_entry cmd_plan_entry = {
	"plan", "HOST|GROUP... [--release ID] [--json]",
	"show what a push would change and which services would restart", 1, plan_exec
};
