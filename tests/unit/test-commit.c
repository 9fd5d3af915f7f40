/*
 * Unit tests of target + commit: layout checks, lock, apply, no-op, drift,
 * rollback, first apply over an empty or a populated target, journals.
 */
#include "autoconf.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "base/err.h"
#include "base/fileio.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/path.h"
#include "base/xmalloc.h"
#include "repo/manifest.h"
#include "site/commit.h"
#include "site/history.h"
#include "site/site.h"
#include "site/stage.h"
#include "site/target.h"
#include "tap.h"

/* Writes a source tree for release number n: a few files that change with n. */
static void
make_release(const char *dir, int n)
{
	char path[256], text[64];

	mkdir(dir, 0755);
	snprintf(path, sizeof(path), "%s/mods", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/mods/a-%d.omod", dir, n);
	snprintf(text, sizeof(text), "module version %d\n", n);
	tap_write_file(path, text, strlen(text));
	snprintf(path, sizeof(path), "%s/core.war", dir);
	tap_write_file(path, text, strlen(text));
	snprintf(path, sizeof(path), "%s/static.txt", dir);
	tap_write_file(path, "same\n", 5);
	snprintf(path, sizeof(path), "%s/run.sh", dir);
	tap_write_file(path, "#!/bin/sh\n", 10);
	chmod(path, n % 2 ? 0755 : 0700);
}

/* Scans SRC, stages its content, applies it as ID; returns the apply's result. */
static int
apply_dir(struct target *t, const char *src, const char *id, struct commit_opts *o,
    struct commit_report *r)
{
	struct manifest *m = NULL;
	uint8_t (*missing)[HASH_LEN] = NULL;
	size_t n = 0;
	int ret;

	if ((ret = manifest_scan(src, NULL, NULL, 1, &m, NULL)) != 0)
		return ret;
	if ((ret = commit_missing(t, m, &missing, &n)) != 0)
		goto out;
	for (size_t i = 0; i < m->count; i++) {
		const struct manifest_entry *e = &m->entries[i];
		char *file;
		int fd;

		if (e->type == MANIFEST_SYMLINK && e->link != NULL &&
		    (ret = stage_add_bytes(t, e->hash, e->link, strlen(e->link))) != 0)
			goto out;
		if (e->type != MANIFEST_FILE)
			continue;
		file = xasprintf("%s/%s", src, e->path);
		fd = open(file, O_RDONLY);
		free(file);
		if (fd == -1 || (ret = stage_add_fd(t, e->hash, fd)) != 0) {
			if (fd != -1)
				close(fd);
			ret = ret != 0 ? ret : DS_ERR_SYSTEM;
			goto out;
		}
		close(fd);
	}
	o->to = m;
	o->release_id = id;
	ret = commit_apply(t, o, r);
out:
	free(missing);
	manifest_free(m);
	return ret;
}

static int
same_tree(const char *a, const char *b)
{
	struct manifest *x = NULL, *y = NULL;
	char *ex = NULL, *ey = NULL;
	size_t lx = 0, ly = 0;
	int same = 0;

	if (manifest_scan(a, NULL, NULL, 1, &x, NULL) == 0 &&
	    manifest_scan(b, NULL, NULL, 1, &y, NULL) == 0) {
		manifest_encode(x, &ex, &lx);
		manifest_encode(y, &ey, &ly);
		same = lx == ly && memcmp(ex, ey, lx) == 0;
	}
	free(ex);
	free(ey);
	manifest_free(x);
	manifest_free(y);
	return same;
}

static void
test_layout(void)
{
	static const struct {
		const char *target, *state;
		int want;
	} cases[] = {
		{ "t", "state", 0 },
		{ "t", "t/.state", DS_ERR_PRECONDITION },
		{ "t", "t", DS_ERR_PRECONDITION },
		{ "s/t", "s", DS_ERR_PRECONDITION },
		{ "a/b/t", "a/b/.t.distsync", 0 },
		{ "/dev/shm/ds-layout-test-target", "state2", DS_ERR_PRECONDITION },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct target *t = NULL;
		struct stat st;
		int r;

		if (strncmp(cases[i].target, "/dev/shm", 8) == 0 &&
		    (stat("/dev/shm", &st) == -1 || path_same_fs("/dev/shm", ".") != 0))
			continue;
		r = site_open(cases[i].target, cases[i].state, 0, &t);
		CHECK(r == cases[i].want, "target %s state %s: %d (got %d)", cases[i].target,
		    cases[i].state, cases[i].want, r);
		target_close(t);
	}
	rmdir("/dev/shm/ds-layout-test-target");
	{
		char *d = target_default_state_dir("/opt/openmrs/distribution");
		CHECK(strcmp(d, "/opt/openmrs/.distribution.distsync") == 0, "default state dir %s", d);
		free(d);
	}
}

/*
 * A release applied to ROOT can plant ".sub.distsync -> /elsewhere" beside
 * a nested target ROOT/sub: the default state directory must then be
 * refused, not followed (issue 16, finding 4).
 */
static void
test_state_symlink(void)
{
	static const char *const states[] = { NULL, "root/.sub.distsync" };
	struct stat st;

	CHECK(mkdir("root", 0755) == 0 && mkdir("root/sub", 0755) == 0 &&
	    mkdir("elsewhere", 0755) == 0, "root/sub and elsewhere/");
	CHECK(tap_write_file("elsewhere/keep", "x", 1) == 0, "elsewhere/keep");
	CHECK(symlink("../elsewhere", "root/.sub.distsync") == 0, "root/.sub.distsync -> elsewhere");
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
		struct target *t = NULL;
		int r = site_open("root/sub", states[i], 0, &t);

		CHECK(r == DS_ERR_PRECONDITION, "state %s through a symlink: refused (%d)",
		    states[i] != NULL ? states[i] : "(default)", r);
		target_close(t);
	}
	CHECK(lstat("elsewhere/lock", &st) == -1 && lstat("elsewhere/staging", &st) == -1 &&
	    lstat("elsewhere/backup", &st) == -1, "nothing was made in elsewhere/");
	CHECK(lstat("elsewhere/keep", &st) == 0, "elsewhere/keep is still there");
	CHECK(unlink("root/.sub.distsync") == 0 && symlink("../nowhere", "root/.sub.distsync") == 0,
	    "root/.sub.distsync -> nowhere (dangling)");
	{
		struct target *t = NULL;
		int r = site_open("root/sub", NULL, 0, &t);

		CHECK(r == DS_ERR_PRECONDITION, "a dangling state symlink: refused (%d)", r);
		target_close(t);
	}
	CHECK(lstat("nowhere", &st) == -1, "nowhere/ was not made");
	CHECK(unlink("root/.sub.distsync") == 0, "symlink removed");
	{
		struct target *t = NULL;
		int r = site_open("root/sub", NULL, 0, &t);

		CHECK(r == 0, "a real default state directory opens (%d)", r);
		target_close(t);
	}
}

