/* distsync release: snapshot the source tree into the store as an immutable release. */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/path.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "cmd/cmd.h"
#include "codec/delta.h"
#include "config/config.h"
#include "repo/dcache.h"
#include "repo/manifest.h"
#include "repo/plan.h"
#include "repo/store.h"
#include "repo/unpack.h"

extern const struct cmd_entry cmd_release_entry;

static const char release_options[] =
    "  --version V     release id (default: UTC time, e.g. 20261122T172800Z)\n"
    "  --from ARCHIVE  take the tree from a zip or tar.* instead of the source directory\n"
    "  --strip N       drop N leading path components of archive entries\n"
    "  --no-prune      keep every release (ignore keep_releases this time)\n"
    "  --precompute N  prepare the deltas from each of the last N releases to this one\n"
    "                  (zstd level 19) in the store's delta cache, for every push\n"
    "  -h, --help      this help\n";

/* Name of the store's top-level directory when it lies inside the source, else NULL. */
static char *
store_inside_source(const char *source, const char *store)
{
	size_t n = strlen(source);
	const char *rest;

	if (strncmp(store, source, n) != 0 || store[n] != '/')
		return NULL;
	rest = store + n + 1;
	return xstrndup(rest, strcspn(rest, "/"));
}

/*
 * Puts the patch of TARGET against BASIS into the delta cache, unless it is
 * there: the smaller of DELTA_LEVEL_PRECOMPUTE and DELTA_LEVEL_DEFAULT
 * (zstd's optimal parsers, level 16 and up, sometimes miss what level 9
 * finds against a prefix of a hundred megabytes: a war of jars came out
 * 5.5 MB at 19 and 4.2 MB at 9). Returns 1 when made, 0 when present, or
 * DS_ERR_* (DS_ERR_UNSUPPORTED: no zippatch for this pair).
 */
static int
precompute_one(struct store *store, int encoding, const uint8_t basis[HASH_LEN],
    const uint8_t target[HASH_LEN], uint64_t *bytes)
{
	char *cache = store_delta_path(store, basis, target, delta_encoding_name(encoding));
	struct dcache_req req;
	uint64_t len = 0;
	int hit = 0, r;

	memset(&req, 0, sizeof(req));
	req.store = store;
	req.enc = encoding;
	req.basis = basis;
	req.target = target;
	req.what = cache;
	req.level = DELTA_LEVEL_PRECOMPUTE;
	req.alt_level = DELTA_LEVEL_DEFAULT;
	r = dcache_fill(cache, &req, &len, &hit);
	free(cache);
	if (r != 0)
		return r;
	if (hit)
		return 0;
	*bytes += len;
	return 1;
}

/*
 * Prepares the patches (zip-aware for zip pairs, else zstd) a push from each of the last N releases before
 * ID (manifest M) would send, with the basis the sender's plan picks.
 */
static int
precompute(struct store *store, const char *id, const struct manifest *m, unsigned n)
{
	char **ids = NULL, made_s[32];
	size_t count = 0, made = 0, done = 0;
	uint64_t bytes = 0;
	int r;

	if ((r = store_release_list(store, &ids, &count)) != 0)
		return r;
	for (size_t i = count; i-- > 0 && done < n;) {
		struct manifest *old = NULL;
		struct plan *plan;

		if (strcmp(ids[i], id) == 0)
			continue;
		done++;
		if ((r = store_release_load(store, ids[i], &old)) != 0)
			goto out;
		plan = plan_make(old, m);
		for (size_t j = 0; j < plan->nobjects && r >= 0; j++) {
			const struct plan_object *po = &plan->objects[j];

			if (po->basis == NULL || po->entry->type != MANIFEST_FILE ||
			    po->entry->size == 0)
				continue;
			/* A zip pair gets the zip-aware patch the sender prefers; others a zstd patch. */
			r = precompute_one(store, DELTA_ZIP_PATCH, po->basis->hash, po->entry->hash,
			    &bytes);
			if (r == DS_ERR_UNSUPPORTED)
				r = precompute_one(store, DELTA_ZSTD_PATCH, po->basis->hash,
				    po->entry->hash, &bytes);
			if (r > 0)
				made++;
		}
		plan_free(plan);
		manifest_free(old);
		if (r < 0)
			goto out;
		r = 0;
	}
	util_format_bytes(bytes, made_s, sizeof(made_s));
	printf("precomputed %zu delta%s (%s) from %zu earlier release%s\n", made,
	    made == 1 ? "" : "s", made_s, done, done == 1 ? "" : "s");
out:
	xfree_strv(ids);
	return r;
}

