/*
 * distsync keys: show, start and rotate the repository's chain of keys
 * documents (the root of trust sites pin).
 */
#include "autoconf.h"

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
#include "base/xmalloc.h"
#include "cmd/cmd.h"
#include "cmd/keyfile.h"
#include "config/config.h"
#include "repo/signing.h"
#include "repo/store.h"
#include "repo/trust.h"

extern const struct cmd_entry cmd_keys_entry;

static const char keys_options[] =
    "  (no subcommand)          show the newest keys document and the signing key\n"
    "  init                     start the chain: keys document version 1, signed by\n"
    "                           the root key(s)\n"
    "  update                   write the next version, signed by the root keys of the\n"
    "                           current version and of the new one (rotation)\n"
    "\n"
    "  --root KEY               (init) a root key: a private key file, it signs\n"
    "  --release KEY            (init) a release key (public or private key file)\n"
    "  --timestamp KEY          (init) a key for channel pointers of mirrors\n"
    "  --sign KEY               (update) a root key that signs the new version\n"
    "  --add ROLE:KEY           (update) add a key: ROLE is root, release or timestamp\n"
    "  --remove KEY|KEYID       (update) revoke a key: sites refuse it from then on\n"
    "  --threshold ROLE=N       signatures of ROLE needed (default 1)\n"
    "  --passphrase-file F      passphrase of encrypted private keys\n"
    "  -h, --help               this help\n";

#define KEYS_ARGS_MAX	TRUST_KEYS_MAX

struct keys_args {
	const char	*sub;
	const char	*pass_file;
	const char	*roots[KEYS_ARGS_MAX], *releases[KEYS_ARGS_MAX], *stamps[KEYS_ARGS_MAX];
	const char	*signers[KEYS_ARGS_MAX], *adds[KEYS_ARGS_MAX], *removes[KEYS_ARGS_MAX];
	size_t		 nroots, nreleases, nstamps, nsigners, nadds, nremoves;
	int		 threshold[TRUST_ROLE_COUNT];	/* -1: not given */
};

static int
push_arg(const char **list, size_t *n, const char *arg)
{
	if (*n == KEYS_ARGS_MAX) {
		log_error("at most %d keys of a kind", KEYS_ARGS_MAX);
		return DS_ERR_USAGE;
	}
	list[(*n)++] = arg;
	return 0;
}

static int
parse_threshold(struct keys_args *a, const char *arg)
{
	const char *eq = strchr(arg, '=');
	char *role = eq != NULL ? xstrndup(arg, (size_t)(eq - arg)) : NULL;
	int i = role != NULL ? trust_role_parse(role) : -1;
	char *end;
	long n = eq != NULL ? strtol(eq + 1, &end, 10) : -1;

	free(role);
	if (i < 0 || eq[1] == '\0' || *end != '\0' || n < 0 || n > TRUST_KEYS_MAX) {
		log_error("--threshold '%s': use ROLE=N with ROLE root, release or timestamp", arg);
		return DS_ERR_USAGE;
	}
	a->threshold[i] = (int)n;
	return 0;
}

static int
key_cmp(const void *x, const void *y)
{
	return strcmp(((const struct trust_key *)x)->id, ((const struct trust_key *)y)->id);
}

/* Adds PUB with ROLE to D (a key may have one role); DS_ERR_USAGE when listed already. */
static int
doc_add_key(struct trust_doc *d, enum trust_role role, const uint8_t pub[ED25519_PUBLIC_LEN],
    const char *from)
{
	struct trust_key k;

	memset(&k, 0, sizeof(k));
	k.role = role;
	memcpy(k.pub, pub, ED25519_PUBLIC_LEN);
	ed25519_keyid(pub, k.id);
	if (trust_keys_find(d, k.id) != NULL) {
		log_error("%s: key %.16s… is already in the keys document (a key has one role)",
		    from, k.id);
		return DS_ERR_USAGE;
	}
	if (d->nkeys == TRUST_KEYS_MAX) {
		log_error("a keys document holds at most %d keys", TRUST_KEYS_MAX);
		return DS_ERR_USAGE;
	}
	d->keys = xreallocarray(d->keys, d->nkeys + 1, sizeof(*d->keys));
	d->keys[d->nkeys++] = k;
	qsort(d->keys, d->nkeys, sizeof(*d->keys), key_cmp);
	return 0;
}

