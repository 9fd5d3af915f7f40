#include "autoconf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/xmalloc.h"
#include "repo/manifest.h"
#include "repo/plan.h"

const char *
plan_basis_name(enum plan_basis_kind kind)
{
	switch (kind) {
	case PLAN_BASIS_SAME_PATH:	return "same path";
	case PLAN_BASIS_IDENTITY:	return "artifact identity";
	case PLAN_BASIS_NAME:		return "similar name";
	case PLAN_BASIS_SIZE:		return "renamed, similar size";
	default:			return "none";
	}
}

static int
is_sep(char c)
{
	return c == '-' || c == '_' || c == '.' || c == '/' || c == '@' || c == '+' || c == '~';
}

/*
 * Length of a version token at s (after a separator or at the start of a
 * component): optional 'v', digits, at least one ".digits", then optional
 * qualifiers like "-SNAPSHOT", "-beta.2", "-rc1", "-pre.123". 0 if none.
 */
static size_t
version_token(const char *s)
{
	const char *p = s;
	int dots = 0;

	if (*p == 'v' || *p == 'V')
		p++;
	if (!isdigit((unsigned char)*p))
		return 0;
	while (isdigit((unsigned char)*p))
		p++;
	while (p[0] == '.' && isdigit((unsigned char)p[1])) {
		p++;
		while (isdigit((unsigned char)*p))
			p++;
		dots++;
	}
	if (dots == 0)
		return 0;
	/* Qualifiers: "-word" or "-word.N" or "-wordN", repeated. */
	for (;;) {
		const char *q = p;
		if (*q != '-' && *q != '.' && *q != '+')
			break;
		q++;
		size_t alpha = 0;
		while (isalpha((unsigned char)q[alpha]))
			alpha++;
		static const char *const words[] = { "SNAPSHOT", "snapshot", "alpha", "beta",
		    "rc", "RC", "pre", "dev", "next", "M", "final", "Final", "GA", NULL };
		int known = 0;
		for (size_t i = 0; words[i] != NULL; i++)
			if (strlen(words[i]) == alpha && strncmp(q, words[i], alpha) == 0)
				known = 1;
		if (!known)
			break;
		q += alpha;
		if (*q == '.' && isdigit((unsigned char)q[1]))
			q++;
		while (isdigit((unsigned char)*q))
			q++;
		p = q;
	}
	return p - s;
}

/* Length of a content-hash token: >= 8 hex chars with both digits and letters, or 20+ alnum. */
static size_t
hash_token(const char *s)
{
	size_t n = 0, digits = 0, letters = 0;

	while (isxdigit((unsigned char)s[n])) {
		if (isdigit((unsigned char)s[n]))
			digits++;
		else
			letters++;
		n++;
	}
	if (n >= 8 && digits > 0 && letters > 0 && (s[n] == '\0' || is_sep(s[n])))
		return n;
	return 0;
}

char *
plan_identity(const char *path)
{
	size_t len = strlen(path), n = 0;
	char *out = xmalloc(len + 1);

	for (size_t i = 0; i < len;) {
		if (i == 0 || is_sep(path[i - 1])) {
			size_t t = version_token(path + i);
			if (t == 0)
				t = hash_token(path + i);
			/* A token must end at a separator or the end, not mid-word. */
			if (t > 0 && (path[i + t] == '\0' || is_sep(path[i + t]))) {
				out[n++] = '#';
				i += t;
				continue;
			}
		}
		out[n++] = path[i++];
	}
	out[n] = '\0';
	return out;
}

struct ident {
	char				*identity;
	const struct manifest_entry	*entry;
};

static int
ident_cmp(const void *a, const void *b)
{
	const struct ident *x = a, *y = b;
	int c = strcmp(x->identity, y->identity);

	if (c != 0)
		return c;
	return strcmp(x->entry->path, y->entry->path);
}

static int
strcmp_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct hashref {
	const uint8_t *hash;
};

static int
hashref_cmp(const void *a, const void *b)
{
	return memcmp(((const struct hashref *)a)->hash, ((const struct hashref *)b)->hash, HASH_LEN);
}

