#include "autoconf.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "config/config.h"
#include "repo/manifest.h"
#include "site/journal.h"
#include "site/restart.h"
#include "site/runonce.h"
#include "tap.h"

#define SV(...)	((char *[]){ __VA_ARGS__, NULL })

/*
 * The shape of a site: gateway first, backend after it, a worker after the
 * backend, frontend static files that only reload for a few paths.
 * Listed out of order on purpose, to see after: at work.
 */
static char *worker_paths[] = { "openmrs_modules/**", "worker/**", NULL };
static char *worker_command[] = { "sh", "-c", "echo worker >> restarts.log", NULL };
static char *worker_after[] = { "backend", NULL };
static char *backend_paths[] = { "openmrs_core/**", "openmrs_modules/**", "openmrs_config/**", NULL };
static char *backend_command[] = { "sh", "-c", "echo backend >> restarts.log", NULL };
static char *backend_after[] = { "gateway", NULL };
static char *frontend_paths[] = { "frontend/**", NULL };
static char *frontend_command[] = { "sh", "-c", "echo frontend >> restarts.log", NULL };
static char *frontend_reload[] = { "frontend/index.html", "frontend/service-worker.js", NULL };
static char *gateway_paths[] = { "gateway/**", "openmrs_core/**", NULL };
static char *gateway_command[] = { "sh", "-c", "echo gateway >> restarts.log", NULL };

/*
 * The shape of a site: gateway first, backend after it, a worker after the
 * backend, frontend static files that only reload for a few paths.
 * Listed out of order on purpose, to see after: at work.
 */
static void
demo_config(struct config *c, struct config_service *s)
{
	memset(c, 0, sizeof(*c));
	memset(s, 0, 4 * sizeof(*s));
	s[0].name = "worker";
	s[0].paths = worker_paths;
	s[0].restart = CONFIG_RESTART_COMMAND;
	s[0].command = worker_command;
	s[0].after = worker_after;
	s[0].line = 1;
	s[1].name = "backend";
	s[1].paths = backend_paths;
	s[1].restart = CONFIG_RESTART_COMMAND;
	s[1].command = backend_command;
	s[1].after = backend_after;
	s[1].line = 2;
	s[2].name = "frontend";
	s[2].paths = frontend_paths;
	s[2].restart = CONFIG_RESTART_NONE;
	s[2].command = frontend_command;
	s[2].reload_on = frontend_reload;
	s[2].line = 3;
	s[3].name = "gateway";
	s[3].paths = gateway_paths;
	s[3].restart = CONFIG_RESTART_COMMAND;
	s[3].command = gateway_command;
	s[3].line = 4;
	c->file = "distsync.yml";
	c->services = s;
	c->nservices = 4;
}

static char *
describe(const struct restart_plan *plan)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	restart_describe(plan, NULL, fp);
	fclose(fp);
	return buf;
}

static void
test_select(void)
{
	static const struct {
		const char *changed[4];
		const char *want;
	} table[] = {
		{ { NULL }, "no service restarts\n" },
		{ { "openmrs_modules/a-1.0.omod", NULL },
		  "restart backend: openmrs_modules/a-1.0.omod changed\n"
		  "restart worker: openmrs_modules/a-1.0.omod changed\n" },
		{ { "openmrs_core/openmrs.war", NULL },
		  "restart gateway: openmrs_core/openmrs.war changed\n"
		  "restart backend: openmrs_core/openmrs.war changed\n" },
		{ { "frontend/main.js", "frontend/x/y.css", NULL },
		  "not restarted frontend (restart: none): frontend/main.js changed\n"
		  "no service restarts\n" },
		{ { "frontend/a.js", "frontend/index.html", NULL },
		  "reload frontend (reload_on): frontend/index.html changed\n" },
		{ { "README", "other/x", NULL }, "no service restarts\n" },
		/* The first changed path (in the caller's order) is the reason. */
		{ { "openmrs_config/b.xml", "openmrs_modules/a.omod", "worker/conf", NULL },
		  "restart backend: openmrs_config/b.xml changed\n"
		  "restart worker: openmrs_modules/a.omod changed\n" },
		{ { "gateway/nginx.conf", "frontend/service-worker.js", NULL },
		  "reload frontend (reload_on): frontend/service-worker.js changed\n"
		  "restart gateway: gateway/nginx.conf changed\n" },
		/* Globs stay inside their directory. */
		{ { "openmrs_modulesX/a.omod", "frontendx/index.html", NULL }, "no service restarts\n" },
	};
	struct config c;
	struct config_service s[4];

	demo_config(&c, s);
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		struct restart_plan *plan = NULL;
		size_t n = 0;
		char *text;
		int r;

		while (table[i].changed[n] != NULL)
			n++;
		r = restart_select(&c, (char *const *)table[i].changed, n, &plan);
		text = r == 0 ? describe(plan) : xstrdup("(error)");
		CHECK(r == 0 && strcmp(text, table[i].want) == 0, "plan for %s%s",
		    n ? table[i].changed[0] : "nothing", n > 1 ? ", ..." : "");
		if (strcmp(text, table[i].want) != 0)
			printf("# got:\n%s", text);
		free(text);
		restart_plan_free(plan);
	}
	restart_plan_free(NULL);
}

