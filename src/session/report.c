/*
 * A host's report (report.h): its text, its JSON shapes, its summary table
 * and progress line, its encoding on the fleet pipe, and the failed hosts
 * read back from a saved summary.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stddef.h>
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
#include "codec/delta.h"
#include "config/config.h"
#include "session/report.h"
#include "site/commit.h"

/* Status values a report may carry: 0 and the DS_ERR_* range. */
#define STATUS_MIN	(-1000)

/* The report's counters, by their key on the fleet pipe: one list for both ways. */
static const struct {
	const char	*key;
	size_t		 offset;	/* of a uint64_t in struct report */
} counters[] = {
	{ "objects_sent", offsetof(struct report, objects_sent) },
	{ "object_bytes", offsetof(struct report, object_bytes) },
	{ "planned_bytes", offsetof(struct report, planned_bytes) },
	{ "bytes_sent", offsetof(struct report, bytes_sent) },
	{ "bytes_received", offsetof(struct report, bytes_received) },
	{ "round_trips", offsetof(struct report, round_trips) },
	{ "signatures", offsetof(struct report, signatures) },
	{ "delta_fallbacks", offsetof(struct report, fallbacks) },
	{ "cache_hits", offsetof(struct report, cache_hits) },
	{ "identical", offsetof(struct report, identical) },
};

/* The same for the receiver's RESULT. */
static const struct {
	const char	*key;
	size_t		 offset;	/* of a uint64_t in struct proto_result */
} result_counters[] = {
	{ "added", offsetof(struct proto_result, added) },
	{ "updated", offsetof(struct proto_result, updated) },
	{ "deleted", offsetof(struct proto_result, deleted) },
	{ "changed", offsetof(struct proto_result, changed) },
	{ "objects", offsetof(struct proto_result, objects) },
	{ "bytes", offsetof(struct proto_result, bytes) },
};

void
report_init(struct report *rep, uint8_t op, uint32_t flags)
{
	memset(rep, 0, sizeof(*rep));
	rep->op = op;
	rep->flags = flags;
}

void
report_release(struct report *rep)
{
	if (rep == NULL)
		return;
	proto_result_free(&rep->result);
	free(rep->release);
	free(rep->reason);
	free(rep->found_release);
	free(rep->drift_first);
	memset(rep, 0, sizeof(*rep));
}

static int
nonempty(const char *s)
{
	return s != NULL && s[0] != '\0';
}

void
report_explain(struct report *rep, const char *first_error)
{
	if (rep->status == 0 || rep->reason != NULL)
		return;
	if (nonempty(rep->result.message))
		rep->reason = xstrdup(rep->result.message);
	else if (first_error != NULL)
		rep->reason = xstrdup(first_error);
	else
		rep->reason = xstrdup(ds_strerror(rep->status));
}

static const char *
op_name(uint8_t op)
{
	switch (op) {
	case PROTO_OP_PUSH:	return "push";
	case PROTO_OP_ROLLBACK:	return "rollback";
	case PROTO_OP_VERIFY:	return "verify";
	case PROTO_OP_RELEASES:	return "releases";
	}
	return "?";
}

/*
 * The release a summary names as a session's target: the one the receiver
 * reports, else, for a push that got an answer, the one pushed. NULL for
 * sessions that change nothing (verify, releases).
 */
static const char *
push_target(const struct report *rep)
{
	if (rep->op == PROTO_OP_ROLLBACK)
		return nonempty(rep->result.to) ? rep->result.to : NULL;
	if (rep->op != PROTO_OP_PUSH)
		return NULL;
	if (nonempty(rep->result.to))
		return rep->result.to;
	return rep->result.from != NULL ? rep->release : NULL;
}

/* Why a failed session failed, whole: its reason, the receiver's message, the status. */
static const char *
reason_text(const struct report *rep)
{
	if (rep->reason != NULL)
		return rep->reason;
	if (nonempty(rep->result.message))
		return rep->result.message;
	return ds_strerror(rep->status);
}

uint64_t
report_encoded_bytes(const struct report *rep)
{
	uint64_t total = 0;

	for (int enc = 0; enc <= PROTO_ENC_MAX; enc++)
		total += rep->enc_bytes[enc];
	return total;
}

/*
 * Where a session started, as the summary names it: the release applied
 * last, a tree found on a site distsync never applied ("(found release A,
 * not yet managed)"; BRIEF: "(found A)"), or "(none)". Caller frees.
 */
