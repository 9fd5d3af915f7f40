#include "autoconf.h"

#include <fcntl.h>
#include <glob.h>
#include <stdint.h>
#include <sys/stat.h>

#include "base/err.h"
#include "base/xmalloc.h"
#include "config/config.h"
#include "config/config-fields.h"
#include "tap.h"

#ifndef TOP_SRCDIR
#define TOP_SRCDIR ".."
#endif

static char *srcdir;

/* Runs config_load(FILE) with stderr captured into *err (caller frees). */
static int
load_captured(const char *file, struct config **out, char **err)
{
	int saved, fd, r;
	FILE *fp;
	long n;

	fflush(stderr);
	saved = dup(2);
	fd = open("stderr.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (saved < 0 || fd < 0 || dup2(fd, 2) < 0) {
		printf("Bail out! cannot redirect stderr\n");
		exit(1);
	}
	close(fd);
	r = config_load(file, out);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	*err = NULL;
	if ((fp = fopen("stderr.txt", "r")) != NULL) {
		fseek(fp, 0, SEEK_END);
		n = ftell(fp);
		rewind(fp);
		*err = xcalloc(1, (size_t)n + 1);
		if (fread(*err, 1, (size_t)n, fp) != (size_t)n)
			(*err)[0] = '\0';
		fclose(fp);
	}
	if (*err == NULL)
		*err = xstrdup("");
	return r;
}

#define D "distribution: {name: x}\n"
#define H D "hosts:\n  a:\n    path: /t\n"
#define UP D "hosts:\n  up:\n    address: central\n    path: /t\n"
#define S(body) D "services:\n  s:\n    paths: [a/**]\n" body

/*
 * Each bad configuration, the line its error must name (0: no position),
 * and a string (the key) the message must contain.
 */