/*
 * What the scanner refuses, an apply refuses, whoever built the manifest
 * (issue 16, finding 5): a symlink leading out of the tree (as staged
 * content, or a link of the tree moved where it climbs out), a name with a
 * newline, a setuid mode. The tree is left as it was, and stays scannable.
 */
static void
test_unsafe_entries(void)
{
	static const struct {
		const char	*what, *path, *link;
		char		 type;
		unsigned	 mode;
	} cases[] = {
		{ "a symlink out of the tree", "out", "../../etc", MANIFEST_SYMLINK, 0777 },
		{ "an absolute symlink", "abs", "/etc/passwd", MANIFEST_SYMLINK, 0777 },
		{ "a symlink with '..' after a name", "up", "d/../..", MANIFEST_SYMLINK, 0777 },
		{ "a tree link moved where it climbs out", "moved", "../x", MANIFEST_SYMLINK, 0777 },
		{ "a name with a newline", "new\nline", NULL, MANIFEST_FILE, 0644 },
		{ "a setuid file", "suid", NULL, MANIFEST_FILE, 04755 },
		{ "a setgid directory", "sgid", NULL, MANIFEST_DIR, 02755 },
	};
	struct commit_opts o;
	struct commit_report r;
	struct target *t = NULL;
	struct manifest *base = NULL;
	struct stat st;
	int ret;

	memset(&o, 0, sizeof(o));
	make_release("r1", 1);
	mkdir("r1/d", 0755);
	symlink("../x", "r1/d/inside");
	CHECK(site_open("t", "state", 0, &t) == 0, "open");
	if (t == NULL)
		return;
	memset(&r, 0, sizeof(r));
	CHECK(apply_dir(t, "r1", "1", &o, &r) == 0, "release 1 applied");
	commit_report_release(&r);
	CHECK(manifest_scan("t", NULL, NULL, 1, &base, NULL) == 0, "the tree scans");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]) && base != NULL; i++) {
		struct manifest *m = manifest_new();
		struct manifest_entry e;
		char **drift = NULL;

		for (size_t j = 0; j < base->count; j++)
			manifest_add(m, &base->entries[j]);
		memset(&e, 0, sizeof(e));
		e.path = (char *)cases[i].path;
		e.type = cases[i].type;
		e.mode = cases[i].mode;
		if (cases[i].link != NULL) {
			e.size = strlen(cases[i].link);
			hash_bytes(cases[i].link, e.size, e.hash);
			/* The link moved from d/inside comes from the tree, the others are staged. */
			if (strcmp(cases[i].path, "moved") != 0)
				stage_add_bytes(t, e.hash, cases[i].link, e.size);
		} else if (e.type == MANIFEST_FILE) {
			e.size = 1;
			hash_bytes("x", 1, e.hash);
			stage_add_bytes(t, e.hash, "x", 1);
		}
		manifest_add(m, &e);
		CHECK(manifest_sort(m) == 0, "%s: manifest sorted", cases[i].what);
		o.to = m;
		o.release_id = "2";
		memset(&r, 0, sizeof(r));
		ret = commit_apply(t, &o, &r);
		CHECK(ret == DS_ERR_INVALID, "%s: refused (%d)", cases[i].what, ret);
		commit_report_release(&r);
		CHECK(fstatat(target_root_fd(t), cases[i].path, &st, AT_SYMLINK_NOFOLLOW) == -1,
		    "%s: not in the tree", cases[i].what);
		CHECK(target_verify(t, NULL, &drift) == 0 && drift != NULL && drift[0] == NULL,
		    "%s: the tree still scans, no drift", cases[i].what);
		xfree_strv(drift);
		manifest_free(m);
	}
	manifest_free(base);
	target_close(t);
}

