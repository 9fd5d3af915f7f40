#include "autoconf.h"

#include <stdio.h>
#include <time.h>

#include "base/hash.h"
#include "base/xmalloc.h"
#include "repo/manifest.h"
#include "repo/plan.h"
#include "tap.h"

static void
test_identity(void)
{
	static const struct { const char *a, *b; int same; } table[] = {
		{ "openmrs_modules/htmlformentry-5.3.1.omod", "openmrs_modules/htmlformentry-5.4.0.omod", 1 },
		{ "frontend/openmrs-esm-login-app-10.0.1/149.js", "frontend/openmrs-esm-login-app-10.0.2/149.js", 1 },
		{ "frontend/app-1.2.0/149.js", "frontend/app-1.3.0/149.js", 1 },
		{ "frontend/app-1.2.0/149.js", "frontend/app-1.2.0/150.js", 0 },
		{ "m/idgen-4.10.0-SNAPSHOT.omod", "m/idgen-4.11.0.omod", 1 },
		{ "m/fhir2-2.2.0-beta.3.omod", "m/fhir2-2.3.0.omod", 1 },
		{ "m/webservices.rest-v2.40.0.omod", "m/webservices.rest-v2.41.0.omod", 1 },
		{ "m/htmlformentry-5.3.1.omod", "m/htmlwidgets-5.3.1.omod", 0 },
		{ "f/main.1a2b3c4d5e.js", "f/main.9f8e7d6c5b.js", 1 },
		{ "f/main.js", "f/vendor.js", 0 },
		{ "openmrs_core/openmrs-2.6.7.war", "openmrs_core/openmrs-2.7.0.war", 1 },
		{ "a/readme.txt", "a/readme.txt", 1 },
		{ "a/1.txt", "a/2.txt", 0 },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		char *x = plan_identity(table[i].a), *y = plan_identity(table[i].b);
		CHECK((strcmp(x, y) == 0) == table[i].same, "identity %s %s %s (%s | %s)", table[i].a,
		    table[i].same ? "==" : "!=", table[i].b, x, y);
		free(x);
		free(y);
	}
}

static void
add(struct manifest *m, char type, const char *path, uint64_t size, int content)
{
	struct manifest_entry e = { 0 };

	e.path = (char *)path;
	e.type = type;
	e.mode = type == MANIFEST_DIR ? 0755 : 0644;
	e.size = type == MANIFEST_DIR ? 0 : size;
	if (type != MANIFEST_DIR)
		memset(e.hash, content, HASH_LEN);
	manifest_add(m, &e);
}

static void
test_plan(void)
{
	struct manifest *a = manifest_new(), *b = manifest_new();
	struct plan *p;

	add(a, 'd', "m", 0, 0);
	add(a, 'f', "m/htmlformentry-5.3.1.omod", 1000, 1);
	add(a, 'f', "m/same.omod", 10, 2);
	add(a, 'f', "m/old-only.omod", 10, 3);
	add(a, 'f', "war", 5000, 4);
	add(a, 'f', "m/legacy-report.omod", 300, 9);
	manifest_sort(a);
	add(b, 'd', "m", 0, 0);
	add(b, 'f', "m/htmlformentry-5.4.0.omod", 1010, 5);
	add(b, 'f', "m/same.omod", 10, 2);
	add(b, 'f', "m/moved.omod", 10, 3);	/* content the site has under another name */
	add(b, 'f', "war", 5100, 6);
	add(b, 'f', "m/copy1.omod", 20, 7);
	add(b, 'f', "m/copy2.omod", 20, 7);	/* same content twice: one object */
	add(b, 'f', "m/legacy-reports.omod", 310, 8);
	manifest_sort(b);
	p = plan_make(a, b);
	CHECK(p->added == 5 && p->deleted == 3 && p->updated == 1 && p->unchanged == 2,
	    "counts: %zu added %zu deleted %zu updated %zu unchanged", p->added, p->deleted,
	    p->updated, p->unchanged);
	CHECK(p->nobjects == 4, "4 objects to send (got %zu)", p->nobjects);
	int identity = 0, same = 0, name = 0;
	for (size_t i = 0; i < p->nobjects; i++) {
		const struct plan_object *o = &p->objects[i];
		if (strcmp(o->entry->path, "m/htmlformentry-5.4.0.omod") == 0)
			identity = o->basis_kind == PLAN_BASIS_IDENTITY &&
			    strcmp(o->basis->path, "m/htmlformentry-5.3.1.omod") == 0;
		if (strcmp(o->entry->path, "war") == 0)
			same = o->basis_kind == PLAN_BASIS_SAME_PATH;
		if (strcmp(o->entry->path, "m/legacy-reports.omod") == 0)
			name = o->basis_kind == PLAN_BASIS_NAME;
	}
	CHECK(identity, "a versioned module pairs with its older version");
	CHECK(same, "an updated file uses its old content");
	CHECK(name, "a similar name in the same directory is the fallback");
	CHECK(p->object_bytes == 1010 + 5100 + 20 + 310, "object bytes");
	CHECK(p->nchanged_paths == 9, "changed paths include deletions (%zu)", p->nchanged_paths);
	plan_free(p);
	p = plan_make(NULL, b);
	CHECK(p->added == b->count && p->nobjects == 6, "an empty site needs every distinct object");
	plan_free(p);
	p = plan_make(b, b);
	CHECK(p->count == 0 && p->nobjects == 0 && p->nchanged_paths == 0, "no change, nothing to do");
	plan_free(p);
	manifest_free(a);
	manifest_free(b);
}

