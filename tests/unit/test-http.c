/*
 * base/http.c against loopback HTTP servers this program starts: statuses,
 * refused and silent servers, bounded bodies, redirects, URLs refused before
 * any connection, proxies from the environment.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/fileio.h"
#include "base/http.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "tap.h"

/* Far past any time limit a test gives; a hang shows as a failed bound, not a stuck run. */
#define SERVER_HOLD_S	60

enum server_mode {
	SERVER_ANSWER,		/* answer, then close */
	SERVER_ANSWER_HOLD,	/* answer, then keep the connection open */
	SERVER_SILENT,		/* read the request, never answer */
};

/*
 * A loopback server in a child: for each of count connections it reads the
 * request head and sends answer with "%R" replaced by the request line.
 * Listening before the fork, so a client cannot find it not yet there.
 */
static pid_t
server_start(enum server_mode mode, const char *answer, int count, int *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	pid_t pid;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
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
		char req[4096], *p;
		size_t got = 0;
		int c = accept(fd, NULL, NULL);

		if (c == -1)
			_exit(1);
		while (got < sizeof(req) - 1) {
			ssize_t n = read(c, req + got, sizeof(req) - 1 - got);
			if (n <= 0)
				break;
			got += (size_t)n;
			req[got] = '\0';
			if (strstr(req, "\r\n\r\n") != NULL)
				break;
		}
		req[got] = '\0';
		req[strcspn(req, "\r\n")] = '\0';
		if (mode == SERVER_SILENT) {
			sleep(SERVER_HOLD_S);
			_exit(0);
		}
		if ((p = strstr(answer, "%R")) != NULL)
			dprintf(c, "%.*s%s%s", (int)(p - answer), answer, req, p + 2);
		else
			dprintf(c, "%s", answer);
		if (mode == SERVER_ANSWER_HOLD)
			sleep(SERVER_HOLD_S);
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

/* A loopback port nobody listens on (bound, then closed). */
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

/* S with its control characters shown as '?', for a one-line TAP description. */
static char *
one_line(char *s)
{
	for (char *p = s; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20)
			*p = '?';
	return s;
}

static int
has(const char *s, const char *what)
{
	return s != NULL && strstr(s, what) != NULL;
}

static void
test_status(void)
{
	char *detail = NULL, *url;
	int port = 0, status = -1, r;
	pid_t pid;

	pid = server_start(SERVER_ANSWER, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 1, &port);
	url = xasprintf("http://127.0.0.1:%d/openmrs/health?x=1#frag", port);
	r = http_get_status(url, 10000, &status, &detail);
	CHECK(r == 0 && status == 200 && has(detail, url) && has(detail, "200 OK"),
	    "200 is ok: %s", detail);
	free(detail);
	free(url);
	server_stop(pid);

	pid = server_start(SERVER_ANSWER,
	    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops", 1, &port);
	url = xasprintf("http://localhost:%d/", port);
	r = http_get_status(url, 10000, &status, &detail);
	CHECK(r == DS_ERR_PEER && status == 500 && has(detail, url) &&
	    has(detail, "500 Internal Server Error"), "500 is not ok, and says so: %s", detail);
	free(detail);
	free(url);
	server_stop(pid);

	/* 2xx other than 200, and an HTTP/1.0 server without a length. */
	pid = server_start(SERVER_ANSWER, "HTTP/1.0 204 No Content\r\n\r\n", 1, &port);
	url = xasprintf("http://127.0.0.1:%d/ping", port);
	r = http_get_status(url, 10000, &status, &detail);
	CHECK(r == 0 && status == 204, "204 is ok: %s", detail);
	free(detail);
	free(url);
	server_stop(pid);

	/* Only the status matters: a body that never ends does not hold us. */
	pid = server_start(SERVER_ANSWER_HOLD, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nst",
	    1, &port);
	url = xasprintf("http://127.0.0.1:%d/", port);
	{
		uint64_t t0 = util_now_ms();
		r = http_get_status(url, 20000, &status, &detail);
		CHECK(r == 0 && status == 200 && util_now_ms() - t0 < 15000,
		    "the status is read without waiting for the body: %s", detail);
	}
	free(detail);
	free(url);
	server_stop(pid);

	pid = server_start(SERVER_ANSWER, "garbage\r\n\r\n", 1, &port);
	url = xasprintf("http://127.0.0.1:%d", port);
	r = http_get_status(url, 10000, &status, &detail);
	CHECK(r == DS_ERR_PROTO && status == 0 && has(detail, url),
	    "a non-HTTP answer is not ok: %s", detail);
	free(detail);
	free(url);
	server_stop(pid);
}

static void
test_failures(void)
{
	char *detail = NULL, *url;
	int port, status = -1, r;
	uint64_t t0, dt;
	pid_t pid;

	port = closed_port();
	url = xasprintf("http://127.0.0.1:%d/", port);
	r = http_get_status(url, 10000, &status, &detail);
	CHECK(r == DS_ERR_CONNECT && status == 0 && has(detail, url) && has(detail, "refused"),
	    "connection refused: %s", detail);
	free(detail);
	free(url);

	/*
	 * A server that takes the connection and never answers: given up after
	 * the time given, not before and not long after (the bound only catches
	 * a limit that is not applied: the server holds on for a minute).
	 */
	pid = server_start(SERVER_SILENT, NULL, 1, &port);
	url = xasprintf("http://127.0.0.1:%d/", port);
	t0 = util_now_ms();
	r = http_get_status(url, 1000, &status, &detail);
	dt = util_now_ms() - t0;
	CHECK(r == DS_ERR_TIMEOUT && status == 0 && has(detail, url) && has(detail, "timed out"),
	    "a silent server times out: %s", detail);
	CHECK(dt >= 900 && dt < 20000, "after the time given (%llu ms for 1000 ms)",
	    (unsigned long long)dt);
	free(detail);
	free(url);
	server_stop(pid);

	/* The whole request's limit also holds once the answer has begun. */
	pid = server_start(SERVER_ANSWER_HOLD, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart",
	    1, &port);
	url = xasprintf("http://127.0.0.1:%d/", port);
	{
		struct http_opts opts = { .timeout_ms = 1000 };
		struct http_response resp;

		t0 = util_now_ms();
		r = http_get(url, &opts, &resp, &detail);
		dt = util_now_ms() - t0;
		CHECK(r == DS_ERR_TIMEOUT && dt < 20000, "a body that stops coming times out: %s",
		    detail);
		http_response_release(&resp);
	}
	free(detail);
	free(url);
	server_stop(pid);
}

static void
test_urls(void)
{
	static const char *const bad[] = {
		"ftp://localhost/",
		"localhost:80",
		"HTTP://localhost/",
		"http://",
		"http://:80/",
		"http://host:/",
		"http://host:99999999/",
		"http://host:8x/",
		"http://host/a b",
		"http://host/a\r\nX-Evil: 1",
		"http://user@host/",
		"http://user:secret@host/",
		"http://[::1/",
		"",
	};
	char *detail = NULL, *url;
	int status = -1, r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t t0 = util_now_ms();
		r = http_get_status(bad[i], 60000, &status, &detail);
		CHECK(r == DS_ERR_INVALID && status == 0 && detail != NULL && util_now_ms() - t0 < 30000,
		    "bad URL %zu refused before any connection: %s", i,
		    detail != NULL ? one_line(detail) : "no detail");
		free(detail);
	}
	/* https is spoken: a closed port is a connection failure, not a refused URL. */
	url = xasprintf("https://127.0.0.1:%d/", closed_port());
	r = http_get_status(url, 10000, &status, &detail);
	CHECK(r == DS_ERR_CONNECT, "https URLs are accepted: %s", detail);
	free(detail);
	free(url);
}

static void
test_bodies(void)
{
	struct http_response resp;
	struct http_opts opts;
	char *detail = NULL, *url, *answer;
	int port = 0, r;
	pid_t pid;

	memset(&opts, 0, sizeof(opts));
	opts.timeout_ms = 10000;
	pid = server_start(SERVER_ANSWER, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
	    1, &port);
	url = xasprintf("http://127.0.0.1:%d/index", port);
	r = http_get(url, &opts, &resp, &detail);
	CHECK(r == 0 && resp.status == 200 && resp.body != NULL && buf_len(resp.body) == 11 &&
	    memcmp(buf_ptr(resp.body), "hello world", 11) == 0 &&
	    has(resp.status_line, "HTTP/1.1 200 OK"), "http_get keeps the body: %s", detail);
	http_response_release(&resp);
	free(detail);
	free(url);
	server_stop(pid);

	/* Past body_max, with and without a Content-Length announcing it. */
	answer = xmalloc(4096);
	snprintf(answer, 4096, "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n%02000d", 7);
	pid = server_start(SERVER_ANSWER, answer, 1, &port);
	url = xasprintf("http://127.0.0.1:%d/", port);
	opts.body_max = 1000;
	r = http_get(url, &opts, &resp, &detail);
	CHECK(r == DS_ERR_INVALID && resp.body == NULL && has(detail, url),
	    "a body over the limit fails (announced): %s", detail);
	http_response_release(&resp);
	free(detail);
	free(url);
	server_stop(pid);
	snprintf(answer, 4096, "HTTP/1.0 200 OK\r\n\r\n%02000d", 7);
	pid = server_start(SERVER_ANSWER, answer, 1, &port);
	url = xasprintf("http://127.0.0.1:%d/", port);
	r = http_get(url, &opts, &resp, &detail);
	CHECK(r == DS_ERR_INVALID && resp.body == NULL && has(detail, "larger than 1000 bytes"),
	    "a body over the limit fails (unannounced): %s", detail);
	http_response_release(&resp);
	free(detail);
	free(url);
	server_stop(pid);
	free(answer);
	opts.body_max = 0;

	/* Redirects are answers unless asked for. */
	pid = server_start(SERVER_ANSWER,
	    "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n",
	    1, &port);
	url = xasprintf("http://127.0.0.1:%d/", port);
	r = http_get(url, &opts, &resp, &detail);
	CHECK(r == 0 && resp.status == 302 && resp.body == NULL, "a redirect is not followed: %s",
	    detail);
	http_response_release(&resp);
	free(detail);
	free(url);
	server_stop(pid);
}

static void
test_proxy(void)
{
	struct http_response resp;
	struct http_opts opts;
	char *detail = NULL, *url, *proxy;
	int port = 0, proxy_port = 0, r;
	pid_t pid, ppid;

	memset(&opts, 0, sizeof(opts));
	opts.timeout_ms = 10000;
	/* A "proxy" that echoes the request line it was given. */
	ppid = server_start(SERVER_ANSWER,
	    "HTTP/1.0 200 OK\r\n\r\n%R", 1, &proxy_port);
	proxy = xasprintf("http://127.0.0.1:%d", proxy_port);
	setenv("http_proxy", proxy, 1);
	r = http_get("http://mirror.example.invalid/dist/INDEX", &opts, &resp, &detail);
	CHECK(r == 0 && resp.body != NULL && buf_len(resp.body) > 0 &&
	    memmem(buf_ptr(resp.body), buf_len(resp.body),
	    "GET http://mirror.example.invalid/dist/INDEX HTTP/1.1", 50) != NULL,
	    "http_proxy from the environment carries the request: %s", detail);
	http_response_release(&resp);
	free(detail);

	/* A loopback URL never goes through it (nor is no_proxy needed for that). */
	pid = server_start(SERVER_ANSWER, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\ndirect", 1,
	    &port);
	url = xasprintf("http://127.0.0.1:%d/", port);
	r = http_get(url, &opts, &resp, &detail);
	CHECK(r == 0 && resp.body != NULL && buf_len(resp.body) == 6 &&
	    memcmp(buf_ptr(resp.body), "direct", 6) == 0, "loopback is reached directly: %s",
	    detail);
	http_response_release(&resp);
	free(detail);
	free(url);
	server_stop(pid);
	pid = server_start(SERVER_ANSWER, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\ndirect", 1,
	    &port);
	url = xasprintf("http://localhost:%d/", port);
	setenv("no_proxy", "example.org", 1);
	r = http_get(url, &opts, &resp, &detail);
	CHECK(r == 0 && resp.body != NULL && buf_len(resp.body) == 6,
	    "localhost too, with a no_proxy of other names: %s", detail);
	http_response_release(&resp);
	free(detail);
	free(url);
	server_stop(pid);
	unsetenv("no_proxy");
	unsetenv("http_proxy");
	server_stop(ppid);
	free(proxy);
}

/* http_fetch of ANSWER into a file holding PREFIX: the return, the file, the fetch. */
static int
fetch_from(const char *answer, const char *prefix, uint64_t max, struct http_fetch *f,
    char **content, char **detail)
{
	char tmpl[] = "fetch-XXXXXX", *url;
	size_t len;
	int port = 0, r, fd = mkstemp(tmpl);
	pid_t pid = server_start(SERVER_ANSWER, answer, 1, &port);
	struct http_opts opts;

	memset(&opts, 0, sizeof(opts));
	opts.timeout_ms = 10000;
	memset(f, 0, sizeof(*f));
	f->fd = fd;
	f->offset = strlen(prefix);
	f->max = max;
	if (write(fd, prefix, strlen(prefix)) != (ssize_t)strlen(prefix))
		return -99;
	url = xasprintf("http://127.0.0.1:%d/objects/ab/x.zst", port);
	r = http_fetch(url, &opts, f, detail);
	lseek(fd, 0, SEEK_SET);
	if (fileio_read_fd(fd, 1 << 20, content, &len) != 0)
		*content = xstrdup("(unreadable)");
	close(fd);
	free(url);
	server_stop(pid);
	return r;
}

static void
test_fetch(void)
{
	struct http_fetch f;
	char *content = NULL, *detail = NULL;
	int r;

	r = fetch_from("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", "", 100, &f,
	    &content, &detail);
	CHECK(r == 0 && f.status == 200 && f.size == 10 && strcmp(content, "0123456789") == 0,
	    "a whole file is fetched into the fd: %s", detail);
	free(content);
	free(detail);
	r = fetch_from("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 4-9/10\r\n"
	    "Content-Length: 6\r\n\r\n456789", "0123", 100, &f, &content, &detail);
	CHECK(r == 0 && f.status == 206 && f.size == 10 && f.received == 6 && !f.range_ignored &&
	    strcmp(content, "0123456789") == 0, "a resumed download appends the range: %s", detail);
	free(content);
	free(detail);
	r = fetch_from("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nABCDEFGHIJ", "0123", 100, &f,
	    &content, &detail);
	CHECK(r == 0 && f.range_ignored && f.size == 10 && strcmp(content, "ABCDEFGHIJ") == 0,
	    "a server that ignores the range: the file is read again from byte 0: %s", detail);
	free(content);
	free(detail);
	r = fetch_from("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 2-9/10\r\n"
	    "Content-Length: 8\r\n\r\n23456789", "0123", 100, &f, &content, &detail);
	CHECK(r == DS_ERR_PROTO && strcmp(content, "0123") == 0,
	    "a range from another byte is refused, the part untouched: %s", detail);
	free(content);
	free(detail);
	r = fetch_from("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found", "", 100, &f,
	    &content, &detail);
	CHECK(r == DS_ERR_NOTFOUND && content[0] == '\0' && has(detail, "404"),
	    "a 404 is not found, and its page is not the file: %s", detail);
	free(content);
	free(detail);
	r = fetch_from("HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy", "", 100, &f,
	    &content, &detail);
	CHECK(r == DS_ERR_PEER && content[0] == '\0', "a 5xx is the peer's error: %s", detail);
	free(content);
	free(detail);
	r = fetch_from("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", "", 5, &f,
	    &content, &detail);
	CHECK(r == DS_ERR_INVALID && f.size <= 5, "a file past its bound is refused: %s", detail);
	free(content);
	free(detail);
	r = fetch_from("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234", "", 100, &f,
	    &content, &detail);
	CHECK(r != 0 && f.size == 5 && strcmp(content, "01234") == 0,
	    "a cut transfer keeps what came, to resume from: %s", detail);
	free(content);
	free(detail);
}

int
main(void)
{
	static const char *const proxies[] = { "http_proxy", "HTTP_PROXY", "https_proxy",
	    "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY" };

	signal(SIGPIPE, SIG_IGN);
	/* The proxy test sets its own; the caller's must not steer the others. */
	for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++)
		unsetenv(proxies[i]);
	tap_run("http-status", test_status);
	tap_run("http-failures", test_failures);
	tap_run("http-urls", test_urls);
	tap_run("http-bodies", test_bodies);
	tap_run("http-proxy", test_proxy);
	tap_run("http-fetch", test_fetch);
	return tap_done();
}