static char *
from_text(const struct report *rep, int brief)
{
	const char *from = rep->result.from;
	char *text, *safe;

	if (nonempty(from))
		return util_printable(from, 0);	/* the peer's bytes */
	if (!rep->found)
		return xstrdup("(none)");
	if (brief)
		text = rep->found_release != NULL ? xasprintf("(found %s)", rep->found_release) :
		    xstrdup("(found)");
	else
		text = rep->found_release != NULL ?
		    xasprintf("(found release %s, not yet managed)", rep->found_release) :
		    xstrdup("(found files of no kept release, not yet managed)");
	safe = util_printable(text, 0);
	free(text);
	return safe;
}

/* Prints BEFORE, S (from the peer, its control characters escaped) and AFTER. */
static void
put_peer(FILE *fp, const char *before, const char *s, const char *after, int flags)
{
	char *safe = util_printable(s, flags);

	fprintf(fp, "%s%s%s", before, safe, after);
	free(safe);
}

/* The dry run the summary shows: the one asked for, answered or not. */
static int
asked_dry_run(const struct report *rep)
{
	return (rep->flags & PROTO_FLAG_DRY_RUN) != 0;
}

/*
 * Where the drift a push overwrote was kept, and the command that gets a
 * file back, as it works when pasted: the backup set of the state replaced
 * (the tree found, on a first apply).
 */
static void
print_restore_hint(const struct report *rep, const char *host, FILE *fp)
{
	const struct proto_result *res = &rep->result;
	const char *set = nonempty(res->from) ? res->from : COMMIT_ID_FOUND;
	char *cmd = hint_restore(set, host, res->ndrift > 0 ? res->drift[0] : rep->drift_first);
	char *safe = util_printable(cmd, 0), *safe_set = util_printable(set, 0);

	fprintf(fp, "  the files found are kept in %s's backup set %s; get one back "
	    "(as ./NAME.restored) with:\n    %s\n", host, safe_set, safe);
	if (res->ndrift > 1 || rep->drift_count > 1)
		fprintf(fp, "    (the others the same way: each path above, quoted as needed; "
		    "several at once)\n");
	free(safe_set);
	free(safe);
	free(cmd);
}

/*
 * The lines of a session, TO already escaped: every string the peer sent
 * goes through put_peer, util_printable or from_text.
 */
