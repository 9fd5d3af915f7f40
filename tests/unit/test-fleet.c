/*
 * fleet and progress: real forked children per host, each behaving by its
 * host name (succeeds, fails, dies, exits without a result, writes junk and
 * control characters); canary, --max-failures, every host started at once; the
 * summary table, JSON and its reading back; progress lines without a terminal.
 * The report's pipe encoding: a round trip, bad values, every truncation and
 * bit flip; the JSON writer's string repair and escapes.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "base/err.h"
#include "base/jsonio.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "config/config.h"
#include "session/fleet.h"
#include "session/progress.h"
#include "session/report.h"
#include "tap.h"

/* Each child appends its host name here, to see the order hosts started in. */
static const char *order_file = "order.log";

static void
note_start(const char *name)
{
	FILE *fp = fopen(order_file, "a");

	if (fp != NULL) {
		fprintf(fp, "%s\n", name);
		fclose(fp);
	}
}

/* How many hosts whose name starts with PREFIX have started so far. */
static int
count_started(const char *prefix)
{
	FILE *fp = fopen(order_file, "r");
	char line[64];
	int n = 0;

	while (fp != NULL && fgets(line, sizeof(line), fp) != NULL)
		if (strncmp(line, prefix, strlen(prefix)) == 0)
			n++;
	if (fp != NULL)
		fclose(fp);
	return n;
}

static int
run_host(const struct config_host *host, void *arg, struct fleet_chan *chan,
    struct report *res)
{
	const char *n = host->name;

	(void)arg;
	note_start(n);
	fleet_send_phase(chan, "connecting");
	if (strncmp(n, "ok", 2) == 0) {
		fleet_send_bytes(chan, 100, 10, 10);
		res->op = PROTO_OP_PUSH;
		res->result.from = xstrdup("A");
		res->result.to = xstrdup("B");
		res->result.changed = 3;
		res->bytes_sent = 1234;
		res->result.services = xcalloc(3, sizeof(char *));
		res->result.services[0] = xstrdup("backend");
		res->result.services[1] = xstrdup("frontend");
		res->result.nservices = 2;
		res->result.health = xstrdup("ok");
		return 0;
	}
	if (strncmp(n, "fail", 4) == 0) {
		log_error("%s: health check of backend failed", n);
		return DS_ERR_HEALTH;
	}
	if (strcmp(n, "crash") == 0) {
		raise(SIGKILL);
		return 0;
	}
	if (strcmp(n, "exit") == 0)
		_exit(3);
	if (strcmp(n, "long") == 0) {
		/* A receiver's message near PROTO_MESSAGE_MAX, of characters JSON escapes. */
		res->result.message = xmalloc(PROTO_MESSAGE_MAX);
		memset(res->result.message, '\001', PROTO_MESSAGE_MAX - 1);
		res->result.message[PROTO_MESSAGE_MAX - 1] = '\0';
		return DS_ERR_HEALTH;
	}
	if (strcmp(n, "slow") == 0) {
		/* Ends once the others started (a minute at most: then they waited for it). */
		for (int i = 0; i < 3000 && count_started("ok") < 3; i++)
			usleep(20000);
		note_start("slow-end");
		return 0;
	}
	if (strcmp(n, "noisy") == 0) {
		char *big = xmalloc(100001);

		/* Control characters, bogus records, a line longer than the buffer. */
		fprintf(stderr, "esc \033[2J bell \a del \177 cr \r end\n");
		fprintf(stderr, "%cresult status=abc junk %%zz =x ==\n", FLEET_RECORD_MARK);
		fprintf(stderr, "%cbytes x y\n%cphase\n%cunknown record\n", FLEET_RECORD_MARK,
		    FLEET_RECORD_MARK, FLEET_RECORD_MARK);
		fprintf(stderr, "%c{\"result\":{\"status\":\"abc\"}}\n%c{\"result\":{\"status\":-5,"
		    "\"result\":{\"services\":[1]}}}\n%c{\"result\":\n%c{\"bytes\":{\"wire\":\"x\"}}\n"
		    "%c{\"phase\":7}\n%c[]\n", FLEET_RECORD_MARK, FLEET_RECORD_MARK,
		    FLEET_RECORD_MARK, FLEET_RECORD_MARK, FLEET_RECORD_MARK, FLEET_RECORD_MARK);
		memset(big, 'x', 100000);
		big[100000] = '\0';
		fputs(big, stderr);
		fflush(stderr);
		free(big);
		res->result.from = xstrdup("a b%c=d\ne\tf");
		res->result.to = xstrdup("");
		res->reason = NULL;
		return 0;
	}
	return DS_ERR_INVALID;
}

