/* Choosing and opening the transport to a host's receiver. */
#ifndef DS_CONNECT_H
#define DS_CONNECT_H

struct config;
struct config_host;
struct xport;

/*
 * Opens the transport to HOST's receiver: a forked local receiver for a host
 * without address, else SSH running the host's remote_command serve. Caller
 * frees *out with xport_free. Errors are logged, naming the host.
 */
int	connect_host(const struct config *config, const struct config_host *host,
	    struct xport **out);

#endif
