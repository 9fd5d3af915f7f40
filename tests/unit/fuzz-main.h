/*
 * The make check side of a fuzz target: replays the target's seed corpus
 * (tests/fuzz/corpus/NAME, kept in the repository) and runs a short
 * deterministic mutation pass over it and over the seeds the target makes
 * itself, reporting TAP. The same file built with -DDS_LIBFUZZER is a
 * libFuzzer target (tools/fuzz), and this file is not used.
 *
 * A target declares LLVMFuzzerTestOneInput, includes this, and calls
 * fuzz_main() from its main() (#ifndef DS_LIBFUZZER). A broken oracle is
 * FUZZ_BROKEN(): counted here, an abort() for libFuzzer. DS_FUZZ_ROUNDS sets the number of
 * mutations per seed; DS_FUZZ_WRITE_SEEDS=DIR writes the target's own seeds
 * there (how the corpus was made).
 */
#ifndef DS_FUZZ_MAIN_H
#define DS_FUZZ_MAIN_H

#ifdef DS_LIBFUZZER
#include <stdlib.h>
#define FUZZ_BROKEN()	abort()
#else

#include <sys/stat.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_INPUT_MAX	(1u << 20)

static int fuzz_broken;
#define FUZZ_BROKEN()	(fuzz_broken++)

static uint64_t fuzz_rng_state = 0x2545f4914f6cdd1dULL;

static inline uint64_t
fuzz_rng(void)
{
	fuzz_rng_state ^= fuzz_rng_state << 13;
	fuzz_rng_state ^= fuzz_rng_state >> 7;
	fuzz_rng_state ^= fuzz_rng_state << 17;
	return fuzz_rng_state;
}

/* Seeds: the corpus's files, then the target's own. */
struct fuzz_seeds {
	uint8_t		**data;
	size_t		 *len;
	size_t		  count;
};

static inline void
fuzz_seed_add(struct fuzz_seeds *s, const void *data, size_t len)
{
	s->data = realloc(s->data, (s->count + 1) * sizeof(*s->data));
	s->len = realloc(s->len, (s->count + 1) * sizeof(*s->len));
	s->data[s->count] = malloc(len + 1);
	memcpy(s->data[s->count], data, len);
	s->len[s->count++] = len;
}

static inline void
fuzz_seeds_free(struct fuzz_seeds *s)
{
	for (size_t i = 0; i < s->count; i++)
		free(s->data[i]);
	free(s->data);
	free(s->len);
}

static inline int
fuzz_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads every file of DIR (sorted by name) into seeds; returns how many, or -1. */
static inline int
fuzz_read_corpus(const char *dir, struct fuzz_seeds *s)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;
	int count = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		names = realloc(names, (n + 1) * sizeof(*names));
		names[n++] = strdup(de->d_name);
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), fuzz_name_cmp);
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		uint8_t *buf = malloc(FUZZ_INPUT_MAX);
		int fd;
		ssize_t got;

		if (snprintf(path, sizeof(path), "%s/%s", dir, names[i]) < (int)sizeof(path) &&
		    (fd = open(path, O_RDONLY)) >= 0) {
			got = read(fd, buf, FUZZ_INPUT_MAX);
			close(fd);
			if (got >= 0) {
				fuzz_seed_add(s, buf, (size_t)got);
				count++;
			}
		}
		free(buf);
		free(names[i]);
	}
	free(names);
	return count;
}

/* One mutated copy of seed into buf (room for len + 64); returns its length. */
static inline size_t
fuzz_mutate(const uint8_t *seed, size_t len, uint8_t *buf)
{
	size_t n = len, edits = 1 + fuzz_rng() % 4;

	memcpy(buf, seed, len);
	for (size_t k = 0; k < edits; k++) {
		size_t pos = n > 0 ? fuzz_rng() % n : 0;

		switch (fuzz_rng() % 6) {
		case 0:
			if (n > 0)
				buf[pos] ^= (uint8_t)(1u << (fuzz_rng() % 8));
			break;
		case 1:
			if (n > 0)
				buf[pos] = (uint8_t)fuzz_rng();
			break;
		case 2:
			n = pos;	/* truncate */
			break;
		case 3:
			if (n < len + 64)
				buf[n++] = (uint8_t)fuzz_rng();
			break;
		case 4:
			/* An interesting value: 0, 0xff, 0x7f, 0x80. */
			if (n > 0)
				buf[pos] = (uint8_t[]){ 0, 0xff, 0x7f, 0x80 }[fuzz_rng() % 4];
			break;
		default:
			/* Copy a piece of the input over another place. */
			if (n > 8) {
				size_t from = fuzz_rng() % n, cnt = 1 + fuzz_rng() % 8;

				if (from + cnt <= n && pos + cnt <= n)
					memmove(buf + pos, buf + from, cnt);
			}
			break;
		}
	}
	return n;
}

