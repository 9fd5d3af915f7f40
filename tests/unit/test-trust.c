/*
 * Unit tests for ed25519.c and trust.c: keys on disk, signatures, the three
 * signed documents, the chain of keys documents, anti-rollback and expiry.
 * Every truncation and every bit flip of a signed document is refused (by
 * the decoder, or by the signature check). trustdb.c: a site's record of
 * trust, walked from its pinned root, refusing replays and revoked keys.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/ed25519.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "repo/trust.h"
#include "site/site.h"
#include "site/target.h"
#include "site/trustdb.h"
#include "tap.h"

#define NOW	((time_t)1796374800)	/* 2026-12-04T09:00:00Z */

static struct ed25519_key *root1, *root2, *rel1, *rel2, *stamp, *stranger;

static void
id_of(const struct ed25519_key *k, char id[ED25519_KEYID_HEX_LEN + 1])
{
	uint8_t pub[ED25519_PUBLIC_LEN];

	ed25519_public(k, pub);
	ed25519_keyid(pub, id);
}

static int
key_cmp(const void *a, const void *b)
{
	return strcmp(((const struct trust_key *)a)->id, ((const struct trust_key *)b)->id);
}

/* A keys document of VERSION naming ROOTS / RELEASES / STAMPS, signed by SIGNERS. */
static struct trust_doc *
keys_doc(uint64_t version, struct ed25519_key **roots, size_t nroots,
    struct ed25519_key **releases, size_t nrel, struct ed25519_key **stamps, size_t nstamps,
    struct ed25519_key **signers, size_t nsigners)
{
	struct trust_doc *d = xcalloc(1, sizeof(*d));
	struct ed25519_key **lists[] = { roots, releases, stamps };
	size_t counts[] = { nroots, nrel, nstamps };

	d->kind = TRUST_KIND_KEYS;
	d->version = version;
	d->created = NOW - 86400;
	d->keys = xcalloc(nroots + nrel + nstamps, sizeof(*d->keys));
	for (int role = 0; role < TRUST_ROLE_COUNT; role++) {
		for (size_t i = 0; i < counts[role]; i++) {
			struct trust_key *k = &d->keys[d->nkeys++];

			k->role = (enum trust_role)role;
			ed25519_public(lists[role][i], k->pub);
			ed25519_keyid(k->pub, k->id);
		}
		d->threshold[role] = counts[role] > 0 ? 1 : 0;
	}
	qsort(d->keys, d->nkeys, sizeof(*d->keys), key_cmp);
	if (trust_doc_sign(d, signers, nsigners) != 0) {
		printf("Bail out! cannot sign a keys document\n");
		exit(1);
	}
	return d;
}

static struct trust_doc *
release_doc(const char *id, uint64_t seq, const uint8_t manifest[HASH_LEN],
    struct ed25519_key *signer)
{
	struct trust_doc *d = xcalloc(1, sizeof(*d));

	d->kind = TRUST_KIND_RELEASE;
	d->release = xstrdup(id);
	d->sequence = seq;
	d->created = NOW - 3600;
	d->channel = xstrdup("stable");
	memcpy(d->manifest, manifest, HASH_LEN);
	d->keys_version = 1;
	if (trust_doc_sign(d, &signer, 1) != 0) {
		printf("Bail out! cannot sign a release document\n");
		exit(1);
	}
	return d;
}

/* Encodes D and decodes it again (a fresh copy, as a site would read it). */
static struct trust_doc *
reread(const struct trust_doc *d)
{
	struct trust_doc *out = NULL;
	char *data;
	size_t len;

	trust_doc_encode(d, &data, &len);
	if (trust_doc_decode(data, len, "reread", &out) != 0)
		out = NULL;
	free(data);
	return out;
}

