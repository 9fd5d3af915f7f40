/*
 * bench-delta OLD_DIR NEW_DIR: what the delta encodings cost for one release
 * step, side by side with the zstd CLI lower bound measured in the same run.
 *
 * Each file of NEW_DIR is paired with a basis in OLD_DIR: the same path, else
 * the same artifact identity (plan_identity). Unchanged files cost nothing.
 * For changed files with a basis: zstd -19 --long=27 --patch-from (the lower
 * bound of issue 5), this library's zstd-patch at each level, and the
 * unknown-basis path (signature up + rsync delta down). Files without a basis:
 * zstd -19 --long=27 against the library's whole-file zstd. Every level-9
 * patch is decoded back and its SHA-256 checked.
 *
 * Environment: BENCH_LEVELS (default "3 9 19"), ZSTD (default "zstd").
 */
#include "autoconf.h"

#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/spawn.h"
#include "base/xmalloc.h"
#include "codec/delta.h"
#include "repo/plan.h"

#define MAX_LEVELS	8

struct entry {
	char		*path;		/* relative */
	char		*identity;
	uint64_t	 size;
};

struct tree {
	struct entry	*v;
	size_t		 n, alloc;
	size_t		 root_len;
};

struct totals {
	uint64_t	 bytes;
	double		 cpu;
};

static struct tree *walking;

static int
walk_cb(const char *fpath, const struct stat *st, int type, struct FTW *ftw)
{
	struct entry *e;

	if (type != FTW_F || !S_ISREG(st->st_mode))
		return 0;
	walking->v = xgrow(walking->v, &walking->alloc, walking->n + 1, sizeof(*walking->v));
	e = &walking->v[walking->n++];
	e->path = xstrdup(fpath + walking->root_len + 1);
	e->identity = plan_identity(e->path);
	e->size = (uint64_t)st->st_size;
	return 0;
}

static int
tree_load(const char *root, struct tree *t)
{
	memset(t, 0, sizeof(*t));
	t->root_len = strlen(root);
	walking = t;
	if (nftw(root, walk_cb, 32, FTW_PHYS) != 0) {
		log_errno("%s: walk", root);
		return -1;
	}
	return 0;
}

static const struct entry *
tree_find(const struct tree *t, const char *path, int by_identity)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(by_identity ? t->v[i].identity : t->v[i].path, path) == 0)
			return &t->v[i];
	return NULL;
}

static double
cpu_now(void)
{
	struct rusage ru, ch;

	getrusage(RUSAGE_SELF, &ru);
	getrusage(RUSAGE_CHILDREN, &ch);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	    ru.ru_stime.tv_usec / 1e6 + ch.ru_utime.tv_sec + ch.ru_utime.tv_usec / 1e6 +
	    ch.ru_stime.tv_sec + ch.ru_stime.tv_usec / 1e6;
}

static uint64_t
size_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static int
same_content(const char *a, const char *b)
{
	uint8_t ha[HASH_LEN], hb[HASH_LEN];
	uint64_t sa, sb;
	int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY), same = 0;

	if (fa >= 0 && fb >= 0 && hash_fd(fa, ha, &sa) == 0 && hash_fd(fb, hb, &sb) == 0)
		same = sa == sb && memcmp(ha, hb, HASH_LEN) == 0;
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	return same;
}

/* zstd CLI: -19 --long=27 [--patch-from=basis]; returns the output size or 0. */
static uint64_t
zstd_cli(const char *basis, const char *target, const char *tmp, struct totals *t)
{
	const char *zstd = getenv("ZSTD") ? getenv("ZSTD") : "zstd";
	char *patch = basis ? xasprintf("--patch-from=%s", basis) : NULL;
	char *argv[] = { (char *)zstd, "-q", "-f", "-19", "--long=27",
	    patch ? patch : (char *)"--no-progress", (char *)target, "-o", (char *)tmp, NULL };
	struct spawn_opts opts = { .timeout_ms = 600000 };
	struct spawn_result res;
	double c0 = cpu_now();
	uint64_t size = 0;

	if (spawn_run(argv, &opts, &res) == 0)
		size = size_of(tmp);
	else
		log_error("%s on %s failed: %s", zstd, target, res.output);
	spawn_result_release(&res);
	free(patch);
	t->cpu += cpu_now() - c0;
	t->bytes += size;
	return size;
}

static int
lib_encode(enum delta_encoding enc, const char *basis, const char *target, int level,
    const char *tmp, struct totals *t, uint64_t *len)
{
	int bfd = basis ? open(basis, O_RDONLY) : -1;
	int tfd = open(target, O_RDONLY);
	int ofd = open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
	double c0 = cpu_now();
	int r = DS_ERR_SYSTEM;

	*len = 0;
	if (tfd >= 0 && ofd >= 0 && (basis == NULL || bfd >= 0))
		r = delta_encode(enc, bfd, tfd, level, ofd, len);
	t->cpu += cpu_now() - c0;
	t->bytes += *len;
	if (bfd >= 0)
		close(bfd);
	if (tfd >= 0)
		close(tfd);
	if (ofd >= 0)
		close(ofd);
	return r;
}

