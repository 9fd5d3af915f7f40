/*
 * wire/mirror.c: failover across mirrors (an absent file, a refused
 * connection), file:// and directory mirrors, resumed downloads, bounds.
 * HTTP itself is tested in test-http and, against nginx, in tests/func.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/err.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "tap.h"
#include "wire/mirror.h"

/* A loopback port nobody listens on. */
static int
closed_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd != -1 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	if (fd != -1)
		close(fd);
	return port;
}

static void
test_failover(void)
{
	char *refused = xasprintf("http://127.0.0.1:%d/dist", closed_port());
	char *urls[] = { refused, "empty", "file://PWD/full/" }, *data = NULL, cwd[4096];
	struct mirror_set *m = NULL;
	size_t len;

	if (getcwd(cwd, sizeof(cwd)) == NULL || system("mkdir -p empty full/channels && "
	    "printf pointer > full/channels/stable.pointer") != 0) {
		printf("Bail out! cannot set up mirrors\n");
		exit(1);
	}
	urls[2] = xasprintf("file://%s/full/", cwd);
	log_set_level(LOG_LEVEL_SILENT);
	CHECK(mirror_set_new(urls, 3, NULL, &m) == 0, "three mirrors: http, a directory, file://");
	CHECK(mirror_get(m, "channels/stable.pointer", 100, &data, &len) == 0 && len == 7 &&
	    strcmp(data, "pointer") == 0, "a refused connection and an absent file fail over "
	    "to the mirror that has it");
	CHECK(strcmp(mirror_current(m), urls[2]) == 0, "which is now in use");
	free(data);
	CHECK(mirror_get(m, "channels/other.pointer", 100, &data, &len) == DS_ERR_NOTFOUND &&
	    data == NULL, "a file no mirror has: not found");
	mirror_rewind(m);
	CHECK(mirror_get(m, "channels/stable.pointer", 3, &data, &len) == DS_ERR_INVALID,
	    "a file past its bound is refused by every mirror");
	mirror_set_free(m);
	log_set_level(LOG_LEVEL_INFO);
	free(urls[2]);
	free(refused);
}

static void
test_resume(void)
{
	char *urls[] = { "dir" }, *data = NULL;
	struct mirror_set *m = NULL;
	uint64_t size = 0, received = 0;
	size_t len;
	int fd;

	if (system("mkdir -p dir/objects && printf 0123456789 > dir/objects/x") != 0 ||
	    (fd = open("part", O_RDWR | O_CREAT | O_TRUNC, 0644)) == -1 || write(fd, "0123", 4) != 4) {
		printf("Bail out! cannot set up a part\n");
		exit(1);
	}
	CHECK(mirror_set_new(urls, 1, NULL, &m) == 0, "a directory mirror");
	CHECK(mirror_fetch(m, "objects/x", fd, 4, 100, NULL, NULL, &size, &received) == 0 &&
	    size == 10 && received == 6, "a part resumes at its byte (%llu received)",
	    (unsigned long long)received);
	lseek(fd, 0, SEEK_SET);
	CHECK(fileio_read_fd(fd, 100, &data, &len) == 0 && strcmp(data, "0123456789") == 0,
	    "and holds the whole file");
	free(data);
	close(fd);
	mirror_set_free(m);
}

static void
test_urls(void)
{
	char *bad[] = { "ftp://example.org/dist" }, *none[] = { "" };
	struct mirror_set *m = NULL;

	log_set_level(LOG_LEVEL_SILENT);
	CHECK(mirror_set_new(bad, 1, NULL, &m) == DS_ERR_CONFIG && m == NULL,
	    "an ftp:// mirror is refused");
	CHECK(mirror_set_new(none, 1, NULL, &m) == DS_ERR_CONFIG, "an empty one too");
	CHECK(mirror_set_new(bad, 0, NULL, &m) == DS_ERR_CONFIG, "and no mirror at all");
	log_set_level(LOG_LEVEL_INFO);
}

int
main(void)
{
	tap_run("failover", test_failover);
	tap_run("resume", test_resume);
	tap_run("urls", test_urls);
	return tap_done();
}
