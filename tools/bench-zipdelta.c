/*
 * bench-zipdelta OLD_DIR NEW_DIR: for each changed file of NEW_DIR with a
 * basis in OLD_DIR (the same path, else the same artifact identity), the
 * zstd CLI bound (zstd -19 --long=27 --patch-from), the library's plain
 * zstd-patch and its zip-aware zippatch at levels 9 and 19, side by side;
 * for zips also how many entries re-deflate exactly. Every zippatch is
 * decoded back and its SHA-256 checked. The zippatch totals count a
 * file's zstd-patch where zippatch refuses it, as the sender does.
 *
 * Environment: ZSTD (default "zstd").
 */
#include "autoconf.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/spawn.h"
#include "base/xmalloc.h"
#include "codec/delta.h"
#include "codec/zipdelta.h"
#include "repo/plan.h"

struct entry {
	char		*path;
	char		*identity;
};

struct tree {
	struct entry	*v;
	size_t		 n, alloc, root_len;
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
	return 0;
}

static const struct entry *
tree_find(const struct tree *t, const char *key, int by_identity)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(by_identity ? t->v[i].identity : t->v[i].path, key) == 0)
			return &t->v[i];
	return NULL;
}

static double
cpu_now(void)
{
	struct rusage ru, ch;

	getrusage(RUSAGE_SELF, &ru);
	getrusage(RUSAGE_CHILDREN, &ch);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ch.ru_utime.tv_sec +
	    ch.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6 +
	    ch.ru_stime.tv_sec + ch.ru_stime.tv_usec / 1e6;
}

static uint64_t
size_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static uint64_t
zstd_cli(const char *basis, const char *target, const char *tmp)
{
	const char *zstd = getenv("ZSTD") ? getenv("ZSTD") : "zstd";
	char *patch = xasprintf("--patch-from=%s", basis);
	char *argv[] = { (char *)zstd, "-q", "-f", "-19", "--long=27", patch, (char *)target,
	    "-o", (char *)tmp, NULL };
	struct spawn_opts opts = { .timeout_ms = 600000 };
	struct spawn_result res;
	uint64_t size = 0;

	if (spawn_run(argv, &opts, &res) == 0)
		size = size_of(tmp);
	spawn_result_release(&res);
	free(patch);
	return size;
}

/* delta_encode into tmp; returns the length, 0 on failure; *cpu gets the seconds. */
static uint64_t
encode(enum delta_encoding enc, const char *basis, const char *target, int level,
    const char *tmp, double *cpu)
{
	int bfd = open(basis, O_RDONLY), tfd = open(target, O_RDONLY);
	int ofd = open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
	uint64_t len = 0;
	double c0 = cpu_now();

	if (bfd < 0 || tfd < 0 || ofd < 0 || delta_encode(enc, bfd, tfd, level, ofd, &len) != 0)
		len = 0;
	*cpu = cpu_now() - c0;
	if (bfd >= 0)
		close(bfd);
	if (tfd >= 0)
		close(tfd);
	if (ofd >= 0)
		close(ofd);
	return len;
}

/* Decodes tmp against basis and compares with target; returns 0 if exact. */
static int
verify(const char *basis, const char *target, const char *tmp, const char *out, double *cpu)
{
	uint8_t want[HASH_LEN], got[HASH_LEN];
	uint64_t size = 0, got_len = 0;
	int tfd = open(target, O_RDONLY), bfd = open(basis, O_RDONLY), ifd = open(tmp, O_RDONLY);
	int ofd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0644), r = -1;
	double c0 = cpu_now();

	if (tfd >= 0 && bfd >= 0 && ifd >= 0 && ofd >= 0 && hash_fd(tfd, want, &size) == 0 &&
	    delta_decode(DELTA_ZIP_PATCH, bfd, ifd, ofd, size, &got_len, got) == 0)
		r = got_len == size && memcmp(want, got, HASH_LEN) == 0 ? 0 : -1;
	*cpu = cpu_now() - c0;
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

/* Entry statistics of target as the encoder sees it. */
static void
zip_stats(const char *path, struct zipdelta_stats *st)
{
	static const uint8_t empty_zip[22] = { 'P', 'K', 5, 6 };
	int fd = open(path, O_RDONLY);
	uint64_t size = size_of(path);
	uint8_t *enc = NULL;
	size_t len;
	void *p;

	memset(st, 0, sizeof(*st));
	if (fd < 0 || size == 0)
		goto out;
	p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		goto out;
	/* Against an empty zip: only the statistics matter here. */
	(void)zipdelta_encode(empty_zip, sizeof(empty_zip), p, size, 1, &enc, &len, st);
	free(enc);
	munmap(p, size);
out:
	if (fd >= 0)
		close(fd);
}

static void
mb(char *buf, size_t len, uint64_t v)
{
	snprintf(buf, len, "%.3f", v / 1e6);
}

