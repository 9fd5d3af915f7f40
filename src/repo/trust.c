/* Signed documents and the chain of trust (trust.h). */
#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/ed25519.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "repo/store.h"
#include "repo/trust.h"

#define TRUST_HEADER	"distsync-signed 1"

static const char *const kind_names[] = { NULL, "keys", "release", "pointer" };
static const char *const role_names[TRUST_ROLE_COUNT] = { "root", "release", "timestamp" };

const char *
trust_kind_name(enum trust_kind kind)
{
	return kind >= TRUST_KIND_KEYS && kind <= TRUST_KIND_POINTER ? kind_names[kind] : "?";
}

const char *
trust_role_name(enum trust_role role)
{
	return role < TRUST_ROLE_COUNT ? role_names[role] : "?";
}

int
trust_role_parse(const char *name)
{
	for (int i = 0; i < TRUST_ROLE_COUNT; i++)
		if (strcmp(name, role_names[i]) == 0)
			return i;
	return -1;
}

void
trust_doc_free(struct trust_doc *d)
{
	if (d == NULL)
		return;
	free(d->keys);
	free(d->release);
	free(d->channel);
	free(d->sigs);
	free(d->body);
	free(d);
}

/* ---- values ---- */

void
trust_time_format(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "@%" PRId64, t);
}

int
trust_time_parse(const char *s, int64_t *out)
{
	char again[32];
	struct tm tm;
	const char *end;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if (strlen(s) != 20 || (end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) == NULL ||
	    *end != '\0')
		return DS_ERR_INVALID;
	if ((t = timegm(&tm)) == (time_t)-1)
		return DS_ERR_INVALID;
	/* One encoding: "2026-02-30" normalises to another date and is refused. */
	trust_time_format((int64_t)t, again, sizeof(again));
	if (strcmp(again, s) != 0)
		return DS_ERR_INVALID;
	*out = (int64_t)t;
	return 0;
}

int
trust_channel_check(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > TRUST_CHANNEL_MAX || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0)
		return DS_ERR_INVALID;
	for (const char *p = name; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' ||
		    *p == '_' || *p == '-'))
			return DS_ERR_INVALID;
	return 0;
}

