#include "autoconf.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "repo/manifest.h"
#include "tap.h"

#define ZERO "0000000000000000000000000000000000000000000000000000000000000000"
#define H1   "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define HDR  "distsync-manifest 1\n"

static void
test_decode_table(void)
{
	static const struct { const char *name, *text; int ok; } table[] = {
		{ "empty manifest", HDR, 1 },
		{ "one file", HDR "f 0644 0 " H1 " a\n", 1 },
		{ "dir and file", HDR "d 0755 0 " ZERO " a\nf 0644 0 " H1 " a/b\n", 1 },
		{ "escaped space", HDR "f 0644 0 " H1 " a\\x20b\n", 1 },
		{ "escaped backslash", HDR "f 0644 0 " H1 " a\\\\b\n", 1 },
		{ "symlink", HDR "l 0777 3 " H1 " x\n", 1 },
		{ "no header", "f 0644 0 " H1 " a\n", 0 },
		{ "wrong version", "distsync-manifest 2\n", 0 },
		{ "missing newline", HDR "f 0644 0 " H1 " a", 0 },
		{ "bad type", HDR "x 0644 0 " H1 " a\n", 0 },
		{ "bad mode digit", HDR "f 0648 0 " H1 " a\n", 0 },
		{ "short mode", HDR "f 644 0 " H1 " a\n", 0 },
		{ "negative size", HDR "f 0644 -1 " H1 " a\n", 0 },
		{ "leading zero size", HDR "f 0644 01 " H1 " a\n", 0 },
		{ "huge size", HDR "f 0644 99999999999999999999999 " H1 " a\n", 0 },
		{ "short hash", HDR "f 0644 0 e3b0 a\n", 0 },
		{ "uppercase hash", HDR "f 0644 0 E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855 a\n", 0 },
		{ "absolute path", HDR "f 0644 0 " H1 " /etc/passwd\n", 0 },
		{ "dotdot", HDR "f 0644 0 " H1 " ../x\n", 0 },
		{ "inner dotdot", HDR "d 0755 0 " ZERO " a\nf 0644 0 " H1 " a/../b\n", 0 },
		{ "unsorted", HDR "f 0644 0 " H1 " b\nf 0644 0 " H1 " a\n", 0 },
		{ "duplicate", HDR "f 0644 0 " H1 " a\nf 0644 0 " H1 " a\n", 0 },
		{ "parent missing", HDR "f 0644 0 " H1 " a/b\n", 0 },
		{ "parent is a file", HDR "f 0644 0 " H1 " a\nf 0644 0 " H1 " a/b\n", 0 },
		{ "dir with size", HDR "d 0755 5 " ZERO " a\n", 0 },
		{ "raw space in path", HDR "f 0644 0 " H1 " a b\n", 0 },
		{ "bad escape", HDR "f 0644 0 " H1 " a\\q\n", 0 },
		{ "escaped printable", HDR "f 0644 0 " H1 " a\\x41\n", 0 },
		{ "escaped NUL", HDR "f 0644 0 " H1 " a\\x00\n", 0 },
		{ "empty path", HDR "f 0644 0 " H1 " \n", 0 },
		{ "trailing field", HDR "f 0644 0 " H1 " a b c\n", 0 },
		{ "double space", HDR "f  0644 0 " H1 " a\n", 0 },
		/* What the scanner refuses no manifest holds (issue 16, finding 5). */
		{ "escaped newline", HDR "f 0644 0 " H1 " a\\x0ab\n", 0 },
		{ "escaped tab", HDR "f 0644 0 " H1 " a\\x09b\n", 1 },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		struct manifest *m = NULL;
		int r = manifest_decode(table[i].text, strlen(table[i].text), table[i].name, &m);
		CHECK((r == 0) == table[i].ok && ((m != NULL) == table[i].ok),
		    "decode %s: %s", table[i].name, table[i].ok ? "accepted" : "rejected");
		if (m != NULL) {
			char *enc;
			size_t len;
			manifest_encode(m, &enc, &len);
			CHECK(len == strlen(table[i].text) && memcmp(enc, table[i].text, len) == 0,
			    "%s re-encodes to the same bytes", table[i].name);
			free(enc);
		}
		manifest_free(m);
	}
	struct manifest *m = NULL;
	static const char nul[] = HDR "f 0644 0 " H1 " a\0b\n";
	CHECK(manifest_decode(nul, sizeof(nul) - 1, "nul", &m) != 0 && m == NULL, "NUL in a line rejected");
}

