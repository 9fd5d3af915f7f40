/*
 * Signed documents and the chain of trust.
 *
 * Three kinds of document, each inline-signed (the signatures follow the
 * bytes they cover, as apt's InRelease, so a cache can never pair a document
 * with another's signature):
 *
 *	distsync-signed 1
 *	kind keys|release|pointer
 *	FIELD VALUE			fields of the kind, in the order below
 *	signature KEYID SIG		one or more; KEYID ascending, SIG 128 hex
 *
 * The signed bytes are every byte before the first "signature" line. The
 * decoder accepts exactly one encoding of a document (fields in order, each
 * once, no spaces but single separators, lower-case hex, canonical numbers
 * and times), so a document's SHA-256 identifies it.
 *
 * keys (signed by its root keys; TUF's root role):
 *	version N			1, 2, ... : N+1 must be signed by a threshold of
 *					the root keys of N and of N+1 (rotation)
 *	created TIME
 *	threshold root|release|timestamp N	three lines, in that order
 *	key ROLE KEYID PUBHEX		one line per key, KEYID ascending; a key has
 *					one role; a key absent from the newest document
 *					is revoked
 * release (signed by release keys):
 *	release ID
 *	sequence N			grows with every release (anti-rollback)
 *	created TIME
 *	channel NAME
 *	manifest-sha256 HEX		digest of the release's manifest bytes, which list
 *					every file's SHA-256: this covers every byte
 *	keys-version N			the keys document it was signed under
 * pointer (which release is current on a channel; signed by timestamp keys,
 * or by release keys when the keys document names no timestamp key):
 *	channel NAME
 *	release ID
 *	sequence N
 *	release-sha256 HEX		digest of the whole signed release document
 *	created TIME
 *	expires TIME			a frozen mirror is found out by this
 *
 * TIME is UTC, "2026-12-04T09:30:00Z". Nothing here reads files or the
 * clock: callers pass bytes and "now", so every rule is testable.
 */
#ifndef DS_TRUST_H
#define DS_TRUST_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/ed25519.h"
#include "base/hash.h"

#define TRUST_DOC_MAX		(256u * 1024)	/* bytes of one document */
#define TRUST_KEYS_MAX		64		/* keys in one keys document */
#define TRUST_SIGS_MAX		16		/* signatures on one document */
#define TRUST_CHANNEL_MAX	64		/* bytes of a channel name */
#define TRUST_CLOCK_SLACK	300		/* seconds a clock may lag behind a signer's */

enum trust_kind {
	TRUST_KIND_KEYS = 1,
	TRUST_KIND_RELEASE,
	TRUST_KIND_POINTER,
};

enum trust_role {
	TRUST_ROLE_ROOT = 0,
	TRUST_ROLE_RELEASE,
	TRUST_ROLE_TIMESTAMP,
	TRUST_ROLE_COUNT,
};

struct trust_key {
	enum trust_role	 role;
	char		 id[ED25519_KEYID_HEX_LEN + 1];
	uint8_t		 pub[ED25519_PUBLIC_LEN];
};

struct trust_sig {
	char		 keyid[ED25519_KEYID_HEX_LEN + 1];
	uint8_t		 sig[ED25519_SIG_LEN];
};

struct trust_doc {
	enum trust_kind	 kind;
	int64_t		 created;
	/* keys */
	uint64_t	 version;
	unsigned	 threshold[TRUST_ROLE_COUNT];
	struct trust_key *keys;		/* KEYID ascending */
	size_t		 nkeys;
	/* release and pointer */
	char		*release;
	uint64_t	 sequence;
	char		*channel;
	uint8_t		 manifest[HASH_LEN];	/* release */
	uint64_t	 keys_version;		/* release */
	uint8_t		 release_digest[HASH_LEN]; /* pointer */
	int64_t		 expires;		/* pointer */
	/* signatures, KEYID ascending */
	struct trust_sig *sigs;
	size_t		 nsigs;
	/* the signed bytes as decoded or encoded (owned) */
	char		*body;
	size_t		 body_len;
};

/* "keys", "release", "pointer"; "root", "release", "timestamp". */
const char	*trust_kind_name(enum trust_kind kind);
const char	*trust_role_name(enum trust_role role);
/* The role named NAME; -1 when there is none. */
int		 trust_role_parse(const char *name);

/*
 * Decodes DATA (LEN bytes) strictly. NAME (a file or "the peer's release
 * document") prefixes the message logged on error, with the line number.
 * DS_ERR_INVALID on any deviation from the one encoding, or a document with
 * no signature. Caller frees *out with trust_doc_free.
 */
int	trust_doc_decode(const void *data, size_t len, const char *name, struct trust_doc **out);

/*
 * Signs D's fields with KEYS (N of them, each once): rebuilds d->body from
 * the fields and replaces d->sigs. The fields must be valid (a keys
 * document's keys in KEYID order, names that pass the checks): DS_ERR_INVALID
 * (logged) otherwise.
 */
int	trust_doc_sign(struct trust_doc *d, struct ed25519_key *const *keys, size_t n);

/* The whole document, body and signatures (caller frees *out). */
void	trust_doc_encode(const struct trust_doc *d, char **out, size_t *len);

/* SHA-256 of the encoded document: how a pointer names a release document. */
void	trust_doc_digest(const struct trust_doc *d, uint8_t out[HASH_LEN]);

void	trust_doc_free(struct trust_doc *d);

/* The key with id ID in keys document K, or NULL. */
const struct trust_key *trust_keys_find(const struct trust_doc *k, const char *id);

