#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>

#include "base/err.h"
#include "base/fileio.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/path.h"
#include "base/xmalloc.h"
#include "repo/manifest.h"
#include "repo/store.h"

struct store {
	char	*dir;
	int	 dirfd;
	unsigned tmp_seq;
};

static const char *const store_subdirs[] = { "objects", "releases", "deltas", "tmp", NULL };

int
store_open(const char *dir, int create, struct store **out)
{
	struct store *s;
	struct stat st;

	*out = NULL;
	if (stat(dir, &st) == -1) {
		if (errno != ENOENT || !create) {
			log_error("%s: no store here (a repository makes it with 'distsync keys init', "
			    "when it signs, or 'distsync release')", dir);
			return DS_ERR_NOTFOUND;
		}
	}
	if (create) {
		for (size_t i = 0; store_subdirs[i] != NULL; i++) {
			char *p = path_join(dir, store_subdirs[i]);
			if (path_mkdirs(p) == -1) {
				log_errno("%s", p);
				free(p);
				return DS_ERR_SYSTEM;
			}
			free(p);
		}
	}
	s = xcalloc(1, sizeof(*s));
	s->dir = xstrdup(dir);
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd == -1) {
		log_errno("%s", dir);
		store_free(s);
		return DS_ERR_SYSTEM;
	}
	/*
	 * deltas/ is a cache and tmp/ scratch: an admin may clear either, so
	 * they are made again (a store that cannot be written goes on without:
	 * dcache.c says so once and encodes for the session only).
	 */
	if (mkdirat(s->dirfd, "deltas", 0755) == 0)
		log_info("%s/deltas: the delta cache was missing: made again", dir);
	(void)mkdirat(s->dirfd, "tmp", 0755);
	*out = s;
	return 0;
}

void
store_free(struct store *s)
{
	if (s == NULL)
		return;
	if (s->dirfd != -1)
		close(s->dirfd);
	free(s->dir);
	free(s);
}

const char *
store_dir(const struct store *s)
{
	return s->dir;
}

/* "objects/ab/cdef..." relative to the store. */
static void
object_rel(const uint8_t hash[HASH_LEN], char rel[8 + 3 + HASH_HEX_LEN + 1])
{
	char hex[HASH_HEX_LEN + 1];

	hash_to_hex(hash, hex);
	snprintf(rel, 8 + 3 + HASH_HEX_LEN + 1, "objects/%.2s/%s", hex, hex + 2);
}

int
store_has(const struct store *s, const uint8_t hash[HASH_LEN])
{
	char rel[8 + 3 + HASH_HEX_LEN + 1];

	object_rel(hash, rel);
	return faccessat(s->dirfd, rel, F_OK, 0) == 0;
}

char *
store_object_path(const struct store *s, const uint8_t hash[HASH_LEN])
{
	char rel[8 + 3 + HASH_HEX_LEN + 1];

	object_rel(hash, rel);
	return path_join(s->dir, rel);
}

int
store_object_open(const struct store *s, const uint8_t hash[HASH_LEN])
{
	char rel[8 + 3 + HASH_HEX_LEN + 1];

	object_rel(hash, rel);
	return openat(s->dirfd, rel, O_RDONLY | O_CLOEXEC);
}

char *
store_tmp_path(const struct store *s, const char *hint)
{
	struct store *mut = (struct store *)s;

	return xasprintf("%s/tmp/%s.%ld.%u", s->dir, hint ? hint : "tmp", (long)getpid(),
	    mut->tmp_seq++);
}

/* Moves a finished temp file into place as object HASH, read-only. */
static int
object_install(struct store *s, const char *tmp, const uint8_t hash[HASH_LEN])
{
	char rel[8 + 3 + HASH_HEX_LEN + 1], *dst, *dir;
	int r = 0;

	object_rel(hash, rel);
	dst = path_join(s->dir, rel);
	dir = path_dirname(dst);
	if (chmod(tmp, 0444) == -1 || (mkdir(dir, 0755) == -1 && errno != EEXIST) ||
	    rename(tmp, dst) == -1) {
		log_errno("store object %s", dst);
		unlink(tmp);
		r = DS_ERR_SYSTEM;
	}
	free(dst);
	free(dir);
	return r;
}

