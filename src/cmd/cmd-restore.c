/*
 * distsync restore: get back a file as a host's backup set keeps it -- the
 * copy an apply replaced, and when the file had been changed on the host
 * (drift), the changed copy it overwrote.
 *
 * By default each file is written here, as ./NAME.restored, and the host's
 * tree is left alone: an admin wants the hand-edited file to compare and
 * merge into the next release, and a tree changed behind the release's back
 * is drift again. --to FILE writes it elsewhere (- for stdout); --in-place
 * puts it back in the host's tree (atomically, with the mode it had), and
 * says that the host now differs from its release until the next apply.
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/statvfs.h>

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
#include "base/log.h"
#include "base/path.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "cmd/cmd.h"
#include "config/config.h"
#include "session/connect.h"
#include "session/report.h"
#include "session/sender.h"
#include "site/commit.h"
#include "wire/proto.h"
#include "wire/xport.h"

extern const struct cmd_entry cmd_restore_entry;

#define RESTORED_SUFFIX	".restored"

static const char restore_options[] =
    "  --backup ID         the backup set to take it from: the state an apply replaced\n"
    "                      (a release id, or (pre-distsync) for the files found before\n"
    "                      the first apply); default: the newest set that keeps PATH\n"
    "  --release ID        the same as --backup ID\n"
    "  --to FILE           write the one PATH to FILE (- for stdout) instead of\n"
    "                      ./NAME.restored\n"
    "  --in-place          put each PATH back in the host's tree (atomically, with the\n"
    "                      mode it had; several PATHs all or none); the host then\n"
    "                      differs from its release until the next apply, which\n"
    "                      overwrites it again (and keeps it)\n"
    "  --lock-timeout S    wait up to S seconds for the host's lock (default 30)\n"
    "  -h, --help          this help\n"
    "\nPATH is relative to the host's target, as push and verify print it. A copy is\n"
    "kept when an apply replaced or removed the file; when the file had drifted, the\n"
    "drifted copy is the one kept. Without --to or --in-place each file is written\n"
    "to the current directory as NAME.restored (never over an existing file) and\n"
    "the host is not touched. With a site's own config (site.yml, -c FILE) HOST is\n"
    "that site and the target is local. Exit codes: 0 restored, 1 failed, 2 usage\n"
    "(a PATH that is absolute or leaves the tree), 3 NAME.restored exists here or\n"
    "the host is locked (nothing written), 4 no backup set keeps a PATH (nothing\n"
    "written).\n";

/* Where the content of each RESTORED goes (sender.h's restore callbacks). */
struct restore_out {
	const char	*host;
	const char	*to;		/* --to FILE, "-", or NULL: ./NAME.restored */
	int		 in_place;
	char		*final;		/* the file being written */
	char		*tmp;
	int		 fd;
	size_t		 done;		/* files restored */
};

/* ./NAME.restored for PATH (caller frees). */
static char *
default_name(const char *path)
{
	const char *base = strrchr(path, '/');

	return xasprintf("%s" RESTORED_SUFFIX, base != NULL ? base + 1 : path);
}

/*
 * Is there room for the size the site declares where it is written? The
 * size is the site's word, checked against the content only at its end: a
 * hostile site must not fill this filesystem first. Logs when not.
 */
static int
room_for(const struct restore_out *o, const struct proto_restored *rd)
{
	char need[32], have[32];
	struct statvfs sv;
	uint64_t avail;

	if (fstatvfs(o->fd, &sv) == -1)
		return 1;	/* cannot tell: the write fails when it must */
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (rd->size <= avail)
		return 1;
	util_format_bytes(rd->size, need, sizeof(need));
	util_format_bytes(avail, have, sizeof(have));
	log_error("%s: %s is declared as %s but only %s are free there; nothing written",
	    o->host, o->final, need, have);
	return 0;
}

