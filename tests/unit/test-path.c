#include "autoconf.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "base/err.h"
#include "base/path.h"
#include "tap.h"

static void
test_check(void)
{
	static const struct { const char *path; int ok; } table[] = {
		{ "a", 1 }, { "a/b/c.war", 1 }, { "openmrs_modules/x-1.0.omod", 1 },
		{ ".hidden", 1 }, { "a..b", 1 }, { "...", 1 },
		{ "", 0 }, { "/etc/passwd", 0 }, { "..", 0 }, { "../x", 0 },
		{ "a/../b", 0 }, { "a/..", 0 }, { ".", 0 }, { "./a", 0 }, { "a/./b", 0 },
		{ "a//b", 0 }, { "a/", 0 }, { "/", 0 },
		/* The scanner's rule, the same for every path in (issue 16, finding 5). */
		{ "a\nb", 0 }, { "dir/x\n", 0 }, { "\n", 0 }, { "tab\tok", 1 },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		const char *why = NULL;
		int r = path_check(table[i].path, strlen(table[i].path), &why);
		CHECK((r == 0) == table[i].ok, "path_check(\"%s\") %s%s", table[i].path,
		    table[i].ok ? "accepted" : "rejected: ", why ? why : "");
	}
	CHECK(path_check("a\0b", 3, NULL) != 0, "NUL inside a path is rejected");
	char longp[PATH_MAX_LEN + 2];
	memset(longp, 'a', sizeof(longp));
	for (size_t i = 100; i < sizeof(longp); i += 100)
		longp[i] = '/';
	CHECK(path_check(longp, sizeof(longp), NULL) != 0, "overlong path rejected");
}

/*
 * Symlinks a tree may hold: relative, leading ".." only (never after a
 * name: "a/.." through a symlink a -> . climbs out), never above the root.
 */
static void
test_link(void)
{
	static const struct { const char *path, *target; int ok; } table[] = {
		{ "l", "index.html", 1 }, { "l", "a/b/c", 1 }, { "d/l", "../x", 1 },
		{ "d/e/l", "../../x/y", 1 }, { "d/l", "..", 1 }, { "l", ".", 1 },
		{ "l", "./a", 1 }, { "d/l", "./../x", 1 }, { "l", "a//b", 1 },
		{ "l", "", 0 }, { "l", "/etc/passwd", 0 }, { "l", "..", 0 },
		{ "l", "../x", 0 }, { "d/l", "../../x", 0 }, { "d/l", "../../../etc", 0 },
		{ "l", "a/..", 0 }, { "l", "a/../b", 0 }, { "d/l", "x/../..", 0 },
		{ "d/l", "./x/../../y", 0 },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		const char *why = NULL;
		int r = path_link_check(table[i].path, table[i].target, strlen(table[i].target),
		    &why);
		CHECK((r == 0) == table[i].ok, "%s -> \"%s\" %s%s", table[i].path, table[i].target,
		    table[i].ok ? "accepted" : "rejected: ", why ? why : "");
	}
	CHECK(path_link_check("l", "a\0b", 3, NULL) != 0, "NUL inside a link target is rejected");
	{
		char longt[PATH_MAX_LEN + 2];

		memset(longt, 'a', sizeof(longt));
		CHECK(path_link_check("l", longt, sizeof(longt), NULL) != 0,
		    "overlong link target rejected");
	}
}

static void
test_glob(void)
{
	static const struct { const char *pat, *path; int match; } table[] = {
		{ "openmrs_modules/**", "openmrs_modules/a.omod", 1 },
		{ "openmrs_modules/**", "openmrs_modules/x/y/z", 1 },
		{ "openmrs_modules/**", "openmrs_modulesx/a", 0 },
		{ "openmrs_modules/**", "openmrs_core/a.war", 0 },
		{ "frontend/index.html", "frontend/index.html", 1 },
		{ "frontend/index.html", "frontend/index.htm", 0 },
		{ "trusted_sql/*.sql", "trusted_sql/a.sql", 1 },
		{ "trusted_sql/*.sql", "trusted_sql/x/a.sql", 0 },
		{ "**/*.js", "a.js", 1 },
		{ "**/*.js", "a/b/c.js", 1 },
		{ "**/*.js", "a/b/c.css", 0 },
		{ "a/**/b", "a/b", 1 },
		{ "a/**/b", "a/x/y/b", 1 },
		{ "a/?.txt", "a/1.txt", 1 },
		{ "a/?.txt", "a/12.txt", 0 },
		{ "a/[0-9].txt", "a/5.txt", 1 },
		{ "a/[!0-9].txt", "a/5.txt", 0 },
		{ "*", "a/b", 0 },
		{ "**", "a/b", 1 },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		CHECK(path_glob_match(table[i].pat, table[i].path) == table[i].match,
		    "glob %s vs %s -> %d", table[i].pat, table[i].path, table[i].match);
	static const struct { const char *pat; int ok; } checks[] = {
		{ "a/**", 1 }, { "**/x", 1 }, { "a/[abc]", 1 }, { "a/*.war", 1 },
		{ "", 0 }, { "/abs/**", 0 }, { "a/[abc", 0 }, { "a**", 0 }, { "**a", 0 },
		{ "a/***", 0 }, { "../x", 0 }, { "a/./b", 0 }, { "a\\", 0 },
	};
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
		CHECK((path_glob_check(checks[i].pat, NULL) == 0) == checks[i].ok,
		    "glob check %s -> %d", checks[i].pat, checks[i].ok);
}

static void
test_openat(void)
{
	int root = open(".", O_RDONLY | O_DIRECTORY);
	int fd;

	fd = path_openat(root, "x/y/z.txt", O_WRONLY | O_CREAT, 0644);
	CHECK(fd >= 0, "path_openat creates parents");
	close(fd);
	CHECK(symlink("/etc", "evil") == 0, "made a symlink out of the tree");
	fd = path_openat(root, "evil/passwd", O_RDONLY, 0);
	CHECK(fd == -1, "path_openat does not follow a symlinked directory");
	fd = path_openat(root, "evil", O_RDONLY, 0);
	CHECK(fd == -1, "path_openat does not follow a final symlink");
	close(root);
}

static void
test_absolute(void)
{
	char *p = path_absolute("/a/b", "../c/./d//e");
	CHECK(strcmp(p, "/a/c/d/e") == 0, "path_absolute normalises: %s", p);
	free(p);
	p = path_absolute("/a", "/x/y/..");
	CHECK(strcmp(p, "/x") == 0, "path_absolute keeps absolute: %s", p);
	free(p);
}

int
main(void)
{
	tap_run("check", test_check);
	tap_run("link", test_link);
	tap_run("glob", test_glob);
	tap_run("openat", test_openat);
	tap_run("absolute", test_absolute);
	return tap_done();
}
