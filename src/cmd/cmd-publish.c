/* distsync publish: a static tree of signed releases for HTTP mirrors and CDNs. */
#include "autoconf.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/ed25519.h"
#include "base/err.h"
#include "base/log.h"
#include "base/util.h"
#include "cmd/cmd.h"
#include "cmd/keyfile.h"
#include "config/config.h"
#include "repo/publisher.h"
#include "repo/store.h"
#include "repo/trust.h"

extern const struct cmd_entry cmd_publish_entry;

static const char publish_options[] =
    "  --to DIR             the published tree (or give DIR as the argument;\n"
    "                       default: distribution.publish_dir)\n"
    "  --release ID         the release to publish (default: the newest)\n"
    "  --deltas N           patches from each of the last N releases (default:\n"
    "                       distribution.publish_deltas, 3)\n"
    "  --expires DURATION   how long sites accept the channel pointer: 7d, 12h, ...\n"
    "                       (default: distribution.publish_expires, 7d); publish\n"
    "                       again before then to refresh it\n"
    "  --key FILE           the key that signs the pointer: a timestamp key, or a\n"
    "                       release key when the keys document names none (default:\n"
    "                       distribution.timestamp_key, else signing_key)\n"
    "  --passphrase-file F  passphrase of an encrypted key (default:\n"
    "                       distribution.signing_passphrase_file)\n"
    "  -h, --help           this help\n"
    "\n"
    "Every file but channels/CHANNEL.pointer is immutable and named by content or\n"
    "version; publishing again only adds files and replaces the pointer, last.\n"
    "To fill more mirrors, copy the tree with rsync, rclone or 'aws s3 sync' in two\n"
    "passes: everything but channels/ first, then channels/.\n";

static int
publish_exec(int argc, char **argv, const struct config *config)
{
	static const struct option options[] = {
		{ "to", required_argument, NULL, 't' },
		{ "release", required_argument, NULL, 'r' },
		{ "deltas", required_argument, NULL, 'd' },
		{ "expires", required_argument, NULL, 'e' },
		{ "key", required_argument, NULL, 'k' },
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct publisher_opts o;
	struct publisher_report rep;
	struct store *store = NULL;
	const char *key_file = NULL, *pass_file = NULL;
	int have_deltas = 0, have_expires = 0;
	char added[32], full[32], expires[32];
	uint64_t secs;
	int ch, r;

	memset(&o, 0, sizeof(o));
	memset(&rep, 0, sizeof(rep));
	while ((ch = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (ch) {
		case 't':
			o.dir = optarg;
			break;
		case 'r':
			o.release = optarg;
			break;
		case 'd':
			if (util_parse_uint(optarg, 100, &o.deltas) != 0) {
				log_error("--deltas: '%s' is not a number of releases (0..100)", optarg);
				return DS_ERR_USAGE;
			}
			have_deltas = 1;
			break;
		case 'e':
			if (util_parse_duration(optarg, &secs) != 0 || secs == 0 ||
			    secs > 366u * 86400) {
				log_error("--expires: '%s' is not a duration from 1s to 366d", optarg);
				return DS_ERR_USAGE;
			}
			o.expires_in = secs;
			have_expires = 1;
			break;
		case 'k':
			key_file = optarg;
			break;
		case 'p':
			pass_file = optarg;
			break;
		case 'h':
			cmd_help(&cmd_publish_entry, publish_options);
			return 0;
		default:
			cmd_usage(&cmd_publish_entry, publish_options);
			return DS_ERR_USAGE;
		}
	}
	if (optind < argc) {
		if (o.dir != NULL && strcmp(o.dir, argv[optind]) != 0) {
			log_error("publish: --to %s and DIR %s name two trees: give one", o.dir,
			    argv[optind]);
			return DS_ERR_USAGE;
		}
		o.dir = argv[optind++];
	}
	/* The configuration's defaults, where no option was given (--help loads none). */
	if (o.dir == NULL)
		o.dir = config->distribution.publish_dir;
	if (!have_deltas)
		o.deltas = config->distribution.publish_deltas;
	if (!have_expires)
		o.expires_in = config->distribution.publish_expires;
	if (key_file == NULL)
		key_file = config->distribution.timestamp_key != NULL ?
		    config->distribution.timestamp_key : config->distribution.signing_key;
	if (pass_file == NULL)
		pass_file = config->distribution.signing_passphrase_file;
	if (o.dir == NULL || optind != argc) {
		if (o.dir == NULL)
			log_error("publish: give the tree to write (DIR) or set "
			    "distribution.publish_dir");
		cmd_usage(&cmd_publish_entry, publish_options);
		return DS_ERR_USAGE;
	}
	if (o.release != NULL && store_release_id_check(o.release) != 0) {
		log_error("--release '%s' is not a release id", o.release);
		return DS_ERR_USAGE;
	}
	if (key_file == NULL) {
		log_error("publish signs the channel pointer: give --key FILE or set "
		    "distribution.timestamp_key or signing_key");
		return DS_ERR_CONFIG;
	}
	if ((r = keyfile_load(key_file, pass_file, &o.pointer_key)) != 0)
		return r == DS_ERR_NOTFOUND || r == DS_ERR_SIGNATURE ? DS_ERR_CONFIG : r;
	if ((r = store_open(config->distribution.store, 0, &store)) != 0)
		goto out;
	if ((r = publisher_run(store, &o, &rep)) != 0)
		goto out;
	util_format_bytes(rep.bytes_added, added, sizeof(added));
	util_format_bytes(rep.full_bytes, full, sizeof(full));
	trust_time_format(rep.expires, expires, sizeof(expires));
	printf("published release %s (sequence %" PRIu64 ") on channel %s to %s\n"
	    "%zu files added (%s); every object whole: %s; patches from %zu earlier "
	    "release%s\npointer channels/%s.pointer expires %s\n", rep.release, rep.sequence,
	    rep.channel, o.dir, rep.files_added, added, full, rep.indexes,
	    rep.indexes == 1 ? "" : "s", rep.channel, expires);
out:
	publisher_report_release(&rep);
	ed25519_free(o.pointer_key);
	store_free(store);
	return r;
}

const struct cmd_entry cmd_publish_entry = {
	"publish", "[--to DIR] [--release ID] [--deltas N] [--expires DURATION] [--key FILE] [--passphrase-file F] [DIR]",
	"write signed releases as a static tree for HTTP mirrors", 1, publish_exec
};