static void
test_lock(void)
{
	struct target *t = NULL;
	int fds[2], r;
	pid_t pid;
	char c;

	CHECK(pipe(fds) == 0, "pipe");
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		if (site_open("t", "state", 0, &t) != 0)
			_exit(1);
		if (write(fds[1], "L", 1) != 1)
			_exit(1);
		sleep(30);
		_exit(0);
	}
	close(fds[1]);
	CHECK(read(fds[0], &c, 1) == 1, "child holds the lock");
	close(fds[0]);
	r = site_open("t", "state", 1, &t);
	CHECK(r == DS_ERR_LOCKED, "second opener gets DS_ERR_LOCKED after 1 s (%d)", r);
	target_close(t);
	t = NULL;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	r = site_open("t", "state", 1, &t);
	CHECK(r == 0, "lock is free once the holder died");
	target_close(t);
}

static int
empty_dir(const char *dir)
{
	struct manifest *m = NULL;
	int empty;

	empty = manifest_scan(dir, NULL, NULL, 1, &m, NULL) == 0 && m->count == 0;
	manifest_free(m);
	return empty;
}

static void
test_apply(void)
{
	struct commit_opts o;
	struct commit_report r;
	struct target *t = NULL;
	char **drifted = NULL, *id = NULL;
	int ret;

	memset(&o, 0, sizeof(o));
	make_release("r1", 1);
	make_release("r2", 2);
	CHECK(site_open("t", "state", 0, &t) == 0, "open");
	if (t == NULL)
		return;
	ret = apply_dir(t, "r1", "1", &o, &r);
	CHECK(ret == 0 && r.added == 5 && r.from_release == NULL, "first apply adds 5 (%d, %zu)",
	    ret, r.added);
	CHECK(same_tree("r1", "t"), "tree is release 1");
	commit_report_release(&r);
	ret = apply_dir(t, "r1", "1", &o, &r);
	CHECK(ret == 0 && r.noop == 1, "same release again is a no-op");
	commit_report_release(&r);
	ret = apply_dir(t, "r2", "2", &o, &r);
	CHECK(ret == 0 && r.added == 1 && r.deleted == 1 && r.updated == 1 && r.mode_changed == 1,
	    "release 2: +1 -1 ~1 mode 1 (%zu %zu %zu %zu)", r.added, r.deleted, r.updated,
	    r.mode_changed);
	CHECK(r.changed_paths[0] != NULL && strcmp(r.changed_paths[0], "core.war") == 0,
	    "changed paths start with core.war");
	CHECK(same_tree("r2", "t"), "tree is release 2");
	CHECK(history_append(t, "apply", &r, "backend", 0) == 0, "history line");
	commit_report_release(&r);
	CHECK(target_current(t, &id, NULL) == 0 && id != NULL && strcmp(id, "2") == 0,
	    "current id is 2");
	free(id);

	/* Drift: an edited file and an extra one. */
	tap_write_file("t/static.txt", "edited\n", 7);
	tap_write_file("t/extra", "x", 1);
	CHECK(target_verify(t, NULL, &drifted) == 0 && drifted[0] != NULL &&
	    strcmp(drifted[0], "extra") == 0 && drifted[1] != NULL &&
	    strcmp(drifted[1], "static.txt") == 0 && drifted[2] == NULL, "verify lists 2 drifted paths");
	xfree_strv(drifted);
	o.fail_on_drift = 1;
	ret = apply_dir(t, "r1", "1", &o, &r);
	CHECK(ret == DS_ERR_DRIFT, "fail_on_drift refuses (%d)", ret);
	CHECK(access("t/extra", F_OK) == 0, "and touched nothing");
	commit_report_release(&r);
	o.fail_on_drift = 0;
	ret = apply_dir(t, "r2", "2", &o, &r);
	CHECK(ret == 0 && r.drifted_paths[0] != NULL, "drift is overwritten and listed");
	CHECK(same_tree("r2", "t"), "tree is release 2 again");
	commit_report_release(&r);

	/* A missing object: nothing is touched. */
	{
		struct manifest *m = manifest_new();
		struct manifest_entry e = { 0 };
		e.path = "new-file";
		e.type = MANIFEST_FILE;
		e.mode = 0644;
		e.size = 5;
		hash_bytes("never", 5, e.hash);
		manifest_add(m, &e);
		o.to = m;
		o.release_id = "3";
		ret = commit_apply(t, &o, &r);
		CHECK(ret == DS_ERR_NOTFOUND, "missing object: DS_ERR_NOTFOUND (%d)", ret);
		CHECK(same_tree("r2", "t"), "tree unchanged");
		commit_report_release(&r);
		o.dry_run = 1;
		ret = commit_apply(t, &o, &r);
		CHECK(ret == 0 && r.added == 1 && r.deleted == 5, "dry run reports the plan");
		CHECK(same_tree("r2", "t"), "dry run changed nothing");
		commit_report_release(&r);
		o.dry_run = 0;
		manifest_free(m);
	}

	/*
	 * Rollback to 1; a second rollback goes further back (to the empty
	 * target 1 replaced), never forward to 2; --release 2 gets 2 again.
	 */
	ret = commit_rollback(t, &o, &r);
	CHECK(ret == 0 && strcmp(r.to_release, "1") == 0, "rollback to 1 (%d)", ret);
	CHECK(same_tree("r1", "t"), "tree is release 1");
	commit_report_release(&r);
	ret = commit_rollback(t, &o, &r);
	CHECK(ret == 0 && strcmp(r.to_release, COMMIT_ID_EMPTY) == 0 && empty_dir("t"),
	    "rollback again goes back, to the empty target, not forward (%d, %s)", ret,
	    r.to_release != NULL ? r.to_release : "-");
	commit_report_release(&r);
	ret = commit_rollback(t, &o, &r);
	CHECK(ret == DS_ERR_NOTFOUND && empty_dir("t"),
	    "and no further: nothing was there before (%d)", ret);
	commit_report_release(&r);
	{
		char *list = NULL;

		CHECK(fileio_read_at(AT_FDCWD, "state/previous.list", 4096, &list, NULL) == 0 &&
		    strcmp(list, "") == 0, "previous.list is empty");
		free(list);
	}
	o.rollback_to = "2";
	ret = commit_rollback(t, &o, &r);
	CHECK(ret == 0 && strcmp(r.to_release, "2") == 0, "rollback --release 2 returns to 2");
	CHECK(same_tree("r2", "t"), "tree is release 2");
	commit_report_release(&r);
	o.rollback_to = NULL;
	ret = commit_rollback(t, &o, &r);
	CHECK(ret == 0 && r.from_release != NULL && strcmp(r.from_release, "2") == 0 &&
	    strcmp(r.to_release, COMMIT_ID_EMPTY) == 0 && empty_dir("t"),
	    "after --release 2, a rollback undoes that: back to the empty target (%d)", ret);
	commit_report_release(&r);
	target_close(t);
}

