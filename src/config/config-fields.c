/*
 * The schema of distsync.yml (config-fields.h): every key of every section,
 * once, and what follows from a row without reading YAML: defaults,
 * copies, freeing. config.c parses by these rows; config-print.c prints by
 * them. The order of a table is the order keys are printed and listed in
 * "expected one of: ...", and the order plain values are read.
 */
#include "autoconf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/xmalloc.h"
#include "config/config.h"
#include "config/config-fields.h"

/* An enum field is read and written as an unsigned int. */
_Static_assert(sizeof(enum config_restart) == sizeof(unsigned),
    "enum config_restart is stored as an unsigned int");

_Static_assert(sizeof(enum config_each) == sizeof(unsigned),
    "enum config_each is stored as an unsigned int");
_Static_assert(sizeof(enum config_input) == sizeof(unsigned),
    "enum config_input is stored as an unsigned int");

/* By index: the values of enum config_restart. */
static const char *const restart_names[] = { "none", "compose", "command", NULL };
/* By index: the values of enum config_each and enum config_input. */
static const char *const each_names[] = { "file", "set", NULL };
static const char *const input_names[] = { "none", "stdin", "argument", NULL };

static const char *
valid_address(const char *value)
{
	if (value[0] == '-' || strpbrk(value, " \t") != NULL)
		return "expected a host name or IP address";
	return NULL;
}

static const char *
valid_user(const char *value)
{
	if (value[0] == '-' || strpbrk(value, " \t@") != NULL)
		return "expected a login name";
	return NULL;
}

/* A root key id as 'distsync keys' prints it: the SHA-256 of the public key. */
static const char *
valid_keyid(const char *value)
{
	size_t i;

	for (i = 0; value[i] != '\0'; i++)
		if (!((value[i] >= '0' && value[i] <= '9') || (value[i] >= 'a' && value[i] <= 'f')))
			break;
	if (i != 64 || value[i] != '\0')
		return "expected a key id: 64 lower-case hex digits, as 'distsync keys' prints it";
	return NULL;
}

static const char *
valid_mirror(const char *value)
{
	if (strncmp(value, "http://", 7) == 0 || strncmp(value, "https://", 8) == 0 ||
	    (strncmp(value, "file://", 7) == 0 && value[7] == '/') || value[0] == '/')
		return NULL;
	return "expected an http://, https:// or file:/// URL, or an absolute directory";
}

static const char *
valid_channel(const char *value)
{
	size_t len = strlen(value);

	if (len == 0 || len > 64 || strspn(value, "abcdefghijklmnopqrstuvwxyz0123456789._-") != len ||
	    strcmp(value, ".") == 0 || strcmp(value, "..") == 0)
		return "expected a channel name: 1 to 64 of a-z, 0-9, '.', '_' or '-'";
	return NULL;
}

#define DIST(m)		offsetof(struct config_distribution, m)
#define CONF(m)		offsetof(struct config, m)
#define HOST(m)		offsetof(struct config_host, m)
#define SERVICE(m)	offsetof(struct config_service, m)
#define HEALTH(m)	offsetof(struct config_health, m)
#define RUN_ONCE(m)	offsetof(struct config_run_once, m)
#define SITE(m)		offsetof(struct config_site, m)

const struct config_field config_distribution_fields[] = {
	{ .name = "name", .type = CONFIG_FIELD_STRING, .offset = DIST(name),
	  .flags = CONFIG_FIELD_RECEIVER },
	{ .name = "source", .type = CONFIG_FIELD_STRING, .offset = DIST(source),
	  .flags = CONFIG_FIELD_LOCAL_PATH | CONFIG_FIELD_REPO_ONLY, .def_string = "dist" },
	{ .name = "store", .type = CONFIG_FIELD_STRING, .offset = DIST(store),
	  .flags = CONFIG_FIELD_LOCAL_PATH | CONFIG_FIELD_REPO_ONLY, .def_string = ".distsync" },
	{ .name = "keep_releases", .type = CONFIG_FIELD_UNSIGNED, .offset = DIST(keep_releases),
	  .def = 10, .min = 1, .max = 100000,
	  .flags = CONFIG_FIELD_REPO_ONLY },
	{ .name = "signing_key", .type = CONFIG_FIELD_STRING, .offset = DIST(signing_key),
	  .flags = CONFIG_FIELD_LOCAL_PATH | CONFIG_FIELD_REPO_ONLY },
	{ .name = "signing_passphrase_file", .type = CONFIG_FIELD_STRING,
	  .offset = DIST(signing_passphrase_file),
	  .flags = CONFIG_FIELD_LOCAL_PATH | CONFIG_FIELD_REPO_ONLY },
	{ .name = "channel", .type = CONFIG_FIELD_STRING, .offset = DIST(channel),
	  .def_string = "stable", .valid = valid_channel },
	{ .name = "timestamp_key", .type = CONFIG_FIELD_STRING, .offset = DIST(timestamp_key),
	  .flags = CONFIG_FIELD_LOCAL_PATH | CONFIG_FIELD_REPO_ONLY },
	{ .name = "publish_dir", .type = CONFIG_FIELD_STRING, .offset = DIST(publish_dir),
	  .flags = CONFIG_FIELD_LOCAL_PATH | CONFIG_FIELD_REPO_ONLY },
	{ .name = "publish_deltas", .type = CONFIG_FIELD_UNSIGNED, .offset = DIST(publish_deltas),
	  .def = 3, .min = 0, .max = 100,
	  .flags = CONFIG_FIELD_REPO_ONLY },
	{ .name = "publish_expires", .type = CONFIG_FIELD_UNSIGNED, .offset = DIST(publish_expires),
	  .flags = CONFIG_FIELD_DURATION | CONFIG_FIELD_REPO_ONLY, .def = 7 * 86400, .min = 60,
	  .max = 366 * 86400 },
	{ .name = "level", .type = CONFIG_FIELD_INT, .offset = DIST(level),
	  .flags = CONFIG_FIELD_RECEIVER | CONFIG_FIELD_REPO_ONLY, .def = 9, .min = 1, .max = 22 },
	{ .name = NULL }
};

