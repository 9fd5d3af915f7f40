/*
 * Unit tests for journal.c: the on-disk bytes are pinned, good journals
 * round-trip byte for byte, a table of malformed journals is refused with a
 * message naming the line, and a mutation pass (every truncation, every bit
 * flip) is refused or decodes to a valid journal, never a crash.
 */
#include "autoconf.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/path.h"
#include "site/commit.h"
#include "site/journal.h"
#include "tap.h"

#define HEAD	"distsync-journal 1\n"
#define HEX64	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* Journals that decode and re-encode to the same bytes. */
static const char *const good[] = {
	HEAD "from -\nto 7\nkeep 3\nend\n",
	HEAD "from 7\nto (none)\nkeep 3\nend\n",
	HEAD "from (pre-distsync)\nto 2024.1+b_2\nkeep 2\n"
	    "B " HEX64 " core.war\n"
	    "B " HEX64 " lnk\n"
	    "U old/deep/f\n"
	    "R old/deep\n"
	    "R old\n"
	    "D 0755 -1 -1 new\n"
	    "P 0 0644 -1 -1 core.war\n"
	    "P 1 0600 1000 1001 new/caf\xc3\xa9.omod\n"
	    "P 2 0777 -1 -1 lnk\n"
	    "M 4755 0 0 run.sh\n"
	    "end\n",
	HEAD "from 1\nto 2\nkeep 10\n"
	    "U with%20space%09tab\n"
	    "P 12 0644 -1 -1 per%25cent/%7fdel\n"
	    "M 0000 -1 -1 a/b/c\n"
	    "end\n",
	/* What an apply owes after its files, and the rollback list it leaves. */
	HEAD "from 1\nto 2\nkeep 5\n"
	    "P 0 0644 -1 -1 trusted_sql/001%20a.sql\n"
	    "F 0 " HEX64 " trusted_sql/001%20a.sql\n"
	    "F 12 " HEX64 " trusted_sql/002.sql\n"
	    "O 1 " HEX64 "\n"
	    "S db\n"
	    "S backend\n"
	    "L 1 (pre-distsync)\n"
	    "end\n",
	HEAD "from 2\nto 1\nkeep 5\nS backend\nL\nend\n",
	HEAD "from 2\nto 1\nkeep 5\nL (none)\nend\n",
};
#define NGOOD	(sizeof(good) / sizeof(good[0]))

