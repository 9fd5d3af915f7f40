/* Bounded byte buffers; see buf.h. */
#include "autoconf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/xmalloc.h"

struct buf {
	uint8_t	*data;
	size_t	 off;		/* first unconsumed byte */
	size_t	 size;		/* end of the written bytes */
	size_t	 alloc;
	size_t	 max;		/* size - off may never exceed this */
};

struct buf *
buf_new(size_t max)
{
	struct buf *b = xcalloc(1, sizeof(*b));

	b->max = max == 0 ? BUF_MAX_DEFAULT : max;
	return b;
}

struct buf *
buf_from(const void *data, size_t len)
{
	struct buf *b = buf_new(len == 0 ? 1 : len);

	if (len > 0) {
		b->data = xmalloc(len);
		memcpy(b->data, data, len);
		b->alloc = b->size = len;
	}
	return b;
}

void
buf_free(struct buf *b)
{
	if (b == NULL)
		return;
	free(b->data);
	free(b);
}

void
buf_reset(struct buf *b)
{
	b->off = b->size = 0;
}

size_t
buf_len(const struct buf *b)
{
	return b->size - b->off;
}

const uint8_t *
buf_ptr(const struct buf *b)
{
	static const uint8_t empty[1];

	return b->data == NULL ? empty : b->data + b->off;
}

size_t
buf_max(const struct buf *b)
{
	return b->max;
}

int
buf_set_max(struct buf *b, size_t max)
{
	if (buf_len(b) > max)
		return DS_ERR_INVALID;
	b->max = max;
	return 0;
}

int
buf_reserve(struct buf *b, size_t len, uint8_t **dst)
{
	size_t need;

	if (len > b->max || buf_len(b) > b->max - len)
		return DS_ERR_INVALID;
	/* Slide the unconsumed bytes down before growing. */
	if (b->off > 0 && b->size + len > b->alloc) {
		memmove(b->data, b->data + b->off, b->size - b->off);
		b->size -= b->off;
		b->off = 0;
	}
	need = b->size + len;
	/* Even zero bytes get storage: *dst must never be an offset from NULL. */
	if (need > b->alloc || b->data == NULL) {
		size_t want = b->alloc < 256 ? 256 : b->alloc;

		while (want < need)
			want = want > SIZE_MAX / 2 ? need : want * 2;
		b->data = xreallocarray(b->data, 1, want);
		b->alloc = want;
	}
	*dst = b->data + b->size;
	b->size += len;
	return 0;
}

int
buf_unreserve(struct buf *b, size_t len)
{
	if (len > buf_len(b))
		return DS_ERR_INVALID;
	b->size -= len;
	return 0;
}

int
buf_put(struct buf *b, const void *data, size_t len)
{
	uint8_t *dst;
	int r;

	if ((r = buf_reserve(b, len, &dst)) != 0)
		return r;
	if (len > 0)
		memcpy(dst, data, len);
	return 0;
}

int
buf_put_u8(struct buf *b, uint8_t v)
{
	return buf_put(b, &v, 1);
}

int
buf_put_u32(struct buf *b, uint32_t v)
{
	uint8_t p[4] = { v >> 24, v >> 16, v >> 8, v };

	return buf_put(b, p, sizeof(p));
}

int
buf_put_u64(struct buf *b, uint64_t v)
{
	uint8_t p[8];

	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
	return buf_put(b, p, sizeof(p));
}

int
buf_put_string(struct buf *b, const void *data, size_t len)
{
	uint8_t *dst;
	int r;

	if (len > UINT32_MAX)
		return DS_ERR_INVALID;
	if ((r = buf_reserve(b, 4 + len, &dst)) != 0)
		return r;
	dst[0] = (uint8_t)(len >> 24);
	dst[1] = (uint8_t)(len >> 16);
	dst[2] = (uint8_t)(len >> 8);
	dst[3] = (uint8_t)len;
	if (len > 0)
		memcpy(dst + 4, data, len);
	return 0;
}

int
buf_put_cstring(struct buf *b, const char *s)
{
	return buf_put_string(b, s == NULL ? "" : s, s == NULL ? 0 : strlen(s));
}

int
buf_consume(struct buf *b, size_t len)
{
	if (len > buf_len(b))
		return DS_ERR_INVALID;
	b->off += len;
	if (b->off == b->size)
		b->off = b->size = 0;
	return 0;
}

