/*
 * distsync.yml: libyaml events build a small tree of nodes with positions
 * (aliases refused, depth and size bounded), then one pass validates it into
 * a read-only struct config, reading each section by its table of fields
 * (config-fields.h). The first error is logged as
 * "FILE:LINE:COLUMN: KEY: what was expected" and loading stops.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#include "base/err.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/path.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "config/config.h"
#include "config/config-fields.h"

#define MAX_DEPTH	32	/* nesting deeper than any sane config */
#define MAX_NODES	200000	/* values in one file */
#define MAX_SERVICES	1000
#define MAX_HOSTS	100000
#define MAX_NAME	64
#define MAX_KEYS	64	/* keys of one section, for the "expected one of" list */

enum node_type { NODE_SCALAR, NODE_SEQUENCE, NODE_MAPPING };

struct node {
	enum node_type	  type;
	char		 *value;	/* scalar bytes, NUL-terminated */
	size_t		  len;
	int		  plain;	/* unquoted: may mean null, a number, a boolean */
	struct node	**items;	/* sequence items; mapping: key, value, key, value, ... */
	size_t		  nitems;
	size_t		  alloc;
	unsigned	  line;		/* 1-based */
	unsigned	  column;	/* 1-based */
};

struct loader {
	const char	*file;
	struct config	*config;
	struct node	*root;
	size_t		 nnodes;
};

/* Where a host's merged value came from (the host itself or defaults:). */
struct origin {
	const struct node *node;
	const char	*ctx;
};

static void
node_free(struct node *n)
{
	if (n == NULL)
		return;
	for (size_t i = 0; i < n->nitems; i++)
		node_free(n->items[i]);
	free(n->items);
	free(n->value);
	free(n);
}

/* Logs one error at node AT (or the file's start) naming CTX.KEY; returns DS_ERR_CONFIG. */
static int __attribute__((format(printf, 5, 6)))
fail(const struct loader *ld, const struct node *at, const char *ctx, const char *key,
    const char *fmt, ...)
{
	char msg[1024], name[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	name[0] = '\0';
	if (ctx != NULL && *ctx != '\0' && key != NULL)
		snprintf(name, sizeof(name), "%s.%s", ctx, key);
	else if (key != NULL)
		snprintf(name, sizeof(name), "%s", key);
	else if (ctx != NULL)
		snprintf(name, sizeof(name), "%s", ctx);
	if (name[0] != '\0')
		log_error("%s:%u:%u: %s: %s", ld->file, at ? at->line : 1, at ? at->column : 1,
		    name, msg);
	else
		log_error("%s:%u:%u: %s", ld->file, at ? at->line : 1, at ? at->column : 1, msg);
	return DS_ERR_CONFIG;
}

/* Optimal string alignment distance, capped for long inputs. */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t rows[3][MAX_NAME + 2];
	size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2], *t;

	if (la > MAX_NAME || lb > MAX_NAME)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t best = prev[j] + 1;

			if (cur[j - 1] + 1 < best)
				best = cur[j - 1] + 1;
			if (prev[j - 1] + cost < best)
				best = prev[j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    prev2[j - 2] + 1 < best)
				best = prev2[j - 2] + 1;
			cur[j] = best;
		}
		t = prev2;
		prev2 = prev;
		prev = cur;
		cur = t;
	}
	return prev[lb];
}

/* Returns the closest candidate to WORD worth suggesting, or NULL. */
static const char *
closest(const char *word, const char *const *candidates, size_t n)
{
	const char *best = NULL;
	size_t best_distance = SIZE_MAX, limit = strlen(word) <= 3 ? 1 : 2;

	for (size_t i = 0; i < n && candidates[i] != NULL; i++) {
		size_t d = edit_distance(word, candidates[i]);
		if (d < best_distance) {
			best_distance = d;
			best = candidates[i];
		}
	}
	return best_distance <= limit ? best : NULL;
}

/* Formats " (did you mean 'X'?)" into buf, or "". */
static const char *
hint(char *buf, size_t size, const char *word, const char *const *candidates, size_t n)
{
	const char *c = closest(word, candidates, n);

	if (c == NULL)
		buf[0] = '\0';
	else
		snprintf(buf, size, " (did you mean '%s'?)", c);
	return buf;
}

static int
is_null(const struct node *n)
{
	return n == NULL || (n->type == NODE_SCALAR && n->plain && (n->len == 0 ||
	    strcmp(n->value, "~") == 0 || strcmp(n->value, "null") == 0 ||
	    strcmp(n->value, "Null") == 0 || strcmp(n->value, "NULL") == 0));
}

/* A short description of what a node is, for "got ..." in messages. */
static const char *
describe(const struct node *n, char *buf, size_t size)
{
	if (is_null(n))
		return "nothing";
	if (n->type == NODE_SEQUENCE)
		return "a list";
	if (n->type == NODE_MAPPING)
		return "a mapping";
	if (n->len > 40)
		snprintf(buf, size, "'%.37s...'", n->value);
	else
		snprintf(buf, size, "'%s'", n->value);
	return buf;
}

/* --- Building the tree from libyaml events. --- */

/* Names the key being parsed from the open collections, e.g. "hosts.kirehe.port". */
static void
stack_context(struct node *const *stack, size_t depth, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < depth && used < size; i++) {
		const struct node *n = stack[i];
		/* An outer collection already holds the open child as its last item. */
		size_t open = i + 1 < depth ? 1 : 0;
		int w = 0;

		if (n->type == NODE_MAPPING && (n->nitems - open) % 2 == 1 &&
		    n->items[n->nitems - open - 1]->type == NODE_SCALAR)
			w = snprintf(buf + used, size - used, "%s%s", used ? "." : "",
			    n->items[n->nitems - open - 1]->value);
		else if (n->type == NODE_SEQUENCE)
			w = snprintf(buf + used, size - used, "[%zu]", n->nitems - open);
		if (w < 0)
			break;
		used += (size_t)w;
	}
	if (used >= size)
		buf[size - 1] = '\0';
}

static int
attach(struct loader *ld, struct node **stack, size_t depth, struct node *n)
{
	struct node *parent;

	if (depth == 0) {
		ld->root = n;
		return 0;
	}
	parent = stack[depth - 1];
	parent->items = xgrow(parent->items, &parent->alloc, parent->nitems + 1,
	    sizeof(*parent->items));
	parent->items[parent->nitems++] = n;
	return 0;
}

/* Logs libyaml's complaint about the text, at its position in the open collections. */
static void
parse_error(struct loader *ld, const yaml_parser_t *parser, struct node *const *stack,
    size_t depth)
{
	struct node where;
	char ctx[512];

	where.line = (unsigned)parser->problem_mark.line + 1;
	where.column = (unsigned)parser->problem_mark.column + 1;
	stack_context(stack, depth, ctx, sizeof(ctx));
	if (parser->context != NULL)
		fail(ld, &where, ctx, NULL, "invalid YAML: %s %s (line %zu)",
		    parser->problem ? parser->problem : "error", parser->context,
		    parser->context_mark.line + 1);
	else
		fail(ld, &where, ctx, NULL, "invalid YAML: %s",
		    parser->problem ? parser->problem : "error");
}

/*
 * Adds the scalar, or the collection, that EVENT starts at POS to the open
 * collection on STACK (a collection is then opened: *depth grows). Tags,
 * NUL bytes, too many values and too deep a nesting are refused: logged,
 * DS_ERR_CONFIG.
 */
static int
add_node(struct loader *ld, const yaml_event_t *event, const struct node *pos,
    struct node **stack, size_t *depth)
{
	const unsigned char *tag;
	struct node *n;
	char ctx[512];

