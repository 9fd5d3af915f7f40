/* The journal's bytes (journal.h): an encoder and a strict decoder, no I/O. */
#include "autoconf.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/path.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "site/commit.h"
#include "site/journal.h"

struct journal_record *
journal_add(struct journal *j, char kind, const char *path)
{
	struct journal_record *rec;

	j->records = xgrow(j->records, &j->alloc, j->count + 1, sizeof(*j->records));
	rec = &j->records[j->count++];
	memset(rec, 0, sizeof(*rec));
	rec->kind = kind;
	rec->path = xstrdup(path);
	rec->uid = rec->gid = -1;
	return rec;
}

int
journal_kind_is_tree(char kind)
{
	return kind == JOURNAL_UNLINK || kind == JOURNAL_RMDIR || kind == JOURNAL_MKDIR ||
	    kind == JOURNAL_PLACE || kind == JOURNAL_MODE;
}

int
journal_kind_is_owed(char kind)
{
	return kind == JOURNAL_RUN_FILE || kind == JOURNAL_RUN_SET || kind == JOURNAL_RESTART;
}

void
journal_release(struct journal *j)
{
	for (size_t i = 0; i < j->count; i++)
		free(j->records[i].path);
	free(j->records);
	free(j->from);
	free(j->to);
	memset(j, 0, sizeof(*j));
}

/* ---- encoding ---- */

/* A journal bigger than this is not one an apply could make. */
#define JOURNAL_ENCODE_MAX	((size_t)1 << 40)

/* A failed append to a buffer this large is running out of memory: fatal, as xmalloc's. */
static void
must(int r)
{
	if (r != 0)
		abort();
}

/* Does put_escaped write byte C as %HH? */
static int
escaped_byte(unsigned char c)
{
	return c <= 0x20 || c == 0x7f || c == '%';
}

static void
put_escaped(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (escaped_byte(*p)) {
			char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
			must(buf_put(b, e, 3));
		} else
			must(buf_put(b, p, 1));
	}
}

char *
journal_encode(const struct journal *j, size_t *lenp)
{
	struct buf *b = buf_new(JOURNAL_ENCODE_MAX);
	char *out, line[256], hex[HASH_HEX_LEN + 1];
	int n;

	n = snprintf(line, sizeof(line), "%s\nfrom %s\nto %s\nkeep %u\n", JOURNAL_HEADER,
	    j->from != NULL ? j->from : "-", j->to, j->keep);
	must(buf_put(b, line, (size_t)n));
	for (size_t i = 0; i < j->count; i++) {
		const struct journal_record *rec = &j->records[i];

		switch (rec->kind) {
		case JOURNAL_BACKUP:
			hash_to_hex(rec->hash, hex);
			n = snprintf(line, sizeof(line), "B %s ", hex);
			break;
		case JOURNAL_UNLINK:
		case JOURNAL_RMDIR:
			n = snprintf(line, sizeof(line), "%c ", rec->kind);
			break;
		case JOURNAL_PLACE:
			n = snprintf(line, sizeof(line), "P %zu %04o %ld %ld ", rec->prep, rec->mode,
			    rec->uid, rec->gid);
			break;
		case JOURNAL_RUN_FILE:
		case JOURNAL_RUN_SET:
			hash_to_hex(rec->hash, hex);
			n = snprintf(line, sizeof(line), "%c %zu %s%s", rec->kind, rec->prep, hex,
			    rec->kind == JOURNAL_RUN_FILE ? " " : "");
			break;
		case JOURNAL_RESTART:
			n = snprintf(line, sizeof(line), "S ");
			break;
		case JOURNAL_LINEAGE:
			/* State ids need no escaping: no space, control byte or '%'. */
			n = snprintf(line, sizeof(line), "L%s", rec->path[0] != '\0' ? " " : "");
			break;
		default:
			n = snprintf(line, sizeof(line), "%c %04o %ld %ld ", rec->kind, rec->mode,
			    rec->uid, rec->gid);
			break;
		}
		must(buf_put(b, line, (size_t)n));
		if (rec->kind == JOURNAL_LINEAGE)
			must(buf_put(b, rec->path, strlen(rec->path)));
		else
			put_escaped(b, rec->path);
		must(buf_put(b, "\n", 1));
	}
	must(buf_put(b, "end\n", 4));
	out = buf_dup_cstring(b, lenp);
	buf_free(b);
	return out;
}

/* ---- decoding ---- */

/* A lower-case hex digit's value, or -1 (put_escaped writes lower case). */
static int
lower_hexval(char c)
{
	return c >= 'A' && c <= 'F' ? -1 : util_hexval(c);
}

/*
 * Decodes a %HH-escaped path written by put_escaped, and only its spelling
 * (a byte it escapes is escaped, no other is); NULL if malformed or not a
 * clean relative path.
 */
