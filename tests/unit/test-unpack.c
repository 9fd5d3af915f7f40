/*
 * unpack: archives written here with libarchive, unpacked from memory and
 * from a file. Nothing is done through a symlink (the victim beside the
 * tree keeps its mode and content), entries over or through earlier ones
 * are refused, only tar and zip are read, the byte limit holds, and modes
 * lose setuid, setgid and sticky.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "base/err.h"
#include "base/log.h"
#include "base/path.h"
#include "repo/manifest.h"
#include "repo/unpack.h"
#include "tap.h"

/* An archive in *out (malloc'd): entries "TYPE:NAME:ARG", f(ile: ARG content, mode 0644), d(ir: ARG octal mode), l(ink: ARG target), h(ardlink), m(ode file: 04755). */
static size_t
make_archive(int zip, const char *const *specs, uint8_t **out)
{
	struct archive *a = archive_write_new();
	size_t cap = 1 << 20, used = 0;

	*out = malloc(cap);
	if (zip)
		archive_write_set_format_zip(a);
	else
		archive_write_set_format_pax_restricted(a);
	archive_write_open_memory(a, *out, cap, &used);
	for (; *specs != NULL; specs++) {
		struct archive_entry *e = archive_entry_new();
		const char *name = *specs + 2, *arg = strchr(name, ':') + 1;
		char path[128];

		snprintf(path, sizeof(path), "%.*s", (int)(arg - 1 - name), name);
		archive_entry_set_pathname(e, path);
		switch (**specs) {
		case 'l':
			archive_entry_set_filetype(e, AE_IFLNK);
			archive_entry_set_perm(e, 0777);
			archive_entry_set_symlink(e, arg);
			break;
		case 'h':
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_hardlink(e, arg);
			archive_entry_set_size(e, 0);
			break;
		case 'd':
			archive_entry_set_filetype(e, AE_IFDIR);
			archive_entry_set_perm(e, (mode_t)strtol(arg, NULL, 8));
			break;
		default:
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_perm(e, **specs == 'm' ? 04755 : 0644);
			archive_entry_set_size(e, (la_int64_t)strlen(arg));
			break;
		}
		archive_write_header(a, e);
		if (**specs == 'f' || **specs == 'm')
			archive_write_data(a, arg, strlen(arg));
		archive_entry_free(e);
	}
	archive_write_close(a);
	archive_write_free(a);
	return used;
}

/* Unpacks specs (as tar, or zip) into a fresh "dest"; returns unpack's result. */
static int
unpack_specs(int zip, const char *const *specs, uint64_t max_bytes)
{
	uint8_t *data;
	size_t len = make_archive(zip, specs, &data);
	int r;

	(void)path_remove_tree("dest");
	if (mkdir("dest", 0755) != 0)
		return DS_ERR_SYSTEM;
	r = unpack_memory(data, len, "test.tar", "dest", 0, max_bytes);
	free(data);
	return r;
}

static unsigned
mode_of(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 ? (unsigned)(st.st_mode & 07777) : 0xffff;
}

