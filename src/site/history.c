/* STATE/history.log (history.h). */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "site/commit.h"
#include "site/history.h"
#include "site/target.h"

int
history_append(struct target *t, const char *action, const struct commit_report *r,
    const char *restarted, int result)
{
	char stamp[64], *line;
	time_t now = time(NULL);
	struct tm tm;
	size_t drifted = 0;
	int fd, ret = 0;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (r != NULL && r->drifted_paths != NULL)
		while (r->drifted_paths[drifted] != NULL)
			drifted++;
	if (r != NULL)
		line = xasprintf("%s %s from=%s to=%s added=%zu updated=%zu deleted=%zu mode=%zu "
		    "bytes=%" PRIu64 " drifted=%zu restarted=%s result=%s\n", stamp, action,
		    r->from_release != NULL ? r->from_release : "-",
		    r->to_release != NULL ? r->to_release : "-", r->added, r->updated, r->deleted,
		    r->mode_changed, r->bytes, drifted,
		    restarted != NULL && *restarted != '\0' ? restarted : "-",
		    result == 0 ? "ok" : ds_strerror(result));
	else
		line = xasprintf("%s %s restarted=%s result=%s\n", stamp, action,
		    restarted != NULL && *restarted != '\0' ? restarted : "-",
		    result == 0 ? "ok" : ds_strerror(result));
	/* Keep each record one line whatever the error text holds. */
	for (char *p = line; p[0] != '\0' && p[1] != '\0'; p++)
		if (*p == '\n')
			*p = ' ';
	fd = openat(target_state_fd(t), "history.log",
	    O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd == -1 || fileio_write_all(fd, line, strlen(line)) == -1 || fsync(fd) == -1) {
		log_errno("%s/history.log", target_state_dir(t));
		ret = DS_ERR_SYSTEM;
	}
	if (fd != -1)
		close(fd);
	free(line);
	return ret;
}

char *
history_last_line(struct target *t)
{
	char buf[4096], *nl, *line = NULL;
	struct stat st;
	off_t from;
	ssize_t n;
	int fd;

	fd = openat(target_state_fd(t), "history.log", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0 || st.st_size <= 0)
		goto out;
	from = st.st_size > (off_t)sizeof(buf) - 1 ? st.st_size - (off_t)sizeof(buf) + 1 : 0;
	if ((n = pread(fd, buf, sizeof(buf) - 1, from)) <= 0)
		goto out;
	buf[n] = '\0';
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	nl = strrchr(buf, '\n');
	if (nl == NULL && from > 0)
		goto out;	/* a line longer than the buffer: not worth showing */
	line = xstrdup(nl != NULL ? nl + 1 : buf);
out:
	close(fd);
	return line;
}
