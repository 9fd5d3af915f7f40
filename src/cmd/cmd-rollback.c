/* distsync rollback: return a host to the release it had before the last apply. */
#include "autoconf.h"

#include <stddef.h>

#include "cmd/cmd.h"
#include "wire/proto.h"

extern const struct cmd_entry cmd_rollback_entry;

static const char rollback_options[] =
    "  --release ID        return to this state (any backup 'distsync releases HOST'\n"
    "                      lists); default: the one before the current, so each\n"
    "                      rollback goes one apply further back\n"
    "  --no-restart        restore the files but restart no service\n"
    "  --lock-timeout S    wait up to S seconds for the host's lock (default 30)\n"
    "  --json              JSON output\n"
    "  -h, --help          this help\n";

static int
rollback_exec(int argc, char **argv, const struct config *config)
{
	return cmd_host_op(argc, argv, config, &cmd_rollback_entry, rollback_options,
	    PROTO_OP_ROLLBACK);
}

const struct cmd_entry cmd_rollback_entry = {
	.name = "rollback",
	.usage = "[--release ID] [--no-restart] [--lock-timeout S] [--json] HOST|GROUP...",
	.summary = "restore the release before the current one (or --release ID), atomically",
	.needs_config = 1,
	.exec = rollback_exec,
};