static int
restore_begin(void *arg, const struct proto_restored *rd)
{
	struct restore_out *o = arg;

	if (o->to != NULL && strcmp(o->to, "-") == 0)
		return o->fd = STDOUT_FILENO;
	o->final = o->to != NULL ? xstrdup(o->to) : default_name(rd->path);
	o->tmp = xasprintf("%s.distsync-tmp.%ld", o->final, (long)getpid());
	o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (o->fd == -1)
		log_errno("%s", o->tmp);
	else if (!room_for(o, rd)) {
		(void)unlink(o->tmp);
		close(o->fd);
		o->fd = -1;
	}
	if (o->fd == -1) {
		free(o->tmp);
		free(o->final);
		o->tmp = o->final = NULL;
	}
	return o->fd;
}

/*
 * Puts the verified temp file in place: over --to FILE, never over an
 * existing default name. The mode is the site's word: its permission bits
 * only -- a setuid, setgid or sticky bit would make the copy the site chose
 * run as whoever restores it.
 */
static int
keep(struct restore_out *o, const struct proto_restored *rd)
{
	if (fchmod(o->fd, (mode_t)(rd->mode & 0777)) == -1 || fsync(o->fd) == -1) {
		log_errno("%s", o->tmp);
		return DS_ERR_SYSTEM;
	}
	if (o->to != NULL) {
		if (rename(o->tmp, o->final) == -1) {
			log_errno("%s", o->final);
			return DS_ERR_SYSTEM;
		}
		return 0;
	}
	if (link(o->tmp, o->final) == -1) {
		if (errno == EEXIST)
			log_error("%s exists already: remove it, or give --to FILE", o->final);
		else
			log_errno("%s", o->final);
		return errno == EEXIST ? DS_ERR_PRECONDITION : DS_ERR_SYSTEM;
	}
	return 0;
}

static int
restore_end(void *arg, const struct proto_restored *rd, int ok)
{
	struct restore_out *o = arg;
	char *path = util_printable(rd->path, 0), *set = util_printable(rd->backup, 0);
	int r = 0;

	if (o->in_place) {
		printf("%s: %s put back in the tree from backup set %s (mode %04o, %" PRIu64
		    " bytes); the host differs from its release until the next apply\n",
		    o->host, path, set, rd->mode, rd->size);
		o->done++;
		goto out;
	}
	if (o->fd == STDOUT_FILENO) {
		if (!ok)
			r = DS_ERR_CORRUPT;
		else
			o->done++;
		goto out;
	}
	if (ok && (r = keep(o, rd)) == 0) {
		printf("%s: %s from backup set %s -> %s (mode %04o, %" PRIu64 " bytes)\n",
		    o->host, path, set, o->final, rd->mode & 0777, rd->size);
		o->done++;
	}
	if (o->tmp != NULL && (!ok || r != 0 || o->to == NULL))
		(void)unlink(o->tmp);
out:
	if (o->fd != -1 && o->fd != STDOUT_FILENO)
		close(o->fd);
	o->fd = -1;
	free(o->final);
	free(o->tmp);
	o->final = o->tmp = NULL;
	free(path);
	free(set);
	return r;
}

/*
 * The host entry to restore on: HOST in the config, or with a site's own
 * config (site:), this site itself, whose target is local whatever link
 * the upstream entry holds (cmd_resolve_targets). Another name, or a
 * group, is DS_ERR_USAGE (logged).
 */
static int
restore_host(const struct config *config, const char *name, struct config_host *out)
{
	const struct config_host **hosts = NULL;
	char *names[] = { (char *)(uintptr_t)name };
	size_t n = 0;
	int r;

	if (config->site.upstream == NULL && config_host(config, name) == NULL) {
		log_error("%s: no host named '%s' (restore takes one host, not a group)",
		    config->file, name);
		return DS_ERR_USAGE;
	}
	if ((r = cmd_resolve_targets(config, names, 1, &hosts, &n)) != 0)
		return r;
	*out = *hosts[0];
	free(hosts);
	return 0;
}