static void
print_text(const struct report *rep, const char *host, const char *to, FILE *fp)
{
	const struct proto_result *res = &rep->result;
	int dry = (res->flags & PROTO_FLAG_DRY_RUN) != 0, status = rep->status;
	char sent[32], recv[32], *from;

	if (rep->op == PROTO_OP_VERIFY) {
		if (status != 0 && status != DS_ERR_CORRUPT) {
			fprintf(fp, "%s: verify failed: ", host);
			put_peer(fp, "", reason_text(rep), "\n", UTIL_KEEP_NEWLINES);
			return;
		}
		from = from_text(rep, 0);
		if (rep->found)
			fprintf(fp, "%s: %.*s: no drift\n", host, (int)strlen(from) - 2, from + 1);
		else
			fprintf(fp, "%s: release %s: %s\n", host, from,
			    res->changed == 0 ? "no drift" : "drifted");
		free(from);
		for (size_t i = 0; i < res->ndrift; i++)
			put_peer(fp, "  drift   ", res->drift[i], "\n", 0);
		if (res->changed > res->ndrift)
			fprintf(fp, "  ... and %" PRIu64 " more\n", res->changed - res->ndrift);
		if (nonempty(res->pending))
			put_peer(fp, "  pending: ", res->pending, "\n", 0);
		return;
	}
	if (status != 0 && res->to == NULL) {
		fprintf(fp, "%s: %s failed: ", host, op_name(rep->op));
		put_peer(fp, "", reason_text(rep), "\n", UTIL_KEEP_NEWLINES);
		return;
	}
	util_format_bytes(rep->bytes_sent, sent, sizeof(sent));
	util_format_bytes(rep->object_bytes, recv, sizeof(recv));
	from = from_text(rep, 0);
	if (rep->op == PROTO_OP_PUSH && rep->found)
		fprintf(fp, "%s: %s%s %s -> %s: %" PRIu64 " identical, %" PRIu64 " changed, %"
		    PRIu64 " extra, %" PRIu64 " missing%s\n", host, dry ? "dry run, " : "",
		    op_name(rep->op), from, to, rep->identical, res->updated, res->deleted,
		    res->added, status == 0 ? "" : " (not applied)");
	else
		fprintf(fp, "%s: %s%s %s -> %s: %" PRIu64 " added, %" PRIu64 " updated, %" PRIu64
		    " deleted%s\n", host, dry ? "dry run, " : "", op_name(rep->op), from, to,
		    res->added, res->updated, res->deleted, status == 0 ? "" : " (not applied)");
	free(from);
	if (rep->op == PROTO_OP_PUSH && dry) {
		char encoded[32];

		util_format_bytes(report_encoded_bytes(rep), encoded, sizeof(encoded));
		fprintf(fp, "  %" PRIu64 " object%s to send (%s of content, %s encoded); this dry "
		    "run: %s on the wire, %" PRIu64 " round trip%s\n", rep->objects_sent,
		    rep->objects_sent == 1 ? "" : "s", recv, encoded, sent, rep->round_trips,
		    rep->round_trips == 1 ? "" : "s");
	}
	else if (rep->op == PROTO_OP_PUSH)
		fprintf(fp, "  %" PRIu64 " object%s sent (%s of content, %s on the wire), "
		    "%" PRIu64 " round trip%s\n", rep->objects_sent,
		    rep->objects_sent == 1 ? "" : "s", recv, sent, rep->round_trips,
		    rep->round_trips == 1 ? "" : "s");
	if (rep->op == PROTO_OP_PUSH && rep->objects_sent > 0) {
		fprintf(fp, "  encodings:");
		for (int enc = 0; enc <= PROTO_ENC_MAX; enc++) {
			char b[32];

			if (rep->enc_objects[enc] == 0)
				continue;
			util_format_bytes(rep->enc_bytes[enc], b, sizeof(b));
			fprintf(fp, " %s %" PRIu64 " (%s)", delta_encoding_name(enc),
			    rep->enc_objects[enc], b);
		}
		if (rep->signatures > 0)
			fprintf(fp, "; %" PRIu64 " signature%s", rep->signatures,
			    rep->signatures == 1 ? "" : "s");
		if (rep->cache_hits > 0)
			fprintf(fp, "; %" PRIu64 " from the delta cache", rep->cache_hits);
		fprintf(fp, "\n");
		if (rep->fallbacks > 0)
			fprintf(fp, "  %" PRIu64 " delta%s did not reconstruct on the host: sent whole "
			    "instead\n", rep->fallbacks, rep->fallbacks == 1 ? "" : "s");
	}
	for (size_t i = 0; i < res->ndrift; i++)
		put_peer(fp, "  drift   ", res->drift[i], status == DS_ERR_DRIFT ?
		    " (changed on the host since the last apply)\n" : dry ?
		    " (changed on the host since the last apply; would be overwritten)\n" :
		    " (changed on the host since the last apply; overwritten)\n", 0);
	if (rep->op == PROTO_OP_PUSH && !dry && status == 0 && res->ndrift > 0)
		print_restore_hint(rep, host, fp);
	for (size_t i = 0; i < res->nruns; i++)
		put_peer(fp, "  run_once: ", res->runs[i], "\n", 0);
	if (res->nservices > 0) {
		/* A dry run's services are the site's plan (PROTO_CAP_SITEPLAN). */
		fprintf(fp, dry ? "  would restart:" : "  restarted:");
		for (size_t i = 0; i < res->nservices; i++)
			put_peer(fp, " ", res->services[i], "", 0);
		if (dry)
			fprintf(fp, " (distsync plan says why)\n");
		else
			put_peer(fp, " (health: ", res->health ? res->health : "?", ")\n", 0);
	} else if (res->health != NULL && strcmp(res->health, "none") != 0)
		put_peer(fp, "  services: ", res->health, "\n", 0);
	else if (!dry && status == 0)
		fprintf(fp, "  no service restarted\n");
	if (nonempty(res->pending))
		put_peer(fp, "  pending: ", res->pending, "\n", 0);
	if (status != 0)
		put_peer(fp, "  failed: ", reason_text(rep), "\n", UTIL_KEEP_NEWLINES);
}

void
report_print_text(const struct report *rep, const char *host, FILE *fp)
{
	const struct proto_result *res = &rep->result;
	char *to = util_printable(nonempty(res->to) ? res->to :
	    (rep->release ? rep->release : "?"), 0);

	print_text(rep, host, to, fp);
	free(to);
}

/* Sets KEY of O to V, taking V (made here: it cannot fail). */
static void
put(json_t *o, const char *key, json_t *v)
{
	(void)json_object_set_new(o, key, v);
}

static json_t *
string_array(char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		(void)json_array_append_new(a, jsonio_string(v[i]));
	return a;
}

/*
 * A site never applied, as found: null, or the kept release its tree equals
 * and, for a push, how that tree relates to the release pushed.
 */
static json_t *
found_json(const struct report *rep)
{
	const struct proto_result *res = &rep->result;
	json_t *o;

	if (!rep->found)
		return json_null();
	o = json_object();
	put(o, "release", jsonio_string(rep->found_release));
	if (rep->op == PROTO_OP_PUSH) {
		put(o, "identical", jsonio_uint(rep->identical));
		put(o, "changed", jsonio_uint(res->updated));
		put(o, "extra", jsonio_uint(res->deleted));
		put(o, "missing", jsonio_uint(res->added));
	}
	return o;
}

