/*
 * Fuzz target for the signed documents' decoders (repo/trust.c): keys,
 * release and pointer documents, the bundle a push or a mirror carries
 * them in, and a site's anti-rollback marks. Each comes from a peer or a
 * mirror before any signature is checked. The first byte picks the decoder
 * (0 a document, 1 a bundle, 2 marks); the rest is its input. Nothing may
 * crash or leak; each decoder keeps one encoding (what it accepts encodes
 * again to the same bytes); a keys document's own signatures are checked
 * as a site checks its first one, the path a forged document walks.
 *
 * Built with -DDS_LIBFUZZER it is a libFuzzer target (tools/fuzz);
 * otherwise main() replays tests/fuzz/corpus/trust and mutates it (TAP).
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/ed25519.h"
#include "base/xmalloc.h"
#include "repo/trust.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz-main.h"

static void
same(const void *a, size_t alen, const void *b, size_t blen)
{
	if (alen != blen || memcmp(a, b, alen) != 0)
		FUZZ_BROKEN();
}

static void
one_doc(const uint8_t *data, size_t size)
{
	struct trust_doc *d = NULL;
	char *again;
	size_t n;

	if (trust_doc_decode(data, size, "fuzz", &d) != 0)
		return;
	trust_doc_encode(d, &again, &n);
	same(again, n, data, size);
	free(again);
	if (d->kind == TRUST_KIND_KEYS) {
		char **pins = xcalloc(d->nkeys + 1, sizeof(*pins));
		size_t np = 0;

		for (size_t i = 0; i < d->nkeys; i++)
			if (d->keys[i].role == TRUST_ROLE_ROOT)
				pins[np++] = d->keys[i].id;
		(void)trust_keys_check_first(d, pins, np);
		(void)trust_doc_valid_sigs(d, d, TRUST_ROLE_RELEASE);
		free(pins);
	}
	trust_doc_free(d);
}

static void
one_bundle(const uint8_t *data, size_t size)
{
	struct trust_doc *r = NULL, **chain = NULL;
	uint8_t *again;
	size_t n = 0, len;

	if (trust_bundle_decode(data, size, "fuzz", &r, &chain, &n) != 0)
		return;
	trust_bundle_encode(r, chain, n, &again, &len);
	same(again, len, data, size);
	free(again);
	for (size_t i = 0; i + 1 < n; i++)
		(void)trust_keys_check_next(chain[i], chain[i + 1]);
	trust_doc_free(r);
	trust_chain_free(chain, n);
}

static void
one_marks(const uint8_t *data, size_t size)
{
	struct trust_marks m;
	char *again;
	size_t n;

	memset(&m, 0, sizeof(m));
	if (trust_marks_decode(data, size, "fuzz", &m) == 0) {
		trust_marks_encode(&m, &again, &n);
		same(again, n, data, size);
		free(again);
	}
	trust_marks_release(&m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		one_doc(data + 1, size - 1);
		break;
	case 1:
		one_bundle(data + 1, size - 1);
		break;
	default:
		one_marks(data + 1, size - 1);
		break;
	}
	return 0;
}

#ifndef DS_LIBFUZZER
#define T0	((int64_t)1796374800)	/* 2026-12-04T09:00:00Z */

static int
key_cmp(const void *a, const void *b)
{
	return strcmp(((const struct trust_key *)a)->id, ((const struct trust_key *)b)->id);
}

static void
add(struct fuzz_seeds *s, uint8_t which, const void *data, size_t len)
{
	uint8_t *b = xmalloc(len + 1);

	b[0] = which;
	memcpy(b + 1, data, len);
	fuzz_seed_add(s, b, len + 1);
	free(b);
}

static void
add_doc(struct fuzz_seeds *s, const struct trust_doc *d)
{
	char *out;
	size_t len;

	trust_doc_encode(d, &out, &len);
	add(s, 0, out, len);
	free(out);
}

/* A keys document of VERSION: ROOT and REL, signed by SIGNERS. */
static struct trust_doc *
keys_doc(uint64_t version, struct ed25519_key *root, struct ed25519_key *rel,
    struct ed25519_key **signers, size_t n)
{
	struct trust_doc *d = xcalloc(1, sizeof(*d));
	struct ed25519_key *keys[] = { root, rel };

	d->kind = TRUST_KIND_KEYS;
	d->version = version;
	d->created = T0;
	d->keys = xcalloc(2, sizeof(*d->keys));
	for (int i = 0; i < 2; i++) {
		struct trust_key *k = &d->keys[d->nkeys++];

		k->role = i == 0 ? TRUST_ROLE_ROOT : TRUST_ROLE_RELEASE;
		ed25519_public(keys[i], k->pub);
		ed25519_keyid(k->pub, k->id);
	}
	d->threshold[TRUST_ROLE_ROOT] = d->threshold[TRUST_ROLE_RELEASE] = 1;
	qsort(d->keys, d->nkeys, sizeof(*d->keys), key_cmp);
	if (trust_doc_sign(d, signers, n) != 0)
		FUZZ_BROKEN();
	return d;
}

static void
own_seeds(struct fuzz_seeds *s)
{
	struct ed25519_key *root = ed25519_generate(), *root2 = ed25519_generate();
	struct ed25519_key *rel = ed25519_generate();
	struct ed25519_key *first[] = { root }, *both[] = { root, root2 };
	struct trust_doc *k1 = keys_doc(1, root, rel, first, 1);
	struct trust_doc *k2 = keys_doc(2, root2, rel, both, 2);
	struct trust_doc *r = xcalloc(1, sizeof(*r)), *p = xcalloc(1, sizeof(*p));
	struct trust_doc *chain[] = { k1, k2 };
	struct trust_marks m;
	uint8_t *b;
	char *out;
	size_t len;

	r->kind = TRUST_KIND_RELEASE;
	r->release = xstrdup("2026.12.1");
	r->sequence = 7;
	r->created = T0 + 60;
	r->channel = xstrdup("stable");
	memset(r->manifest, 0x5a, HASH_LEN);
	r->keys_version = 2;
	if (trust_doc_sign(r, &rel, 1) != 0)
		FUZZ_BROKEN();
	p->kind = TRUST_KIND_POINTER;
	p->channel = xstrdup("stable");
	p->release = xstrdup("2026.12.1");
	p->sequence = 7;
	trust_doc_digest(r, p->release_digest);
	p->created = T0 + 120;
	p->expires = T0 + 7 * 86400;
	if (trust_doc_sign(p, &rel, 1) != 0)
		FUZZ_BROKEN();
	add_doc(s, k1);
	add_doc(s, k2);
	add_doc(s, r);
	add_doc(s, p);
	trust_bundle_encode(r, chain, 2, &b, &len);
	add(s, 1, b, len);
	free(b);
	memset(&m, 0, sizeof(m));
	trust_marks_update(&m, k2, r);
	trust_marks_encode(&m, &out, &len);
	add(s, 2, out, len);
	free(out);
	trust_marks_release(&m);
	trust_doc_free(k1);
	trust_doc_free(k2);
	trust_doc_free(r);
	trust_doc_free(p);
	ed25519_free(root);
	ed25519_free(root2);
	ed25519_free(rel);
}

int
main(void)
{
	return fuzz_main("trust", 1500, own_seeds);
}
#endif