static void
test_keys_on_disk(void)
{
	struct ed25519_key *k = ed25519_generate(), *back = NULL;
	uint8_t pub[ED25519_PUBLIC_LEN], pub2[ED25519_PUBLIC_LEN], sig[ED25519_SIG_LEN];
	struct stat st;

	ed25519_public(k, pub);
	CHECK(ed25519_save(k, "plain.key", NULL) == 0, "a key is saved");
	CHECK(stat("plain.key", &st) == 0 && (st.st_mode & 0777) == 0600, "with mode 0600");
	CHECK(ed25519_save(k, "plain.key", NULL) != 0, "an existing key file is never replaced");
	CHECK(ed25519_file_encrypted("plain.key") == 0, "an unencrypted key reads as such");
	CHECK(ed25519_load("plain.key", NULL, &back) == 0, "and loads without a passphrase");
	ed25519_public(back, pub2);
	CHECK(memcmp(pub, pub2, sizeof(pub)) == 0, "the same key comes back");
	ed25519_free(back);

	CHECK(ed25519_save(k, "secret.key", "correct horse") == 0, "a key is saved encrypted");
	CHECK(ed25519_file_encrypted("secret.key") == 1, "the file says it is encrypted");
	CHECK(ed25519_load("secret.key", NULL, &back) == DS_ERR_SIGNATURE && back == NULL,
	    "an encrypted key without its passphrase is refused");
	CHECK(ed25519_load("secret.key", "wrong", &back) == DS_ERR_SIGNATURE && back == NULL,
	    "a wrong passphrase is refused");
	CHECK(ed25519_load("secret.key", "correct horse", &back) == 0, "the right passphrase opens it");
	ed25519_public(back, pub2);
	CHECK(memcmp(pub, pub2, sizeof(pub)) == 0, "the same key comes back");
	CHECK(ed25519_sign(back, "abc", 3, sig) == 0 && ed25519_verify(pub, "abc", 3, sig),
	    "the loaded key signs");
	ed25519_free(back);
	CHECK(ed25519_load("absent.key", NULL, &back) == DS_ERR_NOTFOUND, "a missing key file: not found");
	CHECK(system("echo 'not a key' > junk.key") == 0 &&
	    ed25519_load("junk.key", NULL, &back) == DS_ERR_SIGNATURE, "junk is not a key");
	ed25519_free(k);
}

static void
test_signatures(void)
{
	uint8_t pub[ED25519_PUBLIC_LEN], other[ED25519_PUBLIC_LEN], sig[ED25519_SIG_LEN];
	char data[] = "distsync release 2026.12.0";
	int all = 1;

	ed25519_public(rel1, pub);
	ed25519_public(rel2, other);
	CHECK(ed25519_sign(rel1, data, sizeof(data), sig) == 0, "sign");
	CHECK(ed25519_verify(pub, data, sizeof(data), sig) == 1, "verify round trip");
	CHECK(ed25519_verify(other, data, sizeof(data), sig) == 0, "another key does not verify it");
	for (size_t bit = 0; bit < 8 * sizeof(data); bit++) {
		data[bit / 8] ^= (char)(1 << (bit % 8));
		all &= ed25519_verify(pub, data, sizeof(data), sig) == 0;
		data[bit / 8] ^= (char)(1 << (bit % 8));
	}
	CHECK(all, "every bit flip of the data fails verification");
	all = 1;
	for (size_t bit = 0; bit < 8 * ED25519_SIG_LEN; bit++) {
		sig[bit / 8] ^= (uint8_t)(1 << (bit % 8));
		all &= ed25519_verify(pub, data, sizeof(data), sig) == 0;
		sig[bit / 8] ^= (uint8_t)(1 << (bit % 8));
	}
	CHECK(all, "every bit flip of the signature fails verification");
	CHECK(ed25519_verify(pub, data, sizeof(data) - 1, sig) == 0, "truncated data fails");
}