static void
make_tree(void)
{
	mkdir("t", 0755);
	mkdir("t/openmrs_modules", 0755);
	mkdir("t/frontend", 0750);
	tap_write_file("t/openmrs_modules/a-1.0.omod", "module a", 8);
	tap_write_file("t/frontend/index.html", "<html>", 6);
	tap_write_file("t/empty", "", 0);
	tap_write_file("t/with space", "s", 1);
	chmod("t/empty", 0600);
	symlink("index.html", "t/frontend/link");
}

static void
test_scan(void)
{
	struct manifest *m = NULL, *back = NULL;
	struct manifest_scan_stats st;
	char *enc;
	size_t len;

	make_tree();
	CHECK(manifest_scan("t", NULL, "cache", 2, &m, &st) == 0, "scan a tree");
	if (m == NULL)
		return;
	CHECK(m->count == 7, "7 entries (got %zu)", m->count);
	CHECK(st.files == 4 && st.hashed_files == 4, "cold scan hashed every file");
	const struct manifest_entry *e = manifest_find(m, "frontend/link");
	CHECK(e != NULL && e->type == MANIFEST_SYMLINK && e->size == 10, "symlink recorded");
	e = manifest_find(m, "empty");
	CHECK(e != NULL && e->mode == 0600 && e->size == 0, "mode recorded");
	e = manifest_find(m, "frontend");
	CHECK(e != NULL && e->type == MANIFEST_DIR && e->mode == 0750, "directory recorded");
	manifest_encode(m, &enc, &len);
	CHECK(manifest_decode(enc, len, "scan", &back) == 0, "scanned manifest decodes");
	CHECK(back != NULL && back->count == m->count, "round trip keeps every entry");
	free(enc);
	manifest_free(back);
	manifest_free(m);

	CHECK(manifest_scan("t", NULL, "cache", 2, &m, &st) == 0 && st.hashed_files == 0,
	    "warm scan hashes nothing (%ju)", (uintmax_t)st.hashed_files);
	manifest_free(m);
	/* Same size, same mtime, new content: the ctime still differs. */
	struct stat sb;
	stat("t/openmrs_modules/a-1.0.omod", &sb);
	tap_write_file("t/openmrs_modules/a-1.0.omod", "module b", 8);
	struct timespec ts[2] = { sb.st_atim, sb.st_mtim };
	utimensat(AT_FDCWD, "t/openmrs_modules/a-1.0.omod", ts, 0);
	CHECK(manifest_scan("t", NULL, "cache", 2, &m, &st) == 0 && st.hashed_files == 1,
	    "a rewritten file with its old mtime is rehashed");
	manifest_free(m);
	CHECK(manifest_scan("t", NULL, NULL, 1, &m, NULL) == 0, "scan without a cache, one thread");
	manifest_free(m);
}

static void
test_scan_rejects(void)
{
	struct manifest *m = NULL;

	mkdir("t", 0755);
	symlink("../../etc", "t/out");
	CHECK(manifest_scan("t", NULL, NULL, 1, &m, NULL) == DS_ERR_INVALID && m == NULL,
	    "a symlink leading outside the tree is an error");
	unlink("t/out");
	symlink("/etc/passwd", "t/abs");
	CHECK(manifest_scan("t", NULL, NULL, 1, &m, NULL) == DS_ERR_INVALID, "an absolute symlink is an error");
	unlink("t/abs");
	/* Lexically inside, but through a -> . it climbs out: ".." only leads. */
	symlink(".", "t/a");
	symlink("a/..", "t/up");
	CHECK(manifest_scan("t", NULL, NULL, 1, &m, NULL) == DS_ERR_INVALID,
	    "a symlink with '..' after a name is an error");
	unlink("t/up");
	unlink("t/a");
	tap_write_file("t/new\nline", "x", 1);
	CHECK(manifest_scan("t", NULL, NULL, 1, &m, NULL) == DS_ERR_INVALID,
	    "a file name with a newline is an error");
	unlink("t/new\nline");
	mkfifo("t/fifo", 0644);
	CHECK(manifest_scan("t", NULL, NULL, 1, &m, NULL) == DS_ERR_INVALID, "a fifo is rejected");
	unlink("t/fifo");
	CHECK(manifest_scan("missing", NULL, NULL, 1, &m, NULL) == DS_ERR_NOTFOUND, "a missing root");
	mkdir("t/x", 0755);
	tap_write_file("t/x/a", "a", 1);
	mkdir("t/skip", 0755);
	char *ex[] = { "skip", NULL };
	CHECK(manifest_scan("t", ex, NULL, 1, &m, NULL) == 0 && m->count == 2, "exclude skips a top-level name");
	manifest_free(m);
}