/* Levenshtein distance of a[0..la) and b[0..lb), short strings only (else SIZE_MAX). */
static size_t
name_distance(const char *a, size_t la, const char *b, size_t lb)
{
	size_t *row, best;

	if (la > 255 || lb > 255)
		return (size_t)-1;
	row = xcalloc(lb + 1, sizeof(*row));
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t prev = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cur = row[j];
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t v = prev + cost;
			if (row[j] + 1 < v)
				v = row[j] + 1;
			if (row[j - 1] + 1 < v)
				v = row[j - 1] + 1;
			row[j] = v;
			prev = cur;
		}
	}
	best = row[lb];
	free(row);
	return best;
}

static const char *
extension(const char *name)
{
	const char *dot = strrchr(name, '.');
	return dot ? dot : "";
}

/* Picks the closest-in-size candidate among n identity matches. */
static const struct manifest_entry *
closest_size(const struct ident *c, size_t n, uint64_t size)
{
	const struct manifest_entry *best = NULL;
	uint64_t bestd = UINT64_MAX;

	for (size_t i = 0; i < n; i++) {
		uint64_t s = c[i].entry->size, d = s > size ? s - size : size - s;
		if (d < bestd) {
			bestd = d;
			best = c[i].entry;
		}
	}
	return best;
}

/* Length of a file name's stem: up to its first dot ("8183" of "8183.js.map"). */
static size_t
stem_len(const char *name)
{
	const char *dot = strchr(name, '.');

	return dot != NULL ? (size_t)(dot - name) : strlen(name);
}

/* name_distance of two names' stems: "8183.js" and "9337.js" differ in all 4. */
static size_t
stem_distance(const char *a, const char *b)
{
	return name_distance(a, stem_len(a), b, stem_len(b));
}

/* Length of the directory part of an identity or path ("a/b/" of "a/b/c"). */
static size_t
dir_len(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash != NULL ? (size_t)(slash - path + 1) : 0;
}

/* 1 when identity id is among the n sorted identities of the release (set). */
static int
in_release(char *const *set, size_t n, const char *id)
{
	return bsearch(&id, set, n, sizeof(*set), strcmp_ptr) != NULL;
}

/*
 * The similar-name search compares a new file with the files of its
 * directory on the site, whose manifest the site itself sends (up to a 16
 * MiB frame): its work is bounded, per file by the entries of that
 * directory it looks at and per plan by the cells of name_distance it fills, so a claimed
 * manifest costs the repository a fraction of a second, not minutes. A
 * real tree stays far below both (a frontend app's directory holds
 * hundreds of chunks); past them a file just gets no similar-name basis.
 */
#define PLAN_SIMILAR_CANDIDATES	4096
#define PLAN_SIMILAR_CELLS	((uint64_t)1 << 26)

/*
 * Fallback basis for a file with neither its path nor its identity on the
 * site: a file of the same extension in the corresponding directory (the
 * same directory, or one of the same identity, as when an app's directory
 * carries its version). Files the release no longer has (by identity) come
 * first: they are what was renamed. Among those, the nearest name (at most
 * half the stem, the name before its first dot, differs), else the nearest
 * size within a quarter (a bundler
 * renames chunk "8183.js" to "9337.js" with nearly the same content); then
 * the nearest name among the files the release keeps. id is the file's
 * identity; idents is sorted by identity; released holds the release's
 * identities, sorted.
 */
static const struct manifest_entry *
similar_file(const struct ident *idents, size_t nidents, char *const *released, size_t nreleased,
    const struct manifest_entry *file, const char *id, uint64_t *cells,
    enum plan_basis_kind *kind)
{
	size_t dlen = dir_len(id), lo = 0, hi = nidents, seen = 0;
	const char *base = file->path + dir_len(file->path);
	const struct manifest_entry *by_name[2] = { NULL, NULL }, *by_size = NULL;
	size_t best_name[2] = { (size_t)-1, (size_t)-1 };
	uint64_t best_size = UINT64_MAX, size = file->size;