static void
test_select_bad(void)
{
	struct config c;
	struct config_service s[4];
	struct restart_plan *plan = (struct restart_plan *)&c;
	char *changed[] = { "openmrs_core/x.war" };

	demo_config(&c, s);
	s[3].after = SV("worker");	/* gateway after worker after backend after gateway */
	CHECK(restart_select(&c, changed, 1, &plan) == DS_ERR_CONFIG && plan == NULL,
	    "an after: cycle is a config error");
	s[3].after = SV("nosuch");
	plan = (struct restart_plan *)&c;
	CHECK(restart_select(&c, changed, 1, &plan) == DS_ERR_CONFIG && plan == NULL,
	    "an after: naming no service is a config error");
	s[3].after = SV("gateway");
	CHECK(restart_select(&c, changed, 1, &plan) == DS_ERR_CONFIG, "after: itself is a cycle");
	s[3].after = NULL;
	c.nservices = 0;
	CHECK(restart_select(&c, changed, 1, &plan) == 0 && plan->count == 0,
	    "no services, no restarts");
	restart_plan_free(plan);
}

static void
test_select_manifests(void)
{
	struct config c;
	struct config_service s[4];
	struct manifest *old = manifest_new(), *new = manifest_new();
	struct restart_plan *plan = NULL;
	struct manifest_entry e;
	char *text, *names;

	demo_config(&c, s);
	memset(&e, 0, sizeof(e));
	e.type = MANIFEST_FILE;
	e.mode = 0644;
	e.path = "frontend/main.js";
	hash_bytes("1", 1, e.hash);
	manifest_add(old, &e);
	manifest_add(new, &e);
	e.path = "openmrs_modules/a-1.0.omod";
	manifest_add(old, &e);
	e.path = "openmrs_modules/a-1.1.omod";
	manifest_add(new, &e);
	e.path = "gateway/nginx.conf";
	manifest_add(old, &e);
	e.mode = 0600;		/* only the mode changes */
	manifest_add(new, &e);
	CHECK(manifest_sort(old) == 0 && manifest_sort(new) == 0, "manifests built");

	CHECK(restart_select_manifests(&c, old, new, &plan) == 0, "select from two manifests");
	text = describe(plan);
	CHECK(strcmp(text, "restart gateway: gateway/nginx.conf changed\n"
	    "restart backend: openmrs_modules/a-1.0.omod changed\n"
	    "restart worker: openmrs_modules/a-1.0.omod changed\n") == 0,
	    "a mode change and a deletion count, unchanged files do not");
	if (plan == NULL || strstr(text, "worker") == NULL)
		printf("# got:\n%s", text);
	names = restart_plan_names(plan);
	CHECK(names != NULL && strcmp(names, "gateway,backend,worker") == 0, "names: %s",
	    names ? names : "(null)");
	free(names);
	free(text);
	restart_plan_free(plan);

	CHECK(restart_select_manifests(&c, new, new, &plan) == 0 && plan->count == 0 &&
	    restart_plan_names(plan) == NULL, "the same manifest twice: nothing");
	restart_plan_free(plan);
	CHECK(restart_select_manifests(&c, NULL, new, &plan) == 0 && plan->nrestart == 3,
	    "first apply: everything matched restarts");
	restart_plan_free(plan);
	manifest_free(old);
	manifest_free(new);
}

static char *
slurp(const char *file)
{
	char buf[4096];
	FILE *fp = fopen(file, "r");
	size_t n;

	if (fp == NULL)
		return xstrdup("");
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return xstrdup(buf);
}