/* The basis a plan chose for path, or NULL (kind in *kind). */
static const struct manifest_entry *
basis_of(const struct plan *p, const char *path, enum plan_basis_kind *kind)
{
	for (size_t i = 0; i < p->nobjects; i++)
		if (strcmp(p->objects[i].entry->path, path) == 0) {
			*kind = p->objects[i].basis_kind;
			return p->objects[i].basis;
		}
	*kind = PLAN_BASIS_NONE;
	return NULL;
}

/*
 * A bundler's chunks renamed inside an app directory that carries its
 * version: each new chunk pairs with the dropped chunk of its type and
 * nearly its size, never with a chunk the release keeps or one of another
 * type; a size too far off gets no basis; a similar name still wins.
 */
static void
test_renamed(void)
{
	static const struct {
		const char *path;	/* in B */
		const char *basis;	/* expected, NULL: none */
		enum plan_basis_kind kind;
	} want[] = {
		{ "fe/app-1.0.1/9337.js", "fe/app-1.0.0/8183.js", PLAN_BASIS_SIZE },
		{ "fe/app-1.0.1/9337.js.map", "fe/app-1.0.0/8183.js.map", PLAN_BASIS_SIZE },
		{ "fe/app-1.0.1/4410.js", "fe/app-1.0.0/5120.js", PLAN_BASIS_SIZE },
		{ "fe/app-1.0.1/vendor-bundle.css", NULL, PLAN_BASIS_NONE },
		{ "fe/app-1.0.1/main-chunk.js", "fe/app-1.0.0/main-chunks.js", PLAN_BASIS_NAME },
		{ "fe/other/9999.js", NULL, PLAN_BASIS_NONE },
	};
	struct manifest *a = manifest_new(), *b = manifest_new();
	enum plan_basis_kind kind;
	struct plan *p;

	add(a, 'f', "fe/app-1.0.0/8183.js", 920920, 1);
	add(a, 'f', "fe/app-1.0.0/8183.js.map", 1280132, 2);
	add(a, 'f', "fe/app-1.0.0/195.js", 921000, 3);		/* kept: not a candidate */
	add(a, 'f', "fe/app-1.0.0/5120.js", 100000, 4);
	add(a, 'f', "fe/app-1.0.0/6000.js", 140000, 5);	/* dropped, but 40 % off */
	add(a, 'f', "fe/app-1.0.0/main-chunks.js", 5000, 6);
	add(a, 'f', "fe/app-1.0.0/styles.css", 100, 7);		/* too small for the css */
	add(a, 'f', "fe/other-dir/9990.js", 900000, 8);		/* another directory */
	manifest_sort(a);
	add(b, 'f', "fe/app-1.0.1/9337.js", 921139, 11);
	add(b, 'f', "fe/app-1.0.1/9337.js.map", 1280406, 12);
	add(b, 'f', "fe/app-1.0.1/195.js", 921000, 3);
	add(b, 'f', "fe/app-1.0.1/4410.js", 103000, 14);
	add(b, 'f', "fe/app-1.0.1/vendor-bundle.css", 90000, 15);
	add(b, 'f', "fe/app-1.0.1/main-chunk.js", 9000, 16);
	add(b, 'f', "fe/other/9999.js", 900001, 17);
	manifest_sort(b);
	p = plan_make(a, b);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct manifest_entry *got = basis_of(p, want[i].path, &kind);

		CHECK(want[i].basis == NULL ? got == NULL :
		    got != NULL && strcmp(got->path, want[i].basis) == 0 && kind == want[i].kind,
		    "%s: basis %s (%s), got %s (%s)", want[i].path,
		    want[i].basis != NULL ? want[i].basis : "none", plan_basis_name(want[i].kind),
		    got != NULL ? got->path : "none", plan_basis_name(kind));
	}
	plan_free(p);
	manifest_free(a);
	manifest_free(b);
}

