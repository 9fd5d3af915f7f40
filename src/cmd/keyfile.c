/*
 * Key files for the commands that sign: private keys (with a passphrase from
 * a file or typed on the terminal) and public key files ("ed25519 HEX").
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "base/ed25519.h"
#include "base/err.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "cmd/keyfile.h"

#define PASSPHRASE_MAX	1024

int
keyfile_passphrase_read(const char *file, char **out)
{
	char *data;
	size_t len;

	*out = NULL;
	if (fileio_read_at(AT_FDCWD, file, PASSPHRASE_MAX, &data, &len) != 0) {
		log_errno("%s: cannot read the passphrase", file);
		return DS_ERR_CONFIG;
	}
	/* One line: a trailing newline is not part of it. */
	data[strcspn(data, "\r\n")] = '\0';
	if (data[0] == '\0') {
		log_error("%s: the passphrase file is empty", file);
		free(data);
		return DS_ERR_CONFIG;
	}
	*out = data;
	return 0;
}

int
keyfile_passphrase_prompt(const char *prompt, char **out)
{
	struct termios old, quiet;
	char buf[PASSPHRASE_MAX + 2];
	int fd, r = DS_ERR_USAGE;

	*out = NULL;
	if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)) == -1 || !isatty(fd)) {
		if (fd != -1)
			close(fd);
		return DS_ERR_UNSUPPORTED;
	}
	if (tcgetattr(fd, &old) == -1) {
		close(fd);
		return DS_ERR_UNSUPPORTED;
	}
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	(void)!write(fd, prompt, strlen(prompt));
	if (tcsetattr(fd, TCSAFLUSH, &quiet) == 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);

		if (n >= 0) {
			buf[n] = '\0';
			buf[strcspn(buf, "\r\n")] = '\0';
			*out = xstrdup(buf);
			r = 0;
		}
		(void)tcsetattr(fd, TCSAFLUSH, &old);
	}
	(void)!write(fd, "\n", 1);
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return r;
}

void
keyfile_passphrase_free(char *p)
{
	if (p != NULL) {
		explicit_bzero(p, strlen(p));
		free(p);
	}
}

int
keyfile_load(const char *path, const char *passphrase_file, struct ed25519_key **out)
{
	char *pass = NULL, *prompt;
	int r, enc;

	*out = NULL;
	if ((enc = ed25519_file_encrypted(path)) == -1) {
		log_errno("%s: cannot read the key", path);
		return errno == ENOENT ? DS_ERR_NOTFOUND : DS_ERR_SYSTEM;
	}
	if (enc == 1 && passphrase_file != NULL) {
		if ((r = keyfile_passphrase_read(passphrase_file, &pass)) != 0)
			return r;
	} else if (enc == 1) {
		prompt = xasprintf("passphrase for %s: ", path);
		r = keyfile_passphrase_prompt(prompt, &pass);
		free(prompt);
		if (r == DS_ERR_UNSUPPORTED) {
			log_error("%s: the key is encrypted and there is no terminal to ask for its "
			    "passphrase: give --passphrase-file FILE", path);
			return DS_ERR_CONFIG;
		}
		if (r != 0)
			return r;
	}
	r = ed25519_load(path, pass, out);
	keyfile_passphrase_free(pass);
	return r;
}

int
keyfile_public_write(const char *path, const uint8_t pub[ED25519_PUBLIC_LEN])
{
	char text[16 + 2 * ED25519_PUBLIC_LEN];
	size_t off = (size_t)snprintf(text, sizeof(text), "ed25519 ");

	for (size_t i = 0; i < ED25519_PUBLIC_LEN; i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off, "%02x", pub[i]);
	text[off++] = '\n';
	if (fileio_write_atomic(path, text, off) != 0) {
		log_errno("%s", path);
		return DS_ERR_SYSTEM;
	}
	return 0;
}

int
keyfile_public_read(const char *path, const char *passphrase_file,
    uint8_t pub[ED25519_PUBLIC_LEN])
{
	struct ed25519_key *k;
	char *data;
	size_t len;
	int r;

	if (fileio_read_at(AT_FDCWD, path, 4096, &data, &len) != 0) {
		log_errno("%s: cannot read the key", path);
		return errno == ENOENT ? DS_ERR_NOTFOUND : DS_ERR_SYSTEM;
	}
	if (strncmp(data, "ed25519 ", 8) == 0) {
		r = 0;
		for (size_t i = 0; i < ED25519_PUBLIC_LEN && r == 0; i++) {
			int hi = util_hexval(data[8 + 2 * i]), lo;

			lo = hi < 0 ? -1 : util_hexval(data[9 + 2 * i]);
			if (hi < 0 || lo < 0)
				r = DS_ERR_INVALID;
			else
				pub[i] = (uint8_t)(hi << 4 | lo);
		}
		if (r == 0 && strcmp(data + 8 + 2 * ED25519_PUBLIC_LEN, "\n") != 0)
			r = DS_ERR_INVALID;
		free(data);
		if (r != 0)
			log_error("%s: not a public key file (\"ed25519 \" and 64 hex digits)", path);
		return r;
	}
	free(data);
	/* A private key file gives its public key too. */
	if ((r = keyfile_load(path, passphrase_file, &k)) != 0)
		return r;
	ed25519_public(k, pub);
	ed25519_free(k);
	return 0;
}
