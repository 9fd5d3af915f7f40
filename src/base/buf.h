/*
 * Bounded byte buffers, in the manner of OpenSSH's sshbuf: opaque, with a
 * per-buffer maximum size. Writers append at the end; readers consume from
 * the front. Every getter checks the bytes it needs are there and, when they
 * are not, fails with DS_ERR_INVALID and leaves the buffer unchanged. Nothing
 * here logs: the caller knows which frame or file it was reading.
 * Integers are big-endian on the wire; strings and blobs are u32-length-prefixed.
 */
#ifndef DS_BUF_H
#define DS_BUF_H

#include <stddef.h>
#include <stdint.h>

#define BUF_MAX_DEFAULT	(64u * 1024 * 1024)	/* used when buf_new is given 0 */

struct buf;

/* Returns an empty buffer that may grow to max bytes (0: BUF_MAX_DEFAULT); free with buf_free. */
struct buf	*buf_new(size_t max);
/* Returns a buffer holding a copy of data (max: len, or more if later set). */
struct buf	*buf_from(const void *data, size_t len);
/* Frees the buffer, clearing nothing (no secrets go through here); NULL is fine. */
void		 buf_free(struct buf *b);
/* Empties the buffer, keeping its maximum. */
void		 buf_reset(struct buf *b);

/* Bytes not yet consumed. */
size_t		 buf_len(const struct buf *b);
/* Pointer to the unconsumed bytes; valid until the next call that changes b. */
const uint8_t	*buf_ptr(const struct buf *b);
size_t		 buf_max(const struct buf *b);
/* Sets the maximum; DS_ERR_INVALID if the buffer already holds more. */
int		 buf_set_max(struct buf *b, size_t max);

/*
 * Makes room for len more bytes at the end and points *dst at them (the
 * bytes count as written); DS_ERR_INVALID past the maximum.
 */
int	buf_reserve(struct buf *b, size_t len, uint8_t **dst);
/* Drops len bytes from the end (undoes part of a reserve). */
int	buf_unreserve(struct buf *b, size_t len);

/* Appenders: 0, or DS_ERR_INVALID when the maximum would be passed. */
int	buf_put(struct buf *b, const void *data, size_t len);
int	buf_put_u8(struct buf *b, uint8_t v);
int	buf_put_u32(struct buf *b, uint32_t v);
int	buf_put_u64(struct buf *b, uint64_t v);
/* u32 length, then the bytes. */
int	buf_put_string(struct buf *b, const void *data, size_t len);
/* A C string as a string (without its NUL); NULL is sent as the empty string. */
int	buf_put_cstring(struct buf *b, const char *s);

/*
 * Text builders over the same buffer: formatted text (no NUL), lower-case
 * hex of LEN bytes. 0, or DS_ERR_INVALID when the maximum would be passed.
 */
int	buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int	buf_put_hex(struct buf *b, const void *data, size_t len);
/* The unconsumed bytes as a new NUL-terminated string (caller frees); *len (may be NULL) their length. */
char	*buf_dup_cstring(const struct buf *b, size_t *len);

/* Getters: consume on success; DS_ERR_INVALID and nothing consumed on overrun. */
int	buf_consume(struct buf *b, size_t len);
int	buf_get(struct buf *b, void *out, size_t len);
int	buf_get_u8(struct buf *b, uint8_t *v);
int	buf_get_u32(struct buf *b, uint32_t *v);
int	buf_get_u64(struct buf *b, uint64_t *v);
/* Reads a u32 without consuming it. */
int	buf_peek_u32(const struct buf *b, uint32_t *v);
/*
 * A string, as a pointer into the buffer (valid until b changes) and its
 * length; no copy.
 */
int	buf_get_string_direct(struct buf *b, const uint8_t **data, size_t *len);
/* A string copied to a new allocation (caller frees), NUL-terminated for convenience. */
int	buf_get_string(struct buf *b, uint8_t **data, size_t *len);
/*
 * A string that must hold no NUL byte, as a new C string (caller frees);
 * DS_ERR_INVALID on an embedded NUL or when longer than maxlen (0: no limit).
 */
int	buf_get_cstring(struct buf *b, char **s, size_t maxlen);
/* Exactly len raw bytes (a fixed-size field such as a hash). */
#define buf_get_fixed(b, out, len)	buf_get((b), (out), (len))

#endif