/* defaults: takes every host key, and these. */
const struct config_field config_defaults_fields[] = {
	{ .name = "parallel", .type = CONFIG_FIELD_UNSIGNED, .offset = CONF(parallel),
	  .def = 8, .min = 1, .max = 1024 },
	{ .name = NULL }
};

const struct config_field config_host_fields[] = {
	{ .name = "address", .type = CONFIG_FIELD_STRING, .offset = HOST(address),
	  .valid = valid_address },
	{ .name = "user", .type = CONFIG_FIELD_STRING, .offset = HOST(user),
	  .valid = valid_user },
	{ .name = "port", .type = CONFIG_FIELD_UNSIGNED, .offset = HOST(port),
	  .flags = CONFIG_FIELD_ZERO_UNSET, .min = 1, .max = 65535 },
	{ .name = "identity", .type = CONFIG_FIELD_STRING, .offset = HOST(identity),
	  .flags = CONFIG_FIELD_LOCAL_PATH },
	{ .name = "known_hosts", .type = CONFIG_FIELD_STRING, .offset = HOST(known_hosts),
	  .flags = CONFIG_FIELD_LOCAL_PATH },
	{ .name = "path", .type = CONFIG_FIELD_STRING, .offset = HOST(path),
	  .flags = CONFIG_FIELD_TARGET_PATH | CONFIG_FIELD_RECEIVER },
	{ .name = "state", .type = CONFIG_FIELD_STRING, .offset = HOST(state),
	  .flags = CONFIG_FIELD_TARGET_PATH | CONFIG_FIELD_RECEIVER },
	{ .name = "compose", .type = CONFIG_FIELD_STRING, .offset = HOST(compose),
	  .flags = CONFIG_FIELD_TARGET_PATH | CONFIG_FIELD_RECEIVER },
	{ .name = "compose_project", .type = CONFIG_FIELD_STRING, .offset = HOST(compose_project),
	  .flags = CONFIG_FIELD_RECEIVER },
	{ .name = "remote_command", .type = CONFIG_FIELD_STRING, .offset = HOST(remote_command),
	  .def_string = "distsync" },
	{ .name = "site_config", .type = CONFIG_FIELD_STRING, .offset = HOST(site_config),
	  .flags = CONFIG_FIELD_TARGET_PATH | CONFIG_FIELD_REPO_ONLY },
	{ .name = "owner", .type = CONFIG_FIELD_STRING, .offset = HOST(owner),
	  .flags = CONFIG_FIELD_RECEIVER },
	{ .name = "group", .type = CONFIG_FIELD_STRING, .offset = HOST(group),
	  .flags = CONFIG_FIELD_RECEIVER },
	{ .name = "groups", .type = CONFIG_FIELD_NAMES, .offset = HOST(groups),
	  .flags = CONFIG_FIELD_EMPTY_LIST | CONFIG_FIELD_REPO_ONLY },
	/* Read after the address and user are checked, as it always was. */
	{ .name = "bwlimit", .type = CONFIG_FIELD_UINT64, .offset = HOST(bwlimit),
	  .read = config_read_bwlimit },
	{ .name = "retries", .type = CONFIG_FIELD_UNSIGNED, .offset = HOST(retries),
	  .def = 3, .min = 0, .max = 1000 },
	{ .name = "retry_max_wait", .type = CONFIG_FIELD_UNSIGNED, .offset = HOST(retry_max_wait),
	  .flags = CONFIG_FIELD_DURATION, .def = 300, .min = 1, .max = 86400 },
	{ .name = "connect_timeout", .type = CONFIG_FIELD_UNSIGNED, .offset = HOST(connect_timeout),
	  .flags = CONFIG_FIELD_DURATION, .def = 30, .min = 1, .max = 3600 },
	{ .name = "idle_timeout", .type = CONFIG_FIELD_UNSIGNED, .offset = HOST(idle_timeout),
	  .flags = CONFIG_FIELD_DURATION, .def = 300, .min = 1, .max = 86400 },
	{ .name = "keep_backups", .type = CONFIG_FIELD_UNSIGNED, .offset = HOST(keep_backups),
	  .flags = CONFIG_FIELD_RECEIVER, .def = CONFIG_KEEP_BACKUPS_DEFAULT, .min = 1, .max = 1000 },
	{ .name = "trust_root", .type = CONFIG_FIELD_STRINGS, .offset = HOST(trust_root),
	  .flags = CONFIG_FIELD_RECEIVER | CONFIG_FIELD_EMPTY_LIST, .valid = valid_keyid },
	{ .name = "mirrors", .type = CONFIG_FIELD_STRINGS, .offset = HOST(mirrors),
	  .flags = CONFIG_FIELD_EMPTY_LIST, .valid = valid_mirror },
	{ .name = "ca_file", .type = CONFIG_FIELD_STRING, .offset = HOST(ca_file),
	  .flags = CONFIG_FIELD_LOCAL_PATH },
	{ .name = NULL }
};