static struct config_host *
make_hosts(const char *const *names, size_t n, const struct config_host ***ptrs)
{
	struct config_host *h = xcalloc(n, sizeof(*h));

	*ptrs = xcalloc(n, sizeof(**ptrs));
	for (size_t i = 0; i < n; i++) {
		h[i].name = (char *)names[i];
		(*ptrs)[i] = &h[i];
	}
	return h;
}

static int
file_has_control(const char *path)
{
	FILE *fp = fopen(path, "r");
	int c, bad = 0;

	if (fp == NULL)
		return 1;
	while ((c = fgetc(fp)) != EOF)
		if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
			bad = 1;
	fclose(fp);
	return bad;
}

static int
file_contains(const char *path, const char *needle)
{
	char *data = NULL;
	size_t size = 0;
	FILE *fp = fopen(path, "r");
	int found;

	if (fp == NULL)
		return 0;
	data = xmalloc(1 << 20);
	size = fread(data, 1, (1 << 20) - 1, fp);
	data[size] = '\0';
	fclose(fp);
	found = strstr(data, needle) != NULL;
	free(data);
	return found;
}

static int
run_fleet(const char *const *names, size_t n, unsigned parallel, unsigned canary,
    unsigned max_failures, FILE *progress_fp, struct report *res,
    struct config_host **storage, const struct config_host ***ptrs)
{
	struct fleet_options fo;
	int r;

	memset(&fo, 0, sizeof(fo));
	*storage = make_hosts(names, n, ptrs);
	fo.parallel = parallel;
	fo.canary = canary;
	fo.max_failures = max_failures;
	fo.run = run_host;
	if (progress_fp != NULL)
		fo.progress = progress_new(progress_fp, PROGRESS_PLAIN, "test", n);
	unlink(order_file);
	r = fleet_run(&fo, *ptrs, n, res);
	progress_free(fo.progress);
	return r;
}

static void
release_all(struct report *res, size_t n, struct config_host *storage,
    const struct config_host **ptrs)
{
	for (size_t i = 0; i < n; i++)
		report_release(&res[i]);
	free(storage);
	free(ptrs);
}

static void
test_mixed(void)
{
	static const char *const names[] = { "ok1", "fail1", "crash", "exit", "noisy", "ok2" };
	const size_t n = sizeof(names) / sizeof(names[0]);
	struct report res[6];
	struct config_host *storage;
	const struct config_host **ptrs;
	FILE *fp = fopen("progress.out", "w");
	int r;

	r = run_fleet(names, n, 3, 0, 0, fp, res, &storage, &ptrs);
	fclose(fp);
	CHECK(r != 0 && ds_exit_code(r) == DS_EXIT_FAILED, "a failed host: exit 1 (got %d)", r);
	CHECK(res[0].status == 0 && res[0].started, "ok1 succeeded");
	CHECK(res[0].result.from && strcmp(res[0].result.from, "A") == 0 && res[0].result.to &&
	    strcmp(res[0].result.to, "B") == 0, "ok1: A -> B came through the pipe");
	CHECK(res[0].result.changed == 3 && res[0].bytes_sent == 1234, "ok1: counts came through");
	CHECK(res[0].result.nservices == 2 && strcmp(res[0].result.services[0], "backend") == 0 &&
	    strcmp(res[0].result.services[1], "frontend") == 0, "ok1: services came through");
	CHECK(res[1].status == DS_ERR_HEALTH, "fail1: its status");
	CHECK(res[1].reason && strstr(res[1].reason, "health check of backend failed") &&
	    strncmp(res[1].reason, "fail1:", 6) != 0,
	    "fail1: the reason is its first error, without the host name (%s)",
	    res[1].reason ? res[1].reason : "null");
	CHECK(res[2].status != 0 && res[2].reason && strstr(res[2].reason, "signal 9"),
	    "crash: died of signal 9 (%s)", res[2].reason ? res[2].reason : "null");
	CHECK(res[3].status != 0 && res[3].reason && strstr(res[3].reason, "exit 3"),
	    "exit: ended without a result (%s)", res[3].reason ? res[3].reason : "null");
	CHECK(res[4].status == 0, "noisy: junk records did not override its real result");
	CHECK(res[4].result.from && strcmp(res[4].result.from, "a b%c=d\ne\tf") == 0,
	    "noisy: spaces, %%, = and newlines survive the encoding");
	CHECK(res[5].status == 0, "ok2 succeeded");
	for (size_t i = 0; i < n; i++)
		CHECK(res[i].started, "%s was started", names[i]);
	CHECK(!file_has_control("progress.out"), "plain progress has no control characters");
	CHECK(file_contains("progress.out", "ok1: started") &&
	    file_contains("progress.out", "ok1: A -> B"), "plain progress: one line per event");
	CHECK(file_contains("progress.out", "distsync: noisy: esc"),
	    "a child's log line is shown with its host");

	fp = fopen("table.out", "w");
	report_print_table(ptrs, res, n, fp);
	fclose(fp);
	CHECK(!file_has_control("table.out"), "the table has no control characters");
	CHECK(file_contains("table.out", "6 hosts: 3 ok, 3 failed, 0 not started"),
	    "the table counts");
	CHECK(file_contains("table.out", "health check of backend failed"), "the table names reasons");

	fp = fopen("report.json", "w");
	report_print_fleet_json(ptrs, res, n, fp);
	fclose(fp);
	{
		char **failed = NULL;

		CHECK(report_failed_hosts("report.json", &failed) == 0, "report reads back");
		CHECK(failed && failed[0] && strcmp(failed[0], "fail1") == 0 && failed[1] &&
		    strcmp(failed[1], "crash") == 0 && failed[2] && strcmp(failed[2], "exit") == 0 &&
		    failed[3] == NULL, "the failed hosts, in order");
		xfree_strv(failed);
	}
	release_all(res, n, storage, ptrs);
}