	if (event->type == YAML_SCALAR_EVENT)
		tag = event->data.scalar.tag;
	else if (event->type == YAML_SEQUENCE_START_EVENT)
		tag = event->data.sequence_start.tag;
	else
		tag = event->data.mapping_start.tag;
	if (tag != NULL) {
		stack_context(stack, *depth, ctx, sizeof(ctx));
		return fail(ld, pos, ctx, NULL, "tag '%s' is not supported: "
		    "expected a plain value", (const char *)tag);
	}
	if (++ld->nnodes > MAX_NODES)
		return fail(ld, pos, NULL, NULL, "more than %d values: "
		    "this is not a configuration", MAX_NODES);
	n = xcalloc(1, sizeof(*n));
	n->line = pos->line;
	n->column = pos->column;
	if (event->type == YAML_SCALAR_EVENT) {
		n->type = NODE_SCALAR;
		n->len = event->data.scalar.length;
		n->value = xstrndup((const char *)event->data.scalar.value, n->len);
		n->plain = event->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	} else
		n->type = event->type == YAML_SEQUENCE_START_EVENT ? NODE_SEQUENCE : NODE_MAPPING;
	stack_context(stack, *depth, ctx, sizeof(ctx));
	attach(ld, stack, *depth, n);
	if (n->type == NODE_SCALAR) {
		if (memchr(event->data.scalar.value, '\0', n->len) != NULL)
			return fail(ld, pos, ctx, NULL, "a NUL byte inside a value");
		return 0;
	}
	if (*depth == MAX_DEPTH)
		return fail(ld, pos, ctx, NULL, "nested deeper than %d levels", MAX_DEPTH);
	stack[(*depth)++] = n;
	return 0;
}

static int
build_tree(struct loader *ld, const char *data, size_t len)
{
	yaml_parser_t parser;
	yaml_event_t event;
	struct node *stack[MAX_DEPTH];
	size_t depth = 0;
	char ctx[512];
	int done = 0, documents = 0, r = DS_ERR_CONFIG;

	if (!yaml_parser_initialize(&parser)) {
		log_error("%s: cannot initialise the YAML parser", ld->file);
		return DS_ERR_SYSTEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
	/* Never guess UTF-16 from binary junk: a config is UTF-8. */
	yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
	while (!done) {
		struct node pos;

		if (!yaml_parser_parse(&parser, &event)) {
			parse_error(ld, &parser, stack, depth);
			goto out;
		}
		pos.line = (unsigned)event.start_mark.line + 1;
		pos.column = (unsigned)event.start_mark.column + 1;
		switch (event.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++documents > 1) {
				fail(ld, &pos, NULL, NULL,
				    "a second YAML document: expected exactly one");
				goto fail_event;
			}
			break;
		case YAML_ALIAS_EVENT:
			stack_context(stack, depth, ctx, sizeof(ctx));
			fail(ld, &pos, ctx, NULL, "alias '*%s' is not supported: "
			    "write the value out instead of referring to an anchor",
			    (const char *)event.data.alias.anchor);
			goto fail_event;
		case YAML_SCALAR_EVENT:
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (add_node(ld, &event, &pos, stack, &depth) != 0)
				goto fail_event;
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			if (depth > 0)
				depth--;
			break;
		default:
			break;
		}
		yaml_event_delete(&event);
	}
	r = 0;
	goto out;
 fail_event:
	yaml_event_delete(&event);
 out:
	yaml_parser_delete(&parser);
	return r;
}

/* --- Mapping access and typed values. --- */

static const struct node *
map_get(const struct node *map, const char *key)
{
	if (map == NULL || map->type != NODE_MAPPING)
		return NULL;
	for (size_t i = 0; i + 1 < map->nitems; i += 2)
		if (map->items[i]->type == NODE_SCALAR && strcmp(map->items[i]->value, key) == 0)
			return map->items[i + 1];
	return NULL;
}

static size_t
count_strings(const char *const *v)
{
	size_t n = 0;

	while (v[n] != NULL)
		n++;
	return n;
}

struct key_position {
	const char	*name;
	size_t		 index;	/* of the key in the mapping's items */
};