const struct config_field config_health_fields[] = {
	{ .name = "command", .type = CONFIG_FIELD_ARGV, .offset = HEALTH(command) },
	{ .name = "url", .type = CONFIG_FIELD_STRING, .offset = HEALTH(url) },
	{ .name = "container", .type = CONFIG_FIELD_BOOL, .offset = HEALTH(container) },
	{ .name = "timeout", .type = CONFIG_FIELD_UNSIGNED, .offset = HEALTH(timeout),
	  .flags = CONFIG_FIELD_DURATION, .def = 300, .min = 1, .max = 86400 },
	{ .name = NULL }
};

const struct config_field config_service_fields[] = {
	{ .name = "paths", .type = CONFIG_FIELD_GLOBS, .offset = SERVICE(paths) },
	/* Read after the lists, and checks command against itself. */
	{ .name = "restart", .type = CONFIG_FIELD_ENUM, .offset = SERVICE(restart),
	  .def = CONFIG_RESTART_COMPOSE, .names = restart_names, .read = config_read_restart },
	{ .name = "command", .type = CONFIG_FIELD_ARGV, .offset = SERVICE(command) },
	{ .name = "reload_on", .type = CONFIG_FIELD_GLOBS, .offset = SERVICE(reload_on),
	  .flags = CONFIG_FIELD_EMPTY_LIST },
	{ .name = "after", .type = CONFIG_FIELD_NAMES, .offset = SERVICE(after),
	  .flags = CONFIG_FIELD_EMPTY_LIST },
	{ .name = "health", .type = CONFIG_FIELD_MAPPING, .offset = SERVICE(health),
	  .sub = config_health_fields, .read = config_read_health },
	{ .name = NULL }
};

const struct config_field config_run_once_fields[] = {
	{ .name = "paths", .type = CONFIG_FIELD_GLOBS, .offset = RUN_ONCE(paths) },
	{ .name = "command", .type = CONFIG_FIELD_ARGV, .offset = RUN_ONCE(command) },
	{ .name = "service", .type = CONFIG_FIELD_STRING, .offset = RUN_ONCE(service) },
	{ .name = "input", .type = CONFIG_FIELD_ENUM, .offset = RUN_ONCE(input),
	  .def = CONFIG_INPUT_NONE, .names = input_names, .read = config_read_enum },
	{ .name = "each", .type = CONFIG_FIELD_ENUM, .offset = RUN_ONCE(each),
	  .def = CONFIG_EACH_FILE, .names = each_names, .read = config_read_enum },
	{ .name = NULL }
};

const struct config_field config_site_fields[] = {
	{ .name = "upstream", .type = CONFIG_FIELD_STRING, .offset = SITE(upstream) },
	{ .name = "repository", .type = CONFIG_FIELD_STRING, .offset = SITE(repository) },
	{ .name = "host", .type = CONFIG_FIELD_STRING, .offset = SITE(host) },
	{ .name = NULL }
};

static int
field_is_list(const struct config_field *f)
{
	return f->type == CONFIG_FIELD_GLOBS || f->type == CONFIG_FIELD_NAMES ||
	    f->type == CONFIG_FIELD_ARGV || f->type == CONFIG_FIELD_STRINGS;
}

