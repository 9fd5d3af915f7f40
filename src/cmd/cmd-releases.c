/*
 * distsync releases: list the releases in the store, oldest first; with
 * hosts, what each host keeps: its current release, the backups a rollback
 * can restore (in the order rollbacks reach them), and what it still owes.
 */
#include "autoconf.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/err.h"
#include "base/hint.h"
#include "base/jsonio.h"
#include "base/log.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "cmd/cmd.h"
#include "session/report.h"
#include "config/config.h"
#include "repo/manifest.h"
#include "repo/signing.h"
#include "repo/store.h"
#include "repo/trust.h"
#include "wire/proto.h"

extern const struct cmd_entry cmd_releases_entry;

static const char releases_options[] =
    "  --json              one JSON object per release (or host) on one array\n"
    "  --lock-timeout S    wait up to S seconds for a host's lock (default 30)\n"
    "  -h, --help          this help\n"
    "With HOST|GROUP..., what each host keeps: its current release and the backups\n"
    "'rollback' (in order) or 'rollback --release ID' can restore.\n";

/* One kept entry "ID TIME STEP" of a RESULT, split in place (a copy the caller frees). */
static int
split_kept(const char *entry, char **copy, const char **id, const char **time,
    unsigned *step)
{
	char *p, *sp;

	*copy = p = xstrdup(entry);
	*id = p;
	if ((sp = strchr(p, ' ')) == NULL)
		return -1;
	*sp++ = '\0';
	*time = sp;
	if ((sp = strchr(sp, ' ')) == NULL)
		return -1;
	*sp++ = '\0';
	return util_parse_uint(sp, 100000, step) == 0 ? 0 : -1;
}

static void
host_text(const char *name, const struct report *rep, FILE *fp)
{
	const struct proto_result *res = &rep->result;

	if (rep->status != 0) {
		fprintf(fp, "%s: releases failed: %s\n", name,
		    rep->reason != NULL ? rep->reason : ds_strerror(rep->status));
		return;
	}
	fprintf(fp, "%s: current %s\n", name, res->from != NULL && res->from[0] != '\0' ?
	    res->from : "(none: nothing applied)");
	for (size_t i = 0; i < res->nkept; i++) {
		const char *id, *time;
		unsigned step;
		char *copy, how[48];

		if (split_kept(res->kept[i], &copy, &id, &time, &step) == 0) {
			if (step > 0)
				snprintf(how, sizeof(how), "rollback %u%s", step,
				    step == 1 ? " (next)" : "");
			else
				snprintf(how, sizeof(how), "--release only");
			fprintf(fp, "  %-20s %-24s replaced %s\n", how, id, time);
		}
		free(copy);
	}
	if (res->nkept == 0)
		fprintf(fp, "  no backup kept: nothing to roll back to\n");
	if (res->pending != NULL && res->pending[0] != '\0')
		fprintf(fp, "  pending: %s\n", res->pending);
	if (res->message != NULL && res->message[0] != '\0')
		fprintf(fp, "  last: %s\n", res->message);
}

static json_t *
host_json(const char *name, const struct report *rep)
{
	const struct proto_result *res = &rep->result;
	json_t *o = json_object(), *kept = json_array();

	json_object_set_new(o, "host", jsonio_string(name));
	json_object_set_new(o, "ok", json_boolean(rep->status == 0));
	json_object_set_new(o, "error", rep->status == 0 ? json_null() : jsonio_string(
	    rep->reason != NULL ? rep->reason : ds_strerror(rep->status)));
	json_object_set_new(o, "current", jsonio_string(rep->status == 0 && res->from != NULL &&
	    res->from[0] != '\0' ? res->from : NULL));
	for (size_t i = 0; i < res->nkept; i++) {
		const char *id, *time;
		unsigned step;
		char *copy;

		if (split_kept(res->kept[i], &copy, &id, &time, &step) == 0)
			json_array_append_new(kept, jsonio_pack("{s:o,s:o,s:o}", "id",
			    jsonio_string(id), "time", jsonio_string(time), "rollback_step",
			    step > 0 ? jsonio_uint(step) : json_null()));
		free(copy);
	}
	json_object_set_new(o, "kept", kept);
	json_object_set_new(o, "pending", jsonio_string(res->pending != NULL &&
	    res->pending[0] != '\0' ? res->pending : NULL));
	json_object_set_new(o, "last", jsonio_string(res->message != NULL &&
	    res->message[0] != '\0' ? res->message : NULL));
	return o;
}