int
main(int argc, char **argv)
{
	struct tree a, b;
	char tmpdir[] = "/tmp/bench-zipdelta-XXXXXX", *tmp, *cli, *out;
	uint64_t t_size = 0, t_cli = 0, t_z9 = 0, t_z19 = 0, t_p9 = 0, t_p19 = 0;
	uint64_t t_ent = 0, t_defl = 0, t_rep = 0, t_dbytes = 0, t_rbytes = 0;
	double c_z9 = 0, c_p9 = 0, c_dec = 0;
	int failures = 0;
	char s[6][32];

	if (argc != 3) {
		fprintf(stderr, "usage: bench-zipdelta OLD_DIR NEW_DIR\n");
		return 2;
	}
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.root_len = strlen(argv[1]);
	b.root_len = strlen(argv[2]);
	walking = &a;
	if (nftw(argv[1], walk_cb, 32, FTW_PHYS) != 0)
		return 1;
	walking = &b;
	if (nftw(argv[2], walk_cb, 32, FTW_PHYS) != 0)
		return 1;
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	tmp = xasprintf("%s/enc", tmpdir);
	cli = xasprintf("%s/cli.zst", tmpdir);
	out = xasprintf("%s/dec", tmpdir);
	printf("%-48s %9s %9s %9s %9s %9s %9s  %s\n", "changed file (MB)", "size", "bound",
	    "zpatch9", "zpatch19", "zippat9", "zippat19", "entries deflate reproduced (bytes)");
	for (size_t i = 0; i < b.n; i++) {
		const struct entry *e = &b.v[i], *base = tree_find(&a, e->path, 0);
		char *np, *bp;
		uint64_t size, bound, z9, z19, p9, p19;
		struct zipdelta_stats st;
		double cz, cp, cd;
		int fd, same;
		uint8_t h1[HASH_LEN], h2[HASH_LEN];

		if (base == NULL)
			base = tree_find(&a, e->identity, 1);
		if (base == NULL)
			continue;
		np = xasprintf("%s/%s", argv[2], e->path);
		bp = xasprintf("%s/%s", argv[1], base->path);
		same = 0;
		if ((fd = open(np, O_RDONLY)) >= 0) {
			same = hash_fd(fd, h1, &size) == 0;
			close(fd);
		}
		if (same && (fd = open(bp, O_RDONLY)) >= 0) {
			uint64_t bsize;

			same = hash_fd(fd, h2, &bsize) == 0 && bsize == size &&
			    memcmp(h1, h2, HASH_LEN) == 0;
			close(fd);
		}
		if (same) {
			free(np);
			free(bp);
			continue;
		}
		size = size_of(np);
		bound = zstd_cli(bp, np, cli);
		z9 = encode(DELTA_ZSTD_PATCH, bp, np, 9, tmp, &cz);
		z19 = encode(DELTA_ZSTD_PATCH, bp, np, 19, tmp, &cp);
		p19 = encode(DELTA_ZIP_PATCH, bp, np, 19, tmp, &cp);
		p9 = encode(DELTA_ZIP_PATCH, bp, np, 9, tmp, &cp);
		if (p9 != 0) {
			if (verify(bp, np, tmp, out, &cd) != 0) {
				log_error("%s: zippatch does not decode back", e->path);
				failures++;
			}
			c_dec += cd;
			c_p9 += cp;
		} else
			c_p9 += cz;
		c_z9 += cz;
		zip_stats(np, &st);
		t_size += size;
		t_cli += bound;
		t_z9 += z9;
		t_z19 += z19;
		t_p9 += p9 != 0 && p9 < z9 ? p9 : z9;
		t_p19 += p19 != 0 && p19 < z19 ? p19 : z19;
		t_ent += st.entries;
		t_defl += st.deflated;
		t_rep += st.reproduced;
		t_dbytes += st.deflated_bytes;
		t_rbytes += st.reproduced_bytes;
		if (st.entries == 0) {
			free(np);
			free(bp);
			continue;	/* not a zip: in the totals only */
		}
		mb(s[0], sizeof(s[0]), size);
		mb(s[1], sizeof(s[1]), bound);
		mb(s[2], sizeof(s[2]), z9);
		mb(s[3], sizeof(s[3]), z19);
		mb(s[4], sizeof(s[4]), p9);
		mb(s[5], sizeof(s[5]), p19);
		printf("%-48.48s %9s %9s %9s %9s %9s %9s  %llu %llu %llu (%.1f%%) L%d/M%d\n",
		    e->path, s[0], s[1], s[2], s[3], p9 ? s[4] : "-", p19 ? s[5] : "-",
		    (unsigned long long)st.entries, (unsigned long long)st.deflated,
		    (unsigned long long)st.reproduced,
		    st.deflated_bytes ? 100.0 * st.reproduced_bytes / st.deflated_bytes : 0.0,
		    st.level, st.mem_level);
		free(np);
		free(bp);
	}
	mb(s[0], sizeof(s[0]), t_size);
	mb(s[1], sizeof(s[1]), t_cli);
	mb(s[2], sizeof(s[2]), t_z9);
	mb(s[3], sizeof(s[3]), t_z19);
	mb(s[4], sizeof(s[4]), t_p9);
	mb(s[5], sizeof(s[5]), t_p19);
	printf("%-48s %9s %9s %9s %9s %9s %9s  %llu %llu %llu (%.1f%%)\n", "total", s[0], s[1],
	    s[2], s[3], s[4], s[5], (unsigned long long)t_ent, (unsigned long long)t_defl,
	    (unsigned long long)t_rep, t_dbytes ? 100.0 * t_rbytes / t_dbytes : 0.0);
	printf("\nzippatch level 9 (zpatch where refused): %.3fx the zstd CLI bound, %.3fx "
	    "zstd-patch level 9\n", t_cli ? (double)t_p9 / t_cli : 0,
	    t_z9 ? (double)t_p9 / t_z9 : 0);
	printf("CPU s: zstd-patch 9 encode %.1f, zippatch 9 encode %.1f, zippatch decode %.1f\n",
	    c_z9, c_p9, c_dec);
	if (failures > 0)
		printf("\n%d FAILURES\n", failures);
	unlink(tmp);
	unlink(cli);
	rmdir(tmpdir);
	free(tmp);
	free(cli);
	free(out);
	return failures > 0 ? 1 : 0;
}
