/*
 * HTTP over libcurl: the one place distsync speaks HTTP (health checks now,
 * an HTTP mirror transport later). Every request is set up the same way:
 * http:// and https:// only; a connect timeout and a low-speed limit (a
 * stalled transfer fails); TLS verified against the system's CAs or a given
 * CA file; proxies from the environment as libcurl reads them (http_proxy,
 * https_proxy, all_proxy, no_proxy), except that loopback names are always
 * reached directly; redirects not followed unless asked; HTTP/2 over TLS where
 * libcurl has it, else HTTP/1.1; a bounded response body. Nothing here logs:
 * each call hands back a line saying what happened, naming the URL.
 */
#ifndef DS_HTTP_H
#define DS_HTTP_H

#include <stddef.h>

#define HTTP_CONNECT_TIMEOUT_MS	10000		/* TCP and TLS handshake */
#define HTTP_LOW_SPEED_TIME_S	30		/* under 1 byte/s this long: stalled */
#define HTTP_BODY_MAX		(1024 * 1024)	/* bytes of body http_get keeps by default */
#define HTTP_MAX_REDIRECTS	5		/* when follow_redirects is set */

struct buf;

struct http_opts {
	unsigned	 timeout_ms;		/* the whole request; 0: no limit but the low-speed one */
	unsigned	 connect_timeout_ms;	/* 0: HTTP_CONNECT_TIMEOUT_MS (never past timeout_ms) */
	unsigned	 low_speed_time_s;	/* 0: HTTP_LOW_SPEED_TIME_S */
	const char	*ca_file;		/* PEM bundle for https; NULL: the system's CAs */
	int		 follow_redirects;	/* 0: a 3xx is the answer */
	size_t		 body_max;		/* 0: HTTP_BODY_MAX; a longer body fails the request */
};

struct http_response {
	int		 status;	/* the final answer's status code; 0: no HTTP answer */
	char		*status_line;	/* "HTTP/1.1 503 Service Unavailable", or NULL */
	struct buf	*body;		/* the body, at most body_max bytes; NULL when none came */
};

/*
 * GETs url with opts (NULL: the defaults, no overall time limit). Returns 0
 * when an HTTP answer came, whatever its status (resp->status); otherwise
 * DS_ERR_INVALID for a URL that is not a plain http:// or https:// URL
 * (user names in it are refused too) or a body longer than body_max,
 * DS_ERR_CONNECT when the host could not be resolved or reached or TLS
 * failed, DS_ERR_TIMEOUT when a time limit passed, DS_ERR_PROTO when the
 * answer was not HTTP. resp is always filled (release it with
 * http_response_release). detail (may be NULL) gets a newly allocated line,
 * "GET URL: what happened", that the caller frees. Does not log.
 */
int	http_get(const char *url, const struct http_opts *opts, struct http_response *resp,
	    char **detail);

/* A download into a file, resumable at a byte (http_fetch). */
struct http_fetch {
	int		 fd;		/* the file: bytes 0..offset are already there */
	uint64_t	 offset;	/* asked for with a Range request when > 0 */
	uint64_t	 max;		/* the most bytes the whole file may have */
	uint64_t	 rate;		/* bytes per second at most; 0: no cap */
	/* Called as body bytes arrive with the count so far in this call (may be NULL). */
	void		(*progress)(uint64_t received, void *arg);
	void		*arg;
	/* filled by http_fetch */
	int		 status;	/* the final answer's status; 0: none */
	int		 range_ignored;	/* asked for a range, got the whole file: fd was rewritten */
	uint64_t	 size;		/* bytes the file holds now, whole or cut */
	uint64_t	 received;	/* body bytes that crossed the link in this call */
	uint64_t	 wire;		/* those and the answers' headers */
};

/*
 * GETs url into f->fd. With f->offset > 0 it asks for the rest (Range); a
 * server that answers 206 from that byte is appended to; one that answers
 * 200 is taken from byte 0 and the file rewritten (f->range_ignored); a
 * 206 from another byte is refused (DS_ERR_PROTO). What arrives is written
 * at once, so a transfer cut short leaves f->size bytes for the next call to
 * resume from. Returns 0 when the whole answer came (200 or 206);
 * DS_ERR_NOTFOUND for 404 or 410; DS_ERR_PEER for another status (the body
 * is not written); DS_ERR_INVALID when the file would pass f->max bytes; else
 * what http_get returns. detail as http_get's. Does not log.
 */
int	http_fetch(const char *url, const struct http_opts *opts, struct http_fetch *f,
	    char **detail);

/* Frees what http_get put in resp (safe on a zeroed or released one). */
void	http_response_release(struct http_response *resp);

/*
 * Asks url "are you up?": a GET with the default options that gives up
 * after timeout_ms and stops reading at the first byte of the body. Returns
 * 0 when the status is 2xx; DS_ERR_PEER when another status came
 * (*status_out holds it); otherwise what http_get returns, *status_out 0.
 * detail (may be NULL) gets a newly allocated line naming the URL and the
 * status line or what failed; the caller frees it. Does not log.
 */
int	http_get_status(const char *url, unsigned timeout_ms, int *status_out, char **detail);

#endif
