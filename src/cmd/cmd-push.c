/* distsync push: send a release to hosts and apply it there atomically. */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/err.h"
#include "base/fileio.h"
#include "base/interrupt.h"
#include "base/jsonio.h"
#include "base/log.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "cmd/cmd.h"
#include "config/config.h"
#include "repo/dcache.h"
#include "repo/manifest.h"
#include "repo/store.h"
#include "session/fleet.h"
#include "session/progress.h"
#include "session/report.h"
#include "session/retry.h"
#include "session/sender.h"
#include "wire/proto.h"

#define REPORT_DIR		"reports"
#define REPORT_FILE		"last-push.json"

extern const struct cmd_entry cmd_push_entry;

static const char push_options[] =
    "  --release ID        push this release (default: the latest); older ones too\n"
    "  --dry-run           say what would change; change nothing\n"
    "  --fail-on-drift     refuse when files changed on the host since the last apply\n"
    "  --no-restart        apply the files but restart no service\n"
    "  --lock-timeout S    wait up to S seconds for the host's lock (default 30)\n"
    "  --json              one JSON object per host, in an array\n"
    "  -j, --parallel N    at most N hosts at once (default: config 'parallel')\n"
    "  --canary N          push N hosts first; the rest only if all of them applied\n"
    "                      and passed their health checks\n"
    "  --max-failures K    start no new host after K failures (the rest: not started)\n"
    "  --retry-failed      push only the hosts that failed in the last push's report\n"
    "  -h, --help          this help\n"
    "\n"
    "With several hosts, up to N start at once; the store's delta cache makes each\n"
    "encoding once, for every host that needs it.\n";

/*
 * One host's push, in whichever process runs it: connect, send, apply, with
 * retries of a dropped link. The single place that decides how a host is
 * pushed.
 */
static int
push_host(const struct config *config, const struct config_host *host,
    const struct sender_options *so, struct report *rep)
{
	struct sender_options opt = *so;

	opt.host = host;
	return sync_host_with_retries(config, host, &opt, rep, NULL);
}

struct push_child {
	const struct config	*config;
	struct sender_options	 so;
};

static void
child_progress(void *arg, uint64_t wire, uint64_t done, uint64_t total)
{
	struct fleet_chan *chan = arg;
	static int sending;

	if (!sending) {
		fleet_send_phase(chan, "sending");
		sending = 1;
	}
	fleet_send_bytes(chan, wire, done, total);
}

/* fleet_host_fn: one host's push in its own process. */
static int
push_child_run(const struct config_host *host, void *arg, struct fleet_chan *chan,
    struct report *rep)
{
	struct push_child *pc = arg;
	struct sender_options so = pc->so;

	so.host = host;
	so.progress = child_progress;
	so.progress_arg = chan;
	fleet_send_phase(chan, "connecting");
	return push_host(pc->config, host, &so, rep);
}

/* Writes the report of this run to STORE/reports/last-push.json, atomically. */
static void
save_report(struct store *store, const struct config_host *const *hosts,
    const struct report *reps, size_t n)
{
	char *dir = xasprintf("%s/%s", store_dir(store), REPORT_DIR);
	char *path = xasprintf("%s/%s", dir, REPORT_FILE);
	char *text = NULL;
	size_t size = 0;
	FILE *fp;

	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		log_errno("%s: cannot keep the push report", dir);
		goto out;
	}
	if ((fp = open_memstream(&text, &size)) == NULL) {
		log_errno("%s", path);
		goto out;
	}
	report_print_fleet_json(hosts, reps, n, fp);
	if (fclose(fp) != 0 || fileio_write_atomic(path, text, size) != 0)
		log_errno("%s", path);
out:
	free(text);
	free(path);
	free(dir);
}