/* Orders keys by name, then by position, so duplicates are adjacent. */
static int
compare_keys(const void *a, const void *b)
{
	const struct key_position *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * Finds the first repeated key in file order; sorting keeps a mapping of
 * thousands of hosts linear-logarithmic. Returns 0 or logs and fails.
 */
static int
check_duplicates(struct loader *ld, const struct node *map, const char *ctx)
{
	size_t n = map->nitems / 2, dup = SIZE_MAX, first = 0;
	struct key_position *keys;
	int r = 0;

	if (n < 2)
		return 0;
	keys = xcalloc(n, sizeof(*keys));
	for (size_t i = 0; i < n; i++) {
		keys[i].name = map->items[2 * i]->value;
		keys[i].index = 2 * i;
	}
	qsort(keys, n, sizeof(*keys), compare_keys);
	/* The second of each run of equal names is that name's first repeat. */
	for (size_t i = 1; i < n; i++)
		if (strcmp(keys[i].name, keys[i - 1].name) == 0 &&
		    (i < 2 || strcmp(keys[i - 1].name, keys[i - 2].name) != 0) &&
		    keys[i].index < dup) {
			dup = keys[i].index;
			first = keys[i - 1].index;
		}
	if (dup != SIZE_MAX)
		r = fail(ld, map->items[dup], ctx, map->items[dup]->value,
		    "duplicate key (first at line %u)", map->items[first]->line);
	free(keys);
	return r;
}

/*
 * Checks a mapping's keys: scalars, no duplicates, and (when KNOWN is not
 * NULL) only known names, with a suggestion for a misspelt one.
 */
static int
check_keys(struct loader *ld, const struct node *map, const char *ctx, const char *const *known)
{
	char buf[128];
	int r;

	for (size_t i = 0; i + 1 < map->nitems; i += 2) {
		const struct node *key = map->items[i];

		if (key->type != NODE_SCALAR)
			return fail(ld, key, ctx, NULL, "expected a plain key, got %s",
			    describe(key, buf, sizeof(buf)));
	}
	if ((r = check_duplicates(ld, map, ctx)) != 0)
		return r;
	for (size_t i = 0; known != NULL && i + 1 < map->nitems; i += 2) {
		const struct node *key = map->items[i];
		int found = 0;

		for (size_t j = 0; known[j] != NULL; j++)
			if (strcmp(known[j], key->value) == 0)
				found = 1;
		if (!found) {
			char h[128], list[512];
			size_t used = 0;

			list[0] = '\0';
			for (size_t j = 0; known[j] != NULL && used < sizeof(list); j++) {
				int w = snprintf(list + used, sizeof(list) - used, "%s%s",
				    j ? ", " : "", known[j]);
				if (w < 0)
					break;
				used += (size_t)w;
			}
			return fail(ld, key, ctx, key->value, "unknown key%s; expected one of: %s",
			    hint(h, sizeof(h), key->value, known, count_strings(known)), list);
		}
	}
	return 0;
}

static int
expect_mapping(struct loader *ld, const struct node *n, const char *ctx, const char *key)
{
	char buf[64];

	if (n != NULL && n->type == NODE_MAPPING)
		return 0;
	return fail(ld, n, ctx, key, "expected a mapping, got %s", describe(n, buf, sizeof(buf)));
}

/* Host, service and group names: they appear on command lines and in logs. */
static int
valid_name(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > MAX_NAME || s[0] == '-' || s[0] == '.')
		return 0;
	for (const char *p = s; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'))
			return 0;
	return 1;
}

static int
check_name(struct loader *ld, const struct node *n, const char *ctx, const char *what)
{
	if (!valid_name(n->value))
		return fail(ld, n, ctx, n->value, "a %s name must be 1-%d letters, digits, "
		    "'_', '-' or '.', not starting with '-' or '.'", what, MAX_NAME);
	if (strcmp(n->value, "all") == 0)
		return fail(ld, n, ctx, n->value, "'all' is reserved (it means every host)");
	return 0;
}

/* Sets *out to a copy of a string value; absent or null leaves it alone. */
static int
get_string(struct loader *ld, const struct node *map, const char *ctx, const char *key,
    char **out)
{
	const struct node *v = map_get(map, key);
	char buf[64];

	if (is_null(v))
		return 0;
	if (v->type != NODE_SCALAR)
		return fail(ld, v, ctx, key, "expected a string, got %s",
		    describe(v, buf, sizeof(buf)));
	if (v->len == 0)
		return fail(ld, v, ctx, key, "expected a non-empty string");
	for (const char *p = v->value; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return fail(ld, v, ctx, key, "control characters are not allowed");
	free(*out);
	*out = xstrdup(v->value);
	return 0;
}

/* Parses digits with an optional s/m/h/d suffix when DURATION; no sign, no spaces. */
static int
parse_number(const char *s, int duration, uint64_t *out)
{
	return (duration ? util_parse_duration(s, out) : util_parse_u64(s, out)) == 0 ? 0 : -1;
}

static int
get_unsigned(struct loader *ld, const struct node *map, const char *ctx, const char *key,
    int duration, uint64_t min, uint64_t max, unsigned *out)
{
	const struct node *v = map_get(map, key);
	uint64_t n;
	char buf[64];

	if (is_null(v))
		return 0;
	if (v->type != NODE_SCALAR || parse_number(v->value, duration, &n) != 0)
		return fail(ld, v, ctx, key, "expected %s, got %s", duration ?
		    "seconds (a whole number, optionally with s, m, h or d)" :
		    "a whole number", describe(v, buf, sizeof(buf)));
	if (n < min || n > max)
		return fail(ld, v, ctx, key, "%llu is out of range: expected %llu to %llu%s",
		    (unsigned long long)n, (unsigned long long)min, (unsigned long long)max,
		    duration ? " seconds" : "");
	*out = (unsigned)n;
	return 0;
}

static int
get_bool(struct loader *ld, const struct node *map, const char *ctx, const char *key, int *out)
{
	static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes", NULL };
	static const char *const no[] = { "false", "False", "FALSE", "no", "No", NULL };
	const struct node *v = map_get(map, key);
	char buf[64];

	if (is_null(v))
		return 0;
	if (v->type == NODE_SCALAR && v->plain) {
		for (size_t i = 0; yes[i] != NULL; i++)
			if (strcmp(v->value, yes[i]) == 0) {
				*out = 1;
				return 0;
			}
		for (size_t i = 0; no[i] != NULL; i++)
			if (strcmp(v->value, no[i]) == 0) {
				*out = 0;
				return 0;
			}
	}
	return fail(ld, v, ctx, key, "expected true or false, got %s",
	    describe(v, buf, sizeof(buf)));
}

/*
 * Sets *out to a NULL-terminated copy of a list value of KIND (GLOBS, NAMES
 * or ARGV); absent or null leaves it alone.
 */
static int
get_strv(struct loader *ld, const struct node *map, const char *ctx, const char *key,
    enum config_field_type kind, char ***out)
{
	const struct node *v = map_get(map, key);
	const struct node *const *items;
	char **list = NULL, buf[64];
	size_t n;
	int r;

	if (is_null(v))
		return 0;
	if (v->type == NODE_SCALAR && kind != CONFIG_FIELD_ARGV) {
		items = (const struct node *const *)&v;
		n = 1;
	} else if (v->type == NODE_SEQUENCE) {
		items = (const struct node *const *)v->items;
		n = v->nitems;
	} else if (kind == CONFIG_FIELD_ARGV)
		return fail(ld, v, ctx, key, "expected a command as a list of arguments "
		    "(it runs without a shell), e.g. [program, arg], got %s",
		    describe(v, buf, sizeof(buf)));
	else
		return fail(ld, v, ctx, key, "expected a list of %s, got %s",
		    kind == CONFIG_FIELD_GLOBS ? "path globs" : kind == CONFIG_FIELD_NAMES ?
		    "names" : "strings", describe(v, buf, sizeof(buf)));
	if (n == 0 && kind == CONFIG_FIELD_ARGV)
		return fail(ld, v, ctx, key, "expected a command, got an empty list");
	list = xcalloc(n + 1, sizeof(*list));
	for (size_t i = 0; i < n; i++) {
		const struct node *item = items[i];
		const char *why = NULL;

		if (item->type != NODE_SCALAR || is_null(item)) {
			r = fail(ld, item, ctx, key, "item %zu: expected a string, got %s",
			    i + 1, describe(item, buf, sizeof(buf)));
			goto out;
		}
		if (kind == CONFIG_FIELD_GLOBS && path_glob_check(item->value, &why) != 0) {
			r = fail(ld, item, ctx, key, "bad glob '%s': %s", item->value, why);
			goto out;
		}
		if (kind == CONFIG_FIELD_NAMES && !valid_name(item->value)) {
			r = fail(ld, item, ctx, key, "'%s' is not a valid name", item->value);
			goto out;
		}
		if (kind == CONFIG_FIELD_ARGV && i == 0 && item->len == 0) {
			r = fail(ld, item, ctx, key, "the program name is empty");
			goto out;
		}
		list[i] = xstrdup(item->value);
	}
	xfree_strv(*out);
	*out = list;
	list = NULL;
	r = 0;
 out:
	xfree_strv(list);
	return r;
}

static const struct node *
list_item(const struct node *v, size_t i)
{
	if (v->type == NODE_SEQUENCE)
		return v->items[i];
	return v;
}

/* Resolves a path on this machine: "~" is $HOME, a relative path is under DIR. */
static char *
local_path(const char *dir, const char *value)
{
	char *home, *p;

	if (value[0] == '~' && (value[1] == '\0' || value[1] == '/')) {
		home = util_home_dir();
		if (home == NULL)
			home = xstrdup("/");
		p = path_absolute(home, value[1] == '\0' ? "." : value + 2);
		free(home);
		return p;
	}
	return path_absolute(dir, value);
}

static void
resolve(const char *dir, char **value)
{
	char *p;

	if (*value == NULL)
		return;
	p = local_path(dir, *value);
	free(*value);
	*value = p;
}

/* --- Reading a section by its table of fields. --- */

/* Fills NAMES (SIZE slots) with the keys of FIELDS, then of MORE (or NULL); NULL-terminated. */
static const char *const *
field_names(const struct config_field *fields, const struct config_field *more,
    const char **names, size_t size)
{
	size_t n = 0;

	for (const struct config_field *f = fields; f->name != NULL && n + 1 < size; f++)
		names[n++] = f->name;
	for (const struct config_field *f = more; f != NULL && f->name != NULL && n + 1 < size;
	    f++)
		names[n++] = f->name;
	names[n] = NULL;
	return names;
}

/* check_keys() against the keys of FIELDS and MORE (or NULL). */
static int
check_fields(struct loader *ld, const struct node *map, const char *ctx,
    const struct config_field *fields, const struct config_field *more)
{
	const char *names[MAX_KEYS];

	return check_keys(ld, map, ctx, field_names(fields, more, names, MAX_KEYS));
}

/*
 * The first pass over a section: reads the plain values of FIELDS from MAP
 * into OBJ, in table order. Rows with a read hook wait for read_hooks().
 */
static int
read_fields(struct loader *ld, const struct node *map, const char *ctx,
    const struct config_field *fields, void *obj)
{
	int r = 0;

	for (const struct config_field *f = fields; r == 0 && f->name != NULL; f++) {
		int duration = (f->flags & CONFIG_FIELD_DURATION) != 0;
		unsigned v;

		if (f->read != NULL)
			continue;
		switch (f->type) {
		case CONFIG_FIELD_STRING:
			r = get_string(ld, map, ctx, f->name, CONFIG_FIELD_AT(obj, f, char *));
			break;
		case CONFIG_FIELD_UNSIGNED:
			r = get_unsigned(ld, map, ctx, f->name, duration, f->min, f->max,
			    CONFIG_FIELD_AT(obj, f, unsigned));
			break;
		case CONFIG_FIELD_INT:
			v = (unsigned)*CONFIG_FIELD_AT(obj, f, int);
			r = get_unsigned(ld, map, ctx, f->name, duration, f->min, f->max, &v);
			*CONFIG_FIELD_AT(obj, f, int) = (int)v;
			break;
		case CONFIG_FIELD_BOOL:
			r = get_bool(ld, map, ctx, f->name, CONFIG_FIELD_AT(obj, f, int));
			break;
		case CONFIG_FIELD_GLOBS:
		case CONFIG_FIELD_NAMES:
		case CONFIG_FIELD_ARGV:
		case CONFIG_FIELD_STRINGS:
			r = get_strv(ld, map, ctx, f->name, f->type,
			    CONFIG_FIELD_AT(obj, f, char **));
			break;
		case CONFIG_FIELD_UINT64:
		case CONFIG_FIELD_ENUM:
		case CONFIG_FIELD_MAPPING:
			log_error("%s: %s.%s: no reader for this key", ld->file, ctx, f->name);
			r = DS_ERR_SYSTEM;
			break;
		}
	}
	return r;
}

/*
 * The second pass, after the plain values and the section's own checks of
 * them: in table order, each row's read hook and the check of a string
 * that is set.
 */
static int
read_hooks(struct loader *ld, const struct node *map, const char *ctx,
    const struct config_field *fields, void *obj)
{
	const char *why, *value;
	int r;

	for (const struct config_field *f = fields; f->name != NULL; f++) {
		if (f->read != NULL && (r = f->read(ld, map, ctx, f, obj)) != 0)
			return r;
		if (f->valid == NULL)
			continue;
		if (f->type == CONFIG_FIELD_STRINGS) {
			char *const *list = *CONFIG_FIELD_AT(obj, f, char **);
			const struct node *v = map_get(map, f->name);

			for (size_t i = 0; list != NULL && list[i] != NULL; i++)
				if ((why = f->valid(list[i])) != NULL)
					return fail(ld, v != NULL && v->type == NODE_SEQUENCE &&
					    i < v->nitems ? v->items[i] : v, ctx, f->name,
					    "item %zu: %s", i + 1, why);
			continue;
		}
		if (f->type != CONFIG_FIELD_STRING)
			continue;
		value = *CONFIG_FIELD_AT(obj, f, char *);
		if (value != NULL && (why = f->valid(value)) != NULL)
			return fail(ld, map_get(map, f->name), ctx, f->name, "%s", why);
	}
	return 0;
}

/* Resolves every set CONFIG_FIELD_LOCAL_PATH string of OBJ against DIR. */
static void
resolve_fields(const char *dir, const struct config_field *fields, void *obj)
{
	for (const struct config_field *f = fields; f->name != NULL; f++)
		if (f->type == CONFIG_FIELD_STRING && (f->flags & CONFIG_FIELD_LOCAL_PATH))
			resolve(dir, CONFIG_FIELD_AT(obj, f, char *));
}

/* check_fields(), read_fields() and read_hooks() of a mapping MAP at CTX. */
static int
read_section(struct loader *ld, const struct node *map, const char *ctx,
    const struct config_field *fields, void *obj)
{
	int r;

	if ((r = check_fields(ld, map, ctx, fields, NULL)) != 0 ||
	    (r = read_fields(ld, map, ctx, fields, obj)) != 0 ||
	    (r = read_hooks(ld, map, ctx, fields, obj)) != 0)
		return r;
	return 0;
}

/* --- Sections. --- */

static int
parse_distribution(struct loader *ld, const struct node *root)
{
	const struct config_field *fields = config_distribution_fields;
	struct config_distribution *d = &ld->config->distribution;
	const struct node *map = map_get(root, "distribution");
	int r;

	if (map == NULL)
		return fail(ld, root, NULL, "distribution",
		    "missing: expected a mapping with at least 'name'");
	if ((r = expect_mapping(ld, map, NULL, "distribution")) != 0 ||
	    (r = read_section(ld, map, "distribution", fields, d)) != 0)
		return r;
	if (d->name == NULL)
		return fail(ld, map, "distribution", "name", "missing: expected the "
		    "distribution's name");
	if (!valid_name(d->name))
		return fail(ld, map_get(map, "name"), "distribution", "name",
		    "expected letters, digits, '_', '-' or '.' (at most %d)", MAX_NAME);
	resolve_fields(ld->config->dir, fields, d);
	if (strcmp(d->source, d->store) == 0)
		return fail(ld, map_get(map, "store"), "distribution", "store",
		    "the store cannot be the source tree");
	return 0;
}

/* The health: row of a service (config-fields.h): one kind of check. */
int
config_read_health(struct loader *ld, const struct node *map, const char *ctx,
    const struct config_field *field, void *obj)
{
	const struct node *v = map_get(map, field->name);
	struct config_health *h = CONFIG_FIELD_AT(obj, field, struct config_health);
	char hctx[160];
	int r, kinds;

	if (is_null(v))
		return 0;
	snprintf(hctx, sizeof(hctx), "%s.%s", ctx, field->name);
	if ((r = expect_mapping(ld, v, hctx, NULL)) != 0 ||
	    (r = read_section(ld, v, hctx, field->sub, h)) != 0)
		return r;
	kinds = (h->command != NULL) + (h->url != NULL) + (h->container != 0);
	if (kinds == 0)
		return fail(ld, v, hctx, NULL, "expected one of command: [argv], url: URL "
		    "or container: true");
	if (kinds > 1)
		return fail(ld, v, hctx, NULL, "give only one of command, url or container");
	if (h->url != NULL && strncmp(h->url, "http://", 7) != 0 &&
	    strncmp(h->url, "https://", 8) != 0)
		return fail(ld, map_get(v, "url"), hctx, "url",
		    "expected an http:// or https:// URL");
	return 0;
}

/*
 * The restart: row of a service (config-fields.h), read after its lists:
 * the kind of restart, and whether the service's command fits it.
 */
int
config_read_restart(struct loader *ld, const struct node *map, const char *ctx,
    const struct config_field *field, void *obj)
{
	struct config_service *s = obj;
	const struct node *v = map_get(map, field->name);
	char h[128], buf[64];
	size_t i;

	if (v != NULL) {
		if (v->type != NODE_SCALAR || is_null(v))
			return fail(ld, v, ctx, field->name, "expected compose, none or command, "
			    "got %s", describe(v, buf, sizeof(buf)));
		for (i = 0; field->names[i] != NULL; i++)
			if (strcmp(v->value, field->names[i]) == 0)
				break;
		if (field->names[i] == NULL)
			return fail(ld, v, ctx, field->name, "expected compose, none or command, "
			    "got '%s'%s", v->value, hint(h, sizeof(h), v->value, field->names,
			    count_strings(field->names)));
		s->restart = (enum config_restart)i;
	}
	if (s->restart == CONFIG_RESTART_COMMAND && s->command == NULL)
		return fail(ld, v, ctx, "command", "missing: 'restart: command' needs "
		    "command: [program, arg, ...]");
	/* A restart: none service may name the command its reload_on runs. */
	if (s->restart == CONFIG_RESTART_COMPOSE && s->command != NULL)
		return fail(ld, map_get(map, "command"), ctx, "command",
		    "only used with 'restart: command' (or as the reload_on action of "
		    "'restart: none')");
	return 0;
}

int
config_read_enum(struct loader *ld, const struct node *map, const char *ctx,
    const struct config_field *field, void *obj)
{
	const struct node *v = map_get(map, field->name);
	char h[128], buf[64], expected[128] = "";
	size_t i, len = 0;

	if (v == NULL)
		return 0;
	for (i = 0; field->names[i] != NULL && len < sizeof(expected); i++) {
		int n = snprintf(expected + len, sizeof(expected) - len, "%s%s",
		    i == 0 ? "" : field->names[i + 1] == NULL ? " or " : ", ", field->names[i]);

		len += n > 0 ? (size_t)n : 0;
	}
	if (v->type != NODE_SCALAR || is_null(v))
		return fail(ld, v, ctx, field->name, "expected %s, got %s", expected,
		    describe(v, buf, sizeof(buf)));
	for (i = 0; field->names[i] != NULL; i++)
		if (strcmp(v->value, field->names[i]) == 0)
			break;
	if (field->names[i] == NULL)
		return fail(ld, v, ctx, field->name, "expected %s, got '%s'%s", expected, v->value,
		    hint(h, sizeof(h), v->value, field->names, count_strings(field->names)));
	*CONFIG_FIELD_AT(obj, field, unsigned) = (unsigned)i;
	return 0;
}

static int
parse_service(struct loader *ld, const struct node *key, const struct node *map,
    struct config_service *s)
{
	const struct config_field *fields = config_service_fields;
	char ctx[128];
	int r;

	snprintf(ctx, sizeof(ctx), "services.%s", key->value);
	s->name = xstrdup(key->value);
	s->line = key->line;
	config_fields_defaults(fields, s);
	if ((r = check_name(ld, key, "services", "service")) != 0 ||
	    (r = expect_mapping(ld, map, "services", key->value)) != 0 ||
	    (r = check_fields(ld, map, ctx, fields, NULL)) != 0 ||
	    (r = read_fields(ld, map, ctx, fields, s)) != 0)
		return r;
	if (s->paths == NULL || s->paths[0] == NULL)
		return fail(ld, s->paths ? map_get(map, "paths") : key, ctx, "paths",
		    "missing: expected the globs of the artifacts this service uses");
	return read_hooks(ld, map, ctx, fields, s);
}

/* Depth-first search for a cycle through "after"; reports the first one found. */
static int
find_cycle(struct loader *ld, const struct node *services_map, size_t i, int *color,
    size_t *path, size_t depth)
{
	const struct config *c = ld->config;
	const struct config_service *s = &c->services[i];

	color[i] = 1;
	path[depth] = i;
	for (size_t a = 0; s->after[a] != NULL; a++) {
		size_t j;
		int r;

		for (j = 0; j < c->nservices; j++)
			if (strcmp(c->services[j].name, s->after[a]) == 0)
				break;
		if (color[j] == 1) {
			char chain[1024], ctx[128];
			size_t used = 0, start = 0;
			const struct node *after;

			while (path[start] != j)
				start++;
			chain[0] = '\0';
			for (size_t k = start; k <= depth && used < sizeof(chain); k++) {
				int w = snprintf(chain + used, sizeof(chain) - used, "%s -> ",
				    c->services[path[k]].name);
				if (w < 0)
					break;
				used += (size_t)w;
			}
			if (used < sizeof(chain))
				snprintf(chain + used, sizeof(chain) - used, "%s",
				    c->services[j].name);
			snprintf(ctx, sizeof(ctx), "services.%s", s->name);
			after = map_get(services_map->items[2 * i + 1], "after");
			return fail(ld, list_item(after, a), ctx, "after",
			    "restart order has a cycle: %s", chain);
		}
		if (color[j] == 0 &&
		    (r = find_cycle(ld, services_map, j, color, path, depth + 1)) != 0)
			return r;
	}
	color[i] = 2;
	return 0;
}

static int
parse_services(struct loader *ld, const struct node *root)
{
	struct config *c = ld->config;
	const struct node *map = map_get(root, "services");
	const char **names = NULL;
	int *color = NULL;
	size_t *path = NULL;
	int r;

	if (is_null(map))
		return 0;
	if ((r = expect_mapping(ld, map, NULL, "services")) != 0 ||
	    (r = check_keys(ld, map, "services", NULL)) != 0)
		return r;
	if (map->nitems / 2 > MAX_SERVICES)
		return fail(ld, map, NULL, "services", "more than %d services", MAX_SERVICES);
	c->services = xcalloc(map->nitems / 2 + 1, sizeof(*c->services));
	for (size_t i = 0; i + 1 < map->nitems; i += 2) {
		r = parse_service(ld, map->items[i], map->items[i + 1],
		    &c->services[c->nservices++]);
		if (r != 0)
			return r;
	}
	names = xcalloc(c->nservices + 1, sizeof(*names));
	for (size_t i = 0; i < c->nservices; i++)
		names[i] = c->services[i].name;
	for (size_t i = 0; i < c->nservices; i++) {
		const struct node *after = map_get(map->items[2 * i + 1], "after");

		for (size_t a = 0; c->services[i].after[a] != NULL; a++) {
			char ctx[128], h[128];

			if (config_service(c, c->services[i].after[a]) != NULL)
				continue;
			snprintf(ctx, sizeof(ctx), "services.%s", c->services[i].name);
			r = fail(ld, list_item(after, a), ctx, "after", "unknown service '%s'%s",
			    c->services[i].after[a], hint(h, sizeof(h), c->services[i].after[a],
			    names, c->nservices));
			goto out;
		}
	}
	color = xcalloc(c->nservices + 1, sizeof(*color));
	path = xcalloc(c->nservices + 1, sizeof(*path));
	for (size_t i = 0; i < c->nservices; i++)
		if (color[i] == 0 && (r = find_cycle(ld, map, i, color, path, 0)) != 0)
			goto out;
	r = 0;
 out:
	free(names);
	free(color);
	free(path);
	return r;
}

static int
parse_run_once(struct loader *ld, const struct node *root)
{
	struct config *c = ld->config;
	const struct node *list = map_get(root, "run_once");
	char buf[64];
	int r;

	if (is_null(list))
		return 0;
	if (list->type != NODE_SEQUENCE)
		return fail(ld, list, NULL, "run_once", "expected a list of {paths, command}, "
		    "got %s", describe(list, buf, sizeof(buf)));
	c->run_once = xcalloc(list->nitems + 1, sizeof(*c->run_once));
	for (size_t i = 0; i < list->nitems; i++) {
		const struct node *map = list->items[i];
		struct config_run_once *o = &c->run_once[c->nrun_once++];
		char ctx[64];

		snprintf(ctx, sizeof(ctx), "run_once[%zu]", i);
		o->line = map->line;
		config_fields_defaults(config_run_once_fields, o);
		if ((r = expect_mapping(ld, map, ctx, NULL)) != 0 ||
		    (r = read_section(ld, map, ctx, config_run_once_fields, o)) != 0)
			return r;
		if (o->paths == NULL || o->paths[0] == NULL)
			return fail(ld, map, ctx, "paths", "missing: expected the globs of the "
			    "files to run once");
		if (o->command == NULL)
			return fail(ld, map, ctx, "command", "missing: expected "
			    "[program, arg, ...]");
		if (o->service != NULL && !valid_name(o->service))
			return fail(ld, map_get(map, "service"), ctx, "service", "'%s' is not a "
			    "compose service name", o->service);
		/* A set of files has no one content to put on stdin. */
		if (o->each == CONFIG_EACH_SET && o->input == CONFIG_INPUT_STDIN)
			return fail(ld, map_get(map, "input"), ctx, "input", "'stdin' needs "
			    "'each: file' (one run per file); a set gets its files as "
			    "'input: argument'");
	}
	return 0;
}

static int
parse_groups(struct loader *ld, const struct node *root)
{
	const struct node *list = map_get(root, "groups");
	char buf[64];
	int r;

	if (list == NULL)
		return 0;
	if (list->type != NODE_SEQUENCE && !is_null(list))
		return fail(ld, list, NULL, "groups", "expected a list of group names, got %s",
		    describe(list, buf, sizeof(buf)));
	if ((r = get_strv(ld, root, NULL, "groups", CONFIG_FIELD_NAMES, &ld->config->groups)) != 0)
		return r;
	if (ld->config->groups == NULL)
		ld->config->groups = xcalloc(1, sizeof(char *));
	for (size_t i = 0; ld->config->groups[i] != NULL; i++) {
		if (strcmp(ld->config->groups[i], "all") == 0)
			return fail(ld, list->items[i], NULL, "groups",
			    "'all' is reserved (it means every host)");
		for (size_t j = 0; j < i; j++)
			if (strcmp(ld->config->groups[i], ld->config->groups[j]) == 0)
				return fail(ld, list->items[i], NULL, "groups",
				    "'%s' is listed twice", ld->config->groups[i]);
	}
	return 0;
}

static void
host_copy(struct config_host *dst, const struct config_host *src)
{
	*dst = *src;
	dst->name = src->name ? xstrdup(src->name) : NULL;
	config_fields_copy(config_host_fields, dst, src);
}

static void
host_release(struct config_host *h)
{
	free(h->name);
	config_fields_release(config_host_fields, h);
}

/*
 * Where a host's merged value of KEY was written: its own mapping HMAP (at
 * CTX), else defaults:. Both NULL for a value neither wrote.
 */
static struct origin
host_origin(const struct node *hmap, const struct node *defaults, const char *ctx,
    const char *key)
{
	struct origin o = { NULL, NULL };
	const struct node *v;

	if (!is_null(v = map_get(hmap, key))) {
		o.node = v;
		o.ctx = ctx;
	} else if (!is_null(v = map_get(defaults, key))) {
		o.node = v;
		o.ctx = "defaults";
	}
	return o;
}

/* The bwlimit: row of a host (config-fields.h), read after its address and user are checked. */
int
config_read_bwlimit(struct loader *ld, const struct node *map, const char *ctx,
    const struct config_field *field, void *obj)
{
	const struct node *v = map_get(map, field->name);
	const char *why = "expected a scalar";
	char buf[64];

	if (is_null(v))
		return 0;
	if (v->type != NODE_SCALAR ||
	    config_parse_bwlimit(v->value, CONFIG_FIELD_AT(obj, field, uint64_t), &why) != 0)
		return fail(ld, v, ctx, field->name, "%s, got %s (bytes/s, e.g. 250000, "
		    "256k, 2M, or bits/s: 256kbit)", why, describe(v, buf, sizeof(buf)));
	return 0;
}

static int
compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory on the target: absolute for a remote host, else resolved here. */
static int
target_path(struct loader *ld, const struct config_host *h, const struct origin *o,
    const char *key, char **value)
{
	if (*value == NULL)
		return 0;
	if (h->address != NULL) {
		char *clean;

		if ((*value)[0] != '/')
			return fail(ld, o->node, o->ctx, key, "'%s' must be absolute for a "
			    "host with an address (it names a directory there)", *value);
		clean = path_absolute(NULL, *value);
		free(*value);
		*value = clean;
		return 0;
	}
	resolve(ld->config->dir, value);
	return 0;
}

/*
 * Completes host H read from HMAP (at CTX) over defaults: (DEFAULTS):
 * target directories, the state default, local paths, groups.
 */
static int
finish_host(struct loader *ld, const struct node *key, const char *ctx, struct config_host *h,
    const struct node *hmap, const struct node *defaults)
{
	struct origin path = host_origin(hmap, defaults, ctx, "path");
	struct origin state = host_origin(hmap, defaults, ctx, "state");
	struct origin groups;
	size_t plen;
	int r;

	if (h->path == NULL)
		return fail(ld, key, ctx, "path", "missing: expected the target directory");
	for (const struct config_field *f = config_host_fields; f->name != NULL; f++) {
		struct origin o;

		if ((f->flags & CONFIG_FIELD_TARGET_PATH) == 0)
			continue;
		o = host_origin(hmap, defaults, ctx, f->name);
		if ((r = target_path(ld, h, &o, f->name, CONFIG_FIELD_AT(h, f, char *))) != 0)
			return r;
	}
	if (strcmp(h->path, "/") == 0)
		return fail(ld, path.node, path.ctx, "path",
		    "refusing the filesystem root as a target");
	if (h->state == NULL) {
		char *dir = path_dirname(h->path), *base = path_basename(h->path);

		h->state = xasprintf("%s%s.%s.distsync", dir, strcmp(dir, "/") ? "/" : "",
		    base);
		free(dir);
		free(base);
	}
	plen = strlen(h->path);
	if (strcmp(h->state, h->path) == 0 ||
	    (strncmp(h->state, h->path, plen) == 0 && h->state[plen] == '/'))
		return fail(ld, state.node, state.ctx, "state",
		    "the state directory cannot be inside the target '%s'", h->path);
	plen = strlen(h->state);
	if (strncmp(h->path, h->state, plen) == 0 && h->path[plen] == '/')
		return fail(ld, path.node, path.ctx, "path",
		    "the target cannot be inside the state directory '%s'", h->state);
	/* No known_hosts: the files ssh itself would read (xport-ssh.c decides). */
	resolve_fields(ld->config->dir, config_host_fields, h);
	if (ld->config->groups != NULL) {
		const char *const *known = (const char *const *)ld->config->groups;

		groups = host_origin(hmap, defaults, ctx, "groups");
		for (size_t i = 0; h->groups[i] != NULL; i++) {
			char hbuf[128];
			int declared = 0;

			for (size_t g = 0; known[g] != NULL; g++)
				if (strcmp(known[g], h->groups[i]) == 0)
					declared = 1;
			if (declared)
				continue;
			return fail(ld, list_item(groups.node, i), groups.ctx, "groups",
			    "group '%s' is not in the top-level groups list%s", h->groups[i],
			    hint(hbuf, sizeof(hbuf), h->groups[i], known, count_strings(known)));
		}
	}
	return 0;
}

/* defaults: parallel and every host key, into the template every host starts from. */
static int
parse_defaults(struct loader *ld, const struct node *defaults, struct config_host *template)
{
	const struct config_field *fields = config_defaults_fields;
	int r;

	if (is_null(defaults))
		return 0;
	if ((r = expect_mapping(ld, defaults, NULL, "defaults")) != 0 ||
	    (r = check_fields(ld, defaults, "defaults", config_host_fields, fields)) != 0 ||
	    (r = read_fields(ld, defaults, "defaults", fields, ld->config)) != 0 ||
	    (r = read_hooks(ld, defaults, "defaults", fields, ld->config)) != 0 ||
	    (r = read_fields(ld, defaults, "defaults", config_host_fields, template)) != 0 ||
	    (r = read_hooks(ld, defaults, "defaults", config_host_fields, template)) != 0)
		return r;
	return 0;
}

/* A name on the command line must mean one thing: a host or a group. */
static int
check_group_names(struct loader *ld, const struct node *root, const struct node *map,
    const struct node *defaults)
{
	struct config *c = ld->config;
	char **names;
	int r = 0;

	names = xcalloc(c->nhosts + 1, sizeof(*names));
	for (size_t i = 0; i < c->nhosts; i++)
		names[i] = c->hosts[i].name;
	qsort(names, c->nhosts, sizeof(*names), compare_names);
	for (size_t i = 0; i < c->nhosts; i++) {
		for (size_t g = 0; c->hosts[i].groups[g] != NULL; g++) {
			struct origin o;
			char ctx[128];

			if (bsearch(&c->hosts[i].groups[g], names, c->nhosts, sizeof(*names),
			    compare_names) == NULL)
				continue;
			snprintf(ctx, sizeof(ctx), "hosts.%s", c->hosts[i].name);
			o = host_origin(map->items[2 * i + 1], defaults, ctx, "groups");
			r = fail(ld, list_item(o.node, g), o.ctx, "groups",
			    "'%s' is a host name; a group cannot share a name with a host",
			    c->hosts[i].groups[g]);
			goto out;
		}
	}
	if (c->groups != NULL) {
		const struct node *list = map_get(root, "groups");

		for (size_t g = 0; c->groups[g] != NULL; g++)
			if (bsearch(&c->groups[g], names, c->nhosts, sizeof(*names),
			    compare_names) != NULL) {
				r = fail(ld, list_item(list, g), NULL, "groups", "'%s' is a host "
				    "name; a group cannot share a name with a host", c->groups[g]);
				goto out;
			}
	}
 out:
	free(names);
	return r;
}

static int
parse_hosts(struct loader *ld, const struct node *root)
{
	struct config *c = ld->config;
	const struct node *defaults = map_get(root, "defaults");
	const struct node *map = map_get(root, "hosts");
	struct config_host template;
	int r;

	memset(&template, 0, sizeof(template));
	config_fields_defaults(config_host_fields, &template);
	if ((r = parse_defaults(ld, defaults, &template)) != 0)
		goto out;
	if (is_null(map)) {
		r = 0;
		goto out;
	}
	if ((r = expect_mapping(ld, map, NULL, "hosts")) != 0 ||
	    (r = check_keys(ld, map, "hosts", NULL)) != 0)
		goto out;
	if (map->nitems / 2 > MAX_HOSTS) {
		r = fail(ld, map, NULL, "hosts", "more than %d hosts", MAX_HOSTS);
		goto out;
	}
	c->hosts = xcalloc(map->nitems / 2 + 1, sizeof(*c->hosts));
	for (size_t i = 0; i + 1 < map->nitems; i += 2) {
		const struct node *key = map->items[i], *hmap = map->items[i + 1];
		struct config_host *h = &c->hosts[c->nhosts];
		char ctx[128];

		if ((r = check_name(ld, key, "hosts", "host")) != 0)
			goto out;
		host_copy(h, &template);
		c->nhosts++;
		free(h->name);
		h->name = xstrdup(key->value);
		h->line = key->line;
		snprintf(ctx, sizeof(ctx), "hosts.%s", key->value);
		if (!is_null(hmap) && ((r = expect_mapping(ld, hmap, "hosts", key->value)) != 0 ||
		    (r = read_section(ld, hmap, ctx, config_host_fields, h)) != 0))
			goto out;
		if ((r = finish_host(ld, key, ctx, h, hmap, defaults)) != 0)
			goto out;
	}
	r = check_group_names(ld, root, map, defaults);
 out:
	host_release(&template);
	return r;
}

/* "site:" (pull): upstream names a host with an address; host is a name. */
static int
parse_site(struct loader *ld, const struct node *root)
{
	const struct node *map = map_get(root, "site");
	struct config_site *s = &ld->config->site;
	const struct config_host *h;
	int r;

	if (map == NULL)
		return 0;
	config_fields_defaults(config_site_fields, s);
	if ((r = expect_mapping(ld, map, NULL, "site")) != 0 ||
	    (r = read_section(ld, map, "site", config_site_fields, s)) != 0)
		return r;
	if (s->upstream == NULL)
		return fail(ld, map, "site", "upstream", "missing: expected the hosts: entry "
		    "of the central repository to pull from");
	if (s->host == NULL)
		return fail(ld, map, "site", "host", "missing: expected this site's name in "
		    "the repository's hosts:");
	if (!valid_name(s->host))
		return fail(ld, map_get(map, "host"), "site", "host", "'%s' is not a host name",
		    s->host);
	if ((h = config_host(ld->config, s->upstream)) == NULL)
		return fail(ld, map_get(map, "upstream"), "site", "upstream",
		    "no host '%s' in hosts:", s->upstream);
	if (h->address == NULL && (h->mirrors == NULL || h->mirrors[0] == NULL))
		return fail(ld, map_get(map, "upstream"), "site", "upstream",
		    "host '%s' has neither an address nor mirrors: pull needs an SSH upstream "
		    "or HTTP mirrors", s->upstream);
	if (h->mirrors != NULL && h->mirrors[0] != NULL &&
	    (h->trust_root == NULL || h->trust_root[0] == NULL))
		return fail(ld, map_get(map, "upstream"), "site", "upstream",
		    "host '%s' pulls from mirrors, so it must pin the repository's root "
		    "(trust_root: the key id 'distsync keys' prints): a mirror is trusted "
		    "for nothing", s->upstream);
	if (s->repository != NULL && s->repository[0] != '/')
		return fail(ld, map_get(map, "repository"), "site", "repository",
		    "'%s' must be absolute (it names a file on the upstream)", s->repository);
	return 0;
}

static int
parse_root(struct loader *ld)
{
	static const char *const keys[] = { "distribution", "services", "run_once",
	    "defaults", "hosts", "groups", "site", NULL };
	const struct node *root = ld->root;
	char buf[64];
	int r;

	if (is_null(root))
		return fail(ld, NULL, NULL, NULL, "the configuration is empty: expected a "
		    "mapping with 'distribution', 'services' and 'hosts'");
	if (root->type != NODE_MAPPING)
		return fail(ld, root, NULL, NULL, "expected a mapping at the top level "
		    "(distribution, services, hosts, ...), got %s", describe(root, buf, sizeof(buf)));
	config_fields_defaults(config_defaults_fields, ld->config);
	config_fields_defaults(config_distribution_fields, &ld->config->distribution);
	if ((r = check_keys(ld, root, NULL, keys)) != 0 ||
	    (r = parse_distribution(ld, root)) != 0 ||
	    (r = parse_groups(ld, root)) != 0 ||
	    (r = parse_services(ld, root)) != 0 ||
	    (r = parse_run_once(ld, root)) != 0 ||
	    (r = parse_hosts(ld, root)) != 0 ||
	    (r = parse_site(ld, root)) != 0)
		return r;
	if (ld->config->services == NULL)
		ld->config->services = xcalloc(1, sizeof(*ld->config->services));
	if (ld->config->run_once == NULL)
		ld->config->run_once = xcalloc(1, sizeof(*ld->config->run_once));
	if (ld->config->hosts == NULL)
		ld->config->hosts = xcalloc(1, sizeof(*ld->config->hosts));
	return 0;
}

int
config_load_mem(const char *data, size_t len, const char *name, struct config **out)
{
	struct loader ld;
	const char *nul;
	char *dir;
	int r;

	*out = NULL;
	memset(&ld, 0, sizeof(ld));
	ld.file = name;
	if (len > CONFIG_MAX_SIZE) {
		log_error("%s: %zu bytes is more than a configuration may have (%d bytes, "
		    "1 MiB); refusing to parse it", name, len, CONFIG_MAX_SIZE);
		return DS_ERR_CONFIG;
	}
	if ((nul = memchr(data, '\0', len)) != NULL) {
		struct node where;
		const char *line = data;

		where.line = 1;
		for (const char *p = data; p < nul; p++)
			if (*p == '\n') {
				where.line++;
				line = p + 1;
			}
		where.column = (unsigned)(nul - line) + 1;
		return fail(&ld, &where, NULL, NULL, "a NUL byte: this is binary data, "
		    "expected UTF-8 YAML text");
	}
	ld.config = xcalloc(1, sizeof(*ld.config));
	ld.config->file = xstrdup(name);
	dir = path_dirname(name);
	ld.config->dir = path_absolute(NULL, dir);
	free(dir);
	if ((r = build_tree(&ld, data, len)) != 0 || (r = parse_root(&ld)) != 0)
		goto out;
	*out = ld.config;
	ld.config = NULL;
	r = 0;
 out:
	node_free(ld.root);
	config_free(ld.config);
	return r;
}

int
config_load(const char *file, struct config **out)
{
	struct stat st;
	char *data = NULL;
	size_t len = 0;
	int fd, r = DS_ERR_CONFIG;

	*out = NULL;
	/* O_NONBLOCK: a FIFO given by mistake must not hang the open. */
	if ((fd = open(file, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			log_error("%s: no such configuration file (run distsync where it is, or "
			    "give -c FILE)", file);
		else
			log_errno("%s: cannot open the configuration", file);
		return DS_ERR_CONFIG;
	}
	if (fstat(fd, &st) == -1) {
		log_errno("%s: cannot stat the configuration", file);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		log_error("%s: not a regular file", file);
		goto out;
	}
	if (st.st_size > CONFIG_MAX_SIZE) {
		log_error("%s: %lld bytes is more than a configuration may have (%d bytes, "
		    "1 MiB); refusing to parse it", file, (long long)st.st_size, CONFIG_MAX_SIZE);
		goto out;
	}
	if (fileio_read_fd(fd, CONFIG_MAX_SIZE, &data, &len) == -1) {
		/* The file grew after fstat: the reader stopped one byte past the limit. */
		if (errno == EFBIG)
			log_error("%s: %zu bytes is more than a configuration may have (%d bytes, "
			    "1 MiB); refusing to parse it", file, (size_t)CONFIG_MAX_SIZE + 1,
			    CONFIG_MAX_SIZE);
		else
			log_errno("%s: cannot read the configuration", file);
		goto out;
	}
	r = config_load_mem(data, len, file, out);
 out:
	free(data);
	close(fd);
	return r;
}

void
config_free(struct config *config)
{
	if (config == NULL)
		return;
	free(config->file);
	free(config->dir);
	config_fields_release(config_distribution_fields, &config->distribution);
	for (size_t i = 0; i < config->nservices; i++) {
		free(config->services[i].name);
		config_fields_release(config_service_fields, &config->services[i]);
	}
	free(config->services);
	for (size_t i = 0; i < config->nrun_once; i++)
		config_fields_release(config_run_once_fields, &config->run_once[i]);
	free(config->run_once);
	for (size_t i = 0; i < config->nhosts; i++)
		host_release(&config->hosts[i]);
	free(config->hosts);
	xfree_strv(config->groups);
	config_fields_release(config_site_fields, &config->site);
	config_fields_release(config_defaults_fields, config);
	free(config);
}

int
config_parse_bwlimit(const char *text, uint64_t *out, const char **why)
{
	uint64_t v = 0, mul = 1;
	const char *p = text;
	int bits = 0;

	if (*p < '0' || *p > '9') {
		if (why != NULL)
			*why = "expected a number";
		return DS_ERR_INVALID;
	}
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			goto bad;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (*p != '\0') {
		switch (*p++) {
		case 'k': case 'K':
			mul = 1024;
			break;
		case 'm': case 'M':
			mul = 1024 * 1024;
			break;
		case 'g': case 'G':
			mul = 1024 * 1024 * 1024;
			break;
		default:
			goto bad;
		}
		if (strcasecmp(p, "bit") == 0) {
			bits = 1;
			mul = mul == 1024 ? 1000 : mul == 1024 * 1024 ? 1000000 : 1000000000;
		} else if (*p != '\0')
			goto bad;
	}
	if (v > UINT64_MAX / mul)
		goto bad;
	v *= mul;
	if (bits)
		v = v / 8 + (v > 0 && v < 8);
	*out = v;
	return 0;
 bad:
	if (why != NULL)
		*why = "expected a number with an optional k, M, G or kbit, Mbit, Gbit suffix";
	return DS_ERR_INVALID;
}

const struct config_host *
config_host(const struct config *config, const char *name)
{
	for (size_t i = 0; i < config->nhosts; i++)
		if (strcmp(config->hosts[i].name, name) == 0)
			return &config->hosts[i];
	return NULL;
}

const struct config_service *
config_service(const struct config *config, const char *name)
{
	for (size_t i = 0; i < config->nservices; i++)
		if (strcmp(config->services[i].name, name) == 0)
			return &config->services[i];
	return NULL;
}

static int
host_in_group(const struct config_host *h, const char *group)
{
	for (size_t g = 0; h->groups[g] != NULL; g++)
		if (strcmp(h->groups[g], group) == 0)
			return 1;
	return 0;
}

int
config_resolve_hosts(const struct config *config, char *const *names, size_t nnames,
    const struct config_host ***out, size_t *count)
{
	const struct config_host **list;
	char *chosen;
	size_t n = 0;

	*out = NULL;
	*count = 0;
	chosen = xcalloc(config->nhosts + 1, 1);
	for (size_t i = 0; i < nnames; i++) {
		int known = 0;

		if (strcmp(names[i], "all") == 0) {
			memset(chosen, 1, config->nhosts);
			continue;
		}
		for (size_t h = 0; h < config->nhosts; h++)
			if (strcmp(config->hosts[h].name, names[i]) == 0 ||
			    host_in_group(&config->hosts[h], names[i])) {
				chosen[h] = 1;
				known = 1;
			}
		for (size_t g = 0; !known && config->groups && config->groups[g] != NULL; g++)
			if (strcmp(config->groups[g], names[i]) == 0)
				known = 1;	/* a declared group without hosts */
		if (!known) {
			const char **candidates;
			char h[128];
			size_t nc = 0;

			candidates = xcalloc(config->nhosts * 2 + 2, sizeof(*candidates));
			for (size_t k = 0; k < config->nhosts; k++) {
				candidates[nc++] = config->hosts[k].name;
				for (size_t g = 0; config->hosts[k].groups[g] != NULL; g++)
					if (nc < config->nhosts * 2 + 1)
						candidates[nc++] = config->hosts[k].groups[g];
			}
			log_error("%s: '%s' is neither a host nor a group%s", config->file,
			    names[i], hint(h, sizeof(h), names[i], candidates, nc));
			free(candidates);
			free(chosen);
			return DS_ERR_NOTFOUND;
		}
	}
	list = xcalloc(config->nhosts + 1, sizeof(*list));
	for (size_t h = 0; h < config->nhosts; h++)
		if (chosen[h])
			list[n++] = &config->hosts[h];
	free(chosen);
	*out = list;
	*count = n;
	return 0;
}
