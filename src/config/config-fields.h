/*
 * The schema of distsync.yml: one table of fields per section, in the manner
 * of tmux's options-table.c. A key is declared once, by its row; parsing,
 * defaults, copying, freeing, the "did you mean" lists and both printers
 * (config_print, config_print_host) are derived from the rows. Adding a host
 * key is one member in struct config_host and one row in config_host_fields.
 *
 * Internal to the config layer (config.c reads, config-print.c writes,
 * config-fields.c holds the tables); the unit test walks them.
 */
#ifndef DS_CONFIG_FIELDS_H
#define DS_CONFIG_FIELDS_H

#include <stddef.h>
#include <stdint.h>

enum config_field_type {
	CONFIG_FIELD_STRING,	/* char *, NULL when unset */
	CONFIG_FIELD_UNSIGNED,	/* unsigned, a whole number in [min, max] */
	CONFIG_FIELD_INT,	/* int, a whole number in [min, max] */
	CONFIG_FIELD_UINT64,	/* uint64_t; only a read hook can parse it */
	CONFIG_FIELD_BOOL,	/* int, 0 or 1; written only when true */
	CONFIG_FIELD_GLOBS,	/* char **, path globs; a single string is a list of one */
	CONFIG_FIELD_NAMES,	/* char **, names; a single string is a list of one */
	CONFIG_FIELD_ARGV,	/* char **, a command: a non-empty list, never a shell string */
	CONFIG_FIELD_STRINGS,	/* char **, strings (URLs, key ids); a single string is a list of one */
	CONFIG_FIELD_ENUM,	/* an enum whose values index names; only a read hook parses it */
	CONFIG_FIELD_MAPPING,	/* a nested struct described by sub; only a read hook parses it */
};

/* Flags of a row. */
#define CONFIG_FIELD_DURATION	0x01	/* seconds, or a number with s, m, h or d */
#define CONFIG_FIELD_ZERO_UNSET	0x02	/* 0 means "not set": not printed */
#define CONFIG_FIELD_RECEIVER	0x04	/* sent to the receiver by config_print_host() */
/* A path on this machine: "~" is $HOME, a relative one is under the config's directory. */
#define CONFIG_FIELD_LOCAL_PATH	0x08
/* A directory on the target: absolute for a host with an address, else a local path. */
#define CONFIG_FIELD_TARGET_PATH 0x10
#define CONFIG_FIELD_EMPTY_LIST	0x20	/* a list that defaults to empty, never NULL */
#define CONFIG_FIELD_REPO_ONLY	0x40	/* only a repository uses it: not printed for a site.yml */

struct loader;			/* config.c's parsing state */
struct node;			/* config.c's YAML tree */

struct config_field {
	const char	*name;		/* the YAML key */
	enum config_field_type type;
	size_t		 offset;	/* of the value in the section's struct */
	unsigned	 flags;		/* CONFIG_FIELD_* */
	uint64_t	 def;		/* default of a number, a bool or an enum */
	const char	*def_string;	/* default of a string, or NULL */
	uint64_t	 min, max;	/* range of a number */
	const char *const *names;	/* an enum's values, by index, NULL-terminated */
	const struct config_field *sub;	/* a mapping's fields */
	/*
	 * Extra check of a string that is set, or of each item of a list: NULL,
	 * or what was expected instead.
	 */
	const char	*(*valid)(const char *value);
	/*
	 * Reads a value the plain readers cannot (a type marked "only a read
	 * hook"), from MAP at CTX into OBJ (the section's struct), logging and
	 * returning DS_ERR_CONFIG on error. It runs whether or not the key is
	 * present, after every plain value of the mapping is read and after
	 * the section's own checks of them, in table order with the valid
	 * checks; so a row with a hook may also check what the others read.
	 */
	int		(*read)(struct loader *ld, const struct node *map, const char *ctx,
			    const struct config_field *field, void *obj);
};

/* Each table ends with a row whose name is NULL; the comment names the struct of OBJ. */
extern const struct config_field config_distribution_fields[];	/* config_distribution */
extern const struct config_field config_defaults_fields[];	/* config: defaults: beyond host keys */
extern const struct config_field config_host_fields[];		/* config_host; also in defaults: */
extern const struct config_field config_service_fields[];	/* config_service */
extern const struct config_field config_health_fields[];	/* config_health */
extern const struct config_field config_run_once_fields[];	/* config_run_once */
extern const struct config_field config_site_fields[];		/* config_site */

/* The read hooks the tables name, in config.c. */
int	config_read_bwlimit(struct loader *, const struct node *, const char *,
	    const struct config_field *, void *);
int	config_read_restart(struct loader *, const struct node *, const char *,
	    const struct config_field *, void *);
int	config_read_health(struct loader *, const struct node *, const char *,
	    const struct config_field *, void *);
/* Any enum: one of the row's names, the default when absent. */
int	config_read_enum(struct loader *, const struct node *, const char *,
	    const struct config_field *, void *);

/* The address of FIELD's value in OBJ, a struct of the field's table. */
#define CONFIG_FIELD_AT(obj, field, type) \
	((type *)(void *)((char *)(obj) + (field)->offset))
#define CONFIG_FIELD_AT_CONST(obj, field, type) \
	((type const *)(const void *)((const char *)(obj) + (field)->offset))

/* Sets every field of OBJ to its row's default (strings copied, lists empty or NULL). */
void	config_fields_defaults(const struct config_field *fields, void *obj);

/* Frees what the fields of OBJ own; OBJ itself is the caller's. */
void	config_fields_release(const struct config_field *fields, void *obj);

/*
 * Gives DST (already a shallow copy of SRC, e.g. by struct assignment) its
 * own copies of the strings and lists the fields own.
 */
void	config_fields_copy(const struct config_field *fields, void *dst, const void *src);

/* Nonzero when every field of OBJ holds its row's default. */
int	config_fields_all_default(const struct config_field *fields, const void *obj);

#endif
