/*
 * distsync pull: the site's cron side. Connects over SSH to the central
 * repository named in the site's config (site: upstream), runs
 * `distsync -c REPO serve --send --host NAME` there, and is the receiver
 * itself: stages, applies atomically to its own target and restarts its own
 * services, with the same receiver code a push uses. A dropped or stalled
 * link is retried with backoff; every retry resumes where the last one
 * stopped (staged objects are kept, the one in flight continues at its byte).
 *
 * Also the remote half, pull_send(), which `serve --send` runs.
 */
#include "autoconf.h"

#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/hint.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "base/path.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "cmd/cmd.h"
#include "cmd/pull.h"
#include "config/config.h"
#include "repo/dcache.h"
#include "repo/store.h"
#include "session/mirror-pull.h"
#include "session/progress.h"
#include "session/receiver.h"
#include "session/report.h"
#include "session/retry.h"
#include "session/sender.h"
#include "site/commit.h"
#include "site/target.h"
#include "wire/proto.h"
#include "wire/xport-local.h"
#include "wire/xport-ssh.h"
#include "wire/xport.h"

#define SITE_CONFIG_DEFAULT	"/etc/distsync/site.yml"
#define RANDOM_DELAY_MAX	86400
#define PULL_LOCK_NAME		"pull.lock"

extern const struct cmd_entry cmd_pull_entry;

static const char pull_options[] =
    "  --quiet             print nothing unless something changed or failed\n"
    "  --random-delay S    first sleep a random 0..S seconds (spreads a fleet's crons)\n"
    "  --release ID        pull this release (default: the repository's latest)\n"
    "  --dry-run           say what would change; change nothing\n"
    "  --no-restart        apply the files but restart no service\n"
    "  --bwlimit RATE      cap the transfer: 256k (KiB/s), 256kbit (bits/s), bytes/s\n"
    "  --timeout S         give up after S seconds in all (default: none)\n"
    "  --idle-timeout S    a link silent this long is dropped and retried\n"
    "  --retries N         attempts after the first on a dropped link (default: config)\n"
    "  --lock-timeout S    wait up to S seconds for the target's lock (default 30)\n"
    "  -h, --help          this help\n"
    "\nThe site config (-c, default " SITE_CONFIG_DEFAULT ") names the upstream in\n"
    "site: {upstream, repository, host}; the upstream's hosts: entry holds the SSH\n"
    "link (or its mirrors: and trust_root) and this site's target (path, state).\n"
    "From mirrors the release is the one the channel points at (no --release).\n"
    "On a terminal (without --quiet) it shows what it receives: percent, ETA, bytes\n"
    "and rate. Exit codes: 0 ok (applied or nothing to do), 1 failed, 2 usage or\n"
    "config, 3 nothing applied (lock held, or the release not trusted).\n";

struct pull {
	const struct config	*config;
	struct config_host	 host;		/* the upstream entry with overrides */
	struct config_host	 site;		/* the same, named as this site (site.host) */
	uint32_t		 flags;		/* the site's own --dry-run / --no-restart */
	unsigned		 lock_timeout;
	char			*remote_args;
	struct proto_result	 result;	/* the last attempt's */
	struct receiver_found	 found;		/* the last attempt's: a tree found, never applied */
	uint64_t		 bytes_in;	/* over every attempt */
	uint64_t		 bytes_out;
	unsigned		 attempts;
	struct progress		*prog;		/* live progress on a terminal, or NULL */
	int			 slot;
	uint64_t		 total;		/* content bytes the first PLAN announced */
};

static volatile sig_atomic_t total_limit;

/* SIGALRM at the --timeout: the apply is journaled, so stopping here is safe. */
static void
on_alarm(int sig)
{
	static const char msg[] = "distsync: pull: total time limit reached; stopping "
	    "(the target keeps a whole release; the next run resumes)\n";
	ssize_t n;

	(void)sig;
	n = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)n;
	_exit(DS_EXIT_FAILED);
}

