/*
 * A ProxyJump hop carried by a thread (see tunnel.h).
 *
 * The thread owns the jump session and its channel from tunnel_open to
 * tunnel_free; nothing else touches them meanwhile, as libssh requires of a
 * session used from several threads. It moves bytes both ways through
 * buffers of its own, never blocking on one direction while the other has
 * work: a channel write is never larger than the window the peer granted,
 * and a full socket pair is waited for with poll(2). It ends when both
 * directions reached their end, when the jump session fails, or when
 * tunnel_free asks; on the way out it shuts the socket down, so the session
 * on the other end sees the connection end instead of hanging.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "wire/tunnel.h"

#define CHUNK		(32 * 1024)
#define POLL_MS		200	/* longest sleep before the stop flag is seen */
#define WRITE_WAIT_S	1	/* longest wait inside libssh for a flush */

struct tunnel {
	ssh_session	 session;
	ssh_channel	 channel;
	int		 tunneled;	/* session runs over an earlier tunnel */
	int		 fd;		/* our end of the socket pair */
	pthread_t	 thread;
	atomic_int	 stop;
	char		*label;
};

void
tunnel_session_free(ssh_session session, int tunneled)
{
	if (session == NULL)
		return;
	if (!tunneled)
		ssh_disconnect(session);
	ssh_free(session);
}

/* Bytes waiting to go one way. */
struct pending {
	uint8_t		 data[CHUNK];
	size_t		 off, len;
};

static void *
tunnel_main(void *arg)
{
	struct tunnel *t = arg;
	struct pending *to_fd = xcalloc(1, sizeof(*to_fd));
	struct pending *to_channel = xcalloc(1, sizeof(*to_channel));
	struct pollfd pfd[2];
	int fd_eof = 0, channel_eof = 0, sent_eof = 0, shut = 0, moved, n;
	ssize_t w;
	uint32_t window;

	while (!atomic_load(&t->stop)) {
		moved = 0;
		/* Channel to socket. */
		if (to_fd->len == 0 && !channel_eof) {
			n = ssh_channel_read_nonblocking(t->channel, to_fd->data,
			    sizeof(to_fd->data), 0);
			if (n == SSH_EOF)
				channel_eof = 1;
			else if (n < 0)
				break;
			else if (n > 0) {
				to_fd->off = 0;
				to_fd->len = (size_t)n;
				moved = 1;
			}
		}
		if (to_fd->len > 0) {
			w = send(t->fd, to_fd->data + to_fd->off, to_fd->len - to_fd->off,
			    MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w > 0) {
				to_fd->off += (size_t)w;
				if (to_fd->off == to_fd->len)
					to_fd->len = 0;
				moved = 1;
			} else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR)
				break;		/* the session on the other end is gone */
		}
		if (channel_eof && to_fd->len == 0 && !shut) {
			shutdown(t->fd, SHUT_WR);
			shut = 1;
		}
		/* Socket to channel. */
		if (to_channel->len == 0 && !fd_eof) {
			w = recv(t->fd, to_channel->data, sizeof(to_channel->data), MSG_DONTWAIT);
			if (w == 0)
				fd_eof = 1;
			else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				break;
			else if (w > 0) {
				to_channel->off = 0;
				to_channel->len = (size_t)w;
				moved = 1;
			}
		}
		if (to_channel->len > 0 && (window = ssh_channel_window_size(t->channel)) > 0) {
			size_t want = to_channel->len - to_channel->off;

			n = ssh_channel_write(t->channel, to_channel->data + to_channel->off,
			    (uint32_t)(want < window ? want : window));
			if (n == SSH_ERROR)
				break;
			if (n > 0) {
				to_channel->off += (size_t)n;
				if (to_channel->off == to_channel->len)
					to_channel->len = 0;
				moved = 1;
			}
		}
		if (fd_eof && to_channel->len == 0 && !sent_eof) {
			ssh_channel_send_eof(t->channel);
			sent_eof = 1;
		}
		if (sent_eof && shut)
			break;
		if (moved)
			continue;
		if (ssh_channel_is_closed(t->channel) && to_fd->len == 0)
			break;
		/* Nothing moved: sleep until either side has something. */
		pfd[0].fd = t->fd;
		pfd[0].events = (short)((to_channel->len == 0 && !fd_eof ? POLLIN : 0) |
		    (to_fd->len > 0 ? POLLOUT : 0));
		pfd[0].revents = 0;
		pfd[1].fd = ssh_get_fd(t->session);
		pfd[1].events = POLLIN;
		pfd[1].revents = 0;
		if (poll(pfd, 2, POLL_MS) < 0 && errno != EINTR)
			break;
	}
	shutdown(t->fd, SHUT_RDWR);
	free(to_fd);
	free(to_channel);
	return NULL;
}

int
tunnel_open(ssh_session session, int tunneled, const char *host, unsigned port,
    const char *label, int *fd_out, struct tunnel **out)
{
	struct tunnel *t = NULL;
	ssh_channel channel = NULL;
	sigset_t all, old;
	long wait = WRITE_WAIT_S;
	int pair[2] = { -1, -1 }, r;

	*fd_out = -1;
	*out = NULL;
	if ((channel = ssh_channel_new(session)) == NULL) {
		log_error("%s: cannot create a channel: %s", label, ssh_get_error(session));
		return DS_ERR_SYSTEM;
	}
	/* The originator fields are informational; OpenSSH's ssh -W sends these too. */
	if (ssh_channel_open_forward(channel, host, (int)port, "127.0.0.1", 65535) != SSH_OK) {
		log_error("%s: cannot open a connection to %s port %u through it: %s", label,
		    host, port, ssh_get_error(session));
		ssh_channel_free(channel);
		return DS_ERR_CONNECT;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
		log_errno("%s: socketpair", label);
		r = DS_ERR_SYSTEM;
		goto fail;
	}
	/* The thread's waits inside libssh end within a second, so stop is seen. */
	if (ssh_options_set(session, SSH_OPTIONS_TIMEOUT, &wait) != SSH_OK) {
		log_error("%s: SSH options: %s", label, ssh_get_error(session));
		r = DS_ERR_SYSTEM;
		goto fail;
	}
	t = xcalloc(1, sizeof(*t));
	t->session = session;
	t->channel = channel;
	t->tunneled = tunneled;
	t->fd = pair[0];
	t->label = xstrdup(label);
	atomic_init(&t->stop, 0);
	/* Signals belong to the main thread (its SIGALRM, SIGINT handlers). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&t->thread, NULL, tunnel_main, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		errno = r;
		log_errno("%s: cannot start the tunnel thread", label);
		free(t->label);
		free(t);
		r = DS_ERR_SYSTEM;
		goto fail;
	}
	log_debug("%s: tunnel to %s port %u open", label, host, port);
	*fd_out = pair[1];
	*out = t;
	return 0;
fail:
	if (pair[0] >= 0)
		close(pair[0]);
	if (pair[1] >= 0)
		close(pair[1]);
	ssh_channel_close(channel);
	ssh_channel_free(channel);
	return r;
}

void
tunnel_free(struct tunnel *t)
{
	if (t == NULL)
		return;
	atomic_store(&t->stop, 1);
	pthread_join(t->thread, NULL);
	if (ssh_channel_is_open(t->channel))
		ssh_channel_close(t->channel);
	ssh_channel_free(t->channel);
	tunnel_session_free(t->session, t->tunneled);
	close(t->fd);
	log_debug("%s: tunnel closed", t->label);
	free(t->label);
	free(t);
}
