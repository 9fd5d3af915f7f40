/* HTTP over libcurl: one easy-handle setup for every request, errors turned into ours. */
#include "autoconf.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/http.h"
#include "base/xmalloc.h"

#define HTTP_STATUS_LINE_MAX	256
/* A loopback name is this machine: no proxy elsewhere can reach it. */
#define HTTP_DIRECT_NAMES	"localhost,127.0.0.1,::1"
#define HTTP_PROTOCOLS		"http,https"

/* One request in flight. */
struct http_xfer {
	CURL		*curl;
	CURLU		*url;
	char		*noproxy;
	char		 errbuf[CURL_ERROR_SIZE];
	char		 status_line[HTTP_STATUS_LINE_MAX];
	int		 status;	/* of status_line */
	int		 status_only;	/* stop when the final answer's headers are in */
	int		 stopped;	/* a callback ended the transfer on purpose */
	int		 too_big;	/* the body passed body_max */
	struct buf	*body;
	struct http_fetch *fetch;	/* a download into a file instead of body */
	uint64_t	 range_start;	/* of a 206's Content-Range; UINT64_MAX: none */
	int		 sink_ready;	/* the first body byte decided where bytes go */
	int		 sink_error;	/* a write failed or the answer broke a rule */
	char		 range[32];	/* "N-" of a resumed download */
};

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static CURLcode http_init_rc = CURLE_FAILED_INIT;

static void
http_global_init(void)
{
	http_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Refuses what a plain http(s) URL cannot hold; *why is static. */
static int
http_url_parse(const char *url, CURLU **out, const char **why)
{
	const char *authority, *end;
	CURLUcode uc;
	CURLU *u;

	*out = NULL;
	if (strncmp(url, "http://", 7) == 0)
		authority = url + 7;
	else if (strncmp(url, "https://", 8) == 0)
		authority = url + 8;
	else {
		*why = "not an http:// or https:// URL";
		return DS_ERR_INVALID;
	}
	end = authority + strcspn(authority, "/?#");
	/* libcurl takes both; neither belongs in a configured URL. */
	if (memchr(authority, '@', (size_t)(end - authority)) != NULL) {
		*why = "a user name in the URL is not supported";
		return DS_ERR_INVALID;
	}
	if (end > authority && end[-1] == ':') {
		*why = "empty port number";
		return DS_ERR_INVALID;
	}
	if ((u = curl_url()) == NULL) {
		*why = curl_easy_strerror(CURLE_OUT_OF_MEMORY);
		return DS_ERR_SYSTEM;
	}
	if ((uc = curl_url_set(u, CURLUPART_URL, url, 0)) != CURLUE_OK) {
		*why = curl_url_strerror(uc);
		curl_url_cleanup(u);
		return DS_ERR_INVALID;
	}
	*out = u;
	return 0;
}

/* The environment's no_proxy with the loopback names added (ours to free). */
static char *
http_noproxy(void)
{
	const char *env = getenv("no_proxy");

	if (env == NULL || *env == '\0')
		env = getenv("NO_PROXY");
	if (env == NULL || *env == '\0')
		return xstrdup(HTTP_DIRECT_NAMES);
	if (strcmp(env, "*") == 0)
		return xstrdup(env);
	return xasprintf("%s,%s", env, HTTP_DIRECT_NAMES);
}

/* The status code of "HTTP/x[.y] NNN ...", or 0. */
static int
http_status_of(const char *line)
{
	const char *p = line + strcspn(line, " ");

	p += strspn(p, " ");
	if (strspn(p, "0123456789") != 3)
		return 0;
	return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
}

static size_t
http_header_cb(char *data, size_t size, size_t count, void *arg)
{
	struct http_xfer *x = arg;
	size_t len = size * count, n;

	/* A download counts what crossed the link: its headers too. */
	if (x->fetch != NULL)
		x->fetch->wire += len;

	if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		for (n = 0; n < len && n < sizeof(x->status_line) - 1; n++)
			if (data[n] == '\r' || data[n] == '\n')
				break;
		memcpy(x->status_line, data, n);
		x->status_line[n] = '\0';
		x->status = http_status_of(x->status_line);
	} else if (len > 21 && strncasecmp(data, "Content-Range: bytes ", 21) == 0) {
		char *end;
		unsigned long long start;

		errno = 0;
		start = strtoull(data + 21, &end, 10);
		x->range_start = errno == 0 && end != data + 21 && *end == '-' ?
		    (uint64_t)start : UINT64_MAX;
	} else if (x->status_only && x->status >= 200 && len <= 2 &&
	    (data[0] == '\r' || data[0] == '\n')) {
		/* The blank line after the final answer's headers. */
		x->stopped = 1;
		return 0;
	}
	return len;
}