	while (lo < hi) {	/* the first identity with this directory part */
		size_t mid = (lo + hi) / 2;

		if (strncmp(idents[mid].identity, id, dlen) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < nidents && strncmp(idents[i].identity, id, dlen) == 0 &&
	    seen++ < PLAN_SIMILAR_CANDIDATES; i++) {
		const struct manifest_entry *e = idents[i].entry;
		const char *eb = e->path + dir_len(e->path);
		uint64_t sd, cost = (uint64_t)stem_len(eb) * stem_len(base);
		size_t d = (size_t)-1;
		int gone;

		if (strchr(idents[i].identity + dlen, '/') != NULL ||
		    strcmp(extension(eb), extension(base)) != 0)
			continue;
		gone = !in_release(released, nreleased, idents[i].identity);
		if (cost <= *cells) {
			*cells -= cost;
			d = stem_distance(eb, base);
		}
		if (d * 2 <= stem_len(base) && d < best_name[gone]) {
			best_name[gone] = d;
			by_name[gone] = e;
		}
		sd = e->size > size ? e->size - size : size - e->size;
		if (gone && sd <= size / 4 && sd < best_size) {
			best_size = sd;
			by_size = e;
		}
	}
	*kind = PLAN_BASIS_NAME;
	if (by_name[1] != NULL)
		return by_name[1];
	if (by_size != NULL) {
		*kind = PLAN_BASIS_SIZE;
		return by_size;
	}
	if (by_name[0] == NULL)
		*kind = PLAN_BASIS_NONE;
	return by_name[0];
}

/* The sorted identities of target's files (*n of them; free each, then the array). */
static char **
release_identities(const struct manifest *target, size_t *n)
{
	char **ids = xcalloc(target->count + 1, sizeof(*ids));

	*n = 0;
	for (size_t i = 0; i < target->count; i++)
		if (target->entries[i].type == MANIFEST_FILE)
			ids[(*n)++] = plan_identity(target->entries[i].path);
	qsort(ids, *n, sizeof(*ids), strcmp_ptr);
	return ids;
}

static const struct plan_object *sort_base;

static int
object_index_cmp(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int c = memcmp(sort_base[x].entry->hash, sort_base[y].entry->hash, HASH_LEN);

	if (c != 0)
		return c;
	return x < y ? -1 : x > y;
}

/* Keeps the first object (in path order) of each content hash. */
static void
dedup_objects(struct plan *p)
{
	size_t *idx = xcalloc(p->nobjects + 1, sizeof(*idx)), n = 0;
	char *keep = xcalloc(p->nobjects + 1, 1);

	for (size_t i = 0; i < p->nobjects; i++)
		idx[i] = i;
	sort_base = p->objects;
	qsort(idx, p->nobjects, sizeof(*idx), object_index_cmp);
	for (size_t i = 0; i < p->nobjects; i++)
		keep[idx[i]] = i == 0 || memcmp(p->objects[idx[i]].entry->hash,
		    p->objects[idx[i - 1]].entry->hash, HASH_LEN) != 0;
	p->object_bytes = 0;
	for (size_t i = 0; i < p->nobjects; i++) {
		if (!keep[i])
			continue;
		p->objects[n++] = p->objects[i];
		p->object_bytes += p->objects[i].entry->size;
	}
	p->nobjects = n;
	free(idx);
	free(keep);
}

struct plan *
plan_make(const struct manifest *current, const struct manifest *target)
{
	struct manifest empty = { 0 };
	struct plan *p = xcalloc(1, sizeof(*p));
	struct ident *idents = NULL;
	struct hashref *have = NULL;
	char **released = NULL;
	size_t nidents = 0, nhave = 0, nreleased = 0, allocp = 0, alloco = 0, allocc = 0;
	uint64_t cells = PLAN_SIMILAR_CELLS;	/* the similar-name search's budget */

	if (current == NULL)
		current = &empty;
	/* Every path difference, in order. */
	{
		size_t i = 0, j = 0;
		while (i < current->count || j < target->count) {
			const struct manifest_entry *a = i < current->count ? &current->entries[i] : NULL;
			const struct manifest_entry *b = j < target->count ? &target->entries[j] : NULL;
			int c = a == NULL ? 1 : b == NULL ? -1 : strcmp(a->path, b->path);
			struct plan_item it = { 0 };
			int record = 1;

			if (c < 0) {
				it.change = MANIFEST_DELETED;
				it.old = a;
				p->deleted++;
				i++;
			} else if (c > 0) {
				it.change = MANIFEST_ADDED;
				it.new = b;
				p->added++;
				j++;
			} else {
				it.old = a;
				it.new = b;
				if (a->type != b->type || a->size != b->size ||
				    memcmp(a->hash, b->hash, HASH_LEN) != 0) {
					it.change = MANIFEST_CHANGED;
					p->updated++;
				} else if (a->mode != b->mode) {
					it.change = MANIFEST_MODE;
					p->mode_changed++;
				} else {
					p->unchanged++;
					record = 0;
				}
				i++;
				j++;
			}
			if (!record)
				continue;
			p->items = xgrow(p->items, &allocp, p->count + 1, sizeof(*p->items));
			p->items[p->count++] = it;
			if (it.change != MANIFEST_ADDED || it.new->type != MANIFEST_DIR) {
				p->changed_paths = xgrow(p->changed_paths, &allocc,
				    p->nchanged_paths + 2, sizeof(char *));
				p->changed_paths[p->nchanged_paths++] =
				    xstrdup(it.new ? it.new->path : it.old->path);
			}
		}
		p->changed_paths = xgrow(p->changed_paths, &allocc, p->nchanged_paths + 1,
		    sizeof(char *));
		p->changed_paths[p->nchanged_paths] = NULL;
	}
	/* Content the site holds, and content already claimed, by hash. */
	have = xcalloc(current->count + 1, sizeof(*have));
	for (size_t i = 0; i < current->count; i++)
		if (current->entries[i].type != MANIFEST_DIR)
			have[nhave++].hash = current->entries[i].hash;
	qsort(have, nhave, sizeof(*have), hashref_cmp);
	idents = xcalloc(current->count + 1, sizeof(*idents));
	for (size_t i = 0; i < current->count; i++) {
		if (current->entries[i].type != MANIFEST_FILE || current->entries[i].size == 0)
			continue;
		idents[nidents].identity = plan_identity(current->entries[i].path);
		idents[nidents].entry = &current->entries[i];
		nidents++;
	}
	qsort(idents, nidents, sizeof(*idents), ident_cmp);
	for (size_t i = 0; i < p->count; i++) {
		const struct plan_item *it = &p->items[i];
		struct plan_object o = { 0 };
		struct hashref key;

		if (it->new == NULL || it->new->type == MANIFEST_DIR || it->change == MANIFEST_MODE)
			continue;
		key.hash = it->new->hash;
		if (bsearch(&key, have, nhave, sizeof(*have), hashref_cmp) != NULL)
			continue;	/* the site holds this content somewhere */
		o.entry = it->new;
		if (it->new->type == MANIFEST_FILE) {
			if (it->old != NULL && it->old->type == MANIFEST_FILE && it->old->size > 0) {
				o.basis = it->old;
				o.basis_kind = PLAN_BASIS_SAME_PATH;
			} else {
				struct ident k = { plan_identity(it->new->path), NULL };
				size_t lo = 0, hi = nidents;
				while (lo < hi) {
					size_t mid = (lo + hi) / 2;
					if (strcmp(idents[mid].identity, k.identity) < 0)
						lo = mid + 1;
					else
						hi = mid;
				}
				size_t n = 0;
				while (lo + n < nidents && strcmp(idents[lo + n].identity, k.identity) == 0)
					n++;
				if (n > 0) {
					o.basis = closest_size(&idents[lo], n, it->new->size);
					o.basis_kind = PLAN_BASIS_IDENTITY;
				} else {
					/* The release's identities, once, when first needed. */
					if (released == NULL)
						released = release_identities(target, &nreleased);
					o.basis = similar_file(idents, nidents, released, nreleased,
					    it->new, k.identity, &cells, &o.basis_kind);
				}
				free(k.identity);
			}
		}
		p->objects = xgrow(p->objects, &alloco, p->nobjects + 1, sizeof(*p->objects));
		p->objects[p->nobjects++] = o;
		p->object_bytes += it->new->size;
	}
	dedup_objects(p);
	for (size_t i = 0; i < nidents; i++)
		free(idents[i].identity);
	free(idents);
	for (size_t i = 0; i < nreleased; i++)
		free(released[i]);
	free(released);
	free(have);
	return p;
}

void
plan_free(struct plan *p)
{
	if (p == NULL)
		return;
	free(p->items);
	free(p->objects);
	xfree_strv(p->changed_paths);
	free(p);
}