/* Journals refused, and the line each message must name. */
static const struct {
	const char	*text;
	unsigned	 line;
	const char	*why;
} bad[] = {
	{ "", 0, "empty" },
	{ "garbage\n", 1, "not a journal" },
	{ "distsync-journal 2\nfrom -\nto 1\nkeep 3\nend\n", 1, "another version" },
	{ HEAD "from -\nto 1\nkeep 3\n", 4, "no end" },
	{ HEAD "from -\nto 1\nkeep 3\nend", 5, "end without its newline" },
	{ HEAD "from -\nto 1\nkeep 3\nend\nU a\n", 6, "a record after end" },
	{ HEAD "to 1\nfrom -\nkeep 3\nend\n", 2, "header lines out of order" },
	{ HEAD "from -\nkeep 3\nend\n", 3, "no to line" },
	{ HEAD "from (pre-distsync\nto 1\nkeep 3\nend\n", 2, "from is no state id" },
	{ HEAD "from \nto 1\nkeep 3\nend\n", 2, "empty from" },
	{ HEAD "from -\nto ../1\nkeep 3\nend\n", 3, "to with .." },
	{ HEAD "from -\nto (bogus)\nkeep 3\nend\n", 3, "to is no state id" },
	{ HEAD "from -\nto 1\nkeep x\nend\n", 4, "keep is no number" },
	{ HEAD "from -\nto 1\nkeep 3 4\nend\n", 4, "keep with more" },
	{ HEAD "from -\nto 1\nkeep 3\nX a\nend\n", 5, "unknown record" },
	{ HEAD "from -\nto 1\nkeep 3\nU\nend\n", 5, "U without a path" },
	{ HEAD "from -\nto 1\nkeep 3\nU ../x\nend\n", 5, "path with .." },
	{ HEAD "from -\nto 1\nkeep 3\nU a/../b\nend\n", 5, "path with .. inside" },
	{ HEAD "from -\nto 1\nkeep 3\nU /etc/passwd\nend\n", 5, "absolute path" },
	{ HEAD "from -\nto 1\nkeep 3\nU a%2\nend\n", 5, "cut escape" },
	{ HEAD "from -\nto 1\nkeep 3\nU a%zz\nend\n", 5, "escape that is no hex" },
	{ HEAD "from -\nto 1\nkeep 3\nU a%00b\nend\n", 5, "escaped NUL" },
	{ HEAD "from -\nto 1\nkeep 3\nP 0 99999 -1 -1 a\nend\n", 5, "mode past 07777" },
	{ HEAD "from -\nto 1\nkeep 3\nP 0 0644 -1 a\nend\n", 5, "P without gid" },
	{ HEAD "from -\nto 1\nkeep 3\nD 0755 -1 -1\nend\n", 5, "D without a path" },
	{ HEAD "from -\nto 1\nkeep 3\nM x -1 -1 a\nend\n", 5, "M with no mode" },
	{ HEAD "from -\nto 1\nkeep 3\nB abc a\nend\n", 5, "B with a short hash" },
	{ HEAD "from -\nto 1\nkeep 3\nB " HEX64 " \nend\n", 5, "B without a path" },
	{ HEAD "from -\nto 1\nkeep 3\nU a\nU b\nR c\nQ\nend\n", 8, "the bad line, not the first" },
	{ HEAD "from -\nto 1\nkeep 3\nF 0 " HEX64 "\nend\n", 5, "F without a path" },
	{ HEAD "from -\nto 1\nkeep 3\nF 0 " HEX64 " ../x\nend\n", 5, "F path with .." },
	{ HEAD "from -\nto 1\nkeep 3\nF x " HEX64 " a\nend\n", 5, "F with no hook index" },
	{ HEAD "from -\nto 1\nkeep 3\nF 01 " HEX64 " a\nend\n", 5, "F index with a leading zero" },
	{ HEAD "from -\nto 1\nkeep 3\nF -1 " HEX64 " a\nend\n", 5, "F with a negative index" },
	{ HEAD "from -\nto 1\nkeep 3\nF 0  " HEX64 " a\nend\n", 5, "F with two spaces" },
	{ HEAD "from -\nto 1\nkeep 3\nF 0 abc a\nend\n", 5, "F with a short hash" },
	{ HEAD "from -\nto 1\nkeep 3\nO 0 " HEX64 " a\nend\n", 5, "O with a path" },
	{ HEAD "from -\nto 1\nkeep 3\nO 999999 " HEX64 "\nend\n", 5, "O index too large" },
	{ HEAD "from -\nto 1\nkeep 3\nS\nend\n", 5, "S without a name" },
	{ HEAD "from -\nto 1\nkeep 3\nS a/b\nend\n", 5, "S name with a slash" },
	{ HEAD "from -\nto 1\nkeep 3\nS a%2fb\nend\n", 5, "S name with an escaped slash" },
	{ HEAD "from -\nto 1\nkeep 3\nL \nend\n", 5, "L with a space and no id" },
	{ HEAD "from -\nto 1\nkeep 3\nL 1  2\nend\n", 5, "L with an empty id" },
	{ HEAD "from -\nto 1\nkeep 3\nL 1 ../2\nend\n", 5, "L with no state id" },
	{ HEAD "from -\nto 1\nkeep 3\nL 1\nL 2\nend\n", 6, "a second L" },
	/* One spelling for every field (found by fuzz-journal). */
	{ HEAD "from -\nto 1\nkeep3\nend\n", 4, "keep without its space" },
	{ HEAD "from -\nto 1\nkeep 03\nend\n", 4, "keep with a leading zero" },
	{ HEAD "from -\nto 1\nkeep -1\nend\n", 4, "a negative keep" },
	{ HEAD "from -\nto 1\nkeep 4294967296\nend\n", 4, "keep past 32 bits" },
	{ HEAD "from -\nto 1\nkeep 3\nP 00 0644 -1 -1 a\nend\n", 5, "P index with a leading zero" },
	{ HEAD "from -\nto 1\nkeep 3\nP 0 644 -1 -1 a\nend\n", 5, "a mode of three digits" },
	{ HEAD "from -\nto 1\nkeep 3\nP 0 0644 +1 -1 a\nend\n", 5, "an owner with a sign" },
	{ HEAD "from -\nto 1\nkeep 3\nD  0755 -1 -1 a\nend\n", 5, "D with two spaces" },
	{ HEAD "from -\nto 1\nkeep 3\nM 0755 -2 -1 a\nend\n", 5, "an owner below -1" },
	{ HEAD "from -\nto 1\nkeep 3\nU a b\nend\n", 5, "a raw space in a path" },
	{ HEAD "from -\nto 1\nkeep 3\nU a\x7f\nend\n", 5, "a raw DEL in a path" },
	{ HEAD "from -\nto 1\nkeep 3\nU %61\nend\n", 5, "a byte escaped that needs none" },
	{ HEAD "from -\nto 1\nkeep 3\nU a%7F\nend\n", 5, "an escape in upper case" },
	{ HEAD "from -\nto 1\nkeep 3\nB " HEX64 "  a\nend\n", 5, "B with two spaces" },
};
#define NBAD	(sizeof(bad) / sizeof(bad[0]))