static int
count_change(enum manifest_change c, const struct manifest_entry *a, const struct manifest_entry *b,
    void *arg)
{
	int *counts = arg;
	counts[c]++;
	return 0;
}

static void
test_diff_and_mutations(void)
{
	struct manifest *a = NULL, *b = NULL;
	int counts[4] = { 0 };
	char *enc;
	size_t len;

	make_tree();
	manifest_scan("t", NULL, NULL, 1, &a, NULL);
	unlink("t/empty");
	tap_write_file("t/new", "n", 1);
	tap_write_file("t/frontend/index.html", "<html>2", 7);
	chmod("t/with space", 0600);
	manifest_scan("t", NULL, NULL, 1, &b, NULL);
	manifest_diff(a, b, count_change, counts);
	CHECK(counts[MANIFEST_ADDED] == 1 && counts[MANIFEST_DELETED] == 1 &&
	    counts[MANIFEST_CHANGED] == 1 && counts[MANIFEST_MODE] == 1, "diff finds each kind once");

	/* Mutation pass: every truncation and a bit flip in every byte decode cleanly. */
	manifest_encode(b, &enc, &len);
	log_set_level(LOG_LEVEL_SILENT);
	int crashes = 0, accepted_trunc = 0;
	for (size_t cut = 0; cut < len; cut++) {
		struct manifest *m = NULL;
		if (manifest_decode(enc, cut, "trunc", &m) == 0) {
			/* A cut at a line end is a valid shorter manifest. */
			if (cut == 0 || enc[cut - 1] != '\n')
				accepted_trunc++;
		}
		manifest_free(m);
	}
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			struct manifest *m = NULL;
			enc[i] ^= 1 << bit;
			if (manifest_decode(enc, len, "flip", &m) == 0 && m == NULL)
				crashes++;
			manifest_free(m);
			enc[i] ^= 1 << bit;
		}
	}
	log_set_level(LOG_LEVEL_INFO);
	CHECK(accepted_trunc == 0, "no mid-line truncation is accepted");
	CHECK(crashes == 0, "bit flips never report success without a manifest");
	free(enc);
	manifest_free(a);
	manifest_free(b);
}

static void
test_save_load(void)
{
	struct manifest *m = manifest_new(), *back = NULL;
	struct manifest_entry e = { 0 };

	e.path = "z";
	e.type = MANIFEST_FILE;
	e.mode = 0644;
	manifest_add(m, &e);
	e.path = "a";
	manifest_add(m, &e);
	CHECK(manifest_sort(m) == 0 && strcmp(m->entries[0].path, "a") == 0, "sort");
	struct manifest *dup = manifest_new();
	manifest_add(dup, &e);
	manifest_add(dup, &e);
	log_set_level(LOG_LEVEL_SILENT);
	CHECK(manifest_sort(dup) == DS_ERR_INVALID, "sort reports a duplicate");
	log_set_level(LOG_LEVEL_INFO);
	manifest_free(dup);
	CHECK(manifest_save(m, "saved") == 0 && manifest_load("saved", &back) == 0, "save and load");
	CHECK(back != NULL && back->count == 2, "loaded both entries");
	manifest_free(back);
	log_set_level(LOG_LEVEL_SILENT);
	CHECK(manifest_load("nope", &back) == DS_ERR_NOTFOUND && back == NULL, "loading a missing file");
	log_set_level(LOG_LEVEL_INFO);
	manifest_free(m);
}

int
main(void)
{
	tap_run("decode", test_decode_table);
	tap_run("scan", test_scan);
	tap_run("scan-rejects", test_scan_rejects);
	tap_run("diff", test_diff_and_mutations);
	tap_run("save", test_save_load);
	return tap_done();
}