static void
test_run(void)
{
	struct config c;
	struct config_service s[4];
	struct config_host host;
	struct restart_plan *plan = NULL;
	struct restart_report report;
	char *changed[] = { "openmrs_core/openmrs.war", "frontend/index.html" };
	char *log;
	int r;

	demo_config(&c, s);
	memset(&host, 0, sizeof(host));
	host.name = "site";
	host.path = tap_dir;
	for (int i = 0; i < 4; i++)
		s[i].health.timeout = 5;
	s[1].health.command = SV("test", "-f", "restarts.log");

	/* All succeed, in order: frontend (reload_on), gateway, backend. */
	r = restart_select(&c, changed, 2, &plan);
	restart_report_init(&report);
	CHECK(r == 0 && restart_run(&c, &host, plan, &report) == 0, "restart_run succeeds");
	log = slurp("restarts.log");
	CHECK(strcmp(log, "frontend\ngateway\nbackend\n") == 0, "ran in after: order");
	free(log);
	CHECK(report.count == 3 && report.failed == NULL && report.items[2].status == RESTART_OK &&
	    strcmp(report.items[2].why, "openmrs_core/openmrs.war") == 0,
	    "the report has each service and its reason");
	{
		char *text = NULL;
		size_t len = 0;
		FILE *fp = open_memstream(&text, &len);

		restart_report_print(&report, "", fp);
		fclose(fp);
		CHECK(report.items[0].reload && strstr(text, "frontend: reloaded, healthy "
		    "(frontend/index.html)") != NULL,
		    "a restart: none service triggered by reload_on is reported reloaded");
		CHECK(strstr(text, "gateway: restarted, healthy") != NULL && !report.items[1].reload,
		    "a restarted service is reported restarted");
		free(text);
	}
	restart_report_release(&report);

	/* Health fails for gateway: it is named, and backend is not run. */
	unlink("restarts.log");
	s[3].health.timeout = 2;
	s[3].health.command = SV("sh", "-c", "echo gateway is sick; exit 1");
	restart_report_init(&report);
	r = restart_run(&c, &host, plan, &report);
	log = slurp("restarts.log");
	CHECK(r == DS_ERR_HEALTH, "a failing health check fails the run (%d)", r);
	CHECK(report.failed != NULL && strcmp(report.failed, "gateway") == 0 &&
	    report.failed_output != NULL && strstr(report.failed_output, "gateway is sick") != NULL,
	    "the report names gateway and its health output");
	CHECK(report.count == 3 && report.items[1].status == RESTART_UNHEALTHY &&
	    report.items[2].status == RESTART_NOT_RUN, "later services are reported as not run");
	CHECK(strcmp(log, "frontend\ngateway\n") == 0, "backend did not restart");
	CHECK(report.items[1].elapsed_ms >= 1900, "the check was retried until its timeout (%lu ms)",
	    report.items[1].elapsed_ms);
	free(log);
	restart_report_release(&report);

	/* The restart action itself fails. */
	s[3].health.command = NULL;
	s[3].command = SV("sh", "-c", "echo cannot restart; exit 4");
	restart_report_init(&report);
	r = restart_run(&c, &host, plan, &report);
	CHECK(r == DS_ERR_CHILD && report.failed && strcmp(report.failed, "gateway") == 0 &&
	    report.items[1].status == RESTART_FAILED &&
	    strstr(report.failed_output, "cannot restart") != NULL &&
	    strstr(report.failed_output, "exit 4") != NULL,
	    "a failing restart command is reported with its output");
#define FIRST_LINE "sh -c 'echo cannot restart; exit 4': command failed (exit 4): cannot restart\n"
	CHECK(report.failed_output != NULL &&
	    strncmp(report.failed_output, FIRST_LINE, strlen(FIRST_LINE)) == 0,
	    "its first line says the command, its exit and its last word: %s",
	    report.failed_output ? report.failed_output : "(none)");
	{
		char *buf = NULL;
		size_t len = 0;
		FILE *fp = open_memstream(&buf, &len);
		restart_report_print(&report, "site: ", fp);
		fclose(fp);
		CHECK(strstr(buf, "site: gateway: failed (openmrs_core/openmrs.war)") != NULL &&
		    strstr(buf, "site:   | cannot restart") != NULL &&
		    strstr(buf, "site: backend: not run") != NULL, "report printed");
		free(buf);
	}
	restart_report_release(&report);

	/* compose without a compose directory is a configuration error. */
	s[3].command = NULL;
	s[3].restart = CONFIG_RESTART_COMPOSE;
	restart_report_init(&report);
	r = restart_run(&c, &host, plan, &report);
	CHECK(r == DS_ERR_CONFIG && report.failed && strcmp(report.failed, "gateway") == 0,
	    "compose on a host without a compose directory: %d", r);
	restart_report_release(&report);
	restart_plan_free(plan);
}

