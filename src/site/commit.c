/*
 * The apply engine. Recovery is roll-forward: once the journal is in place
 * (the commit point) every step it lists is idempotent and is redone by the
 * next site_open; before that point only STATE/prep/ and backup links
 * exist, and prep/ is discarded. See commit.h for the sequence.
 *
 * Journal (STATE/journal), one record per line, paths %HH-escaped:
 *	distsync-journal 1
 *	from ID|-		state replaced (its backup set is backup/ID/)
 *	to ID			a release, or a state of commit.h's COMMIT_ID_*
 *	keep N			backup sets to keep
 *	B HEX PATH		old content of PATH saved as backup/FROM/objects/HEX (done before)
 *	U PATH			unlink a file or symlink (skipped if absent or now a dir)
 *	R PATH			remove a directory (skipped if absent or no longer a dir)
 *	D MODE UID GID PATH	make a directory
 *	P N MODE UID GID PATH	rename prep/N to PATH (skipped if prep/N is gone), set mode/owner
 *	M MODE UID GID PATH	set mode/owner
 *	end
 * U and R come in reverse path order (children first), D and P in path order
 * (parents first). UID/GID -1 leave ownership alone.
 *
 * A first apply (no current.id) has "from (pre-distsync)", or "from (none)"
 * for an empty target: the tree as found is the state a rollback returns to,
 * backed up like a release, its manifest the scan. "to (none)" ends with no
 * current.* at all, as before the first apply.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fault.h"
#include "base/fileio.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/path.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "config/config.h"
#include "repo/manifest.h"
#include "repo/store.h"
#include "site/commit.h"
#include "site/stage.h"
#include "site/target.h"

#define JOURNAL_HEADER	"distsync-journal 1"
#define FOUND_MANIFEST	"found.manifest"	/* backup/ID/: the drifted tree ID was replaced in */
#define TREE_MANIFEST	"tree.manifest"		/* prep/: the tree, when not the state's manifest */
#define COPY_CHUNK	(1024 * 1024)

enum src_kind { SRC_NONE, SRC_STAGED_LINK, SRC_STAGED_COPY, SRC_TREE, SRC_BACKUP };

struct op {
	char		 kind;		/* B U R D P M */
	char		*path;
	unsigned	 mode;
	long		 uid, gid;
	size_t		 prep;		/* P: prep/N */
	uint8_t		 hash[HASH_LEN];	/* B: old content; P: new content */
	/* P only, not journaled: where the content comes from */
	char		 type;
	uint64_t	 size;
	enum src_kind	 src;
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
		free(p->ops[i].path);
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
	op->kind = kind;
	op->path = xstrdup(path);
	op->uid = op->gid = -1;
	return op;
}

/* ---- small file helpers ---- */

/* Writes NAME under dirfd atomically: NAME.tmp, fsync, rename. The caller fsyncs the dir. */
static int
write_atomic_at(int dirfd, const char *dirname, const char *name, const void *data, size_t len)
{
	if (fileio_write_atomic_at(dirfd, name, data, len) == -1) {
		log_errno("%s/%s", dirname, name);
		return errno == ENOSPC ? DS_ERR_NOSPACE : DS_ERR_SYSTEM;
	}
	return 0;
}

static int
fsync_dirfd(int fd, const char *name)
{
	if (fsync(fd) == -1) {
		log_errno("%s: fsync", name);
		return DS_ERR_SYSTEM;
	}
	return 0;
}

/* Copies all of in to out (both at offset 0 / current position). */
static int
copy_fd(int in, int out)
{
	char *buf = NULL;
	ssize_t n;
	int r = -1;

#ifdef HAVE_COPY_FILE_RANGE
	for (;;) {
		n = copy_file_range(in, NULL, out, NULL, 64 * COPY_CHUNK, 0);
		if (n == 0)
			return 0;
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
			    errno == EOPNOTSUPP)
				break;
			return -1;
		}
	}
	/* Fall back to read/write from where copy_file_range stopped (nothing was copied). */
#endif
	buf = xmalloc(COPY_CHUNK);
	for (;;) {
		n = read(in, buf, COPY_CHUNK);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto out;
		if (n == 0)
			break;
		if (fileio_write_all(out, buf, (size_t)n) == -1)
			goto out;
	}
	r = 0;
out:
	free(buf);
	return r;
}

/* ---- journal encoding ---- */

static void
put(char **buf, size_t *len, size_t *alloc, const char *s, size_t n)
{
	*buf = xgrow(*buf, alloc, *len + n + 1, 1);
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
}

static void
put_escaped(char **buf, size_t *len, size_t *alloc, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p <= 0x20 || *p == 0x7f || *p == '%') {
			char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
			put(buf, len, alloc, e, 3);
		} else
			put(buf, len, alloc, (const char *)p, 1);
	}
}