/* A download's body: decided at the first byte (append, rewrite or refuse), then written. */
static size_t
http_sink_cb(struct http_xfer *x, const char *data, size_t len)
{
	struct http_fetch *f = x->fetch;

	if (!x->sink_ready) {
		x->sink_ready = 1;
		f->status = x->status;
		if (x->status == 206 && x->range_start != f->offset) {
			x->sink_error = DS_ERR_PROTO;
			return 0;
		}
		if (x->status == 200 && f->offset > 0) {
			f->range_ignored = 1;
			f->size = 0;
			if (ftruncate(f->fd, 0) == -1) {
				x->sink_error = DS_ERR_SYSTEM;
				return 0;
			}
		}
		if (x->status != 200 && x->status != 206) {
			x->stopped = 1;	/* an error page is not the file */
			return 0;
		}
	}
	if (f->size + len > f->max || f->size + len < f->size) {
		x->sink_error = DS_ERR_INVALID;
		return 0;
	}
	for (size_t done = 0; done < len;) {
		ssize_t n = pwrite(f->fd, data + done, len - done, (off_t)(f->size + done));

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			x->sink_error = DS_ERR_SYSTEM;
			return 0;
		}
		done += (size_t)n;
	}
	f->size += len;
	f->received += len;
	f->wire += len;
	if (f->progress != NULL)
		f->progress(f->received, f->arg);
	return len;
}

static size_t
http_body_cb(char *data, size_t size, size_t count, void *arg)
{
	struct http_xfer *x = arg;
	size_t len = size * count;

	if (x->fetch != NULL)
		return http_sink_cb(x, data, len);
	if (x->body == NULL) {
		x->stopped = 1;
		return 0;
	}
	if (buf_put(x->body, data, len) != 0) {
		x->too_big = 1;
		return 0;
	}
	return len;
}

#define HTTP_SETOPT(x, rc, option, value) do {				\
	if ((rc) == CURLE_OK)						\
		(rc) = curl_easy_setopt((x)->curl, (option), (value));	\
} while (0)

/*
 * The one place a request is set up: every option that makes distsync's
 * HTTP behave as http.h promises. *why (static) says what failed.
 */