int
buf_get(struct buf *b, void *out, size_t len)
{
	if (len > buf_len(b))
		return DS_ERR_INVALID;
	if (len > 0)
		memcpy(out, buf_ptr(b), len);
	return buf_consume(b, len);
}

int
buf_get_u8(struct buf *b, uint8_t *v)
{
	return buf_get(b, v, 1);
}

int
buf_peek_u32(const struct buf *b, uint32_t *v)
{
	const uint8_t *p = buf_ptr(b);

	if (buf_len(b) < 4)
		return DS_ERR_INVALID;
	*v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	return 0;
}

int
buf_get_u32(struct buf *b, uint32_t *v)
{
	int r;

	if ((r = buf_peek_u32(b, v)) != 0)
		return r;
	return buf_consume(b, 4);
}

int
buf_get_u64(struct buf *b, uint64_t *v)
{
	const uint8_t *p = buf_ptr(b);
	uint64_t x = 0;

	if (buf_len(b) < 8)
		return DS_ERR_INVALID;
	for (int i = 0; i < 8; i++)
		x = x << 8 | p[i];
	*v = x;
	return buf_consume(b, 8);
}

int
buf_get_string_direct(struct buf *b, const uint8_t **data, size_t *len)
{
	uint32_t n;
	int r;

	*data = NULL;
	*len = 0;
	if ((r = buf_peek_u32(b, &n)) != 0)
		return r;
	if (n > buf_len(b) - 4)
		return DS_ERR_INVALID;
	*data = buf_ptr(b) + 4;
	*len = n;
	/* Consuming keeps the bytes in place until the buffer is written again. */
	b->off += 4 + (size_t)n;
	return 0;
}

int
buf_get_string(struct buf *b, uint8_t **data, size_t *len)
{
	const uint8_t *p;
	size_t n;
	int r;

	*data = NULL;
	if (len != NULL)
		*len = 0;
	if ((r = buf_get_string_direct(b, &p, &n)) != 0)
		return r;
	*data = xmalloc(n + 1);
	if (n > 0)
		memcpy(*data, p, n);
	(*data)[n] = '\0';
	if (len != NULL)
		*len = n;
	if (b->off == b->size)
		b->off = b->size = 0;
	return 0;
}

int
buf_get_cstring(struct buf *b, char **s, size_t maxlen)
{
	const uint8_t *p;
	uint32_t n;
	size_t plen;
	int r;

	*s = NULL;
	if ((r = buf_peek_u32(b, &n)) != 0)
		return r;
	if (n > buf_len(b) - 4 || (maxlen != 0 && n > maxlen))
		return DS_ERR_INVALID;
	if (n > 0 && memchr(buf_ptr(b) + 4, '\0', n) != NULL)
		return DS_ERR_INVALID;
	if ((r = buf_get_string_direct(b, &p, &plen)) != 0)
		return r;
	*s = xstrndup((const char *)p, plen);
	if (b->off == b->size)
		b->off = b->size = 0;
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	char small[256], *text;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return DS_ERR_INVALID;
	if ((size_t)n < sizeof(small))
		return buf_put(b, small, (size_t)n);
	/* Formatted apart, not in place: vsnprintf's NUL must not need room past the maximum. */
	text = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(text, (size_t)n + 1, fmt, ap);
	va_end(ap);
	r = buf_put(b, text, (size_t)n);
	free(text);
	return r;
}

int
buf_put_hex(struct buf *b, const void *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *p = data;
	uint8_t *dst;
	int r;

	if (len > SIZE_MAX / 2 || (r = buf_reserve(b, 2 * len, &dst)) != 0)
		return DS_ERR_INVALID;
	for (size_t i = 0; i < len; i++) {
		dst[2 * i] = (uint8_t)digits[p[i] >> 4];
		dst[2 * i + 1] = (uint8_t)digits[p[i] & 15];
	}
	return 0;
}

char *
buf_dup_cstring(const struct buf *b, size_t *len)
{
	size_t n = buf_len(b);
	char *s = xmalloc(n + 1);

	if (n > 0)
		memcpy(s, buf_ptr(b), n);
	s[n] = '\0';
	if (len != NULL)
		*len = n;
	return s;
}
