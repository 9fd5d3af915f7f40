#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>

#include <openssl/evp.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/util.h"
#include "base/xmalloc.h"

#define HASH_READ_SIZE	(256 * 1024)

struct hash_ctx {
	EVP_MD_CTX	*md;
};

static void
hash_init(EVP_MD_CTX *md)
{
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		abort();
}

struct hash_ctx *
hash_ctx_new(void)
{
	struct hash_ctx *ctx = xmalloc(sizeof(*ctx));

	ctx->md = EVP_MD_CTX_new();
	if (ctx->md == NULL)
		abort();
	hash_init(ctx->md);
	return ctx;
}

void
hash_ctx_update(struct hash_ctx *ctx, const void *data, size_t len)
{
	if (EVP_DigestUpdate(ctx->md, data, len) != 1)
		abort();
}

void
hash_ctx_final(struct hash_ctx *ctx, uint8_t out[HASH_LEN])
{
	unsigned int len = HASH_LEN;

	if (EVP_DigestFinal_ex(ctx->md, out, &len) != 1)
		abort();
	hash_init(ctx->md);
}

void
hash_ctx_free(struct hash_ctx *ctx)
{
	if (ctx == NULL)
		return;
	EVP_MD_CTX_free(ctx->md);
	free(ctx);
}

void
hash_bytes(const void *data, size_t len, uint8_t out[HASH_LEN])
{
	unsigned int olen = HASH_LEN;

	if (EVP_Digest(data, len, out, &olen, EVP_sha256(), NULL) != 1)
		abort();
}

/* Per-thread scratch for hash_fd, freed when the thread exits. */
struct hash_scratch {
	uint8_t		*buf;
	EVP_MD_CTX	*md;
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void
scratch_free(void *p)
{
	struct hash_scratch *s = p;

	EVP_MD_CTX_free(s->md);
	free(s->buf);
	free(s);
}

static void
scratch_key_init(void)
{
	if (pthread_key_create(&scratch_key, scratch_free) != 0)
		abort();
}

static struct hash_scratch *
scratch_get(void)
{
	struct hash_scratch *s;

	pthread_once(&scratch_once, scratch_key_init);
	if ((s = pthread_getspecific(scratch_key)) == NULL) {
		s = xmalloc(sizeof(*s));
		s->buf = xmalloc(HASH_READ_SIZE);
		if ((s->md = EVP_MD_CTX_new()) == NULL)
			abort();
		if (pthread_setspecific(scratch_key, s) != 0)
			abort();
	}
	return s;
}

void
hash_thread_cleanup(void)
{
	struct hash_scratch *s;

	pthread_once(&scratch_once, scratch_key_init);
	if ((s = pthread_getspecific(scratch_key)) != NULL) {
		scratch_free(s);
		pthread_setspecific(scratch_key, NULL);
	}
}

int
hash_fd(int fd, uint8_t out[HASH_LEN], uint64_t *size)
{
	struct hash_scratch *scratch = scratch_get();
	uint8_t *buf = scratch->buf;
	EVP_MD_CTX *md = scratch->md;
	const size_t bufsize = HASH_READ_SIZE;
	uint64_t total = 0;
	unsigned int olen = HASH_LEN;
	ssize_t n;

	hash_init(md);
#ifdef HAVE_POSIX_FADVISE
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
	for (;;) {
		n = read(fd, buf, bufsize);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return DS_ERR_SYSTEM;
		}
		if (n == 0)
			break;
		if (EVP_DigestUpdate(md, buf, n) != 1)
			abort();
		total += n;
	}
	if (EVP_DigestFinal_ex(md, out, &olen) != 1)
		abort();
	if (size != NULL)
		*size = total;
	return 0;
}

void
hash_to_hex(const uint8_t hash[HASH_LEN], char hex[HASH_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < HASH_LEN; i++) {
		hex[2 * i] = digits[hash[i] >> 4];
		hex[2 * i + 1] = digits[hash[i] & 15];
	}
	hex[HASH_HEX_LEN] = '\0';
}

/* A digit of canonical (lower-case) hex, or -1. */
static int
islower_hex(char c)
{
	return c >= 'A' && c <= 'F' ? -1 : util_hexval(c);
}

int
hash_from_hex(const char *hex, size_t len, uint8_t out[HASH_LEN])
{
	if (len != HASH_HEX_LEN)
		return DS_ERR_INVALID;
	for (size_t i = 0; i < HASH_LEN; i++) {
		/* Canonical hex is lower case. */
		int hi = islower_hex(hex[2 * i]), lo = islower_hex(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return DS_ERR_INVALID;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int
hash_is_zero(const uint8_t hash[HASH_LEN])
{
	for (size_t i = 0; i < HASH_LEN; i++)
		if (hash[i] != 0)
			return 0;
	return 1;
}