/* Exactly LEN bytes of lower-case hex into OUT (LEN / 2 bytes). */
static int
parse_hex(const char *s, size_t len, uint8_t *out)
{
	if (strlen(s) != len)
		return DS_ERR_INVALID;
	for (size_t i = 0; i < len; i += 2) {
		int hi = util_hexval(s[i]), lo = util_hexval(s[i + 1]);

		if (hi < 0 || lo < 0 || (s[i] >= 'A' && s[i] <= 'F') ||
		    (s[i + 1] >= 'A' && s[i + 1] <= 'F'))
			return DS_ERR_INVALID;
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* ---- the body of each kind ---- */

static int
keys_sorted(const struct trust_doc *d)
{
	for (size_t i = 1; i < d->nkeys; i++)
		if (strcmp(d->keys[i - 1].id, d->keys[i].id) >= 0)
			return 0;
	return 1;
}

/* 0 if D's fields may be encoded; the reason logged under NAME otherwise. */
static int
fields_check(const struct trust_doc *d, const char *name)
{
	switch (d->kind) {
	case TRUST_KIND_KEYS:
		if (d->version == 0 || d->nkeys == 0 || d->nkeys > TRUST_KEYS_MAX ||
		    !keys_sorted(d)) {
			log_error("%s: a keys document needs a version from 1 and 1..%d keys "
			    "in key id order", name, TRUST_KEYS_MAX);
			return DS_ERR_INVALID;
		}
		for (int role = 0; role < TRUST_ROLE_COUNT; role++) {
			unsigned have = 0;

			for (size_t i = 0; i < d->nkeys; i++)
				have += d->keys[i].role == (enum trust_role)role;
			if ((role != TRUST_ROLE_TIMESTAMP && d->threshold[role] == 0) ||
			    d->threshold[role] > have || (have > 0 && d->threshold[role] == 0)) {
				log_error("%s: the %s threshold %u does not fit its %u key%s", name,
				    role_names[role], d->threshold[role], have, have == 1 ? "" : "s");
				return DS_ERR_INVALID;
			}
		}
		return 0;
	case TRUST_KIND_RELEASE:
	case TRUST_KIND_POINTER:
		if (d->release == NULL || store_release_id_check(d->release) != 0 ||
		    d->channel == NULL || trust_channel_check(d->channel) != 0 ||
		    d->sequence == 0) {
			log_error("%s: a %s document needs a valid release id, channel and a "
			    "sequence from 1", name, kind_names[d->kind]);
			return DS_ERR_INVALID;
		}
		if (d->kind == TRUST_KIND_RELEASE && d->keys_version == 0) {
			log_error("%s: a release document needs its keys version", name);
			return DS_ERR_INVALID;
		}
		if (d->kind == TRUST_KIND_POINTER && d->expires <= d->created) {
			log_error("%s: a pointer must expire after it is created", name);
			return DS_ERR_INVALID;
		}
		return 0;
	}
	log_error("%s: unknown document kind", name);
	return DS_ERR_INVALID;
}

/* Appends to B; documents are bounded far below its maximum, so it cannot fail. */
static void
must(int r)
{
	if (r != 0)
		abort();
}

/* The canonical body of D (fields_check passed). */
static void
body_encode(const struct trust_doc *d, char **out, size_t *outlen)
{
	struct buf *b = buf_new(0);
	char created[32], expires[32];

	trust_time_format(d->created, created, sizeof(created));
	must(buf_printf(b, "%s\nkind %s\n", TRUST_HEADER, kind_names[d->kind]));
	switch (d->kind) {
	case TRUST_KIND_KEYS:
		must(buf_printf(b, "version %" PRIu64 "\ncreated %s\n", d->version, created));
		for (int role = 0; role < TRUST_ROLE_COUNT; role++)
			must(buf_printf(b, "threshold %s %u\n", role_names[role], d->threshold[role]));
		for (size_t i = 0; i < d->nkeys; i++) {
			must(buf_printf(b, "key %s %s ", role_names[d->keys[i].role], d->keys[i].id));
			must(buf_put_hex(b, d->keys[i].pub, ED25519_PUBLIC_LEN));
			must(buf_printf(b, "\n"));
		}
		break;
	case TRUST_KIND_RELEASE:
		must(buf_printf(b, "release %s\nsequence %" PRIu64 "\ncreated %s\n"
		    "channel %s\nmanifest-sha256 ", d->release, d->sequence, created, d->channel));
		must(buf_put_hex(b, d->manifest, HASH_LEN));
		must(buf_printf(b, "\nkeys-version %" PRIu64 "\n", d->keys_version));
		break;
	case TRUST_KIND_POINTER:
		trust_time_format(d->expires, expires, sizeof(expires));
		must(buf_printf(b, "channel %s\nrelease %s\nsequence %" PRIu64 "\nrelease-sha256 ",
		    d->channel, d->release, d->sequence));
		must(buf_put_hex(b, d->release_digest, HASH_LEN));
		must(buf_printf(b, "\ncreated %s\nexpires %s\n", created, expires));
		break;
	}
	*out = buf_dup_cstring(b, outlen);
	buf_free(b);
}

/* ---- decoding ---- */

struct reader {
	const char	*p, *end;
	const char	*name;
	unsigned	 line;
	char		 buf[1024];
	char		*words[5];
	int		 nwords;
};

/*
 * The next line split into at most 5 words on single spaces: printable
 * ASCII only, no empty word, ending in "\n". 1 with a line, 0 at the end,
 * DS_ERR_INVALID (logged) on a malformed line.
 */
static int
next_line(struct reader *rd)
{
	const char *nl;
	size_t len;
	char *s;

	if (rd->p == rd->end)
		return 0;
	rd->line++;
	nl = memchr(rd->p, '\n', (size_t)(rd->end - rd->p));
	len = nl != NULL ? (size_t)(nl - rd->p) : 0;
	if (nl == NULL || len == 0 || len >= sizeof(rd->buf))
		goto bad;
	memcpy(rd->buf, rd->p, len);
	rd->buf[len] = '\0';
	for (size_t i = 0; i < len; i++)
		if (rd->buf[i] < 0x20 || rd->buf[i] > 0x7e)
			goto bad;
	rd->nwords = 0;
	for (s = rd->buf;;) {
		char *sp = strchr(s, ' ');

		if (*s == '\0' || s == sp || rd->nwords == 5)
			goto bad;
		rd->words[rd->nwords++] = s;
		if (sp == NULL)
			break;
		*sp = '\0';
		s = sp + 1;
	}
	rd->p = nl + 1;
	return 1;
bad:
	log_error("%s: line %u: not a line of a signed document", rd->name, rd->line);
	return DS_ERR_INVALID;
}

/* The next line must be "KEY VALUE"; *value points into rd->buf. */
static int
expect_field(struct reader *rd, const char *key, const char **value)
{
	int r;

	if ((r = next_line(rd)) < 0)
		return r;
	if (r == 0 || rd->nwords != 2 || strcmp(rd->words[0], key) != 0) {
		log_error("%s: line %u: expected \"%s VALUE\"", rd->name, rd->line, key);
		return DS_ERR_INVALID;
	}
	*value = rd->words[1];
	return 0;
}

static int
field_u64(struct reader *rd, const char *key, uint64_t *out)
{
	const char *v;
	int r;

	if ((r = expect_field(rd, key, &v)) != 0)
		return r;
	if (util_parse_canonical_u64(v, out) != 0) {
		log_error("%s: line %u: %s is not a number", rd->name, rd->line, key);
		return DS_ERR_INVALID;
	}
	return 0;
}

static int
field_time(struct reader *rd, const char *key, int64_t *out)
{
	const char *v;
	int r;

	if ((r = expect_field(rd, key, &v)) != 0)
		return r;
	if (trust_time_parse(v, out) != 0) {
		log_error("%s: line %u: %s is not a time like 2026-12-04T09:30:00Z", rd->name,
		    rd->line, key);
		return DS_ERR_INVALID;
	}
	return 0;
}

static int
field_hash(struct reader *rd, const char *key, uint8_t out[HASH_LEN])
{
	const char *v;
	int r;

	if ((r = expect_field(rd, key, &v)) != 0)
		return r;
	if (parse_hex(v, HASH_HEX_LEN, out) != 0) {
		log_error("%s: line %u: %s is not 64 lower-case hex digits", rd->name, rd->line,
		    key);
		return DS_ERR_INVALID;
	}
	return 0;
}

static int
field_string(struct reader *rd, const char *key, char **out)
{
	const char *v;
	int r;

	if ((r = expect_field(rd, key, &v)) != 0)
		return r;
	*out = xstrdup(v);
	return 0;
}

static int
decode_keys(struct reader *rd, struct trust_doc *d)
{
	size_t alloc = 0;
	int r;

	if ((r = field_u64(rd, "version", &d->version)) != 0 ||
	    (r = field_time(rd, "created", &d->created)) != 0)
		return r;
	for (int role = 0; role < TRUST_ROLE_COUNT; role++) {
		uint64_t n;

		if ((r = next_line(rd)) < 0)
			return r;
		if (r == 0 || rd->nwords != 3 || strcmp(rd->words[0], "threshold") != 0 ||
		    strcmp(rd->words[1], role_names[role]) != 0 ||
		    util_parse_canonical_u64(rd->words[2], &n) != 0 || n > TRUST_KEYS_MAX) {
			log_error("%s: line %u: expected \"threshold %s N\"", rd->name, rd->line,
			    role_names[role]);
			return DS_ERR_INVALID;
		}
		d->threshold[role] = (unsigned)n;
	}
	for (;;) {
		const char *save_p = rd->p;
		unsigned save_line = rd->line;
		struct trust_key *k;
		int role;

		if ((r = next_line(rd)) <= 0)
			return r;
		if (strcmp(rd->words[0], "key") != 0) {
			rd->p = save_p;
			rd->line = save_line;
			return 0;
		}
		if (d->nkeys == TRUST_KEYS_MAX || rd->nwords != 4 ||
		    (role = trust_role_parse(rd->words[1])) < 0 ||
		    strlen(rd->words[2]) != ED25519_KEYID_HEX_LEN) {
			log_error("%s: line %u: expected \"key ROLE KEYID PUBLIC-KEY\"", rd->name,
			    rd->line);
			return DS_ERR_INVALID;
		}
		d->keys = xgrow(d->keys, &alloc, d->nkeys + 1, sizeof(*d->keys));
		k = &d->keys[d->nkeys++];
		k->role = (enum trust_role)role;
		if (parse_hex(rd->words[3], 2 * ED25519_PUBLIC_LEN, k->pub) != 0) {
			log_error("%s: line %u: the public key is not 64 lower-case hex digits",
			    rd->name, rd->line);
			return DS_ERR_INVALID;
		}
		ed25519_keyid(k->pub, k->id);
		if (strcmp(k->id, rd->words[2]) != 0) {
			log_error("%s: line %u: the key id is not the public key's", rd->name,
			    rd->line);
			return DS_ERR_INVALID;
		}
	}
}

static int
decode_release(struct reader *rd, struct trust_doc *d)
{
	int r;

	if ((r = field_string(rd, "release", &d->release)) != 0 ||
	    (r = field_u64(rd, "sequence", &d->sequence)) != 0 ||
	    (r = field_time(rd, "created", &d->created)) != 0 ||
	    (r = field_string(rd, "channel", &d->channel)) != 0 ||
	    (r = field_hash(rd, "manifest-sha256", d->manifest)) != 0 ||
	    (r = field_u64(rd, "keys-version", &d->keys_version)) != 0)
		return r;
	return 0;
}

static int
decode_pointer(struct reader *rd, struct trust_doc *d)
{
	int r;

	if ((r = field_string(rd, "channel", &d->channel)) != 0 ||
	    (r = field_string(rd, "release", &d->release)) != 0 ||
	    (r = field_u64(rd, "sequence", &d->sequence)) != 0 ||
	    (r = field_hash(rd, "release-sha256", d->release_digest)) != 0 ||
	    (r = field_time(rd, "created", &d->created)) != 0 ||
	    (r = field_time(rd, "expires", &d->expires)) != 0)
		return r;
	return 0;
}

static int
decode_sigs(struct reader *rd, struct trust_doc *d)
{
	size_t alloc = 0;
	int r;

	while ((r = next_line(rd)) > 0) {
		uint8_t id[ED25519_KEYID_HEX_LEN / 2];
		struct trust_sig *s;

		if (d->nsigs == TRUST_SIGS_MAX || rd->nwords != 3 ||
		    strcmp(rd->words[0], "signature") != 0) {
			log_error("%s: line %u: expected \"signature KEYID SIGNATURE\" (at most %d)",
			    rd->name, rd->line, TRUST_SIGS_MAX);
			return DS_ERR_INVALID;
		}
		d->sigs = xgrow(d->sigs, &alloc, d->nsigs + 1, sizeof(*d->sigs));
		s = &d->sigs[d->nsigs++];
		if (parse_hex(rd->words[1], ED25519_KEYID_HEX_LEN, id) != 0 ||
		    parse_hex(rd->words[2], 2 * ED25519_SIG_LEN, s->sig) != 0 ||
		    (d->nsigs > 1 && strcmp(d->sigs[d->nsigs - 2].keyid, rd->words[1]) >= 0)) {
			log_error("%s: line %u: a signature needs a key id and 128 hex digits, "
			    "key ids ascending", rd->name, rd->line);
			return DS_ERR_INVALID;
		}
		memcpy(s->keyid, rd->words[1], ED25519_KEYID_HEX_LEN + 1);
	}
	if (r < 0)
		return r;
	if (d->nsigs == 0) {
		log_error("%s: the document is not signed", rd->name);
		return DS_ERR_INVALID;
	}
	return 0;
}

int
trust_doc_decode(const void *data, size_t len, const char *name, struct trust_doc **out)
{
	struct reader rd = { .p = data, .end = (const char *)data + len, .name = name };
	struct trust_doc *d = xcalloc(1, sizeof(*d));
	const char *v, *body_end;
	char *again = NULL;
	size_t again_len = 0;
	int r;

	*out = NULL;
	if (len > TRUST_DOC_MAX) {
		log_error("%s: %zu bytes is more than a signed document may have", name, len);
		r = DS_ERR_INVALID;
		goto out;
	}
	if ((r = next_line(&rd)) <= 0 || rd.nwords != 2 ||
	    strcmp(rd.words[0], "distsync-signed") != 0 || strcmp(rd.words[1], "1") != 0) {
		if (r >= 0)
			log_error("%s: not a distsync signed document (version 1)", name);
		r = DS_ERR_INVALID;
		goto out;
	}
	if ((r = expect_field(&rd, "kind", &v)) != 0)
		goto out;
	if (strcmp(v, "keys") == 0)
		d->kind = TRUST_KIND_KEYS;
	else if (strcmp(v, "release") == 0)
		d->kind = TRUST_KIND_RELEASE;
	else if (strcmp(v, "pointer") == 0)
		d->kind = TRUST_KIND_POINTER;
	else {
		log_error("%s: line %u: unknown kind of document", name, rd.line);
		r = DS_ERR_INVALID;
		goto out;
	}
	r = d->kind == TRUST_KIND_KEYS ? decode_keys(&rd, d) :
	    d->kind == TRUST_KIND_RELEASE ? decode_release(&rd, d) : decode_pointer(&rd, d);
	if (r != 0)
		goto out;
	body_end = rd.p;
	if ((r = decode_sigs(&rd, d)) != 0 || (r = fields_check(d, name)) != 0)
		goto out;
	/* The one encoding: what we would write for these fields is what we read. */
	body_encode(d, &again, &again_len);
	if (again_len != (size_t)(body_end - (const char *)data) ||
	    memcmp(again, data, again_len) != 0) {
		log_error("%s: not in the canonical form of a signed document", name);
		r = DS_ERR_INVALID;
		goto out;
	}
	d->body = again;
	d->body_len = again_len;
	again = NULL;
	*out = d;
	d = NULL;
	r = 0;
out:
	free(again);
	trust_doc_free(d);
	return r;
}

/* ---- signing and encoding ---- */

static int
sig_cmp(const void *a, const void *b)
{
	return strcmp(((const struct trust_sig *)a)->keyid, ((const struct trust_sig *)b)->keyid);
}

int
trust_doc_sign(struct trust_doc *d, struct ed25519_key *const *keys, size_t n)
{
	uint8_t pub[ED25519_PUBLIC_LEN];
	int r;

	if (n == 0 || n > TRUST_SIGS_MAX) {
		log_error("a %s document needs 1..%d signing keys", trust_kind_name(d->kind),
		    TRUST_SIGS_MAX);
		return DS_ERR_INVALID;
	}
	if ((r = fields_check(d, trust_kind_name(d->kind))) != 0)
		return r;
	free(d->body);
	body_encode(d, &d->body, &d->body_len);
	free(d->sigs);
	d->sigs = xcalloc(n, sizeof(*d->sigs));
	d->nsigs = n;
	for (size_t i = 0; i < n; i++) {
		ed25519_public(keys[i], pub);
		ed25519_keyid(pub, d->sigs[i].keyid);
		if ((r = ed25519_sign(keys[i], d->body, d->body_len, d->sigs[i].sig)) != 0)
			return r;
	}
	qsort(d->sigs, n, sizeof(*d->sigs), sig_cmp);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(d->sigs[i - 1].keyid, d->sigs[i].keyid) == 0) {
			log_error("the same key signs a %s document twice", trust_kind_name(d->kind));
			return DS_ERR_INVALID;
		}
	}
	return 0;
}

