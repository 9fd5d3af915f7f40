/*
 * What the session commands share: their common options (push, pull,
 * rollback, verify), and the one-host operations that are a single session
 * with the receiver, rollback and verify (cmd-rollback.c, cmd-verify.c).
 */
#include "autoconf.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/err.h"
#include "base/jsonio.h"
#include "base/log.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "cmd/cmd.h"
#include "config/config.h"
#include "repo/store.h"
#include "site/commit.h"
#include "session/connect.h"
#include "session/fleet.h"
#include "session/report.h"
#include "session/sender.h"
#include "wire/proto.h"
#include "wire/xport.h"

void
cmd_session_defaults(struct cmd_session_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->lock_timeout = CONFIG_LOCK_TIMEOUT_DEFAULT;
}

int
cmd_session_option(int ch, const char *arg, struct cmd_session_opts *o)
{
	switch (ch) {
	case 'r':
		if (store_release_id_check(arg) != 0) {
			log_error("--release: '%s' is not a release id", arg);
			return DS_ERR_USAGE;
		}
		o->release = arg;
		return 1;
	case 'n':
		o->flags |= PROTO_FLAG_DRY_RUN;
		return 1;
	case 'F':
		o->flags |= PROTO_FLAG_FAIL_ON_DRIFT;
		return 1;
	case 'R':
		o->flags |= PROTO_FLAG_NO_RESTART;
		return 1;
	case 'L':
		if (util_parse_seconds("lock-timeout", arg, 86400, &o->lock_timeout) != 0)
			return DS_ERR_USAGE;
		return 1;
	case 'J':
		o->json = 1;
		return 1;
	case 'j':
		if (util_parse_uint(arg, CMD_PARALLEL_MAX, &o->parallel) != 0 || o->parallel == 0) {
			log_error("--parallel: '%s' is not a number of hosts (1..%d)", arg,
			    CMD_PARALLEL_MAX);
			return DS_ERR_USAGE;
		}
		return 1;
	}
	return 0;
}

int
cmd_host_session(const struct config *config, const struct config_host *host, int op,
    const struct cmd_session_opts *o, struct report *rep)
{
	struct sender_options so;
	struct xport *x = NULL;
	int r;

	signal(SIGPIPE, SIG_IGN);
	memset(&so, 0, sizeof(so));
	so.op = (uint8_t)op;
	so.flags = o->flags;
	so.config = config;
	so.host = host;
	so.release = o->release;
	so.lock_timeout = o->lock_timeout;
	report_init(rep, so.op, so.flags);
	if ((r = connect_host(config, host, &x)) == 0) {
		r = sender_run(x, &so, rep);
		xport_close(x);
	}
	rep->status = r;
	xport_free(x);
	return r;
}

int
cmd_resolve_hosts(const struct config *config, char *const *names, size_t nnames,
    const struct config_host ***hosts, size_t *count)
{
	static char every[] = "all";
	char *all[] = { every };
	int r;

	if (nnames == 0) {
		names = all;
		nnames = 1;
	}
	r = config_resolve_hosts(config, names, nnames, hosts, count);
	return r == DS_ERR_NOTFOUND ? DS_ERR_USAGE : r;	/* an unknown name: exit 2 */
}

int
cmd_resolve_targets(const struct config *config, char *const *names, size_t nnames,
    const struct config_host ***hosts, size_t *count)
{
	/* One site per process: the entry its own commands act on. */
	static struct config_host self;
	char *me = config->site.host != NULL ? config->site.host : config->site.upstream;

	if (config->site.upstream == NULL)
		return cmd_resolve_hosts(config, names, nnames, hosts, count);
	for (size_t i = 0; i < nnames; i++) {
		if (strcmp(names[i], me) != 0 && strcmp(names[i], config->site.upstream) != 0) {
			log_error("%s: '%s': this is the config of site %s, which acts only on "
			    "itself (name %s, or no host)", config->file, names[i], me, me);
			return DS_ERR_USAGE;
		}
	}
	self = *config_host(config, config->site.upstream);
	self.address = NULL;	/* its target is here, whatever link the upstream has */
	self.name = me;
	*hosts = xcalloc(1, sizeof(**hosts));
	(*hosts)[0] = &self;
	*count = 1;
	return 0;
}

