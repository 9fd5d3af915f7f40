/*
 * The one place that picks a transport for a host: the roles (sender,
 * receiver) and the transports (xport-*) know nothing of each other.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "session/connect.h"
#include "session/receiver.h"
#include "wire/xport-local.h"
#include "wire/xport-ssh.h"
#include "wire/xport.h"

struct local_receiver {
	const struct config *config;
	const struct config_host *host;
};

/* The forked child of a local host: the same receiver `distsync serve` runs. */
static int
local_receiver_main(struct xport *x, void *arg)
{
	const struct local_receiver *lr = arg;
	struct receiver_options ro = { .config = lr->config, .host = lr->host };

	return receiver_run(x, &ro);
}

int
connect_host(const struct config *config, const struct config_host *host, struct xport **out)
{
	const char *root = getenv("DISTSYNC_SERVE_ROOT");
	char *argv[] = { (char *)"/proc/self/exe", (char *)"serve", (char *)"--root", NULL, NULL,
	    NULL, NULL };
	struct local_receiver lr = { config, host };
	char *quoted;
	int r;

	*out = NULL;
	if (host->address == NULL && root != NULL && root[0] != '\0') {
		/* Tests: run `distsync serve` as a child, the remote code path without SSH. */
		argv[3] = (char *)root;
		if (host->site_config != NULL) {
			argv[4] = (char *)"--site-config";
			argv[5] = host->site_config;
		}
		r = xport_exec_open(argv, host->name, out);
	} else if (host->address == NULL) {
		r = xport_fork_open(host->name, local_receiver_main, &lr, out);
	} else {
		/* The remote serve confines itself to the target (and its state beside it). */
		char *args[] = { (char *)"serve", (char *)"--root", host->path, NULL, NULL, NULL };

		/* The site's own config, for the commands it agrees to run. */
		if (host->site_config != NULL) {
			args[3] = (char *)"--site-config";
			args[4] = host->site_config;
		}
		/* Host-key messages suggest "distsync [-c FILE] trust HOST", -c as given. */
		struct xport_ssh_opts opts = { .config_file =
		    strcmp(config->file, CONFIG_FILE_DEFAULT) == 0 ? NULL : config->file };

		quoted = xport_ssh_quote_argv(args);
		r = xport_ssh_open(host, quoted, &opts, out);
		free(quoted);
		return r;
	}
	if (r == 0) {
		(*out)->idle_timeout = host->idle_timeout;
		(*out)->bwlimit = host->bwlimit;
	}
	return r;
}