/* Redirects stderr to stderr.log until log_end; returns the saved fd. */
static int
log_begin(void)
{
	int saved = dup(2), fd = open("stderr.log", O_WRONLY | O_CREAT | O_TRUNC, 0644);

	fflush(stderr);
	dup2(fd, 2);
	close(fd);
	return saved;
}

/* Restores stderr and returns what was logged (caller frees). */
static char *
log_end(int saved)
{
	size_t cap = 1024 * 1024, len = 0;
	char *s = calloc(1, cap);
	int fd;
	ssize_t n;

	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	if ((fd = open("stderr.log", O_RDONLY)) >= 0) {
		while (len < cap - 1 && (n = read(fd, s + len, cap - 1 - len)) > 0)
			len += (size_t)n;
		close(fd);
	}
	return s;
}

/* Encodes j; 1 if the bytes are exactly want (len bytes). */
static int
encodes_to(const struct journal *j, const char *want, size_t len)
{
	size_t n = 0;
	char *bytes = journal_encode(j, &n);
	int same = n == len && memcmp(bytes, want, len) == 0 && bytes[n] == '\0';

	free(bytes);
	return same;
}

/* The bytes a journal built in memory is written as: the on-disk format. */
static void
test_format(void)
{
	struct journal j;
	struct journal_record *rec;
	const char *want = good[2];

	memset(&j, 0, sizeof(j));
	j.from = strdup(COMMIT_ID_FOUND);
	j.to = strdup("2024.1+b_2");
	j.keep = 2;
	rec = journal_add(&j, JOURNAL_BACKUP, "core.war");
	hash_from_hex(HEX64, HASH_HEX_LEN, rec->hash);
	rec = journal_add(&j, JOURNAL_BACKUP, "lnk");
	hash_from_hex(HEX64, HASH_HEX_LEN, rec->hash);
	journal_add(&j, JOURNAL_UNLINK, "old/deep/f");
	journal_add(&j, JOURNAL_RMDIR, "old/deep");
	journal_add(&j, JOURNAL_RMDIR, "old");
	journal_add(&j, JOURNAL_MKDIR, "new")->mode = 0755;
	rec = journal_add(&j, JOURNAL_PLACE, "core.war");
	rec->mode = 0644;
	rec = journal_add(&j, JOURNAL_PLACE, "new/caf\xc3\xa9.omod");
	rec->prep = 1;
	rec->mode = 0600;
	rec->uid = 1000;
	rec->gid = 1001;
	rec = journal_add(&j, JOURNAL_PLACE, "lnk");
	rec->prep = 2;
	rec->mode = 0777;
	rec = journal_add(&j, JOURNAL_MODE, "run.sh");
	rec->mode = 04755;
	rec->uid = rec->gid = 0;
	CHECK(encodes_to(&j, want, strlen(want)), "every record kind is written as before");
	journal_release(&j);
	CHECK(j.records == NULL && j.count == 0 && j.to == NULL, "journal_release zeroes");

	memset(&j, 0, sizeof(j));
	j.to = strdup("1");
	j.keep = 3;
	journal_add(&j, JOURNAL_UNLINK, "a b\t%\x7f\x01");
	CHECK(encodes_to(&j, HEAD "from -\nto 1\nkeep 3\nU a%20b%09%25%7f%01\nend\n",
	    strlen(HEAD "from -\nto 1\nkeep 3\nU a%20b%09%25%7f%01\nend\n")),
	    "space, tab, %%, DEL and control bytes are escaped, a missing from is -");
	journal_release(&j);
}