static inline void
fuzz_write_seeds(const char *dir, const struct fuzz_seeds *s, size_t first)
{
	for (size_t i = first; i < s->count; i++) {
		char path[4096];
		FILE *fp;

		if (snprintf(path, sizeof(path), "%s/seed-%02zu", dir, i - first) <
		    (int)sizeof(path) && (fp = fopen(path, "wb")) != NULL) {
			fwrite(s->data[i], 1, s->len[i], fp);
			fclose(fp);
		}
	}
}


/*
 * Replays tests/fuzz/corpus/NAME under $top_srcdir (or the source tree
 * this was configured from), then ROUNDS (DS_FUZZ_ROUNDS) mutations of
 * every seed, the target's own (make_seeds, may be NULL) included. Returns
 * the exit status; prints TAP.
 */
static inline int
fuzz_main(const char *name, int rounds, void (*make_seeds)(struct fuzz_seeds *))
{
	struct fuzz_seeds seeds = { NULL, NULL, 0 };
	const char *top = getenv("top_srcdir");
	char dir[4096];
	uint8_t *buf = malloc(FUZZ_INPUT_MAX + 64);
	size_t own;
	int corpus, failed = 0, t = 0;

	if (getenv("DS_FUZZ_ROUNDS") != NULL)
		rounds = (int)strtol(getenv("DS_FUZZ_ROUNDS"), NULL, 10);
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", top != NULL ? top : TOP_SRCDIR, name);
	/* Decoders log every rejected input: thousands of lines. */
	if (getenv("DS_TEST_VERBOSE") == NULL && freopen("/dev/null", "w", stderr) == NULL)
		return 1;
	corpus = fuzz_read_corpus(dir, &seeds);
	for (int i = 0; i < corpus; i++)
		LLVMFuzzerTestOneInput(seeds.data[i], seeds.len[i]);
	printf("%s %d - corpus %s: %d inputs replayed, %d broken oracles\n",
	    corpus > 0 && fuzz_broken == 0 ? "ok" : "not ok", ++t, name, corpus, fuzz_broken);
	if (corpus <= 0 || fuzz_broken != 0)
		failed++;
	own = seeds.count;
	if (make_seeds != NULL)
		make_seeds(&seeds);
	if (getenv("DS_FUZZ_WRITE_SEEDS") != NULL)
		fuzz_write_seeds(getenv("DS_FUZZ_WRITE_SEEDS"), &seeds, own);
	/* The target's own seeds, then the mutations: broken oracles count on. */
	for (size_t i = own; i < seeds.count; i++)
		LLVMFuzzerTestOneInput(seeds.data[i], seeds.len[i]);
	for (size_t i = 0; i < seeds.count; i++) {
		if (seeds.len[i] > FUZZ_INPUT_MAX)
			continue;
		for (int k = 0; k < rounds; k++)
			LLVMFuzzerTestOneInput(buf, fuzz_mutate(seeds.data[i], seeds.len[i], buf));
	}
	printf("%s %d - %s: %d mutations of each of %zu seeds, none crashed, %d broken oracles\n",
	    fuzz_broken == 0 ? "ok" : "not ok", ++t, name, rounds, seeds.count, fuzz_broken);
	if (fuzz_broken != 0)
		failed++;
	printf("1..%d\n", t);
	fuzz_seeds_free(&seeds);
	free(buf);
	return failed ? 1 : 0;
}

#endif /* DS_LIBFUZZER */
#endif
