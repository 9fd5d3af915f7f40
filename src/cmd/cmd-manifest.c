/* distsync manifest: print the canonical manifest of a directory tree. */
#include "autoconf.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/util.h"
#include "cmd/cmd.h"
#include "repo/manifest.h"

extern const struct cmd_entry cmd_manifest_entry;

static const char manifest_options[] =
    "  --cache FILE   stat cache: files whose size, mtime, ctime and inode match are not reread\n"
    "  --threads N    hashing threads (default: one per CPU)\n"
    "  --stats        print counts and throughput to stderr instead of the manifest\n"
    "  --digest       print only the manifest's SHA-256\n"
    "  -h, --help     this help\n";

static int
manifest_exec(int argc, char **argv, const struct config *config)
{
	static const struct option options[] = {
		{ "cache", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' },
		{ "stats", no_argument, NULL, 's' },
		{ "digest", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *cache = NULL;
	struct manifest *m = NULL;
	struct manifest_scan_stats st;
	struct timespec t0, t1;
	unsigned threads = 0;
	int ch, stats = 0, digest = 0, r;

	while ((ch = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (ch) {
		case 'c':
			cache = optarg;
			break;
		case 't':
			if (util_parse_uint(optarg, 16, &threads) != 0) {
				log_error("--threads: '%s' is not a number from 0 to 16", optarg);
				return DS_ERR_USAGE;
			}
			break;
		case 's':
			stats = 1;
			break;
		case 'd':
			digest = 1;
			break;
		case 'h':
			cmd_help(&cmd_manifest_entry, manifest_options);
			return 0;
		default:
			cmd_usage(&cmd_manifest_entry, manifest_options);
			return DS_ERR_USAGE;
		}
	}
	if (argc - optind != 1) {
		cmd_usage(&cmd_manifest_entry, manifest_options);
		return DS_ERR_USAGE;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((r = manifest_scan(argv[optind], NULL, cache, threads, &m, &st)) != 0)
		return r;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (stats) {
		double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
		fprintf(stderr, "%" PRIu64 " files, %" PRIu64 " bytes, %" PRIu64 " hashed files, %"
		    PRIu64 " hashed bytes, %.3f s, %.1f MB/s\n", st.files, st.bytes, st.hashed_files,
		    st.hashed_bytes, s, s > 0 ? st.bytes / s / 1e6 : 0);
	} else if (digest) {
		uint8_t d[HASH_LEN];
		char hex[HASH_HEX_LEN + 1];
		manifest_digest(m, d);
		hash_to_hex(d, hex);
		printf("%s\n", hex);
	} else {
		char *data;
		size_t len;
		manifest_encode(m, &data, &len);
		fwrite(data, 1, len, stdout);
		free(data);
	}
	manifest_free(m);
	return 0;
}

const struct cmd_entry cmd_manifest_entry = {
	"manifest", "DIR [--cache FILE] [--threads N] [--stats|--digest]",
	"print the canonical manifest of a directory tree", 0, manifest_exec
};