static void
test_canary(void)
{
	static const char *const bad[] = { "fail1", "ok1", "ok2", "ok3" };
	static const char *const good[] = { "ok1", "ok2", "ok3", "ok4" };
	struct report res[4];
	struct config_host *storage;
	const struct config_host **ptrs;
	int r;

	r = run_fleet(bad, 4, 4, 1, 0, NULL, res, &storage, &ptrs);
	CHECK(ds_exit_code(r) == DS_EXIT_FAILED, "failing canary: exit 1");
	CHECK(res[0].started && res[0].status == DS_ERR_HEALTH, "the canary ran and failed");
	for (int i = 1; i < 4; i++)
		CHECK(!res[i].started && res[i].reason &&
		    strstr(res[i].reason, "not started: canary fail1 failed"),
		    "%s not started, with the reason", bad[i]);
	release_all(res, 4, storage, ptrs);

	r = run_fleet(good, 4, 4, 2, 0, NULL, res, &storage, &ptrs);
	CHECK(r == 0, "healthy canaries: everyone runs");
	for (int i = 0; i < 4; i++)
		CHECK(res[i].started && res[i].status == 0, "%s ran", good[i]);
	release_all(res, 4, storage, ptrs);
}

static void
test_max_failures(void)
{
	static const char *const names[] = { "ok1", "fail1", "fail2", "ok2", "ok3" };
	struct report res[5];
	struct config_host *storage;
	const struct config_host **ptrs;
	int r;

	r = run_fleet(names, 5, 1, 0, 1, NULL, res, &storage, &ptrs);
	CHECK(ds_exit_code(r) == DS_EXIT_FAILED, "--max-failures: exit 1");
	CHECK(res[0].status == 0 && res[1].status == DS_ERR_HEALTH, "hosts up to the failure ran");
	CHECK(!res[2].started && !res[3].started && !res[4].started, "the rest were not started");
	CHECK(res[2].reason && strstr(res[2].reason, "--max-failures 1"),
	    "the reason names --max-failures (%s)", res[2].reason ? res[2].reason : "null");
	release_all(res, 5, storage, ptrs);

	r = run_fleet(names, 5, 2, 0, 2, NULL, res, &storage, &ptrs);
	CHECK(ds_exit_code(r) == DS_EXIT_FAILED, "--max-failures 2 with 2 failures: exit 1");
	CHECK(res[0].started && res[1].started && res[2].started,
	    "hosts before the second failure started");
	release_all(res, 5, storage, ptrs);
}