static void
test_documents(void)
{
	struct ed25519_key *roots[] = { root1 }, *rels[] = { rel1 };
	struct trust_doc *k = keys_doc(1, roots, 1, rels, 1, NULL, 0, roots, 1);
	uint8_t manifest[HASH_LEN];
	struct trust_doc *r, *back, *mut;
	char *data;
	size_t len;
	int refused = 1, decoded = 0;

	hash_bytes("manifest bytes", 14, manifest);
	r = release_doc("2026.12.0", 7, manifest, rel1);
	back = reread(r);
	CHECK(back != NULL, "a release document round-trips");
	CHECK(back != NULL && strcmp(back->release, "2026.12.0") == 0 && back->sequence == 7 &&
	    strcmp(back->channel, "stable") == 0 && memcmp(back->manifest, manifest, HASH_LEN) == 0 &&
	    back->created == r->created && back->keys_version == 1,
	    "with every field");
	CHECK(back != NULL && trust_release_check(back, k, manifest, NOW, "site") == 0,
	    "and verifies against the keys document");
	trust_doc_free(back);

	/* Every truncation and every bit flip: refused by the decoder or by the check. */
	trust_doc_encode(r, &data, &len);
	log_set_level(LOG_LEVEL_SILENT);
	for (size_t cut = 0; cut < len; cut++) {
		mut = NULL;
		if (trust_doc_decode(data, cut, "cut", &mut) == 0 &&
		    trust_release_check(mut, k, manifest, NOW, "site") == 0)
			refused = 0;
		trust_doc_free(mut);
	}
	CHECK(refused, "every truncation of a release document is refused (%zu)", len);
	refused = 1;
	for (size_t bit = 0; bit < 8 * len; bit++) {
		data[bit / 8] ^= (char)(1 << (bit % 8));
		mut = NULL;
		if (trust_doc_decode(data, len, "flip", &mut) == 0) {
			decoded++;
			if (trust_release_check(mut, k, manifest, NOW, "site") == 0)
				refused = 0;
		}
		trust_doc_free(mut);
		data[bit / 8] ^= (char)(1 << (bit % 8));
	}
	log_set_level(LOG_LEVEL_INFO);
	CHECK(refused, "every bit flip of a release document is refused (%zu flips, %d decoded "
	    "and failed the signature)", 8 * len, decoded);
	free(data);

	/* Appended bytes, a second copy of a field, unsorted signatures. */
	{
		static const char *const bad[] = {
			"distsync-signed 2\n",
			"distsync-signed 1\nkind nonsense\n",
			"distsync-signed 1\nkind release\nrelease 1\nsequence 01\n",
			"distsync-signed 1\nkind release\nrelease 1\nsequence 1\ncreated 2026-02-30T00:00:00Z\n",
			"distsync-signed 1\r\nkind release\n",
			"distsync-signed  1\n",
		};
		int all = 1;

		log_set_level(LOG_LEVEL_SILENT);
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			mut = NULL;
			all &= trust_doc_decode(bad[i], strlen(bad[i]), "bad", &mut) == DS_ERR_INVALID;
			trust_doc_free(mut);
		}
		trust_doc_encode(r, &data, &len);
		data = xreallocarray(data, len + 2, 1);
		memcpy(data + len, "x\n", 2);
		mut = NULL;
		all &= trust_doc_decode(data, len + 2, "trailing", &mut) == DS_ERR_INVALID;
		trust_doc_free(mut);
		free(data);
		log_set_level(LOG_LEVEL_INFO);
		CHECK(all, "malformed documents and trailing bytes are refused");
	}

	/* Wrong key, altered manifest, wrong kind. */
	back = release_doc("2026.12.0", 7, manifest, stranger);
	log_set_level(LOG_LEVEL_SILENT);
	CHECK(trust_release_check(back, k, manifest, NOW, "site") == DS_ERR_SIGNATURE,
	    "a release signed by an unknown key is refused");
	trust_doc_free(back);
	back = release_doc("2026.12.0", 7, manifest, root1);
	CHECK(trust_release_check(back, k, manifest, NOW, "site") == DS_ERR_SIGNATURE,
	    "a release signed by a root key (not a release key) is refused");
	trust_doc_free(back);
	{
		uint8_t other[HASH_LEN];

		hash_bytes("altered manifest", 16, other);
		CHECK(trust_release_check(r, k, other, NOW, "site") == DS_ERR_SIGNATURE,
		    "a manifest altered after signing is refused");
	}
	CHECK(trust_release_check(k, k, manifest, NOW, "site") == DS_ERR_SIGNATURE,
	    "a keys document is not a release");
	CHECK(trust_release_check(r, k, manifest, 0, "site") == DS_ERR_SIGNATURE,
	    "a clock in 1970 is reported, not trusted");
	log_set_level(LOG_LEVEL_INFO);
	trust_doc_free(r);
	trust_doc_free(k);
}

