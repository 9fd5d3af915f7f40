/*
 * config_print and config_print_host: a loaded configuration as YAML,
 * through libyaml's emitter so quoting is always right. Which keys are
 * written, in which order and how, comes from the field tables
 * (config-fields.h); config_load_mem() reads the output back.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "base/log.h"
#include "config/config.h"
#include "config/config-fields.h"

struct emitter {
	yaml_emitter_t	e;
	int		failed;
};

static void
emit(struct emitter *em, yaml_event_t *event, int ok)
{
	if (em->failed)
		return;
	if (!ok || !yaml_emitter_emit(&em->e, event))
		em->failed = 1;
}

static void
emit_string(struct emitter *em, const char *s)
{
	yaml_event_t ev;
	size_t len = strlen(s);
	/* Quote what a reader would take for null; everything else may stay plain. */
	int quote = len == 0 || strcmp(s, "~") == 0 || strcasecmp(s, "null") == 0;

	if (em->failed)
		return;
	emit(em, &ev, yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s,
	    (int)len, 1, 1, quote ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE));
}

static void
emit_number(struct emitter *em, unsigned long long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu", v);
	emit_string(em, buf);
}

static void
emit_mapping(struct emitter *em, int start, int flow)
{
	yaml_event_t ev;

	if (em->failed)
		return;
	if (start)
		emit(em, &ev, yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
		    flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE));
	else
		emit(em, &ev, yaml_mapping_end_event_initialize(&ev));
}

static void
emit_key_string(struct emitter *em, const char *key, const char *value)
{
	if (value == NULL)
		return;
	emit_string(em, key);
	emit_string(em, value);
}

static void
emit_key_number(struct emitter *em, const char *key, unsigned long long value)
{
	emit_string(em, key);
	emit_number(em, value);
}

static void
emit_key_list(struct emitter *em, const char *key, char *const *list, int always)
{
	yaml_event_t ev;

	if (list == NULL || (list[0] == NULL && !always) || em->failed)
		return;
	emit_string(em, key);
	emit(em, &ev, yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
	    YAML_FLOW_SEQUENCE_STYLE));
	for (size_t i = 0; list[i] != NULL; i++)
		emit_string(em, list[i]);
	emit(em, &ev, yaml_sequence_end_event_initialize(&ev));
}