static void
test_all_at_once(void)
{
	static const char *const names[] = { "slow", "ok1", "ok2", "ok3" };
	struct report res[4];
	struct config_host *storage;
	const struct config_host **ptrs;
	char line[64];
	FILE *fp;
	int before_end = 0, r;

	/*
	 * No host waits for another (the delta cache's locks share the
	 * encodings): with -j 4 the quick ones end while slow still runs.
	 */
	r = run_fleet(names, 4, 4, 0, 0, NULL, res, &storage, &ptrs);
	CHECK(r == 0, "four hosts at once succeed");
	fp = fopen(order_file, "r");
	while (fp != NULL && fgets(line, sizeof(line), fp) != NULL) {
		if (strcmp(line, "slow-end\n") == 0)
			break;
		if (strncmp(line, "ok", 2) == 0)
			before_end++;
	}
	if (fp != NULL)
		fclose(fp);
	CHECK(before_end == 3, "the others started before the first host ended (%d of 3)",
	    before_end);
	release_all(res, 4, storage, ptrs);

	/* A failing first host does not stop the others (that is --canary). */
	{
		static const char *const f[] = { "fail1", "ok1", "ok2" };

		r = run_fleet(f, 3, 3, 0, 0, NULL, res, &storage, &ptrs);
		CHECK(res[1].started && res[2].started && res[1].status == 0,
		    "a failed first host: the others still run");
		release_all(res, 3, storage, ptrs);
	}
}

static void
test_long_result(void)
{
	static const char *const names[] = { "long", "ok1" };
	struct report res[2];
	struct config_host *storage;
	const struct config_host **ptrs;
	size_t len;
	int r;

	r = run_fleet(names, 2, 2, 0, 0, NULL, res, &storage, &ptrs);
	len = res[0].reason != NULL ? strlen(res[0].reason) : 0;
	CHECK(ds_exit_code(r) == DS_EXIT_FAILED && res[0].status == DS_ERR_HEALTH,
	    "a result longer than a log line came through (status %d)", res[0].status);
	CHECK(len == PROTO_MESSAGE_MAX - 1 && res[0].reason[len - 1] == '\001',
	    "its reason came whole (%zu bytes)", len);
	CHECK(res[1].status == 0, "the other host too");
	release_all(res, 2, storage, ptrs);
}

/* A byte a terminal acts on: C0 but newline and tab, DEL, or a C1 in UTF-8. */
static int
text_has_control(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f ||
		    (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 &&
		    (unsigned char)s[i + 1] <= 0x9f))
			return 1;
	}
	return 0;
}

/*
 * Everything a peer put in its RESULT reaches the terminal escaped: the
 * session's text, its one-line summary and the table (issue 16, finding 10).
 */
static void
test_report_escapes(void)
{
	static char evil[] = "x\033]0;owned\007\033[2J\302\233" "31m";
	static char *drift[] = { evil, NULL }, *services[] = { evil, NULL };
	struct config_host host = { 0 };
	const struct config_host *hosts[1] = { &host };
	struct report rep[2];
	char *text = NULL, line[512];
	size_t len = 0;
	FILE *fp;

	host.name = (char *)"kirehe";
	for (int i = 0; i < 2; i++) {
		report_init(&rep[i], i == 0 ? PROTO_OP_PUSH : PROTO_OP_VERIFY, 0);
		rep[i].started = 1;
		rep[i].status = DS_ERR_HEALTH;
		rep[i].reason = xstrdup(evil);
		rep[i].release = xstrdup(evil);
		rep[i].result.from = xstrdup(evil);
		rep[i].result.to = xstrdup(evil);
		rep[i].result.health = xstrdup(evil);
		rep[i].result.message = xstrdup(evil);
		rep[i].result.drift = drift;
		rep[i].result.ndrift = 1;
		rep[i].result.changed = 1;
		rep[i].result.services = services;
		rep[i].result.nservices = 1;
	}
	rep[1].status = DS_ERR_CORRUPT;
	fp = open_memstream(&text, &len);
	report_print_text(&rep[0], "kirehe", fp);
	report_print_text(&rep[1], "kirehe", fp);
	report_print_table(hosts, rep, 1, fp);
	fclose(fp);
	CHECK(len > 0 && !text_has_control(text, len),
	    "text and table carry the peer's strings escaped:\n%s", text);
	CHECK(strstr(text, "\\x1b]0;owned\\x07") != NULL, "and show what they were");
	free(text);
	report_line(&rep[0], line, sizeof(line));
	CHECK(!text_has_control(line, strlen(line)), "a failed host's line: %s", line);
	rep[0].status = 0;
	report_line(&rep[0], line, sizeof(line));
	CHECK(!text_has_control(line, strlen(line)), "a host's line: %s", line);
	for (int i = 0; i < 2; i++) {
		rep[i].result.drift = NULL;
		rep[i].result.services = NULL;
		rep[i].result.ndrift = rep[i].result.nservices = 0;
		report_release(&rep[i]);
	}
}