static void
test_chain(void)
{
	struct ed25519_key *r1[] = { root1 }, *r2[] = { root2 }, *r12[] = { root1, root2 };
	struct ed25519_key *rel_a[] = { rel1 }, *rel_b[] = { rel2 };
	char id1[ED25519_KEYID_HEX_LEN + 1], id2[ED25519_KEYID_HEX_LEN + 1];
	char *pinned1[] = { id1 }, *pinned2[] = { id2 };
	struct trust_doc *v1, *v2, *v3, *v2_new_only, *v3_skip, *v1b;
	uint8_t manifest[HASH_LEN];
	struct trust_doc *old_rel, *new_rel;

	id_of(root1, id1);
	id_of(root2, id2);
	hash_bytes("m", 1, manifest);
	v1 = keys_doc(1, r1, 1, rel_a, 1, NULL, 0, r1, 1);
	/* v2 rotates the release key (rel1 revoked); v3 rotates the root to root2. */
	v2 = keys_doc(2, r1, 1, rel_b, 1, NULL, 0, r1, 1);
	v3 = keys_doc(3, r2, 1, rel_b, 1, NULL, 0, r12, 2);
	v2_new_only = keys_doc(2, r2, 1, rel_b, 1, NULL, 0, r2, 1);
	v3_skip = keys_doc(3, r1, 1, rel_b, 1, NULL, 0, r1, 1);
	v1b = reread(v1);

	log_set_level(LOG_LEVEL_SILENT);
	CHECK(v1b != NULL && trust_keys_check_first(v1b, pinned1, 1) == 0,
	    "version 1 signed by the pinned root is the start of the chain");
	CHECK(trust_keys_check_first(v1, pinned2, 1) == DS_ERR_SIGNATURE,
	    "version 1 of another root is refused");
	CHECK(trust_keys_check_first(v2, pinned1, 1) == DS_ERR_SIGNATURE,
	    "a chain must begin at version 1");
	CHECK(trust_keys_check_next(v1, v2) == 0, "v1 -> v2 (release key rotated) accepted");
	CHECK(trust_keys_check_next(v2, v3) == 0, "v2 -> v3 (root rotated, signed by old and new) accepted");
	CHECK(trust_keys_check_next(v1, v2_new_only) == DS_ERR_SIGNATURE,
	    "a link signed only by the new root key is refused");
	CHECK(trust_keys_check_next(v1, v3_skip) == DS_ERR_SIGNATURE, "a skipped version is refused");
	CHECK(trust_keys_check_next(v2, v1) == DS_ERR_SIGNATURE, "an older version is refused");
	CHECK(trust_keys_check_next(v2, v2) == DS_ERR_SIGNATURE, "the same version again is refused");

	old_rel = release_doc("r1", 1, manifest, rel1);
	new_rel = release_doc("r2", 2, manifest, rel2);
	CHECK(trust_release_check(old_rel, v1, manifest, NOW, "site") == 0,
	    "under v1 the old release key is accepted");
	CHECK(trust_release_check(old_rel, v3, manifest, NOW, "site") == DS_ERR_SIGNATURE,
	    "under v3 the old release key is revoked and refused");
	CHECK(trust_release_check(new_rel, v3, manifest, NOW, "site") == 0,
	    "under v3 the new release key is accepted");
	log_set_level(LOG_LEVEL_INFO);

	trust_doc_free(old_rel);
	trust_doc_free(new_rel);
	trust_doc_free(v1);
	trust_doc_free(v1b);
	trust_doc_free(v2);
	trust_doc_free(v3);
	trust_doc_free(v2_new_only);
	trust_doc_free(v3_skip);
}

