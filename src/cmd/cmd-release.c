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

#include "base/ed25519.h"
#include "base/err.h"
#include "base/log.h"
#include "base/path.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "cmd/cmd.h"
#include "cmd/keyfile.h"
#include "codec/delta.h"
#include "config/config.h"
#include "repo/dcache.h"
#include "repo/manifest.h"
#include "repo/plan.h"
#include "repo/signing.h"
#include "repo/store.h"
#include "repo/trust.h"
#include "repo/unpack.h"

extern const struct cmd_entry cmd_release_entry;

static const char release_options[] =
    "  --version V     release id (default: UTC time, e.g. 20261122T172800Z)\n"
    "  --from ARCHIVE  take the tree from a zip or tar.* instead of the source directory\n"
    "  --from-release OLD  cut the tree of release OLD again as a new release (how a\n"
    "                  signed distribution goes back: sites refuse older sequences)\n"
    "  --strip N       drop N leading path components of archive entries\n"
    "  --no-prune      keep every release (ignore keep_releases this time)\n"
    "  --precompute N  prepare the deltas from each of the last N releases to this one\n"
    "                  (zstd level 19) in the store's delta cache, for every push\n"
    "  --channel NAME  the channel a signed release is cut for (default:\n"
    "                  distribution.channel, else stable)\n"
    "  --passphrase-file F  passphrase of an encrypted distribution.signing_key\n"
    "                  (default: distribution.signing_passphrase_file)\n"
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

struct precompute_count {
	size_t		 made;
	uint64_t	 bytes;
};

static int
count_made(const struct dcache_pair_entry *e, void *arg)
{
	struct precompute_count *c = arg;

	if (e->made) {
		c->made++;
		c->bytes += e->len;
	}
	return 0;
}

/*
 * Prepares the patches (zip-aware for zip pairs, else zstd) a push from each
 * of the last N releases before ID (manifest M) would send, with the basis
 * the sender's plan picks.
 */
static int
precompute(struct store *store, const char *id, const struct manifest *m, unsigned n)
{
	struct precompute_count count = { 0, 0 };
	char **ids = NULL, made_s[32];
	size_t nids = 0, done = 0;
	int r;

	if ((r = store_release_list(store, &ids, &nids)) != 0)
		return r;
	for (size_t i = nids; i-- > 0 && done < n;) {
		struct manifest *old = NULL;

		if (strcmp(ids[i], id) == 0)
			continue;
		done++;
		if ((r = store_release_load(store, ids[i], &old)) != 0)
			goto out;
		r = dcache_fill_pair(store, old, m, count_made, &count);
		manifest_free(old);
		if (r != 0)
			goto out;
	}
	util_format_bytes(count.bytes, made_s, sizeof(made_s));
	printf("precomputed %zu delta%s (%s) from %zu earlier release%s\n", count.made,
	    count.made == 1 ? "" : "s", made_s, done, done == 1 ? "" : "s");
out:
	xfree_strv(ids);
	return r;
}

struct release_args {
	const char	*version, *from, *old, *channel, *pass_file;
	unsigned	 strip, precompute_n;
	int		 prune;
};

