/* Writing a published tree from the store (publisher.h). */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/ed25519.h"
#include "base/err.h"
#include "base/fileio.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/path.h"
#include "base/xmalloc.h"
#include "codec/delta.h"
#include "repo/dcache.h"
#include "repo/manifest.h"
#include "repo/plan.h"
#include "repo/publish.h"
#include "repo/publisher.h"
#include "repo/signing.h"
#include "repo/store.h"
#include "repo/trust.h"

struct pub {
	struct store		*store;
	const char		*dir;
	struct publisher_report	*rep;
};

void
publisher_report_release(struct publisher_report *rep)
{
	free(rep->release);
	free(rep->channel);
	memset(rep, 0, sizeof(*rep));
}

/* DIR/REL's size in *size and 1 when it exists, 0 when not, DS_ERR_SYSTEM logged. */
static int
exists(struct pub *p, const char *rel, uint64_t *size)
{
	char *path = path_join(p->dir, rel);
	struct stat st;
	int r;

	if (lstat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode)) {
			log_error("%s: not a regular file", path);
			r = DS_ERR_SYSTEM;
		} else {
			if (size != NULL)
				*size = (uint64_t)st.st_size;
			r = 1;
		}
	} else if (errno == ENOENT) {
		r = 0;
	} else {
		log_errno("%s", path);
		r = DS_ERR_SYSTEM;
	}
	free(path);
	return r;
}

/* A new temp path beside DIR/REL, its directory made. */
static char *
temp_for(struct pub *p, const char *rel)
{
	char *path = path_join(p->dir, rel), *parent = path_dirname(path), *tmp;

	if (path_mkdirs(parent) == -1)
		log_errno("%s", parent);
	tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	free(parent);
	free(path);
	return tmp;
}

/* Renames TMP to DIR/REL and counts LEN bytes added. */
static int
place(struct pub *p, char *tmp, const char *rel, uint64_t len)
{
	char *path = path_join(p->dir, rel);
	int r = 0;

	if (rename(tmp, path) == -1) {
		log_errno("%s", path);
		unlink(tmp);
		r = DS_ERR_SYSTEM;
	} else {
		p->rep->files_added++;
		p->rep->bytes_added += len;
	}
	free(path);
	return r;
}

/*
 * DIR/REL holds DATA: written when absent; when present and MUST_EQUAL, its
 * bytes must be DATA's (a keys document of a version is never replaced).
 */
static int
put_bytes(struct pub *p, const char *rel, const void *data, size_t len, int must_equal)
{
	char *tmp, *have = NULL, *path;
	size_t have_len = 0;
	int r;

	if ((r = exists(p, rel, NULL)) < 0)
		return r;
	if (r == 1) {
		if (!must_equal)
			return 0;
		path = path_join(p->dir, rel);
		r = fileio_read_at(AT_FDCWD, path, len + 1, &have, &have_len);
		if (r != 0 || have_len != len || memcmp(have, data, len) != 0) {
			log_error("%s exists with other content: a published file is never "
			    "rewritten (is this tree another repository's?)", path);
			r = DS_ERR_PRECONDITION;
		}
		free(have);
		free(path);
		return r;
	}
	tmp = temp_for(p, rel);
	if (fileio_write_atomic(tmp, data, len) != 0) {
		log_errno("%s", tmp);
		free(tmp);
		return DS_ERR_SYSTEM;
	}
	r = place(p, tmp, rel, len);
	free(tmp);
	return r;
}