json_t *
report_json(const struct report *rep, const char *host)
{
	const struct proto_result *res = &rep->result;
	json_t *o = json_object(), *encodings = json_object();

	put(o, "host", jsonio_string(host));
	put(o, "operation", json_string(op_name(rep->op)));
	put(o, "ok", json_boolean(rep->status == 0));
	put(o, "error", rep->status == 0 ? json_null() : jsonio_string(reason_text(rep)));
	put(o, "dry_run", json_boolean((res->flags & PROTO_FLAG_DRY_RUN) != 0));
	put(o, "from", jsonio_string(nonempty(res->from) ? res->from : NULL));
	put(o, "to", jsonio_string(nonempty(res->to) ? res->to : rep->release));
	put(o, "added", jsonio_uint(res->added));
	put(o, "updated", jsonio_uint(res->updated));
	put(o, "deleted", jsonio_uint(res->deleted));
	put(o, "changed", jsonio_uint(res->changed));
	put(o, "objects_sent", jsonio_uint(rep->objects_sent));
	put(o, "object_bytes", jsonio_uint(rep->object_bytes));
	put(o, "bytes_sent", jsonio_uint(rep->bytes_sent));
	put(o, "bytes_received", jsonio_uint(rep->bytes_received));
	put(o, "round_trips", jsonio_uint(rep->round_trips));
	put(o, "encoded_bytes", jsonio_uint(report_encoded_bytes(rep)));
	for (int enc = 0; enc <= PROTO_ENC_MAX; enc++)
		put(encodings, delta_encoding_name(enc), jsonio_pack("{s:o,s:o}",
		    "objects", jsonio_uint(rep->enc_objects[enc]),
		    "bytes", jsonio_uint(rep->enc_bytes[enc])));
	put(o, "encodings", encodings);
	put(o, "signatures", jsonio_uint(rep->signatures));
	put(o, "delta_fallbacks", jsonio_uint(rep->fallbacks));
	put(o, "cache_hits", jsonio_uint(rep->cache_hits));
	put(o, "services", string_array(res->services, res->nservices));
	put(o, "health", jsonio_string(res->health ? res->health : "none"));
	put(o, "drift", string_array(res->drift, res->ndrift));
	put(o, "run_once", string_array(res->runs, res->nruns));
	put(o, "pending", jsonio_string(nonempty(res->pending) ? res->pending : NULL));
	put(o, "found", found_json(rep));
	return o;
}

void
report_split_history(const char *line, char **copy, const char **time, const char **action,
    const char **result)
{
	char *p, *sp, *res;

	*copy = NULL;
	*time = *action = *result = NULL;
	if (line == NULL)
		return;
	*copy = p = xstrdup(line);
	res = strstr(p, " result=");
	if (res != NULL) {
		*res = '\0';
		*result = res + 8;
	}
	if ((sp = strchr(p, ' ')) != NULL) {
		*sp = '\0';
		*action = sp + 1;
		if ((sp = strchr(sp + 1, ' ')) != NULL)
			*sp = '\0';
	}
	*time = p;
}

json_t *
report_history_json(const char *line)
{
	const char *time, *action, *result;
	json_t *o = json_null();
	char *copy;

	report_split_history(line, &copy, &time, &action, &result);
	if (time != NULL)
		o = jsonio_pack("{s:o,s:o,s:o,s:o}", "time", jsonio_string(time),
		    "action", jsonio_string(action != NULL ? action : ""),
		    "result", jsonio_string(result != NULL ? result : ""),
		    "line", jsonio_string(line));
	free(copy);
	return o;
}

json_t *
report_verify_json(const struct report *rep, const char *host)
{
	const struct proto_result *res = &rep->result;
	int answered = rep->status == 0 || rep->status == DS_ERR_CORRUPT;
	json_t *o = json_object();

	put(o, "host", jsonio_string(host));
	put(o, "operation", json_string("verify"));
	put(o, "ok", json_boolean(rep->status == 0));
	put(o, "result", json_string(!answered ? "FAILED" : res->changed > 0 ? "drifted" :
	    "no drift"));
	put(o, "error", answered ? json_null() : jsonio_string(reason_text(rep)));
	put(o, "release", jsonio_string(answered && nonempty(res->from) ? res->from : NULL));
	put(o, "verified", answered ?
	    json_boolean((res->flags & PROTO_RESULT_VERIFIED) != 0) : json_null());
	put(o, "drifted", answered ? jsonio_uint(res->changed) : json_null());
	put(o, "drift", string_array(res->drift, res->ndrift));
	put(o, "drift_complete", json_boolean(res->ndrift >= res->changed));
	put(o, "pending", jsonio_string(nonempty(res->pending) ? res->pending : NULL));
	put(o, "last_apply", report_history_json(answered && nonempty(res->message) ?
	    res->message : NULL));
	put(o, "found", found_json(rep));
	return o;
}