int
store_add_file(struct store *s, const char *path, const uint8_t hash[HASH_LEN])
{
	uint8_t got[HASH_LEN];
	char *tmp = NULL;
	int in = -1, out = -1, r = DS_ERR_SYSTEM;
	uint64_t size;

	if (store_has(s, hash))
		return 0;
	tmp = store_tmp_path(s, "object");
	if ((in = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		log_errno("%s", path);
		goto out;
	}
	if ((out = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) == -1) {
		log_errno("%s", tmp);
		goto out;
	}
	/*
	 * A reflink shares blocks copy-on-write, never an inode, so editing the
	 * source cannot change history. Either way the stored copy is hashed.
	 */
	if (ioctl(out, FICLONE, in) == 0) {
		if (lseek(out, 0, SEEK_SET) == -1 || hash_fd(out, got, &size) != 0) {
			log_errno("%s", tmp);
			goto out;
		}
	} else {
		struct hash_ctx *ctx = hash_ctx_new();
		char *buf = xmalloc(256 * 1024);
		ssize_t n;

		size = 0;
		for (;;) {
			n = read(in, buf, 256 * 1024);
			if (n == -1 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			hash_ctx_update(ctx, buf, n);
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(out, buf + off, n - off);
				if (w == -1 && errno == EINTR)
					continue;
				if (w == -1) {
					log_errno("%s", tmp);
					hash_ctx_free(ctx);
					free(buf);
					goto out;
				}
				off += w;
			}
			size += n;
		}
		hash_ctx_final(ctx, got);
		hash_ctx_free(ctx);
		free(buf);
		if (n == -1) {
			log_errno("%s", path);
			goto out;
		}
	}
	if (memcmp(got, hash, HASH_LEN) != 0) {
		log_error("%s: changed while the release was being cut; run it again", path);
		r = DS_ERR_CORRUPT;
		goto out;
	}
	close(out);
	out = -1;
	r = object_install(s, tmp, hash);
	free(tmp);
	tmp = NULL;
out:
	if (in != -1)
		close(in);
	if (out != -1)
		close(out);
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	return r;
}

int
store_add_bytes(struct store *s, const void *data, size_t len, uint8_t hash_out[HASH_LEN])
{
	char *tmp;
	int fd, r;

	hash_bytes(data, len, hash_out);
	if (store_has(s, hash_out))
		return 0;
	tmp = store_tmp_path(s, "bytes");
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1 || write(fd, data, len) != (ssize_t)len || close(fd) == -1) {
		log_errno("%s", tmp);
		if (fd != -1)
			unlink(tmp);
		free(tmp);
		return DS_ERR_SYSTEM;
	}
	r = object_install(s, tmp, hash_out);
	free(tmp);
	return r;
}

int
store_sync(struct store *s)
{
#ifdef HAVE_SYNCFS
	if (syncfs(s->dirfd) == -1) {
		log_errno("sync %s", s->dir);
		return DS_ERR_SYSTEM;
	}
#else
	sync();
#endif
	return 0;
}

int
store_release_id_check(const char *id)
{
	size_t len = strlen(id);

	if (len == 0 || len > 128 || strcmp(id, ".") == 0 || strcmp(id, "..") == 0 ||
	    strcmp(id, "LATEST") == 0 || strcmp(id, "ORDER") == 0)
		return DS_ERR_INVALID;
	for (const char *p = id; *p != '\0'; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '+' || *p == '-'))
			return DS_ERR_INVALID;
	return 0;
}

static char *
release_file(const struct store *s, const char *id)
{
	return xasprintf("%s/releases/%s.manifest", s->dir, id);
}

