/* distsync keygen: a new Ed25519 key pair for signing. */
#include "autoconf.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/ed25519.h"
#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "cmd/cmd.h"
#include "cmd/keyfile.h"

extern const struct cmd_entry cmd_keygen_entry;

static const char keygen_options[] =
    "  --passphrase-file F  encrypt the key with the first line of F (unattended signing)\n"
    "  --no-passphrase      do not encrypt the key and do not ask\n"
    "  -h, --help           this help\n"
    "\n"
    "Writes the private key FILE (mode 0600; never replaces a file) and its public\n"
    "key FILE.pub, and prints the key id. On a terminal it asks for a passphrase\n"
    "(empty: none). Give roles to keys with 'distsync keys init' and 'keys update'.\n";

/* The passphrase to encrypt with: from a file, typed twice, or none. */
static int
new_passphrase(const char *file, int none, const char *path, char **out)
{
	char *again = NULL, *prompt;
	int r;

	*out = NULL;
	if (none)
		return 0;
	if (file != NULL)
		return keyfile_passphrase_read(file, out);
	prompt = xasprintf("passphrase for %s (empty: none): ", path);
	r = keyfile_passphrase_prompt(prompt, out);
	free(prompt);
	if (r == DS_ERR_UNSUPPORTED)
		return 0;	/* no terminal: unencrypted, as documented */
	if (r != 0 || (*out)[0] == '\0') {
		keyfile_passphrase_free(*out);
		*out = NULL;
		return r;
	}
	if ((r = keyfile_passphrase_prompt("the same passphrase again: ", &again)) != 0 ||
	    strcmp(again, *out) != 0) {
		log_error("the passphrases differ; no key written");
		keyfile_passphrase_free(*out);
		*out = NULL;
		r = DS_ERR_USAGE;
	}
	keyfile_passphrase_free(again);
	return r;
}

static int
keygen_exec(int argc, char **argv, const struct config *config)
{
	static const struct option options[] = {
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "no-passphrase", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *pass_file = NULL;
	char *pass = NULL, *pubfile = NULL, id[ED25519_KEYID_HEX_LEN + 1];
	uint8_t pub[ED25519_PUBLIC_LEN];
	struct ed25519_key *k = NULL;
	int ch, none = 0, r;

	(void)config;
	while ((ch = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (ch) {
		case 'p':
			pass_file = optarg;
			break;
		case 'n':
			none = 1;
			break;
		case 'h':
			cmd_help(&cmd_keygen_entry, keygen_options);
			return 0;
		default:
			cmd_usage(&cmd_keygen_entry, keygen_options);
			return DS_ERR_USAGE;
		}
	}
	if (optind + 1 != argc || (none && pass_file != NULL)) {
		cmd_usage(&cmd_keygen_entry, keygen_options);
		return DS_ERR_USAGE;
	}
	if ((r = new_passphrase(pass_file, none, argv[optind], &pass)) != 0)
		return r;
	k = ed25519_generate();
	if ((r = ed25519_save(k, argv[optind], pass)) != 0)
		goto out;
	ed25519_public(k, pub);
	ed25519_keyid(pub, id);
	pubfile = xasprintf("%s.pub", argv[optind]);
	if ((r = keyfile_public_write(pubfile, pub)) != 0)
		goto out;
	printf("%s: Ed25519 key %s%s\n%s: its public key\n", argv[optind], id,
	    pass != NULL ? " (encrypted)" : " (not encrypted)", pubfile);
out:
	keyfile_passphrase_free(pass);
	ed25519_free(k);
	free(pubfile);
	return r;
}

const struct cmd_entry cmd_keygen_entry = {
	"keygen", "[--passphrase-file F | --no-passphrase] FILE",
	"make an Ed25519 signing key (FILE) and its public key (FILE.pub)", 0, keygen_exec
};
