/*
 * The apply engine (commit.h): an apply looks at the tree, applies the drift
 * policy, plans the journal, finds every new content's source, prepares the
 * new files in STATE/prep/ and the backup set, and writes the journal (the
 * commit point); recover_replay then performs it, the same code that
 * finishes an apply a crash interrupted.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fault.h"
#include "base/fileio.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/path.h"
#include "base/xmalloc.h"
#include "config/config.h"
#include "repo/manifest.h"
#include "repo/store.h"
#include "site/backup.h"
#include "site/commit.h"
#include "site/journal.h"
#include "site/lineage.h"
#include "site/owed.h"
#include "site/owner.h"
#include "site/perm.h"
#include "site/recover.h"
#include "site/stage.h"
#include "site/target.h"

enum src_kind { SRC_NONE, SRC_STAGED_LINK, SRC_STAGED_COPY, SRC_TREE, SRC_BACKUP };

/* One step of the plan: a journal record and, not journaled, what it is about. */
struct op {
	struct journal_record rec;
	char		 type;		/* B, P: the manifest type of the content */
	uint64_t	 size;		/* P: the content's size */
	enum src_kind	 src;		/* P: where the content comes from */
	char		*src_path;	/* SRC_TREE: path in the tree; SRC_BACKUP: state-relative */
	const char	*link;		/* symlink target known from the scan */
};

struct plan {
	struct op	*ops;
	size_t		 count, alloc;
	char		*from;
	char		*to;
	unsigned	 keep;
};

static void
plan_release(struct plan *p)
{
	for (size_t i = 0; i < p->count; i++) {
		free(p->ops[i].rec.path);
		free(p->ops[i].src_path);
	}
	free(p->ops);
	free(p->from);
	free(p->to);
	memset(p, 0, sizeof(*p));
}

static struct op *
plan_add(struct plan *p, char kind, const char *path)
{
	struct op *op;

	p->ops = xgrow(p->ops, &p->alloc, p->count + 1, sizeof(*p->ops));
	op = &p->ops[p->count++];
	memset(op, 0, sizeof(*op));
	op->rec.kind = kind;
	op->rec.path = xstrdup(path);
	op->rec.uid = op->rec.gid = -1;
	return op;
}

/* The journal of the plan: its records, in plan order. */
static void
plan_journal(const struct plan *p, struct journal *j)
{
	memset(j, 0, sizeof(*j));
	j->from = p->from != NULL ? xstrdup(p->from) : NULL;
	j->to = xstrdup(p->to);
	j->keep = p->keep;
	for (size_t i = 0; i < p->count; i++) {
		struct journal_record *rec = journal_add(j, p->ops[i].rec.kind, p->ops[i].rec.path);
		char *path = rec->path;

		*rec = p->ops[i].rec;
		rec->path = path;
	}
}

/* ---- planning ---- */

struct hash_ref {
	const uint8_t	*hash;
	const struct manifest_entry *e;
};

static int
hash_ref_cmp(const void *a, const void *b)
{
	const struct hash_ref *x = a, *y = b;
	int c = memcmp(x->hash, y->hash, HASH_LEN);

	return c != 0 ? c : strcmp(x->e->path, y->e->path);
}

/* Index of the tree's files and symlinks by content hash. */
struct tree_index {
	struct hash_ref	*refs;
	size_t		 count;
};

static void
tree_index_build(struct tree_index *ix, const struct manifest *scan)
{
	ix->refs = xcalloc(scan->count + 1, sizeof(*ix->refs));
	ix->count = 0;
	for (size_t i = 0; i < scan->count; i++) {
		if (scan->entries[i].type == MANIFEST_DIR)
			continue;
		ix->refs[ix->count].hash = scan->entries[i].hash;
		ix->refs[ix->count++].e = &scan->entries[i];
	}
	if (ix->count > 1)
		qsort(ix->refs, ix->count, sizeof(*ix->refs), hash_ref_cmp);
}

/* A tree entry with that content and type, or NULL. */
static const struct manifest_entry *
tree_index_find(const struct tree_index *ix, const uint8_t hash[HASH_LEN], char type)
{
	size_t lo = 0, hi = ix->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (memcmp(ix->refs[mid].hash, hash, HASH_LEN) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < ix->count && memcmp(ix->refs[lo].hash, hash, HASH_LEN) == 0; lo++)
		if (ix->refs[lo].e->type == type)
			return ix->refs[lo].e;
	return NULL;
}

struct planner {
	struct plan	*plan;
	struct commit_report *r;
	char		**changed;
	size_t		  nchanged, changed_alloc;
	long		  uid, gid;
};

static void
note_changed(struct planner *pl, const char *path)
{
	pl->changed = xgrow(pl->changed, &pl->changed_alloc, pl->nchanged + 2, sizeof(char *));
	pl->changed[pl->nchanged++] = xstrdup(path);
	pl->changed[pl->nchanged] = NULL;
}

static void
add_backup(struct planner *pl, const struct manifest_entry *old)
{
	struct op *op;

	if (old->type == MANIFEST_DIR || pl->plan->from == NULL)
		return;
	op = plan_add(pl->plan, JOURNAL_BACKUP, old->path);
	memcpy(op->rec.hash, old->hash, HASH_LEN);
	op->type = old->type;
	op->link = old->link;
}