static const struct {
	const char *yaml;
	unsigned line;
	const char *want;
	const char *also;	/* a second expected fragment, or NULL */
} bad[] = {
	/* wrong types and ranges */
	{ H "    port: abc\n", 5, "hosts.a.port", "whole number" },
	{ H "    port: 70000\n", 5, "hosts.a.port", "out of range" },
	{ H "    port: -1\n", 5, "hosts.a.port", NULL },
	{ H "    port: [22]\n", 5, "hosts.a.port", "a list" },
	{ H "    retries: 1.5\n", 5, "hosts.a.retries", NULL },
	{ H "    bwlimit: fast\n", 5, "hosts.a.bwlimit", NULL },
	{ H "    bwlimit: 10kbps\n", 5, "hosts.a.bwlimit", NULL },
	{ H "    user: {name: x}\n", 5, "hosts.a.user", "a mapping" },
	{ H "    groups: {a: b}\n", 5, "hosts.a.groups", NULL },
	{ H "    idle_timeout: 5 minutes\n", 5, "hosts.a.idle_timeout", "seconds" },
	{ H "    address: \"-oProxyCommand=x\"\n", 5, "hosts.a.address", NULL },
	{ "distribution: {name: x, keep_releases: 0}\n", 1, "distribution.keep_releases", NULL },
	{ "distribution: {name: x, level: 30}\n", 1, "distribution.level", NULL },
	{ "distribution: [x]\n", 1, "distribution", "expected a mapping" },
	{ "distribution: {name: \"a b\"}\n", 1, "distribution.name", NULL },
	{ S("    health: {container: maybe}\n"), 5, "services.s.health.container", "true or false" },
	{ S("    health: {command: [true], timeout: 0}\n"), 5, "services.s.health.timeout", NULL },
	{ S("    command: \"systemctl restart x\"\n    restart: command\n"), 5,
	    "services.s.command", "list of arguments" },
	{ D "hosts: [a, b]\n", 2, "hosts", "expected a mapping" },
	{ D "run_once: {paths: [a]}\n", 2, "run_once", NULL },
	/* duplicate keys */
	{ D "hosts:\n  a: {path: /t}\n  a: {path: /u}\n", 4, "hosts.a", "duplicate" },
	{ H "    port: 22\n    port: 23\n", 6, "hosts.a.port", "first at line 5" },
	{ D "hosts:\n  a: {path: /t}\n  b: {path: /u}\n  b: {path: /w}\n  a: {path: /v}\n"
	    "  a: {path: /x}\n", 5, "hosts.b", "first at line 4" },
	{ D "distribution: {name: y}\n", 2, "distribution", "duplicate" },
	/* unknown keys */
	{ D "hostz:\n  a: {path: /t}\n", 2, "hostz", "did you mean 'hosts'" },
	{ H "    prot: 22\n", 5, "hosts.a.prot", "did you mean 'port'" },
	{ S("    restrat: none\n"), 5, "services.s.restrat", "did you mean 'restart'" },
	{ D "defaults: {paralel: 4}\n", 2, "defaults.paralel", "did you mean 'parallel'" },
	{ H "    parallel: 4\n", 5, "hosts.a.parallel", "unknown key" },
	{ "distribution: {name: x, sorce: dist}\n", 1, "distribution.sorce",
	    "did you mean 'source'" },
	{ S("    health: {urll: \"http://x\"}\n"), 5, "services.s.health.urll", "'url'" },
	/* globs */
	{ S("    reload_on: [\"a/[abc\"]\n"), 5, "services.s.reload_on", "unterminated" },
	{ D "services:\n  s:\n    paths: [/abs/**]\n", 4, "services.s.paths", "relative" },
	{ D "services:\n  s:\n    paths: [ok/**, ../x/**]\n", 4, "services.s.paths", "bad glob" },
	{ D "services:\n  s:\n    paths: [a**]\n", 4, "services.s.paths", "whole path component" },
	{ D "run_once:\n  - {paths: [\"sql/***\"], command: [x]}\n", 3, "run_once[0].paths", NULL },
	/* groups */
	{ D "groups: [prod]\nhosts:\n  a: {path: /t, groups: [prd]}\n", 4, "hosts.a.groups",
	    "did you mean 'prod'" },
	{ D "groups: [prod]\ndefaults: {groups: [test]}\nhosts:\n  a: {path: /t}\n", 3,
	    "defaults.groups", "not in the top-level groups" },
	{ D "hosts:\n  a: {path: /t}\n  b: {path: /u, groups: [x, a]}\n", 4, "hosts.b.groups",
	    "host name" },
	{ D "groups: [prod, a]\nhosts:\n  a: {path: /t}\n", 2, "groups", "host name" },
	{ D "defaults: {groups: [a]}\nhosts:\n  a: {path: /t}\n", 2, "defaults.groups",
	    "host name" },
	{ D "groups: [prod, prod]\n", 2, "groups", "twice" },
	{ D "groups: [all]\n", 2, "groups", "reserved" },
	/* services: after, cycles, restart */
	{ S("    after: [dbb]\n  db:\n    paths: [db/**]\n"), 5, "services.s.after",
	    "did you mean 'db'" },
	{ S("    after: [t]\n  t:\n    paths: [b/**]\n    after: [s]\n"), 8, "services.t.after",
	    "s -> t -> s" },
	{ S("    after: [s]\n"), 5, "services.s.after", "cycle" },
	{ S("    after: [t]\n  t:\n    paths: [b/**]\n    after: [u]\n"
	    "  u:\n    paths: [c/**]\n    after: [s]\n"), 11, "services.u.after",
	    "s -> t -> u -> s" },
	{ S("    restart: command\n"), 5, "services.s.command", "needs" },
	{ S("    restart: composee\n"), 5, "services.s.restart", "did you mean 'compose'" },
	{ S("    command: [x]\n"), 5, "services.s.command", "only used with" },
	{ D "services:\n  s:\n    restart: none\n", 3, "services.s.paths", "missing" },
	{ S("    health: {timeout: 5}\n"), 5, "services.s.health", "one of" },
	{ S("    health: {url: \"ftp://x\"}\n"), 5, "services.s.health.url", "http" },
	{ S("    health: {url: \"http://x\", container: true}\n"), 5, "services.s.health",
	    "only one" },
	{ D "services:\n  -x:\n    paths: [a]\n", 3, "services.-x", "name" },
	/* run_once */
	{ D "run_once:\n  - {paths: [a/*]}\n", 3, "run_once[0].command", "missing" },
	{ D "run_once:\n  - {paths: [], command: [x]}\n", 3, "run_once[0].paths", "missing" },
	/* hosts */
	{ D "hosts:\n  a: {port: 22}\n", 3, "hosts.a.path", "missing" },
	{ D "hosts:\n  a:\n", 3, "hosts.a.path", "missing" },
	{ D "hosts:\n  a: {address: h.example.org, path: rel/dist}\n", 3, "hosts.a.path",
	    "absolute" },
	{ D "hosts:\n  a: {path: /}\n", 3, "hosts.a.path", "root" },
	{ D "hosts:\n  a: {path: /t, state: /t/.state}\n", 3, "hosts.a.state", "inside" },
	{ D "hosts:\n  all: {path: /t}\n", 3, "hosts.all", "reserved" },
	{ D "hosts:\n  \"a b\": {path: /t}\n", 3, "hosts.a b", "name" },
	{ "hosts:\n  a: {path: /t}\n", 1, "distribution", "missing" },
	{ "distribution: {source: dist}\n", 1, "distribution.name", "missing" },
	/* shape of the file */
	{ "", 1, "empty", NULL },
	{ "# only a comment\n\n", 1, "empty", NULL },
	{ "---\n", 1, "empty", NULL },
	{ "- a\n- b\n", 1, "top level", "a list" },
	{ "just a string\n", 1, "top level", NULL },
	{ D "---\n" D, 2, "second YAML document", NULL },
	{ D "hosts:\n  a: [1, 2\n", 0, "invalid YAML", NULL },
	{ D "hosts:\n\ta: {path: /t}\n", 3, "invalid YAML", NULL },
	{ D "hosts:\n  a: !!binary aGVsbG8=\n", 3, "tag", NULL },
	{ D "x: &a {path: /t}\nhosts:\n  a: *a\n", 4, "hosts.a", "alias" },
	{ D "hosts:\n  a: {path: \"/t\\0x\"}\n", 3, "NUL", NULL },
	{ D "? {a: 1}\n: x\n", 2, "plain key", NULL },
	{ "distribution: {name: \"x\x01\"}\n", 1, "control", NULL },
	/* site: (pull) */
	{ H "site: {host: k}\n", 5, "site.upstream", "missing" },
	{ H "site: {upstream: a, host: k}\n", 5, "site.upstream", "neither an address nor mirrors" },
	{ UP "site: {upstream: nope, host: k}\n", 6, "site.upstream", "no host 'nope'" },
	{ UP "site: {upstream: up}\n", 6, "site.host", "missing" },
	{ UP "site: {upstream: up, host: \"-x\"}\n", 6, "site.host", NULL },
	{ UP "site: {upstream: up, host: k, repository: rel/d.yml}\n", 6, "site.repository",
	    "absolute" },
	{ UP "site: {upstream: up, host: k, hots: x}\n", 6, "hots", "did you mean" },
	{ UP "site: [up]\n", 6, "site", "a mapping" },
};