static int
release_exec(int argc, char **argv, const struct config *config)
{
	static const struct option options[] = {
		{ "version", required_argument, NULL, 'V' },
		{ "from", required_argument, NULL, 'f' },
		{ "strip", required_argument, NULL, 's' },
		{ "no-prune", no_argument, NULL, 'P' },
		{ "precompute", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *version = NULL, *from = NULL;
	char *id = NULL, *tree = NULL, *unpacked = NULL, *cache = NULL, *exclude[2] = { NULL, NULL };
	struct store *store = NULL;
	struct manifest *m = NULL;
	struct manifest_scan_stats stats;
	uint64_t new_objects = 0, new_bytes = 0;
	unsigned strip = 0, precompute_n = 0;
	int ch, r, prune = 1;

	while ((ch = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (ch) {
		case 'V':
			version = optarg;
			break;
		case 'f':
			from = optarg;
			break;
		case 's':
			if (util_parse_uint(optarg, 64, &strip) != 0) {
				log_error("--strip: '%s' is not a number of components", optarg);
				return DS_ERR_USAGE;
			}
			break;
		case 'P':
			prune = 0;
			break;
		case 'p':
			if (util_parse_uint(optarg, 1000, &precompute_n) != 0) {
				log_error("--precompute: '%s' is not a number of releases", optarg);
				return DS_ERR_USAGE;
			}
			break;
		case 'h':
			cmd_usage(&cmd_release_entry, release_options);
			return 0;
		default:
			cmd_usage(&cmd_release_entry, release_options);
			return DS_ERR_USAGE;
		}
	}
	if (optind != argc) {
		cmd_usage(&cmd_release_entry, release_options);
		return DS_ERR_USAGE;
	}
	if (version != NULL) {
		if (store_release_id_check(version) != 0) {
			log_error("--version '%s': use 1 to 128 letters, digits, '.', '_', '+' or '-'",
			    version);
			return DS_ERR_USAGE;
		}
		id = xstrdup(version);
	} else {
		char buf[32];
		time_t now = time(NULL);
		strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", gmtime(&now));
		id = xstrdup(buf);
	}
	if ((r = store_open(config->distribution.store, 1, &store)) != 0)
		goto out;
	if (from != NULL) {
		unpacked = store_tmp_path(store, "unpack");
		if (path_mkdirs(unpacked) == -1) {
			log_errno("%s", unpacked);
			r = DS_ERR_SYSTEM;
			goto out;
		}
		/* The limit is a constant until config grows a key for it. */
		if ((r = unpack_archive(from, unpacked, strip, UNPACK_MAX_BYTES_DEFAULT)) != 0)
			goto out;
		tree = xstrdup(unpacked);
	} else {
		tree = xstrdup(config->distribution.source);
		exclude[0] = store_inside_source(tree, config->distribution.store);
		cache = path_join(config->distribution.store, "statcache");
	}
	log_debug("scanning %s", tree);
	r = manifest_scan(tree, exclude[0] ? exclude : NULL, cache, 0, &m, &stats);
	if (r != 0)
		goto out;
	for (size_t i = 0; i < m->count; i++) {
		const struct manifest_entry *e = &m->entries[i];
		uint8_t h[HASH_LEN];

		if (e->type == MANIFEST_DIR || store_has(store, e->hash))
			continue;
		if (e->type == MANIFEST_SYMLINK) {
			r = store_add_bytes(store, e->link, strlen(e->link), h);
		} else {
			char *p = path_join(tree, e->path);
			r = store_add_file(store, p, e->hash);
			free(p);
		}
		if (r != 0)
			goto out;
		new_objects++;
		new_bytes += e->size;
	}
	if ((r = store_sync(store)) != 0 || (r = store_release_save(store, id, m)) != 0)
		goto out;
	{
		uint8_t digest[HASH_LEN];
		char hex[HASH_HEX_LEN + 1], total[32], added[32];
		manifest_digest(m, digest);
		hash_to_hex(digest, hex);
		util_format_bytes(manifest_total_size(m), total, sizeof(total));
		util_format_bytes(new_bytes, added, sizeof(added));
		printf("release %s: %" PRIu64 " files, %s; %" PRIu64 " new objects (%s); manifest %.16s\n",
		    id, stats.files, total, new_objects, added, hex);
	}
	if (precompute_n > 0 && (r = precompute(store, id, m, precompute_n)) != 0)
		goto out;
	if (prune) {
		size_t rr = 0, ro = 0, rd = 0;
		if ((r = store_prune(store, config->distribution.keep_releases, &rr, &ro, &rd)) != 0)
			goto out;
		if (rr > 0)
			printf("pruned %zu old release%s, %zu unreferenced objects and %zu cached "
			    "encodings (keep_releases: %u)\n", rr, rr == 1 ? "" : "s", ro, rd,
			    config->distribution.keep_releases);
	}
out:
	if (unpacked != NULL)
		(void)path_remove_tree(unpacked);
	manifest_free(m);
	store_free(store);
	free(exclude[0]);
	free(unpacked);
	free(tree);
	free(cache);
	free(id);
	return r;
}

const struct cmd_entry cmd_release_entry = {
	"release", "[--version V] [--from ARCHIVE [--strip N]] [--precompute N]",
	"cut a release: snapshot the source tree into the store", 1, release_exec
};