static int
lib_verify(enum delta_encoding enc, const char *basis, const char *target, const char *tmp,
    const char *out)
{
	uint8_t want[HASH_LEN], got[HASH_LEN];
	uint64_t size, got_len;
	int tfd = open(target, O_RDONLY), bfd = basis ? open(basis, O_RDONLY) : -1;
	int ifd = open(tmp, O_RDONLY), ofd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0644);
	int r = -1;

	if (tfd >= 0 && ifd >= 0 && ofd >= 0 && hash_fd(tfd, want, &size) == 0 &&
	    delta_decode(enc, bfd, ifd, ofd, size, &got_len, got) == 0)
		r = got_len == size && memcmp(want, got, HASH_LEN) == 0 ? 0 : -1;
	if (tfd >= 0)
		close(tfd);
	if (bfd >= 0)
		close(bfd);
	if (ifd >= 0)
		close(ifd);
	if (ofd >= 0)
		close(ofd);
	unlink(out);
	return r;
}

/* Unknown basis: the receiver's signature up, an rsync delta down. */
static int
lib_rsync(const char *basis, const char *target, const char *tmp, int level,
    struct totals *sig, struct totals *delta)
{
	char *sigpath = xasprintf("%s.sig", tmp);
	int bfd = open(basis, O_RDONLY), tfd = open(target, O_RDONLY);
	int sfd = open(sigpath, O_RDWR | O_CREAT | O_TRUNC, 0644);
	int ofd = open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
	uint64_t slen = 0, dlen = 0;
	double c0 = cpu_now();
	int r = -1;

	if (bfd >= 0 && tfd >= 0 && sfd >= 0 && ofd >= 0 &&
	    delta_signature(bfd, sfd, &slen) == 0 && lseek(sfd, 0, SEEK_SET) == 0 &&
	    delta_rsync_encode(sfd, tfd, level, ofd, &dlen) == 0)
		r = 0;
	delta->cpu += cpu_now() - c0;
	sig->bytes += slen;
	delta->bytes += delta_choose(DELTA_RSYNC, dlen, size_of(target)) == DELTA_RAW ?
	    size_of(target) : dlen;
	if (bfd >= 0)
		close(bfd);
	if (tfd >= 0)
		close(tfd);
	if (sfd >= 0)
		close(sfd);
	if (ofd >= 0)
		close(ofd);
	unlink(sigpath);
	free(sigpath);
	return r;
}

static void
mb(char *buf, size_t len, uint64_t v)
{
	snprintf(buf, len, "%.2f MB", v / 1e6);
}