static void
manifest_entry_set(struct manifest_entry *e, const char *path, char type, const char *content)
{
	memset(e, 0, sizeof(*e));
	e->path = (char *)path;
	e->type = type;
	e->mode = type == MANIFEST_DIR ? 0755 : 0644;
	if (content != NULL) {
		e->size = strlen(content);
		hash_bytes(content, e->size, e->hash);
	}
}

static void
test_run_once(void)
{
	struct config c;
	struct config_run_once ro[2];
	struct config_host host;
	struct manifest m;
	struct manifest_entry e[5];
	struct restart_report report;
	char hex1[65], hex2[65], *log;
	int r;

	memset(&c, 0, sizeof(c));
	memset(ro, 0, sizeof(ro));
	ro[0].paths = SV("trusted_sql/*.sql");
	ro[0].command = SV("sh", "-c", "echo \"sql $DISTSYNC_RUN_ONCE_HASH\" >> \"$DISTSYNC_TARGET/../hooks.log\"");
	ro[0].line = 7;
	ro[1].paths = SV("nothing/**");
	ro[1].command = SV("sh", "-c", "echo never >> ../hooks.log");
	/* These hooks run once per set (each: set); per-file runs are test_run_once_each_file's. */
	ro[0].each = ro[1].each = CONFIG_EACH_SET;
	c.file = "distsync.yml";
	c.run_once = ro;
	c.nrun_once = 2;
	memset(&host, 0, sizeof(host));
	host.name = "site";
	host.path = xasprintf("%s/target", tap_dir);
	host.state = xasprintf("%s/state", tap_dir);
	if (mkdir("target", 0755) != 0)
		CHECK(0, "mkdir target");

	manifest_entry_set(&e[0], "openmrs_core/a.war", MANIFEST_FILE, "war");
	manifest_entry_set(&e[1], "trusted_sql", MANIFEST_DIR, NULL);
	manifest_entry_set(&e[2], "trusted_sql/1.sql", MANIFEST_FILE, "create table a;");
	manifest_entry_set(&e[3], "trusted_sql/2.sql", MANIFEST_FILE, "insert into a;");
	manifest_entry_set(&e[4], "trusted_sql/sub/3.sql", MANIFEST_FILE, "not matched");
	memset(&m, 0, sizeof(m));
	m.entries = e;
	m.count = 5;

	CHECK(runonce_set_hash(&c, 0, &m, hex1) == 1 && strlen(hex1) == 64,
	    "hash of the matched files: %s", hex1);
	CHECK(runonce_set_hash(&c, 1, &m, hex2) == 0 && hex2[0] == '\0',
	    "a hook matching nothing has no hash");

	restart_report_init(&report);
	r = runonce_run_manifest(&c, &host, &m, NULL, &report);
	CHECK(r == 0 && report.count == 1 && report.items[0].status == RESTART_OK,
	    "first run: the hook runs");
	restart_report_release(&report);
	restart_report_init(&report);
	r = runonce_run_manifest(&c, &host, &m, NULL, &report);
	CHECK(r == 0 && report.count == 1 && report.items[0].status == RESTART_SKIPPED,
	    "same content again: skipped");
	restart_report_release(&report);
	log = slurp("hooks.log");
	{
		char *want = xasprintf("sql %s\n", hex1);
		CHECK(strcmp(log, want) == 0, "ran once, with its hash in the environment");
		free(want);
	}
	free(log);
	log = slurp("state/run_once.done");
	CHECK(strncmp(log, hex1, 64) == 0 && strcmp(log + 64, " 0\n") == 0,
	    "recorded in the state dir");
	free(log);

	/* A file outside the glob changes: same hash. One inside: runs again. */
	manifest_entry_set(&e[4], "trusted_sql/sub/3.sql", MANIFEST_FILE, "changed, unmatched");
	CHECK(runonce_set_hash(&c, 0, &m, hex2) == 1 && strcmp(hex1, hex2) == 0,
	    "unmatched files do not change the hash");
	manifest_entry_set(&e[3], "trusted_sql/2.sql", MANIFEST_FILE, "insert into a values (1);");
	CHECK(runonce_set_hash(&c, 0, &m, hex2) == 1 && strcmp(hex1, hex2) != 0,
	    "a matched file's content changes the hash");
	/* A rename with the same content is new content too. */
	manifest_entry_set(&e[2], "trusted_sql/0.sql", MANIFEST_FILE, "create table a;");
	CHECK(runonce_set_hash(&c, 0, &m, hex1) == 1 && strcmp(hex1, hex2) != 0,
	    "a path change changes the hash");

	/* A failing hook is reported, not recorded, and runs again next time. */
	ro[0].command = SV("sh", "-c", "echo sql failed; exit 2");
	restart_report_init(&report);
	r = runonce_run_manifest(&c, &host, &m, NULL, &report);
	CHECK(r == DS_ERR_CHILD && report.failed != NULL &&
	    strcmp(report.failed, "run_once[0]") == 0 &&
	    strstr(report.failed_output, "sql failed") != NULL, "a failing hook fails the run");
	restart_report_release(&report);
	ro[0].command = SV("sh", "-c", "echo retried >> \"$DISTSYNC_TARGET/../hooks.log\"");
	restart_report_init(&report);
	r = runonce_run_manifest(&c, &host, &m, NULL, &report);
	CHECK(r == 0 && report.items[0].status == RESTART_OK, "after a failure it runs again");
	restart_report_release(&report);

	/* No state directory at all. */
	free(host.state);
	host.state = NULL;
	restart_report_init(&report);
	CHECK(runonce_run_manifest(&c, &host, &m, NULL, &report) == DS_ERR_CONFIG,
	    "run_once without a state dir is a config error");
	restart_report_release(&report);
	free(host.path);
}

