/*
 * Fuzz target for unpack (release --from): the input is an archive in
 * memory (unpack_memory), unpacked into a fresh directory beside a victim
 * file and an empty victim directory. Nothing may crash, and nothing
 * outside the destination may change: the victim keeps its mode and
 * content, the victim directory stays empty.
 *
 * Built with -DDS_LIBFUZZER it is a libFuzzer target (tools/fuzz);
 * otherwise main() replays tests/fuzz/corpus/unpack and mutates it (TAP).
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "base/log.h"
#include "base/path.h"
#include "repo/unpack.h"

#define MAX_BYTES	(4u << 20)
#define VICTIM_TEXT	"patient records\n"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz-main.h"

static char top[256];		/* holds victim, victimdir/ and each run's dest/ */
static char victim[300], victimdir[300], dest[300];

static void
setup(void)
{
	const char *tmp = getenv("TMPDIR");
	FILE *fp;

	if (top[0] != '\0')
		return;
	log_set_level(LOG_LEVEL_SILENT);
	snprintf(top, sizeof(top), "%s/ds-fuzz-unpack-XXXXXX", tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(top) == NULL)
		abort();
	snprintf(victim, sizeof(victim), "%s/victim", top);
	snprintf(victimdir, sizeof(victimdir), "%s/victimdir", top);
	snprintf(dest, sizeof(dest), "%s/dest", top);
	if ((fp = fopen(victim, "w")) == NULL || fputs(VICTIM_TEXT, fp) < 0 || fclose(fp) != 0 ||
	    chmod(victim, 0640) != 0 || mkdir(victimdir, 0755) != 0)
		abort();
}

/* 1 when the victim and the victim directory are as setup left them. */
static int
untouched(void)
{
	char buf[64];
	struct stat st;
	FILE *fp;
	size_t n;
	DIR *d;
	struct dirent *de;
	int empty = 1;

	if (lstat(victim, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 07777) != 0640)
		return 0;
	if ((fp = fopen(victim, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	if (n != strlen(VICTIM_TEXT) || memcmp(buf, VICTIM_TEXT, n) != 0)
		return 0;
	if ((d = opendir(victimdir)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			empty = 0;
	closedir(d);
	return empty;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	if (mkdir(dest, 0755) != 0)
		abort();
	(void)unpack_memory(data, size, "fuzz.tar", dest, (unsigned)(size % 3 == 0), MAX_BYTES);
	if (!untouched())
		FUZZ_BROKEN();
	if (path_remove_tree(dest) != 0)
		abort();
	return 0;
}

#ifndef DS_LIBFUZZER
/* An archive in memory, written by libarchive: FORMAT, then entries "TYPE:NAME:ARG". */
static void
make_archive(struct fuzz_seeds *s, int zip, const char *const *specs)
{
	struct archive *a = archive_write_new();
	size_t cap = 1 << 16, used = 0;
	uint8_t *buf = malloc(cap);

	if (zip)
		archive_write_set_format_zip(a);
	else
		archive_write_set_format_pax_restricted(a);
	archive_write_open_memory(a, buf, cap, &used);
	for (; *specs != NULL; specs++) {
		struct archive_entry *e = archive_entry_new();
		const char *spec = *specs, *name = spec + 2, *arg = strchr(name, ':');
		char path[128];

		snprintf(path, sizeof(path), "%.*s", (int)(arg - name), name);
		arg++;
		archive_entry_set_pathname(e, path);
		switch (spec[0]) {
		case 'l':
			archive_entry_set_filetype(e, AE_IFLNK);
			archive_entry_set_perm(e, 0777);
			archive_entry_set_symlink(e, arg);
			archive_write_header(a, e);
			break;
		case 'd':
			archive_entry_set_filetype(e, AE_IFDIR);
			archive_entry_set_perm(e, (mode_t)strtol(arg, NULL, 8));
			archive_write_header(a, e);
			break;
		default:
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_perm(e, 04755);
			archive_entry_set_size(e, (la_int64_t)strlen(arg));
			archive_write_header(a, e);
			archive_write_data(a, arg, strlen(arg));
			break;
		}
		archive_entry_free(e);
	}
	archive_write_close(a);
	archive_write_free(a);
	fuzz_seed_add(s, buf, used);
	free(buf);
}

static void
own_seeds(struct fuzz_seeds *s)
{
	const char *plain[] = { "d:top/:0755", "f:top/a.txt:hello", "d:top/sub/:2775",
	    "f:top/sub/b.sh:#!/bin/sh\n", "l:top/link:a.txt", NULL };
	/* dest/ is beside the victims: relative targets reach them in any run. */
	const char *over[] = { "l:x:../victim", "d:x/:6777", NULL };
	const char *through[] = { "l:x:../victimdir", "f:x/evil:pwned", NULL };
	const char *twice[] = { "f:a:one", "f:a:two", "d:a/:0755", "f:a/b:three", NULL };

	make_archive(s, 0, plain);
	make_archive(s, 1, plain);
	make_archive(s, 0, over);
	make_archive(s, 0, through);
	make_archive(s, 0, twice);
}

int
main(void)
{
	int r;

	setup();
	r = fuzz_main("unpack", 300, own_seeds);
	(void)path_remove_tree(top);
	return r;
}
#endif