static int
http_xfer_setup(struct http_xfer *x, const char *url, const struct http_opts *opts,
    const char **why)
{
	long connect_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms :
	    HTTP_CONNECT_TIMEOUT_MS;
	long low_speed_s = opts->low_speed_time_s ? opts->low_speed_time_s :
	    HTTP_LOW_SPEED_TIME_S;
	CURLcode rc = CURLE_OK;
	int r;

	if (opts->timeout_ms != 0 && (unsigned long)connect_ms > opts->timeout_ms)
		connect_ms = (long)opts->timeout_ms;
	pthread_once(&http_once, http_global_init);
	if (http_init_rc != CURLE_OK) {
		*why = curl_easy_strerror(http_init_rc);
		return DS_ERR_SYSTEM;
	}
	if ((r = http_url_parse(url, &x->url, why)) != 0)
		return r;
	if ((x->curl = curl_easy_init()) == NULL) {
		*why = curl_easy_strerror(CURLE_FAILED_INIT);
		return DS_ERR_SYSTEM;
	}
	x->noproxy = http_noproxy();
	HTTP_SETOPT(x, rc, CURLOPT_CURLU, x->url);
#if LIBCURL_VERSION_NUM >= 0x075500	/* 7.85: the bit masks are deprecated */
	HTTP_SETOPT(x, rc, CURLOPT_PROTOCOLS_STR, HTTP_PROTOCOLS);
	HTTP_SETOPT(x, rc, CURLOPT_REDIR_PROTOCOLS_STR, HTTP_PROTOCOLS);
#else
	HTTP_SETOPT(x, rc, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
	HTTP_SETOPT(x, rc, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	HTTP_SETOPT(x, rc, CURLOPT_FOLLOWLOCATION, opts->follow_redirects ? 1L : 0L);
	HTTP_SETOPT(x, rc, CURLOPT_MAXREDIRS, (long)HTTP_MAX_REDIRECTS);
	/* Threads may call us: no SIGALRM (the threaded resolver keeps DNS timed). */
	HTTP_SETOPT(x, rc, CURLOPT_NOSIGNAL, 1L);
	HTTP_SETOPT(x, rc, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	HTTP_SETOPT(x, rc, CURLOPT_TIMEOUT_MS, (long)opts->timeout_ms);
	HTTP_SETOPT(x, rc, CURLOPT_LOW_SPEED_LIMIT, 1L);
	HTTP_SETOPT(x, rc, CURLOPT_LOW_SPEED_TIME, low_speed_s);
	HTTP_SETOPT(x, rc, CURLOPT_SSL_VERIFYPEER, 1L);
	HTTP_SETOPT(x, rc, CURLOPT_SSL_VERIFYHOST, 2L);
	if (opts->ca_file != NULL)
		HTTP_SETOPT(x, rc, CURLOPT_CAINFO, opts->ca_file);
	HTTP_SETOPT(x, rc, CURLOPT_NOPROXY, x->noproxy);
	HTTP_SETOPT(x, rc, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	HTTP_SETOPT(x, rc, CURLOPT_USERAGENT, PACKAGE_NAME "/" PACKAGE_VERSION);
	HTTP_SETOPT(x, rc, CURLOPT_ERRORBUFFER, x->errbuf);
	HTTP_SETOPT(x, rc, CURLOPT_HEADERFUNCTION, http_header_cb);
	HTTP_SETOPT(x, rc, CURLOPT_HEADERDATA, x);
	HTTP_SETOPT(x, rc, CURLOPT_WRITEFUNCTION, http_body_cb);
	HTTP_SETOPT(x, rc, CURLOPT_WRITEDATA, x);
	if (x->body != NULL)
		HTTP_SETOPT(x, rc, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)buf_max(x->body));
	/* CURLOPT_RANGE, not RESUME_FROM: a server that ignores ranges must not fail the GET. */
	if (x->fetch != NULL && x->fetch->offset > 0) {
		snprintf(x->range, sizeof(x->range), "%" PRIu64 "-", x->fetch->offset);
		HTTP_SETOPT(x, rc, CURLOPT_RANGE, x->range);
	}
	if (x->fetch != NULL && x->fetch->rate > 0)
		HTTP_SETOPT(x, rc, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)x->fetch->rate);
	if (rc != CURLE_OK) {
		*why = curl_easy_strerror(rc);
		return DS_ERR_SYSTEM;
	}
	return 0;
}

static void
http_xfer_release(struct http_xfer *x)
{
	if (x->curl != NULL)
		curl_easy_cleanup(x->curl);
	curl_url_cleanup(x->url);
	free(x->noproxy);
	buf_free(x->body);
	memset(x, 0, sizeof(*x));
}

/* Our code for a failed transfer. */
static int
http_error_of(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return DS_ERR_TIMEOUT;
	case CURLE_URL_MALFORMAT:
	case CURLE_FILESIZE_EXCEEDED:
		return DS_ERR_INVALID;
	case CURLE_UNSUPPORTED_PROTOCOL:	/* also an HTTP/0.9 answer: not HTTP */
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_TOO_MANY_REDIRECTS:
	case CURLE_BAD_CONTENT_ENCODING:
	case CURLE_PARTIAL_FILE:
		return DS_ERR_PROTO;
	case CURLE_OUT_OF_MEMORY:
		return DS_ERR_SYSTEM;
	default:	/* resolving, connecting, TLS, a connection lost */
		return DS_ERR_CONNECT;
	}
}

/*
 * "GET URL: what failed" for a transfer that ended with rc: libcurl's own
 * account (its error buffer, else curl_easy_strerror) and the system's error.
 */
static char *
http_failure(struct http_xfer *x, const char *url, CURLcode rc)
{
	const char *what = x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(rc);
	const char *sys = NULL;
	long os_errno = 0;

	if (x->too_big)
		return xasprintf("GET %s: the answer is larger than %zu bytes", url,
		    buf_max(x->body));
	if (curl_easy_getinfo(x->curl, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK &&
	    os_errno != 0 && strstr(what, strerror((int)os_errno)) == NULL)
		sys = strerror((int)os_errno);
	return xasprintf("GET %s: %s%s%s%s", url,
	    rc == CURLE_OPERATION_TIMEDOUT && strstr(what, "timed out") == NULL ? "timed out: " : "",
	    what, sys != NULL ? ": " : "", sys != NULL ? sys : "");
}

/* Sets up and runs one GET; fills resp (status, status line, body). */
static int
http_request(const char *url, const struct http_opts *opts, int status_only,
    struct http_response *resp, char **detail)
{
	static const struct http_opts defaults;
	struct http_xfer x;
	const char *why = NULL;
	char *line = NULL;
	CURLcode rc;
	int r;

	memset(resp, 0, sizeof(*resp));
	memset(&x, 0, sizeof(x));
	if (detail != NULL)
		*detail = NULL;
	if (opts == NULL)
		opts = &defaults;
	x.status_only = status_only;
	if (!status_only)
		x.body = buf_new(opts->body_max ? opts->body_max : HTTP_BODY_MAX);
	if ((r = http_xfer_setup(&x, url, opts, &why)) != 0) {
		line = xasprintf("%s: %s", url, why);
		goto out;
	}
	rc = curl_easy_perform(x.curl);
	if (rc == CURLE_WRITE_ERROR && x.stopped)
		rc = CURLE_OK;
	if (rc == CURLE_FILESIZE_EXCEEDED)
		x.too_big = 1;
	if (rc != CURLE_OK) {
		r = x.too_big ? DS_ERR_INVALID : http_error_of(rc);
		line = http_failure(&x, url, rc);
		goto out;
	}
	if (x.status == 0) {
		long code = 0;
		if (curl_easy_getinfo(x.curl, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK &&
		    code > 0 && code < 1000)
			x.status = (int)code;
	}
	resp->status = x.status;
	if (x.status_line[0] != '\0') {
		resp->status_line = xstrdup(x.status_line);
		line = xasprintf("GET %s: %s", url, x.status_line);
	} else
		line = xasprintf("GET %s: status %d", url, x.status);
	if (x.body != NULL && buf_len(x.body) > 0) {
		resp->body = x.body;
		x.body = NULL;
	}
	r = 0;
out:
	if (detail != NULL) {
		*detail = line;
		line = NULL;
	}
	free(line);
	http_xfer_release(&x);
	return r;
}

int
http_get(const char *url, const struct http_opts *opts, struct http_response *resp,
    char **detail)
{
	return http_request(url, opts, 0, resp, detail);
}

void
http_response_release(struct http_response *resp)
{
	free(resp->status_line);
	buf_free(resp->body);
	memset(resp, 0, sizeof(*resp));
}

int
http_get_status(const char *url, unsigned timeout_ms, int *status_out, char **detail)
{
	struct http_opts opts;
	struct http_response resp;
	int r;

	memset(&opts, 0, sizeof(opts));
	opts.timeout_ms = timeout_ms;
	*status_out = 0;
	r = http_request(url, &opts, 1, &resp, detail);
	if (r == 0) {
		*status_out = resp.status;
		if (resp.status < 200 || resp.status > 299)
			r = DS_ERR_PEER;
	}
	http_response_release(&resp);
	return r;
}

int
http_fetch(const char *url, const struct http_opts *opts, struct http_fetch *f, char **detail)
{
	static const struct http_opts defaults;
	struct http_xfer x;
	const char *why = NULL;
	char *line = NULL;
	CURLcode rc;
	int r;

	memset(&x, 0, sizeof(x));
	if (detail != NULL)
		*detail = NULL;
	if (opts == NULL)
		opts = &defaults;
	f->status = 0;
	f->range_ignored = 0;
	f->size = f->offset;
	f->received = 0;
	f->wire = 0;
	x.fetch = f;
	x.range_start = UINT64_MAX;
	if ((r = http_xfer_setup(&x, url, opts, &why)) != 0) {
		line = xasprintf("%s: %s", url, why);
		goto out;
	}
	rc = curl_easy_perform(x.curl);
	if (f->status == 0)
		f->status = x.status;
	if (x.sink_error != 0) {
		r = x.sink_error;
		line = xasprintf("GET %s: %s", url, r == DS_ERR_INVALID ?
		    "the file is larger than it may be" : r == DS_ERR_PROTO ?
		    "the server sent another range than the one asked for" : strerror(errno));
		goto out;
	}
	if (rc == CURLE_WRITE_ERROR && x.stopped)
		rc = CURLE_OK;
	/* A range past the end, or an error status: no body was taken. */
	if (rc == CURLE_OK && f->status != 200 && f->status != 206) {
		r = f->status == 404 || f->status == 410 ? DS_ERR_NOTFOUND : DS_ERR_PEER;
		line = xasprintf("GET %s: %s", url, x.status_line[0] != '\0' ? x.status_line :
		    "no HTTP status");
		goto out;
	}
	if (rc != CURLE_OK) {
		/* A body cut short is a dropped link for a download: resumed, not refused. */
		r = rc == CURLE_PARTIAL_FILE ? DS_ERR_CONNECT : http_error_of(rc);
		line = http_failure(&x, url, rc);
		goto out;
	}
	line = xasprintf("GET %s: %s", url, x.status_line);
	r = 0;
out:
	if (detail != NULL) {
		*detail = line;
		line = NULL;
	}
	free(line);
	http_xfer_release(&x);
	return r;
}