/* Thresholds: as given, else kept from the previous version, else 1 per role that has keys. */
static void
doc_thresholds(struct trust_doc *d, const struct keys_args *a, const struct trust_doc *prev)
{
	for (int role = 0; role < TRUST_ROLE_COUNT; role++) {
		unsigned have = 0;

		for (size_t i = 0; i < d->nkeys; i++)
			have += d->keys[i].role == (enum trust_role)role;
		if (a->threshold[role] >= 0)
			d->threshold[role] = (unsigned)a->threshold[role];
		else if (prev != NULL && prev->threshold[role] > 0 && prev->threshold[role] <= have)
			d->threshold[role] = prev->threshold[role];
		else
			d->threshold[role] = have > 0 ? 1 : 0;
	}
}

static int
load_signers(const char *const *paths, size_t n, const char *pass_file,
    struct ed25519_key **keys)
{
	int r;

	for (size_t i = 0; i < n; i++)
		if ((r = keyfile_load(paths[i], pass_file, &keys[i])) != 0)
			return r;
	return 0;
}

static void
print_doc(const struct trust_doc *d, const struct config *config)
{
	char created[32], signer[ED25519_KEYID_HEX_LEN + 1] = "";
	uint8_t pub[ED25519_PUBLIC_LEN];

	/* Its public key from FILE.pub (keygen writes one): no passphrase asked, none
	 * needed to show ids; else the private key with the configured passphrase file. */
	if (config->distribution.signing_key != NULL) {
		char *pubfile = xasprintf("%s.pub", config->distribution.signing_key);

		if ((access(pubfile, R_OK) == 0 ? keyfile_public_read(pubfile, NULL, pub) :
		    keyfile_public_read(config->distribution.signing_key,
		    config->distribution.signing_passphrase_file, pub)) == 0)
			ed25519_keyid(pub, signer);
		free(pubfile);
	}
	trust_time_format(d->created, created, sizeof(created));
	printf("keys document version %" PRIu64 " (created %s), %zu key%s:\n", d->version,
	    created, d->nkeys, d->nkeys == 1 ? "" : "s");
	for (size_t i = 0; i < d->nkeys; i++)
		printf("  %-9s  %s%s\n", trust_role_name(d->keys[i].role), d->keys[i].id,
		    strcmp(d->keys[i].id, signer) == 0 ? "  (distribution.signing_key)" : "");
	printf("thresholds: root %u, release %u, timestamp %u\n", d->threshold[TRUST_ROLE_ROOT],
	    d->threshold[TRUST_ROLE_RELEASE], d->threshold[TRUST_ROLE_TIMESTAMP]);
	for (size_t i = 0; i < d->nkeys; i++)
		if (d->keys[i].role == TRUST_ROLE_ROOT)
			printf("sites pin the root with:  trust_root: %s\n", d->keys[i].id);
	if (signer[0] != '\0' && trust_keys_find(d, signer) == NULL)
		printf("warning: distribution.signing_key (%.16s…) is not in this document: sites "
		    "will refuse what it signs\n", signer);
}

static int
keys_show(struct store *store, const struct config *config)
{
	struct trust_doc **chain;
	size_t n;
	int r;

	if ((r = signing_chain_load(store, &chain, &n)) != 0)
		return r;
	if (n == 0) {
		printf("no keys document in %s: releases are not signed.\n"
		    "Start one with 'distsync keygen root.key', 'distsync keygen release.key' and\n"
		    "'distsync keys init --root root.key --release release.key.pub'.\n",
		    store_dir(store));
	} else {
		print_doc(chain[n - 1], config);
		printf("chain: versions 1..%zu, each signed by the root keys before it\n", n);
	}
	signing_chain_free(chain, n);
	return 0;
}

