#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fileio.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/path.h"
#include "base/xmalloc.h"
#include "repo/manifest.h"

#define MANIFEST_HEADER		"distsync-manifest 1\n"
#define STATCACHE_HEADER	"distsync-statcache 1\n"
#define MANIFEST_MAX_SIZE	((uint64_t)1 << 50)	/* largest file size accepted */

unsigned
manifest_mode_clean(unsigned mode)
{
	return mode & MANIFEST_MODE_BITS;
}

struct manifest *
manifest_new(void)
{
	return xcalloc(1, sizeof(struct manifest));
}

void
manifest_free(struct manifest *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->count; i++) {
		free(m->entries[i].path);
		free(m->entries[i].link);
	}
	free(m->entries);
	free(m);
}

void
manifest_add(struct manifest *m, const struct manifest_entry *e)
{
	struct manifest_entry *n;

	m->entries = xgrow(m->entries, &m->alloc, m->count + 1, sizeof(*m->entries));
	n = &m->entries[m->count++];
	*n = *e;
	n->path = xstrdup(e->path);
	n->link = e->link ? xstrdup(e->link) : NULL;
}

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct manifest_entry *)a)->path,
	    ((const struct manifest_entry *)b)->path);
}

int
manifest_sort(struct manifest *m)
{
	if (m->count > 1)
		qsort(m->entries, m->count, sizeof(*m->entries), entry_cmp);
	for (size_t i = 1; i < m->count; i++) {
		if (strcmp(m->entries[i - 1].path, m->entries[i].path) == 0) {
			log_error("duplicate path in manifest: %s", m->entries[i].path);
			return DS_ERR_INVALID;
		}
	}
	return 0;
}

const struct manifest_entry *
manifest_find(const struct manifest *m, const char *path)
{
	size_t lo = 0, hi;

	if (m == NULL)
		return NULL;
	hi = m->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->entries[mid].path, path);
		if (c == 0)
			return &m->entries[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

uint64_t
manifest_total_size(const struct manifest *m)
{
	uint64_t total = 0;

	for (size_t i = 0; i < m->count; i++)
		if (m->entries[i].type == MANIFEST_FILE)
			total += m->entries[i].size;
	return total;
}

/* A growable output string. */
struct out {
	char	*data;
	size_t	 len, alloc;
};

static void
out_put(struct out *o, const char *s, size_t n)
{
	o->data = xgrow(o->data, &o->alloc, o->len + n + 1, 1);
	memcpy(o->data + o->len, s, n);
	o->len += n;
	o->data[o->len] = '\0';
}

static void
out_escape(struct out *o, const char *s)
{
	static const char digits[] = "0123456789abcdef";

	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '\\')
			out_put(o, "\\\\", 2);
		else if (*p < 0x21 || *p == 0x7f) {
			char esc[4] = { '\\', 'x', digits[*p >> 4], digits[*p & 15] };
			out_put(o, esc, 4);
		} else
			out_put(o, (const char *)p, 1);
	}
}

/* Decodes an escaped path of len bytes; returns NULL on a bad escape. */
static char *
unescape(const char *s, size_t len)
{
	char *out = xmalloc(len + 1);
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];
		if (c < 0x21 || c == 0x7f)
			goto bad;
		if (c != '\\') {
			out[n++] = c;
			continue;
		}
		if (i + 1 < len && s[i + 1] == '\\') {
			out[n++] = '\\';
			i++;
		} else if (i + 3 < len && s[i + 1] == 'x') {
			int v = 0;
			for (int k = 2; k <= 3; k++) {
				char h = s[i + k];
				v <<= 4;
				if (h >= '0' && h <= '9')
					v |= h - '0';
				else if (h >= 'a' && h <= 'f')
					v |= h - 'a' + 10;
				else
					goto bad;
			}
			/* Only what the encoder escapes may be escaped: one canonical form. */
			if (v == 0 || (v >= 0x21 && v != 0x7f))
				goto bad;
			out[n++] = (char)v;
			i += 3;
		} else
			goto bad;
	}
	out[n] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

