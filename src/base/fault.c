#include "autoconf.h"

#include "base/fault.h"

#ifdef DS_FAULT_INJECTION
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned long fault_count;
static unsigned long fault_target;
static int fault_loaded;
static const char *fault_trace;

static void
fault_load(void)
{
	const char *s = getenv("DISTSYNC_FAULT");
	char *end;

	fault_loaded = 1;
	fault_trace = getenv("DISTSYNC_FAULT_TRACE");
	if (s == NULL || *s == '\0')
		return;
	fault_target = strtoul(s, &end, 10);
	if (*end != '\0')
		fault_target = 0;
}

void
fault_hit(const char *name)
{
	if (!fault_loaded)
		fault_load();
	fault_count++;
	if (fault_trace != NULL) {
		char line[256];
		int fd, n;

		n = snprintf(line, sizeof(line), "%lu %s\n", fault_count, name);
		fd = open(fault_trace, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd != -1) {
			if (n > 0 && write(fd, line, (size_t)n) < 0)
				n = 0;
			close(fd);
		}
	}
	if (fault_target != 0 && fault_count == fault_target)
		kill(getpid(), SIGKILL);
}
#else
/* ISO C forbids an empty translation unit. */
typedef int fault_unused;
#endif