/*
 * Counts the distinct keys of ROLE in keys document K whose signature on D
 * verifies. Signatures by other keys are ignored (a document may be signed
 * by keys the site does not know yet).
 */
unsigned trust_doc_valid_sigs(const struct trust_doc *d, const struct trust_doc *k,
	    enum trust_role role);

/*
 * The first document of a chain, checked against the root keys a site pins:
 * D must be a keys document of version 1, list every pinned key id (PINNED,
 * N of them) among its root keys, and carry valid signatures of its own
 * root keys up to its root threshold, all of them pinned. DS_ERR_SIGNATURE,
 * logged with the reason, otherwise.
 */
int	trust_keys_check_first(const struct trust_doc *d, char *const *pinned, size_t n);

/*
 * One link of the chain: NEXT must be a keys document of version
 * PREV->version + 1 (no version skipped), signed by a threshold of PREV's
 * root keys AND a threshold of its own. DS_ERR_SIGNATURE, logged, otherwise.
 */
int	trust_keys_check_next(const struct trust_doc *prev, const struct trust_doc *next);

/*
 * A release document R for the manifest whose digest is MANIFEST, against
 * the newest keys document K the site trusts: kind release, signed by a
 * threshold of K's release keys (a key K no longer lists is revoked), the
 * manifest digest equal, NOW not before R's creation by more than
 * TRUST_CLOCK_SLACK (else the clock is wrong, and the message says so).
 * DS_ERR_SIGNATURE, logged naming WHO (a host or "the upstream"), otherwise.
 */
int	trust_release_check(const struct trust_doc *r, const struct trust_doc *k,
	    const uint8_t manifest[HASH_LEN], time_t now, const char *who);

/*
 * A pointer P against the keys document K and the release document R it
 * names: signed by K's timestamp keys (release keys when K has none), the
 * same channel, release and sequence as R, R's digest, and not expired at
 * NOW (the message gives its age); a clock before P's creation is reported
 * as a wrong clock. DS_ERR_SIGNATURE, logged naming WHO, otherwise.
 */
int	trust_pointer_check(const struct trust_doc *p, const struct trust_doc *k,
	    const struct trust_doc *r, time_t now, const char *who);

/*
 * Anti-rollback. A site remembers, per release key, the highest sequence it
 * applied from a release that key signed (and that release document's
 * digest). A release is refused when its sequence is lower than the
 * highest mark of any key the newest keys document still names as a
 * release key, or equal to it but a different document. Marks of a revoked
 * key no longer count, so a sequence inflated by a briefly stolen key is
 * undone by revoking that key (TUF's fast-forward recovery).
 * Stored as lines "mark KEYID SEQUENCE RELEASE-SHA256", KEYID ascending.
 */
struct trust_mark {
	char		 keyid[ED25519_KEYID_HEX_LEN + 1];
	uint64_t	 sequence;
	uint8_t		 release_digest[HASH_LEN];
};

struct trust_marks {
	struct trust_mark *marks;	/* KEYID ascending */
	size_t		 count;
};

/* Decodes the marks file (LEN bytes; empty: none). DS_ERR_INVALID logged with NAME. */
int	trust_marks_decode(const void *data, size_t len, const char *name, struct trust_marks *out);
/* Encodes the marks (caller frees *out). */
void	trust_marks_encode(const struct trust_marks *m, char **out, size_t *len);
void	trust_marks_release(struct trust_marks *m);

/*
 * The anti-rollback check of release document R (already verified against K
 * by trust_release_check) under marks M. DS_ERR_SIGNATURE, logged naming WHO
 * and both sequences, when R would go back.
 */
int	trust_rollback_check(const struct trust_marks *m, const struct trust_doc *k,
	    const struct trust_doc *r, const char *who);

/* Records R as applied: the mark of every release key of K that signed it. */
void	trust_marks_update(struct trust_marks *m, const struct trust_doc *k,
	    const struct trust_doc *r);

/*
 * What travels with a signed release (in COMMIT's signature field, in a
 * mirror, in a bundle): the release document, then the repository's keys
 * documents, version 1 first, so a site can walk the chain from its pinned
 * root. Bytes: u32 count, then count u32-length-prefixed documents; at most
 * TRUST_BUNDLE_DOCS documents of at most TRUST_DOC_MAX bytes each.
 */
#define TRUST_BUNDLE_DOCS	256

/* Encodes the bundle (caller frees *out). */
void	trust_bundle_encode(const struct trust_doc *release, struct trust_doc *const *chain,
	    size_t n, uint8_t **out, size_t *len);

/*
 * Decodes a bundle strictly: *release (a release document) and *chain
 * (*n keys documents, versions ascending by one). DS_ERR_INVALID, logged
 * naming WHO, on any fault. Caller frees with trust_doc_free and
 * trust_chain_free.
 */
int	trust_bundle_decode(const void *data, size_t len, const char *who,
	    struct trust_doc **release, struct trust_doc ***chain, size_t *n);
void	trust_chain_free(struct trust_doc **chain, size_t n);

/* TIME as "2026-12-04T09:30:00Z" into buf (at least 21 bytes). */
void	trust_time_format(int64_t t, char *buf, size_t len);
/* Parses that exact form; DS_ERR_INVALID otherwise. */
int	trust_time_parse(const char *s, int64_t *out);
/* 0 if NAME may name a channel: [a-z0-9._-], 1..TRUST_CHANNEL_MAX bytes, not "." or "..". */
int	trust_channel_check(const char *name);

#endif