void
trust_doc_encode(const struct trust_doc *d, char **out, size_t *outlen)
{
	struct buf *b = buf_new(0);

	must(buf_put(b, d->body, d->body_len));
	for (size_t i = 0; i < d->nsigs; i++) {
		must(buf_printf(b, "signature %s ", d->sigs[i].keyid));
		must(buf_put_hex(b, d->sigs[i].sig, ED25519_SIG_LEN));
		must(buf_printf(b, "\n"));
	}
	*out = buf_dup_cstring(b, outlen);
	buf_free(b);
}

void
trust_doc_digest(const struct trust_doc *d, uint8_t out[HASH_LEN])
{
	char *data;
	size_t len;

	trust_doc_encode(d, &data, &len);
	hash_bytes(data, len, out);
	free(data);
}

/* ---- verification ---- */

const struct trust_key *
trust_keys_find(const struct trust_doc *k, const char *id)
{
	for (size_t i = 0; i < k->nkeys; i++)
		if (strcmp(k->keys[i].id, id) == 0)
			return &k->keys[i];
	return NULL;
}

unsigned
trust_doc_valid_sigs(const struct trust_doc *d, const struct trust_doc *k, enum trust_role role)
{
	unsigned valid = 0;

	/* Signatures are in strictly ascending key id order, so each key counts once. */
	for (size_t i = 0; i < d->nsigs; i++) {
		const struct trust_key *key = trust_keys_find(k, d->sigs[i].keyid);

		if (key != NULL && key->role == role &&
		    ed25519_verify(key->pub, d->body, d->body_len, d->sigs[i].sig))
			valid++;
	}
	return valid;
}