static void
encode_entry(struct out *o, const struct manifest_entry *e)
{
	char line[128], hex[HASH_HEX_LEN + 1];
	int n;

	hash_to_hex(e->hash, hex);
	n = snprintf(line, sizeof(line), "%c %04o %" PRIu64 " %s ", e->type, e->mode & 07777,
	    e->size, hex);
	out_put(o, line, n);
	out_escape(o, e->path);
	out_put(o, "\n", 1);
}

void
manifest_encode(const struct manifest *m, char **data, size_t *len)
{
	struct out o = { NULL, 0, 0 };

	out_put(&o, MANIFEST_HEADER, strlen(MANIFEST_HEADER));
	for (size_t i = 0; i < m->count; i++)
		encode_entry(&o, &m->entries[i]);
	*data = o.data;
	*len = o.len;
}

void
manifest_digest(const struct manifest *m, uint8_t out[HASH_LEN])
{
	char *data;
	size_t len;

	manifest_encode(m, &data, &len);
	hash_bytes(data, len, out);
	free(data);
}

/* Parses an unsigned decimal field without sign or leading zeros. */
static int
parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (max - (s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Splits the next space-separated field of [*p, end); returns its length or -1. */
static ssize_t
next_field(const char **p, const char *end, const char **field)
{
	const char *s = *p, *sp = memchr(s, ' ', end - s);

	if (sp == NULL)
		return -1;
	*field = s;
	*p = sp + 1;
	return sp - s;
}

int
manifest_decode(const char *data, size_t len, const char *name, struct manifest **out)
{
	struct manifest *m = manifest_new();
	const char *p = data, *end = data + len, *why;
	size_t lineno = 1;
	int r = DS_ERR_INVALID;

	*out = NULL;
	if (len < strlen(MANIFEST_HEADER) || memcmp(data, MANIFEST_HEADER, strlen(MANIFEST_HEADER)) != 0) {
		log_error("%s:1: not a distsync manifest (bad header)", name);
		goto out;
	}
	p += strlen(MANIFEST_HEADER);
	while (p < end) {
		const char *nl = memchr(p, '\n', end - p), *f, *lp;
		struct manifest_entry e = { 0 };
		uint64_t mode, size;
		ssize_t n;

		lineno++;
		why = NULL;
		if (nl == NULL) {
			log_error("%s:%zu: missing final newline", name, lineno);
			goto out;
		}
		if (memchr(p, '\0', nl - p) != NULL) {
			log_error("%s:%zu: NUL byte in line", name, lineno);
			goto out;
		}
		lp = p;
		if ((n = next_field(&lp, nl, &f)) != 1 ||
		    (f[0] != MANIFEST_FILE && f[0] != MANIFEST_DIR && f[0] != MANIFEST_SYMLINK)) {
			log_error("%s:%zu: bad entry type", name, lineno);
			goto out;
		}
		e.type = f[0];
		n = next_field(&lp, nl, &f);
		if (n != 4 || f[0] < '0' || f[0] > '7' || f[1] < '0' || f[1] > '7' ||
		    f[2] < '0' || f[2] > '7' || f[3] < '0' || f[3] > '7') {
			log_error("%s:%zu: bad mode (four octal digits expected)", name, lineno);
			goto out;
		}
		mode = (f[0] - '0') << 9 | (f[1] - '0') << 6 | (f[2] - '0') << 3 | (f[3] - '0');
		if ((n = next_field(&lp, nl, &f)) < 0 || parse_u64(f, n, MANIFEST_MAX_SIZE, &size) != 0) {
			log_error("%s:%zu: bad size", name, lineno);
			goto out;
		}
		if ((n = next_field(&lp, nl, &f)) < 0 || hash_from_hex(f, n, e.hash) != 0) {
			log_error("%s:%zu: bad sha256 (64 lowercase hex digits expected)", name, lineno);
			goto out;
		}
		e.mode = mode;
		e.size = size;
		if (e.type == MANIFEST_DIR && (size != 0 || !hash_is_zero(e.hash))) {
			log_error("%s:%zu: a directory has no size or content", name, lineno);
			goto out;
		}
		if (nl - lp > PATH_MAX_LEN * 4) {
			log_error("%s:%zu: path too long", name, lineno);
			goto out;
		}
		e.path = unescape(lp, nl - lp);
		if (e.path == NULL) {
			log_error("%s:%zu: bad escape in path", name, lineno);
			goto out;
		}
		if (path_check(e.path, strlen(e.path), &why) != 0) {
			log_error("%s:%zu: %s: %s", name, lineno, why, e.path);
			free(e.path);
			goto out;
		}
		if (m->count > 0 && strcmp(m->entries[m->count - 1].path, e.path) >= 0) {
			log_error("%s:%zu: %s: %s", name, lineno,
			    strcmp(m->entries[m->count - 1].path, e.path) == 0 ?
			    "duplicate path" : "paths not sorted", e.path);
			free(e.path);
			goto out;
		}
		{
			char *slash = strrchr(e.path, '/');
			if (slash != NULL) {
				const struct manifest_entry *parent;
				*slash = '\0';
				parent = manifest_find(m, e.path);
				*slash = '/';
				if (parent == NULL || parent->type != MANIFEST_DIR) {
					log_error("%s:%zu: parent of %s is not a directory in the manifest",
					    name, lineno, e.path);
					free(e.path);
					goto out;
				}
			}
		}
		m->entries = xgrow(m->entries, &m->alloc, m->count + 1, sizeof(*m->entries));
		m->entries[m->count++] = e;
		p = nl + 1;
	}
	*out = m;
	m = NULL;
	r = 0;
out:
	manifest_free(m);
	return r;
}

int
manifest_entry_check(const struct manifest_entry *e, const char *link, size_t len,
    const char **why)
{
	const char *reason = NULL;

	if (path_check(e->path, strlen(e->path), &reason) != 0)
		;
	else if (e->type != MANIFEST_FILE && e->type != MANIFEST_DIR &&
	    e->type != MANIFEST_SYMLINK)
		reason = "not a file, directory or symlink";
	else if ((e->mode & ~(unsigned)MANIFEST_MODE_BITS) != 0)
		reason = "setuid, setgid or sticky mode";
	else if (e->type == MANIFEST_SYMLINK && link != NULL)
		(void)path_link_check(e->path, link, len, &reason);
	if (why != NULL)
		*why = reason;
	return reason == NULL ? 0 : DS_ERR_INVALID;
}

/* Reads a whole file of at most max bytes; caller frees *data. */
static int
read_file(const char *file, size_t max, char **data, size_t *len)
{
	if (fileio_read_at(AT_FDCWD, file, max, data, len) == 0)
		return 0;
	if (errno == EFBIG) {
		log_error("%s: too large (over %zu bytes)", file, max);
		return DS_ERR_INVALID;
	}
	log_errno("%s", file);
	return errno == ENOENT ? DS_ERR_NOTFOUND : DS_ERR_SYSTEM;
}

int
manifest_load(const char *file, struct manifest **out)
{
	char *data;
	size_t len;
	int r;

	*out = NULL;
	if ((r = read_file(file, (size_t)1 << 32, &data, &len)) != 0)
		return r;
	r = manifest_decode(data, len, file, out);
	free(data);
	return r;
}

/* fileio_write_atomic, logged: 0 or DS_ERR_SYSTEM. */
static int
write_atomic(const char *file, const char *data, size_t len)
{
	if (fileio_write_atomic(file, data, len) == -1) {
		log_errno("%s", file);
		return DS_ERR_SYSTEM;
	}
	return 0;
}

int
manifest_save(const struct manifest *m, const char *file)
{
	char *data;
	size_t len;
	int r;

	manifest_encode(m, &data, &len);
	r = write_atomic(file, data, len);
	free(data);
	return r;
}

int
manifest_diff(const struct manifest *old, const struct manifest *new,
    int (*fn)(enum manifest_change, const struct manifest_entry *,
	const struct manifest_entry *, void *), void *arg)
{
	size_t i = 0, j = 0, na = old ? old->count : 0, nb = new ? new->count : 0;
	int r;

	while (i < na || j < nb) {
		const struct manifest_entry *a = i < na ? &old->entries[i] : NULL;
		const struct manifest_entry *b = j < nb ? &new->entries[j] : NULL;
		int c = a == NULL ? 1 : b == NULL ? -1 : strcmp(a->path, b->path);

		r = 0;
		if (c < 0) {
			r = fn(MANIFEST_DELETED, a, NULL, arg);
			i++;
		} else if (c > 0) {
			r = fn(MANIFEST_ADDED, NULL, b, arg);
			j++;
		} else {
			if (a->type != b->type || a->size != b->size ||
			    memcmp(a->hash, b->hash, HASH_LEN) != 0)
				r = fn(MANIFEST_CHANGED, a, b, arg);
			else if (a->mode != b->mode)
				r = fn(MANIFEST_MODE, a, b, arg);
			i++;
			j++;
		}
		if (r != 0)
			return r;
	}
	return 0;
}

/*
 * Scanning. The walk collects entries with their stat data; files the cache
 * cannot vouch for are then hashed by a pool of threads.
 */
struct scan_item {
	struct manifest_entry	 e;
	uint64_t		 ino;
	int64_t			 mtime_ns, ctime_ns;
	int			 need_hash;
};

struct scan {
	const char		*root;
	int			 rootfd;
	struct scan_item	*items;
	size_t			 count, alloc;
	struct scan_item	*cache;		/* sorted by path */
	size_t			 ncache;
	size_t			 next;		/* next item for a hashing thread */
	char			**dirs;		/* directories left to list */
	size_t			 ndirs, adirs;
	unsigned		 busy;		/* walkers listing a directory */
	char *const		*exclude;	/* top-level names to skip */
	pthread_mutex_t		 lock;
	pthread_cond_t		 more;
	int			 error;
};

static int64_t
ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/*
 * Lists one directory: an item per entry (stat data, symlink target) into
 * *items, and the relative paths of subdirectories into *subdirs.
 */
static int
list_dir(struct scan *s, const char *prefix, char *const *exclude, struct scan_item **items,
    size_t *nitems, size_t *aitems, char ***subdirs, size_t *nsub, size_t *asub)
{
	DIR *dir;
	struct dirent *de;
	int fd, r = 0;

	fd = *prefix == '\0' ? dup(s->rootfd) :
	    openat(s->rootfd, prefix, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1 || (dir = fdopendir(fd)) == NULL) {
		log_errno("%s/%s", s->root, prefix);
		if (fd != -1)
			close(fd);
		return DS_ERR_SYSTEM;
	}
	while ((de = readdir(dir)) != NULL) {
		struct scan_item it = { 0 };
		const char *why = NULL;
		struct stat st;
		char *rel;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (*prefix == '\0' && exclude != NULL) {
			int skip = 0;
			for (char *const *x = exclude; *x != NULL; x++)
				if (strcmp(*x, de->d_name) == 0)
					skip = 1;
			if (skip)
				continue;
		}
		rel = *prefix ? xasprintf("%s/%s", prefix, de->d_name) : xstrdup(de->d_name);
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
			log_errno("%s/%s", s->root, rel);
			free(rel);
			r = DS_ERR_SYSTEM;
			break;
		}
		if (path_check(rel, strlen(rel), &why) != 0) {
			log_error("%s/%s: unusable file name: %s", s->root, rel, why);
			free(rel);
			r = DS_ERR_INVALID;
			break;
		}
		it.e.path = rel;
		it.e.mode = manifest_mode_clean(st.st_mode);
		it.ino = st.st_ino;
		it.mtime_ns = ts_ns(&st.st_mtim);
		it.ctime_ns = ts_ns(&st.st_ctim);
		if (S_ISREG(st.st_mode)) {
			it.e.type = MANIFEST_FILE;
			it.e.size = st.st_size;
			it.need_hash = 1;
		} else if (S_ISDIR(st.st_mode)) {
			it.e.type = MANIFEST_DIR;
			*subdirs = xgrow(*subdirs, asub, *nsub + 1, sizeof(char *));
			(*subdirs)[(*nsub)++] = xstrdup(rel);
		} else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX + 1];
			ssize_t n = readlinkat(dirfd(dir), de->d_name, target, PATH_MAX);
			if (n == -1) {
				log_errno("%s/%s", s->root, rel);
				free(rel);
				r = DS_ERR_SYSTEM;
				break;
			}
			target[n] = '\0';
			if (path_link_check(rel, target, (size_t)n, &why) != 0) {
				log_error("%s/%s: %s (-> %s)", s->root, rel, why, target);
				free(rel);
				r = DS_ERR_INVALID;
				break;
			}
			it.e.type = MANIFEST_SYMLINK;
			it.e.mode = 0777;
			it.e.size = n;
			it.e.link = xstrdup(target);
			hash_bytes(target, n, it.e.hash);
		} else {
			log_error("%s/%s: %s are not supported", s->root, rel,
			    S_ISFIFO(st.st_mode) ? "fifos" : S_ISSOCK(st.st_mode) ? "sockets" :
			    "device files");
			free(rel);
			r = DS_ERR_INVALID;
			break;
		}
		*items = xgrow(*items, aitems, *nitems + 1, sizeof(**items));
		(*items)[(*nitems)++] = it;
	}
	closedir(dir);
	return r;
}