/* Parses the options into A; 1 after --help, 0, or DS_ERR_USAGE (logged). */
static int
release_args(int argc, char **argv, struct release_args *a)
{
	static const struct option options[] = {
		{ "version", required_argument, NULL, 'V' },
		{ "from", required_argument, NULL, 'f' },
		{ "from-release", required_argument, NULL, 'o' },
		{ "strip", required_argument, NULL, 's' },
		{ "no-prune", no_argument, NULL, 'P' },
		{ "precompute", required_argument, NULL, 'p' },
		{ "channel", required_argument, NULL, 'C' },
		{ "passphrase-file", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;

	memset(a, 0, sizeof(*a));
	a->prune = 1;
	while ((ch = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (ch) {
		case 'V':
			if (store_release_id_check(optarg) != 0) {
				log_error("--version '%s': use 1 to 128 letters, digits, '.', '_', '+' "
				    "or '-'", optarg);
				return DS_ERR_USAGE;
			}
			a->version = optarg;
			break;
		case 'f':
			a->from = optarg;
			break;
		case 'o':
			if (store_release_id_check(optarg) != 0) {
				log_error("--from-release '%s' is not a release id", optarg);
				return DS_ERR_USAGE;
			}
			a->old = optarg;
			break;
		case 's':
			if (util_parse_uint(optarg, 64, &a->strip) != 0) {
				log_error("--strip: '%s' is not a number of components", optarg);
				return DS_ERR_USAGE;
			}
			break;
		case 'P':
			a->prune = 0;
			break;
		case 'p':
			if (util_parse_uint(optarg, 1000, &a->precompute_n) != 0) {
				log_error("--precompute: '%s' is not a number of releases", optarg);
				return DS_ERR_USAGE;
			}
			break;
		case 'C':
			if (trust_channel_check(optarg) != 0) {
				log_error("--channel '%s': use 1 to %d of a-z, 0-9, '.', '_' or '-'",
				    optarg, TRUST_CHANNEL_MAX);
				return DS_ERR_USAGE;
			}
			a->channel = optarg;
			break;
		case 'F':
			a->pass_file = optarg;
			break;
		case 'h':
			cmd_help(&cmd_release_entry, release_options);
			return 1;
		default:
			cmd_usage(&cmd_release_entry, release_options);
			return DS_ERR_USAGE;
		}
	}
	if (optind != argc || (a->old != NULL && a->from != NULL)) {
		cmd_usage(&cmd_release_entry, release_options);
		return DS_ERR_USAGE;
	}
	return 0;
}

/* What a release cut brought into the store. */
struct release_cut {
	struct manifest			*m;
	struct manifest_scan_stats	 stats;
	uint64_t			 new_objects, new_bytes;
	char				*unpacked;	/* the archive's temp tree, or NULL */
};

/*
 * The release's tree into the store: OLD's manifest again (its objects are
 * there), or the archive or source tree scanned and every new object added.
 */
static int
release_tree(struct store *store, const struct config *config, const struct release_args *a,
    struct release_cut *c)
{
	char *tree = NULL, *cache = NULL, *exclude[2] = { NULL, NULL };
	int r;

	if (a->old != NULL) {
		if ((r = store_release_load(store, a->old, &c->m)) != 0)
			return r;
		for (size_t i = 0; i < c->m->count; i++)
			c->stats.files += c->m->entries[i].type == MANIFEST_FILE;
		return 0;
	}
	if (a->from != NULL) {
		c->unpacked = store_tmp_path(store, "unpack");
		if (path_mkdirs(c->unpacked) == -1) {
			log_errno("%s", c->unpacked);
			return DS_ERR_SYSTEM;
		}
		/* The limit is a constant until config grows a key for it. */
		if ((r = unpack_archive(a->from, c->unpacked, a->strip,
		    UNPACK_MAX_BYTES_DEFAULT)) != 0)
			return r;
		tree = xstrdup(c->unpacked);
	} else {
		tree = xstrdup(config->distribution.source);
		exclude[0] = store_inside_source(tree, config->distribution.store);
		cache = path_join(config->distribution.store, "statcache");
	}
	log_debug("scanning %s", tree);
	if ((r = manifest_scan(tree, exclude[0] ? exclude : NULL, cache, 0, &c->m, &c->stats)) != 0)
		goto out;
	for (size_t i = 0; i < c->m->count && r == 0; i++) {
		const struct manifest_entry *e = &c->m->entries[i];
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
		c->new_objects++;
		c->new_bytes += e->size;
	}
	if (r == 0)
		r = store_sync(store);
out:
	free(exclude[0]);
	free(tree);
	free(cache);
	return r;
}

static void
release_print(const char *id, const struct release_cut *c, const struct trust_doc *signed_doc)
{
	uint8_t digest[HASH_LEN];
	char hex[HASH_HEX_LEN + 1], total[32], added[32];

	manifest_digest(c->m, digest);
	hash_to_hex(digest, hex);
	util_format_bytes(manifest_total_size(c->m), total, sizeof(total));
	util_format_bytes(c->new_bytes, added, sizeof(added));
	printf("release %s: %" PRIu64 " files, %s; %" PRIu64 " new object%s (%s); manifest %.16s\n",
	    id, c->stats.files, total, c->new_objects, c->new_objects == 1 ? "" : "s", added, hex);
	if (signed_doc != NULL)
		printf("signed: sequence %" PRIu64 ", channel %s, key %.16s\n",
		    signed_doc->sequence, signed_doc->channel, signed_doc->sigs[0].keyid);
	else
		printf("not signed (no distribution.signing_key)\n");
}

static int
release_exec(int argc, char **argv, const struct config *config)
{
	struct release_args a;
	struct release_cut c;
	struct ed25519_key *key = NULL;
	struct trust_doc *signed_doc = NULL;
	struct store *store = NULL;
	char *id = NULL, buf[32];
	time_t now = time(NULL);
	int r;

	memset(&c, 0, sizeof(c));
	if ((r = release_args(argc, argv, &a)) != 0)
		return r == 1 ? 0 : r;
	/* The configuration's defaults, where no option was given (--help loads none). */
	if (a.channel == NULL)
		a.channel = config->distribution.channel;
	if (a.pass_file == NULL)
		a.pass_file = config->distribution.signing_passphrase_file;
	strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", gmtime(&now));
	id = xstrdup(a.version != NULL ? a.version : buf);
	if ((r = store_open(config->distribution.store, 1, &store)) != 0)
		goto out;
	/* A release that should be signed and cannot be is not cut at all. */
	if (config->distribution.signing_key != NULL &&
	    ((r = keyfile_load(config->distribution.signing_key, a.pass_file, &key)) != 0 ||
	    (r = signing_key_check(store, key)) != 0)) {
		r = DS_ERR_CONFIG;	/* logged, naming the key file */
		goto out;
	}
	if ((r = release_tree(store, config, &a, &c)) != 0 ||
	    (r = store_release_save(store, id, c.m)) != 0)
		goto out;
	if (key != NULL &&
	    (r = signing_release_sign(store, id, c.m, key, a.channel, &signed_doc)) != 0)
		goto out;
	release_print(id, &c, signed_doc);
	if (a.precompute_n > 0 && (r = precompute(store, id, c.m, a.precompute_n)) != 0)
		goto out;
	if (a.prune) {
		size_t rr = 0, ro = 0, rd = 0;

		if ((r = store_prune(store, config->distribution.keep_releases, &rr, &ro, &rd)) != 0)
			goto out;
		rd += dcache_tidy(store);
		if (rr > 0)
			printf("pruned %zu old release%s, %zu unreferenced objects and %zu cached "
			    "encodings (keep_releases: %u)\n", rr, rr == 1 ? "" : "s", ro, rd,
			    config->distribution.keep_releases);
	}
out:
	if (c.unpacked != NULL)
		(void)path_remove_tree(c.unpacked);
	manifest_free(c.m);
	free(c.unpacked);
	store_free(store);
	ed25519_free(key);
	trust_doc_free(signed_doc);
	free(id);
	return r;
}

const struct cmd_entry cmd_release_entry = {
	"release", "[--version V] [--from ARCHIVE [--strip N] | --from-release OLD] [--precompute N] [--channel NAME] [--passphrase-file F] [--no-prune]",
	"cut a release: snapshot the source tree into the store", 1, release_exec
};