static int
victim_intact(void)
{
	char buf[32] = { 0 };
	int fd = open("victim", O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	return n == 8 && strcmp(buf, "records\n") == 0 && mode_of("victim") == 0640;
}

/* Symlinks made by earlier entries are never gone through or replaced. */
static void
test_symlinks(void)
{
	const char *over[] = { "l:x:../victim", "d:x/:6777", NULL };
	const char *through[] = { "l:x:../victimdir", "f:x/evil:pwned", NULL };
	const char *file_over[] = { "l:x:../victim", "f:x:overwritten", NULL };
	const char *deep[] = { "d:a/:0755", "l:a/b:../../victimdir", "f:a/b/c/d:pwned", NULL };
	const char *inside[] = { "d:a/:0755", "f:a/f:x", "l:a/link:f", "l:top:a", NULL };

	CHECK(tap_write_file("victim", "records\n", 8) == 0 && chmod("victim", 0640) == 0 &&
	    mkdir("victimdir", 0755) == 0, "a victim file and directory beside the tree");
	CHECK(unpack_specs(0, over, 0) == DS_ERR_INVALID && victim_intact(),
	    "a directory over a symlink: refused, the victim keeps mode 0640 and its content");
	CHECK(unpack_specs(0, through, 0) == DS_ERR_INVALID &&
	    access("victimdir/evil", F_OK) != 0, "a file through a symlink: refused, nothing outside");
	CHECK(unpack_specs(0, file_over, 0) == DS_ERR_INVALID && victim_intact(),
	    "a file over a symlink: refused");
	CHECK(unpack_specs(0, deep, 0) == DS_ERR_INVALID && access("victimdir/c", F_OK) != 0,
	    "a path through a symlink two levels down: refused");
	CHECK(unpack_specs(0, inside, 0) == 0 && mode_of("dest/top") == 0777 &&
	    mode_of("dest/a/f") == 0644, "symlinks alone, inside the tree, unpack");
}

/* Entries over earlier ones, hardlinks, and formats that are not tar or zip. */
static void
test_refused(void)
{
	const char *twice[] = { "f:a:one", "f:a:two", NULL };
	const char *dir_over_file[] = { "f:a:one", "d:a/:0755", NULL };
	const char *under_file[] = { "f:a:one", "f:a/b:two", NULL };
	const char *dir_twice[] = { "d:a/:0755", "d:a/:0700", "f:a/b:x", NULL };
	const char *hardlink[] = { "f:a:one", "h:b:a", NULL };
	const char *absolute[] = { "f:/etc/x:one", NULL };
	const char *dotdot[] = { "f:a/../../x:one", NULL };
	char mtree[] = "#mtree\nleak type=file contents=victim\n";

	CHECK(unpack_specs(0, twice, 0) == DS_ERR_INVALID, "a file twice: refused");
	CHECK(unpack_specs(0, dir_over_file, 0) == DS_ERR_INVALID, "a directory over a file: refused");
	CHECK(unpack_specs(0, under_file, 0) == DS_ERR_INVALID, "a file under a file: refused");
	CHECK(unpack_specs(0, dir_twice, 0) == 0 && mode_of("dest/a") == 0700,
	    "a directory twice: fine, the last mode wins");
	CHECK(unpack_specs(0, hardlink, 0) == DS_ERR_INVALID, "a hardlink: refused");
	CHECK(unpack_specs(0, absolute, 0) == DS_ERR_INVALID, "an absolute path: refused");
	CHECK(unpack_specs(0, dotdot, 0) == DS_ERR_INVALID, "a path with '..': refused");
	(void)path_remove_tree("dest");
	CHECK(tap_write_file("victim", "records\n", 8) == 0 && mkdir("dest", 0755) == 0 &&
	    unpack_memory(mtree, strlen(mtree), "leak.mtree", "dest", 0, 0) == DS_ERR_INVALID &&
	    access("dest/leak", F_OK) != 0, "an mtree archive (it reads local files): refused");
}

/* The limit counts declared sizes; modes lose their special bits. */
static void
test_limits_and_modes(void)
{
	const char *three[] = { "f:a:0123456789", "f:b:0123456789", "f:c:0123456789", NULL };
	const char *modes[] = { "d:d/:2775", "d:s/:1777", "m:d/su:x", "f:s/plain:y", NULL };
	uint8_t *data;
	size_t len;

	CHECK(unpack_specs(0, three, 29) == DS_ERR_INVALID, "30 bytes over a 29-byte limit: refused");
	CHECK(unpack_specs(0, three, 30) == 0, "30 bytes within a 30-byte limit: unpacked");
	CHECK(unpack_specs(0, modes, 0) == 0 && mode_of("dest/d") == 0775 &&
	    mode_of("dest/s") == 0777 && mode_of("dest/d/su") == 0755 &&
	    mode_of("dest/s/plain") == 0644, "setgid, sticky and setuid are stripped (tar)");
	CHECK(unpack_specs(1, modes, 0) == 0 && mode_of("dest/d/su") == 0755,
	    "and from a zip");
	CHECK(manifest_mode_clean(07755) == 0755 && manifest_mode_clean(0640) == 0640,
	    "manifest_mode_clean keeps rwx only");
	/* The same archive from a file. */
	len = make_archive(0, three, &data);
	(void)path_remove_tree("dest");
	CHECK(tap_write_file("three.tar", data, len) == 0 && mkdir("dest", 0755) == 0 &&
	    unpack_archive("three.tar", "dest", 0, 0) == 0 && access("dest/c", F_OK) == 0,
	    "unpack_archive reads the same archive from a file");
	free(data);
}

int
main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	if (getenv("DS_TEST_VERBOSE") == NULL && freopen("/dev/null", "w", stderr) == NULL)
		return 1;
	tap_run("unpack-symlinks", test_symlinks);
	tap_run("unpack-refused", test_refused);
	tap_run("unpack-limits-modes", test_limits_and_modes);
	return tap_done();
}