static void
test_bad(void)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct config *c = (struct config *)1;
		char *err, where[64];
		int r;

		if (tap_write_file("distsync.yml", bad[i].yaml, strlen(bad[i].yaml)) != 0) {
			CHECK(0, "write bad config %zu", i);
			continue;
		}
		r = load_captured("distsync.yml", &c, &err);
		snprintf(where, sizeof(where), "distsync.yml:%u:", bad[i].line);
		CHECK(r == DS_ERR_CONFIG && c == NULL && strstr(err, bad[i].want) != NULL &&
		    (bad[i].line == 0 || strstr(err, where) != NULL) &&
		    (bad[i].also == NULL || strstr(err, bad[i].also) != NULL) &&
		    strchr(err, '\n') == err + strlen(err) - 1,
		    "bad %zu: line %u, '%s': %.*s", i, bad[i].line, bad[i].want,
		    (int)strcspn(err, "\n"), err);
		config_free(c == (struct config *)1 ? NULL : c);
		free(err);
	}
}

/* Bad inputs that are files: junk, encodings, bombs, size. */
static void
test_bad_files(void)
{
	static const struct { const char *file, *want; } files[] = {
		{ "bad-binary.yml", "NUL byte" },
		{ "bad-utf8.yml", "invalid YAML" },
		{ "bad-alias-bomb.yml", "alias '*a'" },
	};
	struct config *c;
	char *err, *path;
	int r;

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		path = xasprintf("%s/tests/unit/configs/%s", srcdir, files[i].file);
		r = load_captured(path, &c, &err);
		free(path);
		CHECK(r == DS_ERR_CONFIG && c == NULL && strstr(err, files[i].want) != NULL,
		    "%s refused: %.*s", files[i].file, (int)strcspn(err, "\n"), err);
		free(err);
	}

	/* Pseudo-random junk of several sizes: refused, never a crash. */
	{
		unsigned char junk[4096];
		uint32_t x = 12345;

		for (size_t size = 1; size <= sizeof(junk); size *= 4) {
			for (size_t k = 0; k < size; k++) {
				x = x * 1103515245u + 12345u;
				junk[k] = (unsigned char)(x >> 16);
			}
			tap_write_file("junk.yml", junk, size);
			r = load_captured("junk.yml", &c, &err);
			CHECK(r == DS_ERR_CONFIG && c == NULL && strncmp(err, "distsync: junk.yml:", 19) == 0,
			    "%zu bytes of junk refused: %.*s", size, (int)strcspn(err, "\n"), err);
			config_free(c);
			free(err);
		}
	}

	/* A 10 MB file is refused by its size, before parsing. */
	{
		size_t size = 10 * 1000 * 1000;
		char *big = xmalloc(size);

		memset(big, '#', size);
		big[size - 1] = '\n';
		tap_write_file("big.yml", big, size);
		free(big);
		r = load_captured("big.yml", &c, &err);
		CHECK(r == DS_ERR_CONFIG && c == NULL && strstr(err, "10000000 bytes") != NULL &&
		    strstr(err, "1 MiB") != NULL, "10 MB file refused: %.*s",
		    (int)strcspn(err, "\n"), err);
		free(err);
	}

	/* Many hosts load quickly; a repeat among them is still found. */
	{
		size_t cap = 256 * 1024, used;
		char *many = xmalloc(cap);
		int w;

		used = (size_t)snprintf(many, cap, D "hosts:\n");
		for (int k = 0; k < 5000; k++) {
			w = snprintf(many + used, cap - used, "  h%d: {path: /t/%d, groups: [g%d]}\n",
			    k, k, k % 50);
			used += (size_t)w;
		}
		tap_write_file("many.yml", many, used);
		r = load_captured("many.yml", &c, &err);
		CHECK(r == 0 && c != NULL && c->nhosts == 5000, "5000 hosts load");
		config_free(c);
		free(err);
		w = snprintf(many + used, cap - used, "  h7: {path: /u}\n");
		used += (size_t)w;
		tap_write_file("many.yml", many, used);
		r = load_captured("many.yml", &c, &err);
		CHECK(r == DS_ERR_CONFIG && strstr(err, "many.yml:5003:3: hosts.h7: duplicate key "
		    "(first at line 10)") != NULL, "a repeat after 5000 hosts: %.*s",
		    (int)strcspn(err, "\n"), err);
		free(err);
		free(many);
	}

	/* Nesting deeper than any config needs. */
	{
		char deep[512] = D "x: ";
		size_t n = strlen(deep);

		for (int k = 0; k < 100; k++)
			deep[n++] = '[';
		deep[n] = '\0';
		tap_write_file("deep.yml", deep, n);
		r = load_captured("deep.yml", &c, &err);
		CHECK(r == DS_ERR_CONFIG && strstr(err, "nested deeper") != NULL,
		    "deep nesting refused: %.*s", (int)strcspn(err, "\n"), err);
		free(err);
	}

	r = load_captured("no-such-file.yml", &c, &err);
	CHECK(r == DS_ERR_CONFIG && strstr(err, "no-such-file.yml") != NULL,
	    "a missing file is a config error naming it");
	free(err);
	CHECK(mkdir("dir.yml", 0755) == 0, "mkdir");
	r = load_captured("dir.yml", &c, &err);
	CHECK(r == DS_ERR_CONFIG && strstr(err, "not a regular file") != NULL,
	    "a directory is refused");
	free(err);
}

