/*
 * distsync status: per host, in parallel, whether it is reachable, its
 * current release, drift, and its last apply (time and result), from a
 * verify session each.
 */
#include "autoconf.h"

#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "base/err.h"
#include "base/jsonio.h"
#include "base/log.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "cmd/cmd.h"
#include "config/config.h"
#include "repo/store.h"
#include "session/connect.h"
#include "session/fleet.h"
#include "session/progress.h"
#include "session/report.h"
#include "session/sender.h"
#include "wire/proto.h"
#include "wire/xport.h"


extern const struct cmd_entry cmd_status_entry;

static const char status_options[] =
    "  -j, --parallel N    ask at most N hosts at once (default: config 'parallel')\n"
    "  --lock-timeout S    wait up to S seconds for a host's lock (default 30)\n"
    "  --json              one JSON array, one object per host\n"
    "  -h, --help          this help\n"
    "Without HOST|GROUP, every host. Exit status 1 when a host is unreachable,\n"
    "fails or has drifted.\n";

struct status_child {
	const struct config	*config;
	struct store		*store;		/* names a tree found on a site never applied; may be NULL */
	unsigned		 lock_timeout;
};

/* fleet_host_fn: one host's verify session in its own process. */
static int
status_child_run(const struct config_host *host, void *arg, struct fleet_chan *chan,
    struct report *rep)
{
	struct status_child *sc = arg;
	struct sender_options so;
	struct xport *x = NULL;
	int r;

	memset(&so, 0, sizeof(so));
	so.op = PROTO_OP_VERIFY;
	report_init(rep, so.op, so.flags);
	so.config = sc->config;
	so.store = sc->store;
	so.host = host;
	so.lock_timeout = sc->lock_timeout;
	fleet_send_phase(chan, "connecting");
	if ((r = connect_host(sc->config, host, &x)) == 0) {
		fleet_send_phase(chan, "verifying");
		r = sender_run(x, &so, rep);
		xport_close(x);
	}
	xport_free(x);
	return r;
}

/* The host's last history.log line: a verify's message when it succeeded, or NULL. */
static const char *
last_line(const struct report *r)
{
	const char *m = r->result.message;

	return r->status == 0 && m != NULL && m[0] != '\0' ? m : NULL;
}

static int
unreachable(int status)
{
	return status == DS_ERR_CONNECT || status == DS_ERR_HOSTKEY || status == DS_ERR_AUTH ||
	    status == DS_ERR_TIMEOUT;
}

/*
 * The RELEASE of a host: its current one, or what a site never applied holds
 * ("found A, not yet managed"); NULL when unknown. Caller frees.
 */
static char *
release_text(const struct report *r)
{
	const char *from = r->result.from;

	if (r->status != 0)
		return NULL;
	if (r->found)
		return r->found_release != NULL ? xasprintf("found %s, not yet managed",
		    r->found_release) : xstrdup("found, not yet managed");
	return from != NULL && from[0] != '\0' ? xstrdup(from) : NULL;
}

static void
print_table(const struct config_host *const *hosts, const struct report *res, size_t n,
    FILE *fp)
{
	size_t hw = 4, rw = 7, reach = 0, drifted = 0;
	int unverified = 0;

	for (size_t i = 0; i < n; i++) {
		char *rel = release_text(&res[i]);

		if (strlen(hosts[i]->name) > hw)
			hw = strlen(hosts[i]->name);
		if (rel != NULL && strlen(rel) > rw)
			rw = strlen(rel);
		free(rel);
	}
	fprintf(fp, "%-*s  %-9s  %-*s  %5s  %-20s  %s\n", (int)hw, "HOST", "REACHABLE", (int)rw,
	    "RELEASE", "DRIFT", "LAST APPLY", "RESULT");
	for (size_t i = 0; i < n; i++) {
		const struct report *r = &res[i];
		const char *time, *action, *result;
		char *copy, drift[24], *why = NULL, *what, *from = release_text(r);
		char *safe_what, *safe_from, *safe_time;

		report_split_history(last_line(r), &copy, &time, &action, &result);
		if (r->status == 0)
			snprintf(drift, sizeof(drift), "%" PRIu64, r->result.changed);
		else
			snprintf(drift, sizeof(drift), "-");
		if (r->status != 0)
			why = xstrdup(r->reason != NULL ? r->reason : ds_strerror(r->status));
		if (r->status != 0)
			what = xasprintf("error: %s", why);
		else if (result != NULL && action != NULL && strcmp(action, "apply") != 0)
			what = xasprintf("%s (%s)", result, action);
		else
			what = xstrdup(result != NULL ? result : "-");
		if (r->status == 0 && r->result.pending != NULL && r->result.pending[0] != '\0') {
			/* An interrupted apply or its restarts: the next push or pull does them. */
			char *more = xasprintf("%s; pending: %s", what, r->result.pending);

			free(what);
			what = more;
		}
		/* The release, history line, pending work and reason are the host's bytes. */
		safe_what = util_printable(what, 0);
		safe_from = util_printable(from != NULL ? from : r->status == 0 ? "(none)" : "-",
		    0);
		safe_time = util_printable(time != NULL ? time : "-", 0);
		fprintf(fp, "%-*s  %-9s  %-*s  %5s  %-20s  %s\n", (int)hw, hosts[i]->name,
		    !r->started ? "-" : unreachable(r->status) ? "no" : "yes", (int)rw,
		    safe_from, drift, safe_time, safe_what);
		free(safe_what);
		free(safe_from);
		free(safe_time);
		free(what);
		free(from);
		if (r->status == 0)
			reach++;
		if (r->status == 0 && r->result.changed > 0)
			drifted++;
		free(why);
		free(copy);
	}
	fprintf(fp, "%zu host%s: %zu reachable, %zu drifted, %zu failed\n", n, n == 1 ? "" : "s",
	    reach, drifted, n - reach);
	/* A site that pins no root applies whatever a peer sends it: say so. */
	for (size_t i = 0, listed = 0; i < n; i++) {
		if (res[i].status != 0 || (res[i].result.flags & PROTO_RESULT_VERIFIED))
			continue;
		fprintf(fp, "%s%s", listed++ == 0 ? "releases not verified (no trust_root) on: " :
		    ", ", hosts[i]->name);
		unverified = 1;
	}
	if (unverified)
		fprintf(fp, "\n");
}