/* Reads a one-line state file into buf ("" when absent). */
static const char *
state_id(const char *name, char *buf, size_t size)
{
	char path[256];
	FILE *fp;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "state/%s", name);
	if ((fp = fopen(path, "r")) != NULL) {
		if (fgets(buf, (int)size, fp) == NULL)
			buf[0] = '\0';
		fclose(fp);
	}
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

/* The tree holds current.manifest exactly and the stat cache is there: no drift. */
static int
state_consistent(struct target *t)
{
	char **drifted = NULL;
	int ok;

	ok = target_verify(t, NULL, &drifted) == 0 && drifted != NULL && drifted[0] == NULL;
	xfree_strv(drifted);
	return ok;
}

/*
 * A tree that was there before distsync: a file the release replaces (other
 * mode), one it keeps, one it deletes, a symlink, a directory tree where the
 * release has a file and a file where it has a directory.
 */
static void
make_found(const char *dir)
{
	char path[256];

	mkdir(dir, 0755);
	snprintf(path, sizeof(path), "%s/core.war", dir);
	tap_write_file(path, "hand-copied core\n", 17);
	chmod(path, 0600);
	snprintf(path, sizeof(path), "%s/static.txt", dir);
	tap_write_file(path, "same\n", 5);
	snprintf(path, sizeof(path), "%s/old.txt", dir);
	tap_write_file(path, "left by the old scripts\n", 24);
	snprintf(path, sizeof(path), "%s/lnk", dir);
	symlink("old.txt", path);
	snprintf(path, sizeof(path), "%s/run.sh", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/run.sh/inner", dir);
	tap_write_file(path, "x", 1);
	snprintf(path, sizeof(path), "%s/mods", dir);
	tap_write_file(path, "a file where the release has a directory\n", 41);
	snprintf(path, sizeof(path), "%s/olddir", dir);
	mkdir(path, 0750);
	snprintf(path, sizeof(path), "%s/olddir/sub", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/olddir/sub/f", dir);
	tap_write_file(path, "deep\n", 5);
}

/* First apply into an empty target: a rollback empties it again, and forgets the apply. */
static void
test_first_apply_empty(void)
{
	struct commit_opts o;
	struct commit_report r;
	struct target *t = NULL;
	char id[128];
	int ret;

	memset(&o, 0, sizeof(o));
	make_release("r1", 1);
	make_release("r2", 2);
	CHECK(site_open("t", "state", 0, &t) == 0, "open");
	if (t == NULL)
		return;
	ret = apply_dir(t, "r1", "1", &o, &r);
	CHECK(ret == 0 && r.from_release == NULL && r.drifted_paths[0] == NULL,
	    "first apply into an empty target (%d)", ret);
	commit_report_release(&r);
	CHECK(strcmp(state_id("previous.id", id, sizeof(id)), COMMIT_ID_EMPTY) == 0,
	    "previous.id is %s (%s)", COMMIT_ID_EMPTY, id);
	CHECK(access("state/backup/" COMMIT_ID_EMPTY "/manifest", F_OK) == 0,
	    "backup set of the empty target");

	ret = commit_rollback(t, &o, &r);
	CHECK(ret == 0 && strcmp(r.to_release, COMMIT_ID_EMPTY) == 0 &&
	    r.from_release != NULL && strcmp(r.from_release, "1") == 0 && r.deleted == 5,
	    "rollback 1 -> %s deletes 5 (%d, %zu)", COMMIT_ID_EMPTY, ret, r.deleted);
	commit_report_release(&r);
	CHECK(empty_dir("t"), "target is empty again");
	CHECK(access("state/current.id", F_OK) == -1 &&
	    access("state/current.manifest", F_OK) == -1 &&
	    access("state/current.stat", F_OK) == -1, "no current.* (as before the first apply)");
	CHECK(strcmp(state_id("previous.id", id, sizeof(id)), "1") == 0, "previous.id is 1 (%s)",
	    id);
	CHECK(state_consistent(t), "verify: no drift");

	/* The next apply is a real one, from nothing (no "1 -> 1, no-op"). */
	ret = apply_dir(t, "r1", "1", &o, &r);
	CHECK(ret == 0 && r.noop == 0 && r.from_release == NULL && r.added == 5,
	    "apply after the rollback adds everything (%d, %zu)", ret, r.added);
	CHECK(same_tree("r1", "t"), "tree is release 1");
	commit_report_release(&r);
	ret = apply_dir(t, "r2", "2", &o, &r);
	CHECK(ret == 0 && r.from_release != NULL && strcmp(r.from_release, "1") == 0, "1 -> 2");
	commit_report_release(&r);
	ret = commit_rollback(t, &o, &r);
	CHECK(ret == 0 && strcmp(r.to_release, "1") == 0 && same_tree("r1", "t"),
	    "rollback 2 -> 1 (%d)", ret);
	commit_report_release(&r);
	CHECK(strcmp(state_id("current.id", id, sizeof(id)), "1") == 0 &&
	    strcmp(state_id("previous.id", id, sizeof(id)), "2") == 0,
	    "current.id 1, previous.id 2");
	CHECK(state_consistent(t), "verify: no drift after the rollback");
	CHECK(access("state/current.stat", F_OK) == 0, "stat cache written");
	target_close(t);
}

/* 1 when PATH is in the NULL-terminated list V. */
static int
listed(char **v, const char *path)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		if (strcmp(v[i], path) == 0)
			return 1;
	return 0;
}

/* First apply over files that were there: a rollback restores them exactly. */
static void
test_first_apply_found(void)
{
	struct commit_opts o;
	struct commit_report r;
	struct target *t = NULL;
	char id[128];
	int ret;

	memset(&o, 0, sizeof(o));
	make_release("r1", 1);
	make_found("orig");
	make_found("t");
	CHECK(same_tree("orig", "t"), "two copies of the tree as found");
	CHECK(site_open("t", "state", 0, &t) == 0, "open");
	if (t == NULL)
		return;
	o.fail_on_drift = 1;
	ret = apply_dir(t, "r1", "1", &o, &r);
	CHECK(ret == DS_ERR_DRIFT && same_tree("orig", "t"),
	    "fail_on_drift refuses a first apply over foreign files (%d)", ret);
	commit_report_release(&r);
	{
		char **drift = NULL;

		CHECK(target_verify(t, NULL, &drift) == 0 && drift != NULL && drift[0] == NULL,
		    "a site never applied has no drift: its tree was found");
		xfree_strv(drift);
	}
	o.fail_on_drift = 0;
	ret = apply_dir(t, "r1", "1", &o, &r);
	CHECK(ret == 0 && r.from_release == NULL && r.drifted_paths[0] != NULL,
	    "first apply over the tree as found, which is listed (%d)", ret);
	CHECK(listed(r.drifted_paths, "core.war") && listed(r.drifted_paths, "old.txt") &&
	    !listed(r.drifted_paths, "static.txt"),
	    "it lists the found paths it replaces or removes, not those it keeps");
	{
		uint8_t h[HASH_LEN];
		char hex[HASH_HEX_LEN + 1], *kept;

		hash_bytes("same\n", 5, h);
		hash_to_hex(h, hex);
		kept = xasprintf("state/backup/" COMMIT_ID_FOUND "/objects/%s", hex);
		CHECK(r.unchanged > 0 && access("state/backup/" COMMIT_ID_FOUND "/manifest",
		    F_OK) == 0 && access(kept, F_OK) != 0,
		    "what it keeps (%zu) is adopted in place: no backup copy", r.unchanged);
		free(kept);
	}
	CHECK(same_tree("r1", "t"), "tree is release 1");
	commit_report_release(&r);
	CHECK(strcmp(state_id("previous.id", id, sizeof(id)), COMMIT_ID_FOUND) == 0,
	    "previous.id is %s (%s)", COMMIT_ID_FOUND, id);

	ret = commit_rollback(t, &o, &r);
	CHECK(ret == 0 && strcmp(r.to_release, COMMIT_ID_FOUND) == 0,
	    "rollback to %s (%d)", COMMIT_ID_FOUND, ret);
	commit_report_release(&r);
	CHECK(same_tree("orig", "t"), "tree is exactly as found (modes, symlink, types)");
	CHECK(strcmp(state_id("current.id", id, sizeof(id)), COMMIT_ID_FOUND) == 0 &&
	    strcmp(state_id("previous.id", id, sizeof(id)), "1") == 0,
	    "current.id %s, previous.id 1", COMMIT_ID_FOUND);
	CHECK(state_consistent(t), "verify: no drift");

	/* What the C -> C report was about: the next apply is a real one. */
	ret = apply_dir(t, "r1", "1", &o, &r);
	CHECK(ret == 0 && r.noop == 0 && r.from_release != NULL &&
	    strcmp(r.from_release, COMMIT_ID_FOUND) == 0 && r.drifted_paths[0] == NULL,
	    "apply again: %s -> 1, no drift (%d)", COMMIT_ID_FOUND, ret);
	CHECK(same_tree("r1", "t"), "tree is release 1");
	commit_report_release(&r);
	ret = commit_rollback(t, &o, &r);
	CHECK(ret == 0 && same_tree("orig", "t"), "and rolled back again: as found (%d)", ret);
	commit_report_release(&r);
	ret = commit_rollback(t, &o, &r);
	CHECK(ret == DS_ERR_NOTFOUND && same_tree("orig", "t"),
	    "a rollback of the rollback does not go forward (%d)", ret);
	commit_report_release(&r);
	o.rollback_to = "1";
	ret = commit_rollback(t, &o, &r);
	CHECK(ret == 0 && same_tree("r1", "t") && strcmp(r.to_release, "1") == 0,
	    "rollback --release 1 of the rollback: release 1 (%d)", ret);
	commit_report_release(&r);
	o.rollback_to = NULL;
	CHECK(state_consistent(t), "verify: no drift");
	target_close(t);
}

/* A first apply that did not commit, then the tree changed: the backup follows the tree. */
static void
test_first_apply_retry(void)
{
	struct commit_opts o;
	struct commit_report r;
	struct target *t = NULL;
	struct manifest *m = manifest_new();
	struct manifest_entry e = { 0 };
	int ret;

	memset(&o, 0, sizeof(o));
	make_release("r1", 1);
	make_found("t");
	CHECK(site_open("t", "state", 0, &t) == 0, "open");
	if (t == NULL) {
		manifest_free(m);
		return;
	}
	e.path = "never";
	e.type = MANIFEST_FILE;
	e.mode = 0644;
	e.size = 5;
	hash_bytes("never", 5, e.hash);
	manifest_add(m, &e);
	o.to = m;
	o.release_id = "0";
	ret = commit_apply(t, &o, &r);
	CHECK(ret == DS_ERR_NOTFOUND, "first apply with a missing object fails (%d)", ret);
	commit_report_release(&r);
	make_found("orig");
	CHECK(same_tree("orig", "t"), "tree untouched");
	tap_write_file("t/olddir/sub/f", "edited after\n", 13);
	tap_write_file("orig/olddir/sub/f", "edited after\n", 13);
	tap_write_file("t/added-later", "y", 1);
	tap_write_file("orig/added-later", "y", 1);
	ret = apply_dir(t, "r1", "1", &o, &r);
	CHECK(ret == 0 && same_tree("r1", "t"), "first apply (%d)", ret);
	commit_report_release(&r);
	ret = commit_rollback(t, &o, &r);
	CHECK(ret == 0 && same_tree("orig", "t"), "rollback gives the tree as last found (%d)", ret);
	commit_report_release(&r);

	/* Pseudo ids are not releases: nobody applies one by name. */
	o.to = m;
	o.release_id = COMMIT_ID_FOUND;
	CHECK(commit_apply(t, &o, &r) == DS_ERR_INVALID, "apply of %s refused", COMMIT_ID_FOUND);
	commit_report_release(&r);
	o.release_id = COMMIT_ID_EMPTY;
	CHECK(commit_apply(t, &o, &r) == DS_ERR_INVALID, "apply of %s refused", COMMIT_ID_EMPTY);
	commit_report_release(&r);
	CHECK(same_tree("orig", "t"), "tree untouched");
	CHECK(commit_state_id_check(COMMIT_ID_FOUND) == 0 &&
	    commit_state_id_check(COMMIT_ID_EMPTY) == 0 && commit_state_id_check("1.0") == 0 &&
	    commit_state_id_check("(other)") != 0 && commit_state_id_check("") != 0 &&
	    commit_state_id_check("../x") != 0, "commit_state_id_check");
	manifest_free(m);
	target_close(t);
}

/* Writes the same drift into DIR: an edited file, an extra one, a mode change, a removal. */
static void
make_drift(const char *dir)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/core.war", dir);
	tap_write_file(path, "patched by hand\n", 16);
	snprintf(path, sizeof(path), "%s/static.txt", dir);
	tap_write_file(path, "edited\n", 7);
	snprintf(path, sizeof(path), "%s/mods/extra.omod", dir);
	tap_write_file(path, "dropped in by hand\n", 19);
	snprintf(path, sizeof(path), "%s/run.sh", dir);
	chmod(path, 0711);
	snprintf(path, sizeof(path), "%s/mods/a-1.omod", dir);
	unlink(path);
}