/* log capture: keeps an error line back (it is not printed). */
static int
hold_line(const char *line, void *arg)
{
	struct report_errors *held = arg;

	held->lines = xgrow(held->lines, &held->alloc, held->count + 2, sizeof(char *));
	held->lines[held->count++] = xstrdup(line);
	held->lines[held->count] = NULL;
	return 1;
}

void
report_errors_hold(struct report_errors *held)
{
	memset(held, 0, sizeof(*held));
	log_set_capture(hold_line, held);
}

/*
 * Whether REASON already says LINE: LINE is in it, or LINE after its first
 * "NAME: " (the host or peer a log line names, which a summary row has).
 */
static int
reason_covers(const char *reason, const char *line)
{
	const char *rest;

	if (strstr(reason, line) != NULL)
		return 1;
	return (rest = strstr(line, ": ")) != NULL && rest[2] != '\0' &&
	    strstr(reason, rest + 2) != NULL;
}

void
report_errors_print(struct report_errors *held, struct report *rep)
{
	log_set_capture(NULL, NULL);
	if (rep != NULL)
		report_explain(rep, held->count > 0 ? held->lines[0] : NULL);
	for (size_t i = 0; i < held->count; i++) {
		if (rep == NULL || rep->reason == NULL || !reason_covers(rep->reason, held->lines[i]))
			log_error("%s", held->lines[i]);
		free(held->lines[i]);
	}
	free(held->lines);
	memset(held, 0, sizeof(*held));
}

void
report_line(const struct report *rep, char *buf, size_t len)
{
	const char *to = push_target(rep);
	char sent[32], *from, *line;

	if (rep->status != 0) {
		line = xstrdup(reason_text(rep));
		for (char *p = line; *p != '\0'; p++)
			if (*p == '\n')
				*p = ' ';
		util_printable_buf(line, 0, buf, len);
		free(line);
		return;
	}
	util_format_bytes(rep->bytes_sent, sent, sizeof(sent));
	from = from_text(rep, 1);
	line = xasprintf("%s%s -> %s, %" PRIu64 " file%s changed, %s sent, %.1f s",
	    asked_dry_run(rep) ? "dry run, " : "", from, to != NULL ? to : "?",
	    rep->result.changed, rep->result.changed == 1 ? "" : "s", sent, rep->seconds);
	util_printable_buf(line, 0, buf, len);	/* TO is the peer's */
	free(line);
	free(from);
}

static const char *
result_word(const struct report *rep)
{
	if (!rep->started)
		return "not started";
	if (rep->status != 0)
		return "FAILED";
	return asked_dry_run(rep) ? "dry run" : "ok";
}

/* A cell's text with control characters and newlines made visible and safe. */
static char *
cell(const char *s)
{
	return util_printable(s != NULL ? s : "", 0);
}

/* The services restarted, comma-separated, or "-". */
static char *
services_cell(const struct proto_result *res)
{
	char *text = NULL, *cat;
	size_t size = 0;
	FILE *fp;

	if (res->nservices == 0 || (fp = open_memstream(&text, &size)) == NULL)
		return xstrdup("-");
	for (size_t i = 0; i < res->nservices; i++)
		fprintf(fp, "%s%s", i > 0 ? "," : "", res->services[i]);
	if (fclose(fp) != 0) {
		free(text);
		return xstrdup("-");
	}
	cat = cell(text[0] != '\0' ? text : "-");
	free(text);
	return cat;
}

