/* A site's pull from static HTTP mirrors of a published tree (mirror-pull.h). */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/path.h"
#include "base/xmalloc.h"
#include "codec/delta.h"
#include "config/config.h"
#include "repo/manifest.h"
#include "repo/publish.h"
#include "repo/trust.h"
#include "session/apply.h"
#include "session/mirror-pull.h"
#include "site/commit.h"
#include "site/site.h"
#include "site/stage.h"
#include "site/target.h"
#include "site/trustdb.h"
#include "wire/mirror.h"
#include "wire/proto.h"

#define MANIFEST_MAX	((size_t)1 << 30)	/* bytes of a release manifest */

struct mp {
	const struct mirror_pull_options *o;
	const char		*who;		/* the upstream's name */
	struct mirror_set	*m;
	struct target		*t;
	struct trust_doc	*ptr, *rel, **chain;
	size_t			 nchain;
	uint8_t			*blob;		/* the signature bundle of rel */
	size_t			 blob_len;
	struct manifest		*to;
	struct manifest		*current;	/* the site's release, or NULL */
	struct publish_index	 ix, full;	/* FROM-TO (when published) and TO */
	int			 have_ix, have_full;
	uint64_t		 wire;		/* bytes downloaded */
	uint64_t		 done, total;	/* of the downloads planned */
	uint64_t		 objects;	/* objects staged */
};

static void
mp_release(struct mp *p)
{
	mirror_set_free(p->m);
	trust_doc_free(p->ptr);
	trust_doc_free(p->rel);
	trust_chain_free(p->chain, p->nchain);
	free(p->blob);
	manifest_free(p->to);
	manifest_free(p->current);
	publish_index_release(&p->ix);
	publish_index_release(&p->full);
	target_close(p->t);
}

/* A small document of the tree, from the mirror in use or the next ones. */
static int
get_doc(struct mp *p, const char *rel, size_t max, char **data, size_t *len, int optional)
{
	return mirror_get_opt(p->m, rel, max, data, len, optional);
}

/* Decodes DATA as a signed document of KIND, or says which mirror sent junk. */
static int
decode_doc(struct mp *p, const char *rel, const char *data, size_t len, enum trust_kind kind,
    struct trust_doc **out)
{
	char *name = xasprintf("%s/%s", mirror_current(p->m), rel);
	int r;

	r = trust_doc_decode(data, len, name, out);
	if (r == 0 && (*out)->kind != kind) {
		log_error("%s: a %s document, not a %s one", name, trust_kind_name((*out)->kind),
		    trust_kind_name(kind));
		trust_doc_free(*out);
		*out = NULL;
		r = DS_ERR_INVALID;
	}
	free(name);
	return r;
}

/* The channel's pointer and the release document it names (by its digest). */
static int
fetch_release(struct mp *p, const char *channel)
{
	char *rel = publish_path_pointer(channel), *data = NULL;
	uint8_t digest[HASH_LEN];
	size_t len;
	int r;

	if ((r = get_doc(p, rel, TRUST_DOC_MAX, &data, &len, 0)) != 0 ||
	    (r = decode_doc(p, rel, data, len, TRUST_KIND_POINTER, &p->ptr)) != 0)
		goto out;
	if (strcmp(p->ptr->channel, channel) != 0) {
		log_error("%s/%s: the pointer of channel %s", mirror_current(p->m), rel,
		    p->ptr->channel);
		r = DS_ERR_SIGNATURE;
		goto out;
	}
	free(rel);
	free(data);
	data = NULL;
	rel = publish_path_release(p->ptr->release_digest);
	if ((r = get_doc(p, rel, TRUST_DOC_MAX, &data, &len, 0)) != 0)
		goto out;
	hash_bytes(data, len, digest);
	if (memcmp(digest, p->ptr->release_digest, HASH_LEN) != 0) {
		log_error("%s/%s: not the document its name says (wrong SHA-256)",
		    mirror_current(p->m), rel);
		r = DS_ERR_CORRUPT;
		goto out;
	}
	r = decode_doc(p, rel, data, len, TRUST_KIND_RELEASE, &p->rel);
out:
	free(data);
	free(rel);
	return r;
}

