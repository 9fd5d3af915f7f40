/* retry: which errors are retried, the backoff's bounds, the retry loop. */
#include "autoconf.h"

#include <stdint.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "session/retry.h"
#include "tap.h"

static void
test_transient(void)
{
	static const struct { int err, want; } table[] = {
		{ DS_ERR_CONNECT, 1 }, { DS_ERR_TIMEOUT, 1 }, { 0, 0 }, { DS_ERR_PROTO, 0 },
		{ DS_ERR_HOSTKEY, 0 }, { DS_ERR_AUTH, 0 }, { DS_ERR_LOCKED, 0 },
		{ DS_ERR_CORRUPT, 0 }, { DS_ERR_PEER, 0 }, { DS_ERR_NOTFOUND, 0 }, { 12345, 0 },
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		CHECK(retry_is_transient(table[i].err) == table[i].want, "transient(%d) == %d",
		    table[i].err, table[i].want);
}

static void
test_delay(void)
{
	static const struct {
		unsigned attempt, base, max_wait;
		uint32_t rnd;
		unsigned want;
	} table[] = {
		{ 1, 1000, 300, 0, 500 },		/* half fixed */
		{ 1, 1000, 300, UINT32_MAX, 1000 },	/* at most the cap */
		{ 2, 1000, 300, UINT32_MAX, 2000 },
		{ 3, 1000, 300, 0, 2000 },
		{ 10, 1000, 300, UINT32_MAX, 300000 },	/* capped by max_wait */
		{ 10, 1000, 300, 0, 150000 },
		{ 1000, 1000, 300, UINT32_MAX, 300000 },	/* no overflow */
		{ UINT32_MAX, 1000, 300, UINT32_MAX, 300000 },
		{ 0, 1000, 300, UINT32_MAX, 1000 },	/* 0 taken as 1 */
		{ 5, 1000, 0, UINT32_MAX, 0 },		/* no waiting at all */
		{ 3, 0, 300, UINT32_MAX, 0 },
		{ 40, 4000000000u, 4000000, UINT32_MAX, 4000000000u },
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		unsigned d = retry_delay_ms(table[i].attempt, table[i].base, table[i].max_wait,
		    table[i].rnd);

		CHECK(d == table[i].want, "delay(%u, %u, %u, %u) = %u, want %u",
		    table[i].attempt, table[i].base, table[i].max_wait, table[i].rnd, d,
		    table[i].want);
	}
	for (unsigned a = 1; a < 20; a++) {
		unsigned d = retry_delay_ms(a, 1000, 60, retry_random());

		CHECK(d <= 60000 && d >= (a < 7 ? (1000u << (a - 1)) / 2 : 30000),
		    "random delay of attempt %u in range: %u", a, d);
	}
}

/* A scripted attempt: returns script[n - 1], marks progress per flags. */
struct script {
	const int	*results;
	const int	*progress;
	size_t		 count;
	unsigned	 calls;
};

static int
scripted(void *arg, unsigned n, int *progress)
{
	struct script *s = arg;

	s->calls++;
	if (n > s->count)
		return 0;
	*progress = s->progress != NULL && s->progress[n - 1];
	return s->results[n - 1];
}

static int
give_up(void *arg, unsigned attempt, int err, unsigned delay_ms)
{
	return attempt >= *(unsigned *)arg;
}

static void
test_run(void)
{
	static const int c3[] = { DS_ERR_CONNECT, DS_ERR_TIMEOUT, DS_ERR_CONNECT, 0 };
	static const int hard[] = { DS_ERR_CONNECT, DS_ERR_AUTH, 0 };
	static const int many[] = { DS_ERR_CONNECT, DS_ERR_CONNECT, DS_ERR_CONNECT,
	    DS_ERR_CONNECT, DS_ERR_CONNECT, DS_ERR_CONNECT, 0 };
	static const int moving[] = { 1, 1, 1, 1, 1, 1, 0 };
	struct retry_hooks hooks;
	struct script s;
	unsigned n, stop;
	int r;

	/* max_wait 0: no sleeping in a unit test. */
	s = (struct script){ c3, NULL, 4, 0 };
	r = retry_run("h", 3, 0, scripted, &s, NULL, &n);
	CHECK(r == 0 && n == 4 && s.calls == 4, "3 transient failures, 3 retries: ok (%d, %u)",
	    r, n);
	s = (struct script){ c3, NULL, 4, 0 };
	r = retry_run("h", 2, 0, scripted, &s, NULL, &n);
	CHECK(r == DS_ERR_CONNECT && n == 3, "retries exhausted: last error (%d, %u)", r, n);
	s = (struct script){ c3, NULL, 4, 0 };
	r = retry_run("h", 0, 0, scripted, &s, NULL, &n);
	CHECK(r == DS_ERR_CONNECT && n == 1, "retries 0: one attempt");
	s = (struct script){ hard, NULL, 3, 0 };
	r = retry_run("h", 5, 0, scripted, &s, NULL, &n);
	CHECK(r == DS_ERR_AUTH && n == 2, "a non-transient error ends at once (%d, %u)", r, n);
	s = (struct script){ many, NULL, 7, 0 };
	r = retry_run("h", 2, 0, scripted, &s, NULL, &n);
	CHECK(r == DS_ERR_CONNECT && n == 3, "6 failures without progress, 2 retries: fails");
	s = (struct script){ many, moving, 7, 0 };
	r = retry_run("h", 2, 0, scripted, &s, NULL, &n);
	CHECK(r == 0 && n == 7, "6 failures that each made progress, 2 retries: finishes (%u)",
	    n);
	memset(&hooks, 0, sizeof(hooks));
	stop = 2;
	hooks.on_retry = give_up;
	hooks.arg = &stop;
	s = (struct script){ many, NULL, 7, 0 };
	r = retry_run("h", 10, 0, scripted, &s, &hooks, &n);
	CHECK(r == DS_ERR_CONNECT && n == 2, "the hook can stop the retries (%u)", n);
	memset(&hooks, 0, sizeof(hooks));
	hooks.deadline_ns = retry_now_ns() + 200000000u;
	s = (struct script){ many, NULL, 7, 0 };
	r = retry_run("h", 10, 300, scripted, &s, &hooks, &n);
	CHECK(r == DS_ERR_CONNECT && n == 1, "no retry that cannot start before the deadline");
}

static void
test_sleep(void)
{
	uint64_t t0 = retry_now_ns(), dt;

	retry_sleep_ms(50, 0);
	dt = retry_now_ns() - t0;
	CHECK(dt >= 50000000u && dt < 1000000000u, "sleep 50 ms took %llu ns",
	    (unsigned long long)dt);
	t0 = retry_now_ns();
	retry_sleep_ms(10000, t0 + 30000000u);
	dt = retry_now_ns() - t0;
	CHECK(dt < 1000000000u, "a deadline cuts a sleep short (%llu ns)", (unsigned long long)dt);
}

int
main(void)
{
	log_set_level(LOG_LEVEL_SILENT);
	tap_run("retry-transient", test_transient);
	tap_run("retry-delay", test_delay);
	tap_run("retry-run", test_run);
	tap_run("retry-sleep", test_sleep);
	return tap_done();
}