int
trust_keys_check_first(const struct trust_doc *d, char *const *pinned, size_t n)
{
	unsigned valid = 0;

	if (d->kind != TRUST_KIND_KEYS || d->version != 1) {
		log_error("the chain of keys documents must begin at version 1 (got %s version %"
		    PRIu64 ")", trust_kind_name(d->kind), d->version);
		return DS_ERR_SIGNATURE;
	}
	for (size_t i = 0; i < n; i++) {
		const struct trust_key *key = trust_keys_find(d, pinned[i]);

		if (key == NULL || key->role != TRUST_ROLE_ROOT) {
			log_error("keys document version 1 does not name the pinned root key %.16s… "
			    "as a root key: it belongs to another repository", pinned[i]);
			return DS_ERR_SIGNATURE;
		}
	}
	for (size_t i = 0; i < d->nsigs; i++) {
		const struct trust_key *key = trust_keys_find(d, d->sigs[i].keyid);
		int is_pinned = 0;

		for (size_t j = 0; j < n; j++)
			is_pinned |= strcmp(pinned[j], d->sigs[i].keyid) == 0;
		if (key != NULL && key->role == TRUST_ROLE_ROOT && is_pinned &&
		    ed25519_verify(key->pub, d->body, d->body_len, d->sigs[i].sig))
			valid++;
	}
	if (valid < d->threshold[TRUST_ROLE_ROOT] || valid == 0) {
		log_error("keys document version 1 carries %u valid signature%s of the pinned "
		    "root keys; %u needed", valid, valid == 1 ? "" : "s",
		    d->threshold[TRUST_ROLE_ROOT]);
		return DS_ERR_SIGNATURE;
	}
	return 0;
}