/* The hosts that failed in the last report, limited to the named ones if any. */
static int
failed_hosts(const struct config *config, struct store *store, char **names, size_t nnames,
    const struct config_host ***out, size_t *count)
{
	const struct config_host **named = NULL, **v;
	char *path = xasprintf("%s/%s/%s", store_dir(store), REPORT_DIR, REPORT_FILE);
	char **failed = NULL;
	size_t nnamed = 0, n = 0;
	int r;

	*out = NULL;
	*count = 0;
	if ((r = report_failed_hosts(path, &failed)) != 0)
		goto out;
	if (nnames > 0 && (r = config_resolve_hosts(config, names, nnames, &named, &nnamed)) != 0)
		goto out;
	while (failed[n] != NULL)
		n++;
	v = xcalloc(n + 1, sizeof(*v));
	n = 0;
	for (size_t i = 0; failed[i] != NULL; i++) {
		const struct config_host *h = config_host(config, failed[i]);
		int keep = nnames == 0;

		if (h == NULL) {
			log_warn("%s: failed in the last push but no longer configured", failed[i]);
			continue;
		}
		for (size_t j = 0; j < nnamed && !keep; j++)
			keep = named[j] == h;
		if (keep)
			v[n++] = h;
	}
	*out = v;
	*count = n;
out:
	xfree_strv(failed);
	free(named);
	free(path);
	return r;
}

struct single_progress {
	struct progress	*prog;
	int		 slot;
};

static void
single_progress(void *arg, uint64_t wire, uint64_t done, uint64_t total)
{
	struct single_progress *sp = arg;

	progress_host_phase(sp->prog, sp->slot, "sending");
	progress_host_bytes(sp->prog, sp->slot, wire, done, total);
	progress_tick(sp->prog);
}

/*
 * One host in this process, printed as before the fleet existed; on a
 * terminal (not with --json) a live line shows percent, ETA, bytes and rate.
 */
static int
push_single(const struct config *config, const struct config_host *host,
    const struct sender_options *so_in, int json, struct report *rep)
{
	struct sender_options so = *so_in;
	struct single_progress sp = { NULL, -1 };
	struct report_errors held;
	double t0 = retry_now_ns() / 1e9;
	int r;

	if (!json && log_get_level() >= LOG_LEVEL_INFO &&
	    progress_mode_for(stderr) == PROGRESS_TTY) {
		sp.prog = progress_new(stderr, PROGRESS_TTY, "push", 1);
		sp.slot = progress_host_begin(sp.prog, host->name);
		so.progress = single_progress;
		so.progress_arg = &sp;
		progress_take_log(sp.prog);
	}
	report_errors_hold(&held);
	r = push_host(config, host, &so, rep);
	progress_free(sp.prog);
	rep->started = 1;
	rep->seconds = retry_now_ns() / 1e9 - t0;
	report_errors_print(&held, rep);	/* the failure once: in the report below */
	if (json) {
		json_t *v = jsonio_pack("[o]", report_json(rep, host->name));

		jsonio_write(stdout, v);
		printf("\n");
		json_decref(v);
	} else
		report_print_text(rep, host->name, stdout);
	fflush(stdout);
	return r;
}

