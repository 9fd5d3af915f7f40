/*
 * A tiny TAP producer for unit programs: each test runs in its own temp dir
 * (kept when it fails), and every check prints "ok N" or "not ok N".
 */
#ifndef DS_TAP_H
#define DS_TAP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int tap_count, tap_failed, tap_test_failed;
static char tap_dir[256];

#define CHECK(cond, ...) do {						\
	int tap_ok_ = (cond) ? 1 : 0;	/* evaluated once: cond may have effects */ \
	tap_count++;							\
	if (tap_ok_) {							\
		printf("ok %d - ", tap_count);				\
	} else {							\
		printf("not ok %d - ", tap_count);			\
		tap_failed++;						\
		tap_test_failed = 1;					\
	}								\
	printf(__VA_ARGS__);						\
	printf("\n");							\
	if (!tap_ok_)							\
		printf("# failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
	fflush(stdout);							\
} while (0)

/* Runs fn in a fresh temp dir as cwd; removes the dir unless a check failed. */
static void
tap_run(const char *name, void (*fn)(void))
{
	char cwd[4096];
	const char *tmp = getenv("TMPDIR");

	snprintf(tap_dir, sizeof(tap_dir), "%s/ds-test-%s-XXXXXX", tmp ? tmp : "/tmp", name);
	if (mkdtemp(tap_dir) == NULL || getcwd(cwd, sizeof(cwd)) == NULL || chdir(tap_dir) != 0) {
		printf("Bail out! cannot make a temp dir for %s\n", name);
		exit(1);
	}
	printf("# %s\n", name);
	tap_test_failed = 0;
	fn();
	if (chdir(cwd) != 0)
		exit(1);
	if (!tap_test_failed) {
		char cmd[512];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tap_dir);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", tap_dir);
	} else
		printf("# kept %s\n", tap_dir);
}

static int
tap_done(void)
{
	printf("1..%d\n", tap_count);
	return tap_failed ? 1 : 0;
}

/*
 * Whether the slow cases run: only with DS_TEST_FULL=1 (tools/test, and so
 * CI, sets it; a developer's quick run leaves it off). When off, WHAT is
 * reported as "ok N - WHAT # SKIP set DS_TEST_FULL=1" and 0 returned; under
 * CI=true as "not ok" instead, so CI cannot pass without them.
 */
static inline int
tap_full(const char *what)
{
	const char *full = getenv("DS_TEST_FULL"), *ci = getenv("CI");

	if (full != NULL && strcmp(full, "1") == 0)
		return 1;
	tap_count++;
	if (ci != NULL && strcmp(ci, "true") == 0) {
		printf("not ok %d - %s: required under CI=true: set DS_TEST_FULL=1\n", tap_count,
		    what);
		tap_failed++;
		tap_test_failed = 1;
	} else
		printf("ok %d - %s # SKIP set DS_TEST_FULL=1\n", tap_count, what);
	fflush(stdout);
	return 0;
}

/* Writes a file with the given content; returns 0 on success. */
static inline int
tap_write_file(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	int r;

	if (fp == NULL)
		return -1;
	r = fwrite(data, 1, len, fp) == len ? 0 : -1;
	if (fclose(fp) != 0)
		r = -1;
	return r;
}

#endif
