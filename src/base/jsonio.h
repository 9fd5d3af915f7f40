/*
 * JSON through jansson, the way distsync writes and reads it: compact, keys
 * in the order they were set, any C string accepted, no control character
 * in the output but the newlines between array elements. Every JSON the
 * program prints or reads back goes through jansson (these helpers and its
 * own json_* calls); allocation failures are fatal, as in xmalloc.
 */
#ifndef DS_JSONIO_H
#define DS_JSONIO_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* The largest JSON integer jansson holds. */
#if JSON_INTEGER_IS_LONG_LONG
#define JSONIO_INT_MAX	LLONG_MAX
#else
#define JSONIO_INT_MAX	LONG_MAX
#endif

/*
 * A new JSON string holding S, or JSON null for a NULL S. Bytes that are not
 * UTF-8 (a Latin-1 file name, say) become U+FFFD, so every C string can be
 * written. Never NULL.
 */
json_t	*jsonio_string(const char *s);

/* A new JSON integer of V, saturated at the largest JSON integer. Never NULL. */
json_t	*jsonio_uint(uint64_t v);

/* A JSON real of SECONDS to the millisecond (negative: 0), as summaries give times. */
json_t	*jsonio_seconds(double seconds);

/*
 * jansson's json_pack (a new value from FMT and its arguments), never NULL:
 * a format that does not match its arguments is a bug, fatal here. Strings
 * of any origin go in as "o" with jsonio_string, since "s" refuses bytes
 * that are not UTF-8.
 */
json_t	*jsonio_pack(const char *fmt, ...);

/*
 * Writes V compactly (no spaces) to FP, keys in insertion order, reals with
 * at most 15 significant digits, DEL escaped like the other control
 * characters. Returns 0, or DS_ERR_SYSTEM when FP fails (not logged: the
 * caller names the file).
 */
int	 jsonio_write(FILE *fp, const json_t *v);

/*
 * Writes the array V as "[", one element a line (jsonio_write) each but the
 * last followed by ",", and "]", each on its own line: a document that reads
 * back as a whole or line by line. Returns as jsonio_write.
 */
int	 jsonio_write_lines(FILE *fp, const json_t *v);

/* V as jsonio_write writes it, in a new string (caller frees). */
char	*jsonio_text(const json_t *v);

/*
 * Parses the one JSON value that starts TEXT; with TRAILING nonzero what
 * follows it (the "," after an element of jsonio_write_lines) is ignored,
 * else only whitespace may. Returns a new reference or NULL when TEXT is not
 * JSON (not logged: the caller knows what it read).
 */
json_t	*jsonio_parse(const char *text, int trailing);

#endif
