/* Transport wrappers: byte counts, bandwidth limit, early-EOF messages; see xport.h. */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "wire/xport-local.h"
#include "wire/xport.h"

#define BW_CHUNK	16384	/* bytes sent per bucket check */

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Waits until the token bucket holds len bytes, then takes them. The bucket
 * holds at most a quarter second of traffic, so a burst stays short.
 */
static void
bw_wait(struct xport *x, size_t len)
{
	uint64_t cap = x->bwlimit / 4 > BW_CHUNK ? x->bwlimit / 4 : BW_CHUNK;
	uint64_t now, add;

	for (;;) {
		now = now_ns();
		if (x->bw_last_ns == 0) {
			x->bw_last_ns = now;
			x->bw_tokens = BW_CHUNK;
		}
		add = (now - x->bw_last_ns) / 1000 * x->bwlimit / 1000000;
		if (add > 0) {
			x->bw_tokens = x->bw_tokens + add > cap ? cap : x->bw_tokens + add;
			x->bw_last_ns = now;
		}
		if (x->bw_tokens >= len) {
			x->bw_tokens -= len;
			return;
		}
		{
			uint64_t ns = (len - x->bw_tokens) * 1000000000u / x->bwlimit;
			struct timespec ts = { ns / 1000000000u, ns % 1000000000u };

			if (ns < 1000000)
				ts.tv_nsec = 1000000;
			while (nanosleep(&ts, &ts) != 0 && errno == EINTR &&
			    interrupt_signal() == 0)
				;
			if (interrupt_signal() != 0)
				return;	/* xport_write notices it */
		}
	}
}

ssize_t
xport_read(struct xport *x, void *buf, size_t len)
{
	ssize_t n;

	if (interrupt_signal() != 0)
		return DS_ERR_INTERRUPTED;
	n = x->ops->read(x, buf, len);

	if (n > 0)
		x->bytes_in += (uint64_t)n;
	return n;
}