static void
test_rollback(void)
{
	struct ed25519_key *r1[] = { root1 }, *rels[] = { rel1, rel2 }, *rel_b[] = { rel2 };
	struct trust_doc *k = keys_doc(1, r1, 1, rels, 2, NULL, 0, r1, 1);
	struct trust_doc *k_revoked = keys_doc(2, r1, 1, rel_b, 1, NULL, 0, r1, 1);
	struct trust_marks marks = { 0 }, back = { 0 };
	struct trust_doc *r5, *r6, *r6b, *r4, *r_inflated, *r7;
	uint8_t manifest[HASH_LEN];
	char *data;
	size_t len;

	hash_bytes("m", 1, manifest);
	r5 = release_doc("r5", 5, manifest, rel2);
	r6 = release_doc("r6", 6, manifest, rel2);
	r6b = release_doc("r6b", 6, manifest, rel2);
	r4 = release_doc("r4", 4, manifest, rel2);
	r_inflated = release_doc("evil", 1000000, manifest, rel1);
	r7 = release_doc("r7", 7, manifest, rel2);

	log_set_level(LOG_LEVEL_SILENT);
	CHECK(trust_rollback_check(&marks, k, r5, "site") == 0, "a site with no marks takes any sequence");
	trust_marks_update(&marks, k, r5);
	CHECK(trust_rollback_check(&marks, k, r6, "site") == 0, "a higher sequence is accepted");
	trust_marks_update(&marks, k, r6);
	CHECK(trust_rollback_check(&marks, k, r6, "site") == 0, "the same release again is accepted");
	CHECK(trust_rollback_check(&marks, k, r5, "site") == DS_ERR_SIGNATURE,
	    "a lower sequence is refused (replayed older release)");
	CHECK(trust_rollback_check(&marks, k, r4, "site") == DS_ERR_SIGNATURE,
	    "a much older release is refused");
	CHECK(trust_rollback_check(&marks, k, r6b, "site") == DS_ERR_SIGNATURE,
	    "another release with the same sequence is refused");

	trust_marks_encode(&marks, &data, &len);
	CHECK(trust_marks_decode(data, len, "marks", &back) == 0 && back.count == marks.count &&
	    back.marks[0].sequence == 6, "marks round-trip");
	free(data);
	trust_marks_release(&back);
	CHECK(trust_marks_decode("mark x 1 y\n", 11, "marks", &back) == DS_ERR_INVALID,
	    "a malformed marks file is refused");

	/* A stolen key inflates the sequence; revoking it undoes the inflation. */
	trust_marks_update(&marks, k, r_inflated);
	CHECK(trust_rollback_check(&marks, k, r7, "site") == DS_ERR_SIGNATURE,
	    "after an inflated sequence, honest releases look old");
	CHECK(trust_rollback_check(&marks, k_revoked, r7, "site") == 0,
	    "once the stolen key is revoked, its mark no longer counts");
	CHECK(trust_rollback_check(&marks, k_revoked, r5, "site") == DS_ERR_SIGNATURE,
	    "and the honest key's own mark still refuses a replay");
	log_set_level(LOG_LEVEL_INFO);

	trust_marks_release(&marks);
	trust_marks_release(&back);
	trust_doc_free(r5);
	trust_doc_free(r6);
	trust_doc_free(r6b);
	trust_doc_free(r4);
	trust_doc_free(r_inflated);
	trust_doc_free(r7);
	trust_doc_free(k);
	trust_doc_free(k_revoked);
}

static struct trust_doc *
pointer_doc(const struct trust_doc *r, int64_t created, int64_t expires, struct ed25519_key *signer)
{
	struct trust_doc *p = xcalloc(1, sizeof(*p));

	p->kind = TRUST_KIND_POINTER;
	p->channel = xstrdup(r->channel);
	p->release = xstrdup(r->release);
	p->sequence = r->sequence;
	trust_doc_digest(r, p->release_digest);
	p->created = created;
	p->expires = expires;
	if (trust_doc_sign(p, &signer, 1) != 0) {
		printf("Bail out! cannot sign a pointer\n");
		exit(1);
	}
	return p;
}

static void
test_pointer(void)
{
	struct ed25519_key *r1[] = { root1 }, *rels[] = { rel1 }, *stamps[] = { stamp };
	struct trust_doc *k = keys_doc(1, r1, 1, rels, 1, stamps, 1, r1, 1);
	struct trust_doc *k_nostamp = keys_doc(1, r1, 1, rels, 1, NULL, 0, r1, 1);
	uint8_t manifest[HASH_LEN];
	struct trust_doc *r, *other, *p, *back;

	hash_bytes("m", 1, manifest);
	r = release_doc("2026.12.0", 3, manifest, rel1);
	other = release_doc("2026.11.0", 2, manifest, rel1);
	p = pointer_doc(r, NOW - 60, NOW + 7 * 86400, stamp);
	back = reread(p);
	log_set_level(LOG_LEVEL_SILENT);
	CHECK(back != NULL && trust_pointer_check(back, k, r, NOW, "mirror") == 0,
	    "a fresh pointer signed by the timestamp key is accepted");
	CHECK(trust_pointer_check(p, k, other, NOW, "mirror") == DS_ERR_SIGNATURE,
	    "a pointer is refused with another release than the one it names");
	CHECK(trust_pointer_check(p, k, r, NOW + 8 * 86400, "mirror") == DS_ERR_SIGNATURE,
	    "an expired pointer is refused");
	CHECK(trust_pointer_check(p, k, r, 86400, "mirror") == DS_ERR_SIGNATURE,
	    "a clock before the pointer was signed is reported");
	trust_doc_free(back);
	trust_doc_free(p);
	p = pointer_doc(r, NOW - 60, NOW + 86400, rel1);
	CHECK(trust_pointer_check(p, k, r, NOW, "mirror") == DS_ERR_SIGNATURE,
	    "with a timestamp key named, a pointer signed by a release key is refused");
	CHECK(trust_pointer_check(p, k_nostamp, r, NOW, "mirror") == 0,
	    "with no timestamp key, the release key signs pointers");
	log_set_level(LOG_LEVEL_INFO);
	trust_doc_free(p);
	trust_doc_free(r);
	trust_doc_free(other);
	trust_doc_free(k);
	trust_doc_free(k_nostamp);
}