static int
restore_exec(int argc, char **argv, const struct config *config)
{
	static const struct option options[] = {
		{ "backup", required_argument, NULL, 'b' },
		{ "release", required_argument, NULL, 'b' },
		{ "to", required_argument, NULL, 't' },
		{ "in-place", no_argument, NULL, 'i' },
		{ "lock-timeout", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct restore_out out = { .fd = -1 };
	struct proto_restore rq;
	struct sender_options so;
	struct cmd_session_opts o;
	struct config_host host;
	struct report rep;
	struct xport *x = NULL;
	const char *why;
	int ch, r;

	memset(&rq, 0, sizeof(rq));
	cmd_session_defaults(&o);
	rq.backup = (char *)"";
	while ((ch = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (ch) {
		case 'b':
			if (commit_state_id_check(optarg) != 0) {
				log_error("--backup: '%s' is not a backup set's id (a release id, "
				    "or %s)", optarg, COMMIT_ID_FOUND);
				return DS_ERR_USAGE;
			}
			rq.backup = optarg;
			break;
		case 't':
			out.to = optarg;
			break;
		case 'i':
			out.in_place = 1;
			break;
		case 'L':
			if ((r = cmd_session_option(ch, optarg, &o)) < 0)
				return r;
			break;
		case 'h':
			cmd_help(&cmd_restore_entry, restore_options);
			return 0;
		default:
			goto usage;
		}
	}
	if (argc - optind < 2) {
		log_error("restore: give a host and at least one path");
		goto usage;
	}
	if (out.to != NULL && out.in_place) {
		log_error("restore: --to and --in-place exclude each other");
		goto usage;
	}
	if (out.to != NULL && argc - optind != 2) {
		log_error("restore: --to takes one path");
		goto usage;
	}
	rq.in_place = (uint8_t)out.in_place;
	rq.paths = argv + optind + 1;
	rq.npaths = (size_t)(argc - optind - 1);
	for (size_t i = 0; i < rq.npaths; i++) {
		if (path_check(rq.paths[i], strlen(rq.paths[i]), &why) != 0) {
			log_error("%s: %s; give the path relative to the host's target, as push "
			    "and verify print it", rq.paths[i], why);
			return DS_ERR_USAGE;
		}
		if (rq.npaths > PROTO_LIST_MAX) {
			log_error("restore: at most %u paths at once", PROTO_LIST_MAX);
			return DS_ERR_USAGE;
		}
	}
	/* Nothing is asked for when a file would not be written anyway. */
	for (size_t i = 0; out.to == NULL && !out.in_place && i < rq.npaths; i++) {
		char *name = default_name(rq.paths[i]);

		r = access(name, F_OK) == 0 ? DS_ERR_PRECONDITION : 0;
		if (r != 0)
			log_error("%s exists already: remove it, or give --to FILE", name);
		free(name);
		if (r != 0)
			return r;
	}
	if ((r = restore_host(config, argv[optind], &host)) != 0)
		return r;
	out.host = host.name;
	signal(SIGPIPE, SIG_IGN);
	memset(&so, 0, sizeof(so));
	so.op = PROTO_OP_RESTORE;
	so.config = config;
	so.host = &host;
	so.lock_timeout = o.lock_timeout;
	so.restore = &rq;
	so.restore_begin = restore_begin;
	so.restore_end = restore_end;
	so.restore_arg = &out;
	report_init(&rep, so.op, 0);
	if ((r = connect_host(config, &host, &x)) == 0) {
		r = sender_run(x, &so, &rep);
		xport_close(x);
	}
	xport_free(x);
	report_release(&rep);
	if (r == 0 && out.done != rq.npaths)
		r = DS_ERR_PROTO;
	return r;
usage:
	cmd_usage(&cmd_restore_entry, restore_options);
	return DS_ERR_USAGE;
}

const struct cmd_entry cmd_restore_entry = {
	.name = "restore",
	.usage = "[--backup ID | --release ID] [--to FILE | --in-place] [--lock-timeout S] HOST PATH...",
	.summary = "get back a file a host's backup set keeps (drift an apply overwrote)",
	.needs_config = 1,
	.exec = restore_exec,
};