int
trust_keys_check_next(const struct trust_doc *prev, const struct trust_doc *next)
{
	unsigned by_old, by_new;

	if (next->kind != TRUST_KIND_KEYS || next->version != prev->version + 1) {
		log_error("keys document version %" PRIu64 " cannot follow version %" PRIu64
		    " (each version must follow the one before it)", next->version, prev->version);
		return DS_ERR_SIGNATURE;
	}
	by_old = trust_doc_valid_sigs(next, prev, TRUST_ROLE_ROOT);
	by_new = trust_doc_valid_sigs(next, next, TRUST_ROLE_ROOT);
	if (by_old < prev->threshold[TRUST_ROLE_ROOT] || by_new < next->threshold[TRUST_ROLE_ROOT]) {
		log_error("keys document version %" PRIu64 " is signed by %u of the %u root keys "
		    "version %" PRIu64 " requires and %u of the %u it names itself: a rotation "
		    "must be signed by the old root keys and the new", next->version, by_old,
		    prev->threshold[TRUST_ROLE_ROOT], prev->version, by_new,
		    next->threshold[TRUST_ROLE_ROOT]);
		return DS_ERR_SIGNATURE;
	}
	return 0;
}

/* The clock check shared by releases and pointers: NOW may not be before CREATED. */
static int
clock_check(time_t now, int64_t created, const char *what, const char *who)
{
	char t_now[32], t_created[32];

	if ((int64_t)now + TRUST_CLOCK_SLACK >= created)
		return 0;
	trust_time_format((int64_t)now, t_now, sizeof(t_now));
	trust_time_format(created, t_created, sizeof(t_created));
	log_error("%s: this machine's clock says %s, before the %s was signed (%s): set the "
	    "clock (e.g. with NTP); signed documents cannot be checked until it is right", who,
	    t_now, what, t_created);
	return DS_ERR_SIGNATURE;
}