/*
 * A walker thread: takes directories from the queue until it is empty and no
 * walker is busy (a busy one may still add subdirectories). Stat calls dominate
 * a warm re-scan, so walking on every CPU is what keeps it cheap.
 */
static void *
walk_worker(void *arg)
{
	struct scan *s = arg;
	struct scan_item *items = NULL;
	char **subdirs = NULL;
	size_t aitems = 0, asub = 0;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		size_t nitems = 0, nsub = 0;
		char *dir;
		int r;

		while (s->ndirs == 0 && s->busy > 0 && s->error == 0)
			pthread_cond_wait(&s->more, &s->lock);
		if (s->ndirs == 0 || s->error != 0)
			break;
		dir = s->dirs[--s->ndirs];
		s->busy++;
		pthread_mutex_unlock(&s->lock);
		r = list_dir(s, dir, *dir == '\0' ? s->exclude : NULL, &items, &nitems, &aitems,
		    &subdirs, &nsub, &asub);
		free(dir);
		pthread_mutex_lock(&s->lock);
		s->items = xgrow(s->items, &s->alloc, s->count + nitems, sizeof(*s->items));
		if (nitems > 0)
			memcpy(s->items + s->count, items, nitems * sizeof(*items));
		s->count += nitems;
		s->dirs = xgrow(s->dirs, &s->adirs, s->ndirs + nsub, sizeof(*s->dirs));
		if (nsub > 0)
			memcpy(s->dirs + s->ndirs, subdirs, nsub * sizeof(*subdirs));
		s->ndirs += nsub;
		if (r != 0 && s->error == 0)
			s->error = r;
		s->busy--;
		pthread_cond_broadcast(&s->more);
	}
	pthread_cond_broadcast(&s->more);
	pthread_mutex_unlock(&s->lock);
	free(items);
	free(subdirs);
	return NULL;
}