/* Rewrites a small file atomically. */
static int
write_small(const char *file, const char *data)
{
	if (fileio_write_atomic(file, data, strlen(data)) == -1) {
		log_errno("%s", file);
		return DS_ERR_SYSTEM;
	}
	return 0;
}

int
store_release_save(struct store *s, const char *id, const struct manifest *m)
{
	char *file = release_file(s, id), *order = NULL, *latest = NULL, *line = NULL;
	char **ids = NULL;
	size_t n = 0;
	int r;

	if (store_release_id_check(id) != 0) {
		log_error("'%s' cannot name a release: use letters, digits, '.', '_', '+' and '-'", id);
		r = DS_ERR_USAGE;
		goto out;
	}
	if (access(file, F_OK) == 0) {
		log_error("release %s already exists; releases are immutable (pick another --version)", id);
		r = DS_ERR_PRECONDITION;
		goto out;
	}
	if ((r = manifest_save(m, file)) != 0)
		goto out;
	/* ORDER is rewritten whole so a crash leaves the old or the new list. */
	if ((r = store_release_list(s, &ids, &n)) != 0)
		goto out;
	{
		size_t total = strlen(id) + 2;
		for (size_t i = 0; i < n; i++)
			total += strlen(ids[i]) + 1;
		line = xmalloc(total);
		line[0] = '\0';
		size_t off = 0;
		for (size_t i = 0; i < n; i++)
			off += snprintf(line + off, total - off, "%s\n", ids[i]);
		snprintf(line + off, total - off, "%s\n", id);
	}
	order = xasprintf("%s/releases/ORDER", s->dir);
	latest = xasprintf("%s/releases/LATEST", s->dir);
	if ((r = write_small(order, line)) != 0)
		goto out;
	free(line);
	line = xasprintf("%s\n", id);
	r = write_small(latest, line);
out:
	xfree_strv(ids);
	free(file);
	free(order);
	free(latest);
	free(line);
	return r;
}

int
store_release_load(const struct store *s, const char *id, struct manifest **out)
{
	char *file;
	int r;

	*out = NULL;
	if (store_release_id_check(id) != 0) {
		log_error("'%s' is not a release id", id);
		return DS_ERR_NOTFOUND;
	}
	file = release_file(s, id);
	if (access(file, F_OK) != 0) {
		log_error("no release '%s' in %s (see 'distsync releases')", id, s->dir);
		free(file);
		return DS_ERR_NOTFOUND;
	}
	r = manifest_load(file, out);
	free(file);
	return r;
}

int
store_release_list(const struct store *s, char ***ids, size_t *count)
{
	char *order = xasprintf("%s/releases/ORDER", s->dir);
	FILE *fp = fopen(order, "r");
	char *line = NULL, **v = NULL;
	size_t cap = 0, n = 0, alloc = 0;
	ssize_t len;

	free(order);
	v = xcalloc(1, sizeof(*v));
	if (fp != NULL) {
		while ((len = getline(&line, &cap, fp)) > 0) {
			if (line[len - 1] == '\n')
				line[--len] = '\0';
			if (store_release_id_check(line) != 0)
				continue;
			v = xgrow(v, &alloc, n + 2, sizeof(*v));
			v[n++] = xstrdup(line);
			v[n] = NULL;
		}
		fclose(fp);
	}
	free(line);
	*ids = v;
	*count = n;
	return 0;
}

/* Loads release ID when it exists and its manifest has DIGEST; else *m is NULL. */
static void
release_if_digest(const struct store *s, const char *id, const uint8_t digest[HASH_LEN],
    struct manifest **m)
{
	uint8_t d[HASH_LEN];
	char *file;

	*m = NULL;
	if (store_release_id_check(id) != 0)
		return;
	file = release_file(s, id);
	if (access(file, F_OK) == 0 && manifest_load(file, m) == 0) {
		manifest_digest(*m, d);
		if (memcmp(d, digest, HASH_LEN) != 0) {
			manifest_free(*m);
			*m = NULL;
		}
	}
	free(file);
}

