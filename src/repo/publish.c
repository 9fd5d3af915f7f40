/* The layout and indexes of a published tree (publish.h). */
#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "codec/delta.h"
#include "repo/publish.h"

#define INDEX_HEADER	"distsync-index 1"

static void
hex(const uint8_t h[HASH_LEN], char out[HASH_HEX_LEN + 1])
{
	hash_to_hex(h, out);
}

char *
publish_path_keys(uint64_t version)
{
	return xasprintf("keys/%" PRIu64 ".keys", version);
}

char *
publish_path_release(const uint8_t digest[HASH_LEN])
{
	char h[HASH_HEX_LEN + 1];

	hex(digest, h);
	return xasprintf("releases/%s.release", h);
}

char *
publish_path_manifest(const uint8_t digest[HASH_LEN])
{
	char h[HASH_HEX_LEN + 1];

	hex(digest, h);
	return xasprintf("manifests/%s.manifest", h);
}

char *
publish_path_object(const uint8_t hash[HASH_LEN])
{
	char h[HASH_HEX_LEN + 1];

	hex(hash, h);
	return xasprintf("objects/%.2s/%s.zst", h, h);
}

char *
publish_path_entry(const struct publish_entry *e)
{
	char b[HASH_HEX_LEN + 1], t[HASH_HEX_LEN + 1];

	if (!e->has_basis)
		return publish_path_object(e->hash);
	hex(e->basis, b);
	hex(e->hash, t);
	return xasprintf("deltas/%s-%s.%s", b, t, delta_encoding_name(e->encoding));
}

char *
publish_path_index(const uint8_t *from, const uint8_t to[HASH_LEN])
{
	char f[HASH_HEX_LEN + 1], t[HASH_HEX_LEN + 1];

	hex(to, t);
	if (from == NULL)
		return xasprintf("indexes/%s.index", t);
	hex(from, f);
	return xasprintf("indexes/%s-%s.index", f, t);
}

char *
publish_path_pointer(const char *channel)
{
	return xasprintf("channels/%s.pointer", channel);
}

uint64_t
publish_fetch_max(const struct publish_entry *e)
{
	uint64_t bound = e->size + e->size / 128 + (64u << 10);

	if (e->size < ((uint64_t)1 << 40))
		bound = (uint64_t)ZSTD_compressBound((size_t)e->size) + 1024;
	return e->bytes < bound ? e->bytes : bound;
}

void
publish_index_release(struct publish_index *ix)
{
	free(ix->entries);
	memset(ix, 0, sizeof(*ix));
}

