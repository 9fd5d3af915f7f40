/*
 * Ed25519 keys and signatures through OpenSSL: the only file that speaks
 * OpenSSL's key API. A key id is the SHA-256 of the raw 32-byte public key,
 * written as 64 lower-case hex digits; it names a key in signed documents.
 * Private keys are PKCS#8 PEM files, optionally encrypted with a passphrase
 * (PKCS#8 PBES2: AES-256-CBC, the key derived with PBKDF2).
 */
#ifndef DS_ED25519_H
#define DS_ED25519_H

#include <stddef.h>
#include <stdint.h>

#define ED25519_PUBLIC_LEN	32
#define ED25519_SIG_LEN		64
#define ED25519_KEYID_HEX_LEN	64

struct ed25519_key;	/* a private key (it can sign) */

/* A new random key; never NULL (allocation failure is fatal). */
struct ed25519_key *ed25519_generate(void);

/* Frees k, wiping it; NULL is fine. */
void	ed25519_free(struct ed25519_key *k);

/*
 * Writes k to PATH as PEM, mode 0600, refusing to replace an existing file
 * (EEXIST). PASSPHRASE NULL or "": unencrypted. 0, or DS_ERR_SYSTEM logged
 * with the path.
 */
int	ed25519_save(const struct ed25519_key *k, const char *path, const char *passphrase);

/*
 * Reads a private key from PATH. PASSPHRASE is used when the file is
 * encrypted (NULL: an encrypted file fails with DS_ERR_SIGNATURE, "needs a
 * passphrase"). DS_ERR_NOTFOUND when PATH does not exist, DS_ERR_SIGNATURE
 * when it is not an Ed25519 private key or the passphrase is wrong; each
 * logged naming PATH. Caller frees *out with ed25519_free.
 */
int	ed25519_load(const char *path, const char *passphrase, struct ed25519_key **out);

/* 1 if the PEM file at PATH is encrypted, 0 if not, -1 if unreadable. */
int	ed25519_file_encrypted(const char *path);

/* The raw public key of k. */
void	ed25519_public(const struct ed25519_key *k, uint8_t pub[ED25519_PUBLIC_LEN]);

/* The key id of a raw public key: 64 hex digits and a NUL. */
void	ed25519_keyid(const uint8_t pub[ED25519_PUBLIC_LEN], char id[ED25519_KEYID_HEX_LEN + 1]);

/* Signs DATA with k. 0, or DS_ERR_SIGNATURE (logged). */
int	ed25519_sign(const struct ed25519_key *k, const void *data, size_t len,
	    uint8_t sig[ED25519_SIG_LEN]);

/* 1 if SIG is PUB's signature of DATA, 0 if not (nothing logged). */
int	ed25519_verify(const uint8_t pub[ED25519_PUBLIC_LEN], const void *data, size_t len,
	    const uint8_t sig[ED25519_SIG_LEN]);

#endif