/* Decodes a %HH-escaped path; NULL if malformed or not a clean relative path. */
static char *
unescape_path(const char *s)
{
	size_t n = strlen(s), j = 0;
	char *out = xmalloc(n + 1);

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			int hi, lo;
			if (i + 2 >= n + 0 || (hi = util_hexval(s[i + 1])) < 0 ||
			    (lo = util_hexval(s[i + 2])) < 0 || (hi == 0 && lo == 0)) {
				free(out);
				return NULL;
			}
			out[j++] = (char)(hi << 4 | lo);
			i += 2;
		} else
			out[j++] = s[i];
	}
	out[j] = '\0';
	if (path_check(out, j, NULL) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

static char *
journal_encode(const struct plan *p, size_t *lenp)
{
	char *buf = NULL, line[256], hex[HASH_HEX_LEN + 1];
	size_t len = 0, alloc = 0;
	int n;

	n = snprintf(line, sizeof(line), "%s\nfrom %s\nto %s\nkeep %u\n", JOURNAL_HEADER,
	    p->from != NULL ? p->from : "-", p->to, p->keep);
	put(&buf, &len, &alloc, line, (size_t)n);
	for (size_t i = 0; i < p->count; i++) {
		const struct op *op = &p->ops[i];

		switch (op->kind) {
		case 'B':
			hash_to_hex(op->hash, hex);
			n = snprintf(line, sizeof(line), "B %s ", hex);
			break;
		case 'U':
		case 'R':
			n = snprintf(line, sizeof(line), "%c ", op->kind);
			break;
		case 'P':
			n = snprintf(line, sizeof(line), "P %zu %04o %ld %ld ", op->prep, op->mode,
			    op->uid, op->gid);
			break;
		default:
			n = snprintf(line, sizeof(line), "%c %04o %ld %ld ", op->kind, op->mode,
			    op->uid, op->gid);
			break;
		}
		put(&buf, &len, &alloc, line, (size_t)n);
		put_escaped(&buf, &len, &alloc, op->path);
		put(&buf, &len, &alloc, "\n", 1);
	}
	put(&buf, &len, &alloc, "end\n", 4);
	*lenp = len;
	return buf;
}

static int
journal_decode(char *data, const char *name, struct plan *p)
{
	char *line, *next, *path;
	unsigned lineno = 0;
	int ended = 0;

	memset(p, 0, sizeof(*p));
	for (line = data; line != NULL && *line != '\0'; line = next) {
		char kind, hex[HASH_HEX_LEN + 1], pathbuf[3 * PATH_MAX_LEN + 1];
		unsigned mode = 0;
		long uid = -1, gid = -1;
		size_t prep = 0;
		int off = 0;
		struct op *op;

		lineno++;
		if ((next = strchr(line, '\n')) == NULL)
			goto bad;
		*next++ = '\0';
		if (ended)
			goto bad;
		if (lineno == 1) {
			if (strcmp(line, JOURNAL_HEADER) != 0)
				goto bad;
			continue;
		}
		if (lineno == 2 && strncmp(line, "from ", 5) == 0) {
			if (strcmp(line + 5, "-") != 0)
				p->from = xstrdup(line + 5);
			continue;
		}
		if (lineno == 3 && strncmp(line, "to ", 3) == 0) {
			p->to = xstrdup(line + 3);
			continue;
		}
		if (lineno == 4 && sscanf(line, "keep %u%n", &p->keep, &off) == 1 &&
		    line[off] == '\0')
			continue;
		if (lineno <= 4)
			goto bad;
		if (strcmp(line, "end") == 0) {
			ended = 1;
			continue;
		}
		if (strlen(line) > sizeof(pathbuf) + 100)
			goto bad;
		kind = line[0];
		off = 0;
		switch (kind) {
		case 'B':
			if (sscanf(line, "B %64s %n", hex, &off) != 1 || off == 0)
				goto bad;
			break;
		case 'U':
		case 'R':
			if (line[1] != ' ')
				goto bad;
			off = 2;
			break;
		case 'P':
			if (sscanf(line, "P %zu %o %ld %ld %n", &prep, &mode, &uid, &gid, &off) != 4 ||
			    off == 0)
				goto bad;
			break;
		case 'D':
		case 'M':
			if (sscanf(line + 1, " %o %ld %ld %n", &mode, &uid, &gid, &off) != 3 ||
			    off == 0)
				goto bad;
			off++;
			break;
		default:
			goto bad;
		}
		if (mode > 07777 || (path = unescape_path(line + off)) == NULL)
			goto bad;
		op = plan_add(p, kind, path);
		free(path);
		op->mode = mode;
		op->uid = uid;
		op->gid = gid;
		op->prep = prep;
		if (kind == 'B' && hash_from_hex(hex, strlen(hex), op->hash) != 0)
			goto bad;
	}
	if (!ended || p->to == NULL || commit_state_id_check(p->to) != 0 ||
	    (p->from != NULL && commit_state_id_check(p->from) != 0))
		goto bad;
	return 0;
bad:
	log_error("%s:%u: damaged journal; the target needs manual repair (restore "
	    "the release from backup/ and remove the journal)", name, lineno);
	plan_release(p);
	return DS_ERR_CORRUPT;
}

/* ---- performing a journal (apply and recovery share this) ---- */

static void
set_owner(int pfd, const char *base, long uid, long gid)
{
	if (uid == -1 && gid == -1)
		return;
	/* Ownership is best effort only when unprivileged; a root run must not fail silently. */
	if (fchownat(pfd, base, (uid_t)uid, (gid_t)gid, AT_SYMLINK_NOFOLLOW) == -1)
		log_warn("%s: chown %ld:%ld: %s", base, uid, gid, strerror(errno));
}

static int
perform_op(struct target *t, int prepfd, const struct op *op)
{
	const char *base;
	struct stat st;
	char name[32];
	int pfd, r = DS_ERR_SYSTEM;

	if (op->kind == 'B')
		return 0;	/* made before the commit point; listed for the record */
	pfd = path_open_parent(target_root_fd(t), op->path,
	    op->kind == 'D' || op->kind == 'P', &base);
	if (pfd == -1) {
		if ((errno == ENOENT || errno == ENOTDIR) && (op->kind == 'U' || op->kind == 'R'))
			return 0;
		log_errno("%s/%s", target_dir(t), op->path);
		return DS_ERR_SYSTEM;
	}
	switch (op->kind) {
	case 'U':
		fault_point("perform-unlink-before");
		if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == -1 || S_ISDIR(st.st_mode)) {
			fault_point("perform-unlink-skip");
			break;
		}
		if (unlinkat(pfd, base, 0) == -1 && errno != ENOENT)
			goto fail;
		fault_point("perform-unlink-after");
		break;
	case 'R':
		fault_point("perform-rmdir-before");
		if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == -1 || !S_ISDIR(st.st_mode))
			break;
		if (unlinkat(pfd, base, AT_REMOVEDIR) == -1) {
			if (errno == ENOENT)
				break;
			if (errno != ENOTEMPTY && errno != EEXIST)
				goto fail;
			fault_point("perform-rmdir-tree");
			if (path_remove_tree_at(pfd, base) == -1)
				goto fail;
		}
		fault_point("perform-rmdir-after");
		break;
	case 'D':
		fault_point("perform-mkdir-before");
		if (mkdirat(pfd, base, 0700) == -1) {
			if (errno != EEXIST || fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
			    !S_ISDIR(st.st_mode))
				goto fail;
		}
		fault_point("perform-mkdir-after");
		if (fchmodat(pfd, base, op->mode, 0) == -1)
			goto fail;
		fault_point("perform-mkdir-chmod");
		set_owner(pfd, base, op->uid, op->gid);
		fault_point("perform-mkdir-chown");
		break;
	case 'P':
		snprintf(name, sizeof(name), "%zu", op->prep);
		fault_point("perform-rename-before");
		if (renameat(prepfd, name, pfd, base) == -1) {
			if (errno != ENOENT || fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == -1)
				goto fail;
			/* Already renamed by the run that crashed. */
			fault_point("perform-rename-replayed");
		}
		fault_point("perform-rename-after");
		if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == -1)
			goto fail;
		if (!S_ISLNK(st.st_mode) && (st.st_mode & 07777) != op->mode &&
		    fchmodat(pfd, base, op->mode, 0) == -1)
			goto fail;
		fault_point("perform-rename-chmod");
		set_owner(pfd, base, op->uid, op->gid);
		fault_point("perform-rename-chown");
		break;
	case 'M':
		fault_point("perform-chmod-before");
		if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == -1)
			goto fail;
		if (!S_ISLNK(st.st_mode) && fchmodat(pfd, base, op->mode, 0) == -1)
			goto fail;
		fault_point("perform-chmod-after");
		set_owner(pfd, base, op->uid, op->gid);
		fault_point("perform-chmod-chown");
		break;
	}
	r = 0;
	goto out;