/*
 * An apply over drift that is then rolled back (a failed health check):
 * the tree returns exactly as found, drift included, and verify reports the
 * same drift against the same release as before.
 */
static void
test_drift_rollback(void)
{
	struct commit_opts o;
	struct commit_report r;
	struct target *t = NULL;
	char **before = NULL, **after = NULL, id[128];
	size_t n = 0;
	int ret, same;

	memset(&o, 0, sizeof(o));
	make_release("r1", 1);
	make_release("r2", 2);
	make_release("found", 1);
	make_drift("found");
	CHECK(site_open("t", "state", 0, &t) == 0, "open");
	if (t == NULL)
		return;
	CHECK(apply_dir(t, "r1", "1", &o, &r) == 0, "apply 1");
	commit_report_release(&r);
	make_drift("t");
	CHECK(same_tree("found", "t"), "drifted tree");
	CHECK(target_verify(t, NULL, &before) == 0 && before[0] != NULL, "verify finds drift");
	ret = apply_dir(t, "r2", "2", &o, &r);
	CHECK(ret == 0 && r.drifted_paths[0] != NULL && same_tree("r2", "t"),
	    "apply 2 overwrites the drift (%d)", ret);
	commit_report_release(&r);
	ret = commit_rollback(t, &o, &r);
	CHECK(ret == 0 && strcmp(r.to_release, "1") == 0, "rollback to 1 (%d)", ret);
	commit_report_release(&r);
	CHECK(same_tree("found", "t"), "tree is exactly as found, drift included");
	CHECK(strcmp(state_id("current.id", id, sizeof(id)), "1") == 0 &&
	    strcmp(state_id("previous.id", id, sizeof(id)), "2") == 0, "current.id 1, previous.id 2");
	CHECK(target_verify(t, NULL, &after) == 0, "verify");
	same = before != NULL && after != NULL;
	for (n = 0; same && before[n] != NULL; n++)
		same = after[n] != NULL && strcmp(before[n], after[n]) == 0;
	/* So the stat cache vouches for the drifted content, not for release 1's. */
	CHECK(same && after[n] == NULL, "verify reports the same %zu drifted paths", n);
	xfree_strv(after);

	o.rollback_to = "2";
	ret = commit_rollback(t, &o, &r);
	CHECK(ret == 0 && strcmp(r.to_release, "2") == 0 && same_tree("r2", "t"),
	    "rollback --release 2 of the rollback: release 2 (%d)", ret);
	commit_report_release(&r);
	o.rollback_to = NULL;
	CHECK(state_consistent(t), "no drift");
	ret = commit_rollback(t, &o, &r);
	CHECK(ret == 0 && same_tree("found", "t"), "and back to 1 as found (%d)", ret);
	commit_report_release(&r);
	ret = apply_dir(t, "r1", "1", &o, &r);
	CHECK(ret == 0 && same_tree("r1", "t"), "repairing the drift with 1 (%d)", ret);
	commit_report_release(&r);
	CHECK(state_consistent(t), "no drift after the repair");
	xfree_strv(before);
	target_close(t);
}

