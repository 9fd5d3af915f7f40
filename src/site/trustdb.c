/* A site's record of trust and the check of a signed release (trustdb.h). */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "repo/trust.h"
#include "site/target.h"
#include "site/trustdb.h"

#define TRUSTDB_DIR	"trust"
#define PINNED_MAX	4096

struct trustdb_pending {
	struct trust_doc *keys_doc;	/* the newest keys document */
	char		*keys;		/* the newest keys document, encoded */
	size_t		 keys_len;
	char		*marks;		/* the marks with this release, encoded */
	size_t		 marks_len;
	char		*pinned;	/* the pins, one per line */
	size_t		 pinned_len;
};

void
trustdb_pending_free(struct trustdb_pending *p)
{
	if (p == NULL)
		return;
	trust_doc_free(p->keys_doc);
	free(p->keys);
	free(p->marks);
	free(p->pinned);
	free(p);
}

/* Reads STATE/trust/NAME; *out NULL (and 0 returned) when the file is absent. */
static int
read_state(struct target *t, const char *name, size_t max, char **out, size_t *len)
{
	char *path = xasprintf(TRUSTDB_DIR "/%s", name);
	int r = 0;

	*out = NULL;
	*len = 0;
	if (fileio_read_at(target_state_fd(t), path, max, out, len) != 0 && errno != ENOENT) {
		log_errno("%s/%s", target_state_dir(t), path);
		r = errno == EFBIG ? DS_ERR_INVALID : DS_ERR_SYSTEM;
	}
	free(path);
	return r;
}

static char *
pins_text(char *const *pinned, size_t n, size_t *len)
{
	size_t total = 1, off = 0;
	char *s;

	for (size_t i = 0; i < n; i++)
		total += strlen(pinned[i]) + 1;
	s = xmalloc(total);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(pinned[i]);

		memcpy(s + off, pinned[i], l);
		s[off + l] = '\n';
		off += l + 1;
	}
	s[off] = '\0';
	*len = off;
	return s;
}

/*
 * The newest keys document the site can trust for this session: the one it
 * recorded (when walked from the same pins), carried forward through CHAIN's
 * newer versions; or, with nothing recorded, CHAIN from version 1.
 */
static int
walk_chain(struct target *t, char *const *pinned, size_t n, struct trust_doc **chain,
    size_t nchain, const char *pins, const char *who, struct trust_doc **newest)
{
	struct trust_doc *cur = NULL;
	char *data = NULL, *old_pins = NULL;
	size_t len, plen;
	int r;

	*newest = NULL;
	if ((r = read_state(t, "pinned", PINNED_MAX, &old_pins, &plen)) != 0 ||
	    (r = read_state(t, "keys", TRUST_DOC_MAX, &data, &len)) != 0)
		goto out;
	if (data != NULL && old_pins != NULL && strcmp(old_pins, pins) == 0) {
		if ((r = trust_doc_decode(data, len, "trust/keys", &cur)) != 0 ||
		    cur->kind != TRUST_KIND_KEYS) {
			log_error("%s: %s/trust/keys is damaged: remove the trust/ directory to walk "
			    "the chain again from the pinned root", who, target_state_dir(t));
			r = DS_ERR_SIGNATURE;
			goto out;
		}
	} else {
		if (nchain == 0) {
			log_error("%s: the release came without the repository's keys documents",
			    who);
			r = DS_ERR_SIGNATURE;
			goto out;
		}
		if ((r = trust_keys_check_first(chain[0], pinned, n)) != 0) {
			r = DS_ERR_SIGNATURE;
			goto out;
		}
		/* Decoded again: cur is owned here, chain by the caller. */
		trust_doc_encode(chain[0], &data, &len);
		if ((r = trust_doc_decode(data, len, who, &cur)) != 0)
			goto out;
	}
	for (size_t i = 0; i < nchain; i++) {
		char *enc;
		size_t elen;

		if (chain[i]->version <= cur->version)
			continue;
		if ((r = trust_keys_check_next(cur, chain[i])) != 0) {
			r = DS_ERR_SIGNATURE;
			goto out;
		}
		trust_doc_free(cur);
		cur = NULL;
		trust_doc_encode(chain[i], &enc, &elen);
		r = trust_doc_decode(enc, elen, who, &cur);
		free(enc);
		if (r != 0)
			goto out;
	}
	*newest = cur;
	cur = NULL;
	r = 0;
out:
	trust_doc_free(cur);
	free(data);
	free(old_pins);
	return r;
}

int
trustdb_check(struct target *t, char *const *pinned, size_t n, const void *blob, size_t len,
    const char *release_id, const uint8_t digest[HASH_LEN], time_t now, const char *who,
    struct trustdb_pending **pending)
{
	struct trust_doc *rel = NULL, **chain = NULL, *keys = NULL;
	struct trust_marks marks = { 0 };
	struct trustdb_pending *p = NULL;
	char *mdata = NULL, *pins;
	size_t nchain = 0, mlen, plen;
	int r;