static int
strv_equal(char *const *a, char *const *b)
{
	size_t i;

	if (a == NULL || b == NULL)
		return a == b;
	for (i = 0; a[i] != NULL && b[i] != NULL; i++)
		if (strcmp(a[i], b[i]) != 0)
			return 0;
	return a[i] == NULL && b[i] == NULL;
}

static int
str_equal(const char *a, const char *b)
{
	return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

static void
test_good(void)
{
	struct config *c = NULL;
	const struct config_host *h, **list = NULL;
	const struct config_service *s;
	char *path, *err, *want;
	size_t n;
	int r;

	setenv("HOME", "/home/tester", 1);
	path = xasprintf("%s/tests/unit/configs/good-full.yml", srcdir);
	r = load_captured(path, &c, &err);
	free(path);
	CHECK(r == 0 && c != NULL, "good-full.yml loads: %s", err);
	free(err);
	if (c == NULL)
		return;
	CHECK(c->dir[0] == '/', "config dir is absolute: %s", c->dir);
	CHECK(strcmp(c->distribution.name, "full") == 0, "distribution name");
	want = xasprintf("%s/src-tree", c->dir);
	CHECK(strcmp(c->distribution.source, want) == 0, "source resolved: %s",
	    c->distribution.source);
	free(want);
	CHECK(c->distribution.store[0] == '/' && strstr(c->distribution.store, "..") == NULL &&
	    strcmp(strrchr(c->distribution.store, '/'), "/store") == 0,
	    "store ../store normalised: %s", c->distribution.store);
	want = xasprintf("%s/keys/release.key", c->dir);
	CHECK(str_equal(c->distribution.signing_key, want), "signing_key resolved");
	free(want);
	CHECK(str_equal(c->distribution.signing_passphrase_file, "/etc/distsync/release.pass"),
	    "absolute signing_passphrase_file kept");
	CHECK(c->distribution.keep_releases == 3 && c->distribution.level == 12,
	    "keep_releases and level");
	CHECK(c->parallel == 3, "parallel from defaults");
	CHECK(c->nservices == 4 && c->nrun_once == 1 && c->nhosts == 4, "counts");

	s = config_service(c, "db");
	CHECK(s != NULL && s->restart == CONFIG_RESTART_COMPOSE && s->health.container == 1 &&
	    s->health.timeout == 300, "db: restart defaults to compose, health timeout 300");
	s = config_service(c, "frontend");
	CHECK(s != NULL && s->restart == CONFIG_RESTART_NONE && s->paths[0] != NULL &&
	    strcmp(s->paths[0], "frontend/**") == 0 && s->paths[1] == NULL &&
	    strcmp(s->reload_on[0], "frontend/index.html") == 0,
	    "frontend: a single glob string is a list of one");
	s = config_service(c, "hook");
	CHECK(s != NULL && s->restart == CONFIG_RESTART_COMMAND && s->command != NULL &&
	    strcmp(s->command[2], "echo 'quoted: yes' \"and: this\" >> log") == 0 &&
	    s->health.timeout == 120 && str_equal(s->health.url, "https://localhost/x?a=1&b=2"),
	    "hook: command argv, 2m timeout, url");
	CHECK(s != NULL && s->after[0] && strcmp(s->after[1], "frontend") == 0 && !s->after[2],
	    "hook: after list");
	CHECK(config_service(c, "nope") == NULL, "unknown service is NULL");

	h = config_host(c, "kirehe");
	CHECK(h != NULL && str_equal(h->user, "openmrs") && h->port == 2200 &&
	    h->retries == 7 && h->bwlimit == 32000, "kirehe: defaults merged, 256kbit = 32000 B/s");
	CHECK(h != NULL && str_equal(h->identity, "/home/tester/.ssh/id_ed25519"),
	    "~ expands to $HOME");
	CHECK(h != NULL && h->known_hosts == NULL,
	    "no known_hosts set: none filled in (ssh's own files are looked up)");
	CHECK(h != NULL && str_equal(h->path, "/opt/openmrs/distribution") &&
	    str_equal(h->state, "/opt/openmrs/.distribution.distsync"),
	    "state defaults to dirname(path)/.BASENAME.distsync");
	CHECK(h != NULL && strcmp(h->groups[0], "prod") == 0 && strcmp(h->groups[1], "north") == 0,
	    "kirehe groups");
	h = config_host(c, "butaro");
	CHECK(h != NULL && h->port == 22 && h->bwlimit == 256 * 1024 && h->idle_timeout == 3600 &&
	    strcmp(h->groups[0], "prod") == 0 && h->groups[1] == NULL && h->keep_backups == 2 &&
	    h->connect_timeout == 30 && h->retry_max_wait == 300 &&
	    str_equal(h->remote_command, "distsync"),
	    "butaro: groups and bwlimit (256k = 262144 B/s) from defaults, built-in defaults");
	h = config_host(c, "lab");
	CHECK(h != NULL && str_equal(h->user, "null") && str_equal(h->owner, "~") &&
	    str_equal(h->compose_project, "yes"), "quoted null-like strings stay strings");
	h = config_host(c, "local");
	want = xasprintf("%s/site/distribution", c->dir);
	CHECK(h != NULL && h->address == NULL && str_equal(h->path, want),
	    "local path resolved: %s", h ? h->path : "");
	free(want);
	want = xasprintf("%s/site/state", c->dir);
	CHECK(h != NULL && str_equal(h->state, want) && h->keep_backups == 4 &&
	    h->known_hosts == NULL, "local state resolved, no known_hosts without an address");
	free(want);
	CHECK(config_host(c, "nope") == NULL, "unknown host is NULL");

	{
		char *prod[] = { "prod" }, *all[] = { "all" }, *mix[] = { "local", "test", "kirehe" };
		char *unknown[] = { "prod", "kireh" }, *north[] = { "north" };

		r = config_resolve_hosts(c, prod, 1, &list, &n);
		CHECK(r == 0 && n == 2 && strcmp(list[0]->name, "kirehe") == 0 &&
		    strcmp(list[1]->name, "butaro") == 0, "prod resolves to kirehe, butaro");
		free(list);
		r = config_resolve_hosts(c, all, 1, &list, &n);
		CHECK(r == 0 && n == 4, "all resolves to every host");
		free(list);
		r = config_resolve_hosts(c, mix, 3, &list, &n);
		CHECK(r == 0 && n == 3 && strcmp(list[0]->name, "kirehe") == 0 &&
		    strcmp(list[1]->name, "lab") == 0 && strcmp(list[2]->name, "local") == 0,
		    "hosts and groups mixed: config order, no duplicates");
		free(list);
		r = config_resolve_hosts(c, north, 1, &list, &n);
		CHECK(r == 0 && n == 1, "north: one host");
		free(list);
		list = NULL;
		fflush(stderr);
		{
			int saved = dup(2), fd = open("resolve.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
			dup2(fd, 2);
			close(fd);
			r = config_resolve_hosts(c, unknown, 2, &list, &n);
			fflush(stderr);
			dup2(saved, 2);
			close(saved);
		}
		CHECK(r == DS_ERR_NOTFOUND && list == NULL, "unknown name is DS_ERR_NOTFOUND");
	}
	config_free(c);

	path = xasprintf("%s/tests/unit/configs/good-minimal.yml", srcdir);
	r = load_captured(path, &c, &err);
	free(path);
	CHECK(r == 0 && c != NULL && c->nhosts == 0 && c->nservices == 0 &&
	    c->distribution.level == 9 && c->distribution.keep_releases == 10 &&
	    c->parallel == 8 && c->groups == NULL, "minimal config: built-in defaults");
	free(err);
	config_free(c);
}

static char *
print_to_string(const struct config *c, const struct config_host *h, size_t *len)
{
	char *data = NULL;
	FILE *fp = open_memstream(&data, len);

	if (h != NULL)
		config_print_host(c, h, fp);
	else
		config_print(c, fp);
	fclose(fp);
	return data;
}

static int
services_equal(const struct config *a, const struct config *b)
{
	if (a->nservices != b->nservices || a->nrun_once != b->nrun_once)
		return 0;
	for (size_t i = 0; i < a->nservices; i++) {
		const struct config_service *x = &a->services[i], *y = &b->services[i];

		if (strcmp(x->name, y->name) != 0 || !strv_equal(x->paths, y->paths) ||
		    x->restart != y->restart || !strv_equal(x->command, y->command) ||
		    !strv_equal(x->reload_on, y->reload_on) || !strv_equal(x->after, y->after) ||
		    !strv_equal(x->health.command, y->health.command) ||
		    !str_equal(x->health.url, y->health.url) ||
		    x->health.container != y->health.container ||
		    x->health.timeout != y->health.timeout)
			return 0;
	}
	for (size_t i = 0; i < a->nrun_once; i++)
		if (!strv_equal(a->run_once[i].paths, b->run_once[i].paths) ||
		    !strv_equal(a->run_once[i].command, b->run_once[i].command))
			return 0;
	return 1;
}

static void
test_round_trip(void)
{
	struct config *c = NULL, *back = NULL, *again = NULL;
	char *path, *err, *text, *text2;
	size_t len, len2;
	int r;

	path = xasprintf("%s/tests/unit/configs/good-full.yml", srcdir);
	r = load_captured(path, &c, &err);
	free(err);
	CHECK(r == 0, "good-full.yml loads");
	if (r != 0) {
		free(path);
		return;
	}
	for (size_t i = 0; i < c->nhosts; i++) {
		const struct config_host *h = &c->hosts[i], *g;

		text = print_to_string(c, h, &len);
		r = config_load_mem(text, len, "receiver", &back);
		CHECK(r == 0 && back != NULL && back->nhosts == 1, "host document for %s loads",
		    h->name);
		if (r != 0) {
			printf("%s", text);
			free(text);
			continue;
		}
		g = &back->hosts[0];
		CHECK(strcmp(g->name, h->name) == 0 && str_equal(g->path, h->path) &&
		    str_equal(g->state, h->state) && str_equal(g->compose, h->compose) &&
		    str_equal(g->compose_project, h->compose_project) &&
		    str_equal(g->owner, h->owner) && str_equal(g->group, h->group) &&
		    g->keep_backups == h->keep_backups && g->address == NULL,
		    "%s: host fields survive the round trip", h->name);
		CHECK(strcmp(back->distribution.name, c->distribution.name) == 0 &&
		    back->distribution.level == c->distribution.level,
		    "%s: distribution name and level survive", h->name);
		CHECK(services_equal(c, back), "%s: services and run_once survive", h->name);
		config_free(back);
		back = NULL;
		free(text);
	}

	/* The effective config reloads to the same thing: print(load(print(c))) == print(c). */
	text = print_to_string(c, NULL, &len);
	r = config_load_mem(text, len, path, &back);
	CHECK(r == 0 && back != NULL, "config_print output loads again");
	if (r == 0) {
		text2 = print_to_string(back, NULL, &len2);
		CHECK(len == len2 && memcmp(text, text2, len) == 0, "printing is a fixed point");
		CHECK(services_equal(c, back), "services equal after reload");
		free(text2);
		r = config_load_mem(text, len, path, &again);
		CHECK(r == 0, "loads twice");
		config_free(again);
	} else
		printf("%s", text);
	free(text);
	free(path);
	config_free(back);
	config_free(c);
}

/* Whether FIELD holds the same value in A and B, structs of its table. */
static int
field_equal(const struct config_field *f, const void *a, const void *b)
{
	switch (f->type) {
	case CONFIG_FIELD_STRING:
		return str_equal(*CONFIG_FIELD_AT_CONST(a, f, char *),
		    *CONFIG_FIELD_AT_CONST(b, f, char *));
	case CONFIG_FIELD_UNSIGNED:
	case CONFIG_FIELD_ENUM:
		return *CONFIG_FIELD_AT_CONST(a, f, unsigned) == *CONFIG_FIELD_AT_CONST(b, f, unsigned);
	case CONFIG_FIELD_INT:
	case CONFIG_FIELD_BOOL:
		return *CONFIG_FIELD_AT_CONST(a, f, int) == *CONFIG_FIELD_AT_CONST(b, f, int);
	case CONFIG_FIELD_UINT64:
		return *CONFIG_FIELD_AT_CONST(a, f, uint64_t) == *CONFIG_FIELD_AT_CONST(b, f, uint64_t);
	case CONFIG_FIELD_GLOBS:
	case CONFIG_FIELD_NAMES:
	case CONFIG_FIELD_ARGV:
	case CONFIG_FIELD_STRINGS:
		return strv_equal(*CONFIG_FIELD_AT_CONST(a, f, char **),
		    *CONFIG_FIELD_AT_CONST(b, f, char **));
	case CONFIG_FIELD_MAPPING:
		for (const struct config_field *g = f->sub; g->name != NULL; g++)
			if (!field_equal(g, CONFIG_FIELD_AT_CONST(a, f, char),
			    CONFIG_FIELD_AT_CONST(b, f, char)))
				return 0;
		return 1;
	}
	return 0;
}

/*
 * Writes a YAML value for FIELD that is not its default into BUF; returns 0,
 * or -1 for a type this test does not know yet (extend it with the type).
 */
static int
field_sample(const struct config_field *f, char *buf, size_t size)
{
	uint64_t v;

	switch (f->type) {
	case CONFIG_FIELD_STRING:
		/* Absolute, so it holds for target directories of a host with an address. */
		snprintf(buf, size, "/v/%s", f->name);
		return 0;
	case CONFIG_FIELD_UNSIGNED:
	case CONFIG_FIELD_INT:
		v = f->def != f->max ? f->max : f->min;
		snprintf(buf, size, "%llu", (unsigned long long)v);
		return 0;
	case CONFIG_FIELD_UINT64:
		snprintf(buf, size, "%llu", (unsigned long long)f->def + 12345);
		return 0;
	case CONFIG_FIELD_BOOL:
		snprintf(buf, size, "%s", f->def ? "false" : "true");
		return 0;
	case CONFIG_FIELD_GLOBS:
		snprintf(buf, size, "[a/**, b/*.omod]");
		return 0;
	case CONFIG_FIELD_NAMES:
		snprintf(buf, size, "[g1, g2]");
		return 0;
	case CONFIG_FIELD_ARGV:
		snprintf(buf, size, "[program, an arg]");
		return 0;
	case CONFIG_FIELD_STRINGS: {
		/* The first kind of string the row's check takes. */
		static const char *const candidates[] = {
			"https://mirror.example.org/dist",
			"3f2a0000000000000000000000000000000000000000000000000000000000aa",
			"plain",
		};

		for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
			if (f->valid == NULL || f->valid(candidates[i]) == NULL) {
				snprintf(buf, size, "[%s]", candidates[i]);
				return 0;
			}
		}
		break;
	}
	case CONFIG_FIELD_ENUM:
		snprintf(buf, size, "%s", f->names[f->def == 0 ? 1 : 0]);
		return 0;
	case CONFIG_FIELD_MAPPING:
		break;
	}
	return -1;
}

static struct config *
load_text(const char *text, const char *name)
{
	struct config *c = NULL;

	if (config_load_mem(text, strlen(text), name, &c) != 0)
		printf("# %s did not load:\n%s", name, text);
	return c;
}

/*
 * Every row of the host table: a host setting each key to a value that is
 * not its default keeps them all through config_print, and through
 * config_print_host exactly the keys marked CONFIG_FIELD_RECEIVER (the rest
 * are their defaults at the receiver). A new row cannot miss a printer.
 */
static void
test_host_fields(void)
{
	const struct config_field *f;
	struct config *c = NULL, *base = NULL, *printed = NULL, *shipped = NULL;
	const struct config_host *h, *b, *p, *s;
	size_t cap = 8192, used, len;
	char *yaml = xmalloc(cap), *text = NULL, value[128];
	int known = 1;

	used = (size_t)snprintf(yaml, cap, D "hosts:\n  h:\n");
	for (f = config_host_fields; f->name != NULL; f++) {
		if (field_sample(f, value, sizeof(value)) != 0) {
			known = 0;
			CHECK(0, "host key %s: the test knows its type", f->name);
			continue;
		}
		used += (size_t)snprintf(yaml + used, cap - used, "    %s: %s\n", f->name, value);
	}
	CHECK(known && used < cap, "a host setting every one of the host keys");
	base = load_text(D "hosts:\n  h: {path: /base/dist}\n", "base.yml");
	c = load_text(yaml, "all-keys.yml");
	CHECK(c != NULL && base != NULL && c->nhosts == 1, "it loads");
	if (c == NULL || base == NULL)
		goto out;
	h = &c->hosts[0];
	b = &base->hosts[0];
	text = print_to_string(c, NULL, &len);
	printed = load_text(text, "printed.yml");
	free(text);
	text = print_to_string(c, h, &len);
	shipped = load_text(text, "receiver.yml");
	CHECK(printed != NULL && printed->nhosts == 1 && shipped != NULL && shipped->nhosts == 1,
	    "both printed documents load again");
	if (printed == NULL || shipped == NULL || printed->nhosts != 1 || shipped->nhosts != 1)
		goto out;
	p = &printed->hosts[0];
	s = &shipped->hosts[0];
	for (f = config_host_fields; f->name != NULL; f++) {
		int receiver = (f->flags & CONFIG_FIELD_RECEIVER) != 0;

		CHECK(!field_equal(f, h, b), "%s: the sample is not the default", f->name);
		CHECK(field_equal(f, h, p), "%s: survives config_print", f->name);
		CHECK(field_equal(f, h, s) == receiver && (receiver || field_equal(f, b, s)),
		    "%s: %s by config_print_host", f->name, receiver ? "sent" : "not sent");
	}
 out:
	free(text);
	free(yaml);
	config_free(base);
	config_free(c);
	config_free(printed);
	config_free(shipped);
}

/* The man page's CONFIGURATION section names every key of the tables. */
static void
test_man_page(void)
{
	static const struct { const char *section; const struct config_field *fields; } tables[] = {
		{ "distribution", config_distribution_fields },
		{ "defaults", config_defaults_fields },
		{ "hosts", config_host_fields },
		{ "services", config_service_fields },
	};
	char *path = xasprintf("%s/doc/distsync.1", srcdir);
	char *page = xcalloc(1, 256 * 1024), *section, *end;
	FILE *fp = fopen(path, "r");
	size_t n = 0;

	free(path);
	if (fp != NULL) {
		n = fread(page, 1, 256 * 1024 - 1, fp);
		fclose(fp);
	}
	section = strstr(page, ".Sh CONFIGURATION");
	CHECK(n > 0 && section != NULL, "doc/distsync.1 has a CONFIGURATION section");
	if (section == NULL) {
		free(page);
		return;
	}
	if ((end = strstr(section + 1, ".Sh ")) != NULL)
		*end = '\0';
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
		const char *missing = NULL;

		for (const struct config_field *f = tables[t].fields; f->name != NULL; f++) {
			const char *p = section;
			size_t len = strlen(f->name);
			int found = 0;

			/* A whole word: "group" must not be found inside "groups". */
			while (!found && (p = strstr(p, f->name)) != NULL) {
				found = (p == section || strchr(" (,\n", p[-1]) != NULL) &&
				    strchr(" ),:\n", p[len]) != NULL;
				p += len;
			}
			if (!found && missing == NULL)
				missing = f->name;
		}
		CHECK(missing == NULL, "the man page lists the %s keys%s%s", tables[t].section,
		    missing ? "; missing: " : "", missing ? missing : "");
	}
	free(page);
}