/* releases HOST|GROUP...: a RELEASES session with each host, one after the other. */
static int
releases_hosts(const struct config *config, char **names, size_t nnames,
    const struct cmd_session_opts *o)
{
	const struct config_host **hosts = NULL;
	json_t *list = o->json ? json_array() : NULL;
	size_t n = 0;
	int r, failed = 0;

	if ((r = cmd_resolve_targets(config, names, nnames, &hosts, &n)) != 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct report_errors held;
		struct report rep;

		report_errors_hold(&held);	/* a failure is printed once: below */
		cmd_host_session(config, hosts[i], PROTO_OP_RELEASES, o, &rep);
		report_errors_print(&held, &rep);
		if (rep.status != 0 && failed == 0)
			failed = rep.status;
		if (list != NULL)
			json_array_append_new(list, host_json(hosts[i]->name, &rep));
		else
			host_text(hosts[i]->name, &rep, stdout);
		report_release(&rep);
	}
	if (list != NULL) {
		jsonio_write(stdout, list);
		printf("\n");
		json_decref(list);
	}
	free(hosts);
	return failed;
}

static int
releases_exec(int argc, char **argv, const struct config *config)
{
	static const struct option options[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "lock-timeout", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct cmd_session_opts so;
	struct store *store = NULL;
	json_t *list = NULL;
	char **ids = NULL;
	size_t n = 0;
	int ch, json = 0, r;

	cmd_session_defaults(&so);
	while ((ch = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (ch) {
		case 'j':
			json = 1;
			break;
		case 'L':
			if ((r = cmd_session_option(ch, optarg, &so)) < 0)
				return r;
			break;
		case 'h':
			cmd_help(&cmd_releases_entry, releases_options);
			return 0;
		default:
			cmd_usage(&cmd_releases_entry, releases_options);
			return DS_ERR_USAGE;
		}
	}
	/* At a site (site.yml), the releases are the site's: it has no store. */
	if (optind != argc || config->site.upstream != NULL) {
		so.json = json;
		return releases_hosts(config, argv + optind, (size_t)(argc - optind), &so);
	}
	if ((r = store_open(config->distribution.store, 0, &store)) != 0)
		return r;
	store_release_list(store, &ids, &n);
	if (json)
		list = json_array();
	for (size_t i = 0; i < n; i++) {
		struct manifest *m;
		struct trust_doc *sig = NULL;
		uint8_t digest[HASH_LEN];
		char hex[HASH_HEX_LEN + 1], size[32], signed_by[96] = "unsigned";
		size_t files = 0;

		if ((r = store_release_load(store, ids[i], &m)) != 0)
			break;
		for (size_t k = 0; k < m->count; k++)
			files += m->entries[k].type == MANIFEST_FILE;
		manifest_digest(m, digest);
		hash_to_hex(digest, hex);
		/* A document that does not cover this manifest is as good as none. */
		if (signing_release_load(store, ids[i], &sig, NULL, NULL) == 0 &&
		    memcmp(sig->manifest, digest, HASH_LEN) == 0)
			snprintf(signed_by, sizeof(signed_by), "signed #%" PRIu64 " key %.16s",
			    sig->sequence, sig->sigs[0].keyid);
		else if (sig != NULL)
			snprintf(signed_by, sizeof(signed_by), "BAD SIGNATURE FILE");
		if (json) {
			json_t *o = jsonio_pack("{s:o,s:o,s:o,s:s,s:b}",
			    "id", jsonio_string(ids[i]), "files", jsonio_uint(files),
			    "bytes", jsonio_uint(manifest_total_size(m)), "manifest", hex,
			    "latest", i + 1 == n);

			json_object_set_new(o, "signed", json_boolean(signed_by[0] == 's'));
			if (signed_by[0] == 's') {
				json_object_set_new(o, "sequence", jsonio_uint(sig->sequence));
				json_object_set_new(o, "key", jsonio_string(sig->sigs[0].keyid));
			}
			json_array_append_new(list, o);
		} else {
			util_format_bytes(manifest_total_size(m), size, sizeof(size));
			printf("%-24s %7zu files %10s  %.16s  %s%s\n", ids[i], files, size, hex,
			    signed_by, i + 1 == n ? "  (latest)" : "");
		}
		trust_doc_free(sig);
		manifest_free(m);
	}
	if (json) {
		/* Whatever was listed before an error, as before. */
		jsonio_write(stdout, list);
		printf("\n");
		json_decref(list);
	} else if (n == 0) {
		char *cmd = hint_command((const char *const[]){ "release", NULL });

		printf("no releases yet: run '%s'\n", cmd);
		free(cmd);
	}
	xfree_strv(ids);
	store_free(store);
	return r;
}

const struct cmd_entry cmd_releases_entry = {
	"releases", "[--json] [--lock-timeout S] [HOST|GROUP...]",
	"list the releases in the store, or what hosts keep to roll back to", 1, releases_exec
};