static int
emit_begin(struct emitter *em, FILE *fp)
{
	yaml_event_t ev;

	memset(em, 0, sizeof(*em));
	if (!yaml_emitter_initialize(&em->e)) {
		em->failed = 1;
		return -1;
	}
	yaml_emitter_set_output_file(&em->e, fp);
	yaml_emitter_set_unicode(&em->e, 1);
	yaml_emitter_set_width(&em->e, -1);
	yaml_emitter_set_indent(&em->e, 2);
	emit(em, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
	emit(em, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
	emit_mapping(em, 1, 0);
	return 0;
}

static void
emit_end(struct emitter *em, const char *what)
{
	yaml_event_t ev;

	emit_mapping(em, 0, 0);
	emit(em, &ev, yaml_document_end_event_initialize(&ev, 1));
	emit(em, &ev, yaml_stream_end_event_initialize(&ev));
	if (!em->failed && !yaml_emitter_flush(&em->e))
		em->failed = 1;
	if (em->failed)
		log_error("%s: cannot write the configuration: %s", what,
		    em->e.problem ? em->e.problem : "write error");
	yaml_emitter_delete(&em->e);
}


/*
 * Writes the fields of OBJ that are set, in table order; with ONLY, just the
 * rows carrying that flag; never the rows carrying a flag of SKIP. A nested
 * mapping is written whole, in flow style, and only when some field of it
 * differs from its default.
 */
static void
emit_fields(struct emitter *em, const struct config_field *fields, const void *obj,
    unsigned only, unsigned skip)
{
	for (const struct config_field *f = fields; f->name != NULL; f++) {
		unsigned u;

		if ((only != 0 && (f->flags & only) == 0) || (f->flags & skip) != 0)
			continue;
		switch (f->type) {
		case CONFIG_FIELD_STRING:
			emit_key_string(em, f->name, *CONFIG_FIELD_AT_CONST(obj, f, char *));
			break;
		case CONFIG_FIELD_UNSIGNED:
			u = *CONFIG_FIELD_AT_CONST(obj, f, unsigned);
			if (u != 0 || (f->flags & CONFIG_FIELD_ZERO_UNSET) == 0)
				emit_key_number(em, f->name, u);
			break;
		case CONFIG_FIELD_INT:
			emit_key_number(em, f->name,
			    (unsigned long long)*CONFIG_FIELD_AT_CONST(obj, f, int));
			break;
		case CONFIG_FIELD_UINT64:
			emit_key_number(em, f->name, *CONFIG_FIELD_AT_CONST(obj, f, uint64_t));
			break;
		case CONFIG_FIELD_BOOL:
			if (*CONFIG_FIELD_AT_CONST(obj, f, int))
				emit_key_string(em, f->name, "true");
			break;
		case CONFIG_FIELD_GLOBS:
		case CONFIG_FIELD_NAMES:
		case CONFIG_FIELD_ARGV:
		case CONFIG_FIELD_STRINGS:
			emit_key_list(em, f->name, *CONFIG_FIELD_AT_CONST(obj, f, char **), 0);
			break;
		case CONFIG_FIELD_ENUM:
			u = *CONFIG_FIELD_AT_CONST(obj, f, unsigned);
			for (unsigned i = 0; f->names[i] != NULL; i++)
				if (i == u)
					emit_key_string(em, f->name, f->names[i]);
			break;
		case CONFIG_FIELD_MAPPING:
			if (config_fields_all_default(f->sub, CONFIG_FIELD_AT_CONST(obj, f, char)))
				break;
			emit_string(em, f->name);
			emit_mapping(em, 1, 1);
			emit_fields(em, f->sub, CONFIG_FIELD_AT_CONST(obj, f, char), 0, skip);
			emit_mapping(em, 0, 1);
			break;
		}
	}
}

/* KEY: a block mapping of OBJ's fields (see emit_fields). */
static void
emit_section(struct emitter *em, const char *key, const struct config_field *fields,
    const void *obj, unsigned only, unsigned skip)
{
	emit_string(em, key);
	emit_mapping(em, 1, 0);
	emit_fields(em, fields, obj, only, skip);
	emit_mapping(em, 0, 0);
}

static void
emit_services_and_run_once(struct emitter *em, const struct config *c)
{
	yaml_event_t ev;

	if (c->nservices > 0) {
		emit_string(em, "services");
		emit_mapping(em, 1, 0);
		for (size_t i = 0; i < c->nservices; i++)
			emit_section(em, c->services[i].name, config_service_fields,
			    &c->services[i], 0, 0);
		emit_mapping(em, 0, 0);
	}
	if (c->nrun_once > 0 && !em->failed) {
		emit_string(em, "run_once");
		emit(em, &ev, yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
		    YAML_BLOCK_SEQUENCE_STYLE));
		for (size_t i = 0; i < c->nrun_once; i++) {
			emit_mapping(em, 1, 0);
			emit_fields(em, config_run_once_fields, &c->run_once[i], 0, 0);
			emit_mapping(em, 0, 0);
		}
		emit(em, &ev, yaml_sequence_end_event_initialize(&ev));
	}
}

void
config_print(const struct config *c, void *fp)
{
	/* A site's own config (site:) gets what a site uses: no repository keys. */
	int site = c->site.upstream != NULL;
	unsigned skip = site ? CONFIG_FIELD_REPO_ONLY : 0;
	struct emitter em;

	if (emit_begin(&em, fp) != 0) {
		log_error("%s: cannot initialise the YAML emitter", c->file);
		return;
	}
	emit_section(&em, "distribution", config_distribution_fields, &c->distribution, 0,
	    skip);
	if (c->groups != NULL && !site)
		emit_key_list(&em, "groups", c->groups, 1);
	emit_services_and_run_once(&em, c);
	if (!site)
		emit_section(&em, "defaults", config_defaults_fields, c, 0, 0);
	if (c->nhosts > 0) {
		emit_string(&em, "hosts");
		emit_mapping(&em, 1, 0);
		for (size_t i = 0; i < c->nhosts; i++)
			emit_section(&em, c->hosts[i].name, config_host_fields, &c->hosts[i], 0,
			    skip);
		emit_mapping(&em, 0, 0);
	}
	if (site)
		emit_section(&em, "site", config_site_fields, &c->site, 0, 0);
	emit_end(&em, c->file);
}

void
config_print_host(const struct config *c, const struct config_host *h, void *fp)
{
	struct emitter em;

	if (emit_begin(&em, fp) != 0) {
		log_error("%s: cannot initialise the YAML emitter", c->file);
		return;
	}
	emit_section(&em, "distribution", config_distribution_fields, &c->distribution,
	    CONFIG_FIELD_RECEIVER, 0);
	emit_services_and_run_once(&em, c);
	emit_string(&em, "hosts");
	emit_mapping(&em, 1, 0);
	emit_section(&em, h->name, config_host_fields, h, CONFIG_FIELD_RECEIVER, 0);
	emit_mapping(&em, 0, 0);
	emit_end(&em, c->file);
}