int
trust_release_check(const struct trust_doc *r, const struct trust_doc *k,
    const uint8_t manifest[HASH_LEN], time_t now, const char *who)
{
	unsigned valid;

	if (r->kind != TRUST_KIND_RELEASE) {
		log_error("%s: expected a release document, got a %s document", who,
		    trust_kind_name(r->kind));
		return DS_ERR_SIGNATURE;
	}
	valid = trust_doc_valid_sigs(r, k, TRUST_ROLE_RELEASE);
	if (valid < k->threshold[TRUST_ROLE_RELEASE] || valid == 0) {
		int known = 0;

		for (size_t i = 0; i < r->nsigs; i++)
			known |= trust_keys_find(k, r->sigs[i].keyid) != NULL;
		log_error("%s: release %s is not signed by a release key of keys document version %"
		    PRIu64 " (%u valid of %u needed; signed by %.16s…%s)", who, r->release,
		    k->version, valid, k->threshold[TRUST_ROLE_RELEASE], r->sigs[0].keyid,
		    known ? ", a signature that does not verify: altered or corrupt" :
		    ", a key that is unknown or revoked");
		return DS_ERR_SIGNATURE;
	}
	if (memcmp(r->manifest, manifest, HASH_LEN) != 0) {
		log_error("%s: the manifest of release %s is not the one its signature covers "
		    "(altered after signing)", who, r->release);
		return DS_ERR_SIGNATURE;
	}
	return clock_check(now, r->created, "release", who);
}