static void
print_json(const struct config_host *const *hosts, const struct report *res, size_t n,
    FILE *fp)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++) {
		const struct report *r = &res[i];
		const char *from = r->result.from;
		json_t *o = json_object(), *last = report_history_json(last_line(r));
		json_t *found = json_null();
		json_object_set_new(o, "host", jsonio_string(hosts[i]->name));
		json_object_set_new(o, "ok", json_boolean(r->status == 0));
		json_object_set_new(o, "reachable",
		    json_boolean(r->started && !unreachable(r->status)));
		json_object_set_new(o, "error", r->status == 0 ? json_null() :
		    jsonio_string(r->reason != NULL ? r->reason : ds_strerror(r->status)));
		json_object_set_new(o, "release", jsonio_string(r->status == 0 && from != NULL &&
		    from[0] != '\0' ? from : NULL));
		json_object_set_new(o, "drift", r->status == 0 ? jsonio_uint(r->result.changed) :
		    json_null());
		json_object_set_new(o, "verified", r->status == 0 ?
		    json_boolean((r->result.flags & PROTO_RESULT_VERIFIED) != 0) : json_null());
		json_object_set_new(o, "last_apply", last);
		json_object_set_new(o, "pending", jsonio_string(r->status == 0 &&
		    r->result.pending != NULL && r->result.pending[0] != '\0' ?
		    r->result.pending : NULL));
		if (r->status == 0 && r->found)
			found = jsonio_pack("{s:o}", "release", jsonio_string(r->found_release));
		json_object_set_new(o, "found", found);
		json_object_set_new(o, "seconds", jsonio_seconds(r->seconds));
		json_array_append_new(a, o);
	}
	jsonio_write_lines(fp, a);
	json_decref(a);
}

static int
status_exec(int argc, char **argv, const struct config *config)
{
	static const struct option options[] = {
		{ "parallel", required_argument, NULL, 'j' },
		{ "lock-timeout", required_argument, NULL, 'L' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const struct config_host **hosts = NULL;
	struct report *results = NULL;
	struct cmd_session_opts o;
	struct fleet_options fo;
	struct status_child sc;
	size_t nhosts = 0;
	enum progress_mode mode;
	int ch, r;

	memset(&fo, 0, sizeof(fo));
	memset(&sc, 0, sizeof(sc));
	cmd_session_defaults(&o);
	while ((ch = getopt_long(argc, argv, "hj:", options, NULL)) != -1) {
		if ((r = cmd_session_option(ch, optarg, &o)) < 0)
			return r;
		if (r == 1)
			continue;
		switch (ch) {
		case 'h':
			cmd_help(&cmd_status_entry, status_options);
			return 0;
		default:
			cmd_usage(&cmd_status_entry, status_options);
			return DS_ERR_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	sc.config = config;
	sc.lock_timeout = o.lock_timeout;
	/* No name: every host. */
	if ((r = cmd_resolve_targets(config, argv, (size_t)argc, &hosts, &nhosts)) != 0)
		return r;
	/* Only to name what a site never applied holds: status works without a store. */
	if (access(config->distribution.store, F_OK) == 0 &&
	    store_open(config->distribution.store, 0, &sc.store) != 0)
		sc.store = NULL;
	signal(SIGPIPE, SIG_IGN);
	results = xcalloc(nhosts, sizeof(*results));
	fo.parallel = o.parallel > 0 ? o.parallel : config->parallel > 0 ? config->parallel : 1;
	fo.run = status_child_run;
	fo.arg = &sc;
	/* The table is the output; live lines only where someone watches. */
	mode = progress_mode_for(stderr) == PROGRESS_TTY ? PROGRESS_TTY : PROGRESS_QUIET;
	fo.progress = progress_new(stderr, mode, "status", nhosts);
	r = fleet_run(&fo, hosts, nhosts, results);
	progress_free(fo.progress);
	if (o.json)
		print_json(hosts, results, nhosts, stdout);
	else
		print_table(hosts, results, nhosts, stdout);
	fflush(stdout);
	for (size_t i = 0; i < nhosts; i++) {
		if (r == 0 && results[i].status == 0 && results[i].result.changed > 0)
			r = DS_ERR_CORRUPT;	/* drift: exit 1 */
		report_release(&results[i]);
	}
	free(results);
	free(hosts);
	store_free(sc.store);
	return r;
}

const struct cmd_entry cmd_status_entry = {
	.name = "status",
	.usage = "[-j N] [--lock-timeout S] [--json] [HOST|GROUP...]",
	.summary = "reachable, current release, drift and last apply of hosts, in parallel",
	.needs_config = 1,
	.exec = status_exec,
};