static char **
strv_copy(char *const *src)
{
	char **dst;
	size_t n = 0;

	if (src == NULL)
		return NULL;
	while (src[n] != NULL)
		n++;
	dst = xcalloc(n + 1, sizeof(*dst));
	for (size_t i = 0; i < n; i++)
		dst[i] = xstrdup(src[i]);
	return dst;
}

void
config_fields_defaults(const struct config_field *fields, void *obj)
{
	for (const struct config_field *f = fields; f->name != NULL; f++) {
		switch (f->type) {
		case CONFIG_FIELD_STRING:
			*CONFIG_FIELD_AT(obj, f, char *) = f->def_string != NULL ?
			    xstrdup(f->def_string) : NULL;
			break;
		case CONFIG_FIELD_UNSIGNED:
		case CONFIG_FIELD_ENUM:
			*CONFIG_FIELD_AT(obj, f, unsigned) = (unsigned)f->def;
			break;
		case CONFIG_FIELD_INT:
		case CONFIG_FIELD_BOOL:
			*CONFIG_FIELD_AT(obj, f, int) = (int)f->def;
			break;
		case CONFIG_FIELD_UINT64:
			*CONFIG_FIELD_AT(obj, f, uint64_t) = f->def;
			break;
		case CONFIG_FIELD_GLOBS:
		case CONFIG_FIELD_NAMES:
		case CONFIG_FIELD_ARGV:
		case CONFIG_FIELD_STRINGS:
			*CONFIG_FIELD_AT(obj, f, char **) = f->flags & CONFIG_FIELD_EMPTY_LIST ?
			    xcalloc(1, sizeof(char *)) : NULL;
			break;
		case CONFIG_FIELD_MAPPING:
			config_fields_defaults(f->sub, CONFIG_FIELD_AT(obj, f, char));
			break;
		}
	}
}

void
config_fields_release(const struct config_field *fields, void *obj)
{
	for (const struct config_field *f = fields; f->name != NULL; f++) {
		if (f->type == CONFIG_FIELD_STRING)
			free(*CONFIG_FIELD_AT(obj, f, char *));
		else if (field_is_list(f))
			xfree_strv(*CONFIG_FIELD_AT(obj, f, char **));
		else if (f->type == CONFIG_FIELD_MAPPING)
			config_fields_release(f->sub, CONFIG_FIELD_AT(obj, f, char));
	}
}

void
config_fields_copy(const struct config_field *fields, void *dst, const void *src)
{
	for (const struct config_field *f = fields; f->name != NULL; f++) {
		if (f->type == CONFIG_FIELD_STRING) {
			const char *s = *CONFIG_FIELD_AT_CONST(src, f, char *);

			*CONFIG_FIELD_AT(dst, f, char *) = s != NULL ? xstrdup(s) : NULL;
		} else if (field_is_list(f))
			*CONFIG_FIELD_AT(dst, f, char **) =
			    strv_copy(*CONFIG_FIELD_AT_CONST(src, f, char **));
		else if (f->type == CONFIG_FIELD_MAPPING)
			config_fields_copy(f->sub, CONFIG_FIELD_AT(dst, f, char),
			    CONFIG_FIELD_AT_CONST(src, f, char));
	}
}

int
config_fields_all_default(const struct config_field *fields, const void *obj)
{
	for (const struct config_field *f = fields; f->name != NULL; f++) {
		switch (f->type) {
		case CONFIG_FIELD_STRING: {
			const char *s = *CONFIG_FIELD_AT_CONST(obj, f, char *);

			if (s == NULL ? f->def_string != NULL : f->def_string == NULL ||
			    strcmp(s, f->def_string) != 0)
				return 0;
			break;
		}
		case CONFIG_FIELD_UNSIGNED:
		case CONFIG_FIELD_ENUM:
			if (*CONFIG_FIELD_AT_CONST(obj, f, unsigned) != f->def)
				return 0;
			break;
		case CONFIG_FIELD_INT:
		case CONFIG_FIELD_BOOL:
			if ((uint64_t)*CONFIG_FIELD_AT_CONST(obj, f, int) != f->def)
				return 0;
			break;
		case CONFIG_FIELD_UINT64:
			if (*CONFIG_FIELD_AT_CONST(obj, f, uint64_t) != f->def)
				return 0;
			break;
		case CONFIG_FIELD_GLOBS:
		case CONFIG_FIELD_NAMES:
		case CONFIG_FIELD_ARGV:
		case CONFIG_FIELD_STRINGS: {
			char *const *list = *CONFIG_FIELD_AT_CONST(obj, f, char **);

			if (list != NULL && list[0] != NULL)
				return 0;
			break;
		}
		case CONFIG_FIELD_MAPPING:
			if (!config_fields_all_default(f->sub, CONFIG_FIELD_AT_CONST(obj, f, char)))
				return 0;
			break;
		}
	}
	return 1;
}