int
xport_read_full(struct xport *x, void *buf, size_t len)
{
	unsigned char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = xport_read(x, p, len);
		if (n < 0)
			return (int)n;
		if (n == 0) {
			log_error("%s: connection closed by the peer", x->peer);
			return DS_ERR_CONNECT;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
xport_write(struct xport *x, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t n;
	int r;

	while (len > 0) {
		n = len;
		if (x->bwlimit > 0) {
			if (n > BW_CHUNK)
				n = BW_CHUNK;
			bw_wait(x, n);
		}
		if (interrupt_signal() != 0)
			return DS_ERR_INTERRUPTED;
		if ((r = x->ops->write(x, p, n)) != 0)
			return r;
		x->bytes_out += n;
		p += n;
		len -= n;
	}
	return 0;
}

int
xport_shutdown(struct xport *x)
{
	return x->ops->shutdown(x);
}

int
xport_close(struct xport *x)
{
	if (x->ops == NULL)
		return 0;
	if (!x->closed) {
		x->close_status = x->ops->close(x);
		x->closed = 1;
	}
	return x->close_status;
}

void
xport_free(struct xport *x)
{
	if (x == NULL)
		return;
	if (x->ops != NULL) {
		xport_close(x);
		if (x->ops->free_priv != NULL)
			x->ops->free_priv(x);
	}
	free(x->peer_error);
	free(x->peer);
	free(x);
}

/*
 * A transport over two fds (a socketpair to a forked receiver, or the
 * stdin/stdout of serve). The idle timeout is enforced with poll.
 */
struct fd_priv {
	int	in;
	int	out;
	pid_t	child;		/* reaped on close, or -1 */
};

/* Waits for fd to be ready for events; DS_ERR_TIMEOUT after the idle timeout. */
static int
fd_wait(struct xport *x, int fd, short events)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int n;

	if (x->idle_timeout == 0)
		return 0;
	for (;;) {
		n = poll(&pfd, 1, (int)(x->idle_timeout > 2000000 ? 2000000000 :
		    x->idle_timeout * 1000));
		if (n > 0)
			return 0;
		if (n == 0) {
			log_error("%s: no progress for %u seconds", x->peer, x->idle_timeout);
			return DS_ERR_TIMEOUT;
		}
		if (errno != EINTR) {
			log_errno("%s: poll", x->peer);
			return DS_ERR_SYSTEM;
		}
		if (interrupt_signal() != 0)
			return DS_ERR_INTERRUPTED;
	}
}

static ssize_t
fd_read(struct xport *x, void *buf, size_t len)
{
	struct fd_priv *p = x->priv;
	ssize_t n;
	int r;

	for (;;) {
		if ((r = fd_wait(x, p->in, POLLIN)) != 0)
			return r;
		n = read(p->in, buf, len);
		if (n >= 0)
			return n;
		if (errno == ECONNRESET)
			return 0;
		if (errno == EINTR && interrupt_signal() != 0)
			return DS_ERR_INTERRUPTED;
		if (errno != EINTR && errno != EAGAIN) {
			log_errno("%s: read", x->peer);
			return DS_ERR_CONNECT;
		}
	}
}

static int
fd_write(struct xport *x, const void *buf, size_t len)
{
	struct fd_priv *p = x->priv;
	const char *c = buf;
	ssize_t n;
	int r;

	while (len > 0) {
		if ((r = fd_wait(x, p->out, POLLOUT)) != 0)
			return r;
		n = write(p->out, c, len);
		if (n < 0) {
			if (errno == EINTR && interrupt_signal() != 0)
				return DS_ERR_INTERRUPTED;
			if (errno == EINTR || errno == EAGAIN)
				continue;
			if (errno == EPIPE || errno == ECONNRESET)
				log_error("%s: connection closed by the peer", x->peer);
			else
				log_errno("%s: write", x->peer);
			return DS_ERR_CONNECT;
		}
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
fd_shutdown(struct xport *x)
{
	struct fd_priv *p = x->priv;

	if (p->out < 0)
		return 0;
	if (p->out == p->in) {
		if (shutdown(p->out, SHUT_WR) != 0 && errno != ENOTCONN) {
			log_errno("%s: shutdown", x->peer);
			return DS_ERR_SYSTEM;
		}
		return 0;
	}
	close(p->out);
	p->out = -1;
	return 0;
}

static int
fd_close(struct xport *x)
{
	struct fd_priv *p = x->priv;
	int status, r = 0;

	if (p->out >= 0 && p->out != p->in)
		close(p->out);
	if (p->in >= 0)
		close(p->in);
	p->in = p->out = -1;
	if (p->child > 0) {
		while (waitpid(p->child, &status, 0) < 0) {
			if (errno != EINTR) {
				log_errno("%s: waitpid", x->peer);
				p->child = -1;
				return DS_ERR_SYSTEM;
			}
		}
		p->child = -1;
		if (WIFEXITED(status))
			r = WEXITSTATUS(status);
		else {
			log_error("%s: receiver killed by signal %d", x->peer, WTERMSIG(status));
			r = DS_ERR_CHILD;
		}
	}
	return r;
}

static void
fd_free_priv(struct xport *x)
{
	free(x->priv);
	x->priv = NULL;
}

static const struct xport_ops fd_ops = {
	.read = fd_read,
	.write = fd_write,
	.shutdown = fd_shutdown,
	.close = fd_close,
	.free_priv = fd_free_priv,
};

struct xport *
xport_fd_new(int in_fd, int out_fd, const char *peer)
{
	struct xport *x = xcalloc(1, sizeof(*x));
	struct fd_priv *p = xcalloc(1, sizeof(*p));

	p->in = in_fd;
	p->out = out_fd;
	p->child = -1;
	x->ops = &fd_ops;
	x->priv = p;
	x->peer = xstrdup(peer);
	return x;
}

void
xport_fd_set_child(struct xport *x, pid_t child)
{
	struct fd_priv *p = x->priv;

	p->child = child;
}