/* Writes CONTENT to FILE (made with its directory). */
static void
put_file(const char *file, const char *content)
{
	FILE *fp;
	char *dir = xstrdup(file), *slash = strrchr(dir, '/');

	if (slash != NULL) {
		*slash = '\0';
		mkdir(dir, 0755);
	}
	if ((fp = fopen(file, "w")) != NULL) {
		fputs(content, fp);
		fclose(fp);
	}
	free(dir);
}

/* each: file: every new or changed file once, in path order, its content on stdin. */
static void
test_run_once_each_file(void)
{
	struct config c;
	struct config_run_once ro[2];
	struct config_host host;
	struct manifest m;
	struct manifest_entry e[4];
	struct restart_report report;
	struct journal j;
	char *log;
	int r;

	memset(&c, 0, sizeof(c));
	memset(ro, 0, sizeof(ro));
	ro[0].paths = SV("trusted_sql/*.sql");
	ro[0].command = SV("sh", "-c", "echo \"$DISTSYNC_RUN_ONCE_FILE: $(cat)\" >> ../sql.log");
	ro[0].input = CONFIG_INPUT_STDIN;
	ro[0].line = 3;
	/* Another hook, known by its own paths: it runs the files again. */
	ro[1].paths = SV("trusted_sql/0*.sql");
	ro[1].command = SV("sh", "-c", "echo \"arg $1\" >> ../args.log", "sh");
	ro[1].input = CONFIG_INPUT_ARGUMENT;
	ro[1].line = 9;
	c.file = "distsync.yml";
	c.run_once = ro;
	c.nrun_once = 1;
	memset(&host, 0, sizeof(host));
	host.name = "site";
	host.path = xasprintf("%s/target", tap_dir);
	host.state = xasprintf("%s/state", tap_dir);
	mkdir("target", 0755);
	put_file("target/trusted_sql/001.sql", "create table a;");
	put_file("target/trusted_sql/002.sql", "insert into a;");
	put_file("target/trusted_sql/003.sql", "alter table a;");
	manifest_entry_set(&e[0], "trusted_sql", MANIFEST_DIR, NULL);
	manifest_entry_set(&e[1], "trusted_sql/001.sql", MANIFEST_FILE, "create table a;");
	manifest_entry_set(&e[2], "trusted_sql/002.sql", MANIFEST_FILE, "insert into a;");
	manifest_entry_set(&e[3], "trusted_sql/003.sql", MANIFEST_FILE, "alter table a;");
	memset(&m, 0, sizeof(m));
	m.entries = e;
	m.count = 3;

	/* What a tree owes: one F record per file, in path order. */
	memset(&j, 0, sizeof(j));
	CHECK(runonce_owed(&c, host.state, NULL, &m, 1, &j, NULL) == 0 && j.count == 2 &&
	    j.records[0].kind == JOURNAL_RUN_FILE && j.records[0].prep == 0 &&
	    strcmp(j.records[0].path, "trusted_sql/001.sql") == 0 &&
	    memcmp(j.records[0].hash, e[1].hash, HASH_LEN) == 0 &&
	    strcmp(j.records[1].path, "trusted_sql/002.sql") == 0,
	    "two new files owe two runs, in path order (%zu)", j.count);
	journal_release(&j);

	restart_report_init(&report);
	r = runonce_run_manifest(&c, &host, &m, NULL, &report);
	CHECK(r == 0 && report.count == 2 && report.items[0].status == RESTART_OK &&
	    strcmp(report.items[0].why, "trusted_sql/001.sql") == 0 &&
	    report.items[1].status == RESTART_OK, "each file ran");
	restart_report_release(&report);
	log = slurp("sql.log");
	CHECK(strcmp(log, "trusted_sql/001.sql: create table a;\n"
	    "trusted_sql/002.sql: insert into a;\n") == 0,
	    "once per file, in path order, the file on stdin and named in the environment "
	    "(%s)", log);
	free(log);

	restart_report_init(&report);
	r = runonce_run_manifest(&c, &host, &m, NULL, &report);
	CHECK(r == 0 && report.count == 2 && report.items[0].status == RESTART_SKIPPED &&
	    report.items[1].status == RESTART_SKIPPED, "the same files again: both skipped");
	restart_report_release(&report);

	/* A third file, and a changed one: only those run. */
	m.count = 4;
	put_file("target/trusted_sql/002.sql", "insert into a values (2);");
	manifest_entry_set(&e[2], "trusted_sql/002.sql", MANIFEST_FILE,
	    "insert into a values (2);");
	restart_report_init(&report);
	r = runonce_run_manifest(&c, &host, &m, NULL, &report);
	CHECK(r == 0, "new and changed files run");
	restart_report_release(&report);
	log = slurp("sql.log");
	CHECK(strcmp(log, "trusted_sql/001.sql: create table a;\n"
	    "trusted_sql/002.sql: insert into a;\n"
	    "trusted_sql/002.sql: insert into a values (2);\n"
	    "trusted_sql/003.sql: alter table a;\n") == 0,
	    "only the changed and the new file ran, in path order (%s)", log);
	free(log);

	/* input: argument: the absolute path as the last argument. */
	c.run_once = ro + 1;
	restart_report_init(&report);
	r = runonce_run_manifest(&c, &host, &m, NULL, &report);
	restart_report_release(&report);
	log = slurp("args.log");
	{
		char *want = xasprintf("arg %s/target/trusted_sql/001.sql\narg %s/target/"
		    "trusted_sql/002.sql\narg %s/target/trusted_sql/003.sql\n", tap_dir, tap_dir,
		    tap_dir);

		CHECK(r == 0 && strcmp(log, want) == 0, "input: argument appends the path (%s)",
		    log);
		free(want);
	}
	free(log);

	/* A failure names the file; the files before it are recorded, it runs again. */
	c.run_once = ro;
	ro[0].paths = SV("more/*.sql");
	ro[0].command = SV("sh", "-c", "grep -q bad || exit 0; echo \"syntax error\"; exit 1");
	put_file("target/more/a.sql", "good");
	put_file("target/more/b.sql", "bad");
	put_file("target/more/c.sql", "good too");
	manifest_entry_set(&e[0], "more/a.sql", MANIFEST_FILE, "good");
	manifest_entry_set(&e[1], "more/b.sql", MANIFEST_FILE, "bad");
	manifest_entry_set(&e[2], "more/c.sql", MANIFEST_FILE, "good too");
	m.count = 3;
	restart_report_init(&report);
	r = runonce_run_manifest(&c, &host, &m, NULL, &report);
	CHECK(r == DS_ERR_CHILD && report.failed != NULL &&
	    strcmp(report.failed, "run_once[0]") == 0 && report.failed_output != NULL &&
	    strstr(report.failed_output, "more/b.sql") != NULL &&
	    strstr(report.failed_output, "syntax error") != NULL && report.count == 2,
	    "a failing file stops the runs, named with its output");
	restart_report_release(&report);
	ro[0].command = SV("sh", "-c", "echo \"$DISTSYNC_RUN_ONCE_FILE\" >> ../more.log");
	restart_report_init(&report);
	r = runonce_run_manifest(&c, &host, &m, NULL, &report);
	restart_report_release(&report);
	log = slurp("more.log");
	CHECK(r == 0 && strcmp(log, "more/b.sql\nmore/c.sql\n") == 0,
	    "after the fix only the failed file and those after it run (%s)", log);
	free(log);
	free(host.path);
	free(host.state);
}

