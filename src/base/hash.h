/* SHA-256 through OpenSSL EVP. */
#ifndef DS_HASH_H
#define DS_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_LEN	32
#define HASH_HEX_LEN	64

struct hash_ctx;

/* Streaming interface; hash_ctx_new never returns NULL. */
struct hash_ctx	*hash_ctx_new(void);
void		 hash_ctx_update(struct hash_ctx *ctx, const void *data, size_t len);
/* Writes the digest and resets ctx for reuse. */
void		 hash_ctx_final(struct hash_ctx *ctx, uint8_t out[HASH_LEN]);
void		 hash_ctx_free(struct hash_ctx *ctx);

/* Digest of a memory block. */
void	hash_bytes(const void *data, size_t len, uint8_t out[HASH_LEN]);

/*
 * Reads fd to its end and writes its digest and byte count. Returns 0, or
 * DS_ERR_SYSTEM with errno set (nothing logged: the caller knows the path).
 */
int	hash_fd(int fd, uint8_t out[HASH_LEN], uint64_t *size);

/* Frees the calling thread's hash_fd scratch now (it is also freed at thread exit). */
void	hash_thread_cleanup(void);

/* Writes 64 lowercase hex digits and a NUL to hex. */
void	hash_to_hex(const uint8_t hash[HASH_LEN], char hex[HASH_HEX_LEN + 1]);

/* Parses exactly 64 hex digits; returns 0 or DS_ERR_INVALID. */
int	hash_from_hex(const char *hex, size_t len, uint8_t out[HASH_LEN]);

/* Returns 1 if all bytes are zero (the "no content" hash of directories). */
int	hash_is_zero(const uint8_t hash[HASH_LEN]);

#endif