/* Keys documents 1..the release's keys version: the chain the site walks. */
static int
fetch_keys(struct mp *p)
{
	size_t alloc = 0;
	int r = 0;

	if (p->rel->keys_version >= TRUST_BUNDLE_DOCS) {
		log_error("%s: release %s claims keys version %" PRIu64 "", mirror_current(p->m),
		    p->rel->release, p->rel->keys_version);
		return DS_ERR_SIGNATURE;
	}
	for (uint64_t v = 1; v <= p->rel->keys_version && r == 0; v++) {
		char *rel = publish_path_keys(v), *data = NULL;
		struct trust_doc *d = NULL;
		size_t len;

		if ((r = get_doc(p, rel, TRUST_DOC_MAX, &data, &len, 0)) == 0 &&
		    (r = decode_doc(p, rel, data, len, TRUST_KIND_KEYS, &d)) == 0 &&
		    d->version != v) {
			log_error("%s/%s: keys document version %" PRIu64, mirror_current(p->m), rel,
			    d->version);
			r = DS_ERR_SIGNATURE;
		}
		if (r == 0) {
			p->chain = xgrow(p->chain, &alloc, p->nchain + 1, sizeof(*p->chain));
			p->chain[p->nchain++] = d;
			d = NULL;
		}
		trust_doc_free(d);
		free(data);
		free(rel);
	}
	return r;
}

/*
 * The site's checks before anything is downloaded: the release against its
 * pinned root and its record (chain, signature, anti-rollback, clock), then
 * the pointer against the newest keys (signed, the same release, fresh).
 */
static int
check_trust(struct mp *p)
{
	const struct config_host *h = p->o->host;
	struct trustdb_pending *pending = NULL;
	time_t now = time(NULL);
	int r;

	trust_bundle_encode(p->rel, p->chain, p->nchain, &p->blob, &p->blob_len);
	r = trustdb_check(p->t, h->trust_root, xstrv_len(h->trust_root), p->blob, p->blob_len,
	    p->rel->release, p->rel->manifest, now, mirror_current(p->m), &pending);
	if (r == 0)
		r = trust_pointer_check(p->ptr, trustdb_pending_keys(pending), p->rel, now,
		    mirror_current(p->m));
	trustdb_pending_free(pending);
	return r;
}

/* The release's manifest, by the digest the signed release document gives. */
static int
fetch_manifest(struct mp *p)
{
	char *rel = publish_path_manifest(p->rel->manifest), *data = NULL;
	uint8_t digest[HASH_LEN];
	size_t len;
	int r;

	if ((r = get_doc(p, rel, MANIFEST_MAX, &data, &len, 0)) != 0)
		goto out;
	hash_bytes(data, len, digest);
	if (memcmp(digest, p->rel->manifest, HASH_LEN) != 0) {
		log_error("%s/%s: not the manifest release %s was signed with",
		    mirror_current(p->m), rel, p->rel->release);
		r = DS_ERR_CORRUPT;
		goto out;
	}
	r = manifest_decode(data, len, rel, &p->to) != 0 ? DS_ERR_CORRUPT : 0;
out:
	free(data);
	free(rel);
	return r;
}

/*
 * Everything the site must know before it downloads an object, from one
 * mirror after another until one serves a pointer and release the site can
 * trust: a stale, expired or altered mirror is passed over.
 */
static int
fetch_metadata(struct mp *p)
{
	const char *channel = p->o->config->distribution.channel;
	int r;

	for (;;) {
		trust_doc_free(p->ptr);
		trust_doc_free(p->rel);
		trust_chain_free(p->chain, p->nchain);
		free(p->blob);
		manifest_free(p->to);
		p->ptr = p->rel = NULL;
		p->chain = NULL;
		p->nchain = 0;
		p->blob = NULL;
		p->to = NULL;
		if ((r = fetch_release(p, channel)) == 0 && (r = fetch_keys(p)) == 0 &&
		    (r = check_trust(p)) == 0 && (r = fetch_manifest(p)) == 0)
			return 0;
		if (r == DS_ERR_CONNECT || r == DS_ERR_TIMEOUT || r == DS_ERR_SYSTEM)
			return r;
		if (mirror_next(p->m) != 0)
			return r == DS_ERR_INVALID || r == DS_ERR_CORRUPT || r == DS_ERR_NOTFOUND ||
			    r == DS_ERR_PEER ? DS_ERR_SIGNATURE : r;
	}
}