/* A file whose content hash is that of its path: all distinct. */
static void
add_distinct(struct manifest *m, const char *path, uint64_t size)
{
	struct manifest_entry e = { 0 };

	e.path = (char *)path;
	e.type = MANIFEST_FILE;
	e.mode = 0644;
	e.size = size;
	hash_bytes(path, strlen(path), e.hash);
	manifest_add(m, &e);
}

/* A name of LEN letters from g..z (no hex, no version token), from N. */
static void
letters(char *out, size_t len, unsigned n)
{
	for (size_t i = 0; i < len; i++) {
		out[i] = (char)('g' + n % 20);
		n = n / 20 + (unsigned)i * 7919u;
	}
	out[len] = '\0';
}

/* CPU seconds this process has used. */
static double
cpu_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * A site may claim any current manifest (MANIFEST, up to a 16 MiB frame):
 * thousands of long names in the directory where a release adds files
 * made the similar-name search cost minutes of the repository's CPU
 * (issue 16, finding 8). The search is bounded: the plan stays quick, and
 * still deterministic.
 */
static void
test_claimed_manifest(void)
{
	struct manifest *a = manifest_new(), *b = manifest_new();
	char name[96], path[128];
	struct plan *p, *q;
	double t0, cpu;
	int same = 1;

	for (unsigned i = 0; i < 8000; i++) {
		letters(name, 60, i * 2654435761u);
		snprintf(path, sizeof(path), "fe/app/%s.js", name);
		add_distinct(a, path, 1000 + i);
	}
	for (unsigned i = 0; i < 150; i++) {
		letters(name, 60, i * 40503u + 7);
		snprintf(path, sizeof(path), "fe/app/n%s.js", name);
		add_distinct(b, path, 5000 + i);
	}
	CHECK(manifest_sort(a) == 0 && manifest_sort(b) == 0, "8000 claimed files, 150 new ones");
	t0 = cpu_seconds();
	p = plan_make(a, b);
	cpu = cpu_seconds() - t0;
	CHECK(p->nobjects == 150, "every new file is planned (%zu)", p->nobjects);
	CHECK(cpu < 2.0, "the plan took %.2f s of CPU, under 2 s", cpu);
	q = plan_make(a, b);
	for (size_t i = 0; i < p->nobjects && i < q->nobjects; i++)
		if (p->objects[i].basis != q->objects[i].basis)
			same = 0;
	CHECK(same && p->nobjects == q->nobjects, "the same inputs plan the same bases");
	plan_free(p);
	plan_free(q);
	manifest_free(a);
	manifest_free(b);
}

int
main(void)
{
	tap_run("identity", test_identity);
	tap_run("plan", test_plan);
	tap_run("renamed", test_renamed);
	tap_run("claimed-manifest", test_claimed_manifest);
	return tap_done();
}