/* A hook that ran once per set, now each: file: the files of the state replaced ran. */
static void
test_run_once_migrate(void)
{
	struct config c;
	struct config_run_once ro;
	struct manifest from, to;
	struct manifest_entry e[3];
	struct journal j;
	char hex[HASH_HEX_LEN + 1], *line, *log;
	FILE *fp;

	memset(&c, 0, sizeof(c));
	memset(&ro, 0, sizeof(ro));
	ro.paths = SV("trusted_sql/*.sql");
	ro.command = SV("true");
	ro.each = CONFIG_EACH_SET;
	c.run_once = &ro;
	c.nrun_once = 1;
	manifest_entry_set(&e[0], "trusted_sql/001.sql", MANIFEST_FILE, "a");
	manifest_entry_set(&e[1], "trusted_sql/002.sql", MANIFEST_FILE, "b");
	manifest_entry_set(&e[2], "trusted_sql/003.sql", MANIFEST_FILE, "c");
	memset(&from, 0, sizeof(from));
	from.entries = e;
	from.count = 2;
	to = from;
	to.count = 3;
	mkdir("state", 0755);
	runonce_set_hash(&c, 0, &from, hex);
	line = xasprintf("%s 0\n", hex);
	fp = fopen("state/run_once.done", "w");
	fputs(line, fp);
	fclose(fp);
	free(line);

	ro.each = CONFIG_EACH_FILE;
	memset(&j, 0, sizeof(j));
	CHECK(runonce_owed(&c, "state", &from, &to, 0, &j, NULL) == 0 && j.count == 1 &&
	    strcmp(j.records[0].path, "trusted_sql/003.sql") == 0,
	    "a dry look: only the file the old set did not cover is owed (%zu)", j.count);
	journal_release(&j);
	log = slurp("state/run_once.done");
	CHECK(strchr(log, '\n') == strrchr(log, '\n'), "a dry look records nothing");
	free(log);
	CHECK(runonce_owed(&c, "state", &from, &to, 1, &j, NULL) == 0 && j.count == 1,
	    "the apply owes the new file only");
	journal_release(&j);
	/* Once moved to per-file records, the next apply needs no old set. */
	CHECK(runonce_owed(&c, "state", NULL, &from, 1, &j, NULL) == 0 && j.count == 0,
	    "the covered files are recorded one by one");
	journal_release(&j);
}