static void
test_values(void)
{
	int64_t t;
	char buf[32];

	CHECK(trust_time_parse("2026-12-04T09:00:00Z", &t) == 0 && t == (int64_t)NOW, "a time parses");
	trust_time_format(t, buf, sizeof(buf));
	CHECK(strcmp(buf, "2026-12-04T09:00:00Z") == 0, "and formats back");
	CHECK(trust_time_parse("2026-12-04 09:00:00Z", &t) != 0 &&
	    trust_time_parse("2026-13-01T00:00:00Z", &t) != 0 &&
	    trust_time_parse("2026-12-04T09:00:00", &t) != 0, "other forms are refused");
	CHECK(trust_channel_check("stable") == 0 && trust_channel_check("rwanda-2026.1") == 0,
	    "channel names");
	CHECK(trust_channel_check("") != 0 && trust_channel_check("..") != 0 &&
	    trust_channel_check("a/b") != 0 && trust_channel_check("Stable") != 0,
	    "bad channel names are refused");
}

/* The bundle a sender would put in COMMIT for release R under CHAIN. */
static void
bundle(const struct trust_doc *r, struct trust_doc **chain, size_t n, uint8_t **out, size_t *len)
{
	trust_bundle_encode(r, chain, n, out, len);
}

/* One apply's trust step: check, then record as the receiver does after the commit. */
static int
site_accepts(struct target *t, char **pins, const struct trust_doc *r, struct trust_doc **chain,
    size_t n, const uint8_t manifest[HASH_LEN])
{
	struct trustdb_pending *p = NULL;
	uint8_t *blob;
	size_t len;
	int rc;

	bundle(r, chain, n, &blob, &len);
	rc = trustdb_check(t, pins, 1, blob, len, r->release, manifest, NOW, "site", &p);
	if (rc == 0)
		rc = trustdb_record(t, p);
	trustdb_pending_free(p);
	free(blob);
	return rc;
}

