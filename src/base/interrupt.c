/* The noted SIGINT/SIGTERM of a push or pull (interrupt.h). */
#include "autoconf.h"

#include <signal.h>
#include <string.h>

#include "base/interrupt.h"

static volatile sig_atomic_t caught;

static void
note(int sig)
{
	caught = sig;
}

void
interrupt_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = note;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;	/* no SA_RESTART: a blocked read or poll returns EINTR */
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
}

int
interrupt_signal(void)
{
	return caught;
}
