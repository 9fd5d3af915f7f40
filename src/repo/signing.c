/* The store's keys chain and signed release documents (signing.h). */
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
#include "base/xmalloc.h"
#include "repo/manifest.h"
#include "repo/signing.h"
#include "repo/store.h"
#include "repo/trust.h"

void
signing_chain_free(struct trust_doc **docs, size_t count)
{
	for (size_t i = 0; i < count; i++)
		trust_doc_free(docs[i]);
	free(docs);
}

/* Reads and decodes FILE; DS_ERR_NOTFOUND (not logged) when it is absent. */
static int
load_doc(const char *file, struct trust_doc **out, char **raw, size_t *raw_len)
{
	char *data;
	size_t len;
	int r;

	*out = NULL;
	if (fileio_read_at(AT_FDCWD, file, TRUST_DOC_MAX, &data, &len) != 0) {
		if (errno == ENOENT)
			return DS_ERR_NOTFOUND;
		log_errno("%s", file);
		return errno == EFBIG ? DS_ERR_INVALID : DS_ERR_SYSTEM;
	}
	r = trust_doc_decode(data, len, file, out);
	if (r == 0 && raw != NULL) {
		*raw = data;
		*raw_len = len;
		data = NULL;
	}
	free(data);
	return r;
}

int
signing_chain_load(const struct store *store, struct trust_doc ***docs, size_t *count)
{
	struct trust_doc **v = NULL;
	size_t n = 0, alloc = 0;
	int r = 0;

	*docs = NULL;
	*count = 0;
	for (uint64_t version = 1;; version++) {
		char *file = xasprintf("%s/keys/%" PRIu64 ".keys", store_dir(store), version);
		struct trust_doc *d;

		r = load_doc(file, &d, NULL, NULL);
		if (r == DS_ERR_NOTFOUND) {
			free(file);
			r = 0;
			break;
		}
		if (r == 0 && (d->kind != TRUST_KIND_KEYS || d->version != version)) {
			log_error("%s: not keys document version %" PRIu64, file, version);
			r = DS_ERR_SIGNATURE;
		}
		if (r == 0 && n > 0 && (r = trust_keys_check_next(v[n - 1], d)) != 0)
			log_error("%s: the chain of keys documents is broken here", file);
		free(file);
		if (r != 0) {
			trust_doc_free(d);
			break;
		}
		v = xgrow(v, &alloc, n + 1, sizeof(*v));
		v[n++] = d;
	}
	if (r != 0) {
		signing_chain_free(v, n);
		return r;
	}
	*docs = v;
	*count = n;
	return 0;
}

int
signing_chain_add(struct store *store, const struct trust_doc *d)
{
	struct trust_doc **chain = NULL;
	size_t n = 0, len;
	char *dir = NULL, *file = NULL, *data = NULL;
	int fd = -1, r;

	if ((r = signing_chain_load(store, &chain, &n)) != 0)
		return r;
	if (d->kind != TRUST_KIND_KEYS || (n == 0 && d->version != 1)) {
		log_error("the first keys document of a store must be version 1");
		r = DS_ERR_SIGNATURE;
		goto out;
	}
	if (n > 0 && (r = trust_keys_check_next(chain[n - 1], d)) != 0)
		goto out;
	dir = xasprintf("%s/keys", store_dir(store));
	if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
		log_errno("%s", dir);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	file = xasprintf("%s/%" PRIu64 ".keys", dir, d->version);
	trust_doc_encode(d, &data, &len);
	/* O_EXCL: a version once published is never rewritten (sites may hold it). */
	if ((fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644)) == -1 ||
	    fileio_write_all(fd, data, len) == -1 || fsync(fd) == -1) {
		log_errno("%s", file);
		if (fd != -1)
			unlink(file);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	r = 0;
out:
	if (fd != -1)
		close(fd);
	signing_chain_free(chain, n);
	free(data);
	free(file);
	free(dir);
	return r;
}