static int
item_cmp(const void *a, const void *b)
{
	return strcmp(((const struct scan_item *)a)->e.path, ((const struct scan_item *)b)->e.path);
}

static void
cache_load(struct scan *s, const char *file)
{
	FILE *fp = fopen(file, "r");
	char *line = NULL;
	size_t cap = 0, alloc = 0;
	ssize_t n;

	if (fp == NULL)
		return;
	n = getline(&line, &cap, fp);
	if (n < 0 || strcmp(line, STATCACHE_HEADER) != 0)
		goto out;
	while ((n = getline(&line, &cap, fp)) > 0) {
		struct scan_item it = { 0 };
		char *p = line + HASH_HEX_LEN + 1, *end;
		uint64_t v[4];

		if (line[n - 1] == '\n')
			line[--n] = '\0';
		/* A damaged line only costs a rehash of that file. */
		if (n < HASH_HEX_LEN + 1 || line[HASH_HEX_LEN] != ' ' ||
		    hash_from_hex(line, HASH_HEX_LEN, it.e.hash) != 0)
			continue;
		int bad = 0;
		for (int k = 0; k < 4 && !bad; k++) {
			errno = 0;
			v[k] = strtoull(p, &end, 10);
			if (errno != 0 || end == p || *end != ' ')
				bad = 1;
			p = end + 1;
		}
		if (bad)
			continue;
		it.e.size = v[0];
		it.mtime_ns = (int64_t)v[1];
		it.ctime_ns = (int64_t)v[2];
		it.ino = v[3];
		it.e.path = unescape(p, strlen(p));
		if (it.e.path == NULL)
			continue;
		s->cache = xgrow(s->cache, &alloc, s->ncache + 1, sizeof(*s->cache));
		s->cache[s->ncache++] = it;
	}
out:
	free(line);
	fclose(fp);
	if (s->ncache > 1)
		qsort(s->cache, s->ncache, sizeof(*s->cache), item_cmp);
}