static void
test_report_bad(void)
{
	static const char *const cases[][2] = {
		{ "", "" },
		{ "not json at all\n", "" },
		{ "[\n{\"host\":\"a\",\"ok\":true}\n]\n", "" },
		{ "{\"host\":\"b\",\"operation\":\"push\",\"ok\":false}\n", "b" },
		{ "{\"host\":\"q\\\"x\",\"operation\":\"push\",\"ok\":false}\n", "q\"x" },
		{ "{\"host\":\"bad\\u0001\",\"operation\":\"push\",\"ok\":false}\n", "" },
		/* Not JSON (the string ends before ,"ok"): no host, however it looks. */
		{ "{\"host\":\"unterminated,\"ok\":false\n", "" },
		{ "{\"host\":\"trunc", "" },
		/* An element of the saved array: the "," after it is not part of it. */
		{ "{\"host\":\"c\",\"operation\":\"push\",\"ok\":false},\n", "c" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		FILE *fp = fopen("r.json", "w");
		char **names = NULL;
		int r;

		fputs(cases[i][0], fp);
		fclose(fp);
		r = report_failed_hosts("r.json", &names);
		CHECK(r == 0 && names != NULL &&
		    (cases[i][1][0] == '\0' ? names[0] == NULL :
		    names[0] != NULL && strcmp(names[0], cases[i][1]) == 0 && names[1] == NULL),
		    "report case %zu", i);
		xfree_strv(names);
	}
	{
		char **names = (char **)1;

		log_set_level(LOG_LEVEL_SILENT);
		CHECK(report_failed_hosts("missing.json", &names) == DS_ERR_NOTFOUND &&
		    names == NULL, "no report: DS_ERR_NOTFOUND");
		log_set_level(LOG_LEVEL_INFO);
	}
}

/* A report with every field set, as a push's child would send it. */
static void
full_report(struct report *rep)
{
	report_init(rep, PROTO_OP_PUSH, PROTO_FLAG_DRY_RUN | PROTO_FLAG_NO_RESTART);
	rep->status = DS_ERR_HEALTH;
	rep->started = 1;
	rep->reason = xstrdup("health: \"app\"\tfailed\n");
	rep->seconds = 1.5;
	rep->release = xstrdup("2.0");
	rep->objects_sent = 7;
	rep->object_bytes = 1ull << 40;
	rep->planned_bytes = 9;
	rep->bytes_sent = 10;
	rep->bytes_received = 11;
	rep->round_trips = 3;
	rep->manifest_fetched = 1;
	for (int enc = 0; enc <= PROTO_ENC_MAX; enc++) {
		rep->enc_objects[enc] = (uint64_t)enc + 1;
		rep->enc_bytes[enc] = (uint64_t)enc * 100;
	}
	rep->signatures = 4;
	rep->fallbacks = 5;
	rep->cache_hits = 6;
	rep->found = 1;
	rep->found_release = xstrdup("1.0");
	rep->identical = 7;
	rep->result.status = DS_ERR_HEALTH;
	rep->result.flags = PROTO_FLAG_DRY_RUN;
	rep->result.from = xstrdup("");
	rep->result.to = xstrdup("2.0");
	rep->result.added = 12;
	rep->result.updated = 13;
	rep->result.deleted = 14;
	rep->result.changed = 15;
	rep->result.objects = 16;
	rep->result.bytes = 17;
	rep->result.services = xcalloc(3, sizeof(char *));
	rep->result.services[0] = xstrdup("backend");
	rep->result.services[1] = xstrdup("front end");
	rep->result.nservices = 2;
	rep->result.health = xstrdup("app failed");
	rep->result.message = xstrdup("a\001b");
	rep->result.drift = xcalloc(2, sizeof(char *));
	rep->result.drift[0] = xstrdup("x");
	rep->result.ndrift = 1;
}

static int
same_reports(const struct report *a, const struct report *b)
{
	const struct proto_result *x = &a->result, *y = &b->result;

	if (a->op != b->op || a->flags != b->flags || a->status != b->status ||
	    a->started != b->started || strcmp(a->reason, b->reason) != 0 ||
	    a->seconds != b->seconds || strcmp(a->release, b->release) != 0 ||
	    a->objects_sent != b->objects_sent || a->object_bytes != b->object_bytes ||
	    a->planned_bytes != b->planned_bytes || a->bytes_sent != b->bytes_sent ||
	    a->bytes_received != b->bytes_received || a->round_trips != b->round_trips ||
	    a->manifest_fetched != b->manifest_fetched || a->signatures != b->signatures ||
	    a->fallbacks != b->fallbacks || a->cache_hits != b->cache_hits ||
	    a->found != b->found || strcmp(a->found_release, b->found_release) != 0 ||
	    a->identical != b->identical)
		return 0;
	if (memcmp(a->enc_objects, b->enc_objects, sizeof(a->enc_objects)) != 0 ||
	    memcmp(a->enc_bytes, b->enc_bytes, sizeof(a->enc_bytes)) != 0)
		return 0;
	if (x->status != y->status || x->flags != y->flags || strcmp(x->from, y->from) != 0 ||
	    strcmp(x->to, y->to) != 0 || x->added != y->added || x->updated != y->updated ||
	    x->deleted != y->deleted || x->changed != y->changed || x->objects != y->objects ||
	    x->bytes != y->bytes || x->nservices != y->nservices ||
	    strcmp(x->health, y->health) != 0 || strcmp(x->message, y->message) != 0)
		return 0;
	for (size_t i = 0; i < x->nservices; i++)
		if (strcmp(x->services[i], y->services[i]) != 0)
			return 0;
	return 1;
}

static void
test_report_codec(void)
{
	static const char *const bad[] = {
		"[]",
		"{}",
		"{\"status\":\"x\"}",
		"{\"status\":1}",
		"{\"status\":-1001}",
		"{\"status\":0,\"op\":256}",
		"{\"status\":0,\"flags\":-1}",
		"{\"status\":0,\"reason\":7}",
		"{\"status\":0,\"started\":1}",
		"{\"status\":0,\"bytes_sent\":-1}",
		"{\"status\":0,\"bytes_sent\":1.5}",
		"{\"status\":0,\"encodings\":{}}",
		"{\"status\":0,\"encodings\":[[1]]}",
		"{\"status\":0,\"encodings\":[[1,2],[1,2],[1,2],[1,2],[1,2],[1,2]]}",
		"{\"status\":0,\"encodings\":[[1,-2]]}",
		"{\"status\":0,\"result\":[]}",
		"{\"status\":0,\"result\":{\"status\":1}}",
		"{\"status\":0,\"result\":{\"from\":false}}",
		"{\"status\":0,\"result\":{\"services\":\"a\"}}",
		"{\"status\":0,\"result\":{\"services\":[\"a\",null]}}",
		"{\"status\":0,\"result\":{\"changed\":-3}}",
		"{\"status\":0,\"found\":1}",
		"{\"status\":0,\"found_release\":[]}",
		"{\"status\":0,\"identical\":-1}",
	};
	struct report rep, back;
	json_t *v;
	char *text;
	size_t len, decoded = 0;

	full_report(&rep);
	v = report_encode(&rep);
	text = jsonio_text(v);
	json_decref(v);
	CHECK(strchr(text, '\n') == NULL && strchr(text, '\001') == NULL,
	    "an encoded report is one line without control characters");
	v = jsonio_parse(text, 0);
	CHECK(v != NULL && report_decode(v, &back) == 0, "an encoded report decodes");
	json_decref(v);
	CHECK(same_reports(&rep, &back), "every field comes back");
	CHECK(back.result.ndrift == 0 && back.result.drift == NULL,
	    "the drift paths stay behind (the count comes: %" PRIu64 ")", back.result.changed);
	report_release(&back);

	v = jsonio_parse("{\"status\":-15}", 0);
	CHECK(v != NULL && report_decode(v, &back) == 0 && back.status == DS_ERR_HEALTH &&
	    back.result.from == NULL && back.bytes_sent == 0,
	    "a report of only a status decodes, the rest empty");
	json_decref(v);
	report_release(&back);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = jsonio_parse(bad[i], 0);
		memset(&back, 0x55, sizeof(back));
		CHECK(v != NULL && report_decode(v, &back) == DS_ERR_PROTO &&
		    back.reason == NULL && back.result.services == NULL,
		    "bad report %zu refused, nothing kept: %s", i, bad[i]);
		json_decref(v);
	}

	/* Every truncation and every bit flip: refused or decoded, never more. */
	len = strlen(text);
	for (size_t cut = 0; cut < len; cut++) {
		char *t = xstrndup(text, cut);

		if ((v = jsonio_parse(t, 0)) != NULL && report_decode(v, &back) == 0) {
			decoded++;
			report_release(&back);
		}
		json_decref(v);
		free(t);
	}
	CHECK(decoded == 0, "no truncation of a report decodes (%zu did)", decoded);
	decoded = 0;
	for (size_t i = 0; i < len * 8; i++) {
		char *t = xstrdup(text);

		t[i / 8] ^= (char)(1 << (i % 8));
		if ((v = jsonio_parse(t, 0)) != NULL && report_decode(v, &back) == 0) {
			decoded++;
			report_release(&back);
		}
		json_decref(v);
		free(t);
	}
	CHECK(decoded < len * 8, "bit flips: %zu of %zu still decode, none crashes", decoded,
	    len * 8);
	free(text);
	report_release(&rep);
}