int
store_release_find(const struct store *s, const char *hint, const uint8_t digest[HASH_LEN],
    char **id, struct manifest **m)
{
	struct manifest *found = NULL;
	char **ids = NULL;
	size_t count = 0;
	int r;

	*id = NULL;
	if (m != NULL)
		*m = NULL;
	if (hint != NULL && hint[0] != '\0')
		release_if_digest(s, hint, digest, &found);
	if (found != NULL)
		*id = xstrdup(hint);
	else {
		if ((r = store_release_list(s, &ids, &count)) != 0)
			return r;
		for (size_t i = count; i-- > 0 && found == NULL;) {
			release_if_digest(s, ids[i], digest, &found);
			if (found != NULL)
				*id = xstrdup(ids[i]);
		}
		xfree_strv(ids);
	}
	if (m != NULL)
		*m = found;
	else
		manifest_free(found);
	return 0;
}

int
store_release_latest(const struct store *s, char **id)
{
	char **ids;
	size_t n;

	*id = NULL;
	store_release_list(s, &ids, &n);
	if (n == 0) {
		xfree_strv(ids);
		log_error("no release in %s yet: run 'distsync release'", s->dir);
		return DS_ERR_NOTFOUND;
	}
	*id = xstrdup(ids[n - 1]);
	xfree_strv(ids);
	return 0;
}

/* Sorted list of referenced hashes for prune. */
static int
hash_cmp(const void *a, const void *b)
{
	return memcmp(a, b, HASH_LEN);
}

/* Whether hash is in the sorted refs. */
static int
referenced(const uint8_t hash[HASH_LEN], uint8_t (*refs)[HASH_LEN], size_t nrefs)
{
	return nrefs > 0 && bsearch(hash, refs, nrefs, HASH_LEN, hash_cmp) != NULL;
}

/*
 * Removes deltas/BASIS-TARGET.ENC (BASIS "none" for whole-file encodings)
 * whose target no kept release holds, or whose basis the store no longer
 * has (rsync entries, which no version caches any more, go with
 * dcache_tidy).
 * Temp files (a push encoding now) and names of other shapes are left alone.
 */
static size_t
prune_deltas(const struct store *s, uint8_t (*refs)[HASH_LEN], size_t nrefs)
{
	char *dir = xasprintf("%s/deltas", s->dir);
	uint8_t basis[HASH_LEN], target[HASH_LEN];
	size_t removed = 0;
	DIR *d;

	if ((d = opendir(dir)) == NULL) {
		free(dir);
		return 0;
	}
	for (struct dirent *de; (de = readdir(d)) != NULL;) {
		const char *name = de->d_name, *dash = strchr(name, '-'), *enc;
		int has_basis;

		if (dash == NULL || strlen(dash + 1) <= HASH_HEX_LEN ||
		    dash[1 + HASH_HEX_LEN] != '.')
			continue;
		enc = dash + 2 + HASH_HEX_LEN;
		if (strchr(enc, '.') != NULL)
			continue;	/* BASIS-TARGET.ENC.PID.N.tmp: being written */
		has_basis = dash - name == HASH_HEX_LEN;
		if ((!has_basis && (dash - name != 4 || strncmp(name, "none", 4) != 0)) ||
		    (has_basis && hash_from_hex(name, HASH_HEX_LEN, basis) != 0) ||
		    hash_from_hex(dash + 1, HASH_HEX_LEN, target) != 0)
			continue;
		if (referenced(target, refs, nrefs) && (!has_basis || strcmp(enc, "rsync") == 0 ||
		    referenced(basis, refs, nrefs)))
			continue;
		if (unlinkat(dirfd(d), name, 0) == 0)
			removed++;
	}
	closedir(d);
	free(dir);
	return removed;
}

