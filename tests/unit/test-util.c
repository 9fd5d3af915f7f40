/*
 * Unit tests of base/util.c's printable text (issue 16, finding 10): a
 * peer's bytes reach the terminal escaped, whether printed directly or in a
 * log line.
 */
#include "autoconf.h"

#include "base/log.h"
#include "base/util.h"
#include "tap.h"

static void
test_printable(void)
{
	static const struct { const char *in, *out; int flags; } table[] = {
		{ "plain/path-1.0.omod", "plain/path-1.0.omod", 0 },
		{ "", "", 0 },
		{ "\033]0;pwned\007", "\\x1b]0;pwned\\x07", 0 },
		{ "\033[2J\033[H", "\\x1b[2J\\x1b[H", 0 },
		{ "a\nb\rc\td", "a\\x0ab\\x0dc\\x09d", 0 },
		{ "a\nb", "a\nb", UTIL_KEEP_NEWLINES },
		{ "a\r\nb", "a\\x0d\nb", UTIL_KEEP_NEWLINES },
		{ "del\177", "del\\x7f", 0 },
		{ "c1 \302\233" "2J", "c1 \\xc2\\x9b" "2J", 0 },
		{ "caf\303\251 \302\240nbsp", "caf\303\251 \302\240nbsp", 0 },
		{ "back\\slash \\x1b", "back\\slash \\x1b", 0 },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		char *out = util_printable(table[i].in, table[i].flags), *again;

		CHECK(strcmp(out, table[i].out) == 0, "printable case %zu: \"%s\"", i, out);
		again = util_printable(out, table[i].flags);
		CHECK(strcmp(again, out) == 0, "case %zu escapes to itself", i);
		free(again);
		free(out);
	}
	CHECK(util_printable(NULL, 0) == NULL, "NULL gives NULL");
	{
		char buf[8];

		util_printable_buf("\033\033\033", 0, buf, sizeof(buf));
		CHECK(strcmp(buf, "\\x1b") == 0, "a short buffer is never cut inside an escape (%s)",
		    buf);
		util_printable_buf("abcdefghij", 0, buf, sizeof(buf));
		CHECK(strcmp(buf, "abcdefg") == 0, "a short buffer is cut and terminated");
	}
}

static char logged[8192];

static void
keep_line(const char *line, void *arg)
{
	(void)arg;
	snprintf(logged, sizeof(logged), "%s", line);
}

static int
has_control(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
			return 1;
	return 0;
}

static void
test_log(void)
{
	log_set_writer(keep_line, NULL);
	log_error("%s: drift in %s", "host", "evil\033]0;owned\007/x\n\033[2J");
	CHECK(!has_control(logged), "a log line carries no control character: %s", logged);
	CHECK(strstr(logged, "evil\\x1b]0;owned\\x07/x\\x0a\\x1b[2J") != NULL,
	    "the bytes are shown escaped");
	log_warn("name \302\233 end");
	CHECK(!has_control(logged), "a C1 control is escaped in a warning: %s", logged);
	/* A local push's site side logs under the host's name, once. */
	log_set_prefix("kirehe");
	log_error("host kirehe: service backend restarted");
	CHECK(strcmp(logged, "distsync: host kirehe: service backend restarted") == 0,
	    "a line naming its host is not prefixed again: %s", logged);
	log_error("kirehe: connection closed");
	CHECK(strcmp(logged, "distsync: kirehe: connection closed") == 0,
	    "nor one beginning with the name: %s", logged);
	log_error("host kirehe2: x");
	CHECK(strcmp(logged, "distsync: kirehe: host kirehe2: x") == 0,
	    "another host's line keeps the prefix: %s", logged);
	log_error("kirehex: y");
	CHECK(strcmp(logged, "distsync: kirehe: kirehex: y") == 0,
	    "a name only beginning like it keeps the prefix: %s", logged);
	log_set_prefix(NULL);
	CHECK(log_line_names("host a: b", "a") && log_line_names("a: b", "a") &&
	    !log_line_names("host a b", "a") && !log_line_names("b: a", "a") &&
	    !log_line_names("a: b", ""), "log_line_names");
	log_set_writer(NULL, NULL);
}

int
main(void)
{
	tap_run("printable", test_printable);
	tap_run("log", test_log);
	return tap_done();
}