static int
keys_init(struct store *store, const struct keys_args *a, const struct config *config)
{
	struct trust_doc *d = xcalloc(1, sizeof(*d)), **chain = NULL;
	struct ed25519_key *signers[KEYS_ARGS_MAX] = { NULL };
	uint8_t pub[ED25519_PUBLIC_LEN];
	size_t n = 0;
	int r;

	if (a->nroots == 0 || a->nreleases == 0) {
		log_error("keys init needs --root KEY (a private key: it signs) and --release KEY");
		r = DS_ERR_USAGE;
		goto out;
	}
	if ((r = signing_chain_load(store, &chain, &n)) != 0)
		goto out;
	if (n > 0) {
		log_error("%s already has keys document version %zu: change keys with 'distsync "
		    "keys update' (sites pinned to its root would refuse a new chain)",
		    store_dir(store), n);
		r = DS_ERR_USAGE;
		goto out;
	}
	d->kind = TRUST_KIND_KEYS;
	d->version = 1;
	d->created = (int64_t)time(NULL);
	if ((r = load_signers(a->roots, a->nroots, a->pass_file, signers)) != 0)
		goto out;
	for (size_t i = 0; i < a->nroots && r == 0; i++) {
		ed25519_public(signers[i], pub);
		r = doc_add_key(d, TRUST_ROLE_ROOT, pub, a->roots[i]);
	}
	for (size_t i = 0; i < a->nreleases && r == 0; i++)
		if ((r = keyfile_public_read(a->releases[i], a->pass_file, pub)) == 0)
			r = doc_add_key(d, TRUST_ROLE_RELEASE, pub, a->releases[i]);
	for (size_t i = 0; i < a->nstamps && r == 0; i++)
		if ((r = keyfile_public_read(a->stamps[i], a->pass_file, pub)) == 0)
			r = doc_add_key(d, TRUST_ROLE_TIMESTAMP, pub, a->stamps[i]);
	if (r != 0)
		goto out;
	doc_thresholds(d, a, NULL);
	if ((r = trust_doc_sign(d, signers, a->nroots)) != 0 ||
	    (r = signing_chain_add(store, d)) != 0)
		goto out;
	print_doc(d, config);
out:
	for (size_t i = 0; i < a->nroots; i++)
		ed25519_free(signers[i]);
	signing_chain_free(chain, n);
	trust_doc_free(d);
	return r == DS_ERR_SIGNATURE ? DS_ERR_USAGE : r;
}

static int
keys_update(struct store *store, const struct keys_args *a, const struct config *config)
{
	struct ed25519_key *signers[KEYS_ARGS_MAX] = { NULL };
	struct trust_doc **chain = NULL, *d = xcalloc(1, sizeof(*d));
	const struct trust_doc *prev;
	uint8_t pub[ED25519_PUBLIC_LEN];
	size_t n = 0;
	int r;

	if ((r = signing_chain_load(store, &chain, &n)) != 0)
		goto out;
	if (n == 0) {
		log_error("%s: no keys document yet: start with 'distsync keys init'",
		    store_dir(store));
		r = DS_ERR_USAGE;
		goto out;
	}
	if (a->nsigners == 0) {
		log_error("keys update needs --sign KEY: the root key(s) that sign the new version");
		r = DS_ERR_USAGE;
		goto out;
	}
	prev = chain[n - 1];
	d->kind = TRUST_KIND_KEYS;
	d->version = prev->version + 1;
	d->created = (int64_t)time(NULL);
	d->keys = xcalloc(prev->nkeys, sizeof(*d->keys));
	for (size_t i = 0; i < prev->nkeys; i++) {
		int removed = 0;

		for (size_t j = 0; j < a->nremoves; j++) {
			if (strcmp(a->removes[j], prev->keys[i].id) == 0)
				removed = 1;
			else if (strlen(a->removes[j]) != ED25519_KEYID_HEX_LEN &&
			    keyfile_public_read(a->removes[j], a->pass_file, pub) == 0) {
				char id[ED25519_KEYID_HEX_LEN + 1];

				ed25519_keyid(pub, id);
				removed |= strcmp(id, prev->keys[i].id) == 0;
			}
		}
		if (!removed)
			d->keys[d->nkeys++] = prev->keys[i];
	}
	if (d->nkeys + a->nremoves != prev->nkeys) {
		log_error("--remove names a key that keys document version %" PRIu64 " does not "
		    "hold (give its key id, as 'distsync keys' prints it, or its key file)",
		    prev->version);
		r = DS_ERR_USAGE;
		goto out;
	}
	for (size_t i = 0; i < a->nadds && r == 0; i++) {
		const char *colon = strchr(a->adds[i], ':');
		char *role = colon != NULL ? xstrndup(a->adds[i], (size_t)(colon - a->adds[i])) : NULL;
		int ri = role != NULL ? trust_role_parse(role) : -1;

		free(role);
		if (ri < 0) {
			log_error("--add '%s': use ROLE:KEYFILE with ROLE root, release or timestamp",
			    a->adds[i]);
			r = DS_ERR_USAGE;
		} else if ((r = keyfile_public_read(colon + 1, a->pass_file, pub)) == 0)
			r = doc_add_key(d, (enum trust_role)ri, pub, colon + 1);
	}
	for (int role = TRUST_ROLE_ROOT; r == 0 && role <= TRUST_ROLE_RELEASE; role++) {
		size_t have = 0;

		for (size_t i = 0; i < d->nkeys; i++)
			have += d->keys[i].role == (enum trust_role)role;
		if (have == 0) {
			log_error("keys update would leave no %s key: add one with --add %s:KEY.pub",
			    trust_role_name((enum trust_role)role),
			    trust_role_name((enum trust_role)role));
			r = DS_ERR_USAGE;
		}
	}
	if (r != 0)
		goto out;
	doc_thresholds(d, a, prev);
	if ((r = load_signers(a->signers, a->nsigners, a->pass_file, signers)) != 0 ||
	    (r = trust_doc_sign(d, signers, a->nsigners)) != 0 ||
	    (r = signing_chain_add(store, d)) != 0)
		goto out;
	print_doc(d, config);
out:
	for (size_t i = 0; i < a->nsigners; i++)
		ed25519_free(signers[i]);
	signing_chain_free(chain, n);
	trust_doc_free(d);
	return r == DS_ERR_SIGNATURE ? DS_ERR_USAGE : r;
}