fail:
	log_errno("%s/%s", target_dir(t), op->path);
out:
	close(pfd);
	return r;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* fsyncs the directories the ops touched (parents of every path, and new dirs). */
static int
fsync_dirs(struct target *t, const struct plan *p)
{
	char **dirs = xcalloc(p->count + 1, sizeof(*dirs));
	size_t n = 0;
	int r = 0, fd;

	for (size_t i = 0; i < p->count; i++) {
		if (p->ops[i].kind == 'B' || p->ops[i].kind == 'M')
			continue;
		dirs[n++] = path_dirname(p->ops[i].path);
	}
	if (n > 1)
		qsort(dirs, n, sizeof(*dirs), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && strcmp(dirs[i], dirs[i - 1]) == 0)
			continue;
		fault_point("fsync-dir");
		if (strcmp(dirs[i], ".") == 0 || strcmp(dirs[i], "") == 0)
			fd = dup(target_root_fd(t));
		else
			fd = path_openat(target_root_fd(t), dirs[i], O_RDONLY | O_DIRECTORY, 0);
		if (fd == -1) {
			if (errno == ENOENT || errno == ENOTDIR)
				continue;	/* removed, or replaced by a file */
			log_errno("%s/%s", target_dir(t), dirs[i]);
			r = DS_ERR_SYSTEM;
			continue;
		}
		if (fsync(fd) == -1) {
			log_errno("%s/%s: fsync", target_dir(t), dirs[i]);
			r = DS_ERR_SYSTEM;
		}
		close(fd);
	}
	if (r == 0 && fsync_dirfd(target_root_fd(t), target_dir(t)) != 0)
		r = DS_ERR_SYSTEM;
	for (size_t i = 0; i < n; i++)
		free(dirs[i]);
	free(dirs);
	return r;
}

struct backup_set {
	char	*name;
	int64_t	 mtime;	/* ns: several applies can fall in one second */
};