/* The index of what to download: from the site's release when published, and the whole one. */
static int
fetch_indexes(struct mp *p)
{
	uint8_t to[HASH_LEN], from[HASH_LEN];
	char *rel, *data = NULL;
	size_t len;
	int r;

	manifest_digest(p->to, to);
	if (p->current != NULL) {
		manifest_digest(p->current, from);
		rel = publish_path_index(from, to);
		r = get_doc(p, rel, PUBLISH_INDEX_MAX, &data, &len, 1);
		if (r == 0 && publish_index_decode(data, len, rel, &p->ix) == 0 &&
		    memcmp(p->ix.to, to, HASH_LEN) == 0 && p->ix.has_from &&
		    memcmp(p->ix.from, from, HASH_LEN) == 0)
			p->have_ix = 1;
		else
			publish_index_release(&p->ix);
		free(data);
		data = NULL;
		free(rel);
		if (r != 0 && r != DS_ERR_NOTFOUND)
			return r;
	}
	rel = publish_path_index(NULL, to);
	if ((r = get_doc(p, rel, PUBLISH_INDEX_MAX, &data, &len, 0)) == 0 &&
	    (r = publish_index_decode(data, len, rel, &p->full)) == 0 &&
	    (p->full.has_from || memcmp(p->full.to, to, HASH_LEN) != 0)) {
		log_error("%s/%s: the index of another release", mirror_current(p->m), rel);
		r = DS_ERR_CORRUPT;
	}
	p->have_full = r == 0;
	free(data);
	free(rel);
	return r;
}

