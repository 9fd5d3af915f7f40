/* distsync releases: list the releases in the store, oldest first. */
#include "autoconf.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/err.h"
#include "base/jsonio.h"
#include "base/log.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "cmd/cmd.h"
#include "config/config.h"
#include "repo/manifest.h"
#include "repo/signing.h"
#include "repo/store.h"
#include "repo/trust.h"

extern const struct cmd_entry cmd_releases_entry;

static const char releases_options[] =
    "  --json      one JSON object per release on one array\n"
    "  -h, --help  this help\n";

static int
releases_exec(int argc, char **argv, const struct config *config)
{
	static const struct option options[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct store *store = NULL;
	json_t *list = NULL;
	char **ids = NULL;
	size_t n = 0;
	int ch, json = 0, r;

	while ((ch = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (ch) {
		case 'j':
			json = 1;
			break;
		case 'h':
			cmd_usage(&cmd_releases_entry, releases_options);
			return 0;
		default:
			cmd_usage(&cmd_releases_entry, releases_options);
			return DS_ERR_USAGE;
		}
	}
	if (optind != argc) {
		cmd_usage(&cmd_releases_entry, releases_options);
		return DS_ERR_USAGE;
	}
	if ((r = store_open(config->distribution.store, 0, &store)) != 0)
		return r;
	store_release_list(store, &ids, &n);
	if (json)
		list = json_array();
	for (size_t i = 0; i < n; i++) {
		struct manifest *m;
		struct trust_doc *sig = NULL;
		uint8_t digest[HASH_LEN];
		char hex[HASH_HEX_LEN + 1], size[32], signed_by[96] = "unsigned";
		size_t files = 0;

		if ((r = store_release_load(store, ids[i], &m)) != 0)
			break;
		for (size_t k = 0; k < m->count; k++)
			files += m->entries[k].type == MANIFEST_FILE;
		manifest_digest(m, digest);
		hash_to_hex(digest, hex);
		/* A document that does not cover this manifest is as good as none. */
		if (signing_release_load(store, ids[i], &sig, NULL, NULL) == 0 &&
		    memcmp(sig->manifest, digest, HASH_LEN) == 0)
			snprintf(signed_by, sizeof(signed_by), "signed #%" PRIu64 " key %.16s",
			    sig->sequence, sig->sigs[0].keyid);
		else if (sig != NULL)
			snprintf(signed_by, sizeof(signed_by), "BAD SIGNATURE FILE");
		if (json) {
			json_t *o = jsonio_pack("{s:o,s:o,s:o,s:s,s:b}",
			    "id", jsonio_string(ids[i]), "files", jsonio_uint(files),
			    "bytes", jsonio_uint(manifest_total_size(m)), "manifest", hex,
			    "latest", i + 1 == n);

			json_object_set_new(o, "signed", json_boolean(signed_by[0] == 's'));
			if (signed_by[0] == 's') {
				json_object_set_new(o, "sequence", jsonio_uint(sig->sequence));
				json_object_set_new(o, "key", jsonio_string(sig->sigs[0].keyid));
			}
			json_array_append_new(list, o);
		} else {
			util_format_bytes(manifest_total_size(m), size, sizeof(size));
			printf("%-24s %7zu files %10s  %.16s  %s%s\n", ids[i], files, size, hex,
			    signed_by, i + 1 == n ? "  (latest)" : "");
		}
		trust_doc_free(sig);
		manifest_free(m);
	}
	if (json) {
		/* Whatever was listed before an error, as before. */
		jsonio_write(stdout, list);
		printf("\n");
		json_decref(list);
	} else if (n == 0)
		printf("no releases yet: run 'distsync release'\n");
	xfree_strv(ids);
	store_free(store);
	return r;
}

const struct cmd_entry cmd_releases_entry = {
	"releases", "[--json]", "list the releases in the store, oldest first", 1, releases_exec
};