/* The owed records and the rollback list, built in memory: their bytes. */
static void
test_format_owed(void)
{
	struct journal j;
	struct journal_record *rec;
	const char *want = good[4];

	memset(&j, 0, sizeof(j));
	j.from = strdup("1");
	j.to = strdup("2");
	j.keep = 5;
	journal_add(&j, JOURNAL_PLACE, "trusted_sql/001 a.sql")->mode = 0644;
	rec = journal_add(&j, JOURNAL_RUN_FILE, "trusted_sql/001 a.sql");
	hash_from_hex(HEX64, HASH_HEX_LEN, rec->hash);
	rec = journal_add(&j, JOURNAL_RUN_FILE, "trusted_sql/002.sql");
	rec->prep = 12;
	hash_from_hex(HEX64, HASH_HEX_LEN, rec->hash);
	rec = journal_add(&j, JOURNAL_RUN_SET, "");
	rec->prep = 1;
	hash_from_hex(HEX64, HASH_HEX_LEN, rec->hash);
	journal_add(&j, JOURNAL_RESTART, "db");
	journal_add(&j, JOURNAL_RESTART, "backend");
	journal_add(&j, JOURNAL_LINEAGE, "1 (pre-distsync)");
	CHECK(encodes_to(&j, want, strlen(want)), "F, O, S and L records are written as pinned");
	CHECK(!journal_kind_is_tree(JOURNAL_RUN_FILE) && !journal_kind_is_tree(JOURNAL_RESTART) &&
	    !journal_kind_is_tree(JOURNAL_LINEAGE) && !journal_kind_is_tree(JOURNAL_BACKUP) &&
	    journal_kind_is_tree(JOURNAL_PLACE) && journal_kind_is_tree(JOURNAL_UNLINK),
	    "only U, R, D, P and M touch the tree");
	CHECK(journal_kind_is_owed(JOURNAL_RUN_FILE) && journal_kind_is_owed(JOURNAL_RUN_SET) &&
	    journal_kind_is_owed(JOURNAL_RESTART) && !journal_kind_is_owed(JOURNAL_LINEAGE) &&
	    !journal_kind_is_owed(JOURNAL_PLACE), "F, O and S are owed work");
	journal_release(&j);

	memset(&j, 0, sizeof(j));
	j.from = strdup("2");
	j.to = strdup("1");
	j.keep = 5;
	journal_add(&j, JOURNAL_RESTART, "backend");
	journal_add(&j, JOURNAL_LINEAGE, "");
	CHECK(encodes_to(&j, good[5], strlen(good[5])), "an empty rollback list is a bare L");
	journal_release(&j);
}

/* Every good journal decodes and re-encodes to the same bytes. */
static void
test_round_trip(void)
{
	for (size_t i = 0; i < NGOOD; i++) {
		struct journal j;
		int r;

		r = journal_decode(good[i], strlen(good[i]), "test", &j);
		CHECK(r == 0, "good journal %zu decodes", i);
		if (r == 0)
			CHECK(encodes_to(&j, good[i], strlen(good[i])),
			    "good journal %zu re-encodes to the same bytes", i);
		journal_release(&j);
	}
	{
		struct journal j;

		CHECK(journal_decode(good[2], strlen(good[2]), "test", &j) == 0 &&
		    j.from != NULL && strcmp(j.from, COMMIT_ID_FOUND) == 0 &&
		    strcmp(j.to, "2024.1+b_2") == 0 && j.keep == 2 && j.count == 10,
		    "header fields and record count");
		CHECK(j.count == 10 && j.records[7].kind == JOURNAL_PLACE &&
		    j.records[7].prep == 1 && j.records[7].mode == 0600 &&
		    j.records[7].uid == 1000 && j.records[7].gid == 1001 &&
		    strcmp(j.records[7].path, "new/caf\xc3\xa9.omod") == 0, "a P record's fields");
		CHECK(j.count == 10 && j.records[9].kind == JOURNAL_MODE &&
		    j.records[9].mode == 04755 && j.records[9].uid == 0, "an M record's fields");
		journal_release(&j);
		CHECK(journal_decode(good[3], strlen(good[3]), "test", &j) == 0 && j.count == 3 &&
		    strcmp(j.records[0].path, "with space\ttab") == 0 &&
		    strcmp(j.records[1].path, "per%cent/\x7f" "del") == 0, "escapes decode");
		journal_release(&j);
		CHECK(journal_decode(good[0], strlen(good[0]), "test", &j) == 0 && j.from == NULL &&
		    j.count == 0, "from - decodes to no from");
		journal_release(&j);
		CHECK(journal_decode(good[4], strlen(good[4]), "test", &j) == 0 && j.count == 7 &&
		    j.records[1].kind == JOURNAL_RUN_FILE && j.records[1].prep == 0 &&
		    strcmp(j.records[1].path, "trusted_sql/001 a.sql") == 0 &&
		    j.records[2].prep == 12 && j.records[3].kind == JOURNAL_RUN_SET &&
		    j.records[3].prep == 1 && j.records[3].path[0] == '\0' &&
		    j.records[4].kind == JOURNAL_RESTART && strcmp(j.records[4].path, "db") == 0 &&
		    j.records[6].kind == JOURNAL_LINEAGE &&
		    strcmp(j.records[6].path, "1 (pre-distsync)") == 0, "owed records' fields");
		journal_release(&j);
		CHECK(journal_decode(good[5], strlen(good[5]), "test", &j) == 0 && j.count == 2 &&
		    j.records[1].kind == JOURNAL_LINEAGE && j.records[1].path[0] == '\0',
		    "a bare L decodes to an empty list");
		journal_release(&j);
	}
}

