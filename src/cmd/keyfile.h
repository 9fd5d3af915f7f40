/* Key and passphrase files for the commands that sign (keygen, keys, release). */
#ifndef DS_KEYFILE_H
#define DS_KEYFILE_H

#include <stdint.h>

#include "base/ed25519.h"

/*
 * The first line of FILE as a passphrase (caller frees with
 * keyfile_passphrase_free). DS_ERR_CONFIG (logged) when unreadable or empty.
 */
int	keyfile_passphrase_read(const char *file, char **out);

/*
 * Asks for a passphrase on the controlling terminal, without echo.
 * DS_ERR_UNSUPPORTED (not logged) when there is no terminal.
 */
int	keyfile_passphrase_prompt(const char *prompt, char **out);

/* Wipes and frees a passphrase; NULL is fine. */
void	keyfile_passphrase_free(char *p);

/*
 * Loads the private key at PATH; an encrypted one takes its passphrase from
 * PASSPHRASE_FILE, else from the terminal, else fails (DS_ERR_CONFIG,
 * logged, saying to give --passphrase-file). Errors name PATH.
 */
int	keyfile_load(const char *path, const char *passphrase_file, struct ed25519_key **out);

/* Writes PUB to PATH as "ed25519 HEX\n". */
int	keyfile_public_write(const char *path, const uint8_t pub[ED25519_PUBLIC_LEN]);

/*
 * Reads a public key from PATH: a public key file, or a private key file
 * (loaded as keyfile_load does). Errors logged naming PATH.
 */
int	keyfile_public_read(const char *path, const char *passphrase_file,
	    uint8_t pub[ED25519_PUBLIC_LEN]);

#endif