const struct publish_entry *
publish_index_find(const struct publish_index *ix, const uint8_t hash[HASH_LEN])
{
	size_t lo = 0, hi = ix->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(ix->entries[mid].hash, hash, HASH_LEN);

		if (c == 0)
			return &ix->entries[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* The one text of entry E's line. */
static char *
entry_line(const struct publish_entry *e)
{
	char h[HASH_HEX_LEN + 1], b[HASH_HEX_LEN + 1] = "-";

	hex(e->hash, h);
	if (e->has_basis)
		hex(e->basis, b);
	return xasprintf("object %s %" PRIu64 " %s %s %" PRIu64 "\n", h, e->size,
	    delta_encoding_name(e->encoding), b, e->bytes);
}

void
publish_index_encode(const struct publish_index *ix, char **out, size_t *outlen)
{
	char f[HASH_HEX_LEN + 1] = "-", t[HASH_HEX_LEN + 1], *head, *b;
	size_t len, alloc;

	if (ix->has_from)
		hex(ix->from, f);
	hex(ix->to, t);
	head = xasprintf(INDEX_HEADER "\nfrom %s\nto %s\n", f, t);
	len = strlen(head);
	alloc = len + 1;
	b = head;
	for (size_t i = 0; i < ix->count; i++) {
		char *line = entry_line(&ix->entries[i]);
		size_t l = strlen(line);

		b = xgrow(b, &alloc, len + l + 1, 1);
		memcpy(b + len, line, l + 1);
		len += l;
		free(line);
	}
	*out = b;
	*outlen = len;
}

static int
parse_hash(const char *s, uint8_t out[HASH_LEN])
{
	char again[HASH_HEX_LEN + 1];

	if (hash_from_hex(s, strlen(s), out) != 0)
		return DS_ERR_INVALID;
	hex(out, again);
	return strcmp(again, s) == 0 ? 0 : DS_ERR_INVALID;
}

static int
parse_entry(char *line, struct publish_entry *e)
{
	char *w[7];
	int n = 0;

	memset(e, 0, sizeof(*e));
	for (char *p = line; n < 7;) {
		char *sp = strchr(p, ' ');

		w[n++] = p;
		if (sp == NULL)
			break;
		*sp = '\0';
		p = sp + 1;
	}
	if (n != 6 || strcmp(w[0], "object") != 0 || parse_hash(w[1], e->hash) != 0 ||
	    util_parse_canonical_u64(w[2], &e->size) != 0 || util_parse_canonical_u64(w[5], &e->bytes) != 0)
		return DS_ERR_INVALID;
	if (strcmp(w[3], delta_encoding_name(DELTA_ZSTD)) == 0)
		e->encoding = DELTA_ZSTD;
	else if (strcmp(w[3], delta_encoding_name(DELTA_ZSTD_PATCH)) == 0)
		e->encoding = DELTA_ZSTD_PATCH;
	else if (strcmp(w[3], delta_encoding_name(DELTA_ZIP_PATCH)) == 0)
		e->encoding = DELTA_ZIP_PATCH;
	else
		return DS_ERR_INVALID;
	if (strcmp(w[4], "-") == 0) {
		if (e->encoding != DELTA_ZSTD)
			return DS_ERR_INVALID;
	} else {
		if (e->encoding == DELTA_ZSTD || parse_hash(w[4], e->basis) != 0)
			return DS_ERR_INVALID;
		e->has_basis = 1;
	}
	return 0;
}

int
publish_index_decode(const void *data, size_t len, const char *name, struct publish_index *out)
{
	const char *p = data, *end = p + len;
	size_t alloc = 0;
	unsigned line = 0;
	char *copy = NULL, *again = NULL;
	size_t again_len;
	int r = DS_ERR_INVALID;

	memset(out, 0, sizeof(*out));
	if (len > PUBLISH_INDEX_MAX) {
		log_error("%s: %zu bytes is more than an index may have", name, len);
		return DS_ERR_INVALID;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		line++;
		if (nl == NULL || nl == p)
			goto bad;
		free(copy);
		copy = xstrndup(p, (size_t)(nl - p));
		if (strlen(copy) != (size_t)(nl - p))
			goto bad;	/* a NUL inside */
		p = nl + 1;
		if (line == 1) {
			if (strcmp(copy, INDEX_HEADER) != 0)
				goto bad;
		} else if (line == 2) {
			if (strncmp(copy, "from ", 5) != 0)
				goto bad;
			if (strcmp(copy + 5, "-") != 0) {
				if (parse_hash(copy + 5, out->from) != 0)
					goto bad;
				out->has_from = 1;
			}
		} else if (line == 3) {
			if (strncmp(copy, "to ", 3) != 0 || parse_hash(copy + 3, out->to) != 0)
				goto bad;
		} else {
			struct publish_entry e;

			if (parse_entry(copy, &e) != 0 ||
			    (out->count > 0 && memcmp(out->entries[out->count - 1].hash, e.hash,
			    HASH_LEN) >= 0))
				goto bad;
			out->entries = xgrow(out->entries, &alloc, out->count + 1,
			    sizeof(*out->entries));
			out->entries[out->count++] = e;
		}
	}
	if (line < 3) {
		log_error("%s: not an index (cut short)", name);
		goto out;
	}
	/* The one encoding: what we would write is what we read. */
	publish_index_encode(out, &again, &again_len);
	if (again_len != len || memcmp(again, data, len) != 0) {
		log_error("%s: not in the canonical form of an index", name);
		goto out;
	}
	r = 0;
	goto out;
bad:
	log_error("%s: line %u: not a line of a distsync index", name, line);
out:
	if (r != 0)
		publish_index_release(out);
	free(copy);
	free(again);
	return r;
}
