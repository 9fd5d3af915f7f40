/* Small helpers: number parsing, human-readable figures, clocks, hex digits, the home directory. */
#ifndef DS_UTIL_H
#define DS_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Parses a decimal unsigned int no larger than max; returns 0 or DS_ERR_INVALID. */
int	util_parse_uint(const char *s, unsigned max, unsigned *out);
/*
 * Parses the value of --OPTION as a number of seconds no larger than max.
 * Returns 0, or logs "--OPTION: 'ARG' is not a number of seconds (0..MAX)"
 * and returns DS_ERR_USAGE.
 */
int	util_parse_seconds(const char *option, const char *arg, unsigned max, unsigned *out);
/*
 * Parses a duration: digits with an optional s, m, h or d suffix (no sign,
 * no spaces) into seconds. 0 or DS_ERR_INVALID (not logged).
 */
int	util_parse_duration(const char *s, uint64_t *out);
/* Parses plain digits (no sign, no spaces) into *out; 0 or DS_ERR_INVALID. */
int	util_parse_u64(const char *s, uint64_t *out);
/* util_parse_u64 of the one canonical spelling: no leading zero (formats that sign bytes). */
int	util_parse_canonical_u64(const char *s, uint64_t *out);
/* Formats a byte count as "812 B", "12.3 KB", "4.56 MB", "1.23 GB" (powers of 1000). */
void	util_format_bytes(uint64_t bytes, char *buf, size_t len);
/* Seconds on the monotonic clock. */
double	util_now(void);
/* Milliseconds on the monotonic clock. */
uint64_t util_now_ms(void);
/* The value of hex digit C (either case), or -1. */
int	util_hexval(int c);
/*
 * S made safe to print on a terminal: every control character -- bytes
 * below 0x20 and 0x7f, and the C1 controls U+0080..U+009F as UTF-8 -- is
 * written as \xHH, so text from a peer (file names, messages, release ids)
 * cannot move the cursor, clear the screen or retitle the window. With
 * UTIL_KEEP_NEWLINES a '\n' stays (a message of several lines). Backslashes
 * stay as they are, so the result escapes to itself.
 *
 * util_printable returns a new string (caller frees; NULL for NULL);
 * util_printable_buf writes into BUF of SIZE (> 0) bytes, cut short when it
 * does not fit (never inside an escape), and returns BUF.
 */
#define UTIL_KEEP_NEWLINES	1
char	*util_printable(const char *s, int flags);
char	*util_printable_buf(const char *s, int flags, char *buf, size_t size);
/*
 * The user's home directory: $HOME when it is an absolute path, else the
 * passwd entry's; NULL when neither is (caller frees).
 */
char	*util_home_dir(void);

#endif