void
report_print_table(const struct config_host *const *hosts, const struct report *reps, size_t n,
    FILE *fp)
{
	enum { C_HOST, C_RELEASE, C_FILES, C_SENT, C_TIME, C_SERVICES, C_RESULT, C_REASON, NCOL };
	static const char *head[NCOL] = { "HOST", "FROM -> TO", "FILES", "SENT", "TIME",
	    "RESTARTED", "RESULT", "REASON" };
	size_t width[NCOL], ok = 0, failed = 0, idle = 0;
	char ***cells = xcalloc(n, sizeof(char **));
	uint64_t total = 0;

	for (int c = 0; c < NCOL; c++)
		width[c] = strlen(head[c]);
	for (size_t i = 0; i < n; i++) {
		const struct report *r = &reps[i];
		const char *to = push_target(r);
		char sent[32], *from = from_text(r, 1);

		cells[i] = xcalloc(NCOL, sizeof(char *));
		cells[i][C_HOST] = cell(hosts[i]->name);
		if (to != NULL) {
			char *text = xasprintf("%s -> %s", from, to);

			cells[i][C_RELEASE] = cell(text);
			free(text);
		} else
			cells[i][C_RELEASE] = xstrdup("-");
		cells[i][C_FILES] = r->started && to != NULL ?
		    xasprintf("%" PRIu64, r->result.changed) : xstrdup("-");
		util_format_bytes(r->bytes_sent, sent, sizeof(sent));
		cells[i][C_SENT] = r->started ? xstrdup(sent) : xstrdup("-");
		cells[i][C_TIME] = r->started ? xasprintf("%.1f s", r->seconds) : xstrdup("-");
		cells[i][C_SERVICES] = services_cell(&r->result);
		cells[i][C_RESULT] = xstrdup(result_word(r));
		cells[i][C_REASON] = cell(r->status != 0 ? reason_text(r) : "");
		free(from);
		for (int c = 0; c < NCOL; c++)
			if (strlen(cells[i][c]) > width[c])
				width[c] = strlen(cells[i][c]);
		total += r->bytes_sent;
		if (!r->started)
			idle++;
		else if (r->status != 0)
			failed++;
		else
			ok++;
	}
	for (int c = 0; c < NCOL - 1; c++)
		fprintf(fp, "%-*s  ", (int)width[c], head[c]);
	fprintf(fp, "%s\n", head[NCOL - 1]);
	for (size_t i = 0; i < n; i++) {
		for (int c = 0; c < NCOL; c++) {
			if (c == NCOL - 1)
				fprintf(fp, "%s\n", cells[i][c]);
			else if (c == C_FILES || c == C_SENT || c == C_TIME)
				fprintf(fp, "%*s  ", (int)width[c], cells[i][c]);
			else
				fprintf(fp, "%-*s  ", (int)width[c], cells[i][c]);
			free(cells[i][c]);
		}
		free(cells[i]);
	}
	free(cells);
	{
		char sent[32];

		util_format_bytes(total, sent, sizeof(sent));
		fprintf(fp, "%zu host%s: %zu ok, %zu failed, %zu not started; %s sent\n", n,
		    n == 1 ? "" : "s", ok, failed, idle, sent);
	}
	/* Drift a push overwrote: where it was kept and how to get it back, per host. */
	for (size_t i = 0; i < n; i++) {
		const struct report *r = &reps[i];

		if (r->op != PROTO_OP_PUSH || r->status != 0 || r->drift_first == NULL ||
		    (r->result.flags & PROTO_FLAG_DRY_RUN) != 0)
			continue;
		fprintf(fp, "%s: %" PRIu64 " file%s changed on the host since the last apply, "
		    "overwritten (", hosts[i]->name, r->drift_count, r->drift_count == 1 ? "" : "s");
		put_peer(fp, r->drift_count == 1 ? "" : "first: ", r->drift_first, ")\n", 0);
		print_restore_hint(r, hosts[i]->name, fp);
	}
}

/* One host's object of report_print_fleet_json. */
static json_t *
fleet_json(const char *host, const struct report *r)
{
	const struct proto_result *res = &r->result;
	json_t *o = json_object();

	put(o, "host", jsonio_string(host));
	put(o, "operation", json_string("push"));
	put(o, "ok", json_boolean(r->status == 0));
	put(o, "result", json_string(result_word(r)));
	put(o, "started", json_boolean(r->started));
	put(o, "error", r->status == 0 ? json_null() : jsonio_string(reason_text(r)));
	put(o, "dry_run", json_boolean(asked_dry_run(r)));
	put(o, "from", jsonio_string(nonempty(res->from) ? res->from : NULL));
	put(o, "to", jsonio_string(push_target(r)));
	put(o, "added", jsonio_uint(res->added));
	put(o, "updated", jsonio_uint(res->updated));
	put(o, "deleted", jsonio_uint(res->deleted));
	put(o, "changed", jsonio_uint(res->changed));
	put(o, "objects_sent", jsonio_uint(r->objects_sent));
	put(o, "object_bytes", jsonio_uint(r->object_bytes));
	put(o, "bytes_sent", jsonio_uint(r->bytes_sent));
	put(o, "bytes_received", jsonio_uint(r->bytes_received));
	put(o, "round_trips", jsonio_uint(r->round_trips));
	put(o, "encoded", jsonio_uint(r->objects_sent - r->enc_objects[PROTO_ENC_RAW]));
	put(o, "cache_hits", jsonio_uint(r->cache_hits));
	put(o, "seconds", jsonio_seconds(r->seconds));
	put(o, "services", string_array(res->services, res->nservices));
	put(o, "health", jsonio_string(res->health));
	put(o, "found", found_json(r));
	return o;
}