static int
push_exec(int argc, char **argv, const struct config *config)
{
	static const struct option options[] = {
		{ "release", required_argument, NULL, 'r' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "fail-on-drift", no_argument, NULL, 'F' },
		{ "no-restart", no_argument, NULL, 'R' },
		{ "lock-timeout", required_argument, NULL, 'L' },
		{ "json", no_argument, NULL, 'J' },
		{ "parallel", required_argument, NULL, 'j' },
		{ "canary", required_argument, NULL, 'C' },
		{ "max-failures", required_argument, NULL, 'M' },
		{ "retry-failed", no_argument, NULL, 'E' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const struct config_host **hosts = NULL;
	struct report *reports = NULL;
	struct cmd_session_opts o;
	struct fleet_options fo;
	struct push_child pc;
	struct sender_options so;
	struct store *store = NULL;
	size_t nhosts = 0;
	unsigned canary = 0, max_failures = 0;
	int ch, retry_failed = 0, fleet_mode = 0, r;

	memset(&so, 0, sizeof(so));
	memset(&fo, 0, sizeof(fo));
	cmd_session_defaults(&o);
	while ((ch = getopt_long(argc, argv, "hj:", options, NULL)) != -1) {
		if ((r = cmd_session_option(ch, optarg, &o)) < 0)
			return r;
		if (r == 1)
			continue;
		switch (ch) {
		case 'C':
			if (util_parse_uint(optarg, 1000000, &canary) != 0) {
				log_error("--canary: '%s' is not a number of hosts", optarg);
				return DS_ERR_USAGE;
			}
			fleet_mode = 1;
			break;
		case 'M':
			if (util_parse_uint(optarg, 1000000, &max_failures) != 0 ||
			    max_failures == 0) {
				log_error("--max-failures: '%s' is not a number of hosts (1 or more)",
				    optarg);
				return DS_ERR_USAGE;
			}
			fleet_mode = 1;
			break;
		case 'E':
			retry_failed = 1;
			fleet_mode = 1;	/* the retried hosts' table, even for one */
			break;
		case 'h':
			cmd_help(&cmd_push_entry, push_options);
			return 0;
		default:
			cmd_usage(&cmd_push_entry, push_options);
			return DS_ERR_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0 && !retry_failed) {
		log_error("push: name at least one host or group (or give --retry-failed)");
		cmd_usage(&cmd_push_entry, push_options);
		return DS_ERR_USAGE;
	}
	if (o.parallel > 0)
		fleet_mode = 1;
	so.op = PROTO_OP_PUSH;
	so.release = o.release;
	so.flags = o.flags;
	if ((r = store_open(config->distribution.store, 0, &store)) != 0)
		goto out;
	dcache_tidy(store);	/* what killed sessions left, before this push adds its own */
	if (retry_failed)
		r = failed_hosts(config, store, argv, (size_t)argc, &hosts, &nhosts);
	else
		r = config_resolve_hosts(config, argv, (size_t)argc, &hosts, &nhosts);
	/* A name or release that does not exist is a usage error, found before any host is touched. */
	if (r == DS_ERR_NOTFOUND)
		r = DS_ERR_USAGE;
	if (r != 0)
		goto out;
	{
		struct manifest *m = NULL;
		char *latest = NULL;

		if (so.release != NULL)
			r = store_release_load(store, so.release, &m);
		else
			r = store_release_latest(store, &latest);
		manifest_free(m);
		free(latest);
		if (r != 0) {
			r = r == DS_ERR_NOTFOUND ? DS_ERR_USAGE : r;
			goto out;
		}
	}
	if (nhosts == 0) {
		printf("no host failed in the last push: nothing to retry\n");
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	interrupt_install();	/* Ctrl-C: each session stops and says where (sender.c) */
	so.config = config;
	so.store = store;
	so.lock_timeout = o.lock_timeout;
	so.level = config->distribution.level;
	reports = xcalloc(nhosts, sizeof(*reports));
	if (nhosts == 1 && !fleet_mode) {
		r = push_single(config, hosts[0], &so, o.json, &reports[0]);
	} else {
		pc.config = config;
		pc.so = so;
		fo.parallel = o.parallel > 0 ? o.parallel : config->parallel > 0 ? config->parallel : 1;
		fo.canary = canary;
		fo.max_failures = max_failures;
		fo.run = push_child_run;
		fo.arg = &pc;
		/* -q: errors only, not each host's progress lines. */
		fo.progress = progress_new(stderr, log_get_level() < LOG_LEVEL_INFO ?
		    PROGRESS_QUIET : progress_mode_for(stderr), "push", nhosts);
		r = fleet_run(&fo, hosts, nhosts, reports);
		progress_free(fo.progress);
		if (o.json)
			report_print_fleet_json(hosts, reports, nhosts, stdout);
		else
			report_print_table(hosts, reports, nhosts, stdout);
		fflush(stdout);
	}
	if ((so.flags & PROTO_FLAG_DRY_RUN) == 0)
		save_report(store, hosts, reports, nhosts);
out:
	for (size_t i = 0; reports != NULL && i < nhosts; i++)
		report_release(&reports[i]);
	free(reports);
	store_free(store);
	free(hosts);
	return r;
}

const struct cmd_entry cmd_push_entry = {
	.name = "push",
	.usage = "[--release ID] [--dry-run] [--fail-on-drift] [--no-restart] "
	    "[--lock-timeout S] [--json] [-j N] [--canary N] [--max-failures K] "
	    "[--retry-failed] HOST|GROUP...",
	.summary = "send a release to hosts and apply it atomically",
	.needs_config = 1,
	.exec = push_exec,
};