static char *
unescape_path(const char *s)
{
	size_t n = strlen(s), j = 0;
	char *out = xmalloc(n + 1);

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= n || (hi = lower_hexval(s[i + 1])) < 0 ||
			    (lo = lower_hexval(s[i + 2])) < 0)
				goto bad;
			c = (unsigned char)(hi << 4 | lo);
			if (c == 0 || !escaped_byte(c))
				goto bad;
			i += 2;
		} else if (escaped_byte(c))
			goto bad;
		out[j++] = (char)c;
	}
	out[j] = '\0';
	if (path_check(out, j, NULL) != 0)
		goto bad;
	return out;
bad:
	free(out);
	return NULL;
}

/* "ID ID ..." of an L record: each a state id, at most JOURNAL_LINEAGE_MAX; 0 or -1. */
static int
check_lineage(const char *ids)
{
	char *copy, *id, *next;
	size_t n = 0;
	int r = 0;

	if (ids[0] == '\0')
		return 0;
	copy = xstrdup(ids);
	for (id = copy; id != NULL && r == 0; id = next) {
		if ((next = strchr(id, ' ')) != NULL)
			*next++ = '\0';
		if (++n > JOURNAL_LINEAGE_MAX || commit_state_id_check(id) != 0)
			r = -1;
	}
	free(copy);
	return r;
}

/*
 * Strict field readers for a record line: each reads one field at *P that
 * ends in a space, moves *P past that space, and returns 0, or -1 for any
 * other spelling than the one journal_encode writes.
 */
static int
field(const char **p, char *out, size_t size)
{
	const char *end = strchr(*p, ' ');

	if (end == NULL || end == *p || (size_t)(end - *p) >= size)
		return -1;
	memcpy(out, *p, (size_t)(end - *p));
	out[end - *p] = '\0';
	*p = end + 1;
	return 0;
}

/* A count: decimal, no leading zero, at most MAX. */
static int
field_count(const char **p, uint64_t max, size_t *out)
{
	char f[24];
	uint64_t v;

	if (field(p, f, sizeof(f)) != 0 || util_parse_canonical_u64(f, &v) != 0 || v > max)
		return -1;
	*out = (size_t)v;
	return 0;
}

/* A mode: four octal digits (%04o of a mode <= 07777). */
static int
field_mode(const char **p, unsigned *out)
{
	char f[8];
	unsigned v = 0;

	if (field(p, f, sizeof(f)) != 0 || strlen(f) != 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		if (f[i] < '0' || f[i] > '7')
			return -1;
		v = v * 8 + (unsigned)(f[i] - '0');
	}
	*out = v;
	return 0;
}

/* An owner or group id: -1 (leave alone) or decimal, no leading zero. */
static int
field_id(const char **p, long *out)
{
	char f[24];
	uint64_t v;

	if (field(p, f, sizeof(f)) != 0)
		return -1;
	if (strcmp(f, "-1") == 0) {
		*out = -1;
		return 0;
	}
	if (util_parse_canonical_u64(f, &v) != 0 || v > (uint64_t)LONG_MAX)
		return -1;
	*out = (long)v;
	return 0;
}

/* 64 lower-case hex digits. */
static int
field_hex(const char **p, char hex[HASH_HEX_LEN + 1])
{
	if (field(p, hex, HASH_HEX_LEN + 1) != 0 || strlen(hex) != HASH_HEX_LEN)
		return -1;
	for (size_t i = 0; i < HASH_HEX_LEN; i++)
		if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
			return -1;
	return 0;
}

/*
 * "F N HEX" / "O N HEX" of a run record: N in decimal without leading zeros
 * (at most 100000), one space, 64 lower-case hex digits into hex. Returns
 * the offset after the hex digits, or -1.
 */