static void
test_bwlimit(void)
{
	static const struct { const char *text; int ok; uint64_t want; } table[] = {
		{ "0", 1, 0 }, { "250000", 1, 250000 }, { "256k", 1, 262144 },
		{ "256K", 1, 262144 }, { "2M", 1, 2097152 }, { "1g", 1, 1073741824 },
		{ "256kbit", 1, 32000 }, { "2Mbit", 1, 250000 }, { "1GBIT", 1, 125000000 },
		{ "1kbit", 1, 125 }, { "", 0, 0 }, { "k", 0, 0 }, { "-1", 0, 0 },
		{ "1.5M", 0, 0 }, { "10 k", 0, 0 }, { "10kb", 0, 0 }, { "10T", 0, 0 },
		{ "99999999999999999999", 0, 0 }, { "99999999999999G", 0, 0 },
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		uint64_t v = 7;
		const char *why = NULL;
		int r = config_parse_bwlimit(table[i].text, &v, &why);

		CHECK((r == 0) == table[i].ok && (!table[i].ok || v == table[i].want) &&
		    (table[i].ok || why != NULL), "bwlimit '%s' -> %s %llu", table[i].text,
		    table[i].ok ? "ok" : "refused", (unsigned long long)table[i].want);
	}
}

/*
 * The receiver parses the sender's host document: flipped bytes and every
 * truncation of a valid file must load or fail cleanly, never crash or leak.
 */