/* The next sequence: one more than any the store has given (its SEQUENCE file). */
static int
next_sequence(struct store *store, uint64_t *out)
{
	char *file = xasprintf("%s/releases/SEQUENCE", store_dir(store)), *data = NULL, *end;
	unsigned long long v = 0;
	int r = 0;

	if (fileio_read_at(AT_FDCWD, file, 64, &data, NULL) == 0) {
		errno = 0;
		v = strtoull(data, &end, 10);
		if (errno != 0 || end == data || (*end != '\n' && *end != '\0')) {
			log_error("%s: not a sequence number", file);
			r = DS_ERR_INVALID;
		}
	} else if (errno != ENOENT) {
		log_errno("%s", file);
		r = DS_ERR_SYSTEM;
	}
	*out = (uint64_t)v + 1;
	free(data);
	free(file);
	return r;
}

int
signing_key_check(const struct store *store, const struct ed25519_key *key)
{
	struct trust_doc **chain = NULL;
	const struct trust_key *listed;
	char keyid[ED25519_KEYID_HEX_LEN + 1];
	uint8_t pub[ED25519_PUBLIC_LEN];
	size_t n = 0;
	int r;

	ed25519_public(key, pub);
	ed25519_keyid(pub, keyid);
	if ((r = signing_chain_load(store, &chain, &n)) != 0)
		return r;
	if (n == 0) {
		log_error("%s: the store has no keys document, so no site could verify a "
		    "signature: run 'distsync keys init' with the root key first",
		    store_dir(store));
		r = DS_ERR_CONFIG;
	} else if ((listed = trust_keys_find(chain[n - 1], keyid)) == NULL ||
	    listed->role != TRUST_ROLE_RELEASE) {
		log_error("signing key %.16s… is not a release key of keys document version %"
		    PRIu64 ": set distribution.signing_key to one ('distsync keys' lists them), "
		    "or add it with 'distsync keys update --sign ROOT.key --add release:KEY.pub'",
		    keyid, chain[n - 1]->version);
		r = DS_ERR_CONFIG;
	}
	signing_chain_free(chain, n);
	return r;
}

int
signing_release_sign(struct store *store, const char *id, const struct manifest *m,
    struct ed25519_key *key, const char *channel, struct trust_doc **out)
{
	struct trust_doc **chain = NULL, *d = xcalloc(1, sizeof(*d));
	char *file = NULL, *seqfile = NULL, *data = NULL, seqtext[32];
	size_t n = 0, len;
	int r;

	if (out != NULL)
		*out = NULL;
	if ((r = signing_key_check(store, key)) != 0 ||
	    (r = signing_chain_load(store, &chain, &n)) != 0)
		goto out;
	d->kind = TRUST_KIND_RELEASE;
	d->release = xstrdup(id);
	d->channel = xstrdup(channel);
	d->created = (int64_t)time(NULL);
	d->keys_version = chain[n - 1]->version;
	manifest_digest(m, d->manifest);
	if ((r = next_sequence(store, &d->sequence)) != 0 ||
	    (r = trust_doc_sign(d, &key, 1)) != 0)
		goto out;
	/* The sequence is spent before the document exists: never given twice. */
	seqfile = xasprintf("%s/releases/SEQUENCE", store_dir(store));
	snprintf(seqtext, sizeof(seqtext), "%" PRIu64 "\n", d->sequence);
	if (fileio_write_atomic(seqfile, seqtext, strlen(seqtext)) != 0) {
		log_errno("%s", seqfile);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	file = xasprintf("%s/releases/%s.release", store_dir(store), id);
	trust_doc_encode(d, &data, &len);
	if (fileio_write_atomic(file, data, len) != 0) {
		log_errno("%s", file);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	if (out != NULL) {
		*out = d;
		d = NULL;
	}
	r = 0;
out:
	signing_chain_free(chain, n);
	trust_doc_free(d);
	free(data);
	free(file);
	free(seqfile);
	return r;
}

int
signing_release_load(const struct store *store, const char *id, struct trust_doc **out,
    char **raw, size_t *raw_len)
{
	char *file = xasprintf("%s/releases/%s.release", store_dir(store), id);
	int r;

	r = load_doc(file, out, raw, raw_len);
	free(file);
	return r;
}
