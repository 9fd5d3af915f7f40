/* known_hosts lookups over several files and appending a key (see known-hosts.h). */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/path.h"
#include "base/xmalloc.h"
#include "wire/known-hosts.h"

/* The first line found for each outcome, in file order. */
struct found {
	const char	*file;
	unsigned	 line;
	enum ssh_keytypes_e type;
};

char *
known_hosts_name(const char *host, unsigned port)
{
	char *s;

	if (port == 0 || port == 22)
		s = xstrdup(host);
	else
		s = xasprintf("[%s]:%u", host, port);
	for (char *c = s; *c != '\0'; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	return s;
}

void
known_hosts_result_release(struct known_hosts_result *res)
{
	free(res->file);
	free(res->recorded_type);
	memset(res, 0, sizeof(*res));
	res->state = KNOWN_HOSTS_UNKNOWN;
}

/* Reads FILE whole; *data NULL (and 0 returned) when it does not exist. */
static int
read_whole(const char *file, char **data, size_t *len)
{
	int fd, r = 0;

	*data = NULL;
	*len = 0;
	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		log_errno("%s: cannot read the known_hosts file", file);
		return DS_ERR_SYSTEM;
	}
	if (fileio_read_fd(fd, KNOWN_HOSTS_MAX_SIZE, data, len) != 0) {
		if (errno == EFBIG) {
			log_error("%s: larger than %d bytes: not read as a known_hosts file", file,
			    KNOWN_HOSTS_MAX_SIZE);
			r = DS_ERR_INVALID;
		} else {
			log_errno("%s: cannot read the known_hosts file", file);
			r = DS_ERR_SYSTEM;
		}
	}
	close(fd);
	return r;
}

/*
 * One line: sets the slot of its outcome if still empty. Returns 1 when it
 * settles the lookup (a revoked key).
 */
static int
check_line(const char *file, unsigned n, const char *line, const char *name, ssh_key key,
    struct found *match, struct found *changed, struct found *other, struct found *revoked)
{
	struct ssh_knownhosts_entry *entry = NULL;
	struct found *slot;
	int is_revoked = 0;

	while (*line == ' ' || *line == '\t')
		line++;
	if (*line == '\0' || *line == '#')
		return 0;
	if (*line == '@') {
		if (strncmp(line, "@revoked", 8) != 0 || (line[8] != ' ' && line[8] != '\t'))
			return 0;	/* @cert-authority: distsync does not use host certificates */
		is_revoked = 1;
		for (line += 8; *line == ' ' || *line == '\t'; line++)
			;
	}
	if (ssh_known_hosts_parse_line(name, line, &entry) != SSH_OK) {
		/* Another host's line (SSH_AGAIN), or one we cannot read: skipped. */
		ssh_knownhosts_entry_free(entry);
		return 0;
	}
	if (is_revoked) {
		if (ssh_key_cmp(key, entry->publickey, SSH_KEY_CMP_PUBLIC) == 0) {
			revoked->file = file;
			revoked->line = n;
			ssh_knownhosts_entry_free(entry);
			return 1;
		}
		ssh_knownhosts_entry_free(entry);
		return 0;
	}
	if (ssh_key_cmp(key, entry->publickey, SSH_KEY_CMP_PUBLIC) == 0)
		slot = match;
	else if (ssh_key_type(key) == ssh_key_type(entry->publickey))
		slot = changed;
	else
		slot = other;
	if (slot->file == NULL) {
		slot->file = file;
		slot->line = n;
		slot->type = ssh_key_type(entry->publickey);
	}
	ssh_knownhosts_entry_free(entry);
	return 0;
}

static void
set_result(struct known_hosts_result *res, enum known_hosts_state state, const struct found *f)
{
	const char *type;

	res->state = state;
	res->file = xstrdup(f->file);
	res->line = f->line;
	if (state == KNOWN_HOSTS_CHANGED || state == KNOWN_HOSTS_OTHER_TYPE) {
		type = ssh_key_type_to_char(f->type);
		res->recorded_type = xstrdup(type ? type : "unknown");
	}
}

int
known_hosts_check(char *const *files, const char *name, ssh_key key,
    struct known_hosts_result *res)
{
	struct found match = { 0 }, changed = { 0 }, other = { 0 }, revoked = { 0 };
	char **texts;
	size_t nfiles = 0, len;
	int r = 0, settled = 0;

	memset(res, 0, sizeof(*res));
	res->state = KNOWN_HOSTS_UNKNOWN;
	while (files[nfiles] != NULL)
		nfiles++;
	/* The texts live until the result is built: the slots point into FILES. */
	texts = xcalloc(nfiles + 1, sizeof(*texts));
	for (size_t i = 0; i < nfiles && !settled; i++) {
		char *line, *end, *stop;
		unsigned n = 0;

		if ((r = read_whole(files[i], &texts[i], &len)) != 0)
			goto out;
		if (texts[i] == NULL)
			continue;
		stop = texts[i] + len;
		for (line = texts[i]; line < stop && !settled; line = end + 1) {
			n++;
			if ((end = memchr(line, '\n', (size_t)(stop - line))) == NULL)
				end = stop;
			*end = '\0';
			if (end > line && end[-1] == '\r')
				end[-1] = '\0';
			settled = check_line(files[i], n, line, name, key, &match, &changed, &other,
			    &revoked);
		}
	}
	if (revoked.file != NULL)
		set_result(res, KNOWN_HOSTS_REVOKED, &revoked);
	else if (match.file != NULL)
		set_result(res, KNOWN_HOSTS_MATCH, &match);
	else if (changed.file != NULL)
		set_result(res, KNOWN_HOSTS_CHANGED, &changed);
	else if (other.file != NULL)
		set_result(res, KNOWN_HOSTS_OTHER_TYPE, &other);
out:
	for (size_t i = 0; i < nfiles; i++)
		free(texts[i]);
	free(texts);
	return r;
}

int
known_hosts_record(const char *file, const char *name, ssh_key key)
{
	struct stat st;
	char *b64 = NULL, *line = NULL, *dir = NULL, last = '\n';
	const char *type;
	int fd = -1, r = DS_ERR_SYSTEM;

	type = ssh_key_type_to_char(ssh_key_type(key));
	if (type == NULL || ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK) {
		log_error("%s: cannot encode the host key of %s", file, name);
		goto out;
	}
	dir = path_dirname(file);
	if (stat(dir, &st) != 0 && errno == ENOENT && mkdir(dir, 0700) != 0) {
		log_errno("%s: cannot create the directory for %s", dir, file);
		goto out;
	}
	if ((fd = open(file, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		log_errno("%s: cannot record the host key of %s", file, name);
		goto out;
	}
	/* A last line without its newline must not swallow ours. */
	if (fstat(fd, &st) == 0 && st.st_size > 0 &&
	    pread(fd, &last, 1, st.st_size - 1) != 1)
		last = '\n';
	line = xasprintf("%s%s %s %s\n", last == '\n' ? "" : "\n", name, type, b64);
	if (fileio_write_all(fd, line, strlen(line)) != 0 || fsync(fd) != 0) {
		log_errno("%s: cannot record the host key of %s", file, name);
		goto out;
	}
	r = 0;
out:
	if (fd >= 0 && close(fd) != 0 && r == 0) {
		log_errno("%s: cannot record the host key of %s", file, name);
		r = DS_ERR_SYSTEM;
	}
	ssh_string_free_char(b64);
	free(line);
	free(dir);
	return r;
}