static void
test_keep_backups(void)
{
	struct commit_opts o;
	struct commit_report r;
	struct target *t = NULL;
	char name[32];
	int n = 0;

	memset(&o, 0, sizeof(o));
	o.keep_backups = 1;
	CHECK(site_open("t", "state", 0, &t) == 0, "open");
	if (t == NULL)
		return;
	for (int i = 1; i <= 5; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		make_release(name, i);
		CHECK(apply_dir(t, name, name + 1, &o, &r) == 0, "apply %d", i);
		commit_report_release(&r);
	}
	for (int i = 1; i <= 5; i++) {
		char path[64];
		snprintf(path, sizeof(path), "state/backup/%d", i);
		n += access(path, F_OK) == 0;
	}
	CHECK(n == 1 && access("state/backup/4", F_OK) == 0, "one backup set kept, of 4 (%d)", n);
	CHECK(access("state/staging", F_OK) == 0, "staging dir kept");
	target_close(t);
}

static void
test_bad_journal(void)
{
	static const char *const journals[] = {
		"",
		"garbage\n",
		"distsync-journal 1\nfrom -\nto 1\nkeep 3\n",			/* no end */
		"distsync-journal 1\nfrom -\nto 1\nkeep 3\nU ../x\nend\n",	/* unclean path */
		"distsync-journal 1\nfrom -\nto 1\nkeep 3\nU /etc/passwd\nend\n",
		"distsync-journal 1\nfrom -\nto 1\nkeep 3\nX a\nend\n",
		"distsync-journal 1\nfrom -\nto ../1\nkeep 3\nend\n",
		"distsync-journal 1\nfrom -\nto 1\nkeep 3\nP 0 99999 -1 -1 a\nend\n",
		"distsync-journal 1\nfrom -\nto 1\nkeep 3\nend\nU a\n",
		"distsync-journal 1\nfrom -\nto 1\nkeep 3\nU a%2\nend\n",
		"distsync-journal 1\nfrom -\nto 1\nkeep 3\nU a%00b\nend\n",
		"distsync-journal 1\nfrom -\nto 1\nkeep 3\nend",
		"distsync-journal 1\nfrom -\nto (bogus)\nkeep 3\nend\n",
		"distsync-journal 1\nfrom (pre-distsync\nto 1\nkeep 3\nend\n",
	};
	for (size_t i = 0; i < sizeof(journals) / sizeof(journals[0]); i++) {
		struct target *t = NULL;
		int r;

		mkdir("state", 0755);
		mkdir("t", 0755);
		tap_write_file("t/keep", "k", 1);
		tap_write_file("state/journal", journals[i], strlen(journals[i]));
		r = site_open("t", "state", 0, &t);
		CHECK(r == DS_ERR_CORRUPT, "damaged journal %zu refused (%d)", i, r);
		CHECK(access("t/keep", F_OK) == 0, "and the tree untouched");
		target_close(t);
	}
	/* A valid empty journal rolls forward to its release. */
	{
		const char *j = "distsync-journal 1\nfrom -\nto 7\nkeep 3\nend\n";
		struct target *t = NULL;
		char *id = NULL;

		tap_write_file("state/journal", j, strlen(j));
		CHECK(site_open("t", "state", 0, &t) == 0, "valid journal replayed");
		CHECK(t != NULL && target_current(t, &id, NULL) == 0 && id != NULL &&
		    strcmp(id, "7") == 0, "current id from the journal");
		CHECK(access("state/journal", F_OK) == -1, "journal removed");
		free(id);
		target_close(t);
	}
	/* Rolling forward to the empty target removes current.*. */
	{
		const char *j = "distsync-journal 1\nfrom 7\nto (none)\nkeep 3\nend\n";
		struct target *t = NULL;
		char *id = NULL;

		tap_write_file("state/journal", j, strlen(j));
		CHECK(site_open("t", "state", 0, &t) == 0, "journal to (none) replayed");
		CHECK(t != NULL && target_current(t, &id, NULL) == 0 && id == NULL &&
		    access("state/current.manifest", F_OK) == -1, "no current release");
		free(id);
		target_close(t);
	}
	/* Prepared files without a journal are discarded. */
	{
		struct target *t = NULL;
		mkdir("state/prep", 0700);
		tap_write_file("state/prep/0", "x", 1);
		CHECK(site_open("t", "state", 0, &t) == 0 && access("state/prep", F_OK) == -1,
		    "uncommitted prep/ discarded");
		target_close(t);
	}
}