/* One host's session of OP, its failure printed once (in REP, by the caller). */
static int
host_op_one(const struct config *config, const struct config_host *host, int op,
    const struct cmd_session_opts *o, struct report *rep)
{
	struct report_errors held;
	double t0 = util_now();
	int r;

	report_errors_hold(&held);
	r = cmd_host_session(config, host, op, o, rep);
	if (op == PROTO_OP_VERIFY && r == 0 && rep->result.changed > 0)
		r = DS_ERR_CORRUPT;	/* drift found: exit 1 */
	rep->status = r;
	rep->started = 1;
	rep->seconds = util_now() - t0;
	if (op == PROTO_OP_VERIFY && r == DS_ERR_CORRUPT)
		report_errors_print(&held, NULL);	/* drift is no failure to explain */
	else
		report_errors_print(&held, rep);
	return r;
}

static json_t *
host_op_json(int op, const struct report *rep, const char *host)
{
	return op == PROTO_OP_VERIFY ? report_verify_json(rep, host) : report_json(rep, host);
}

/*
 * Several hosts (a group, or more than one name): one after the other, then
 * one row each, as push prints a fleet; the worst status is the exit code.
 */
static int
host_op_many(const struct config *config, const struct config_host *const *hosts, size_t n,
    int op, const struct cmd_session_opts *o)
{
	struct report *reps = xcalloc(n, sizeof(*reps));
	size_t clean = 0, drifted = 0, failed = 0;
	int worst = 0;

	for (size_t i = 0; i < n; i++)
		worst = fleet_worse(worst, host_op_one(config, hosts[i], op, o, &reps[i]));
	if (o->json) {
		json_t *a = json_array();

		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, host_op_json(op, &reps[i], hosts[i]->name));
		jsonio_write_lines(stdout, a);
		json_decref(a);
	} else if (op == PROTO_OP_VERIFY) {
		for (size_t i = 0; i < n; i++) {
			report_print_text(&reps[i], hosts[i]->name, stdout);
			if (reps[i].status == DS_ERR_CORRUPT)
				drifted++;
			else if (reps[i].status != 0)
				failed++;
			else
				clean++;
		}
		printf("%zu host%s: %zu without drift, %zu drifted, %zu failed\n", n,
		    n == 1 ? "" : "s", clean, drifted, failed);
	} else
		report_print_table(hosts, reps, n, stdout);
	fflush(stdout);
	for (size_t i = 0; i < n; i++)
		report_release(&reps[i]);
	free(reps);
	return worst;
}

int
cmd_host_op(int argc, char **argv, const struct config *config,
    const struct cmd_entry *entry, const char *help, int op)
{
	static const struct option options[] = {
		{ "no-restart", no_argument, NULL, 'R' },
		{ "release", required_argument, NULL, 'r' },
		{ "lock-timeout", required_argument, NULL, 'L' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const struct config_host **hosts = NULL;
	struct cmd_session_opts o;
	struct report rep;
	size_t nhosts = 0;
	int ch, r;

	cmd_session_defaults(&o);
	while ((ch = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if ((ch == 'R' || ch == 'r') && op != PROTO_OP_ROLLBACK)
			goto usage;
		if (ch == 'r') {
			/* A rollback may also return to the tree found before the first apply. */
			if (commit_state_id_check(optarg) != 0) {
				log_error("--release: '%s' is not a release id", optarg);
				return DS_ERR_USAGE;
			}
			o.release = optarg;
			continue;
		}
		if ((r = cmd_session_option(ch, optarg, &o)) < 0)
			return r;
		if (r == 1)
			continue;
		if (ch == 'h') {
			cmd_help(entry, help);
			return 0;
		}
		goto usage;
	}
	if (argc - optind < 1 && config->site.upstream == NULL) {
		/* a site's own config may name none: itself */
		log_error("%s: name at least one host or group", entry->name);
		goto usage;
	}
	if ((r = cmd_resolve_targets(config, argv + optind, (size_t)(argc - optind), &hosts,
	    &nhosts)) != 0)
		return r;
	if (argc - optind > 1 || (config->site.upstream == NULL &&
	    config_host(config, argv[optind]) == NULL)) {
		r = host_op_many(config, hosts, nhosts, op, &o);
		free(hosts);
		return r;
	}
	/* One host by its name: its report as it always was. */
	r = host_op_one(config, hosts[0], op, &o, &rep);
	if (o.json) {
		json_t *v = host_op_json(op, &rep, hosts[0]->name);

		jsonio_write(stdout, v);
		printf("\n");
		json_decref(v);
	} else
		report_print_text(&rep, hosts[0]->name, stdout);
	report_release(&rep);
	free(hosts);
	return r;
usage:
	cmd_usage(entry, help);
	return DS_ERR_USAGE;
}