/* Every bad journal is refused, naming the line. */
static void
test_bad(void)
{
	for (size_t i = 0; i < NBAD; i++) {
		struct journal j;
		char want[64], *log;
		int saved = log_begin(), r;

		r = journal_decode(bad[i].text, strlen(bad[i].text), "test", &j);
		log = log_end(saved);
		snprintf(want, sizeof(want), "test:%u: damaged journal", bad[i].line);
		CHECK(r == DS_ERR_CORRUPT && j.records == NULL && j.to == NULL &&
		    strstr(log, want) != NULL, "%s: refused at line %u", bad[i].why, bad[i].line);
		free(log);
	}
}

/* A decoded journal an apply could have written: clean fields, and a fixed point. */
static int
journal_valid(const struct journal *j)
{
	struct journal again;
	char *bytes;
	size_t len;
	int ok;

	if (j->to == NULL || commit_state_id_check(j->to) != 0 ||
	    (j->from != NULL && commit_state_id_check(j->from) != 0))
		return 0;
	for (size_t i = 0; i < j->count; i++) {
		const struct journal_record *rec = &j->records[i];

		if (strchr("BURDPMFOSL", rec->kind) == NULL || rec->kind == '\0' || rec->mode > 07777)
			return 0;
		if (rec->kind == JOURNAL_LINEAGE || rec->kind == JOURNAL_RUN_SET) {
			if (rec->kind == JOURNAL_RUN_SET && rec->path[0] != '\0')
				return 0;
			continue;
		}
		if (path_check(rec->path, strlen(rec->path), NULL) != 0 ||
		    (rec->kind == JOURNAL_RESTART && strchr(rec->path, '/') != NULL))
			return 0;
	}
	bytes = journal_encode(j, &len);
	ok = journal_decode(bytes, len, "test", &again) == 0 && encodes_to(&again, bytes, len);
	journal_release(&again);
	free(bytes);
	return ok;
}

static void
test_mutations(void)
{
	size_t cuts = 0, cut_ok = 0, flips = 0, flip_ok = 0, invalid = 0;
	int saved = log_begin();
	char *log;

	for (size_t i = 0; i < NGOOD; i++) {
		size_t len = strlen(good[i]);
		char *p = malloc(len + 1);
		struct journal j;

		memcpy(p, good[i], len + 1);
		for (size_t cut = 0; cut < len; cut++, cuts++) {
			if (journal_decode(p, cut, "test", &j) == 0)
				cut_ok++;
			journal_release(&j);
		}
		for (size_t pos = 0; pos < len; pos++) {
			for (int bit = 0; bit < 8; bit++, flips++) {
				p[pos] ^= (char)(1u << bit);
				if (journal_decode(p, len, "test", &j) == 0) {
					flip_ok++;
					if (!journal_valid(&j))
						invalid++;
				}
				journal_release(&j);
				p[pos] ^= (char)(1u << bit);
			}
		}
		free(p);
	}
	log = log_end(saved);
	CHECK(cut_ok == 0, "all %zu truncations refused (%zu accepted)", cuts, cut_ok);
	CHECK(invalid == 0, "%zu bit flips: each refused or a valid journal (%zu decoded, %zu "
	    "of them invalid)", flips, flip_ok, invalid);
	CHECK(strstr(log, "test:1: damaged journal") != NULL, "a flipped header is named");
	free(log);
}

int
main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	tap_run("journal-format", test_format);
	tap_run("journal-format-owed", test_format_owed);
	tap_run("journal-round-trip", test_round_trip);
	tap_run("journal-bad", test_bad);
	tap_run("journal-mutations", test_mutations);
	return tap_done();
}