int
store_prune(struct store *s, unsigned keep, size_t *releases_removed, size_t *objects_removed,
    size_t *deltas_removed)
{
	char **ids = NULL;
	size_t n, first, nrefs = 0, alloc = 0, robj = 0, rrel = 0, rdel = 0;
	uint8_t (*refs)[HASH_LEN] = NULL;
	char *objdir = NULL;
	DIR *top = NULL;
	int r = 0;

	store_release_list(s, &ids, &n);
	if (keep == 0)
		keep = 1;
	first = n > keep ? n - keep : 0;
	for (size_t i = first; i < n; i++) {
		struct manifest *m;
		if ((r = store_release_load(s, ids[i], &m)) != 0)
			goto out;
		for (size_t k = 0; k < m->count; k++) {
			if (m->entries[k].type == MANIFEST_DIR)
				continue;
			refs = xgrow(refs, &alloc, nrefs + 1, sizeof(*refs));
			memcpy(refs[nrefs++], m->entries[k].hash, HASH_LEN);
		}
		manifest_free(m);
	}
	if (nrefs > 1)
		qsort(refs, nrefs, HASH_LEN, hash_cmp);
	if (first > 0) {
		/* Rewrite ORDER first: a crash then leaves unreferenced files, never a dangling id. */
		size_t total = 1;
		char *text, *order = xasprintf("%s/releases/ORDER", s->dir);
		for (size_t i = first; i < n; i++)
			total += strlen(ids[i]) + 1;
		text = xmalloc(total);
		text[0] = '\0';
		for (size_t i = first, off = 0; i < n; i++)
			off += snprintf(text + off, total - off, "%s\n", ids[i]);
		r = write_small(order, text);
		free(text);
		free(order);
		if (r != 0)
			goto out;
		for (size_t i = 0; i < first; i++) {
			char *file = release_file(s, ids[i]);
			char *signed_doc = xasprintf("%s/releases/%s.release", s->dir, ids[i]);

			if (unlink(file) == 0)
				rrel++;
			(void)unlink(signed_doc);	/* absent for an unsigned release */
			free(signed_doc);
			free(file);
		}
	}
	objdir = xasprintf("%s/objects", s->dir);
	if ((top = opendir(objdir)) == NULL)
		goto out;
	for (struct dirent *de; (de = readdir(top)) != NULL;) {
		char *sub;
		DIR *d;

		if (strlen(de->d_name) != 2)
			continue;
		sub = xasprintf("%s/%s", objdir, de->d_name);
		if ((d = opendir(sub)) != NULL) {
			for (struct dirent *oe; (oe = readdir(d)) != NULL;) {
				char hex[HASH_HEX_LEN + 1];
				uint8_t h[HASH_LEN];
				if (strlen(oe->d_name) != HASH_HEX_LEN - 2)
					continue;
				snprintf(hex, sizeof(hex), "%s%s", de->d_name, oe->d_name);
				if (hash_from_hex(hex, HASH_HEX_LEN, h) != 0)
					continue;
				if (!referenced(h, refs, nrefs) &&
				    unlinkat(dirfd(d), oe->d_name, 0) == 0)
					robj++;
			}
			closedir(d);
		}
		free(sub);
	}
	closedir(top);
	rdel = prune_deltas(s, refs, nrefs);
out:
	if (releases_removed != NULL)
		*releases_removed = rrel;
	if (objects_removed != NULL)
		*objects_removed = robj;
	if (deltas_removed != NULL)
		*deltas_removed = rdel;
	free(objdir);
	free(refs);
	xfree_strv(ids);
	return r;
}

char *
store_delta_path(const struct store *s, const uint8_t *basis, const uint8_t target[HASH_LEN],
    const char *encoding)
{
	char bhex[HASH_HEX_LEN + 1], thex[HASH_HEX_LEN + 1];

	hash_to_hex(target, thex);
	if (basis == NULL)
		return xasprintf("%s/deltas/none-%s.%s", s->dir, thex, encoding);
	hash_to_hex(basis, bhex);
	return xasprintf("%s/deltas/%s-%s.%s", s->dir, bhex, thex, encoding);
}