static int
keys_exec(int argc, char **argv, const struct config *config)
{
	static const struct option options[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "release", required_argument, NULL, 'R' },
		{ "timestamp", required_argument, NULL, 't' },
		{ "sign", required_argument, NULL, 's' },
		{ "add", required_argument, NULL, 'a' },
		{ "remove", required_argument, NULL, 'x' },
		{ "threshold", required_argument, NULL, 'T' },
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct keys_args a;
	struct store *store = NULL;
	int ch, r = 0;

	memset(&a, 0, sizeof(a));
	for (int i = 0; i < TRUST_ROLE_COUNT; i++)
		a.threshold[i] = -1;
	while (r == 0 && (ch = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (ch) {
		case 'r': r = push_arg(a.roots, &a.nroots, optarg); break;
		case 'R': r = push_arg(a.releases, &a.nreleases, optarg); break;
		case 't': r = push_arg(a.stamps, &a.nstamps, optarg); break;
		case 's': r = push_arg(a.signers, &a.nsigners, optarg); break;
		case 'a': r = push_arg(a.adds, &a.nadds, optarg); break;
		case 'x': r = push_arg(a.removes, &a.nremoves, optarg); break;
		case 'T': r = parse_threshold(&a, optarg); break;
		case 'p': a.pass_file = optarg; break;
		case 'h':
			cmd_help(&cmd_keys_entry, keys_options);
			return 0;
		default:
			cmd_usage(&cmd_keys_entry, keys_options);
			return DS_ERR_USAGE;
		}
	}
	if (r != 0)
		return r;
	if (optind < argc)
		a.sub = argv[optind++];
	if (optind != argc || (a.sub != NULL && strcmp(a.sub, "init") != 0 &&
	    strcmp(a.sub, "update") != 0) ||
	    (a.sub == NULL && (a.nroots | a.nreleases | a.nstamps | a.nsigners | a.nadds |
	    a.nremoves) != 0) ||
	    (a.sub != NULL && strcmp(a.sub, "init") == 0 && (a.nsigners | a.nadds | a.nremoves) != 0) ||
	    (a.sub != NULL && strcmp(a.sub, "update") == 0 && (a.nroots | a.nreleases | a.nstamps) != 0)) {
		cmd_usage(&cmd_keys_entry, keys_options);
		return DS_ERR_USAGE;
	}
	if ((r = store_open(config->distribution.store, a.sub != NULL, &store)) != 0)
		return r;
	if (a.sub == NULL)
		r = keys_show(store, config);
	else if (strcmp(a.sub, "init") == 0)
		r = keys_init(store, &a, config);
	else
		r = keys_update(store, &a, config);
	store_free(store);
	return r;
}

const struct cmd_entry cmd_keys_entry = {
	"keys", "[init --root KEY --release KEY | update --sign KEY [--add ROLE:KEY] [--remove KEY]]",
	"show or rotate the repository's signing keys (the root sites pin)", 1, keys_exec
};
