/*
 * apply-driver: drives the apply engine on a local tree for crash.sh,
 * nospace.sh and tools/bench-apply, before (and independently of) the
 * sender/receiver. Not a test by itself.
 *
 *	apply-driver [options] TARGET SOURCE ID	scan SOURCE, stage what is missing, apply it as ID
 *	apply-driver [options] --rollback TARGET
 *	apply-driver [options] --verify TARGET	print drifted paths
 *	apply-driver --fault			exit 0 if built with fault injection
 *	--manifest FILE: take the release from FILE instead of scanning SOURCE, stage nothing
 *	--stage-only: stage what is missing and stop; --save-manifest FILE: write the scan
 * options: --state DIR, --keep N, --fail-on-drift, --dry-run, --owner U, --group G,
 *	    --lock-timeout S, --hold S (keep the lock S seconds after opening)
 */
#include "autoconf.h"

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fault.h"
#include "base/log.h"
#include "base/path.h"
#include "base/xmalloc.h"
#include "repo/manifest.h"
#include "site/commit.h"
#include "site/history.h"
#include "site/site.h"
#include "site/stage.h"
#include "site/target.h"

static const struct manifest_entry *
find_by_hash(const struct manifest *m, const uint8_t hash[HASH_LEN])
{
	for (size_t i = 0; i < m->count; i++)
		if (m->entries[i].type != MANIFEST_DIR &&
		    memcmp(m->entries[i].hash, hash, HASH_LEN) == 0)
			return &m->entries[i];
	return NULL;
}

/* Stages from SOURCE every object the target still lacks. */
static int
stage_missing(struct target *t, const char *source, const struct manifest *m)
{
	uint8_t (*missing)[HASH_LEN] = NULL;
	size_t count = 0;
	uint64_t bytes = 0;
	int r, fd;

	if ((r = commit_missing(t, m, &missing, &count)) != 0)
		return r;
	for (size_t i = 0; i < count; i++) {
		const struct manifest_entry *e = find_by_hash(m, missing[i]);
		if (e != NULL)
			bytes += e->size;
	}
	if ((r = stage_check_space(t, bytes)) != 0)
		goto out;
	for (size_t i = 0; i < count && r == 0; i++) {
		const struct manifest_entry *e = find_by_hash(m, missing[i]);
		char *file;

		if (e == NULL)
			continue;
		if (e->type == MANIFEST_SYMLINK) {
			r = stage_add_bytes(t, e->hash, e->link, strlen(e->link));
			continue;
		}
		file = path_join(source, e->path);
		if ((fd = open(file, O_RDONLY | O_CLOEXEC)) == -1) {
			log_errno("%s", file);
			r = DS_ERR_SYSTEM;
		} else {
			r = stage_add_fd(t, e->hash, fd);
			close(fd);
		}
		free(file);
	}
out:
	free(missing);
	return r;
}

static void
print_report(const struct commit_report *r)
{
	printf("from %s to %s: added %zu updated %zu deleted %zu mode %zu unchanged %zu "
	    "bytes %" PRIu64 " copied %" PRIu64 "%s\n",
	    r->from_release ? r->from_release : "-", r->to_release ? r->to_release : "-",
	    r->added, r->updated, r->deleted, r->mode_changed, r->unchanged, r->bytes,
	    r->bytes_copied, r->noop ? " (no-op)" : "");
	for (size_t i = 0; r->changed_paths != NULL && r->changed_paths[i] != NULL; i++)
		printf("changed %s\n", r->changed_paths[i]);
	for (size_t i = 0; r->drifted_paths != NULL && r->drifted_paths[i] != NULL; i++)
		printf("drifted %s\n", r->drifted_paths[i]);
}

int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "state", required_argument, NULL, 's' },
		{ "keep", required_argument, NULL, 'k' },
		{ "fail-on-drift", no_argument, NULL, 'F' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "owner", required_argument, NULL, 'o' },
		{ "group", required_argument, NULL, 'g' },
		{ "lock-timeout", required_argument, NULL, 'l' },
		{ "hold", required_argument, NULL, 'H' },
		{ "rollback", no_argument, NULL, 'R' },
		{ "verify", no_argument, NULL, 'V' },
		{ "fault", no_argument, NULL, 'f' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "manifest", required_argument, NULL, 'm' },
		{ "save-manifest", required_argument, NULL, 'S' },
		{ "stage-only", no_argument, NULL, 'O' },
		{ NULL, 0, NULL, 0 }
	};
	struct commit_opts o;
	struct commit_report rep;
	struct manifest *m = NULL;
	struct target *t = NULL;
	const char *state = NULL, *manifest_file = NULL, *save_file = NULL;
	int stage_only = 0;
	unsigned lock_timeout = 0, hold = 0;
	int ch, rollback = 0, verify = 0, r;

	memset(&o, 0, sizeof(o));
	memset(&rep, 0, sizeof(rep));
	while ((ch = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (ch) {
		case 's': state = optarg; break;
		case 'k': o.keep_backups = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'F': o.fail_on_drift = 1; break;
		case 'n': o.dry_run = 1; break;
		case 'o': o.owner = optarg; break;
		case 'g': o.group = optarg; break;
		case 'l': lock_timeout = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'H': hold = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'R': rollback = 1; break;
		case 'V': verify = 1; break;
		case 'f': return FAULT_ENABLED ? 0 : 1;
		case 'q': log_set_level(LOG_LEVEL_ERROR); break;
		case 'm': manifest_file = optarg; break;
		case 'S': save_file = optarg; break;
		case 'O': stage_only = 1; break;
		default: return 2;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != ((rollback || verify) ? 1 : 3)) {
		fprintf(stderr, "usage: apply-driver [options] TARGET [SOURCE ID]\n");
		return 2;
	}
	if ((r = site_open(argv[0], state, lock_timeout, &t)) != 0)
		goto out;
	if (hold > 0)
		sleep(hold);
	if (verify) {
		char **drifted = NULL;
		if ((r = target_verify(t, NULL, &drifted)) == 0)
			for (size_t i = 0; drifted[i] != NULL; i++)
				printf("drifted %s\n", drifted[i]);
		xfree_strv(drifted);
		goto out;
	}
	if (rollback) {
		r = commit_rollback(t, &o, &rep);
	} else {
		if (manifest_file != NULL)
			r = manifest_load(manifest_file, &m);
		else
			r = manifest_scan(argv[1], NULL, NULL, 0, &m, NULL);
		if (r != 0)
			goto out;
		if (save_file != NULL && (r = manifest_save(m, save_file)) != 0)
			goto out;
		/* With --manifest the objects were staged by an earlier --stage-only run. */
		if (!o.dry_run && manifest_file == NULL && (r = stage_missing(t, argv[1], m)) != 0)
			goto out;
		if (stage_only)
			goto out;
		o.to = m;
		o.release_id = argv[2];
		r = commit_apply(t, &o, &rep);
	}
	print_report(&rep);
	if (!o.dry_run)
		history_append(t, rollback ? "rollback" : "apply", &rep, NULL, r);
out:
	if (r != 0)
		fprintf(stderr, "apply-driver: %s\n", ds_strerror(r));
	commit_report_release(&rep);
	manifest_free(m);
	target_close(t);
	return ds_exit_code(r);
}