/*
 * Keeps two pulls (two crons, or cron and a manual run) apart, and says so
 * when a push or rollback holds the target's lock; both are flock(2), gone
 * with the process. *fd_out holds pull.lock for the run.
 */
static int
take_pull_lock(const struct config_host *host, int *fd_out)
{
	char *path = NULL, holder[128];
	ssize_t n;
	int fd = -1, tfd = -1, r;

	*fd_out = -1;
	if ((r = target_state_dir_check(host->path, host->state)) != 0)
		return r;
	/* A first pull creates the state directory (and its parents) as a first push does. */
	if (path_mkdirs(host->state) != 0) {
		log_errno("%s: cannot create the state directory", host->state);
		return DS_ERR_SYSTEM;
	}
	path = xasprintf("%s/%s", host->state, PULL_LOCK_NAME);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd == -1) {
		log_errno("%s", path);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		n = pread(fd, holder, sizeof(holder) - 1, 0);
		holder[n > 0 ? n : 0] = '\0';
		holder[strcspn(holder, "\n")] = '\0';
		log_error("%s: another distsync pull is running (%s); nothing done", host->path,
		    holder[0] ? holder : "pid unknown");
		r = DS_ERR_LOCKED;
		goto out;
	}
	n = snprintf(holder, sizeof(holder), "pid %ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, holder, (size_t)n, 0) != n)
		log_warn("%s: cannot record the pid", path);
	free(path);
	path = xasprintf("%s/lock", host->state);
	tfd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (tfd >= 0 && flock(tfd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
		n = pread(tfd, holder, sizeof(holder) - 1, 0);
		holder[n > 0 ? n : 0] = '\0';
		holder[strcspn(holder, "\n")] = '\0';
		log_error("%s: locked by %s (a push, rollback or apply is running); "
		    "nothing pulled", host->path, holder[0] ? holder : "another process");
		r = DS_ERR_LOCKED;
		goto out;
	}
	*fd_out = fd;
	fd = -1;
	r = 0;
out:
	if (tfd >= 0)
		close(tfd);
	if (fd >= 0)
		close(fd);
	free(path);
	return r;
}

/*
 * The upstream's exit code when it ended the session itself: 2 and 3 are
 * its refusals (unknown host, no such release, a precondition), not worth
 * another attempt; 1 may be a link failure seen from its side, so the error
 * stays as it was (pull_send keeps that distinction).
 */
static int
remote_exit_error(int status, int r)
{
	switch (status) {
	case DS_EXIT_USAGE:
		return DS_ERR_CONFIG;
	case DS_EXIT_PRECONDITION:
		return DS_ERR_PRECONDITION;
	default:
		return r;
	}
}

/*
 * The receiver's progress: each attempt's PLAN counts what is still missing,
 * so the run's figure is the first total less what is left now.
 */
static void
pull_progress(void *arg, uint64_t wire, uint64_t done, uint64_t total)
{
	struct pull *p = arg;
	uint64_t left = total > done ? total - done : 0;

	if (total == 0)
		return;
	if (p->total == 0)
		p->total = total;
	progress_host_phase(p->prog, p->slot, "receiving");
	progress_host_bytes(p->prog, p->slot, p->bytes_in + wire,
	    p->total > left ? p->total - left : 0, p->total);
	progress_tick(p->prog);
}

/* One attempt from the site's HTTP mirrors (hosts: mirrors): no SSH, no code upstream. */
static int
mirror_attempt(struct pull *p, int *progress)
{
	struct mirror_pull_options mo;
	uint64_t before = p->bytes_in;
	int r;

	memset(&mo, 0, sizeof(mo));
	mo.config = p->config;
	mo.host = &p->host;
	mo.site = &p->site;
	mo.flags = p->flags;
	mo.lock_timeout = p->lock_timeout;
	if (p->prog != NULL) {
		progress_host_phase(p->prog, p->slot, "planning");
		progress_tick(p->prog);
		mo.progress = pull_progress;
		mo.progress_arg = p;
	}
	r = mirror_pull_run(&mo, &p->result, &p->bytes_in);
	*progress = p->bytes_in - before >= RETRY_PROGRESS_BYTES;
	return r;
}

static int
pull_attempt(void *arg, unsigned n, int *progress)
{
	struct pull *p = arg;
	struct receiver_options ro;
	/* Host-key hints name site.yml: "distsync -c FILE trust UPSTREAM". */
	struct xport_ssh_opts xo = { .config_file = p->config->file };
	struct xport *x = NULL;
	int r, cr;

	p->attempts = n;
	proto_result_free(&p->result);
	memset(&p->result, 0, sizeof(p->result));
	free(p->found.release);
	memset(&p->found, 0, sizeof(p->found));
	if (p->host.mirrors != NULL && p->host.mirrors[0] != NULL)
		return mirror_attempt(p, progress);
	if ((r = xport_ssh_open(&p->host, p->remote_args, &xo, &x)) != 0)
		return r;
	memset(&ro, 0, sizeof(ro));
	/*
	 * Whatever the repository says, this site writes only its own target,
	 * runs only the commands of its own site.yml, keeps its own dry run and
	 * no-restart, and takes nothing but a push.
	 */
	ro.config = p->config;
	ro.host = &p->site;
	ro.root = p->host.path;
	ro.state = p->host.state;
	ro.force_flags = p->flags;
	ro.ops = 1u << PROTO_OP_PUSH;
	ro.result = &p->result;
	ro.found = &p->found;
	if (p->prog != NULL) {
		progress_host_phase(p->prog, p->slot, "planning");
		progress_tick(p->prog);
		ro.progress = pull_progress;
		ro.progress_arg = p;
	}
	r = receiver_run(x, &ro);
	cr = xport_close(x);
	p->bytes_in += x->bytes_in;
	*progress = x->bytes_in >= RETRY_PROGRESS_BYTES;
	p->bytes_out += x->bytes_out;
	xport_free(x);
	/*
	 * The upstream ending with an exit code of its own (unknown host, no
	 * release) is not a dropped link: do not retry it.
	 */
	if (retry_is_transient(r) && cr > 0)
		r = remote_exit_error(cr, r);
	return r;
}

/* Builds "-c REPO serve --send --host NAME ..." quoted for the remote shell. */
static char *
remote_args(const struct config *config, const struct pull_send_options *so)
{
	char *argv[24], lock[16], bw[32], idle[16];
	size_t n = 0;

	if (config->site.repository != NULL) {
		argv[n++] = (char *)"-c";
		argv[n++] = config->site.repository;
	}
	argv[n++] = (char *)"serve";
	argv[n++] = (char *)"--send";
	argv[n++] = (char *)"--host";
	argv[n++] = (char *)so->host;
	if (so->release != NULL) {
		argv[n++] = (char *)"--release";
		argv[n++] = (char *)so->release;
	}
	if (so->flags & PROTO_FLAG_DRY_RUN)
		argv[n++] = (char *)"--dry-run";
	if (so->flags & PROTO_FLAG_NO_RESTART)
		argv[n++] = (char *)"--no-restart";
	snprintf(lock, sizeof(lock), "%u", so->lock_timeout);
	argv[n++] = (char *)"--lock-timeout";
	argv[n++] = lock;
	if (so->bwlimit > 0) {
		snprintf(bw, sizeof(bw), "%" PRIu64, so->bwlimit);
		argv[n++] = (char *)"--bwlimit";
		argv[n++] = bw;
	}
	if (so->idle_timeout > 0) {
		snprintf(idle, sizeof(idle), "%u", so->idle_timeout);
		argv[n++] = (char *)"--idle-timeout";
		argv[n++] = idle;
	}
	argv[n] = NULL;
	return xport_ssh_quote_argv(argv);
}

static int
changed(const struct proto_result *res)
{
	return res->added + res->updated + res->deleted > 0 || res->nservices > 0 ||
	    res->ndrift > 0 || (res->from != NULL && res->to != NULL && res->to[0] != '\0' &&
	    strcmp(res->from, res->to) != 0);
}

/* One line for people (and the same facts for syslog). */
static void
summary(const struct pull *p, int status, char *line, size_t size)
{
	const struct proto_result *res = &p->result;
	const char *from = res->from && res->from[0] ? res->from : "(none)";
	const char *to = res->to && res->to[0] ? res->to : "?";
	const char *why = ds_strerror(status);
	char recv[32], tries[32] = "", *found = NULL;

	util_format_bytes(p->bytes_in, recv, sizeof(recv));
	if (p->attempts > 1)
		snprintf(tries, sizeof(tries), " in %u attempts", p->attempts);
	/* The reason whole: the site's own error lines when it had any. */
	if (status != 0 && res->message != NULL && res->message[0] != '\0')
		why = res->message;
	/* Before its RESULT the apply had not begun: the receiver runs it here. */
	if (status == DS_ERR_INTERRUPTED && (res->to == NULL || res->to[0] == '\0'))
		why = interrupt_signal() == SIGTERM ? "interrupted (SIGTERM) while receiving "
		    "objects: this site keeps the release it had, nothing applied; staged "
		    "objects are kept for the next pull" : "interrupted (SIGINT) while "
		    "receiving objects: this site keeps the release it had, nothing applied; "
		    "staged objects are kept for the next pull";
	if (status != 0 && (res->to == NULL || res->to[0] == '\0'))
		snprintf(line, size, "%s: pull from %s failed: %s (%s received%s)",
		    p->config->site.host, p->host.name, why, recv, tries);
	else if (p->found.found) {
		/* Never applied: how the tree found here relates to the release, not drift. */
		found = p->found.release != NULL ? xasprintf("found release %s, not yet managed",
		    p->found.release) : xstrdup("found files of no kept release, not yet managed");
		snprintf(line, size, "%s: pull%s (%s) -> %s: %" PRIu64 " identical, %" PRIu64
		    " changed, %" PRIu64 " extra, %" PRIu64 " missing; %s received%s%s%s",
		    p->config->site.host, (res->flags & PROTO_FLAG_DRY_RUN) ? " (dry run)" : "",
		    found, to, p->found.identical, res->updated, res->deleted, res->added, recv,
		    tries, status == 0 ? "" : "; failed: ", status == 0 ? "" : why);
		free(found);
	} else
		snprintf(line, size, "%s: pull%s %s -> %s: %" PRIu64 " added, %" PRIu64
		    " updated, %" PRIu64 " deleted; %s received%s%s%s",
		    p->config->site.host, (res->flags & PROTO_FLAG_DRY_RUN) ? " (dry run)" : "",
		    from, to, res->added, res->updated, res->deleted, recv, tries,
		    status == 0 ? "" : "; failed: ", status == 0 ? "" : why);
}

/*
 * Where the drift a pull overwrote was kept, and the command that gets a
 * file back here, as it works when pasted (site.yml named by -c).
 */
static void
restore_hint(const struct config *config, const struct proto_result *res)
{
	const char *set = res->from != NULL && res->from[0] != '\0' ? res->from :
	    COMMIT_ID_FOUND;
	char *cmd = hint_restore(set, config->site.host, res->drift[0]);
	char *safe = util_printable(cmd, 0), *safe_set = util_printable(set, 0);

	printf("  the files found are kept in backup set %s; get one back (as ./NAME.restored) "
	    "with:\n    %s\n", safe_set, safe);
	if (res->ndrift > 1)
		printf("    (the others the same way: each path above, quoted as needed; several "
		    "at once)\n");
	free(safe_set);
	free(safe);
	free(cmd);
}

/* What pull's command line asked. */
struct pull_args {
	struct cmd_session_opts o;
	int		 quiet;
	unsigned	 random_delay, total, idle, retries;
	uint64_t	 bwlimit;
	int		 have_bw, have_idle, have_retries;
};

/* Parses pull's options into A: 0, 1 when --help was printed, or DS_ERR_USAGE (logged). */
static int
pull_args_parse(int argc, char **argv, struct pull_args *a)
{
	static const struct option options[] = {
		{ "quiet", no_argument, NULL, 'q' },
		{ "random-delay", required_argument, NULL, 'D' },
		{ "release", required_argument, NULL, 'r' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "no-restart", no_argument, NULL, 'R' },
		{ "bwlimit", required_argument, NULL, 'b' },
		{ "timeout", required_argument, NULL, 't' },
		{ "idle-timeout", required_argument, NULL, 'i' },
		{ "retries", required_argument, NULL, 'T' },
		{ "lock-timeout", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *why;
	int ch, r;

	memset(a, 0, sizeof(*a));
	cmd_session_defaults(&a->o);
	while ((ch = getopt_long(argc, argv, "hq", options, NULL)) != -1) {
		if ((r = cmd_session_option(ch, optarg, &a->o)) < 0)
			return r;
		if (r == 1)
			continue;
		switch (ch) {
		case 'q':
			a->quiet = 1;
			break;
		case 'D':
			if (util_parse_uint(optarg, RANDOM_DELAY_MAX, &a->random_delay) != 0) {
				log_error("--random-delay: '%s' is not a number of seconds "
				    "(0..%u)", optarg, RANDOM_DELAY_MAX);
				return DS_ERR_USAGE;
			}
			break;
		case 'b':
			if (config_parse_bwlimit(optarg, &a->bwlimit, &why) != 0) {
				log_error("--bwlimit: '%s': %s", optarg, why ? why : "invalid");
				return DS_ERR_USAGE;
			}
			a->have_bw = 1;
			break;
		case 't':
			if (util_parse_uint(optarg, 7 * 86400, &a->total) != 0) {
				log_error("--timeout: '%s' is not a number of seconds", optarg);
				return DS_ERR_USAGE;
			}
			break;
		case 'i':
			if (util_parse_uint(optarg, 86400, &a->idle) != 0 || a->idle == 0) {
				log_error("--idle-timeout: '%s' is not a number of seconds "
				    "(1..86400)", optarg);
				return DS_ERR_USAGE;
			}
			a->have_idle = 1;
			break;
		case 'T':
			if (util_parse_uint(optarg, 1000, &a->retries) != 0) {
				log_error("--retries: '%s' is not a number (0..1000)", optarg);
				return DS_ERR_USAGE;
			}
			a->have_retries = 1;
			break;
		case 'h':
			cmd_help(&cmd_pull_entry, pull_options);
			return 1;
		default:
			cmd_usage(&cmd_pull_entry, pull_options);
			return DS_ERR_USAGE;
		}
	}
	if (optind != argc) {
		cmd_usage(&cmd_pull_entry, pull_options);
		return DS_ERR_USAGE;
	}
	return 0;
}

/*
 * The pull of CONFIG's site as A asks: the upstream entry with the command
 * line's overrides, what the upstream is asked (SO). DS_ERR_CONFIG or
 * DS_ERR_USAGE (logged) when it cannot be.
 */
static int
pull_setup(struct pull *p, const struct pull_args *a, const struct config *config,
    struct pull_send_options *so)
{
	if (config->site.upstream == NULL) {
		log_error("%s: no site: section: pull needs site: {upstream: HOST, repository: "
		    "FILE, host: NAME}", config->file);
		return DS_ERR_CONFIG;
	}
	p->config = config;
	p->host = *config_host(config, config->site.upstream);
	if (a->have_bw)
		p->host.bwlimit = a->bwlimit;
	if (a->have_idle)
		p->host.idle_timeout = a->idle;
	if (a->have_retries)
		p->host.retries = a->retries;
	/* This site's commands see its own name (DISTSYNC_HOST, the messages). */
	p->site = p->host;
	p->site.name = config->site.host;
	p->flags = a->o.flags & (PROTO_FLAG_DRY_RUN | PROTO_FLAG_NO_RESTART);
	p->lock_timeout = a->o.lock_timeout;
	if (a->o.release != NULL && p->host.mirrors != NULL && p->host.mirrors[0] != NULL) {
		log_error("--release: a site that pulls from mirrors takes the release its "
		    "channel (%s) points at", config->distribution.channel);
		return DS_ERR_USAGE;
	}
	so->host = config->site.host;
	so->release = a->o.release;
	so->flags = a->o.flags;
	so->lock_timeout = a->o.lock_timeout;
	so->bwlimit = p->host.bwlimit;
	/*
	 * The idle limit is the site's to enforce, on what arrives: the
	 * upstream's writes may wait a whole SSH window (1-2 MB, a minute at
	 * 256 kbit/s) on a healthy link, so it keeps the repository's limit.
	 */
	so->idle_timeout = 0;
	p->remote_args = remote_args(config, so);
	return 0;
}

/* The attempts, under the lock, the --timeout and live progress on a terminal. */
static int
pull_run(struct pull *p, const struct pull_args *a, int *lock_fd)
{
	struct retry_hooks hooks;
	int r;

	memset(&hooks, 0, sizeof(hooks));
	signal(SIGPIPE, SIG_IGN);
	if (a->random_delay > 0) {
		unsigned ms = (unsigned)((uint64_t)retry_random() * a->random_delay * 1000 /
		    UINT32_MAX);

		log_info("waiting %u.%u s first (--random-delay)", ms / 1000, ms % 1000 / 100);
		retry_sleep_ms(ms, 0);
	}
	if ((r = take_pull_lock(&p->host, lock_fd)) != 0)
		return r;
	if (a->total > 0) {
		/* The clock starts after the random delay: it bounds the work. */
		hooks.deadline_ns = retry_now_ns() + (uint64_t)a->total * 1000000000u;
		signal(SIGALRM, on_alarm);
		alarm(a->total);
	}
	if (!a->quiet && progress_mode_for(stderr) == PROGRESS_TTY) {
		/* A person watching: bytes, rate, percent and ETA, redrawn in place. */
		p->prog = progress_new(stderr, PROGRESS_TTY, "pull", 1);
		/* The row names this site: its log lines are read beside others'. */
		p->slot = progress_host_begin(p->prog, p->site.name != NULL ? p->site.name :
		    p->host.name);
		progress_take_log(p->prog);
	}
	interrupt_install();	/* Ctrl-C: the transfer stops; the summary says where */
	r = retry_run(p->host.name, p->host.retries, p->host.retry_max_wait, pull_attempt, p,
	    &hooks, NULL);
	alarm(0);
	progress_free(p->prog);
	p->prog = NULL;
	return r;
}

/* The summary line (syslog too) and, unless quiet and unchanged, what it did. */
static void
pull_print(const struct pull *p, int r, int quiet)
{
	const struct proto_result *res = &p->result;
	char line[1024];

	summary(p, r, line, sizeof(line));
	log_syslog_event("%s", line);
	if (r == 0 && quiet && !changed(res))
		return;
	printf("%s\n", line);
	if (res->nservices > 0) {
		printf("  restarted:");
		for (size_t i = 0; i < res->nservices; i++)
			printf(" %s", res->services[i]);
		printf(" (health: %s)\n", res->health ? res->health : "?");
	}
	for (size_t i = 0; i < res->ndrift; i++) {
		/* A name a release made: escaped, as every peer's string is. */
		char *path = util_printable(res->drift[i], 0);

		printf("  drift   %s (changed here since the last apply; %s)\n", path,
		    (res->flags & PROTO_FLAG_DRY_RUN) ? "would be overwritten" : "overwritten");
		free(path);
	}
	if (r == 0 && res->ndrift > 0 && !(res->flags & PROTO_FLAG_DRY_RUN))
		restore_hint(p->config, res);
	fflush(stdout);
}

static int
pull_exec(int argc, char **argv, const struct config *unused)
{
	const char *file = cmd_config_file ? cmd_config_file : SITE_CONFIG_DEFAULT;
	struct pull_send_options so;
	struct pull_args a;
	struct config *config = NULL;
	struct pull p;
	int lock_fd = -1, r;

	(void)unused;
	memset(&p, 0, sizeof(p));
	memset(&so, 0, sizeof(so));
	if ((r = pull_args_parse(argc, argv, &a)) != 0)
		return r == 1 ? 0 : r;
	if (a.quiet && log_get_level() > LOG_LEVEL_ERROR)
		log_set_level(LOG_LEVEL_ERROR);
	if ((r = config_load(file, &config)) != 0)
		return r;
	hint_set_config(file);	/* the commands it suggests name this site.yml */
	if ((r = pull_setup(&p, &a, config, &so)) == 0) {
		r = pull_run(&p, &a, &lock_fd);
		pull_print(&p, r, a.quiet);
	}
	if (lock_fd >= 0)
		close(lock_fd);
	proto_result_free(&p.result);
	free(p.found.release);
	free(p.remote_args);
	config_free(config);
	return r;
}

const struct cmd_entry cmd_pull_entry = {
	.name = "pull",
	.usage = "[--quiet] [--random-delay S] [--release ID] [--dry-run] [--no-restart] "
	    "[--bwlimit RATE] [--timeout S] [--idle-timeout S] [--retries N] [--lock-timeout S]",
	.summary = "fetch and apply the repository's release here (a site's cron)",
	.needs_config = 0,
	.exec = pull_exec,
};

int
pull_send(const struct pull_send_options *opt)
{
	const char *file = opt->config_file ? opt->config_file : CONFIG_FILE_DEFAULT;
	const struct config_host *host;
	struct sender_options so;
	struct report rep;
	struct config *config = NULL;
	struct store *store = NULL;
	struct xport *x = NULL;
	int r;

	report_init(&rep, PROTO_OP_PUSH, opt->flags);
	if ((r = config_load(file, &config)) != 0)
		return r;
	if ((host = config_host(config, opt->host)) == NULL) {
		log_error("%s: no host '%s' in hosts: (the site's site.host)", file, opt->host);
		r = DS_ERR_CONFIG;
		goto out;
	}
	if ((r = store_open(config->distribution.store, 0, &store)) != 0)
		goto out;
	dcache_tidy(store);
	memset(&so, 0, sizeof(so));
	so.op = PROTO_OP_PUSH;
	so.config = config;
	so.host = host;
	so.store = store;
	so.release = opt->release;
	so.flags = opt->flags;
	so.lock_timeout = opt->lock_timeout;
	so.level = config->distribution.level;
	signal(SIGPIPE, SIG_IGN);
	x = xport_fd_new(STDIN_FILENO, STDOUT_FILENO, opt->host);
	/* The site's cap wins when it is lower: it knows its own link. */
	x->bwlimit = host->bwlimit;
	if (opt->bwlimit > 0 && (x->bwlimit == 0 || opt->bwlimit < x->bwlimit))
		x->bwlimit = opt->bwlimit;
	x->idle_timeout = opt->idle_timeout ? opt->idle_timeout : host->idle_timeout;
	r = sender_run(x, &so, &rep);
	/*
	 * Exit 1 only for what may be the link's fault, which the site retries;
	 * the rest of its refusals (no such release, a peer that refused) are
	 * final, exit 2.
	 */
	if (r != 0 && !retry_is_transient(r) && ds_exit_code(r) == DS_EXIT_FAILED &&
	    rep.result.to == NULL)
		r = DS_ERR_CONFIG;
	log_debug("%s: pull: %" PRIu64 " objects, %" PRIu64 " bytes sent", opt->host,
	    rep.objects_sent, rep.bytes_sent);
out:
	report_release(&rep);
	xport_free(x);
	store_free(store);
	config_free(config);
	return r;
}
