/*
 * A ProxyJump hop done in-process: a "direct-tcpip" channel on a jump
 * host's libssh session, carried to a socket pair by a thread of its own, so
 * that the next session (the next hop or the host itself) connects through
 * the other end (SSH_OPTIONS_FD). libssh 0.10 can only reach a jump host
 * through "ssh -W", whose host-key refusals it reports as "Connection reset
 * by peer"; here each hop is a session whose key xport-ssh checks and names.
 */
#ifndef DS_TUNNEL_H
#define DS_TUNNEL_H

#include <libssh/libssh.h>

struct tunnel;

/*
 * Opens a channel from SESSION (connected and authenticated) to HOST:PORT and
 * starts carrying it. On success the tunnel owns SESSION (TUNNELED says it
 * runs over an earlier tunnel's socket: it is then freed, never
 * disconnected, see tunnel_session_free) and *fd_out is the socket for the
 * next session, owned by that session from then on. On failure SESSION is
 * still the caller's, *fd_out is -1 and the error was logged starting with
 * LABEL: DS_ERR_CONNECT (the jump host refused the channel or lost the
 * session), DS_ERR_SYSTEM.
 */
int	tunnel_open(ssh_session session, int tunneled, const char *host, unsigned port,
	    const char *label, int *fd_out, struct tunnel **out);

/*
 * Stops the thread, closes the channel and ends the jump session. Call it
 * after the session using the tunnel's socket is freed. NULL is allowed.
 */
void	tunnel_free(struct tunnel *t);

/*
 * Ends a session: disconnects it unless it runs over a tunnel's socket
 * (libssh leaves a socket given by SSH_OPTIONS_FD open on disconnect, and
 * ssh_free closes it only when still connected), then frees it.
 */
void	tunnel_session_free(ssh_session session, int tunneled);

#endif