static int
backup_cmp(const void *a, const void *b)
{
	const struct backup_set *x = a, *y = b;

	if (x->mtime != y->mtime)
		return x->mtime > y->mtime ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Removes backup sets beyond the newest KEEP, never the one named KEEP_ID. */
static void
prune_backups(struct target *t, unsigned keep, const char *keep_id)
{
	struct backup_set *sets = NULL;
	size_t n = 0, alloc = 0;
	struct dirent *de;
	struct stat st;
	DIR *dir;
	int fd;

	if (keep == 0)
		keep = CONFIG_KEEP_BACKUPS_DEFAULT;
	fd = openat(target_state_fd(t), "backup", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1 || (dir = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return;
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.' || fstatat(dirfd(dir), de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) == -1 || !S_ISDIR(st.st_mode))
			continue;
		sets = xgrow(sets, &alloc, n + 1, sizeof(*sets));
		sets[n].name = xstrdup(de->d_name);
		sets[n++].mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	}
	if (n > 1)
		qsort(sets, n, sizeof(*sets), backup_cmp);
	fault_point("prune-start");
	for (size_t i = 0; i < n; i++) {
		if (i >= keep && (keep_id == NULL || strcmp(sets[i].name, keep_id) != 0)) {
			fault_point("prune-backup");
			if (path_remove_tree_at(dirfd(dir), sets[i].name) == -1)
				log_warn("%s/backup/%s: %s", target_state_dir(t), sets[i].name,
				    strerror(errno));
		}
		free(sets[i].name);
	}
	free(sets);
	closedir(dir);
}

/* Work after the journal is gone: nothing here affects which release the tree is. */
static void
cleanup(struct target *t, const struct plan *p)
{
	fault_point("cleanup-prep");
	if (path_remove_tree_at(target_state_fd(t), "prep") == -1)
		log_warn("%s/prep: %s", target_state_dir(t), strerror(errno));
	fault_point("cleanup-staging");
	stage_clear(t);
	fault_point("cleanup-backups");
	prune_backups(t, p->keep, p->from);
	fault_point("cleanup-done");
}

/* Removes current.* (idempotent: a replay may do it twice). */
static int
remove_current(struct target *t)
{
	static const char *const names[] = {
		"current.id", "current.manifest", "current.stat", "prep/manifest"
	};
	int sfd = target_state_fd(t);

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (unlinkat(sfd, names[i], 0) == -1 && errno != ENOENT) {
			log_errno("%s/%s", target_state_dir(t), names[i]);
			return DS_ERR_SYSTEM;
		}
	}
	return 0;
}

/* Rolls the journal in STATE/journal forward to its end and removes it. */
static int
replay(struct target *t)
{
	char *data = NULL, *name = path_join(target_state_dir(t), "journal"), *cache = NULL;
	char *idline = NULL;
	struct manifest *now = NULL;
	struct plan p;
	int fd = -1, prepfd = -1, sfd = target_state_fd(t), r;

	memset(&p, 0, sizeof(p));
	if ((fd = openat(sfd, "journal", O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1 ||
	    fileio_read_fd(fd, 1024u * 1024 * 1024, &data, NULL) == -1) {
		log_errno("%s", name);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	if ((r = journal_decode(data, name, &p)) != 0)
		goto out;
	prepfd = openat(sfd, "prep", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (prepfd == -1 && errno != ENOENT) {
		log_errno("%s/prep", target_state_dir(t));
		r = DS_ERR_SYSTEM;
		goto out;
	}
	fault_point("replay-start");
	for (size_t i = 0; i < p.count; i++) {
		if (p.ops[i].kind == 'P' && prepfd == -1) {
			/* prep/ is gone only when every rename was done; verify the target. */
			struct stat st;
			if (fstatat(target_root_fd(t), p.ops[i].path, &st, AT_SYMLINK_NOFOLLOW) == -1) {
				log_errno("%s/%s: journaled file is missing and prep/ is gone",
				    target_dir(t), p.ops[i].path);
				r = DS_ERR_CORRUPT;
				goto out;
			}
			continue;
		}
		if ((r = perform_op(t, prepfd, &p.ops[i])) != 0)
			goto out;
		fault_point("replay-op-done");
	}
	fault_point("replay-ops-done");
	if ((r = fsync_dirs(t, &p)) != 0)
		goto out;
	fault_point("replay-dirs-synced");
	/* Re-applying the current release (repairing drift) keeps the rollback target. */
	if (p.from != NULL && strcmp(p.from, p.to) != 0) {
		char *line = xasprintf("%s\n", p.from);
		r = write_atomic_at(sfd, target_state_dir(t), "previous.id", line, strlen(line));
		free(line);
		if (r != 0)
			goto out;
	}
	fault_point("replay-previous-written");
	if (strcmp(p.to, COMMIT_ID_EMPTY) == 0) {
		/* Back to an empty target distsync never applied to: no current state. */
		if ((r = remove_current(t)) != 0)
			goto out;
		fault_point("replay-manifest-renamed");
	} else {
		if (renameat(sfd, "prep/manifest", sfd, "current.manifest") == -1 &&
		    errno != ENOENT) {
			log_errno("%s/current.manifest", target_state_dir(t));
			r = DS_ERR_SYSTEM;
			goto out;
		}
		fault_point("replay-manifest-renamed");
		idline = xasprintf("%s\n", p.to);
		r = write_atomic_at(sfd, target_state_dir(t), "current.id", idline,
		    strlen(idline));
		if (r != 0)
			goto out;
	}
	fault_point("replay-id-written");
	if ((r = fsync_dirfd(sfd, target_state_dir(t))) != 0)
		goto out;
	fault_point("replay-state-synced");
	/*
	 * The tree now holds this manifest. Its stat cache is written after the
	 * cleanup below: unlinking staged names changes the ctime of the files
	 * they were linked to, which would void a cache written before.
	 */
	cache = path_join(target_state_dir(t), "current.stat");
	if (strcmp(p.to, COMMIT_ID_EMPTY) != 0) {
		/* A rollback that restored drift: the tree is prep/tree.manifest, not the state. */
		char *mfile = path_join(target_state_dir(t), "prep/" TREE_MANIFEST);

		if (access(mfile, F_OK) == -1) {
			free(mfile);
			mfile = path_join(target_state_dir(t), "current.manifest");
		}
		if (manifest_load(mfile, &now) != 0)
			log_warn("%s: could not read %s for the stat cache", target_dir(t), mfile);
		free(mfile);
	}
	if (unlinkat(sfd, "journal", 0) == -1) {
		log_errno("%s", name);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	fault_point("replay-journal-removed");
	if ((r = fsync_dirfd(sfd, target_state_dir(t))) != 0)
		goto out;
	fault_point("replay-journal-synced");
	cleanup(t, &p);
	/* Stat it, do not reread it: verify and the next no-op then rehash nothing. */
	if (now != NULL && manifest_statcache_write(target_dir(t), now, cache) != 0)
		log_warn("%s: could not refresh the stat cache", target_dir(t));
	fault_point("replay-cache-written");
	r = 0;
out:
	manifest_free(now);
	if (fd != -1)
		close(fd);
	if (prepfd != -1)
		close(prepfd);
	plan_release(&p);
	free(data);
	free(name);
	free(cache);
	free(idline);
	return r;
}

int
commit_recover(struct target *t)
{
	struct stat st;
	int sfd = target_state_fd(t), r;

	if (fstatat(sfd, "journal", &st, AT_SYMLINK_NOFOLLOW) == 0) {
		log_warn("%s: completing an apply that was interrupted", target_dir(t));
		fault_point("recover-journal-found");
		if ((r = replay(t)) != 0)
			return r;
		return 0;
	}
	if (errno != ENOENT) {
		log_errno("%s/journal", target_state_dir(t));
		return DS_ERR_SYSTEM;
	}
	/* No journal: anything prepared belongs to an apply that never committed. */
	unlinkat(sfd, "journal.tmp", 0);
	if (fstatat(sfd, "prep", &st, AT_SYMLINK_NOFOLLOW) == 0) {
		log_info("%s: discarding files prepared by an apply that did not commit",
		    target_dir(t));
		fault_point("recover-discard-prep");
		if (path_remove_tree_at(sfd, "prep") == -1) {
			log_errno("%s/prep", target_state_dir(t));
			return DS_ERR_SYSTEM;
		}
	}
	return 0;
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
	struct target	*t;
	struct plan	*plan;
	struct commit_report *r;
	char		**changed;
	size_t		  nchanged, changed_alloc;
	long		  uid, gid;
	int		  error;
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
	op = plan_add(pl->plan, 'B', old->path);
	memcpy(op->hash, old->hash, HASH_LEN);
	op->type = old->type;
	op->link = old->link;
}

static void
add_place(struct planner *pl, const struct manifest_entry *e)
{
	struct op *op = plan_add(pl->plan, e->type == MANIFEST_DIR ? 'D' : 'P', e->path);

	op->mode = e->mode & 07777;
	op->uid = pl->uid;
	op->gid = pl->gid;
	op->type = e->type;
	op->size = e->size;
	memcpy(op->hash, e->hash, HASH_LEN);
}

static int
plan_change(enum manifest_change change, const struct manifest_entry *old,
    const struct manifest_entry *new, void *arg)
{
	struct planner *pl = arg;
	struct op *op;

	if (new != NULL && (path_check(new->path, strlen(new->path), NULL) != 0 ||
	    new->mode > 07777)) {
		log_error("release %s: invalid entry '%s'", pl->plan->to, new->path);
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
		plan_add(pl->plan, old->type == MANIFEST_DIR ? 'R' : 'U', old->path);
		break;
	case MANIFEST_CHANGED:
		pl->r->updated++;
		add_backup(pl, old);
		if (old->type == MANIFEST_DIR)
			plan_add(pl->plan, 'R', old->path);
		else if (new->type == MANIFEST_DIR)
			plan_add(pl->plan, 'U', old->path);
		add_place(pl, new);
		break;
	case MANIFEST_MODE:
		pl->r->mode_changed++;
		if (new->type == MANIFEST_SYMLINK)
			break;
		op = plan_add(pl->plan, 'M', new->path);
		op->mode = new->mode & 07777;
		op->uid = pl->uid;
		op->gid = pl->gid;
		break;
	}
	return 0;
}

static int
op_order(const void *a, const void *b)
{
	const struct op *x = a, *y = b;
	/* B first, then U/R children first, then D/P/M parents first. */
	int gx = x->kind == 'B' ? 0 : (x->kind == 'U' || x->kind == 'R') ? 1 : 2;
	int gy = y->kind == 'B' ? 0 : (y->kind == 'U' || y->kind == 'R') ? 1 : 2;
	int c;

	if (gx != gy)
		return gx - gy;
	c = strcmp(x->path, y->path);
	return gx == 1 ? -c : c;
}

/* Looks for backup/ * /objects/HEX; returns the state-relative path or NULL. */
static char *
find_backup(struct target *t, const uint8_t hash[HASH_LEN])
{
	char hex[HASH_HEX_LEN + 1], *found = NULL;
	struct dirent *de;
	struct stat st;
	DIR *dir;
	int fd;

	hash_to_hex(hash, hex);
	fd = openat(target_state_fd(t), "backup", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1 || (dir = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return NULL;
	}
	while (found == NULL && (de = readdir(dir)) != NULL) {
		char *rel;
		if (de->d_name[0] == '.')
			continue;
		rel = xasprintf("backup/%s/objects/%s", de->d_name, hex);
		if (fstatat(target_state_fd(t), rel, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode))
			found = rel;
		else
			free(rel);
	}
	closedir(dir);
	return found;
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
	struct stat st;
	int sfd = -1;

	*copy_bytes = 0;
	sfd = openat(target_state_fd(t), "staging", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (size_t i = 0; i < p->count; i++) {
		struct op *op = &p->ops[i];
		const struct manifest_entry *e;

		if (op->kind != 'P')
			continue;
		hash_to_hex(op->hash, hex);
		op->src = SRC_NONE;
		if (sfd != -1 && fstatat(sfd, hex, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && (uint64_t)st.st_size == op->size) {
			int first = 1;
			for (size_t j = 0; j < i; j++)
				if (p->ops[j].src == SRC_STAGED_LINK &&
				    memcmp(p->ops[j].hash, op->hash, HASH_LEN) == 0)
					first = 0;
			/* A file lands by hard link from staging once; duplicates are copies. */
			op->src = first && op->type == MANIFEST_FILE ? SRC_STAGED_LINK :
			    SRC_STAGED_COPY;
		} else if ((e = tree_index_find(ix, op->hash, op->type)) != NULL &&
		    e->size == op->size) {
			op->src = SRC_TREE;
			op->src_path = xstrdup(e->path);
			op->link = e->link;
		} else if (use_backups && (op->src_path = find_backup(t, op->hash)) != NULL) {
			op->src = SRC_BACKUP;
		} else {
			if (log_missing && missing < 10)
				log_error("%s: content of '%s' (%s) is neither staged nor present",
				    target_dir(t), op->path, hex);
			missing++;
			continue;
		}
		if (op->type == MANIFEST_FILE && op->src != SRC_STAGED_LINK)
			*copy_bytes += op->size;
	}
	if (sfd != -1)
		close(sfd);
	return missing;
}

/* Opens the source of a P op read-only. */
static int
open_source(struct target *t, const struct op *op)
{
	char hex[HASH_HEX_LEN + 1];

	switch (op->src) {
	case SRC_STAGED_LINK:
	case SRC_STAGED_COPY:
		hash_to_hex(op->hash, hex);
		return stage_object_open(t, op->hash);
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

/* Makes prep/N for a P op: written, mode, owner; fsynced later in one go. */
static int
prepare_one(struct target *t, int prepfd, const struct op *op)
{
	char name[32], hex[HASH_HEX_LEN + 1], *link = NULL;
	int in = -1, out = -1, r = DS_ERR_SYSTEM, stfd;

	snprintf(name, sizeof(name), "%zu", op->prep);
	hash_to_hex(op->hash, hex);
	if (op->type == MANIFEST_SYMLINK) {
		if (symlink_target(t, op, &link) == -1) {
			log_errno("%s: target of symlink '%s'", target_dir(t), op->path);
			goto out;
		}
		fault_point("prepare-symlink");
		if (symlinkat(link, prepfd, name) == -1) {
			r = errno == ENOSPC ? DS_ERR_NOSPACE : DS_ERR_SYSTEM;
			log_errno("%s/prep/%s", target_state_dir(t), name);
			goto out;
		}
		set_owner(prepfd, name, op->uid, op->gid);
		r = 0;
		goto out;
	}
	if (op->src == SRC_STAGED_LINK) {
		stfd = openat(target_state_fd(t), "staging", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		fault_point("prepare-link");
		if (stfd != -1 && linkat(stfd, hex, prepfd, name, 0) == 0) {
			close(stfd);
			fault_point("prepare-link-done");
			if (fchmodat(prepfd, name, op->mode, 0) == -1) {
				log_errno("%s/prep/%s", target_state_dir(t), name);
				goto out;
			}
			set_owner(prepfd, name, op->uid, op->gid);
			r = 0;
			goto out;
		}
		if (stfd != -1)
			close(stfd);
		/* No hard link here (e.g. protected_hardlinks): copy instead. */
	}
	if ((in = open_source(t, op)) == -1) {
		log_errno("%s: source of '%s'", target_dir(t), op->path);
		goto out;
	}
	fault_point("prepare-copy-open");
	out = openat(prepfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (out == -1 || copy_fd(in, out) == -1) {
		r = errno == ENOSPC ? DS_ERR_NOSPACE : DS_ERR_SYSTEM;
		log_errno("%s/prep/%s (for '%s')", target_state_dir(t), name, op->path);
		goto out;
	}
	fault_point("prepare-copy-written");
	fault_point("prepare-copy-chmod");
	if (fchmod(out, op->mode) == -1) {
		log_errno("%s/prep/%s", target_state_dir(t), name);
		goto out;
	}
	if (op->uid != -1 || op->gid != -1) {
		if (fchown(out, (uid_t)op->uid, (gid_t)op->gid) == -1)
			log_warn("%s: chown %ld:%ld: %s", op->path, op->uid, op->gid,
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
	free(link);
	return r;
}

/* Saves old content of a replaced path as backup/FROM/objects/HEX (a hard link when possible). */
static int
backup_one(struct target *t, int objfd, const struct op *op)
{
	char hex[HASH_HEX_LEN + 1];
	const char *base;
	struct stat st;
	int pfd, in = -1, out = -1, r = DS_ERR_SYSTEM;
	char buf[PATH_MAX_LEN + 1];
	ssize_t n;

	hash_to_hex(op->hash, hex);
	if (fstatat(objfd, hex, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if ((pfd = path_open_parent(target_root_fd(t), op->path, 0, &base)) == -1) {
		log_errno("%s/%s", target_dir(t), op->path);
		return DS_ERR_SYSTEM;
	}
	fault_point("backup-one");
	if (op->type == MANIFEST_SYMLINK) {
		fault_point("backup-symlink");
		if ((n = readlinkat(pfd, base, buf, sizeof(buf) - 1)) == -1)
			goto fail;
		out = openat(objfd, "tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (out == -1 || fileio_write_all(out, buf, (size_t)n) == -1 || fsync(out) == -1 ||
		    renameat(objfd, "tmp", objfd, hex) == -1)
			goto fail;
	} else if (linkat(pfd, base, objfd, hex, 0) == -1) {
		if (errno == EEXIST)
			goto done;
		fault_point("backup-copy");
		if ((in = openat(pfd, base, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
			goto fail;
		out = openat(objfd, "tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (out == -1 || copy_fd(in, out) == -1 || fsync(out) == -1 ||
		    renameat(objfd, "tmp", objfd, hex) == -1)
			goto fail;
	}
done:
	r = 0;
	goto out;
fail:
	r = errno == ENOSPC ? DS_ERR_NOSPACE : DS_ERR_SYSTEM;
	log_errno("backup of %s/%s", target_dir(t), op->path);
out:
	if (in != -1)
		close(in);
	if (out != -1)
		close(out);
	close(pfd);
	return r;
}

static int
resolve_owner(const char *owner, const char *group, long *uid, long *gid)
{
	struct passwd *pw;
	struct group *gr;

	*uid = *gid = -1;
	if (owner != NULL && *owner != '\0') {
		if ((pw = getpwnam(owner)) == NULL) {
			log_error("owner '%s': no such user", owner);
			return DS_ERR_CONFIG;
		}
		*uid = (long)pw->pw_uid;
	}
	if (group != NULL && *group != '\0') {
		if ((gr = getgrnam(group)) == NULL) {
			log_error("group '%s': no such group", group);
			return DS_ERR_CONFIG;
		}
		*gid = (long)gr->gr_gid;
	}
	return 0;
}

static char **
strv_empty(void)
{
	return xcalloc(1, sizeof(char *));
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
	struct manifest *cur = NULL, *scan = NULL;
	struct planner pl;
	struct plan plan;
	struct tree_index ix = { NULL, 0 };
	char *journal = NULL, *objdir = NULL, *file = NULL;
	size_t len, missing, nprep = 0;
	uint64_t copy_bytes = 0;
	int prepfd = -1, objfd = -1, sfd = target_state_fd(t), ret;

	memset(r, 0, sizeof(*r));
	memset(&plan, 0, sizeof(plan));
	memset(&pl, 0, sizeof(pl));
	r->to_release = xstrdup(to_id);
	if (commit_state_id_check(to_id) != 0) {
		log_error("'%s' is not a valid release id", to_id);
		ret = DS_ERR_INVALID;
		goto out;
	}
	pl.t = t;
	pl.plan = &plan;
	pl.r = r;
	if ((ret = resolve_owner(o->owner, o->group, &pl.uid, &pl.gid)) != 0)
		goto out;
	fault_point("apply-start");
	if ((ret = target_current(t, &r->from_release, &cur)) != 0)
		goto out;
	fault_point("apply-verify");
	if ((ret = target_verify(t, &scan, &r->drifted_paths)) != 0)
		goto out;
	if (r->drifted_paths[0] != NULL) {
		size_t n = 0;
		const char *what = r->from_release != NULL ? "changed since the last apply" :
		    "found before the first apply";
		while (r->drifted_paths[n] != NULL)
			n++;
		if (o->fail_on_drift) {
			log_error("%s: %zu path(s) %s (first: %s); refusing (--fail-on-drift)",
			    target_dir(t), n, what, r->drifted_paths[0]);
			ret = DS_ERR_DRIFT;
			goto out;
		}
		if (r->from_release != NULL)
			log_warn("%s: %zu path(s) %s will be overwritten (first: %s)",
			    target_dir(t), n, what, r->drifted_paths[0]);
		else
			log_info("%s: %zu path(s) %s; what the release replaces is kept in "
			    "backup/%s/ for a rollback", target_dir(t), n, what, COMMIT_ID_FOUND);
	}
	/*
	 * A first apply replaces the tree as found: that is the state to back up
	 * and to roll back to, named by an id no release can have.
	 */
	if (r->from_release != NULL)
		plan.from = xstrdup(r->from_release);
	else
		plan.from = xstrdup(scan->count > 0 ? COMMIT_ID_FOUND : COMMIT_ID_EMPTY);
	plan.to = xstrdup(to_id);
	plan.keep = o->keep_backups != 0 ? o->keep_backups : CONFIG_KEEP_BACKUPS_DEFAULT;
	if ((ret = manifest_diff(scan, to, plan_change, &pl)) != 0)
		goto out;
	r->changed_paths = pl.changed != NULL ? pl.changed : strv_empty();
	pl.changed = NULL;
	r->unchanged = to->count - r->added - r->updated - r->mode_changed;
	if (plan.count > 1)
		qsort(plan.ops, plan.count, sizeof(*plan.ops), op_order);
	for (size_t i = 0; i < plan.count; i++) {
		if (plan.ops[i].kind == 'P') {
			plan.ops[i].prep = nprep++;
			if (plan.ops[i].type == MANIFEST_FILE)
				r->bytes += plan.ops[i].size;
		}
	}
	if (plan.count == 0 && r->from_release != NULL && strcmp(r->from_release, to_id) == 0) {
		r->noop = 1;
		if (!o->dry_run)
			stage_clear(t);
		ret = 0;
		goto out;
	}
	tree_index_build(&ix, scan);
	fault_point("apply-planned");
	missing = resolve_sources(t, &plan, &ix, use_backups, !o->dry_run, &copy_bytes);
	r->bytes_copied = copy_bytes;
	if (o->dry_run) {
		ret = 0;
		goto out;
	}
	if (missing > 0) {
		log_error("%s: %zu object(s) missing; nothing was changed", target_dir(t), missing);
		ret = DS_ERR_NOTFOUND;
		goto out;
	}
	/* Copies, the new manifest and the journal are all the new space an apply takes. */
	if ((ret = stage_check_space(t, copy_bytes + (uint64_t)to->count * 160)) != 0)
		goto out;

	/* Prepare: nothing below touches the tree until the journal is in place. */
	fault_point("prepare-start");
	if (path_remove_tree_at(sfd, "prep") == -1 || mkdirat(sfd, "prep", 0700) == -1 ||
	    (prepfd = openat(sfd, "prep", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		log_errno("%s/prep", target_state_dir(t));
		ret = DS_ERR_SYSTEM;
		goto out;
	}
	for (size_t i = 0; i < plan.count; i++) {
		if (plan.ops[i].kind != 'P')
			continue;
		if ((ret = prepare_one(t, prepfd, &plan.ops[i])) != 0)
			goto out;
	}
	fault_point("prepare-files-done");
	objdir = xasprintf("backup/%s/objects", plan.from);
	file = xasprintf("%s/backup/%s", target_state_dir(t), plan.from);
	if (path_mkdirs(file) == -1 || (mkdirat(sfd, objdir, 0755) == -1 && errno != EEXIST) ||
	    (objfd = openat(sfd, objdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		log_errno("%s/%s", target_state_dir(t), objdir);
		ret = DS_ERR_SYSTEM;
		goto out;
	}
	/* Touch the set: pruning keeps the newest. */
	utimensat(sfd, file + strlen(target_state_dir(t)) + 1, NULL, 0);
	free(file);
	file = xasprintf("%s/backup/%s/manifest", target_state_dir(t), plan.from);
	/* The tree as found changes between first applies that did not commit. */
	if (r->from_release == NULL) {
		if ((ret = manifest_save(scan, file)) != 0)
			goto out;
	} else if (access(file, F_OK) == -1 && (ret = manifest_save(cur, file)) != 0)
		goto out;
	/*
	 * Drift is part of the state this apply replaces: the tree as found is
	 * what a rollback restores (its content is backed up below), while the
	 * state stays FROM, so verify reports the same drift again afterwards.
	 */
	free(file);
	file = xasprintf("%s/backup/%s/" FOUND_MANIFEST, target_state_dir(t), plan.from);
	if (r->from_release != NULL && r->drifted_paths[0] != NULL) {
		if ((ret = manifest_save(scan, file)) != 0)
			goto out;
	} else if (unlink(file) == -1 && errno != ENOENT) {
		log_errno("%s", file);
		ret = DS_ERR_SYSTEM;
		goto out;
	}
	fault_point("prepare-backup-manifest");
	for (size_t i = 0; i < plan.count; i++) {
		if (plan.ops[i].kind != 'B')
			continue;
		if ((ret = backup_one(t, objfd, &plan.ops[i])) != 0)
			goto out;
	}
	fault_point("prepare-backups-done");
	free(file);
	file = xasprintf("%s/prep/manifest", target_state_dir(t));
	if ((ret = manifest_save(state != NULL ? state : to, file)) != 0)
		goto out;
	if (state != NULL && state != to) {
		free(file);
		file = xasprintf("%s/prep/" TREE_MANIFEST, target_state_dir(t));
		if ((ret = manifest_save(to, file)) != 0)
			goto out;
	}
	fault_point("prepare-manifest-saved");
#ifdef HAVE_SYNCFS
	/* One flush for every prepared file instead of one fsync each. */
	if (syncfs(sfd) == -1) {
		log_errno("%s: syncfs", target_state_dir(t));
		ret = DS_ERR_SYSTEM;
		goto out;
	}
#endif
	fault_point("prepare-syncfs-done");
	if (fsync_dirfd(prepfd, "prep") != 0 || (objfd != -1 && fsync_dirfd(objfd, objdir) != 0)) {
		ret = DS_ERR_SYSTEM;
		goto out;
	}
	fault_point("prepare-synced");

	/* The commit point: a complete, durable journal. */
	journal = journal_encode(&plan, &len);
	if ((ret = write_atomic_at(sfd, target_state_dir(t), "journal", journal, len)) != 0)
		goto out;
	fault_point("journal-renamed");
	if ((ret = fsync_dirfd(sfd, target_state_dir(t))) != 0)
		goto out;
	fault_point("journal-committed");
	ret = replay(t);
out:
	if (pl.changed != NULL)
		xfree_strv(pl.changed);
	if (ret != 0 && !o->dry_run && prepfd != -1) {
		struct stat st;
		/* Failed before the commit point: the tree is untouched; drop what was prepared. */
		if (fstatat(sfd, "journal", &st, AT_SYMLINK_NOFOLLOW) == -1)
			path_remove_tree_at(sfd, "prep");
	}
	if (prepfd != -1)
		close(prepfd);
	if (objfd != -1)
		close(objfd);
	free(ix.refs);
	free(journal);
	free(objdir);
	free(file);
	plan_release(&plan);
	manifest_free(cur);
	manifest_free(scan);
	if (r->changed_paths == NULL)
		r->changed_paths = strv_empty();
	if (r->drifted_paths == NULL)
		r->drifted_paths = strv_empty();
	return ret;
}

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

int
commit_rollback(struct target *t, const struct commit_opts *o, struct commit_report *r)
{
	struct manifest *m = NULL, *found = NULL;
	char *prev = NULL, *file = NULL;
	int ret;

	memset(r, 0, sizeof(*r));
	if ((ret = target_read_id(t, "previous.id", &prev)) != 0)
		goto out;
	if (prev == NULL || commit_state_id_check(prev) != 0) {
		log_error("%s: no previous release to roll back to", target_dir(t));
		ret = DS_ERR_NOTFOUND;
		goto out;
	}
	file = xasprintf("%s/backup/%s/manifest", target_state_dir(t), prev);
	if (access(file, F_OK) == -1) {
		log_error("%s: the backup of release %s is gone (keep_backups)", target_dir(t), prev);
		ret = DS_ERR_NOTFOUND;
		goto out;
	}
	if ((ret = manifest_load(file, &m)) != 0)
		goto out;
	free(file);
	file = xasprintf("%s/backup/%s/" FOUND_MANIFEST, target_state_dir(t), prev);
	if (access(file, F_OK) == 0) {
		if ((ret = manifest_load(file, &found)) != 0)
			goto out;
		log_info("%s: release %s had drifted when it was replaced; restoring the "
		    "tree as it was then", target_dir(t), prev);
	}
	if (strcmp(prev, COMMIT_ID_FOUND) == 0)
		log_info("%s: rolling back to the files found before distsync's first apply",
		    target_dir(t));
	else if (strcmp(prev, COMMIT_ID_EMPTY) == 0)
		log_info("%s: rolling back to the empty target found before distsync's first "
		    "apply", target_dir(t));
	ret = found != NULL ? apply(t, o, found, m, prev, 1, r) : apply(t, o, m, NULL, prev, 1, r);
out:
	if (r->changed_paths == NULL)
		r->changed_paths = strv_empty();
	if (r->drifted_paths == NULL)
		r->drifted_paths = strv_empty();
	manifest_free(m);
	manifest_free(found);
	free(prev);
	free(file);
	return ret;
}

int
commit_missing(struct target *t, const struct manifest *to, uint8_t (**missing)[HASH_LEN],
    size_t *count)
{
	struct commit_opts o;
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
	memset(&o, 0, sizeof(o));
	memset(&r, 0, sizeof(r));
	memset(&plan, 0, sizeof(plan));
	memset(&pl, 0, sizeof(pl));
	pl.t = t;
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
		if (plan.ops[i].kind != 'P' || plan.ops[i].src != SRC_NONE)
			continue;
		for (size_t j = 0; j < n && !dup; j++)
			dup = memcmp(list[j], plan.ops[i].hash, HASH_LEN) == 0;
		if (dup)
			continue;
		list = xgrow(list, &alloc, n + 1, sizeof(*list));
		memcpy(list[n++], plan.ops[i].hash, HASH_LEN);
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

int
commit_history_write(struct target *t, const char *action, const struct commit_report *r,
    const char *restarted, int result)
{
	char stamp[64], *line;
	time_t now = time(NULL);
	struct tm tm;
	size_t drifted = 0;
	int fd, ret = 0;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (r != NULL && r->drifted_paths != NULL)
		while (r->drifted_paths[drifted] != NULL)
			drifted++;
	if (r != NULL)
		line = xasprintf("%s %s from=%s to=%s added=%zu updated=%zu deleted=%zu mode=%zu "
		    "bytes=%" PRIu64 " drifted=%zu restarted=%s result=%s\n", stamp, action,
		    r->from_release != NULL ? r->from_release : "-",
		    r->to_release != NULL ? r->to_release : "-", r->added, r->updated, r->deleted,
		    r->mode_changed, r->bytes, drifted,
		    restarted != NULL && *restarted != '\0' ? restarted : "-",
		    result == 0 ? "ok" : ds_strerror(result));
	else
		line = xasprintf("%s %s restarted=%s result=%s\n", stamp, action,
		    restarted != NULL && *restarted != '\0' ? restarted : "-",
		    result == 0 ? "ok" : ds_strerror(result));
	/* Keep each record one line whatever the error text holds. */
	for (char *p = line; p[0] != '\0' && p[1] != '\0'; p++)
		if (*p == '\n')
			*p = ' ';
	fd = openat(target_state_fd(t), "history.log",
	    O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd == -1 || fileio_write_all(fd, line, strlen(line)) == -1 || fsync(fd) == -1) {
		log_errno("%s/history.log", target_state_dir(t));
		ret = DS_ERR_SYSTEM;
	}
	if (fd != -1)
		close(fd);
	free(line);
	return ret;
}
