/*
 * The project's one way to JSON: jansson with the flags, the string repair
 * and the framing every output shares (jsonio.h).
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/jsonio.h"
#include "base/log.h"
#include "base/xmalloc.h"

#define DUMP_FLAGS	(JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15) | \
			 JSON_ENCODE_ANY)

/* A bug or no memory: nothing sensible is left to do. */
static void __attribute__((noreturn))
fatal(const char *what, const char *detail)
{
	log_error("jsonio: %s%s%s", what, detail != NULL ? ": " : "", detail != NULL ? detail : "");
	abort();
}

/*
 * jansson allocates through xmalloc, so running out of memory is fatal
 * there as everywhere else and no json_* call returns NULL for it. Set
 * before main, when nothing has been allocated yet.
 */
__attribute__((constructor)) static void
jsonio_alloc(void)
{
	json_set_alloc_funcs(xmalloc, free);
}

/* Length of the UTF-8 sequence at P (LEFT bytes there), or 0 when it is not one. */
static size_t
utf8_length(const unsigned char *p, size_t left)
{
	size_t len, i;
	unsigned char lo = 0x80, hi = 0xbf;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		if (p[0] == 0xe0)
			lo = 0xa0;	/* overlong */
		else if (p[0] == 0xed)
			hi = 0x9f;	/* surrogates */
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		if (p[0] == 0xf0)
			lo = 0x90;	/* overlong */
		else if (p[0] == 0xf4)
			hi = 0x8f;	/* past U+10FFFF */
	} else
		return 0;
	if (left < len || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

json_t *
jsonio_string(const char *s)
{
	static const char replacement[] = "\xef\xbf\xbd";	/* U+FFFD */
	const unsigned char *p = (const unsigned char *)s;
	size_t n, left, j = 0;
	json_t *v;
	char *fixed;

	if (s == NULL)
		return json_null();
	if ((v = json_string(s)) != NULL)
		return v;
	/* Not UTF-8: each byte that starts no sequence stands for one U+FFFD. */
	left = strlen(s);
	fixed = xmalloc(left * 3 + 1);
	while (left > 0) {
		if ((n = utf8_length(p, left)) == 0) {
			memcpy(fixed + j, replacement, 3);
			j += 3;
			n = 1;
		} else {
			memcpy(fixed + j, p, n);
			j += n;
		}
		p += n;
		left -= n;
	}
	fixed[j] = '\0';
	v = json_string(fixed);
	free(fixed);
	if (v == NULL)
		fatal("a repaired string is still not UTF-8", NULL);
	return v;
}

json_t *
jsonio_uint(uint64_t v)
{
	return json_integer(v > (uint64_t)JSONIO_INT_MAX ? JSONIO_INT_MAX : (json_int_t)v);
}

json_t *
jsonio_seconds(double seconds)
{
	return json_real(seconds > 0 ? (double)(int64_t)(seconds * 1000 + 0.5) / 1000 : 0.0);
}

json_t *
jsonio_pack(const char *fmt, ...)
{
	json_error_t error;
	va_list ap;
	json_t *v;

	va_start(ap, fmt);
	v = json_vpack_ex(&error, 0, fmt, ap);
	va_end(ap);
	if (v == NULL)
		fatal(fmt, error.text);
	return v;
}

/* json_dump_callback's sink: to a FILE, with DEL escaped (jansson leaves it raw). */
static int
dump_to_file(const char *buffer, size_t size, void *data)
{
	FILE *fp = data;
	const char *del;

	while (size > 0 && (del = memchr(buffer, 0x7f, size)) != NULL) {
		/* A DEL can only stand inside a string, where its escape means the same. */
		if (fwrite(buffer, 1, (size_t)(del - buffer), fp) != (size_t)(del - buffer) ||
		    fputs("\\u007F", fp) == EOF)
			return -1;
		size -= (size_t)(del - buffer) + 1;
		buffer = del + 1;
	}
	return size == 0 || fwrite(buffer, 1, size, fp) == size ? 0 : -1;
}

int
jsonio_write(FILE *fp, const json_t *v)
{
	return json_dump_callback(v, dump_to_file, fp, DUMP_FLAGS) == 0 && !ferror(fp) ? 0 :
	    DS_ERR_SYSTEM;
}

int
jsonio_write_lines(FILE *fp, const json_t *v)
{
	size_t n = json_array_size(v);
	int r = 0;

	if (fputs("[\n", fp) == EOF)
		return DS_ERR_SYSTEM;
	for (size_t i = 0; i < n && r == 0; i++) {
		r = jsonio_write(fp, json_array_get(v, i));
		if (r == 0 && fputs(i + 1 < n ? ",\n" : "\n", fp) == EOF)
			r = DS_ERR_SYSTEM;
	}
	if (r == 0 && fputs("]\n", fp) == EOF)
		r = DS_ERR_SYSTEM;
	return r;
}

char *
jsonio_text(const json_t *v)
{
	char *text = NULL;
	size_t size = 0;
	FILE *fp;

	if ((fp = open_memstream(&text, &size)) == NULL)
		fatal("open_memstream", "out of memory");
	(void)jsonio_write(fp, v);	/* a memstream fails only for memory */
	if (fclose(fp) != 0)
		fatal("open_memstream", "out of memory");
	return text;
}

json_t *
jsonio_parse(const char *text, int trailing)
{
	json_error_t error;

	return json_loads(text, trailing ? JSON_DISABLE_EOF_CHECK : 0, &error);
}