static int
cache_save(const struct scan *s, const char *file)
{
	struct out o = { NULL, 0, 0 };
	int r;

	out_put(&o, STATCACHE_HEADER, strlen(STATCACHE_HEADER));
	for (size_t i = 0; i < s->count; i++) {
		const struct scan_item *it = &s->items[i];
		char line[256], hex[HASH_HEX_LEN + 1];
		int n;

		if (it->e.type != MANIFEST_FILE)
			continue;
		hash_to_hex(it->e.hash, hex);
		n = snprintf(line, sizeof(line), "%s %ju %ju %ju %ju ", hex, (uintmax_t)it->e.size,
		    (uintmax_t)it->mtime_ns, (uintmax_t)it->ctime_ns, (uintmax_t)it->ino);
		out_put(&o, line, n);
		out_escape(&o, it->e.path);
		out_put(&o, "\n", 1);
	}
	r = write_atomic(file, o.data, o.len);
	free(o.data);
	return r;
}

int
manifest_statcache_write(const char *root, const struct manifest *m, const char *cache_file)
{
	struct scan s = { 0 };
	int rootfd, r;

	if ((rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		log_errno("%s", root);
		return DS_ERR_SYSTEM;
	}
	s.items = xcalloc(m->count + 1, sizeof(*s.items));
	for (size_t i = 0; i < m->count; i++) {
		const struct manifest_entry *e = &m->entries[i];
		struct scan_item *it = &s.items[s.count];
		struct stat st;

		if (e->type != MANIFEST_FILE ||
		    fstatat(rootfd, e->path, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISREG(st.st_mode) || (uint64_t)st.st_size != e->size)
			continue;
		it->e = *e;	/* borrowed: cache_save only reads */
		it->ino = st.st_ino;
		it->mtime_ns = ts_ns(&st.st_mtim);
		it->ctime_ns = ts_ns(&st.st_ctim);
		s.count++;
	}
	close(rootfd);
	r = cache_save(&s, cache_file);
	free(s.items);
	return r;
}

static void *
hash_worker(void *arg)
{
	struct scan *s = arg;

	for (;;) {
		struct scan_item *it;
		struct stat st;
		uint64_t size;
		size_t i;
		int fd;

		pthread_mutex_lock(&s->lock);
		while (s->next < s->count && !s->items[s->next].need_hash)
			s->next++;
		i = s->next++;
		pthread_mutex_unlock(&s->lock);
		if (i >= s->count || s->error)
			break;
		it = &s->items[i];
		fd = openat(s->rootfd, it->e.path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd == -1 || hash_fd(fd, it->e.hash, &size) != 0) {
			log_errno("%s/%s", s->root, it->e.path);
			if (fd != -1)
				close(fd);
			s->error = DS_ERR_SYSTEM;
			break;
		}
		/* Record what was actually read, so a file growing under us is caught next time. */
		if (fstat(fd, &st) == 0) {
			it->mtime_ns = ts_ns(&st.st_mtim);
			it->ctime_ns = ts_ns(&st.st_ctim);
		}
		if (size != it->e.size) {
			log_error("%s/%s: changed while it was read", s->root, it->e.path);
			s->error = DS_ERR_INVALID;
		}
		close(fd);
	}
	return NULL;
}

int
manifest_scan(const char *root, char *const *exclude, const char *cache_file,
    unsigned threads, struct manifest **out, struct manifest_scan_stats *stats)
{
	return manifest_scan_cached(root, exclude, cache_file, cache_file, threads, out, stats);
}

int
manifest_scan_cached(const char *root, char *const *exclude, const char *cache_in,
    const char *cache_out, unsigned threads, struct manifest **out,
    struct manifest_scan_stats *stats)
{
	struct scan s = { 0 };
	struct manifest *m = NULL;
	pthread_t tids[16];
	unsigned started = 0;
	size_t cache_hits = 0, hashed = 0;
	int r;

	*out = NULL;
	s.root = root;
	s.rootfd = -1;
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.more, NULL);
	s.rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s.rootfd == -1) {
		r = errno == ENOENT ? DS_ERR_NOTFOUND : DS_ERR_SYSTEM;
		log_errno("%s", root);
		goto out;
	}
	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (unsigned)n : 1;
	}
	if (threads > sizeof(tids) / sizeof(tids[0]))
		threads = sizeof(tids) / sizeof(tids[0]);
	s.exclude = exclude;
	s.dirs = xcalloc(1, sizeof(*s.dirs));
	s.adirs = 1;
	s.dirs[s.ndirs++] = xstrdup("");
	for (started = 0; started < threads; started++)
		if (pthread_create(&tids[started], NULL, walk_worker, &s) != 0)
			break;
	if (started == 0)
		walk_worker(&s);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	started = 0;
	if ((r = s.error) != 0)
		goto out;
	if (s.count > 1)
		qsort(s.items, s.count, sizeof(*s.items), item_cmp);
	if (cache_in != NULL)
		cache_load(&s, cache_in);
	if (stats != NULL)
		memset(stats, 0, sizeof(*stats));
	for (size_t i = 0, c = 0; i < s.count; i++) {
		struct scan_item *it = &s.items[i];
		if (it->e.type != MANIFEST_FILE)
			continue;
		while (c < s.ncache && strcmp(s.cache[c].e.path, it->e.path) < 0)
			c++;
		if (c < s.ncache && strcmp(s.cache[c].e.path, it->e.path) == 0 &&
		    s.cache[c].e.size == it->e.size && s.cache[c].mtime_ns == it->mtime_ns &&
		    s.cache[c].ctime_ns == it->ctime_ns && s.cache[c].ino == it->ino) {
			memcpy(it->e.hash, s.cache[c].e.hash, HASH_LEN);
			it->need_hash = 0;
			cache_hits++;
		} else
			hashed++;
		if (stats != NULL) {
			stats->files++;
			stats->bytes += it->e.size;
			if (it->need_hash) {
				stats->hashed_files++;
				stats->hashed_bytes += it->e.size;
			}
		}
	}
	for (; started < threads; started++)
		if (pthread_create(&tids[started], NULL, hash_worker, &s) != 0)
			break;
	if (started == 0)
		hash_worker(&s);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	if ((r = s.error) != 0)
		goto out;
	/* An unchanged tree leaves an identical cache: skip the write and its fsync. */
	if (cache_out != NULL && (cache_hits != s.ncache || hashed > 0 ||
	    (cache_in != NULL && strcmp(cache_in, cache_out) != 0)) &&
	    (r = cache_save(&s, cache_out)) != 0)
		goto out;
	m = manifest_new();
	m->entries = xcalloc(s.count, sizeof(*m->entries));
	m->alloc = s.count;
	for (size_t i = 0; i < s.count; i++) {
		m->entries[i] = s.items[i].e;
		s.items[i].e.path = NULL;
		s.items[i].e.link = NULL;
	}
	m->count = s.count;
	*out = m;
	m = NULL;
	r = 0;
out:
	for (size_t i = 0; i < s.count; i++) {
		free(s.items[i].e.path);
		free(s.items[i].e.link);
	}
	for (size_t i = 0; i < s.ncache; i++)
		free(s.cache[i].e.path);
	free(s.items);
	free(s.cache);
	if (s.rootfd != -1)
		close(s.rootfd);
	for (size_t i = 0; i < s.ndirs; i++)
		free(s.dirs[i]);
	free(s.dirs);
	pthread_cond_destroy(&s.more);
	pthread_mutex_destroy(&s.lock);
	manifest_free(m);
	return r;
}