static void
test_jsonio(void)
{
	json_t *v = jsonio_string("caf\351 \303\251 \355\240\200 \360\237\230\200 \300\257");
	char *text = jsonio_text(v);

	CHECK(strcmp(text, "\"caf\357\277\275 \303\251 \357\277\275\357\277\275\357\277\275 "
	    "\360\237\230\200 \357\277\275\357\277\275\"") == 0,
	    "bytes that are not UTF-8 become U+FFFD, UTF-8 stays (%s)", text);
	json_decref(v);
	free(text);
	v = jsonio_string("tab\t nl\n del\177 esc\033 quote\" slash\\");
	text = jsonio_text(v);
	CHECK(strcmp(text, "\"tab\\t nl\\n del\\u007F esc\\u001B quote\\\" slash\\\\\"") == 0,
	    "control characters and DEL are escaped (%s)", text);
	json_decref(v);
	free(text);
	v = jsonio_pack("[o,o,o]", jsonio_string(NULL), jsonio_uint(UINT64_MAX),
	    jsonio_seconds(2.34567));
	text = jsonio_text(v);
	CHECK(strcmp(text, "[null,9223372036854775807,2.346]") == 0,
	    "null, a saturated integer, seconds to the millisecond (%s)", text);
	json_decref(v);
	free(text);
	v = jsonio_parse("{\"a\":1},\n", 1);
	CHECK(json_is_object(v), "a line's value with a comma after it parses");
	json_decref(v);
	v = jsonio_parse("{\"a\":1},\n", 0);
	CHECK(v == NULL, "a whole document may not have one");
	json_decref(v);
}