static void
add_place(struct planner *pl, const struct manifest_entry *e)
{
	struct op *op = plan_add(pl->plan, e->type == MANIFEST_DIR ? JOURNAL_MKDIR : JOURNAL_PLACE,
	    e->path);

	op->rec.mode = e->mode & 07777;
	op->rec.uid = pl->uid;
	op->rec.gid = pl->gid;
	op->type = e->type;
	op->size = e->size;
	memcpy(op->rec.hash, e->hash, HASH_LEN);
}

/* manifest_diff callback: the records one changed path needs. */
static int
plan_change(enum manifest_change change, const struct manifest_entry *old,
    const struct manifest_entry *new, void *arg)
{
	struct planner *pl = arg;
	const char *why;
	struct op *op;

	if (new != NULL && manifest_entry_check(new, NULL, 0, &why) != 0) {
		log_error("release %s: invalid entry '%s': %s", pl->plan->to, new->path, why);
		return DS_ERR_INVALID;
	}
	note_changed(pl, new != NULL ? new->path : old->path);
	switch (change) {
	case MANIFEST_ADDED:
		pl->r->added++;
		add_place(pl, new);
		break;
	case MANIFEST_DELETED:
		pl->r->deleted++;
		add_backup(pl, old);
		plan_add(pl->plan, old->type == MANIFEST_DIR ? JOURNAL_RMDIR : JOURNAL_UNLINK,
		    old->path);
		break;
	case MANIFEST_CHANGED:
		pl->r->updated++;
		add_backup(pl, old);
		if (old->type == MANIFEST_DIR)
			plan_add(pl->plan, JOURNAL_RMDIR, old->path);
		else if (new->type == MANIFEST_DIR)
			plan_add(pl->plan, JOURNAL_UNLINK, old->path);
		add_place(pl, new);
		break;
	case MANIFEST_MODE:
		pl->r->mode_changed++;
		if (new->type == MANIFEST_SYMLINK)
			break;
		op = plan_add(pl->plan, JOURNAL_MODE, new->path);
		op->rec.mode = new->mode & 07777;
		op->rec.uid = pl->uid;
		op->rec.gid = pl->gid;
		break;
	}
	return 0;
}

/* Group of a record in the journal: B first, then U/R, then D/P/M. */
static int
op_group(const struct op *op)
{
	if (op->rec.kind == JOURNAL_BACKUP)
		return 0;
	return op->rec.kind == JOURNAL_UNLINK || op->rec.kind == JOURNAL_RMDIR ? 1 : 2;
}

static int
op_order(const void *a, const void *b)
{
	const struct op *x = a, *y = b;
	/* U/R children first, D/P/M parents first. */
	int gx = op_group(x), gy = op_group(y), c;

	if (gx != gy)
		return gx - gy;
	c = strcmp(x->rec.path, y->rec.path);
	return gx == 1 ? -c : c;
}

/* Where the content of P op number I comes from, or SRC_NONE. */
static void
resolve_source(struct target *t, struct plan *p, size_t i, const struct tree_index *ix,
    int use_backups)
{
	struct op *op = &p->ops[i];
	const struct manifest_entry *e;
	uint64_t size;

	op->src = SRC_NONE;
	if (stage_object_size(t, op->rec.hash, &size) && size == op->size) {
		int first = 1;
		for (size_t j = 0; j < i; j++)
			if (p->ops[j].src == SRC_STAGED_LINK &&
			    memcmp(p->ops[j].rec.hash, op->rec.hash, HASH_LEN) == 0)
				first = 0;
		/* A file lands by hard link from staging once; duplicates are copies. */
		op->src = first && op->type == MANIFEST_FILE ? SRC_STAGED_LINK : SRC_STAGED_COPY;
	} else if ((e = tree_index_find(ix, op->rec.hash, op->type)) != NULL &&
	    e->size == op->size) {
		op->src = SRC_TREE;
		op->src_path = xstrdup(e->path);
		op->link = e->link;
	} else if (use_backups && (op->src_path = backup_find(t, op->rec.hash)) != NULL)
		op->src = SRC_BACKUP;
}

/*
 * Chooses where each P's content comes from. Returns the number of objects
 * that cannot be found (logging up to a few when log_missing).
 */
static size_t
resolve_sources(struct target *t, struct plan *p, const struct tree_index *ix,
    int use_backups, int log_missing, uint64_t *copy_bytes)
{
	size_t missing = 0;
	char hex[HASH_HEX_LEN + 1];

	*copy_bytes = 0;
	for (size_t i = 0; i < p->count; i++) {
		struct op *op = &p->ops[i];

		if (op->rec.kind != JOURNAL_PLACE)
			continue;
		resolve_source(t, p, i, ix, use_backups);
		if (op->src == SRC_NONE) {
			hash_to_hex(op->rec.hash, hex);
			if (log_missing && missing < 10)
				log_error("%s: content of '%s' (%s) is neither staged nor present",
				    target_dir(t), op->rec.path, hex);
			missing++;
			continue;
		}
		if (op->type == MANIFEST_FILE && op->src != SRC_STAGED_LINK)
			*copy_bytes += op->size;
	}
	return missing;
}

/* ---- preparing ---- */