int
main(int argc, char **argv)
{
	struct tree a, b;
	int levels[MAX_LEVELS], nlevels = 0, failures = 0;
	struct totals cli_patch = { 0, 0 }, cli_whole = { 0, 0 };
	struct totals lib_patch[MAX_LEVELS], lib_whole[MAX_LEVELS], lib_best[MAX_LEVELS];
	struct totals rs_sig = { 0, 0 }, rs_delta = { 0, 0 };
	uint64_t changed_bytes = 0, new_bytes = 0, unchanged_bytes = 0;
	size_t changed = 0, added = 0, unchanged = 0, by_identity = 0;
	const char *lv = getenv("BENCH_LEVELS") ? getenv("BENCH_LEVELS") : "3 9 19";
	char tmpdir[] = "/tmp/bench-delta-XXXXXX", *tmp, *tmp2, *out;
	char s1[32], s2[32];

	if (argc != 3) {
		fprintf(stderr, "usage: bench-delta OLD_DIR NEW_DIR\n");
		return 2;
	}
	while (*lv != '\0' && nlevels < MAX_LEVELS) {
		char *end;
		long l = strtol(lv, &end, 10);

		if (end == lv || l < DELTA_LEVEL_MIN || l > DELTA_LEVEL_MAX) {
			fprintf(stderr, "bench-delta: bad BENCH_LEVELS\n");
			return 2;
		}
		levels[nlevels++] = (int)l;
		lv = end;
		while (*lv == ' ')
			lv++;
	}
	memset(lib_patch, 0, sizeof(lib_patch));
	memset(lib_whole, 0, sizeof(lib_whole));
	memset(lib_best, 0, sizeof(lib_best));
	if (tree_load(argv[1], &a) != 0 || tree_load(argv[2], &b) != 0)
		return 1;
	if (mkdtemp(tmpdir) == NULL) {
		log_errno("mkdtemp");
		return 1;
	}
	tmp = xasprintf("%s/enc", tmpdir);
	tmp2 = xasprintf("%s/cli.zst", tmpdir);
	out = xasprintf("%s/dec", tmpdir);

	for (size_t i = 0; i < b.n; i++) {
		const struct entry *e = &b.v[i], *base = tree_find(&a, e->path, 0);
		char *np = xasprintf("%s/%s", argv[2], e->path), *bp = NULL;

		if (base == NULL && (base = tree_find(&a, e->identity, 1)) != NULL)
			by_identity++;
		if (base != NULL)
			bp = xasprintf("%s/%s", argv[1], base->path);
		if (bp != NULL && same_content(bp, np)) {
			unchanged++;
			unchanged_bytes += e->size;
		} else if (bp != NULL) {
			changed++;
			changed_bytes += e->size;
			zstd_cli(bp, np, tmp2, &cli_patch);
			for (int l = 0; l < nlevels; l++) {
				uint64_t len, wlen;
				struct totals scratch = { 0, 0 };

				if (lib_encode(DELTA_ZSTD_PATCH, bp, np, levels[l], tmp, &lib_patch[l],
				    &len) != 0)
					failures++;
				if (levels[l] == DELTA_LEVEL_DEFAULT &&
				    lib_verify(DELTA_ZSTD_PATCH, bp, np, tmp, out) != 0) {
					log_error("%s: level %d patch does not decode back", e->path,
					    levels[l]);
					failures++;
				}
				/* What a sender would send: the smaller of patch, whole zstd, raw. */
				lib_encode(DELTA_ZSTD, NULL, np, levels[l], tmp, &scratch, &wlen);
				len = len < wlen ? len : wlen;
				lib_best[l].bytes += len < e->size ? len : e->size;
			}
			if (lib_rsync(bp, np, tmp, DELTA_LEVEL_DEFAULT, &rs_sig, &rs_delta) != 0)
				failures++;
		} else {
			added++;
			new_bytes += e->size;
			zstd_cli(NULL, np, tmp2, &cli_whole);
			for (int l = 0; l < nlevels; l++) {
				uint64_t len;
				struct totals scratch = { 0, 0 };

				if (lib_encode(DELTA_ZSTD, NULL, np, levels[l], tmp, &scratch, &len) != 0)
					failures++;
				lib_whole[l].cpu += scratch.cpu;
				lib_whole[l].bytes += delta_choose(DELTA_ZSTD, len, e->size) == DELTA_RAW ?
				    e->size : len;
			}
		}
		free(np);
		free(bp);
	}

	printf("files: %zu in new release, %zu unchanged (%.2f MB), %zu changed (%.2f MB, "
	    "%zu paired by artifact identity), %zu without basis (%.2f MB)\n",
	    b.n, unchanged, unchanged_bytes / 1e6, changed, changed_bytes / 1e6, by_identity,
	    added, new_bytes / 1e6);
	printf("\n%-44s %14s %10s\n", "changed files with a basis", "bytes", "CPU s");
	mb(s1, sizeof(s1), cli_patch.bytes);
	printf("%-44s %14s %10.1f\n", "zstd -19 --long=27 --patch-from (bound)", s1, cli_patch.cpu);
	for (int l = 0; l < nlevels; l++) {
		char name[64];

		snprintf(name, sizeof(name), "delta zstd-patch level %d", levels[l]);
		mb(s1, sizeof(s1), lib_patch[l].bytes);
		printf("%-44s %14s %10.1f   %.3fx bound\n", name, s1, lib_patch[l].cpu,
		    cli_patch.bytes ? (double)lib_patch[l].bytes / cli_patch.bytes : 0);
		snprintf(name, sizeof(name), "  min(patch, zstd, raw) level %d", levels[l]);
		mb(s1, sizeof(s1), lib_best[l].bytes);
		printf("%-44s %14s %10s   %.3fx bound\n", name, s1, "",
		    cli_patch.bytes ? (double)lib_best[l].bytes / cli_patch.bytes : 0);
	}
	mb(s1, sizeof(s1), rs_sig.bytes);
	mb(s2, sizeof(s2), rs_delta.bytes);
	printf("%-44s %14s %10.1f   (+ signature %s up)\n", "delta rsync (unknown basis) level 9", s2,
	    rs_delta.cpu, s1);
	printf("\n%-44s %14s %10s\n", "files without a basis", "bytes", "CPU s");
	mb(s1, sizeof(s1), cli_whole.bytes);
	printf("%-44s %14s %10.1f\n", "zstd -19 --long=27", s1, cli_whole.cpu);
	for (int l = 0; l < nlevels; l++) {
		char name[64];

		snprintf(name, sizeof(name), "delta zstd level %d (raw if smaller)", levels[l]);
		mb(s1, sizeof(s1), lib_whole[l].bytes);
		printf("%-44s %14s %10.1f\n", name, s1, lib_whole[l].cpu);
	}
	if (failures > 0)
		printf("\n%d FAILURES\n", failures);
	unlink(tmp);
	unlink(tmp2);
	rmdir(tmpdir);
	free(tmp);
	free(tmp2);
	free(out);
	return failures > 0 ? 1 : 0;
}