	*pending = NULL;
	pins = pins_text(pinned, n, &plen);
	if (blob == NULL || len == 0) {
		log_error("%s: release %s is not signed, and this site applies only releases "
		    "signed under its pinned root (trust_root)", who, release_id);
		r = DS_ERR_SIGNATURE;
		goto out;
	}
	if ((r = trust_bundle_decode(blob, len, who, &rel, &chain, &nchain)) != 0) {
		r = DS_ERR_SIGNATURE;
		goto out;
	}
	if (strcmp(rel->release, release_id) != 0) {
		log_error("%s: the signature is for release %s, not %s", who, rel->release,
		    release_id);
		r = DS_ERR_SIGNATURE;
		goto out;
	}
	if ((r = walk_chain(t, pinned, n, chain, nchain, pins, who, &keys)) != 0 ||
	    (r = trust_release_check(rel, keys, digest, now, who)) != 0)
		goto out;
	if ((r = read_state(t, "marks", 1u << 20, &mdata, &mlen)) != 0)
		goto out;
	if (mdata != NULL && trust_marks_decode(mdata, mlen, "trust/marks", &marks) != 0) {
		log_error("%s: %s/trust/marks is damaged; refusing rather than forgetting which "
		    "releases were applied", who, target_state_dir(t));
		r = DS_ERR_SIGNATURE;
		goto out;
	}
	if ((r = trust_rollback_check(&marks, keys, rel, who)) != 0)
		goto out;
	trust_marks_update(&marks, keys, rel);
	p = xcalloc(1, sizeof(*p));
	trust_doc_encode(keys, &p->keys, &p->keys_len);
	trust_marks_encode(&marks, &p->marks, &p->marks_len);
	p->pinned = pins;
	p->pinned_len = plen;
	pins = NULL;
	p->keys_doc = keys;
	keys = NULL;
	log_info("%s: release %s (sequence %" PRIu64 ") verified: signed by %.16s under keys "
	    "version %" PRIu64, who, rel->release, rel->sequence, rel->sigs[0].keyid,
	    p->keys_doc->version);
	*pending = p;
	r = 0;
out:
	if (r != 0)
		r = DS_ERR_SIGNATURE;
	trust_marks_release(&marks);
	trust_doc_free(rel);
	trust_doc_free(keys);
	trust_chain_free(chain, nchain);
	free(mdata);
	free(pins);
	return r;
}

int
trustdb_record(struct target *t, const struct trustdb_pending *p)
{
	int dfd, r = 0;

	if (mkdirat(target_state_fd(t), TRUSTDB_DIR, 0700) == -1 && errno != EEXIST) {
		log_errno("%s/" TRUSTDB_DIR, target_state_dir(t));
		return DS_ERR_SYSTEM;
	}
	dfd = openat(target_state_fd(t), TRUSTDB_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd == -1) {
		log_errno("%s/" TRUSTDB_DIR, target_state_dir(t));
		return DS_ERR_SYSTEM;
	}
	/* Keys before marks: marks never name a key the recorded document lacks. */
	if (fileio_write_atomic_at(dfd, "pinned", p->pinned, p->pinned_len) != 0 ||
	    fileio_write_atomic_at(dfd, "keys", p->keys, p->keys_len) != 0 ||
	    fileio_write_atomic_at(dfd, "marks", p->marks, p->marks_len) != 0 || fsync(dfd) != 0) {
		log_errno("%s/" TRUSTDB_DIR, target_state_dir(t));
		r = DS_ERR_SYSTEM;
	}
	close(dfd);
	return r;
}

int
trustdb_summary(struct target *t, uint64_t *keys_version, uint64_t *sequence)
{
	struct trust_doc *k = NULL;
	struct trust_marks marks = { 0 };
	char *data = NULL;
	size_t len;
	int r;

	*keys_version = 0;
	*sequence = 0;
	if ((r = read_state(t, "keys", TRUST_DOC_MAX, &data, &len)) != 0)
		return r;
	if (data != NULL && trust_doc_decode(data, len, "trust/keys", &k) == 0)
		*keys_version = k->version;
	free(data);
	data = NULL;
	if ((r = read_state(t, "marks", 1u << 20, &data, &len)) == 0 && data != NULL &&
	    trust_marks_decode(data, len, "trust/marks", &marks) == 0) {
		for (size_t i = 0; i < marks.count; i++)
			if (marks.marks[i].sequence > *sequence)
				*sequence = marks.marks[i].sequence;
	}
	trust_marks_release(&marks);
	trust_doc_free(k);
	free(data);
	return r;
}

const struct trust_doc *
trustdb_pending_keys(const struct trustdb_pending *p)
{
	return p->keys_doc;
}