static void
test_no_previous(void)
{
	struct commit_opts o;
	struct commit_report r;
	struct target *t = NULL;

	memset(&o, 0, sizeof(o));
	CHECK(site_open("t", NULL, 0, &t) == 0, "open with the default state dir");
	CHECK(access(".t.distsync/lock", F_OK) == 0, "default state dir is .t.distsync");
	CHECK(commit_rollback(t, &o, &r) == DS_ERR_NOTFOUND, "nothing to roll back to");
	commit_report_release(&r);
	o.release_id = "bad/id";
	o.to = NULL;
	CHECK(commit_apply(t, &o, &r) == DS_ERR_INVALID, "no manifest: invalid");
	commit_report_release(&r);
	target_close(t);
}

int
main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	tap_run("commit-layout", test_layout);
	tap_run("commit-lock", test_lock);
	tap_run("commit-state-symlink", test_state_symlink);
	tap_run("commit-unsafe-entries", test_unsafe_entries);
	tap_run("commit-apply", test_apply);
	tap_run("commit-first-apply-empty", test_first_apply_empty);
	tap_run("commit-first-apply-found", test_first_apply_found);
	tap_run("commit-first-apply-retry", test_first_apply_retry);
	tap_run("commit-drift-rollback", test_drift_rollback);
	tap_run("commit-keep-backups", test_keep_backups);
	tap_run("commit-bad-journal", test_bad_journal);
	tap_run("commit-no-previous", test_no_previous);
	return tap_done();
}