static void
test_progress_tty(void)
{
	FILE *fp = fopen("tty.out", "w");
	struct progress *p = progress_new(fp, PROGRESS_TTY, "push", 2);
	int a, b;

	a = progress_host_begin(p, "alpha");
	b = progress_host_begin(p, "beta");
	progress_host_phase(p, a, "sending");
	progress_host_bytes(p, a, 1000, 50, 100);
	usleep(120000);
	progress_tick(p);
	progress_log(p, "a log line with \033 escape");
	progress_host_end(p, a, 1, "done");
	progress_host_end(p, b, 0, "broke");
	progress_host_end(p, b, 0, "twice");	/* ignored */
	progress_host_bytes(p, 99, 1, 1, 1);	/* no such slot */
	progress_free(p);
	fclose(fp);
	CHECK(file_contains("tty.out", "\033[") && file_contains("tty.out", "alpha"),
	    "terminal mode redraws with cursor moves");
	CHECK(file_contains("tty.out", "a log line with ? escape"),
	    "control characters of log lines are replaced on a terminal too");
	CHECK(file_contains("tty.out", "beta: FAILED: broke") && !file_contains("tty.out", "twice"),
	    "a host ends once");
}

/* log writer: what would reach stderr, one line each, into a memory stream. */
static void
to_stream(const char *line, void *arg)
{
	fprintf(arg, "%s\n", line);
}

/*
 * A failure is printed once: the error lines its reason says are held back,
 * the others printed; a failure without a reason takes the first line held;
 * a peer's refusal is the reason whole in the text and the JSON.
 */