int
report_print_fleet_json(const struct config_host *const *hosts, const struct report *reps,
    size_t n, FILE *fp)
{
	json_t *a = json_array();
	int r;

	for (size_t i = 0; i < n; i++)
		(void)json_array_append_new(a, fleet_json(hosts[i]->name, &reps[i]));
	r = jsonio_write_lines(fp, a);
	json_decref(a);
	return r;
}

/* A host name as a report may hold it: printable, as in a config. */
static int
host_name_ok(const char *name)
{
	if (name[0] == '\0')
		return 0;
	for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

int
report_failed_hosts(const char *path, char ***names)
{
	char *line = NULL, **v = NULL;
	size_t cap = 0, count = 0, alloc = 0;
	FILE *fp;

	*names = NULL;
	if ((fp = fopen(path, "re")) == NULL) {
		log_errno("%s: no report of a previous push", path);
		return DS_ERR_NOTFOUND;
	}
	while (getline(&line, &cap, fp) != -1) {
		/* One host a line; the "," after it is not part of its object. */
		json_t *o = jsonio_parse(line, 1);
		const char *name = json_string_value(json_object_get(o, "host"));

		if (name != NULL && json_is_false(json_object_get(o, "ok")) && host_name_ok(name)) {
			v = xgrow(v, &alloc, count + 2, sizeof(char *));
			v[count++] = xstrdup(name);
			v[count] = NULL;
		}
		json_decref(o);
	}
	free(line);
	fclose(fp);
	if (v == NULL)
		v = xcalloc(1, sizeof(char *));
	*names = v;
	return 0;
}

json_t *
report_encode(const struct report *rep)
{
	const struct proto_result *res = &rep->result;
	json_t *o = json_object(), *result = json_object(), *encodings = json_array();

	put(o, "op", json_integer(rep->op));
	put(o, "flags", json_integer(rep->flags));
	put(o, "status", json_integer(rep->status));
	put(o, "started", json_boolean(rep->started));
	put(o, "reason", jsonio_string(rep->reason));
	put(o, "seconds", json_real(rep->seconds));
	put(o, "release", jsonio_string(rep->release));
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		put(o, counters[i].key,
		    jsonio_uint(*(const uint64_t *)((const char *)rep + counters[i].offset)));
	put(o, "manifest_fetched", json_boolean(rep->manifest_fetched));
	put(o, "found", json_boolean(rep->found));
	put(o, "found_release", jsonio_string(rep->found_release));
	/* The drift list stays with the host; its count and first path come. */
	put(o, "drift_count", jsonio_uint(res->ndrift > 0 ? res->ndrift : rep->drift_count));
	put(o, "drift_first", jsonio_string(res->ndrift > 0 ? res->drift[0] : rep->drift_first));
	for (int enc = 0; enc <= PROTO_ENC_MAX; enc++)
		(void)json_array_append_new(encodings, jsonio_pack("[o,o]",
		    jsonio_uint(rep->enc_objects[enc]), jsonio_uint(rep->enc_bytes[enc])));
	put(o, "encodings", encodings);
	put(result, "status", json_integer(res->status));
	put(result, "flags", json_integer(res->flags));
	put(result, "from", jsonio_string(res->from));
	put(result, "to", jsonio_string(res->to));
	for (size_t i = 0; i < sizeof(result_counters) / sizeof(result_counters[0]); i++)
		put(result, result_counters[i].key, jsonio_uint(*(const uint64_t *)
		    ((const char *)res + result_counters[i].offset)));
	put(result, "services", string_array(res->services, res->nservices));
	put(result, "health", jsonio_string(res->health));
	put(result, "message", jsonio_string(res->message));
	if (res->tail) {
		put(result, "pending", jsonio_string(res->pending));
		put(result, "kept", string_array(res->kept, res->nkept));
		put(result, "runs", string_array(res->runs, res->nruns));
	}
	put(o, "result", result);
	return o;
}

/*
 * Decoders of one member of O; an absent (or null) member leaves *out as it
 * is. They return 0, or -1 for a member of the wrong type or range.
 */
static int
get_int(const json_t *o, const char *key, json_int_t min, json_int_t max, json_int_t *out)
{
	const json_t *v = json_object_get(o, key);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return -1;
	*out = json_integer_value(v);
	return 0;
}

static int
get_uint(const json_t *o, const char *key, uint64_t *out)
{
	json_int_t v = 0;

	if (get_int(o, key, 0, JSONIO_INT_MAX, &v) != 0)
		return -1;
	*out = (uint64_t)v;
	return 0;
}

static int
get_bool(const json_t *o, const char *key, int *out)
{
	const json_t *v = json_object_get(o, key);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return -1;
	*out = json_is_true(v);
	return 0;
}

static int
get_string(const json_t *o, const char *key, char **out)
{
	const json_t *v = json_object_get(o, key);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return -1;
	*out = xstrdup(json_string_value(v));
	return 0;
}

static int
get_strings(const json_t *o, const char *key, char ***out, size_t *count)
{
	const json_t *v = json_object_get(o, key);
	size_t n;

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_array(v) || (n = json_array_size(v)) > PROTO_LIST_MAX)
		return -1;
	*out = xcalloc(n + 1, sizeof(char *));
	for (*count = 0; *count < n; (*count)++) {
		const char *s = json_string_value(json_array_get(v, *count));

		if (s == NULL)
			return -1;
		(*out)[*count] = xstrdup(s);
	}
	return 0;
}