static void
test_mutations(void)
{
	static const char replacements[] = { ':', '[', '{', '\n', '&', '*', '-', '"', '\t', 0x01 };
	char *path = xasprintf("%s/tests/unit/configs/good-full.yml", srcdir);
	char *data = NULL, *copy;
	FILE *fp = fopen(path, "rb");
	size_t len = 0, runs = 0, bad_codes = 0, loaded = 0;
	int saved, devnull;

	free(path);
	CHECK(fp != NULL, "read good-full.yml");
	if (fp == NULL)
		return;
	data = xmalloc(CONFIG_MAX_SIZE);
	len = fread(data, 1, CONFIG_MAX_SIZE, fp);
	fclose(fp);
	copy = xmalloc(len + 1);
	fflush(stderr);
	saved = dup(2);
	devnull = open("/dev/null", O_WRONLY);
	dup2(devnull, 2);
	close(devnull);
	for (size_t i = 0; i < len; i++) {
		/* Two mutations per byte keep the pass short under valgrind. */
		for (size_t k = 0; k < 2; k++) {
			struct config *c = NULL;
			int r;

			memcpy(copy, data, len);
			if (k == 1)
				copy[i] ^= 0x20;
			else
				copy[i] = replacements[i % sizeof(replacements)];
			r = config_load_mem(copy, len, "mutated.yml", &c);
			runs++;
			loaded += r == 0;
			bad_codes += !(r == 0 ? c != NULL : r == DS_ERR_CONFIG && c == NULL);
			config_free(c);
		}
		{
			struct config *c = NULL;
			int r = config_load_mem(data, i, "truncated.yml", &c);

			runs++;
			loaded += r == 0;
			bad_codes += !(r == 0 ? c != NULL : r == DS_ERR_CONFIG && c == NULL);
			config_free(c);
		}
	}
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	CHECK(runs > 1000 && bad_codes == 0, "%zu mutated or truncated inputs: %zu loaded, "
	    "the rest refused with DS_ERR_CONFIG", runs, loaded);
	free(copy);
	free(data);
}

