/*
 * A transport is a reliable byte stream to the peer: an SSH exec channel
 * (xport-ssh.c) or a socketpair to a forked local receiver (xport-local.c).
 * proto.c frames messages on top; nothing else reads or writes a transport.
 */
#ifndef DS_XPORT_H
#define DS_XPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct xport;

struct xport_ops {
	/* Reads up to len bytes; returns bytes read, 0 at end of stream, or a DS_ERR_*. */
	ssize_t	(*read)(struct xport *x, void *buf, size_t len);
	/* Writes all len bytes; returns 0 or a DS_ERR_*. */
	int	(*write)(struct xport *x, const void *buf, size_t len);
	/* Half-closes the sending side (EOF to the peer); returns 0 or a DS_ERR_*. */
	int	(*shutdown)(struct xport *x);
	/*
	 * Closes the stream and reaps the peer; returns its exit status (>= 0)
	 * when known, or a DS_ERR_*. Frees nothing: xport_free does.
	 */
	int	(*close)(struct xport *x);
	void	(*free_priv)(struct xport *x);
};

struct xport {
	const struct xport_ops *ops;
	void		*priv;
	char		*peer;		/* host name (or "local") for messages */
	uint64_t	 bytes_in;	/* counted by the wrappers below */
	uint64_t	 bytes_out;
	uint64_t	 bwlimit;	/* bytes per second to send; 0 = none */
	unsigned	 idle_timeout;	/* seconds without progress before DS_ERR_TIMEOUT; 0 = none */
	uint64_t	 bw_last_ns;	/* token bucket of bwlimit: last refill (monotonic) */
	uint64_t	 bw_tokens;	/* bytes that may be sent now */
	int		 closed;	/* set by xport_close: ops->close runs once */
	int		 close_status;	/* what ops->close returned */
	char		*peer_error;	/* the last ERROR frame's message, whole; or NULL */
};

/* Wrappers that count bytes and apply bwlimit; use these, not ops directly. */
ssize_t	xport_read(struct xport *x, void *buf, size_t len);
/* Reads exactly len bytes; DS_ERR_PROTO (logged, naming the peer) at an early EOF. */
int	xport_read_full(struct xport *x, void *buf, size_t len);
int	xport_write(struct xport *x, const void *buf, size_t len);
int	xport_shutdown(struct xport *x);
int	xport_close(struct xport *x);
/* Frees x (closing it first if needed); NULL is fine. */
void	xport_free(struct xport *x);

/*
 * Wraps two already open fds (e.g. stdin and stdout of `serve`) as a
 * transport named PEER. close closes both fds and returns 0.
 */
struct xport *xport_fd_new(int in_fd, int out_fd, const char *peer);

/* Makes closing x also reap CHILD, returning its exit status (or DS_ERR_CHILD on a signal). */
void	xport_fd_set_child(struct xport *x, pid_t child);

#endif