static int
decode_result(const json_t *o, struct proto_result *res)
{
	json_int_t status = 0, flags = 0;
	int bad = 0;

	if (o == NULL || json_is_null(o))
		return 0;
	if (!json_is_object(o))
		return -1;
	bad |= get_int(o, "status", STATUS_MIN, 0, &status);
	bad |= get_int(o, "flags", 0, UINT32_MAX, &flags);
	res->status = (int32_t)status;
	res->flags = (uint32_t)flags;
	bad |= get_string(o, "from", &res->from);
	bad |= get_string(o, "to", &res->to);
	for (size_t i = 0; i < sizeof(result_counters) / sizeof(result_counters[0]); i++)
		bad |= get_uint(o, result_counters[i].key,
		    (uint64_t *)((char *)res + result_counters[i].offset));
	bad |= get_strings(o, "services", &res->services, &res->nservices);
	bad |= get_string(o, "health", &res->health);
	bad |= get_string(o, "message", &res->message);
	if (json_object_get(o, "kept") != NULL) {
		res->tail = 1;
		bad |= get_string(o, "pending", &res->pending);
		bad |= get_strings(o, "kept", &res->kept, &res->nkept);
		bad |= get_strings(o, "runs", &res->runs, &res->nruns);
	}
	return bad;
}

int
report_decode(const json_t *v, struct report *rep)
{
	const json_t *encodings = json_object_get(v, "encodings");
	json_int_t op = 0, flags = 0, status = 0;
	double seconds;
	int bad = 0;

	memset(rep, 0, sizeof(*rep));
	if (!json_is_object(v) || !json_is_integer(json_object_get(v, "status")))
		return DS_ERR_PROTO;
	bad |= get_int(v, "op", 0, UINT8_MAX, &op);
	bad |= get_int(v, "flags", 0, UINT32_MAX, &flags);
	bad |= get_int(v, "status", STATUS_MIN, 0, &status);
	rep->op = (uint8_t)op;
	rep->flags = (uint32_t)flags;
	rep->status = (int)status;
	bad |= get_bool(v, "started", &rep->started);
	bad |= get_string(v, "reason", &rep->reason);
	seconds = json_number_value(json_object_get(v, "seconds"));
	rep->seconds = seconds >= 0 ? seconds : 0;
	bad |= get_string(v, "release", &rep->release);
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		bad |= get_uint(v, counters[i].key,
		    (uint64_t *)((char *)rep + counters[i].offset));
	bad |= get_bool(v, "manifest_fetched", &rep->manifest_fetched);
	bad |= get_bool(v, "found", &rep->found);
	bad |= get_string(v, "found_release", &rep->found_release);
	bad |= get_uint(v, "drift_count", &rep->drift_count);
	bad |= get_string(v, "drift_first", &rep->drift_first);
	if (encodings != NULL && (!json_is_array(encodings) ||
	    json_array_size(encodings) > PROTO_ENC_MAX + 1))
		bad = -1;
	for (size_t enc = 0; bad == 0 && enc < json_array_size(encodings); enc++) {
		const json_t *pair = json_array_get(encodings, enc);
		const json_t *objects = json_array_get(pair, 0), *bytes = json_array_get(pair, 1);

		if (json_array_size(pair) != 2 || !json_is_integer(objects) ||
		    !json_is_integer(bytes) || json_integer_value(objects) < 0 ||
		    json_integer_value(bytes) < 0)
			bad = -1;
		else {
			rep->enc_objects[enc] = (uint64_t)json_integer_value(objects);
			rep->enc_bytes[enc] = (uint64_t)json_integer_value(bytes);
		}
	}
	bad |= decode_result(json_object_get(v, "result"), &rep->result);
	if (bad != 0) {
		report_release(rep);
		return DS_ERR_PROTO;
	}
	return 0;
}