static void
test_trustdb(void)
{
	struct ed25519_key *r1[] = { root1 }, *r2[] = { root2 }, *r12[] = { root1, root2 };
	struct ed25519_key *rel_a[] = { rel1 }, *rel_b[] = { rel2 };
	char id1[ED25519_KEYID_HEX_LEN + 1], id2[ED25519_KEYID_HEX_LEN + 1];
	char *pins[] = { id1 }, *other_pins[] = { id2 };
	struct trust_doc *v1, *v2, *v3, *chain[3];
	struct trust_doc *rel_old, *rel_new, *rel_replay, *rel_forged;
	struct trustdb_pending *p = NULL;
	uint8_t manifest[HASH_LEN], other[HASH_LEN], *blob;
	uint64_t kv, seq;
	struct target *t;
	size_t len;

	id_of(root1, id1);
	id_of(root2, id2);
	hash_bytes("m", 1, manifest);
	hash_bytes("n", 1, other);
	v1 = keys_doc(1, r1, 1, rel_a, 1, NULL, 0, r1, 1);
	v2 = keys_doc(2, r1, 1, rel_b, 1, NULL, 0, r1, 1);	/* rel1 revoked */
	v3 = keys_doc(3, r2, 1, rel_b, 1, NULL, 0, r12, 2);	/* root rotated */
	chain[0] = v1;
	chain[1] = v2;
	chain[2] = v3;
	rel_old = release_doc("r1", 1, manifest, rel1);
	rel_new = release_doc("r2", 2, manifest, rel2);
	rel_replay = release_doc("r0", 1, manifest, rel2);
	rel_forged = release_doc("r9", 9, manifest, stranger);
	if (site_open("t", "state", 0, &t) != 0) {
		printf("Bail out! cannot open a site\n");
		exit(1);
	}
	log_set_level(LOG_LEVEL_SILENT);
	CHECK(trustdb_check(t, pins, 1, NULL, 0, "r1", manifest, NOW, "site", &p) ==
	    DS_ERR_SIGNATURE, "an unsigned release is refused by a site that pins a root");
	bundle(rel_old, chain, 1, &blob, &len);
	CHECK(trustdb_check(t, other_pins, 1, blob, len, "r1", manifest, NOW, "site", &p) ==
	    DS_ERR_SIGNATURE, "a chain from another root is refused");
	CHECK(trustdb_check(t, pins, 1, blob, len, "r1", other, NOW, "site", &p) ==
	    DS_ERR_SIGNATURE, "a manifest altered after signing is refused");
	CHECK(trustdb_check(t, pins, 1, blob, len, "r2", manifest, NOW, "site", &p) ==
	    DS_ERR_SIGNATURE, "a signature of another release id is refused");
	CHECK(access("state/trust", F_OK) == -1, "a refusal writes nothing");
	free(blob);
	CHECK(site_accepts(t, pins, rel_old, chain, 1, manifest) == 0,
	    "release 1 signed under keys version 1 is accepted and recorded");
	CHECK(trustdb_summary(t, &kv, &seq) == 0 && kv == 1 && seq == 1, "status sees keys 1, sequence 1");
	CHECK(site_accepts(t, pins, rel_old, chain, 1, manifest) == 0, "the same release again is accepted");
	CHECK(site_accepts(t, pins, rel_forged, chain, 1, manifest) == DS_ERR_SIGNATURE,
	    "a release signed by an unknown key is refused");
	CHECK(site_accepts(t, pins, rel_new, chain, 1, manifest) == DS_ERR_SIGNATURE,
	    "the new release key is unknown before the rotation reaches the site");
	CHECK(site_accepts(t, pins, rel_new, chain, 3, manifest) == 0,
	    "after rotation (v2: new release key, v3: new root) the new key is accepted, "
	    "with no site re-configured");
	CHECK(trustdb_summary(t, &kv, &seq) == 0 && kv == 3 && seq == 2, "status sees keys 3, sequence 2");
	CHECK(site_accepts(t, pins, rel_old, chain, 1, manifest) == DS_ERR_SIGNATURE,
	    "the old release key is refused, even sent with the shorter chain it was valid in");
	CHECK(site_accepts(t, pins, rel_replay, chain, 3, manifest) == DS_ERR_SIGNATURE,
	    "a replayed lower sequence is refused");
	CHECK(system("echo garbage > state/trust/marks") == 0 &&
	    site_accepts(t, pins, rel_new, chain, 3, manifest) == DS_ERR_SIGNATURE,
	    "damaged marks refuse rather than forget");
	log_set_level(LOG_LEVEL_INFO);
	target_close(t);
	trust_doc_free(v1);
	trust_doc_free(v2);
	trust_doc_free(v3);
	trust_doc_free(rel_old);
	trust_doc_free(rel_new);
	trust_doc_free(rel_replay);
	trust_doc_free(rel_forged);
}

int
main(void)
{
	root1 = ed25519_generate();
	root2 = ed25519_generate();
	rel1 = ed25519_generate();
	rel2 = ed25519_generate();
	stamp = ed25519_generate();
	stranger = ed25519_generate();
	tap_run("keys-on-disk", test_keys_on_disk);
	tap_run("signatures", test_signatures);
	tap_run("documents", test_documents);
	tap_run("chain", test_chain);
	tap_run("rollback", test_rollback);
	tap_run("pointer", test_pointer);
	tap_run("values", test_values);
	tap_run("trustdb", test_trustdb);
	ed25519_free(root1);
	ed25519_free(root2);
	ed25519_free(rel1);
	ed25519_free(rel2);
	ed25519_free(stamp);
	ed25519_free(stranger);
	return tap_done();
}