int
trust_pointer_check(const struct trust_doc *p, const struct trust_doc *k,
    const struct trust_doc *r, time_t now, const char *who)
{
	enum trust_role role = k->threshold[TRUST_ROLE_TIMESTAMP] > 0 ? TRUST_ROLE_TIMESTAMP :
	    TRUST_ROLE_RELEASE;
	uint8_t digest[HASH_LEN];
	char t_expires[32];
	unsigned valid;
	int rc;

	if (p->kind != TRUST_KIND_POINTER) {
		log_error("%s: expected a pointer, got a %s document", who, trust_kind_name(p->kind));
		return DS_ERR_SIGNATURE;
	}
	valid = trust_doc_valid_sigs(p, k, role);
	if (valid < k->threshold[role] || valid == 0) {
		log_error("%s: the pointer of channel %s is not signed by a %s key of keys "
		    "document version %" PRIu64, who, p->channel, role_names[role], k->version);
		return DS_ERR_SIGNATURE;
	}
	trust_doc_digest(r, digest);
	if (strcmp(p->channel, r->channel) != 0 || strcmp(p->release, r->release) != 0 ||
	    p->sequence != r->sequence || memcmp(p->release_digest, digest, HASH_LEN) != 0) {
		log_error("%s: the pointer of channel %s names release %s (sequence %" PRIu64
		    "), not the release document it came with", who, p->channel, p->release,
		    p->sequence);
		return DS_ERR_SIGNATURE;
	}
	if ((rc = clock_check(now, p->created, "pointer", who)) != 0)
		return rc;
	if ((int64_t)now >= p->expires) {
		int64_t age = (int64_t)now - p->expires;
		char ago[48];

		if (age < 3600)
			snprintf(ago, sizeof(ago), "%" PRId64 " min %" PRId64 " s", age / 60, age % 60);
		else
			snprintf(ago, sizeof(ago), "%" PRId64 " day%s %" PRId64 " h", age / 86400,
			    age / 86400 == 1 ? "" : "s", (age % 86400) / 3600);
		trust_time_format(p->expires, t_expires, sizeof(t_expires));
		log_error("%s: the pointer of channel %s expired %s ago (at %s): the mirror is "
		    "stale or frozen, or the repository did not publish again in time; refusing it",
		    who, p->channel, ago, t_expires);
		return DS_ERR_SIGNATURE;
	}
	return 0;
}

/* ---- anti-rollback marks ---- */

void
trust_marks_release(struct trust_marks *m)
{
	free(m->marks);
	m->marks = NULL;
	m->count = 0;
}

int
trust_marks_decode(const void *data, size_t len, const char *name, struct trust_marks *out)
{
	struct reader rd = { .p = data, .end = (const char *)data + len, .name = name };
	size_t alloc = 0;
	int r;

	memset(out, 0, sizeof(*out));
	while ((r = next_line(&rd)) > 0) {
		struct trust_mark *mk;
		uint8_t id[ED25519_KEYID_HEX_LEN / 2];

		out->marks = xgrow(out->marks, &alloc, out->count + 1, sizeof(*out->marks));
		mk = &out->marks[out->count++];
		if (out->count > TRUST_KEYS_MAX * 4 || rd.nwords != 4 ||
		    strcmp(rd.words[0], "mark") != 0 ||
		    parse_hex(rd.words[1], ED25519_KEYID_HEX_LEN, id) != 0 ||
		    util_parse_canonical_u64(rd.words[2], &mk->sequence) != 0 ||
		    parse_hex(rd.words[3], HASH_HEX_LEN, mk->release_digest) != 0 ||
		    (out->count > 1 && strcmp(out->marks[out->count - 2].keyid, rd.words[1]) >= 0)) {
			log_error("%s: line %u: expected \"mark KEYID SEQUENCE SHA256\", key ids "
			    "ascending", name, rd.line);
			trust_marks_release(out);
			return DS_ERR_INVALID;
		}
		memcpy(mk->keyid, rd.words[1], ED25519_KEYID_HEX_LEN + 1);
	}
	if (r < 0)
		trust_marks_release(out);
	return r;
}

void
trust_marks_encode(const struct trust_marks *m, char **out, size_t *outlen)
{
	struct buf *b = buf_new(0);

	for (size_t i = 0; i < m->count; i++) {
		must(buf_printf(b, "mark %s %" PRIu64 " ", m->marks[i].keyid, m->marks[i].sequence));
		must(buf_put_hex(b, m->marks[i].release_digest, HASH_LEN));
		must(buf_printf(b, "\n"));
	}
	*out = buf_dup_cstring(b, outlen);
	buf_free(b);
}

int
trust_rollback_check(const struct trust_marks *m, const struct trust_doc *k,
    const struct trust_doc *r, const char *who)
{
	const struct trust_mark *high = NULL;
	uint8_t digest[HASH_LEN];

	for (size_t i = 0; i < m->count; i++) {
		const struct trust_key *key = trust_keys_find(k, m->marks[i].keyid);

		if (key == NULL || key->role != TRUST_ROLE_RELEASE)
			continue;	/* revoked: its marks no longer count */
		if (high == NULL || m->marks[i].sequence > high->sequence)
			high = &m->marks[i];
	}
	if (high == NULL || r->sequence > high->sequence)
		return 0;
	trust_doc_digest(r, digest);
	if (r->sequence == high->sequence && memcmp(digest, high->release_digest, HASH_LEN) == 0)
		return 0;	/* the release applied last, again */
	if (r->sequence == high->sequence)
		log_error("%s: release %s has sequence %" PRIu64 ", which another release already "
		    "had on this site: refused (anti-rollback)", who, r->release, r->sequence);
	else
		log_error("%s: release %s has sequence %" PRIu64 ", lower than %" PRIu64 " already "
		    "applied on this site: refused (anti-rollback; to return to old content, cut "
		    "it again as a new release, or use rollback on the site)", who, r->release,
		    r->sequence, high->sequence);
	return DS_ERR_SIGNATURE;
}