static int
decode_run(const char *line, size_t *index, char hex[HASH_HEX_LEN + 1])
{
	const char *p = line + 2;
	size_t n = 0, digits = 0;

	if (line[1] != ' ')
		return -1;
	while (p[digits] >= '0' && p[digits] <= '9' && digits < 7)
		n = n * 10 + (size_t)(p[digits++] - '0');
	if (digits == 0 || (digits > 1 && p[0] == '0') || n > 100000 || p[digits] != ' ')
		return -1;
	p += digits + 1;
	for (size_t i = 0; i < HASH_HEX_LEN; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return -1;
	memcpy(hex, p, HASH_HEX_LEN);
	hex[HASH_HEX_LEN] = '\0';
	*index = n;
	return (int)(p + HASH_HEX_LEN - line);
}

/* Does j already hold a record of KIND? */
static int
has_kind(const struct journal *j, char kind)
{
	for (size_t i = 0; i < j->count; i++)
		if (j->records[i].kind == kind)
			return 1;
	return 0;
}

/*
 * Decodes one record line (after the four header lines) into j; 0, or -1
 * when the line is not a record.
 */
static int
decode_record(const char *line, struct journal *j)
{
	char kind, hex[HASH_HEX_LEN + 1], *path;
	const char *q;
	unsigned mode = 0;
	long uid = -1, gid = -1;
	size_t prep = 0;
	int off = 0;
	struct journal_record *rec;

	if (strlen(line) > 3 * PATH_MAX_LEN + 1 + 100)
		return -1;
	kind = line[0];
	switch (kind) {
	case JOURNAL_BACKUP:
		if (line[1] != ' ' || (q = line + 2, field_hex(&q, hex)) != 0)
			return -1;
		off = (int)(q - line);
		break;
	case JOURNAL_UNLINK:
	case JOURNAL_RMDIR:
		if (line[1] != ' ')
			return -1;
		off = 2;
		break;
	case JOURNAL_PLACE:
		if (line[1] != ' ' || (q = line + 2, field_count(&q, SIZE_MAX, &prep)) != 0 ||
		    field_mode(&q, &mode) != 0 || field_id(&q, &uid) != 0 ||
		    field_id(&q, &gid) != 0)
			return -1;
		off = (int)(q - line);
		break;
	case JOURNAL_MKDIR:
	case JOURNAL_MODE:
		if (line[1] != ' ' || (q = line + 2, field_mode(&q, &mode)) != 0 ||
		    field_id(&q, &uid) != 0 || field_id(&q, &gid) != 0)
			return -1;
		off = (int)(q - line);
		break;
	case JOURNAL_RUN_FILE:
	case JOURNAL_RUN_SET:
		if ((off = decode_run(line, &prep, hex)) < 0)
			return -1;
		if (kind == JOURNAL_RUN_SET) {
			if (line[off] != '\0')
				return -1;
			rec = journal_add(j, kind, "");
			rec->prep = prep;
			return hash_from_hex(hex, HASH_HEX_LEN, rec->hash) == 0 ? 0 : -1;
		}
		if (line[off++] != ' ')
			return -1;
		break;
	case JOURNAL_RESTART:
		if (line[1] != ' ')
			return -1;
		off = 2;
		break;
	case JOURNAL_LINEAGE:
		if ((line[1] != '\0' && (line[1] != ' ' || line[2] == '\0')) ||
		    check_lineage(line + (line[1] != '\0' ? 2 : 1)) != 0 ||
		    has_kind(j, JOURNAL_LINEAGE))
			return -1;
		journal_add(j, kind, line + (line[1] != '\0' ? 2 : 1));
		return 0;
	default:
		return -1;
	}
	if (mode > 07777 || (path = unescape_path(line + off)) == NULL)
		return -1;
	if (kind == JOURNAL_RESTART && strchr(path, '/') != NULL) {
		free(path);
		return -1;
	}
	rec = journal_add(j, kind, path);
	free(path);
	rec->mode = mode;
	rec->uid = uid;
	rec->gid = gid;
	rec->prep = prep;
	if ((kind == JOURNAL_BACKUP || kind == JOURNAL_RUN_FILE) &&
	    hash_from_hex(hex, strlen(hex), rec->hash) != 0)
		return -1;
	return 0;
}

int
journal_decode(const char *bytes, size_t size, const char *name, struct journal *j)
{
	size_t n = strnlen(bytes, size);
	char *data = xmalloc(n + 1), *line, *next;
	unsigned lineno = 0;
	uint64_t keep;
	int ended = 0, r = DS_ERR_CORRUPT;

	memset(j, 0, sizeof(*j));
	memcpy(data, bytes, n);
	data[n] = '\0';
	for (line = data; line != NULL && *line != '\0'; line = next) {
		lineno++;
		if ((next = strchr(line, '\n')) == NULL)
			goto out;
		*next++ = '\0';
		if (ended)
			goto out;
		if (lineno == 1) {
			if (strcmp(line, JOURNAL_HEADER) != 0)
				goto out;
			continue;
		}
		if (lineno == 2 && strncmp(line, "from ", 5) == 0) {
			if (strcmp(line + 5, "-") == 0)
				continue;
			if (commit_state_id_check(line + 5) != 0)
				goto out;
			j->from = xstrdup(line + 5);
			continue;
		}
		if (lineno == 3 && strncmp(line, "to ", 3) == 0) {
			if (commit_state_id_check(line + 3) != 0)
				goto out;
			j->to = xstrdup(line + 3);
			continue;
		}
		if (lineno == 4 && strncmp(line, "keep ", 5) == 0 &&
		    util_parse_canonical_u64(line + 5, &keep) == 0 && keep <= UINT_MAX) {
			j->keep = (unsigned)keep;
			continue;
		}
		if (lineno <= 4)
			goto out;
		if (strcmp(line, "end") == 0) {
			ended = 1;
			continue;
		}
		if (decode_record(line, j) != 0)
			goto out;
	}
	if (!ended || j->to == NULL)
		goto out;
	r = 0;
out:
	if (r != 0) {
		log_error("%s:%u: damaged journal; the target needs manual repair (restore "
		    "the release from backup/ and remove the journal)", name, lineno);
		journal_release(j);
	}
	free(data);
	return r;
}
