/* Ed25519 through OpenSSL's EVP interface (ed25519.h). */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base/ed25519.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/xmalloc.h"

struct ed25519_key {
	EVP_PKEY	*pkey;
};

/* The first OpenSSL error as text, and the queue cleared. */
static const char *
ssl_error(void)
{
	static __thread char text[256];
	unsigned long e = ERR_get_error();

	if (e == 0)
		return "unknown OpenSSL error";
	ERR_error_string_n(e, text, sizeof(text));
	ERR_clear_error();
	return text;
}

/* An OpenSSL failure that only resource exhaustion explains: like xmalloc's. */
static void
ssl_fatal(const char *what)
{
	log_error("ed25519: %s: %s", what, ssl_error());
	abort();
}

struct ed25519_key *
ed25519_generate(void)
{
	struct ed25519_key *k = xcalloc(1, sizeof(*k));
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);

	if (ctx == NULL || EVP_PKEY_keygen_init(ctx) <= 0 || EVP_PKEY_keygen(ctx, &k->pkey) <= 0)
		ssl_fatal("cannot generate a key");
	EVP_PKEY_CTX_free(ctx);
	return k;
}

void
ed25519_free(struct ed25519_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

int
ed25519_save(const struct ed25519_key *k, const char *path, const char *passphrase)
{
	const EVP_CIPHER *cipher = NULL;
	size_t plen = 0;
	FILE *fp;
	int fd, ok;

	if (passphrase != NULL && passphrase[0] != '\0') {
		cipher = EVP_aes_256_cbc();
		plen = strlen(passphrase);
	}
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) == -1) {
		log_errno("%s", path);
		return DS_ERR_SYSTEM;
	}
	if ((fp = fdopen(fd, "w")) == NULL) {
		log_errno("%s", path);
		close(fd);
		unlink(path);
		return DS_ERR_SYSTEM;
	}
	ok = PEM_write_PKCS8PrivateKey(fp, k->pkey, cipher, (char *)passphrase, (int)plen,
	    NULL, NULL) == 1;
	if (ok)
		ok = fflush(fp) == 0 && fsync(fileno(fp)) == 0;
	if (fclose(fp) != 0)
		ok = 0;
	if (!ok) {
		log_error("%s: cannot write the key: %s", path, ERR_peek_error() != 0 ?
		    ssl_error() : strerror(errno));
		unlink(path);
		return DS_ERR_SYSTEM;
	}
	return 0;
}

int
ed25519_file_encrypted(const char *path)
{
	char line[128];
	FILE *fp = fopen(path, "re");
	int enc = 0;

	if (fp == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (strncmp(line, "-----BEGIN ENCRYPTED PRIVATE KEY-----", 37) == 0 ||
		    strncmp(line, "Proc-Type: 4,ENCRYPTED", 22) == 0) {
			enc = 1;
			break;
		}
	}
	fclose(fp);
	return enc;
}

/* PEM passphrase callback: never prompts, NULL userdata means "none given". */
static int
passphrase_cb(char *buf, int size, int rwflag, void *u)
{
	const char *pass = u;
	size_t len;

	(void)rwflag;
	if (pass == NULL)
		return -1;
	len = strlen(pass);
	if (len > (size_t)size)
		return -1;
	memcpy(buf, pass, len);
	return (int)len;
}

int
ed25519_load(const char *path, const char *passphrase, struct ed25519_key **out)
{
	struct ed25519_key *k;
	EVP_PKEY *pkey;
	FILE *fp;

	*out = NULL;
	if ((fp = fopen(path, "re")) == NULL) {
		log_errno("%s: cannot read the key", path);
		return errno == ENOENT ? DS_ERR_NOTFOUND : DS_ERR_SYSTEM;
	}
	pkey = PEM_read_PrivateKey(fp, NULL, passphrase_cb, (void *)passphrase);
	fclose(fp);
	if (pkey == NULL) {
		if (passphrase == NULL && ed25519_file_encrypted(path) == 1)
			log_error("%s: the key is encrypted and needs its passphrase", path);
		else
			log_error("%s: not a readable private key (%s%s)", path, ssl_error(),
			    passphrase != NULL ? "; is the passphrase right?" : "");
		ERR_clear_error();
		return DS_ERR_SIGNATURE;
	}
	if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		log_error("%s: not an Ed25519 key (distsync signs with Ed25519 only)", path);
		EVP_PKEY_free(pkey);
		return DS_ERR_SIGNATURE;
	}
	k = xcalloc(1, sizeof(*k));
	k->pkey = pkey;
	*out = k;
	return 0;
}

void
ed25519_public(const struct ed25519_key *k, uint8_t pub[ED25519_PUBLIC_LEN])
{
	size_t len = ED25519_PUBLIC_LEN;

	if (EVP_PKEY_get_raw_public_key(k->pkey, pub, &len) != 1 || len != ED25519_PUBLIC_LEN)
		ssl_fatal("cannot read a public key");
}

void
ed25519_keyid(const uint8_t pub[ED25519_PUBLIC_LEN], char id[ED25519_KEYID_HEX_LEN + 1])
{
	uint8_t digest[HASH_LEN];

	hash_bytes(pub, ED25519_PUBLIC_LEN, digest);
	hash_to_hex(digest, id);
}

int
ed25519_sign(const struct ed25519_key *k, const void *data, size_t len,
    uint8_t sig[ED25519_SIG_LEN])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	size_t siglen = ED25519_SIG_LEN;
	int ok;

	if (md == NULL)
		ssl_fatal("out of memory");
	ok = EVP_DigestSignInit(md, NULL, NULL, NULL, k->pkey) == 1 &&
	    EVP_DigestSign(md, sig, &siglen, data, len) == 1 && siglen == ED25519_SIG_LEN;
	EVP_MD_CTX_free(md);
	if (!ok) {
		log_error("ed25519: signing failed: %s", ssl_error());
		return DS_ERR_SIGNATURE;
	}
	return 0;
}

int
ed25519_verify(const uint8_t pub[ED25519_PUBLIC_LEN], const void *data, size_t len,
    const uint8_t sig[ED25519_SIG_LEN])
{
	EVP_PKEY *pkey;
	EVP_MD_CTX *md;
	int ok;

	pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, ED25519_PUBLIC_LEN);
	if (pkey == NULL) {
		ERR_clear_error();
		return 0;
	}
	if ((md = EVP_MD_CTX_new()) == NULL)
		ssl_fatal("out of memory");
	ok = EVP_DigestVerifyInit(md, NULL, NULL, NULL, pkey) == 1 &&
	    EVP_DigestVerify(md, sig, ED25519_SIG_LEN, data, len) == 1;
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return ok;
}
