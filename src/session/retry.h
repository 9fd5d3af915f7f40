/*
 * Retries of one host's sync within a run: a dropped, refused or stalled
 * connection (DS_ERR_CONNECT, DS_ERR_TIMEOUT) is tried again after an
 * exponential backoff with full jitter, up to the host's `retries`, each wait
 * at most `retry_max_wait` seconds. Every other error ends at once. Nothing
 * staged is lost between attempts: the next session's STATE lists finished
 * objects (never sent again) and the partial one (resumed at its byte).
 */
#ifndef DS_RETRY_H
#define DS_RETRY_H

#include <stdint.h>

struct config;
struct config_host;
struct sender_options;
struct report;

#define RETRY_BASE_MS	1000u	/* first wait before jitter: 1 s, then 2, 4, 8... */

/* Optional observer of a retried run; every member may be NULL. */
struct retry_hooks {
	/*
	 * Called after a failed attempt (1-based) that will be retried after
	 * delay_ms; returns 0 to go on, nonzero to give up now with err.
	 */
	int	(*on_retry)(void *arg, unsigned attempt, int err, unsigned delay_ms);
	/* Monotonic deadline in ns (0: none): no attempt starts after it. */
	uint64_t deadline_ns;
	void	*arg;
};

/* Returns 1 when ERR is a link failure worth another attempt, else 0. */
int	retry_is_transient(int err);

/*
 * Returns the wait in ms before attempt ATTEMPT+1 after ATTEMPT failed (1-based):
 * a uniformly random value in [cap/2, cap] where cap = min(base_ms * 2^(attempt-1),
 * max_wait_s * 1000). rnd is a random 32-bit value (tests pass fixed ones).
 */
unsigned retry_delay_ms(unsigned attempt, unsigned base_ms, unsigned max_wait_s, uint32_t rnd);

/* A fresh random 32-bit value for retry_delay_ms (not for cryptography). */
uint32_t retry_random(void);

/* Monotonic clock in ns, for deadlines. */
uint64_t retry_now_ns(void);

/* Sleeps ms milliseconds (restarting after signals); stops early past deadline_ns (0: none). */
void	retry_sleep_ms(unsigned ms, uint64_t deadline_ns);

/*
 * Runs attempt(arg, n, &progress) for n = 1, 2, ... while it returns a
 * transient error, sleeping retry_delay_ms between attempts and logging
 * "HOST: ERROR; retrying in S s (attempt N)" at info level. An attempt
 * sets progress to 1 when it moved the transfer on (RETRY_PROGRESS_BYTES or
 * more): that resets the backoff and the count, so a link that drops every
 * few minutes still finishes a long transfer, while one that stays down
 * fails after `retries` attempts in a row that got nowhere (at most
 * retries + 1 of them). Returns the last attempt's result; *attempts (may
 * be NULL) gets the number made.
 */
#define RETRY_PROGRESS_BYTES	(64u * 1024)

int	retry_run(const char *host, unsigned retries, unsigned max_wait_s,
	    int (*attempt)(void *arg, unsigned n, int *progress), void *arg,
	    const struct retry_hooks *hooks, unsigned *attempts);

/*
 * One host's push with retries: connect_host, sender_run, xport_close, and
 * again on a transient failure, per host->retries and host->retry_max_wait.
 * Returns what the last attempt returned (0 when the host applied the
 * release), also in report->status. *report (holding nothing) is the last
 * attempt's, of opt's op and flags, with its counters (objects, bytes, round
 * trips) summed over every attempt; the caller releases it with
 * report_release. hooks may be NULL. Safe to call from several threads for
 * different hosts.
 */
int	sync_host_with_retries(const struct config *config, const struct config_host *host,
	    const struct sender_options *opt, struct report *report,
	    const struct retry_hooks *hooks);

#endif
