/*
 * xport-ssh: shell quoting and the failures that need no server, as TAP;
 * with "driver ..." arguments, a tiny client for tests/func/ssh-transport.sh
 * that runs a remote command through the transport, copying stdin to it and
 * its output to stdout.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"

#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "config/config.h"
#include "wire/xport-ssh.h"
#include "wire/xport.h"

static void
test_quote(void)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "serve", "serve" },
		{ "/opt/openmrs/distribution", "/opt/openmrs/distribution" },
		{ "--root=/a,b:c@d%e+f", "--root=/a,b:c@d%e+f" },
		{ "", "''" },
		{ "two words", "'two words'" },
		{ "it's", "'it'\\''s'" },
		{ "'", "''\\'''" },
		{ "$(reboot)", "'$(reboot)'" },
		{ "`id`;rm -rf /", "'`id`;rm -rf /'" },
		{ "a\nb", "'a\nb'" },
		{ "*?[]~#&|<>!\\\"", "'*?[]~#&|<>!\\\"'" },
	};
	char *q;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		q = xport_ssh_quote(cases[i].in);
		CHECK(strcmp(q, cases[i].want) == 0, "quote case %zu", i);
		free(q);
	}
}

static void
test_quote_argv(void)
{
	char *argv[] = { "serve", "--root", "/srv/my site", "it's", NULL };
	char *empty[] = { NULL };
	char *s;

	s = xport_ssh_quote_argv(argv);
	CHECK(strcmp(s, "serve --root '/srv/my site' 'it'\\''s'") == 0, "argv joined: %s", s);
	free(s);
	s = xport_ssh_quote_argv(empty);
	CHECK(strcmp(s, "") == 0, "empty argv is an empty string");
	free(s);
}

/* A TCP port on loopback that nobody listens on (bound, never listened). */
static int
closed_port(int *fd_out)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) != 0)
		return -1;
	*fd_out = fd;
	return ntohs(sin.sin_port);
}

static void
test_open_failures(void)
{
	struct config_host host;
	struct xport *x = (struct xport *)1;
	int fd = -1, port, r;

	memset(&host, 0, sizeof(host));
	host.name = "nowhere";
	r = xport_ssh_open(&host, NULL, NULL, &x);
	CHECK(r == DS_ERR_CONFIG && x == NULL, "no address: DS_ERR_CONFIG, *out NULL (%d)", r);

	port = closed_port(&fd);
	CHECK(port > 0, "a closed loopback port");
	host.address = "127.0.0.1";
	host.port = (unsigned)port;
	host.known_hosts = "known_hosts";
	host.connect_timeout = 5;
	x = (struct xport *)1;
	r = xport_ssh_open(&host, "serve", NULL, &x);
	CHECK(r == DS_ERR_CONNECT && x == NULL, "refused: DS_ERR_CONNECT (%d)", r);
	r = xport_ssh_trust(&host, NULL, NULL, NULL);
	CHECK(r == DS_ERR_CONNECT, "trust refused: DS_ERR_CONNECT (%d)", r);
	CHECK(access("known_hosts", F_OK) != 0, "nothing recorded");
	if (fd >= 0)
		close(fd);
}

static int
driver_usage(void)
{
	fprintf(stderr, "usage: test-xport-ssh driver [-a ADDRESS] [-p PORT] [-l USER] "
	    "[-i IDENTITY] [-k KNOWN_HOSTS] [-r REMOTE_COMMAND] [-t IDLE_TIMEOUT] "
	    "[-c CONNECT_TIMEOUT] [-n] [-N NAME] [-v] [-- REMOTE_ARGS...]\n");
	return 2;
}

/*
 * Exit: the remote exit status, or 100 + -DS_ERR_* when the transport
 * failed (open, read, write or close).
 */
static int
driver(int argc, char **argv)
{
	struct config_host host;
	struct xport_ssh_opts opts;
	struct xport *x = NULL;
	char buf[65536], *args = NULL;
	size_t n;
	ssize_t got;
	int ch, r;

	memset(&host, 0, sizeof(host));
	memset(&opts, 0, sizeof(opts));
	host.name = "test-host";
	optind = 1;
	while ((ch = getopt(argc, argv, "a:p:l:i:k:r:t:c:nN:v")) != -1) {
		switch (ch) {
		case 'a': host.address = optarg; break;
		case 'p': host.port = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'l': host.user = optarg; break;
		case 'i': host.identity = optarg; break;
		case 'k': host.known_hosts = optarg; break;
		case 'r': host.remote_command = optarg; break;
		case 't': host.idle_timeout = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'c': host.connect_timeout = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'n': opts.accept_new = 1; break;
		case 'N': host.name = optarg; break;
		case 'v': log_set_level(LOG_LEVEL_DEBUG); break;
		default: return driver_usage();
		}
	}
	args = xport_ssh_quote_argv(argv + optind);
	r = xport_ssh_open(&host, args, &opts, &x);
	free(args);
	if (r != 0)
		goto out;
	while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
		if ((r = xport_write(x, buf, n)) != 0)
			goto out;
	if ((r = xport_shutdown(x)) != 0)
		goto out;
	while ((got = xport_read(x, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)got, stdout);
	fflush(stdout);
	if (got < 0) {
		r = (int)got;
		goto out;
	}
	r = xport_close(x);
	fprintf(stderr, "driver: close returned %d\n", r);
out:
	if (r < 0)
		fprintf(stderr, "driver: %s (%d)\n", ds_strerror(r), r);
	xport_free(x);
	return r < 0 ? 100 - r : r;
}

int
main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "driver") == 0)
		return driver(argc - 1, argv + 1);
	/* The failures below are expected; their messages go to the TAP log. */
	tap_run("quote", test_quote);
	tap_run("quote_argv", test_quote_argv);
	tap_run("open_failures", test_open_failures);
	return tap_done();
}