/* A one-shot HTTP server in a child: answers each connection with ANSWER (NULL: silence). */
static pid_t
http_server(const char *answer, int count, int *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	pid_t pid;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(fd, 8) == -1 || getsockname(fd, (struct sockaddr *)&sin, &len) == -1)
		return -1;
	*port = ntohs(sin.sin_port);
	if ((pid = fork()) != 0) {
		close(fd);
		return pid;
	}
	for (int i = 0; i < count; i++) {
		char req[2048];
		int c = accept(fd, NULL, NULL);
		ssize_t n;
		if (c == -1)
			_exit(1);
		n = read(c, req, sizeof(req) - 1);
		if (n > 0 && answer != NULL) {
			req[n] = '\0';
			/* Echo the request line in a header so the test can see it. */
			dprintf(c, "%s\r\nX-Request: %.*s\r\n\r\nbody", answer,
			    (int)strcspn(req, "\r\n"), req);
		}
		if (answer == NULL)
			sleep(5);
		close(c);
	}
	_exit(0);
}

static void
server_stop(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

static void
test_http(void)
{
	static const struct { const char *url; int r; } bad[] = {
		{ "https://localhost/", DS_ERR_UNSUPPORTED },
		{ "ftp://localhost/", DS_ERR_INVALID },
		{ "http://", DS_ERR_INVALID },
		{ "http://:80/", DS_ERR_INVALID },
		{ "http://host:/", DS_ERR_INVALID },
		{ "http://host:99999999/", DS_ERR_INVALID },
		{ "http://host:8x/", DS_ERR_INVALID },
		{ "http://host/a b", DS_ERR_INVALID },
		{ "http://host/a\r\nX-Evil: 1", DS_ERR_INVALID },
		{ "http://user@host/", DS_ERR_INVALID },
		{ "http://[::1/", DS_ERR_INVALID },
		{ "localhost:80", DS_ERR_INVALID },
	};
	int port = 0, status;
	char *detail = NULL, *url;
	pid_t pid;
	int r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = restart_http_get(bad[i].url, 1000, &status, &detail);
		CHECK(r == bad[i].r && detail != NULL, "bad URL %zu refused (%d)", i, r);
		free(detail);
	}

	pid = http_server("HTTP/1.1 200 OK", 1, &port);
	url = xasprintf("http://127.0.0.1:%d/openmrs/health?x=1", port);
	r = restart_http_get(url, 5000, &status, &detail);
	CHECK(r == 0 && status == 200, "200 is healthy: %s", detail);
	free(detail);
	free(url);
	server_stop(pid);

	pid = http_server("HTTP/1.0 503 Service Unavailable", 1, &port);
	url = xasprintf("http://localhost:%d/", port);
	r = restart_http_get(url, 5000, &status, &detail);
	CHECK(r == DS_ERR_HEALTH && status == 503 && strstr(detail, "503 Service Unavailable"),
	    "503 is not: %s", detail);
	free(detail);
	free(url);
	server_stop(pid);

	pid = http_server("garbage", 1, &port);
	url = xasprintf("http://127.0.0.1:%d", port);
	r = restart_http_get(url, 5000, &status, &detail);
	CHECK(r == DS_ERR_HEALTH && status == 0, "a non-HTTP answer is not healthy: %s", detail);
	free(detail);
	free(url);
	server_stop(pid);

	/* Nobody listens there any more. */
	url = xasprintf("http://127.0.0.1:%d/", port);
	r = restart_http_get(url, 2000, &status, &detail);
	CHECK(r == DS_ERR_HEALTH && status == 0 && strstr(detail, "refused") != NULL,
	    "connection refused: %s", detail);
	free(detail);
	free(url);

	pid = http_server(NULL, 1, &port);
	url = xasprintf("http://127.0.0.1:%d/", port);
	{
		/* Well before the server gives up (5 s), with room for a busy machine. */
		uint64_t t0 = util_now_ms();
		r = restart_http_get(url, 500, &status, &detail);
		CHECK(r == DS_ERR_HEALTH && util_now_ms() - t0 < 4000 && strstr(detail, "timed out"),
		    "a silent server times out: %s", detail);
	}
	free(detail);
	free(url);
	server_stop(pid);

	/* As a service's health check: polled until the server answers 2xx. */
	{
		struct config c;
		struct config_service s[4];
		struct config_host host;
		struct restart_plan *plan = NULL;
		struct restart_report report;
		char *changed[] = { "gateway/x" };

		demo_config(&c, s);
		memset(&host, 0, sizeof(host));
		host.name = "site";
		host.path = tap_dir;
		pid = http_server("HTTP/1.0 204 No Content", 1, &port);
		s[3].health.url = xasprintf("http://127.0.0.1:%d/ping", port);
		s[3].health.timeout = 5;
		restart_report_init(&report);
		r = restart_select(&c, changed, 1, &plan);
		CHECK(r == 0 && restart_run(&c, &host, plan, &report) == 0, "URL health passes");
		restart_report_release(&report);
		server_stop(pid);
		restart_report_init(&report);
		s[3].health.timeout = 1;
		r = restart_run(&c, &host, plan, &report);
		CHECK(r == DS_ERR_HEALTH && report.failed_output &&
		    strstr(report.failed_output, "/ping") != NULL, "URL health fails once nobody answers: %s",
		    report.failed_output ? report.failed_output : "");
		restart_report_release(&report);
		restart_plan_free(plan);
		free(s[3].health.url);
	}
}

int
main(void)
{
	tap_run("select", test_select);
	tap_run("select-bad", test_select_bad);
	tap_run("select-manifests", test_select_manifests);
	tap_run("run", test_run);
	tap_run("run-once", test_run_once);
	tap_run("run-once-each-file", test_run_once_each_file);
	tap_run("run-once-migrate", test_run_once_migrate);
	tap_run("http", test_http);
	return tap_done();
}