static void
test_report_errors(void)
{
	struct report_errors held;
	struct report rep;
	char *text = NULL;
	size_t size = 0;
	FILE *fp = open_memstream(&text, &size);
	json_t *v;

	log_set_writer(to_stream, fp);
	report_init(&rep, PROTO_OP_PUSH, 0);
	rep.status = DS_ERR_PEER;
	rep.reason = xstrdup("/srv/x: cannot create the target directory\nsecond line");
	report_errors_hold(&held);
	log_error("kirehe: /srv/x: cannot create the target directory");
	log_error("kirehe: second line");
	log_error("kirehe: something else");
	report_errors_print(&held, &rep);
	fflush(fp);
	CHECK(strstr(text, "something else") != NULL, "a line the reason does not say is printed");
	CHECK(strstr(text, "cannot create") == NULL && strstr(text, "second line") == NULL,
	    "the lines the reason says are not (%s)", text);
	fclose(fp);
	free(text);
	text = NULL;
	fp = open_memstream(&text, &size);
	report_print_text(&rep, "kirehe", fp);
	fclose(fp);
	CHECK(strstr(text, "kirehe: push failed: /srv/x: cannot create the target directory\n"
	    "second line\n") != NULL && strstr(text, "peer reported") == NULL,
	    "the text gives the reason whole (%s)", text);
	free(text);
	v = report_json(&rep, "kirehe");
	CHECK(strcmp(json_string_value(json_object_get(v, "error")), rep.reason) == 0,
	    "--json gives it whole");
	json_decref(v);
	report_release(&rep);

	text = NULL;
	fp = open_memstream(&text, &size);
	log_set_writer(to_stream, fp);
	report_init(&rep, PROTO_OP_ROLLBACK, 0);
	rep.status = DS_ERR_CONNECT;
	report_errors_hold(&held);
	log_error("kirehe: connect: refused");
	report_errors_print(&held, &rep);
	fflush(fp);
	CHECK(rep.reason != NULL && strcmp(rep.reason, "kirehe: connect: refused") == 0,
	    "no reason: the first line held is it");
	CHECK(size == 0, "and it is not printed too (%s)", text);
	log_set_writer(NULL, NULL);
	fclose(fp);
	free(text);
	report_release(&rep);
}

/* verify --json: verify's fields, not a push's counters. */
static void
test_verify_json(void)
{
	static char *drift[] = { "frontend/a.js", NULL };
	struct report rep;
	json_t *v;

	report_init(&rep, PROTO_OP_VERIFY, 0);
	rep.status = DS_ERR_CORRUPT;
	rep.result.from = xstrdup("2026.12.1");
	rep.result.changed = 3;
	rep.result.drift = xcalloc(2, sizeof(char *));
	rep.result.drift[0] = xstrdup(drift[0]);
	rep.result.ndrift = 1;
	v = report_verify_json(&rep, "kirehe");
	CHECK(strcmp(json_string_value(json_object_get(v, "result")), "drifted") == 0 &&
	    strcmp(json_string_value(json_object_get(v, "release")), "2026.12.1") == 0 &&
	    json_integer_value(json_object_get(v, "drifted")) == 3 &&
	    json_array_size(json_object_get(v, "drift")) == 1 &&
	    json_is_false(json_object_get(v, "drift_complete")) &&
	    json_is_null(json_object_get(v, "error")),
	    "drift: result, release, the count and the paths listed (a cut list says so)");
	CHECK(json_object_get(v, "bytes_sent") == NULL &&
	    json_object_get(v, "encodings") == NULL &&
	    json_object_get(v, "objects_sent") == NULL, "no transfer counters");
	json_decref(v);
	report_release(&rep);
	report_init(&rep, PROTO_OP_VERIFY, 0);
	rep.status = DS_ERR_LOCKED;
	rep.reason = xstrdup("locked by pid 7");
	v = report_verify_json(&rep, "kirehe");
	CHECK(strcmp(json_string_value(json_object_get(v, "result")), "FAILED") == 0 &&
	    strcmp(json_string_value(json_object_get(v, "error")), "locked by pid 7") == 0 &&
	    json_is_null(json_object_get(v, "release")), "a failure: its reason, no release");
	json_decref(v);
	report_release(&rep);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	tap_run("fleet-mixed", test_mixed);
	tap_run("fleet-canary", test_canary);
	tap_run("fleet-max-failures", test_max_failures);
	tap_run("fleet-all-at-once", test_all_at_once);
	tap_run("fleet-report", test_report_bad);
	tap_run("progress-tty", test_progress_tty);
	tap_run("fleet-long-result", test_long_result);
	tap_run("report-codec", test_report_codec);
	tap_run("jsonio", test_jsonio);
	tap_run("report-escapes", test_report_escapes);
	tap_run("report-errors", test_report_errors);
	tap_run("verify-json", test_verify_json);
	return tap_done();
}
