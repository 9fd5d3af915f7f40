/*
 * Retries of a host's sync within one run: exponential backoff with jitter
 * around a transient failure, the session itself unchanged (see retry.h).
 */
#include "autoconf.h"

#include <sys/random.h>

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "config/config.h"
#include "session/connect.h"
#include "session/report.h"
#include "session/retry.h"
#include "session/sender.h"
#include "wire/xport.h"

int
retry_is_transient(int err)
{
	return err == DS_ERR_CONNECT || err == DS_ERR_TIMEOUT;
}

unsigned
retry_delay_ms(unsigned attempt, unsigned base_ms, unsigned max_wait_s, uint32_t rnd)
{
	uint64_t cap = max_wait_s * (uint64_t)1000, d = base_ms;

	if (attempt == 0)
		attempt = 1;
	for (unsigned i = 1; i < attempt && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	/*
	 * Half fixed, half random ("equal jitter"): sites that lost the link at
	 * the same moment spread out, and no wait collapses to nothing.
	 */
	return (unsigned)(d / 2 + (d - d / 2) * (uint64_t)rnd / UINT32_MAX);
}

uint32_t
retry_random(void)
{
	uint32_t v;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
		return v;
	return (uint32_t)retry_now_ns() ^ ((uint32_t)getpid() << 16);
}

uint64_t
retry_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
retry_sleep_ms(unsigned ms, uint64_t deadline_ns)
{
	uint64_t end = retry_now_ns() + (uint64_t)ms * 1000000u, now;
	struct timespec ts;

	if (deadline_ns != 0 && end > deadline_ns)
		end = deadline_ns;
	while ((now = retry_now_ns()) < end && interrupt_signal() == 0) {
		ts.tv_sec = (time_t)((end - now) / 1000000000u);
		ts.tv_nsec = (long)((end - now) % 1000000000u);
		nanosleep(&ts, NULL);
	}
}

int
retry_run(const char *host, unsigned retries, unsigned max_wait_s,
    int (*attempt)(void *arg, unsigned n, int *progress), void *arg,
    const struct retry_hooks *hooks, unsigned *attempts)
{
	uint64_t deadline = hooks != NULL ? hooks->deadline_ns : 0;
	unsigned n = 0, failed = 0, delay;
	int r, progress;

	for (;;) {
		n++;
		progress = 0;
		r = attempt(arg, n, &progress);
		if (r != 0 && interrupt_signal() != 0) {
			r = DS_ERR_INTERRUPTED;	/* Ctrl-C: no retry */
			break;
		}
		if (r == 0 || !retry_is_transient(r))
			break;
		/* Only failures in a row that moved nothing count and back off. */
		failed = progress ? 1 : failed + 1;
		if (failed > retries)
			break;
		delay = retry_delay_ms(failed, RETRY_BASE_MS, max_wait_s, retry_random());
		if (deadline != 0 && retry_now_ns() + (uint64_t)delay * 1000000u >= deadline) {
			log_error("%s: %s; no time left to retry", host, ds_strerror(r));
			break;
		}
		if (hooks != NULL && hooks->on_retry != NULL &&
		    hooks->on_retry(hooks->arg, n, r, delay) != 0)
			break;
		log_info("%s: %s; retrying in %u.%u s (attempt %u, %u of %u retries left)",
		    host, ds_strerror(r), delay / 1000, delay % 1000 / 100, n + 1,
		    retries - failed, retries);
		retry_sleep_ms(delay, deadline);
	}
	if (attempts != NULL)
		*attempts = n;
	return r;
}

struct push_attempt {
	const struct config	*config;
	const struct config_host *host;
	const struct sender_options *opt;
	struct report		*report;
	struct report		 sum;	/* counters of the failed attempts before */
};

static int
push_attempt(void *arg, unsigned n, int *progress)
{
	struct push_attempt *pa = arg;
	struct xport *x = NULL;
	int r, cr;

	if (n > 1) {
		pa->sum.objects_sent += pa->report->objects_sent;
		pa->sum.object_bytes += pa->report->object_bytes;
		pa->sum.bytes_sent += pa->report->bytes_sent;
		pa->sum.bytes_received += pa->report->bytes_received;
		pa->sum.round_trips += pa->report->round_trips;
		report_release(pa->report);
		report_init(pa->report, pa->opt->op, pa->opt->flags);
	}
	if ((r = connect_host(pa->config, pa->host, &x)) != 0)
		return r;
	r = sender_run(x, pa->opt, pa->report);
	*progress = pa->report->bytes_sent >= RETRY_PROGRESS_BYTES;
	cr = xport_close(x);
	if (r == 0 && cr != 0)
		log_warn("%s: the receiver exited with status %d", pa->host->name, cr);
	xport_free(x);
	return r;
}

int
sync_host_with_retries(const struct config *config, const struct config_host *host,
    const struct sender_options *opt, struct report *report,
    const struct retry_hooks *hooks)
{
	struct push_attempt pa;
	int r;

	memset(&pa, 0, sizeof(pa));
	report_init(report, opt->op, opt->flags);
	pa.config = config;
	pa.host = host;
	pa.opt = opt;
	pa.report = report;
	r = retry_run(host->name, host->retries, host->retry_max_wait, push_attempt, &pa, hooks,
	    NULL);
	report->objects_sent += pa.sum.objects_sent;
	report->object_bytes += pa.sum.object_bytes;
	report->bytes_sent += pa.sum.bytes_sent;
	report->bytes_received += pa.sum.bytes_received;
	report->round_trips += pa.sum.round_trips;
	report->status = r;
	return r;
}