static int
mark_cmp(const void *a, const void *b)
{
	return strcmp(((const struct trust_mark *)a)->keyid, ((const struct trust_mark *)b)->keyid);
}

void
trust_marks_update(struct trust_marks *m, const struct trust_doc *k, const struct trust_doc *r)
{
	uint8_t digest[HASH_LEN];

	trust_doc_digest(r, digest);
	for (size_t i = 0; i < r->nsigs; i++) {
		const struct trust_key *key = trust_keys_find(k, r->sigs[i].keyid);
		struct trust_mark *mk = NULL;

		if (key == NULL || key->role != TRUST_ROLE_RELEASE ||
		    !ed25519_verify(key->pub, r->body, r->body_len, r->sigs[i].sig))
			continue;
		for (size_t j = 0; j < m->count; j++)
			if (strcmp(m->marks[j].keyid, key->id) == 0)
				mk = &m->marks[j];
		if (mk == NULL) {
			m->marks = xreallocarray(m->marks, m->count + 1, sizeof(*m->marks));
			mk = &m->marks[m->count++];
			memcpy(mk->keyid, key->id, sizeof(mk->keyid));
			mk->sequence = 0;
		}
		if (r->sequence >= mk->sequence) {
			mk->sequence = r->sequence;
			memcpy(mk->release_digest, digest, HASH_LEN);
		}
	}
	qsort(m->marks, m->count, sizeof(*m->marks), mark_cmp);
}

/* ---- bundles ---- */

void
trust_chain_free(struct trust_doc **chain, size_t n)
{
	for (size_t i = 0; i < n; i++)
		trust_doc_free(chain[i]);
	free(chain);
}

void
trust_bundle_encode(const struct trust_doc *release, struct trust_doc *const *chain, size_t n,
    uint8_t **out, size_t *outlen)
{
	struct buf *b = buf_new(0);
	char *data;
	size_t len;

	if (buf_put_u32(b, (uint32_t)(n + 1)) != 0)
		abort();
	for (size_t i = 0; i <= n; i++) {
		trust_doc_encode(i == 0 ? release : chain[i - 1], &data, &len);
		if (buf_put_string(b, data, len) != 0)
			abort();	/* documents are bounded far below the buffer's maximum */
		free(data);
	}
	*outlen = buf_len(b);
	*out = xmalloc(*outlen);
	memcpy(*out, buf_ptr(b), *outlen);
	buf_free(b);
}

int
trust_bundle_decode(const void *data, size_t len, const char *who, struct trust_doc **release,
    struct trust_doc ***chainp, size_t *np)
{
	struct buf *b = buf_from(data, len);
	struct trust_doc **chain = NULL, *rel = NULL, *d;
	const uint8_t *doc;
	uint32_t count;
	size_t dlen, n = 0;
	int r = DS_ERR_INVALID;

	*release = NULL;
	*chainp = NULL;
	*np = 0;
	if (buf_get_u32(b, &count) != 0 || count < 1 || count > TRUST_BUNDLE_DOCS) {
		log_error("%s: a signature bundle needs 1..%d documents", who, TRUST_BUNDLE_DOCS);
		goto out;
	}
	chain = xcalloc(count, sizeof(*chain));
	for (uint32_t i = 0; i < count; i++) {
		if (buf_get_string_direct(b, &doc, &dlen) != 0 || dlen > TRUST_DOC_MAX) {
			log_error("%s: signature bundle document %u is cut short or too large", who,
			    i + 1);
			goto out;
		}
		if (trust_doc_decode(doc, dlen, who, &d) != 0)
			goto out;
		if (i == 0)
			rel = d;
		else
			chain[n++] = d;
		if ((i == 0 && d->kind != TRUST_KIND_RELEASE) ||
		    (i > 0 && (d->kind != TRUST_KIND_KEYS ||
		    (n > 1 && d->version != chain[n - 2]->version + 1)))) {
			log_error("%s: a signature bundle holds a release document, then keys "
			    "documents of consecutive versions", who);
			goto out;
		}
	}
	if (buf_len(b) != 0) {
		log_error("%s: %zu bytes after the signature bundle", who, buf_len(b));
		goto out;
	}
	*release = rel;
	*chainp = chain;
	*np = n;
	rel = NULL;
	chain = NULL;
	n = 0;
	r = 0;
out:
	trust_doc_free(rel);
	trust_chain_free(chain, n);
	buf_free(b);
	return r;
}