/* DIR/REL holds a copy of SRC (an entry of the store's delta cache); *len its size. */
static int
put_copy(struct pub *p, const char *rel, const char *src, uint64_t *len)
{
	char *tmp;
	int in = -1, out = -1, r;

	if ((r = exists(p, rel, len)) != 0)
		return r < 0 ? r : 0;
	tmp = temp_for(p, rel);
	if ((in = open(src, O_RDONLY | O_CLOEXEC)) == -1 ||
	    (out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) == -1) {
		log_errno("%s", in == -1 ? src : tmp);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	*len = 0;
	for (;;) {
		char buf[65536];
		ssize_t n = read(in, buf, sizeof(buf));

		if (n == 0)
			break;
		if (n < 0 || fileio_write_all(out, buf, (size_t)n) != 0) {
			log_errno("%s", tmp);
			r = DS_ERR_SYSTEM;
			goto out;
		}
		*len += (uint64_t)n;
	}
	close(out);
	out = -1;
	r = place(p, tmp, rel, *len);
out:
	if (in != -1)
		close(in);
	if (out != -1) {
		close(out);
		unlink(tmp);
	}
	free(tmp);
	return r;
}

/* objects/…/HASH.zst: the object whole, one zstd frame; *bytes its size. */
static int
put_object(struct pub *p, const uint8_t hash[HASH_LEN], uint64_t *bytes)
{
	char *rel = publish_path_object(hash), *tmp = NULL;
	int in = -1, out = -1, r;

	if ((r = exists(p, rel, bytes)) != 0) {
		r = r < 0 ? r : 0;
		goto out;
	}
	tmp = temp_for(p, rel);
	if ((in = store_object_open(p->store, hash)) == -1) {
		log_errno("%s: object missing from the store", rel);
		r = DS_ERR_NOTFOUND;
		goto out;
	}
	if ((out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) == -1) {
		log_errno("%s", tmp);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	if ((r = delta_encode(DELTA_ZSTD, -1, in, DELTA_LEVEL_PRECOMPUTE, out, bytes)) != 0)
		goto out;
	close(out);
	out = -1;
	r = place(p, tmp, rel, *bytes);
out:
	if (in != -1)
		close(in);
	if (out != -1) {
		close(out);
		unlink(tmp);
	}
	free(tmp);
	free(rel);
	return r;
}

static int
entry_cmp(const void *a, const void *b)
{
	return memcmp(((const struct publish_entry *)a)->hash,
	    ((const struct publish_entry *)b)->hash, HASH_LEN);
}

static int
put_index(struct pub *p, struct publish_index *ix)
{
	char *rel = publish_path_index(ix->has_from ? ix->from : NULL, ix->to), *data;
	size_t len;
	int r;

	qsort(ix->entries, ix->count, sizeof(*ix->entries), entry_cmp);
	publish_index_encode(ix, &data, &len);
	r = put_bytes(p, rel, data, len, 0);
	free(data);
	free(rel);
	return r;
}

/* The whole objects of M, each once, and the index of them all. */
static int
put_objects(struct pub *p, const struct manifest *m, const uint8_t to[HASH_LEN],
    struct publish_index *full)
{
	size_t alloc = 0;
	int r;

	memset(full, 0, sizeof(*full));
	memcpy(full->to, to, HASH_LEN);
	for (size_t i = 0; i < m->count; i++) {
		const struct manifest_entry *e = &m->entries[i];
		struct publish_entry pe;

		if (e->type == MANIFEST_DIR)
			continue;
		memset(&pe, 0, sizeof(pe));
		memcpy(pe.hash, e->hash, HASH_LEN);
		pe.size = e->size;
		pe.encoding = DELTA_ZSTD;
		if ((r = put_object(p, e->hash, &pe.bytes)) != 0)
			return r;
		full->entries = xgrow(full->entries, &alloc, full->count + 1, sizeof(pe));
		full->entries[full->count++] = pe;
	}
	/* Unique by hash: a file's content may stand at several paths. */
	qsort(full->entries, full->count, sizeof(*full->entries), entry_cmp);
	for (size_t i = 1, j = 1; i <= full->count; i++) {
		if (i == full->count) {
			full->count = j;
			break;
		}
		if (memcmp(full->entries[i].hash, full->entries[j - 1].hash, HASH_LEN) != 0)
			full->entries[j++] = full->entries[i];
	}
	for (size_t i = 0; i < full->count; i++)
		p->rep->full_bytes += full->entries[i].bytes;
	return put_index(p, full);
}

struct pair_ctx {
	struct pub		*p;
	const struct publish_index *full;
	struct publish_index	*ix;
};

/* A patch dcache_fill_pair made: in the index when it is smaller than the whole object. */
static int
take_patch(const struct dcache_pair_entry *e, void *arg)
{
	struct pair_ctx *c = arg;
	const struct publish_entry *whole = publish_index_find(c->full, e->po->entry->hash);
	struct publish_entry *pe = NULL;
	char *rel;
	uint64_t len = 0;
	int r;

	for (size_t i = 0; i < c->ix->count; i++)
		if (memcmp(c->ix->entries[i].hash, e->po->entry->hash, HASH_LEN) == 0)
			pe = &c->ix->entries[i];
	if (whole == NULL || pe == NULL || e->len >= whole->bytes || pe->has_basis)
		return 0;
	pe->encoding = e->enc;
	pe->has_basis = 1;
	memcpy(pe->basis, e->po->basis->hash, HASH_LEN);
	pe->bytes = e->len;
	rel = publish_path_entry(pe);
	r = put_copy(c->p, rel, e->path, &len);
	free(rel);
	if (r == 0 && len != e->len) {
		log_error("%s: the cached patch changed while it was published", e->path);
		r = DS_ERR_SYSTEM;
	}
	return r;
}

/* indexes/FROM-TO.index for the release OLD: what a site holding it downloads. */
static int
put_pair(struct pub *p, const struct manifest *old, const struct manifest *m,
    const uint8_t to[HASH_LEN], const struct publish_index *full)
{
	struct publish_index ix;
	struct pair_ctx c = { p, full, &ix };
	struct plan *plan;
	size_t alloc = 0;
	int r;

	memset(&ix, 0, sizeof(ix));
	ix.has_from = 1;
	manifest_digest(old, ix.from);
	memcpy(ix.to, to, HASH_LEN);
	if (memcmp(ix.from, ix.to, HASH_LEN) == 0)
		return 0;
	plan = plan_make(old, m);
	for (size_t i = 0; i < plan->nobjects; i++) {
		const struct publish_entry *whole = publish_index_find(full,
		    plan->objects[i].entry->hash);

		if (whole == NULL)
			continue;
		ix.entries = xgrow(ix.entries, &alloc, ix.count + 1, sizeof(*ix.entries));
		ix.entries[ix.count++] = *whole;
	}
	plan_free(plan);
	r = dcache_fill_pair(p->store, old, m, take_patch, &c);
	if (r == 0 && (r = put_index(p, &ix)) == 0)
		p->rep->indexes++;
	publish_index_release(&ix);
	return r;
}

/* The keys documents, version 1 first; *newest is the last (owned by *chain). */
static int
put_keys(struct pub *p, struct trust_doc ***chain, size_t *n)
{
	int r;

	if ((r = signing_chain_load(p->store, chain, n)) != 0)
		return r;
	if (*n == 0) {
		log_error("%s: no keys document: a mirror serves only signed releases "
		    "(see 'distsync keys init')", store_dir(p->store));
		return DS_ERR_CONFIG;
	}
	for (size_t i = 0; i < *n && r == 0; i++) {
		char *rel = publish_path_keys((*chain)[i]->version), *data;
		size_t len;

		trust_doc_encode((*chain)[i], &data, &len);
		r = put_bytes(p, rel, data, len, 1);
		free(data);
		free(rel);
	}
	return r;
}

/* Refuses to point the channel back: its pointer may only move to a newer sequence. */
static int
pointer_not_back(struct pub *p, const char *rel, const struct trust_doc *rd)
{
	char *path = path_join(p->dir, rel), *data = NULL;
	struct trust_doc *old = NULL;
	size_t len;
	int r = 0;

	if (fileio_read_at(AT_FDCWD, path, TRUST_DOC_MAX, &data, &len) == 0 &&
	    trust_doc_decode(data, len, path, &old) == 0 && old->kind == TRUST_KIND_POINTER &&
	    (old->sequence > rd->sequence ||
	    (old->sequence == rd->sequence && strcmp(old->release, rd->release) != 0))) {
		log_error("%s points at release %s (sequence %" PRIu64 "); release %s (sequence %"
		    PRIu64 ") is older, and every site would refuse it: cut it again as a new "
		    "release to go back", path, old->release, old->sequence, rd->release,
		    rd->sequence);
		r = DS_ERR_PRECONDITION;
	}
	trust_doc_free(old);
	free(data);
	free(path);
	return r;
}

/* The signed pointer of the release's channel, checked as a site would, written last. */
static int
put_pointer(struct pub *p, const struct publisher_opts *o, const struct trust_doc *rd,
    const struct trust_doc *keys)
{
	struct trust_doc *ptr = xcalloc(1, sizeof(*ptr));
	char *rel = publish_path_pointer(rd->channel), *path = NULL, *data = NULL;
	time_t now = time(NULL);
	size_t len;
	int r;

	if ((r = pointer_not_back(p, rel, rd)) != 0)
		goto out;
	ptr->kind = TRUST_KIND_POINTER;
	ptr->channel = xstrdup(rd->channel);
	ptr->release = xstrdup(rd->release);
	ptr->sequence = rd->sequence;
	trust_doc_digest(rd, ptr->release_digest);
	ptr->created = (int64_t)now;
	ptr->expires = (int64_t)now + (int64_t)o->expires_in;
	/* Checked as a site will check it, before it replaces the old one. */
	if ((r = trust_doc_sign(ptr, &o->pointer_key, 1)) != 0 ||
	    (r = trust_pointer_check(ptr, keys, rd, now, "publish")) != 0)
		goto out;
	trust_doc_encode(ptr, &data, &len);
	path = path_join(p->dir, rel);
	free(temp_for(p, rel));		/* makes channels/ */
	if (fileio_write_atomic(path, data, len) != 0) {
		log_errno("%s", path);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	p->rep->expires = ptr->expires;
out:
	trust_doc_free(ptr);
	free(data);
	free(path);
	free(rel);
	return r;
}

/* The pointer key must be one sites take for pointers: checked before anything is written. */
static int
pointer_key_check(const struct trust_doc *keys, const struct ed25519_key *key)
{
	enum trust_role role = keys->threshold[TRUST_ROLE_TIMESTAMP] > 0 ? TRUST_ROLE_TIMESTAMP :
	    TRUST_ROLE_RELEASE;
	char id[ED25519_KEYID_HEX_LEN + 1];
	uint8_t pub[ED25519_PUBLIC_LEN];
	const struct trust_key *k;

	ed25519_public(key, pub);
	ed25519_keyid(pub, id);
	k = trust_keys_find(keys, id);
	if (k != NULL && k->role == role)
		return 0;
	log_error("key %.16s… cannot sign pointers: keys document version %" PRIu64 " takes "
	    "them from its %s keys; give --key with one", id, keys->version,
	    trust_role_name(role));
	return DS_ERR_CONFIG;
}

/* Everything written so far reaches the disk before the pointer names it. */
static void
flush_tree(const char *dir)
{
#ifdef HAVE_SYNCFS
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd != -1) {
		(void)syncfs(fd);
		close(fd);
		return;
	}
#endif
	(void)dir;
	sync();
}

int
publisher_run(struct store *store, const struct publisher_opts *o, struct publisher_report *rep)
{
	struct pub p = { store, o->dir, rep };
	struct trust_doc *rd = NULL, **chain = NULL;
	struct manifest *m = NULL;
	struct publish_index full;
	char *id = NULL, *raw = NULL, *mdata = NULL, *rel = NULL, **ids = NULL;
	uint8_t digest[HASH_LEN], rdigest[HASH_LEN];
	size_t raw_len, mlen, nchain = 0, nids = 0;
	int r;

	memset(rep, 0, sizeof(*rep));
	memset(&full, 0, sizeof(full));
	if (path_mkdirs(o->dir) == -1) {
		log_errno("%s", o->dir);
		return DS_ERR_SYSTEM;
	}
	if (o->release != NULL)
		id = xstrdup(o->release);
	else if ((r = store_release_latest(store, &id)) != 0)
		goto out;
	if ((r = store_release_load(store, id, &m)) != 0)
		goto out;
	r = signing_release_load(store, id, &rd, &raw, &raw_len);
	if (r == DS_ERR_NOTFOUND) {
		log_error("release %s is not signed: a mirror serves only signed releases (set "
		    "distribution.signing_key and cut it again)", id);
		r = DS_ERR_CONFIG;
	}
	if (r != 0)
		goto out;
	manifest_digest(m, digest);
	if (memcmp(digest, rd->manifest, HASH_LEN) != 0) {
		log_error("release %s: its signature does not cover its manifest", id);
		r = DS_ERR_SIGNATURE;
		goto out;
	}
	if ((r = signing_chain_load(store, &chain, &nchain)) != 0)
		goto out;
	if (nchain == 0) {
		log_error("%s: no keys document: a mirror serves only signed releases "
		    "(see 'distsync keys init')", store_dir(store));
		r = DS_ERR_CONFIG;
		goto out;
	}
	if ((r = pointer_key_check(chain[nchain - 1], o->pointer_key)) != 0)
		goto out;
	signing_chain_free(chain, nchain);
	chain = NULL;
	nchain = 0;
	rep->release = xstrdup(id);
	rep->channel = xstrdup(rd->channel);
	rep->sequence = rd->sequence;
	/* Content first, what names it after, the pointer last: a mirror copied in this order is never torn. */
	if ((r = put_objects(&p, m, digest, &full)) != 0)
		goto out;
	if ((r = store_release_list(store, &ids, &nids)) != 0)
		goto out;
	{
		uint8_t (*seen)[HASH_LEN] = xcalloc(o->deltas + 1, HASH_LEN);
		size_t mine = nids, done = 0, nseen = 0;

		for (size_t i = 0; i < nids; i++)
			if (strcmp(ids[i], id) == 0)
				mine = i;
		/* The last N releases before this one (releases cut later are not its past). */
		for (size_t i = mine; r == 0 && i-- > 0 && done < o->deltas; done++) {
			struct manifest *old = NULL;
			uint8_t from[HASH_LEN];
			int dup = 0;

			if ((r = store_release_load(store, ids[i], &old)) != 0)
				break;
			/* Releases with one manifest share an index. */
			manifest_digest(old, from);
			for (size_t j = 0; j < nseen; j++)
				dup |= memcmp(seen[j], from, HASH_LEN) == 0;
			memcpy(seen[nseen++], from, HASH_LEN);
			if (!dup)
				r = put_pair(&p, old, m, digest, &full);
			manifest_free(old);
		}
		free(seen);
		if (r != 0)
			goto out;
	}
	manifest_encode(m, &mdata, &mlen);
	rel = publish_path_manifest(digest);
	if ((r = put_bytes(&p, rel, mdata, mlen, 0)) != 0)
		goto out;
	free(rel);
	trust_doc_digest(rd, rdigest);
	rel = publish_path_release(rdigest);
	if ((r = put_bytes(&p, rel, raw, raw_len, 0)) != 0 ||
	    (r = put_keys(&p, &chain, &nchain)) != 0)
		goto out;
	flush_tree(o->dir);
	r = put_pointer(&p, o, rd, chain[nchain - 1]);
out:
	publish_index_release(&full);
	signing_chain_free(chain, nchain);
	trust_doc_free(rd);
	manifest_free(m);
	xfree_strv(ids);
	free(rel);
	free(mdata);
	free(raw);
	free(id);
	return r;
}