/* Every shipped sample passes validation. */
static void
test_samples(void)
{
	char *pattern = xasprintf("%s/config-samples/*.yml", srcdir);
	glob_t g;

	CHECK(glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc >= 3, "found %zu samples",
	    (size_t)g.gl_pathc);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		struct config *c = NULL, *back = NULL;
		char *err, *text;
		size_t len;
		int r = load_captured(g.gl_pathv[i], &c, &err);

		CHECK(r == 0 && c != NULL, "%s passes: %s", strrchr(g.gl_pathv[i], '/') + 1, err);
		free(err);
		if (r != 0)
			continue;
		for (size_t k = 0; k < c->nhosts; k++) {
			text = print_to_string(c, &c->hosts[k], &len);
			r = config_load_mem(text, len, "receiver", &back);
			CHECK(r == 0 && services_equal(c, back), "%s: host %s round trip",
			    strrchr(g.gl_pathv[i], '/') + 1, c->hosts[k].name);
			config_free(back);
			back = NULL;
			free(text);
		}
		config_free(c);
	}
	globfree(&g);
	free(pattern);
}

/* A site's config for pull: the site: section, its checks and a round trip. */
static void
test_site(void)
{
	static const char yaml[] = UP "site:\n  upstream: up\n  repository: /srv/d.yml\n"
	    "  host: kirehe\n";
	struct config *c = NULL, *c2 = NULL;
	char *err = NULL, *data = NULL;
	size_t size = 0;
	FILE *fp;
	int r;

	CHECK(tap_write_file("distsync.yml", yaml, strlen(yaml)) == 0, "write site config");
	r = load_captured("distsync.yml", &c, &err);
	CHECK(r == 0 && c != NULL, "site config loads: %s", err ? err : "");
	free(err);
	if (c == NULL)
		return;
	CHECK(str_equal(c->site.upstream, "up") && str_equal(c->site.repository, "/srv/d.yml") &&
	    str_equal(c->site.host, "kirehe"), "site fields");
	fp = open_memstream(&data, &size);
	config_print(c, fp);
	fclose(fp);
	r = config_load_mem(data, size, "printed.yml", &c2);
	CHECK(r == 0 && c2 != NULL && str_equal(c2->site.upstream, "up") &&
	    str_equal(c2->site.repository, "/srv/d.yml") && str_equal(c2->site.host, "kirehe"),
	    "site survives config_print");
	config_free(c2);
	config_free(c);
	free(data);
	c = NULL;
	tap_write_file("distsync.yml", UP, strlen(UP));
	r = load_captured("distsync.yml", &c, &err);
	CHECK(r == 0 && c != NULL && c->site.upstream == NULL && c->site.host == NULL,
	    "no site: leaves the section empty");
	config_free(c);
	free(err);
}

int
main(void)
{
	const char *top = getenv("top_srcdir");

	char cwd[4096];

	/* Each test runs in a temp dir: make the source dir absolute first. */
	if (top == NULL)
		top = TOP_SRCDIR;
	if (top[0] != '/' && getcwd(cwd, sizeof(cwd)) != NULL)
		srcdir = xasprintf("%s/%s", cwd, top);
	else
		srcdir = xstrdup(top);
	tap_run("config-bad", test_bad);
	tap_run("config-bad-files", test_bad_files);
	tap_run("config-good", test_good);
	tap_run("config-round-trip", test_round_trip);
	tap_run("config-host-fields", test_host_fields);
	tap_run("config-man-page", test_man_page);
	tap_run("config-bwlimit", test_bwlimit);
	tap_run("config-samples", test_samples);
	tap_run("config-mutations", test_mutations);
	tap_run("config-site", test_site);
	free(srcdir);
	return tap_done();
}