/* Opens the source of a P op read-only. */
static int
open_source(struct target *t, const struct op *op)
{
	switch (op->src) {
	case SRC_STAGED_LINK:
	case SRC_STAGED_COPY:
		return stage_object_open(t, op->rec.hash);
	case SRC_TREE:
		return path_openat(target_root_fd(t), op->src_path, O_RDONLY, 0);
	case SRC_BACKUP:
		return openat(target_state_fd(t), op->src_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	default:
		errno = ENOENT;
		return -1;
	}
}

/* Gets a symlink target for a P op of type symlink. */
static int
symlink_target(struct target *t, const struct op *op, char **out)
{
	char buf[PATH_MAX_LEN + 1];
	const char *base;
	ssize_t n;
	int fd, r;

	if (op->src == SRC_TREE) {
		if (op->link != NULL) {
			*out = xstrdup(op->link);
			return 0;
		}
		if ((fd = path_open_parent(target_root_fd(t), op->src_path, 0, &base)) == -1)
			return -1;
		n = readlinkat(fd, base, buf, sizeof(buf) - 1);
		close(fd);
		if (n == -1)
			return -1;
		buf[n] = '\0';
		*out = xstrdup(buf);
		return 0;
	}
	if ((fd = open_source(t, op)) == -1)
		return -1;
	r = fileio_read_fd(fd, PATH_MAX_LEN, out, NULL);
	close(fd);
	return r;
}

/* prep/NAME as a symlink, one that stays inside the tree (manifest_entry_check). */
static int
prepare_symlink(struct target *t, int prepfd, const char *name, const struct op *op)
{
	const char *why;
	char *link = NULL;
	int r = DS_ERR_SYSTEM;

	if (symlink_target(t, op, &link) == -1) {
		log_errno("%s: target of symlink '%s'", target_dir(t), op->rec.path);
		goto out;
	}
	if (path_link_check(op->rec.path, link, op->size, &why) != 0 || strlen(link) != op->size) {
		log_error("%s: symlink '%s': %s (-> %s)", target_dir(t), op->rec.path,
		    why != NULL ? why : "NUL in symlink target", link);
		r = DS_ERR_INVALID;
		goto out;
	}
	fault_point("prepare-symlink");
	if (symlinkat(link, prepfd, name) == -1) {
		r = errno == ENOSPC ? DS_ERR_NOSPACE : DS_ERR_SYSTEM;
		log_errno("%s/prep/%s", target_state_dir(t), name);
		goto out;
	}
	owner_set_at(prepfd, name, op->rec.uid, op->rec.gid);
	r = 0;
out:
	free(link);
	return r;
}

/* prep/NAME as a hard link of the staged object; 1 when no link can be made here. */
static int
prepare_link(struct target *t, int prepfd, const char *name, const struct op *op)
{
	fault_point("prepare-link");
	if (stage_object_link(t, op->rec.hash, prepfd, name) == -1)
		return 1;	/* no hard link here (e.g. protected_hardlinks): copy instead */
	fault_point("prepare-link-done");
	if (fchmodat(prepfd, name, op->rec.mode, 0) == -1) {
		log_errno("%s/prep/%s", target_state_dir(t), name);
		return DS_ERR_SYSTEM;
	}
	owner_set_at(prepfd, name, op->rec.uid, op->rec.gid);
	return 0;
}

/* prep/NAME as a copy of the op's source. */
static int
prepare_copy(struct target *t, int prepfd, const char *name, const struct op *op)
{
	int in = -1, out = -1, r = DS_ERR_SYSTEM;

	if ((in = open_source(t, op)) == -1) {
		log_errno("%s: source of '%s'", target_dir(t), op->rec.path);
		goto out;
	}
	fault_point("prepare-copy-open");
	out = openat(prepfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (out == -1 || fileio_copy_fd(in, out) == -1) {
		r = errno == ENOSPC ? DS_ERR_NOSPACE : DS_ERR_SYSTEM;
		log_errno("%s/prep/%s (for '%s')", target_state_dir(t), name, op->rec.path);
		goto out;
	}
	fault_point("prepare-copy-written");
	fault_point("prepare-copy-chmod");
	if (fchmod(out, op->rec.mode) == -1) {
		log_errno("%s/prep/%s", target_state_dir(t), name);
		goto out;
	}
	if (op->rec.uid != -1 || op->rec.gid != -1) {
		if (fchown(out, (uid_t)op->rec.uid, (gid_t)op->rec.gid) == -1)
			log_warn("%s: chown %ld:%ld: %s", op->rec.path, op->rec.uid, op->rec.gid,
			    strerror(errno));
	}
#ifndef HAVE_SYNCFS
	if (fsync(out) == -1) {
		log_errno("%s/prep/%s: fsync", target_state_dir(t), name);
		goto out;
	}
#endif
	r = 0;
out:
	if (in != -1)
		close(in);
	if (out != -1)
		close(out);
	return r;
}

/* Makes prep/N for a P op: written, mode, owner; fsynced later in one go. */
static int
prepare_one(struct target *t, int prepfd, const struct op *op)
{
	char name[32];
	int r;

	snprintf(name, sizeof(name), "%zu", op->rec.prep);
	if (op->type == MANIFEST_SYMLINK)
		return prepare_symlink(t, prepfd, name, op);
	if (op->src == SRC_STAGED_LINK && (r = prepare_link(t, prepfd, name, op)) != 1)
		return r;
	return prepare_copy(t, prepfd, name, op);
}

/* ---- the apply, step by step ---- */

static char **
strv_empty(void)
{
	return xcalloc(1, sizeof(char *));
}

/* A growing NULL-terminated list of paths. */
struct drift_list {
	char	**paths;
	size_t	  count, alloc;
};

/* One apply in progress: what it was asked, what it found, what it made. */
struct apply {
	struct target		*t;
	const struct commit_opts *o;
	const struct manifest	*to;		/* the tree to place */
	const struct manifest	*state;		/* the state's manifest, when not TO */
	const char		*to_id;
	int			 use_backups;	/* a rollback: backup sets are a source */
	struct commit_report	*r;
	long			 uid, gid;	/* o->owner, o->group */
	struct manifest		*cur;		/* current.manifest */
	struct manifest		*scan;		/* the tree as it is */
	struct plan		 plan;
	struct journal		 after;		/* owed work and the rollback list: the journal's tail */
	int			 prepfd;	/* STATE/prep */
	int			 objfd;		/* STATE/backup/FROM/objects */
};

/* manifest_diff callback: a found path that a first apply replaces or removes. */
static int
found_replaced(enum manifest_change change, const struct manifest_entry *found,
    const struct manifest_entry *release, void *arg)
{
	struct drift_list *l = arg;

	(void)release;
	if (change == MANIFEST_ADDED)
		return 0;
	l->paths = xgrow(l->paths, &l->alloc, l->count + 2, sizeof(char *));
	l->paths[l->count++] = xstrdup(found->path);
	l->paths[l->count] = NULL;
	return 0;
}

/* Same type, mode and content: an apply leaves the path alone. */
static int
entry_same(const struct manifest_entry *a, const struct manifest_entry *b)
{
	return a->type == b->type && a->mode == b->mode &&
	    memcmp(a->hash, b->hash, HASH_LEN) == 0;
}

/*
 * Drift this apply leaves as it is (the tree already holds what TO says
 * for the path) is not drift it overwrites: dropped from the report's list.
 */
static void
drift_left_alone(struct apply *a)
{
	char **d = a->r->drifted_paths;
	size_t n = 0;

	for (size_t i = 0; d[i] != NULL; i++) {
		const struct manifest_entry *f = manifest_find(a->scan, d[i]);
		const struct manifest_entry *w = manifest_find(a->to, d[i]);

		if ((f == NULL && w == NULL) || (f != NULL && w != NULL && entry_same(f, w)))
			free(d[i]);
		else
			d[n++] = d[i];
	}
	d[n] = NULL;
}

/*
 * The current state and the tree as it is. A first apply has no drift (the
 * tree was found, not changed behind distsync's back); it lists instead the
 * found paths it replaces or removes (commit.h), what adopting leaves alone
 * not among them.
 */
static int
apply_look(struct apply *a)
{
	struct drift_list l = { NULL, 0, 0 };
	int ret;

	if ((ret = owner_resolve(a->o->owner, a->o->group, &a->uid, &a->gid)) != 0)
		return ret;
	fault_point("apply-start");
	if ((ret = target_current(a->t, &a->r->from_release, &a->cur)) != 0)
		return ret;
	fault_point("apply-verify");
	if ((ret = target_verify(a->t, &a->scan, &a->r->drifted_paths)) != 0)
		return ret;
	if (a->r->from_release != NULL) {
		drift_left_alone(a);
		return 0;
	}
	if ((ret = manifest_diff(a->scan, a->to, found_replaced, &l)) != 0) {
		xfree_strv(l.paths);
		return ret;
	}
	if (l.paths != NULL) {
		xfree_strv(a->r->drifted_paths);
		a->r->drifted_paths = l.paths;
	}
	return 0;
}

/*
 * Drift is refused with fail_on_drift, else overwritten (and backed up) with
 * a word. A first apply has none; fail_on_drift refuses it too when it would
 * replace or remove found files (apply_look).
 */
static int
apply_drift_policy(struct apply *a)
{
	struct commit_report *r = a->r;
	size_t n = 0;

	if (r->drifted_paths[0] == NULL)
		return 0;
	while (r->drifted_paths[n] != NULL)
		n++;
	if (a->o->fail_on_drift) {
		log_error("%s: %zu path(s) %s (first: %s); refusing (--fail-on-drift)",
		    target_dir(a->t), n, r->from_release != NULL ? "changed since the last apply" :
		    "found before the first apply differ from the release", r->drifted_paths[0]);
		return DS_ERR_DRIFT;
	}
	if (r->from_release == NULL)
		return 0;	/* apply_adoption_note says how the found tree relates */
	log_warn("%s: %zu path(s) changed since the last apply %s be overwritten (first: %s)",
	    target_dir(a->t), n, a->o->dry_run ? "would" : "will", r->drifted_paths[0]);
	return 0;
}

/*
 * A first apply over files found there adopts what is already right in
 * place: no copy, no backup. Says how the found tree relates to the release.
 */
static void
apply_adoption_note(const struct apply *a)
{
	const struct commit_report *r = a->r;

	if (r->from_release != NULL || a->scan->count == 0 || a->o->dry_run)
		return;
	log_info("%s: first apply over the files found: %zu identical (kept in place), %zu "
	    "changed, %zu extra, %zu missing; what the release replaces is kept in backup/%s/ "
	    "for a rollback", target_dir(a->t), r->unchanged, r->updated + r->mode_changed,
	    r->deleted, r->added, COMMIT_ID_FOUND);
}

/* The journal's records, in journal order, and the report's counts. */
static int
apply_plan(struct apply *a)
{
	struct commit_report *r = a->r;
	struct plan *plan = &a->plan;
	struct planner pl;
	size_t nprep = 0;
	int ret;

	/*
	 * A first apply replaces the tree as found: that is the state to back up
	 * and to roll back to, named by an id no release can have.
	 */
	if (r->from_release != NULL)
		plan->from = xstrdup(r->from_release);
	else
		plan->from = xstrdup(a->scan->count > 0 ? COMMIT_ID_FOUND : COMMIT_ID_EMPTY);
	plan->to = xstrdup(a->to_id);
	plan->keep = a->o->keep_backups != 0 ? a->o->keep_backups : CONFIG_KEEP_BACKUPS_DEFAULT;
	memset(&pl, 0, sizeof(pl));
	pl.plan = plan;
	pl.r = r;
	pl.uid = a->uid;
	pl.gid = a->gid;
	if ((ret = manifest_diff(a->scan, a->to, plan_change, &pl)) != 0) {
		xfree_strv(pl.changed);
		return ret;
	}
	r->changed_paths = pl.changed != NULL ? pl.changed : strv_empty();
	r->unchanged = a->to->count - r->added - r->updated - r->mode_changed;
	if (plan->count > 1)
		qsort(plan->ops, plan->count, sizeof(*plan->ops), op_order);
	for (size_t i = 0; i < plan->count; i++) {
		if (plan->ops[i].rec.kind == JOURNAL_PLACE) {
			plan->ops[i].rec.prep = nprep++;
			if (plan->ops[i].type == MANIFEST_FILE)
				r->bytes += plan->ops[i].size;
		}
	}
	apply_adoption_note(a);
	return 0;
}

/* Every new content has a source and the filesystem has room for the copies. */
static int
apply_sources(struct apply *a)
{
	struct tree_index ix = { NULL, 0 };
	uint64_t copy_bytes = 0;
	size_t missing;

	tree_index_build(&ix, a->scan);
	fault_point("apply-planned");
	missing = resolve_sources(a->t, &a->plan, &ix, a->use_backups, !a->o->dry_run,
	    &copy_bytes);
	free(ix.refs);
	a->r->bytes_copied = copy_bytes;
	if (a->o->dry_run)
		return 0;
	if (missing > 0) {
		if (a->use_backups && a->to_id[0] != '(')	/* a rollback: a push sends what no backup holds */
			log_error("%s: %zu object(s) missing; nothing was changed (a push of "
			    "release %s sends them: 'distsync push --release %s HOST')",
			    target_dir(a->t), missing, a->to_id, a->to_id);
		else
			log_error("%s: %zu object(s) missing; nothing was changed",
			    target_dir(a->t), missing);
		return DS_ERR_NOTFOUND;
	}
	/* Copies, the new manifest and the journal are all the new space an apply takes. */
	return stage_check_space(a->t, copy_bytes + (uint64_t)a->to->count * 160);
}

/*
 * Every directory the journal changes can be changed by the user distsync
 * runs as, and every mode it sets is that user's to set: checked here, so
 * a tree it cannot change is refused untouched, naming the directory.
 */
static int
apply_access(struct apply *a)
{
	int root = target_root_fd(a->t), ret = 0;
	char *last = NULL;

	for (size_t i = 0; i < a->plan.count && ret == 0; i++) {
		const struct journal_record *rec = &a->plan.ops[i].rec;
		char *dir;

		if (!journal_kind_is_tree(rec->kind))
			continue;
		if (rec->kind == JOURNAL_MODE || rec->kind == JOURNAL_MKDIR)
			ret = perm_check_owner(root, target_dir(a->t), rec->path,
			    rec->kind == JOURNAL_MKDIR);
		if (ret == 0 && rec->kind == JOURNAL_RMDIR)
			ret = perm_check_dir(root, target_dir(a->t), rec->path);
		if (ret != 0 || rec->kind == JOURNAL_MODE)
			continue;
		dir = path_dirname(rec->path);
		/* Records of one directory sit together: check each once in a row. */
		if (last == NULL || strcmp(last, dir) != 0)
			ret = perm_check_dir(root, target_dir(a->t), dir);
		free(last);
		last = dir;
	}
	free(last);
	if (ret != 0)
		log_error("%s: nothing was changed", target_dir(a->t));
	return ret;
}

/*
 * What the journal lists after the tree's records: the work the apply owes
 * (owed.h) and the rollback list it leaves (lineage.h).
 */
static int
apply_after(struct apply *a)
{
	char **changed = a->r->changed_paths;
	size_t n = 0;
	int ret;

	while (changed != NULL && changed[n] != NULL)
		n++;
	memset(&a->after, 0, sizeof(a->after));
	if ((ret = owed_plan(a->t, a->o->config, a->cur, a->to, changed, n, a->use_backups, 1,
	    &a->after)) != 0)
		return ret;
	return lineage_plan(a->t, a->plan.from, a->plan.to, a->use_backups, &a->after);
}

/* Every new file in prep/: nothing here touches the tree. */
static int
apply_prepare(struct apply *a)
{
	int sfd = target_state_fd(a->t), ret;

	fault_point("prepare-start");
	if (path_remove_tree_at(sfd, "prep") == -1 || mkdirat(sfd, "prep", 0700) == -1 ||
	    (a->prepfd = openat(sfd, "prep", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		log_errno("%s/prep", target_state_dir(a->t));
		return DS_ERR_SYSTEM;
	}
	for (size_t i = 0; i < a->plan.count; i++) {
		if (a->plan.ops[i].rec.kind != JOURNAL_PLACE)
			continue;
		if ((ret = prepare_one(a->t, a->prepfd, &a->plan.ops[i])) != 0)
			return ret;
	}
	fault_point("prepare-files-done");
	return 0;
}

/* The backup set of the state replaced: its manifests and every replaced content. */
static int
apply_backup(struct apply *a)
{
	const struct commit_report *r = a->r;
	int first = r->from_release == NULL, ret;

	/*
	 * The tree as found changes between first applies that did not commit.
	 * Drift is part of the state this apply replaces: the tree as found is
	 * what a rollback restores (its content is backed up below), while the
	 * state stays FROM, so verify reports the same drift again afterwards.
	 */
	ret = backup_begin(a->t, a->plan.from, first ? a->scan : a->cur, first,
	    !first && r->drifted_paths[0] != NULL ? a->scan : NULL, &a->objfd);
	if (ret != 0)
		return ret;
	fault_point("prepare-backup-manifest");
	for (size_t i = 0; i < a->plan.count; i++) {
		const struct op *op = &a->plan.ops[i];

		if (op->rec.kind != JOURNAL_BACKUP)
			continue;
		ret = backup_save(a->t, a->objfd, op->rec.path, op->rec.hash,
		    op->type == MANIFEST_SYMLINK);
		if (ret != 0)
			return ret;
	}
	fault_point("prepare-backups-done");
	return 0;
}

/* The manifests the replay installs, then everything prepared made durable. */
static int
apply_sync(struct apply *a)
{
	char *file = xasprintf("%s/prep/manifest", target_state_dir(a->t));
	int ret;

	if ((ret = manifest_save(a->state != NULL ? a->state : a->to, file)) != 0)
		goto out;
	if (a->state != NULL && a->state != a->to) {
		free(file);
		file = path_join(target_state_dir(a->t), RECOVER_TREE_MANIFEST);
		if ((ret = manifest_save(a->to, file)) != 0)
			goto out;
	}
	fault_point("prepare-manifest-saved");
#ifdef HAVE_SYNCFS
	/* One flush for every prepared file instead of one fsync each. */
	if (syncfs(target_state_fd(a->t)) == -1) {
		log_errno("%s: syncfs", target_state_dir(a->t));
		ret = DS_ERR_SYSTEM;
		goto out;
	}
#endif
	fault_point("prepare-syncfs-done");
	if (fsync(a->prepfd) == -1) {
		log_errno("prep: fsync");
		ret = DS_ERR_SYSTEM;
		goto out;
	}
	if ((ret = backup_sync(a->t, a->plan.from, a->objfd)) != 0)
		goto out;
	fault_point("prepare-synced");
out:
	free(file);
	return ret;
}

/* The commit point: a complete, durable journal. */
static int
apply_journal(struct apply *a)
{
	struct journal j;
	char *bytes;
	size_t len;
	int ret;

	plan_journal(&a->plan, &j);
	for (size_t i = 0; i < a->after.count; i++) {
		const struct journal_record *src = &a->after.records[i];
		struct journal_record *rec = journal_add(&j, src->kind, src->path);

		rec->prep = src->prep;
		memcpy(rec->hash, src->hash, HASH_LEN);
	}
	bytes = journal_encode(&j, &len);
	journal_release(&j);
	ret = target_write_state(a->t, "journal", bytes, len);
	free(bytes);
	if (ret != 0)
		return ret;
	fault_point("journal-renamed");
	if ((ret = target_sync_state(a->t)) != 0)
		return ret;
	fault_point("journal-committed");
	return 0;
}

/* Frees the apply; after a failure before the commit point, drops what was prepared. */
static void
apply_end(struct apply *a, int ret)
{
	int sfd = target_state_fd(a->t);
	struct stat st;

	if (ret != 0 && !a->o->dry_run && a->prepfd != -1) {
		/* Failed before the commit point: the tree is untouched; drop what was prepared. */
		if (fstatat(sfd, "journal", &st, AT_SYMLINK_NOFOLLOW) == -1)
			path_remove_tree_at(sfd, "prep");
	}
	if (a->prepfd != -1)
		close(a->prepfd);
	if (a->objfd != -1)
		close(a->objfd);
	plan_release(&a->plan);
	journal_release(&a->after);
	manifest_free(a->cur);
	manifest_free(a->scan);
	if (a->r->changed_paths == NULL)
		a->r->changed_paths = strv_empty();
	if (a->r->drifted_paths == NULL)
		a->r->drifted_paths = strv_empty();
}

/*
 * The common apply: the tree TO onto the target, recorded as state TO_ID with
 * manifest STATE (NULL: TO itself), with backups as a source when use_backups
 * (rollback). STATE differs from TO only when a rollback restores drift: the
 * tree as found, under the release it had drifted from.
 */
static int
apply(struct target *t, const struct commit_opts *o, const struct manifest *to,
    const struct manifest *state, const char *to_id, int use_backups, struct commit_report *r)
{
	struct apply a;
	int ret;

	memset(&a, 0, sizeof(a));
	a.t = t;
	a.o = o;
	a.to = to;
	a.state = state;
	a.to_id = to_id;
	a.use_backups = use_backups;
	a.r = r;
	a.prepfd = a.objfd = -1;
	memset(r, 0, sizeof(*r));
	r->to_release = xstrdup(to_id);
	if (commit_state_id_check(to_id) != 0) {
		log_error("'%s' is not a valid release id", to_id);
		ret = DS_ERR_INVALID;
		goto out;
	}
	if ((ret = apply_look(&a)) != 0 || (ret = apply_drift_policy(&a)) != 0 ||
	    (ret = apply_plan(&a)) != 0)
		goto out;
	if (a.plan.count == 0 && r->from_release != NULL && strcmp(r->from_release, to_id) == 0) {
		r->noop = 1;
		if (!o->dry_run)
			stage_clear(t);
		goto out;
	}
	if ((ret = apply_sources(&a)) != 0 || o->dry_run)
		goto out;
	if ((ret = apply_access(&a)) != 0 || (ret = apply_after(&a)) != 0)
		goto out;
	if ((ret = apply_prepare(&a)) != 0 || (ret = apply_backup(&a)) != 0 ||
	    (ret = apply_sync(&a)) != 0 || (ret = apply_journal(&a)) != 0)
		goto out;
	/* Performing the journal is finishing it, as after a crash. */
	ret = recover_replay(t);
out:
	apply_end(&a, ret);
	return ret;
}

/* ---- the public calls ---- */

int
commit_state_id_check(const char *id)
{
	if (strcmp(id, COMMIT_ID_FOUND) == 0 || strcmp(id, COMMIT_ID_EMPTY) == 0)
		return 0;
	return store_release_id_check(id);
}

int
commit_apply(struct target *t, const struct commit_opts *o, struct commit_report *r)
{
	if (o->to == NULL || o->release_id == NULL) {
		memset(r, 0, sizeof(*r));
		log_error("%s: no release to apply", target_dir(t));
		return DS_ERR_INVALID;
	}
	if (store_release_id_check(o->release_id) != 0) {
		memset(r, 0, sizeof(*r));
		r->changed_paths = strv_empty();
		r->drifted_paths = strv_empty();
		log_error("'%s' is not a valid release id", o->release_id);
		return DS_ERR_INVALID;
	}
	return apply(t, o, o->to, NULL, o->release_id, 0, r);
}

/* The state a rollback goes to: WANT, else the first of the rollback list. */
static int
rollback_target(struct target *t, const char *want, char **out)
{
	char **list = NULL, *cur = NULL;
	int ret;

	*out = NULL;
	if (want != NULL) {
		if (commit_state_id_check(want) != 0) {
			log_error("'%s' is not a release id", want);
			return DS_ERR_INVALID;
		}
		if ((ret = target_read_id(t, "current.id", &cur)) != 0)
			return ret;
		if (cur != NULL && strcmp(cur, want) == 0) {
			log_error("%s: release %s is the current one; nothing to roll back to",
			    target_dir(t), want);
			free(cur);
			return DS_ERR_PRECONDITION;
		}
		free(cur);
		*out = xstrdup(want);
		return 0;
	}
	if ((ret = lineage_read(t, &list)) != 0)
		return ret;
	if (list[0] == NULL) {
		log_error("%s: no earlier release to roll back to ('distsync releases HOST' "
		    "lists the backups kept; 'rollback --release ID' picks one)", target_dir(t));
		xfree_strv(list);
		return DS_ERR_NOTFOUND;
	}
	*out = xstrdup(list[0]);
	xfree_strv(list);
	return 0;
}

/*
 * Whether a rollback finds E's content on the site (what resolve_source
 * looks at): staged, elsewhere in the tree SCAN, or in a backup set. A
 * directory needs none.
 */
static int
content_on_site(struct target *t, const struct manifest *scan, const struct manifest_entry *e)
{
	uint64_t size;
	char *b;

	if (e->type == MANIFEST_DIR || (stage_object_size(t, e->hash, &size) && size == e->size))
		return 1;
	for (size_t i = 0; i < scan->count; i++)
		if (scan->entries[i].type == e->type && scan->entries[i].size == e->size &&
		    memcmp(scan->entries[i].hash, e->hash, HASH_LEN) == 0)
			return 1;
	if ((b = backup_find(t, e->hash)) == NULL)
		return 0;
	free(b);
	return 1;
}

/*
 * A rollback undoes the last apply, from what that apply kept. A path
 * changed by hand since, which the last apply did not change, may have its
 * release content nowhere on the site (no backup set holds it): it is then
 * kept as it is, named, and is still drift afterwards (verify says so; a push of the release restores
 * it). *out is TO with those paths as the tree holds them (caller frees),
 * or NULL when there are none.
 */
static int
rollback_keep_edits(struct target *t, const struct manifest *to, struct manifest **out)
{
	struct manifest *cur = NULL, *scan = NULL, *keep = NULL;
	char *cur_id = NULL, **drifted = NULL;
	int ret;

	*out = NULL;
	if ((ret = target_current(t, &cur_id, &cur)) != 0 || cur_id == NULL ||
	    (ret = target_verify(t, &scan, &drifted)) != 0)
		goto out;
	for (size_t i = 0; drifted != NULL && drifted[i] != NULL; i++) {
		const struct manifest_entry *c = manifest_find(cur, drifted[i]);
		const struct manifest_entry *w = manifest_find(to, drifted[i]);
		const struct manifest_entry *f = manifest_find(scan, drifted[i]);

		if (c == NULL || w == NULL || !entry_same(c, w) || content_on_site(t, scan, w))
			continue;	/* the last apply changed it, or its content is here */
		if (keep == NULL)
			keep = manifest_new();
		log_warn("%s: '%s' was changed by hand since the last apply, which left it "
		    "alone: kept as it is (no backup holds its release content; a push of "
		    "that release restores it)", target_dir(t), drifted[i]);
		if (f != NULL)
			manifest_add(keep, f);
	}
	if (keep == NULL)
		goto out;
	for (size_t i = 0; i < to->count; i++) {
		const struct manifest_entry *c = manifest_find(cur, to->entries[i].path);
		const char *path = to->entries[i].path;
		int kept = 0;

		for (size_t k = 0; drifted[k] != NULL && !kept; k++)
			kept = strcmp(drifted[k], path) == 0 && c != NULL &&
			    entry_same(c, &to->entries[i]);
		if (!kept)
			manifest_add(keep, &to->entries[i]);
	}
	if ((ret = manifest_sort(keep)) != 0)
		goto out;
	*out = keep;
	keep = NULL;
out:
	manifest_free(keep);
	manifest_free(cur);
	manifest_free(scan);
	xfree_strv(drifted);
	free(cur_id);
	return ret;
}

int
commit_rollback(struct target *t, const struct commit_opts *o, struct commit_report *r)
{
	struct manifest *m = NULL, *found = NULL, *keep = NULL;
	char *prev = NULL;
	int ret;

	memset(r, 0, sizeof(*r));
	if ((ret = rollback_target(t, o->rollback_to, &prev)) != 0)
		goto out;
	if (o->keep_nonempty && o->rollback_to == NULL && strcmp(prev, COMMIT_ID_EMPTY) == 0) {
		log_error("%s: a rollback would empty the target: it held nothing before "
		    "distsync's first apply; to do that, name it: rollback --release '%s'",
		    target_dir(t), COMMIT_ID_EMPTY);
		ret = DS_ERR_PRECONDITION;
		goto out;
	}
	if ((ret = backup_load(t, prev, &m, &found)) != 0)
		goto out;
	if (found != NULL)
		log_info("%s: release %s had drifted when it was replaced; restoring the "
		    "tree as it was then", target_dir(t), prev);
	if (strcmp(prev, COMMIT_ID_FOUND) == 0)
		log_info("%s: rolling back to the files found before distsync's first apply",
		    target_dir(t));
	else if (strcmp(prev, COMMIT_ID_EMPTY) == 0)
		log_info("%s: rolling back to the empty target found before distsync's first "
		    "apply", target_dir(t));
	if ((ret = rollback_keep_edits(t, found != NULL ? found : m, &keep)) != 0)
		goto out;
	if (keep != NULL)
		ret = apply(t, o, keep, m, prev, 1, r);
	else
		ret = found != NULL ? apply(t, o, found, m, prev, 1, r) :
		    apply(t, o, m, NULL, prev, 1, r);
out:
	manifest_free(keep);
	/* Refused before the apply: the report still names the state the site keeps. */
	if (ret != 0 && r->from_release == NULL)
		(void)target_current(t, &r->from_release, NULL);
	if (ret != 0 && r->to_release == NULL && (prev != NULL || o->rollback_to != NULL))
		r->to_release = xstrdup(prev != NULL ? prev : o->rollback_to);
	if (r->changed_paths == NULL)
		r->changed_paths = strv_empty();
	if (r->drifted_paths == NULL)
		r->drifted_paths = strv_empty();
	manifest_free(m);
	manifest_free(found);
	free(prev);
	return ret;
}

int
commit_missing(struct target *t, const struct manifest *to, uint8_t (**missing)[HASH_LEN],
    size_t *count)
{
	struct commit_report r;
	struct manifest *scan = NULL;
	struct tree_index ix = { NULL, 0 };
	struct planner pl;
	struct plan plan;
	uint8_t (*list)[HASH_LEN] = NULL;
	size_t n = 0, alloc = 0;
	uint64_t copy_bytes;
	int ret;

	*missing = NULL;
	*count = 0;
	memset(&r, 0, sizeof(r));
	memset(&plan, 0, sizeof(plan));
	memset(&pl, 0, sizeof(pl));
	pl.plan = &plan;
	pl.r = &r;
	pl.uid = pl.gid = -1;
	plan.to = xstrdup("missing");
	if ((ret = target_verify(t, &scan, NULL)) != 0)
		goto out;
	if ((ret = manifest_diff(scan, to, plan_change, &pl)) != 0)
		goto out;
	tree_index_build(&ix, scan);
	resolve_sources(t, &plan, &ix, 0, 0, &copy_bytes);
	for (size_t i = 0; i < plan.count; i++) {
		int dup = 0;
		if (plan.ops[i].rec.kind != JOURNAL_PLACE || plan.ops[i].src != SRC_NONE)
			continue;
		for (size_t j = 0; j < n && !dup; j++)
			dup = memcmp(list[j], plan.ops[i].rec.hash, HASH_LEN) == 0;
		if (dup)
			continue;
		list = xgrow(list, &alloc, n + 1, sizeof(*list));
		memcpy(list[n++], plan.ops[i].rec.hash, HASH_LEN);
	}
	*missing = list;
	*count = n;
	list = NULL;
	ret = 0;
out:
	free(list);
	xfree_strv(pl.changed);
	free(ix.refs);
	plan_release(&plan);
	manifest_free(scan);
	commit_report_release(&r);
	return ret;
}

void
commit_report_release(struct commit_report *r)
{
	if (r == NULL)
		return;
	free(r->from_release);
	free(r->to_release);
	xfree_strv(r->changed_paths);
	xfree_strv(r->drifted_paths);
	memset(r, 0, sizeof(*r));
}
