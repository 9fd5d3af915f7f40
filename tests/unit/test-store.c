#include "autoconf.h"

#include <sys/stat.h>

#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "repo/manifest.h"
#include "repo/store.h"
#include "tap.h"

static struct manifest *
scan(const char *dir)
{
	struct manifest *m = NULL;
	manifest_scan(dir, NULL, NULL, 1, &m, NULL);
	return m;
}

static int
add_all(struct store *s, const char *dir, const struct manifest *m)
{
	for (size_t i = 0; i < m->count; i++) {
		if (m->entries[i].type != MANIFEST_FILE)
			continue;
		char *p = xasprintf("%s/%s", dir, m->entries[i].path);
		int r = store_add_file(s, p, m->entries[i].hash);
		free(p);
		if (r != 0)
			return r;
	}
	return 0;
}

static void
test_store(void)
{
	struct store *s = NULL;
	struct manifest *m1, *m2, *back = NULL;
	struct stat st, so;
	char *id = NULL, **ids = NULL, *obj;
	size_t n, rr, ro, rd;

	mkdir("src", 0755);
	tap_write_file("src/a", "alpha", 5);
	tap_write_file("src/b", "beta", 4);
	log_set_level(LOG_LEVEL_SILENT);
	CHECK(store_open("store", 0, &s) == DS_ERR_NOTFOUND, "open without create fails on a missing store");
	log_set_level(LOG_LEVEL_INFO);
	CHECK(store_open("store", 1, &s) == 0, "create a store");
	m1 = scan("src");
	CHECK(add_all(s, "src", m1) == 0, "add objects");
	obj = store_object_path(s, manifest_find(m1, "a")->hash);
	stat(obj, &so);
	stat("src/a", &st);
	CHECK((so.st_mode & 0777) == 0444, "objects are read-only");
	CHECK(so.st_ino != st.st_ino, "an object shares no inode with the source");
	tap_write_file("src/a", "ALPHA", 5);
	{
		char buf[8] = { 0 };
		FILE *fp = fopen(obj, "r");
		CHECK(fp != NULL && fread(buf, 1, 5, fp) == 5 && memcmp(buf, "alpha", 5) == 0,
		    "editing the source does not change the stored object");
		if (fp)
			fclose(fp);
	}
	free(obj);
	log_set_level(LOG_LEVEL_SILENT);
	uint8_t other[HASH_LEN];
	hash_bytes("gamma", 5, other);
	CHECK(store_add_file(s, "src/b", other) == DS_ERR_CORRUPT && !store_has(s, other),
	    "content that does not match its hash is refused");
	log_set_level(LOG_LEVEL_INFO);
	CHECK(store_release_save(s, "r1", m1) == 0, "save release r1");
	log_set_level(LOG_LEVEL_SILENT);
	CHECK(store_release_save(s, "r1", m1) == DS_ERR_PRECONDITION, "releases are immutable");
	CHECK(store_release_save(s, "../x", m1) == DS_ERR_USAGE, "bad release id refused");
	CHECK(store_release_load(s, "nope", &back) == DS_ERR_NOTFOUND, "unknown release");
	log_set_level(LOG_LEVEL_INFO);
	m2 = scan("src");
	add_all(s, "src", m2);
	store_release_save(s, "r2", m2);
	CHECK(store_release_latest(s, &id) == 0 && strcmp(id, "r2") == 0, "latest is r2");
	store_release_list(s, &ids, &n);
	CHECK(n == 2 && strcmp(ids[0], "r1") == 0, "list oldest first");
	xfree_strv(ids);
	CHECK(store_release_load(s, "r1", &back) == 0 && back->count == m1->count, "load r1");
	manifest_free(back);
	{
		/* A tree is recognised by its manifest's digest, whatever the hint. */
		uint8_t d[HASH_LEN];
		char *found = NULL;

		manifest_digest(m1, d);
		CHECK(store_release_find(s, "r2", d, &found, &back) == 0 && found != NULL &&
		    strcmp(found, "r1") == 0 && back != NULL && back->count == m1->count,
		    "store_release_find: r1 by its digest, past a wrong hint");
		free(found);
		manifest_free(back);
		memset(d, 0x5a, sizeof(d));
		CHECK(store_release_find(s, "../x", d, &found, &back) == 0 && found == NULL &&
		    back == NULL, "store_release_find: no kept release has that digest");
	}
	{
		/* Cached encodings: of the pruned object, against it, and of kept ones. */
		const uint8_t *old_a = manifest_find(m1, "a")->hash, *new_a = manifest_find(m2, "a")->hash;
		char *keep_zst = store_delta_path(s, NULL, new_a, "zst");
		char *keep_rsync = store_delta_path(s, old_a, new_a, "rsync");
		char *drop_zpatch = store_delta_path(s, old_a, new_a, "zpatch");
		char *drop_zst = store_delta_path(s, NULL, old_a, "zst");
		char *tmp = xasprintf("%s.123.4.tmp", drop_zst);

		tap_write_file(keep_zst, "x", 1);
		tap_write_file(keep_rsync, "x", 1);
		tap_write_file(drop_zpatch, "x", 1);
		tap_write_file(drop_zst, "x", 1);
		tap_write_file(tmp, "x", 1);
		tap_write_file("store/deltas/notes.txt", "x", 1);
		CHECK(store_prune(s, 1, &rr, &ro, &rd) == 0 && rr == 1 && ro == 1 && rd == 2,
		    "prune keeps one release and drops its only-used object and its 2 encodings "
		    "(%zu, %zu, %zu)", rr, ro, rd);
		CHECK(access(keep_zst, F_OK) == 0 && access(keep_rsync, F_OK) == 0,
		    "a kept object's encodings stay (an rsync delta's basis is site content)");
		CHECK(access(drop_zpatch, F_OK) != 0 && access(drop_zst, F_OK) != 0,
		    "the encodings of a pruned object, or against one, are gone");
		CHECK(access(tmp, F_OK) == 0 && access("store/deltas/notes.txt", F_OK) == 0,
		    "an encoding being written and other files are left alone");
		free(keep_zst);
		free(keep_rsync);
		free(drop_zpatch);
		free(drop_zst);
		free(tmp);
	}
	CHECK(!store_has(s, manifest_find(m1, "a")->hash) && store_has(s, manifest_find(m2, "a")->hash) &&
	    store_has(s, manifest_find(m2, "b")->hash), "the kept release's objects stay");
	store_release_list(s, &ids, &n);
	CHECK(n == 1 && strcmp(ids[0], "r2") == 0, "only r2 left");
	xfree_strv(ids);
	free(id);
	manifest_free(m1);
	manifest_free(m2);
	store_free(s);
}

int
main(void)
{
	tap_run("store", test_store);
	return tap_done();
}
