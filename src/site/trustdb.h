/*
 * What a site trusts, kept in its state directory, and the check a signed
 * release must pass before anything of it is applied:
 *
 *	STATE/trust/pinned	the root key ids the chain was walked from
 *	STATE/trust/keys	the newest keys document accepted (trust.h)
 *	STATE/trust/marks	anti-rollback marks of the releases applied
 *
 * The site's pins come from its own configuration, never from the peer.
 * Nothing is written by the check: a refused release changes nothing; the
 * caller records what it accepted once the release is applied.
 */
#ifndef DS_TRUSTDB_H
#define DS_TRUSTDB_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/hash.h"

struct target;
struct trust_doc;
struct trustdb_pending;

/*
 * Checks the signature bundle BLOB (LEN bytes; NULL or empty: the release is
 * unsigned) of release RELEASE_ID, whose manifest digest is DIGEST, against
 * the site's pinned root key ids PINNED (N > 0) and the trust already
 * recorded in t's state: the chain of keys documents from the pinned root
 * (or from the newest one recorded; a chain shorter than that one is not
 * taken), the release's signature and manifest, its sequence against the
 * marks (anti-rollback), the clock. 0 with *pending (free with
 * trustdb_pending_free), or DS_ERR_SIGNATURE logged naming WHO.
 */
int	trustdb_check(struct target *t, char *const *pinned, size_t n, const void *blob,
	    size_t len, const char *release_id, const uint8_t digest[HASH_LEN], time_t now,
	    const char *who, struct trustdb_pending **pending);

/*
 * The newest keys document P's check walked to (owned by P): what a
 * mirror's pointer is checked against (trust_pointer_check).
 */
const struct trust_doc *trustdb_pending_keys(const struct trustdb_pending *p);

/* Records P (the newest keys document, the marks with this release) atomically. */
int	trustdb_record(struct target *t, const struct trustdb_pending *p);

void	trustdb_pending_free(struct trustdb_pending *p);

/*
 * What the site has recorded, for status: the newest keys version (0: none)
 * and the highest sequence applied (0: none). Missing files are not errors.
 */
int	trustdb_summary(struct target *t, uint64_t *keys_version, uint64_t *sequence);

#endif
