#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/util.h"
#include "base/xmalloc.h"

int
util_parse_uint(const char *s, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return DS_ERR_INVALID;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return DS_ERR_INVALID;
	*out = (unsigned)v;
	return 0;
}

int
util_parse_seconds(const char *option, const char *arg, unsigned max, unsigned *out)
{
	if (util_parse_uint(arg, max, out) == 0)
		return 0;
	log_error("--%s: '%s' is not a number of seconds (0..%u)", option, arg, max);
	return DS_ERR_USAGE;
}

void
util_format_bytes(uint64_t bytes, char *buf, size_t len)
{
	if (bytes < 1000)
		snprintf(buf, len, "%" PRIu64 " B", bytes);
	else if (bytes < 1000 * 1000)
		snprintf(buf, len, "%.1f KB", bytes / 1e3);
	else if (bytes < (uint64_t)1000 * 1000 * 1000)
		snprintf(buf, len, "%.2f MB", bytes / 1e6);
	else
		snprintf(buf, len, "%.2f GB", bytes / 1e9);
}

double
util_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t
util_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
util_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *
util_home_dir(void)
{
	const char *home = getenv("HOME");
	struct passwd *pw;

	if (home != NULL && home[0] == '/')
		return xstrdup(home);
	pw = getpwuid(getuid());
	if (pw != NULL && pw->pw_dir != NULL && pw->pw_dir[0] == '/')
		return xstrdup(pw->pw_dir);
	return NULL;
}

/* Digits, with an s/m/h/d suffix when UNITS; no sign, no spaces. */
static int
parse_digits(const char *s, int units, uint64_t *out)
{
	uint64_t v = 0, mul = 1;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return DS_ERR_INVALID;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return DS_ERR_INVALID;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (units && *p != '\0' && p[1] == '\0') {
		switch (*p++) {
		case 's':
			break;
		case 'm':
			mul = 60;
			break;
		case 'h':
			mul = 3600;
			break;
		case 'd':
			mul = 86400;
			break;
		default:
			return DS_ERR_INVALID;
		}
	}
	if (*p != '\0' || (mul > 1 && v > UINT64_MAX / mul))
		return DS_ERR_INVALID;
	*out = v * mul;
	return 0;
}

int
util_parse_duration(const char *s, uint64_t *out)
{
	return parse_digits(s, 1, out);
}

int
util_parse_u64(const char *s, uint64_t *out)
{
	return parse_digits(s, 0, out);
}

int
util_parse_canonical_u64(const char *s, uint64_t *out)
{
	/* One spelling per number: "0", or no leading zero. */
	if (s[0] == '0' && s[1] != '\0')
		return DS_ERR_INVALID;
	return util_parse_u64(s, out);
}

/*
 * Bytes of the control character at S (see util_printable), or 0 for a
 * character printed as it is.
 */
static size_t
control_len(const unsigned char *s, int flags)
{
	if (s[0] == '\n' && (flags & UTIL_KEEP_NEWLINES))
		return 0;
	if (s[0] < 0x20 || s[0] == 0x7f)
		return 1;
	if (s[0] == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f)
		return 2;
	return 0;
}

char *
util_printable_buf(const char *s, int flags, char *buf, size_t size)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0, c;

	while (*p != '\0') {
		if ((c = control_len(p, flags)) == 0) {
			if (n + 1 >= size)
				break;
			buf[n++] = (char)*p++;
			continue;
		}
		if (n + 4 * c >= size)
			break;
		for (; c > 0; c--, p++, n += 4)
			snprintf(buf + n, 5, "\\x%02x", *p);
	}
	buf[n] = '\0';
	return buf;
}

char *
util_printable(const char *s, int flags)
{
	size_t size;

	if (s == NULL)
		return NULL;
	size = 4 * strlen(s) + 1;
	return util_printable_buf(s, flags, xmalloc(size), size);
}
