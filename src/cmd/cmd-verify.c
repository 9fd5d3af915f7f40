/* distsync verify: report files on a host that changed since the last apply (drift). */
#include "autoconf.h"

#include <stddef.h>

#include "cmd/cmd.h"
#include "wire/proto.h"

extern const struct cmd_entry cmd_verify_entry;

static const char verify_options[] =
    "  --lock-timeout S    wait up to S seconds for the host's lock (default 30)\n"
    "  --json              JSON output\n"
    "  -h, --help          this help\n";

static int
verify_exec(int argc, char **argv, const struct config *config)
{
	return cmd_host_op(argc, argv, config, &cmd_verify_entry, verify_options,
	    PROTO_OP_VERIFY);
}

const struct cmd_entry cmd_verify_entry = {
	.name = "verify",
	.usage = "[--lock-timeout S] [--json] HOST|GROUP...",
	.summary = "list files changed on a host since the last apply",
	.needs_config = 1,
	.exec = verify_exec,
};
