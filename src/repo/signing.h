/*
 * The repository's side of signing: the chain of keys documents kept in the
 * store (keys/1.keys … keys/N.keys, each signed by its root keys and the
 * previous one's), and one signed release document per signed release
 * (releases/ID.release, beside ID.manifest). See trust.h for the documents.
 */
#ifndef DS_SIGNING_H
#define DS_SIGNING_H

#include <stddef.h>
#include <stdint.h>

#include "repo/trust.h"

struct ed25519_key;
struct manifest;
struct store;

/*
 * The store's chain of keys documents, version 1 first (*docs: *count of
 * them, caller frees with signing_chain_free; *count 0 when the store has
 * none). Each file is decoded and each link checked (trust_keys_check_next):
 * a broken chain is DS_ERR_SIGNATURE, logged naming the file.
 */
int	signing_chain_load(const struct store *store, struct trust_doc ***docs, size_t *count);
void	signing_chain_free(struct trust_doc **docs, size_t count);

/*
 * Adds keys document D as the store's next version (keys/N.keys): D must be
 * version 1 on an empty chain, else follow the newest (trust_keys_check_next).
 * Refuses to replace a file. DS_ERR_SIGNATURE / DS_ERR_SYSTEM, logged.
 */
int	signing_chain_add(struct store *store, const struct trust_doc *d);

/*
 * Checks, before a release is cut, that KEY can sign it: the store has a
 * keys document and its newest version lists KEY as a release key.
 * DS_ERR_CONFIG (logged, saying what to do) otherwise.
 */
int	signing_key_check(const struct store *store, const struct ed25519_key *key);

/*
 * Signs release ID (manifest M) with KEY as the next sequence on CHANNEL and
 * saves releases/ID.release. KEY must pass signing_key_check. *out (may be NULL; caller frees) is the document written.
 */
int	signing_release_sign(struct store *store, const char *id, const struct manifest *m,
	    struct ed25519_key *key, const char *channel, struct trust_doc **out);

/*
 * Loads releases/ID.release: 0 with *out, DS_ERR_NOTFOUND (not logged) for an
 * unsigned release, DS_ERR_INVALID (logged) for a malformed one. *raw and
 * *raw_len (may be NULL) receive the document's bytes (caller frees).
 */
int	signing_release_load(const struct store *store, const char *id, struct trust_doc **out,
	    char **raw, size_t *raw_len);

#endif