/* A file of the site holding content HASH (a patch's basis): staged, or in its tree. */
static int
open_basis(struct mp *p, const uint8_t hash[HASH_LEN])
{
	int fd;

	if ((fd = stage_object_open(p->t, hash)) != -1)
		return fd;
	for (size_t i = 0; p->current != NULL && i < p->current->count; i++) {
		const struct manifest_entry *e = &p->current->entries[i];

		if (e->type != MANIFEST_FILE || memcmp(e->hash, hash, HASH_LEN) != 0)
			continue;
		fd = path_openat(target_root_fd(p->t), e->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
		if (fd != -1)
			return fd;
	}
	return -1;
}

/* Whether the site holds content HASH to patch against (open_basis will find it). */
static int
holds(struct mp *p, const uint8_t hash[HASH_LEN])
{
	if (stage_has(p->t, hash))
		return 1;
	for (size_t i = 0; p->current != NULL && i < p->current->count; i++)
		if (p->current->entries[i].type == MANIFEST_FILE &&
		    memcmp(p->current->entries[i].hash, hash, HASH_LEN) == 0)
			return 1;
	return 0;
}

static void
fetch_progress(uint64_t received, void *arg)
{
	struct mp *p = arg;

	if (p->o->progress != NULL)
		p->o->progress(p->o->progress_arg, p->wire + received, p->done + received, p->total);
}

/*
 * Downloads entry E into staging (resumed at its byte), decodes it against
 * BASIS (-1: none) and stages the object once its SHA-256 is the one the
 * signed manifest gives. A mirror that served wrong bytes is passed over.
 */
static int
fetch_entry(struct mp *p, const struct publish_entry *e, int basis)
{
	char *rel = publish_path_entry(e);
	uint8_t got[HASH_LEN];
	uint64_t have, size, received, len;
	int efd = -1, ofd = -1, r;

	for (;;) {
		if ((r = stage_encoded_open(p->t, e->hash, e->encoding, &efd, &have)) != 0)
			break;
		if (have > e->bytes && (r = stage_encoded_seek(p->t, e->hash, e->encoding, efd, 0)) != 0)
			break;
		if (have > e->bytes)
			have = 0;
		size = have;
		if (have < e->bytes) {
			r = mirror_fetch(p->m, rel, efd, have, publish_fetch_max(e), fetch_progress, p,
			    &size, &received);
			p->wire += received;
			p->done += received;
			if (r != 0)
				break;
		}
		if (size == e->bytes && lseek(efd, 0, SEEK_SET) == 0 &&
		    (r = stage_open(p->t, e->hash, 0, &ofd)) == 0) {
			r = delta_decode((enum delta_encoding)e->encoding, basis, efd, ofd, e->size, &len,
			    got);
			if (r == 0 && len == e->size && memcmp(got, e->hash, HASH_LEN) == 0) {
				r = stage_finish_hashed(p->t, e->hash, ofd);
				ofd = -1;
				stage_encoded_remove(p->t, e->hash, e->encoding);
				p->objects++;
				break;
			}
			stage_abort(p->t, e->hash, ofd);
			ofd = -1;
		} else if (r != 0)
			break;
		/* Wrong bytes: not this mirror's to give again. */
		log_warn("mirror %s: %s does not decode to the object the signed manifest names; "
		    "trying the next mirror", mirror_current(p->m), rel);
		close(efd);
		efd = -1;
		stage_encoded_remove(p->t, e->hash, e->encoding);
		if (mirror_next(p->m) != 0) {
			log_error("%s: no mirror serves it right", rel);
			r = DS_ERR_CORRUPT;
			break;
		}
	}
	if (efd != -1)
		close(efd);
	free(rel);
	return r;
}

/* Downloads and stages every object the release needs that the site does not hold. */
static int
fetch_objects(struct mp *p)
{
	uint8_t (*missing)[HASH_LEN] = NULL;
	const struct publish_entry **plan = NULL;
	size_t count = 0;
	int r;

	if ((r = commit_missing(p->t, p->to, &missing, &count)) != 0 || count == 0)
		goto out;
	if ((r = fetch_indexes(p)) != 0)
		goto out;
	plan = xcalloc(count, sizeof(*plan));
	for (size_t i = 0; i < count; i++) {
		const struct publish_entry *e = p->have_ix ? publish_index_find(&p->ix, missing[i]) :
		    NULL;

		if (e == NULL || (e->has_basis && !holds(p, e->basis)))
			e = publish_index_find(&p->full, missing[i]);
		if (e == NULL) {
			log_error("%s: the index lacks an object of release %s", mirror_current(p->m),
			    p->rel->release);
			r = DS_ERR_CORRUPT;
			goto out;
		}
		plan[i] = e;
		p->total += e->bytes;
	}
	for (size_t i = 0; i < count && r == 0; i++) {
		const struct publish_entry *e = plan[i];
		int basis = -1;

		if (e->has_basis && (basis = open_basis(p, e->basis)) == -1)
			e = publish_index_find(&p->full, missing[i]);
		r = fetch_entry(p, e, basis);
		if (basis != -1)
			close(basis);
	}
out:
	free(plan);
	free(missing);
	return r;
}

int
mirror_pull_run(const struct mirror_pull_options *o, struct proto_result *res, uint64_t *bytes_in)
{
	const struct config_host *h = o->host;
	struct mirror_opts mo;
	struct apply_site as;
	struct mp p;
	int r;

	memset(&p, 0, sizeof(p));
	p.o = o;
	p.who = h->name;
	if (h->trust_root == NULL || h->trust_root[0] == NULL) {
		log_error("%s: a site that pulls from mirrors must pin the repository's root "
		    "(trust_root: the key id 'distsync keys' prints): a mirror is trusted for "
		    "nothing", h->name);
		return DS_ERR_CONFIG;
	}
	memset(&mo, 0, sizeof(mo));
	mo.ca_file = h->ca_file;
	mo.connect_timeout_ms = h->connect_timeout * 1000;
	mo.low_speed_time_s = h->idle_timeout;
	mo.rate = h->bwlimit;
	if ((r = mirror_set_new(h->mirrors, xstrv_len(h->mirrors), &mo, &p.m)) != 0)
		return r;
	if ((r = site_open(h->path, h->state, o->lock_timeout, &p.t)) != 0 ||
	    (r = target_current(p.t, NULL, &p.current)) != 0 ||
	    (r = fetch_metadata(&p)) != 0)
		goto out;
	if (p.current != NULL && p.current->count == 0) {
		manifest_free(p.current);
		p.current = NULL;
	}
	if ((o->flags & PROTO_FLAG_DRY_RUN) == 0 && (r = fetch_objects(&p)) != 0)
		goto out;
	memset(&as, 0, sizeof(as));
	as.t = p.t;
	as.trusted = o->config;
	as.trusted_host = h;
	as.host = o->site != NULL ? o->site : h;
	as.pins = h->trust_root;
	as.who = mirror_current(p.m);
	r = apply_release(&as, p.rel->release, p.to, p.blob, p.blob_len, o->flags, res, NULL);
	res->objects = p.objects;
	res->bytes = p.wire;
out:
	*bytes_in += p.wire;
	mp_release(&p);
	return r;
}
