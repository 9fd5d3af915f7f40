/* The wire protocol: framing and one encode/decode pair per message; see proto.h. */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"
#include "base/path.h"
#include "base/xmalloc.h"
#include "wire/proto.h"
#include "wire/xport.h"

static const char *const type_names[] = {
	[PROTO_HELLO] = "HELLO",
	[PROTO_ERROR] = "ERROR",
	[PROTO_OPEN] = "OPEN",
	[PROTO_STATE] = "STATE",
	[PROTO_MANIFEST_REQUEST] = "MANIFEST_REQUEST",
	[PROTO_MANIFEST] = "MANIFEST",
	[PROTO_OBJECT] = "OBJECT",
	[PROTO_DATA] = "DATA",
	[PROTO_OBJECT_END] = "OBJECT_END",
	[PROTO_COMMIT] = "COMMIT",
	[PROTO_RESULT] = "RESULT",
	[PROTO_SIGNATURE_REQUEST] = "SIGNATURE_REQUEST",
	[PROTO_SIGNATURE] = "SIGNATURE",
	[PROTO_SIGNATURE_END] = "SIGNATURE_END",
	[PROTO_RETRY] = "RETRY",
	[PROTO_PLAN] = "PLAN",
	[PROTO_FOUND] = "FOUND",
	[PROTO_RESTORE] = "RESTORE",
	[PROTO_RESTORED] = "RESTORED",
};

const char *
proto_type_name(uint8_t type)
{
	if (type < PROTO_TYPE_MIN || type > PROTO_TYPE_MAX)
		return "unknown";
	return type_names[type];
}

/* Logs one decoding failure naming the peer and the frame; returns DS_ERR_PROTO. */
static int
bad(const char *peer, uint8_t type, const char *what)
{
	log_error("%s%s%s frame: %s", peer ? peer : "", peer ? ": " : "",
	    proto_type_name(type), what);
	return DS_ERR_PROTO;
}

static int
put_hash(struct buf *b, const uint8_t h[HASH_LEN])
{
	return buf_put(b, h, HASH_LEN);
}

/* Puts a list of C strings: u32 count, then each. */
static int
put_strv(struct buf *b, char *const *v, size_t n)
{
	int r;

	if (n > PROTO_LIST_MAX)
		return DS_ERR_INVALID;
	if ((r = buf_put_u32(b, (uint32_t)n)) != 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if ((r = buf_put_cstring(b, v[i])) != 0)
			return r;
	return 0;
}

static void
free_strv_n(char **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/*
 * Gets a list of strings; each must pass path_check when paths is set.
 * The count is checked against what the payload could possibly hold.
 */
static int
get_strv(struct buf *b, int paths, size_t maxlen, char ***out, size_t *count, const char **why)
{
	char **v = NULL;
	uint32_t n;
	size_t i = 0;
	int r;

	*out = NULL;
	*count = 0;
	if (buf_get_u32(b, &n) != 0) {
		*why = "list count overruns the frame";
		return DS_ERR_PROTO;
	}
	if (n > PROTO_LIST_MAX || n > buf_len(b) / 4) {
		*why = "list count is larger than the frame";
		return DS_ERR_PROTO;
	}
	v = xcalloc(n + 1, sizeof(*v));
	for (i = 0; i < n; i++) {
		if (buf_get_cstring(b, &v[i], maxlen) != 0) {
			*why = "list string overruns the frame, is too long or holds NUL";
			r = DS_ERR_PROTO;
			goto out;
		}
		if (paths && path_check(v[i], strlen(v[i]), why) != 0) {
			r = DS_ERR_PROTO;
			goto out;
		}
	}
	*out = v;
	*count = n;
	v = NULL;
	r = 0;
out:
	if (v != NULL)
		free_strv_n(v, i + 1);
	return r;
}

/* A C string field: no NUL, at most maxlen bytes. */
static int
get_str(struct buf *b, char **s, size_t maxlen)
{
	return buf_get_cstring(b, s, maxlen);
}

/* HELLO: u32 magic, u32 version, u64 caps, u8 role, string software. */
int
proto_hello_encode(struct buf *b, const struct proto_hello *m)
{
	int r;

	if ((r = buf_put_u32(b, m->magic)) != 0 ||
	    (r = buf_put_u32(b, m->version)) != 0 ||
	    (r = buf_put_u64(b, m->caps)) != 0 ||
	    (r = buf_put_u8(b, m->role)) != 0 ||
	    (r = buf_put_cstring(b, m->software)) != 0)
		return r;
	return 0;
}

int
proto_hello_decode(struct buf *b, const char *peer, struct proto_hello *m)
{
	memset(m, 0, sizeof(*m));
	/* The magic alone first: a stranger speaking something else gets a clear word. */
	if (buf_get_u32(b, &m->magic) != 0)
		return bad(peer, PROTO_HELLO, "truncated");
	if (m->magic != PROTO_MAGIC)
		return bad(peer, PROTO_HELLO, "bad magic: the peer is not distsync");
	if (buf_get_u32(b, &m->version) != 0 || buf_get_u64(b, &m->caps) != 0 ||
	    buf_get_u8(b, &m->role) != 0)
		return bad(peer, PROTO_HELLO, "truncated");
	if (m->role != PROTO_ROLE_INITIATOR && m->role != PROTO_ROLE_RECEIVER)
		return bad(peer, PROTO_HELLO, "unknown role");
	if (get_str(b, &m->software, PROTO_STRING_MAX) != 0)
		return bad(peer, PROTO_HELLO, "bad software string");
	if (buf_len(b) != 0) {
		proto_hello_free(m);
		return bad(peer, PROTO_HELLO, "trailing bytes");
	}
	return 0;
}

void
proto_hello_free(struct proto_hello *m)
{
	free(m->software);
	memset(m, 0, sizeof(*m));
}

/* ERROR: u32 code (two's complement), string message. */
int
proto_error_encode(struct buf *b, const struct proto_error *m)
{
	const char *msg = m->message ? m->message : "";
	size_t len = strlen(msg);
	int r;

	if (len > PROTO_MESSAGE_MAX)
		len = PROTO_MESSAGE_MAX;
	if ((r = buf_put_u32(b, (uint32_t)m->code)) != 0 ||
	    (r = buf_put_string(b, msg, len)) != 0)
		return r;
	return 0;
}

int
proto_error_decode(struct buf *b, const char *peer, struct proto_error *m)
{
	uint32_t code;

	memset(m, 0, sizeof(*m));
	if (buf_get_u32(b, &code) != 0)
		return bad(peer, PROTO_ERROR, "truncated");
	m->code = (int32_t)code;
	if (m->code >= 0 || m->code < -1000)
		return bad(peer, PROTO_ERROR, "code is not an error code");
	if (get_str(b, &m->message, PROTO_MESSAGE_MAX) != 0)
		return bad(peer, PROTO_ERROR, "bad message string");
	if (buf_len(b) != 0) {
		proto_error_free(m);
		return bad(peer, PROTO_ERROR, "trailing bytes");
	}
	return 0;
}

void
proto_error_free(struct proto_error *m)
{
	free(m->message);
	memset(m, 0, sizeof(*m));
}

/* OPEN: u8 op, u32 flags, u32 lock_timeout, string host, string config[, string release]. */
int
proto_open_encode(struct buf *b, const struct proto_open *m)
{
	int r;

	if ((m->host != NULL && strlen(m->host) > PROTO_STRING_MAX) ||
	    (m->release != NULL && strlen(m->release) > PROTO_STRING_MAX))
		return DS_ERR_INVALID;
	if ((r = buf_put_u8(b, m->op)) != 0 ||
	    (r = buf_put_u32(b, m->flags)) != 0 ||
	    (r = buf_put_u32(b, m->lock_timeout)) != 0 ||
	    (r = buf_put_cstring(b, m->host)) != 0 ||
	    (r = buf_put_string(b, m->config, m->config_len)) != 0)
		return r;
	if (m->release != NULL && m->release[0] != '\0' &&
	    (r = buf_put_cstring(b, m->release)) != 0)
		return r;
	return 0;
}

int
proto_open_decode(struct buf *b, const char *peer, struct proto_open *m)
{
	const char *why = NULL;

	memset(m, 0, sizeof(*m));
	if (buf_get_u8(b, &m->op) != 0 || buf_get_u32(b, &m->flags) != 0 ||
	    buf_get_u32(b, &m->lock_timeout) != 0)
		why = "truncated";
	else if (m->op < PROTO_OP_PUSH || m->op > PROTO_OP_MAX)
		why = "unknown operation";
	else if ((m->flags & ~PROTO_FLAGS_ALL) != 0)
		why = "unknown flags";
	else if (get_str(b, &m->host, PROTO_STRING_MAX) != 0 || m->host[0] == '\0')
		why = "bad host name";
	else if (buf_get_string(b, &m->config, &m->config_len) != 0)
		why = "config overruns the frame";
	else if (buf_len(b) != 0 && (get_str(b, &m->release, PROTO_STRING_MAX) != 0 ||
	    m->release[0] == '\0'))
		why = "bad release";
	else if (buf_len(b) != 0)
		why = "trailing bytes";
	if (why != NULL) {
		proto_open_free(m);
		return bad(peer, PROTO_OPEN, why);
	}
	return 0;
}

void
proto_open_free(struct proto_open *m)
{
	free(m->host);
	free(m->config);
	free(m->release);
	memset(m, 0, sizeof(*m));
}

/*
 * STATE: string release, hash digest, u64 free_bytes,
 * u32 nstaged × (hash, u8 complete, u64 offset), u32 ndrift × path.
 */
int
proto_state_encode(struct buf *b, const struct proto_state *m)
{
	int r;

	if (m->nstaged > PROTO_LIST_MAX)
		return DS_ERR_INVALID;
	if ((r = buf_put_cstring(b, m->release)) != 0 ||
	    (r = put_hash(b, m->digest)) != 0 ||
	    (r = buf_put_u64(b, m->free_bytes)) != 0 ||
	    (r = buf_put_u32(b, (uint32_t)m->nstaged)) != 0)
		return r;
	for (size_t i = 0; i < m->nstaged; i++) {
		if ((r = put_hash(b, m->staged[i].hash)) != 0 ||
		    (r = buf_put_u8(b, m->staged[i].complete)) != 0 ||
		    (r = buf_put_u64(b, m->staged[i].offset)) != 0)
			return r;
	}
	return put_strv(b, m->drift, m->ndrift);
}

int
proto_state_decode(struct buf *b, const char *peer, struct proto_state *m)
{
	const char *why = NULL;
	uint32_t n;

	memset(m, 0, sizeof(*m));
	if (get_str(b, &m->release, PROTO_STRING_MAX) != 0) {
		why = "bad release id";
		goto out;
	}
	if (buf_get_fixed(b, m->digest, HASH_LEN) != 0 ||
	    buf_get_u64(b, &m->free_bytes) != 0 || buf_get_u32(b, &n) != 0) {
		why = "truncated";
		goto out;
	}
	if (n > PROTO_LIST_MAX || n > buf_len(b) / (HASH_LEN + 9)) {
		why = "staged count is larger than the frame";
		goto out;
	}
	m->staged = xcalloc(n == 0 ? 1 : n, sizeof(*m->staged));
	m->nstaged = n;
	for (size_t i = 0; i < n; i++) {
		if (buf_get_fixed(b, m->staged[i].hash, HASH_LEN) != 0 ||
		    buf_get_u8(b, &m->staged[i].complete) != 0 ||
		    buf_get_u64(b, &m->staged[i].offset) != 0) {
			why = "staged entry overruns the frame";
			goto out;
		}
		if (m->staged[i].complete > PROTO_STAGED_MAX ||
		    m->staged[i].complete == PROTO_STAGED_ENCODED(PROTO_ENC_RAW) ||
		    m->staged[i].complete == PROTO_STAGED_ENCODED(PROTO_ENC_ZSTD)) {
			why = "staged entry has a bad complete flag";
			goto out;
		}
	}
	if (get_strv(b, 1, PATH_MAX_LEN, &m->drift, &m->ndrift, &why) != 0) {
		why = why ? why : "bad drift list";
		goto out;
	}
	if (buf_len(b) != 0)
		why = "trailing bytes";
out:
	if (why != NULL) {
		proto_state_free(m);
		return bad(peer, PROTO_STATE, why);
	}
	return 0;
}

void
proto_state_free(struct proto_state *m)
{
	free(m->release);
	free(m->staged);
	free_strv_n(m->drift, m->ndrift);
	memset(m, 0, sizeof(*m));
}

/* MANIFEST: string canonical bytes (checked by manifest_decode, not here). */
int
proto_manifest_encode(struct buf *b, const struct proto_manifest *m)
{
	return buf_put_string(b, m->data, m->len);
}

int
proto_manifest_decode(struct buf *b, const char *peer, struct proto_manifest *m)
{
	memset(m, 0, sizeof(*m));
	if (buf_get_string(b, &m->data, &m->len) != 0)
		return bad(peer, PROTO_MANIFEST, "manifest overruns the frame");
	if (buf_len(b) != 0) {
		proto_manifest_free(m);
		return bad(peer, PROTO_MANIFEST, "trailing bytes");
	}
	return 0;
}

void
proto_manifest_free(struct proto_manifest *m)
{
	free(m->data);
	memset(m, 0, sizeof(*m));
}

/* OBJECT: hash, u8 encoding, u64 size, u64 offset, hash basis. */
int
proto_object_encode(struct buf *b, const struct proto_object *m)
{
	int r;

	if ((r = put_hash(b, m->hash)) != 0 ||
	    (r = buf_put_u8(b, m->encoding)) != 0 ||
	    (r = buf_put_u64(b, m->size)) != 0 ||
	    (r = buf_put_u64(b, m->offset)) != 0 ||
	    (r = put_hash(b, m->basis)) != 0)
		return r;
	return 0;
}

int
proto_object_decode(struct buf *b, const char *peer, struct proto_object *m)
{
	memset(m, 0, sizeof(*m));
	if (buf_get_fixed(b, m->hash, HASH_LEN) != 0 || buf_get_u8(b, &m->encoding) != 0 ||
	    buf_get_u64(b, &m->size) != 0 || buf_get_u64(b, &m->offset) != 0 ||
	    buf_get_fixed(b, m->basis, HASH_LEN) != 0)
		return bad(peer, PROTO_OBJECT, "truncated");
	if (m->encoding > PROTO_ENC_MAX)
		return bad(peer, PROTO_OBJECT, "unknown encoding");
	/* For delta encodings the offset counts bytes of the encoded stream. */
	if (m->offset > m->size && m->encoding <= PROTO_ENC_ZSTD)
		return bad(peer, PROTO_OBJECT, "offset past the object's size");
	if (buf_len(b) != 0)
		return bad(peer, PROTO_OBJECT, "trailing bytes");
	return 0;
}

/* COMMIT: string release, string manifest, string signature, u32 flags. */
int
proto_commit_encode(struct buf *b, const struct proto_commit *m)
{
	int r;

	if (m->release == NULL || strlen(m->release) > PROTO_STRING_MAX)
		return DS_ERR_INVALID;
	if ((r = buf_put_cstring(b, m->release)) != 0 ||
	    (r = buf_put_string(b, m->manifest, m->manifest_len)) != 0 ||
	    (r = buf_put_string(b, m->signature, m->signature_len)) != 0 ||
	    (r = buf_put_u32(b, m->flags)) != 0)
		return r;
	return 0;
}

int
proto_commit_decode(struct buf *b, const char *peer, struct proto_commit *m)
{
	const char *why = NULL;

	memset(m, 0, sizeof(*m));
	if (get_str(b, &m->release, PROTO_STRING_MAX) != 0 || m->release[0] == '\0')
		why = "bad release id";
	else if (buf_get_string(b, &m->manifest, &m->manifest_len) != 0)
		why = "manifest overruns the frame";
	else if (buf_get_string(b, &m->signature, &m->signature_len) != 0)
		why = "signature overruns the frame";
	else if (buf_get_u32(b, &m->flags) != 0)
		why = "truncated";
	else if ((m->flags & ~PROTO_FLAGS_ALL) != 0)
		why = "unknown flags";
	else if (buf_len(b) != 0)
		why = "trailing bytes";
	if (why != NULL) {
		proto_commit_free(m);
		return bad(peer, PROTO_COMMIT, why);
	}
	return 0;
}

void
proto_commit_free(struct proto_commit *m)
{
	free(m->release);
	free(m->manifest);
	free(m->signature);
	memset(m, 0, sizeof(*m));
}

/*
 * RESULT: u32 status, u32 flags, string from, string to, u64 × 6 counts,
 * strv services, string health, strv drift (paths), string message
 * [, string pending, strv kept, strv runs]: the site tail, all or none.
 */
/*
 * RESULT's site plan: u32 n × (string name, u8 kind, string why), then the
 * run_once runs owed as a list of strings.
 */
static int
put_siteplan(struct buf *b, const struct proto_result *m)
{
	int r;

	if (m->nrestarts > PROTO_LIST_MAX)
		return DS_ERR_INVALID;
	if ((r = buf_put_u32(b, (uint32_t)m->nrestarts)) != 0)
		return r;
	for (size_t i = 0; i < m->nrestarts; i++) {
		const struct proto_restart *it = &m->restarts[i];

		if (it->kind > PROTO_RESTART_MAX)
			return DS_ERR_INVALID;
		if ((r = buf_put_cstring(b, it->name)) != 0 ||
		    (r = buf_put_u8(b, it->kind)) != 0 ||
		    (r = buf_put_cstring(b, it->why)) != 0)
			return r;
	}
	return put_strv(b, m->would_run, m->nwould_run);
}

/* Decodes what put_siteplan wrote; *why says what was wrong. */
static int
get_siteplan(struct buf *b, struct proto_result *m, const char **why)
{
	uint32_t n;

	if (buf_get_u32(b, &n) != 0) {
		*why = "site plan count overruns the frame";
		return DS_ERR_PROTO;
	}
	/* Each entry takes at least its two string lengths and its kind. */
	if (n > PROTO_LIST_MAX || n > buf_len(b) / 9) {
		*why = "site plan count is larger than the frame";
		return DS_ERR_PROTO;
	}
	m->siteplan = 1;
	m->restarts = xcalloc(n + 1, sizeof(*m->restarts));
	for (; m->nrestarts < n; m->nrestarts++) {
		struct proto_restart *it = &m->restarts[m->nrestarts];

		if (get_str(b, &it->name, PROTO_STRING_MAX) != 0 || it->name[0] == '\0') {
			*why = "bad service name in the site plan";
			m->nrestarts++;
			return DS_ERR_PROTO;
		}
		if (buf_get_u8(b, &it->kind) != 0 || it->kind > PROTO_RESTART_MAX) {
			*why = "bad restart kind in the site plan";
			m->nrestarts++;
			return DS_ERR_PROTO;
		}
		if (get_str(b, &it->why, PATH_MAX_LEN) != 0 ||
		    path_check(it->why, strlen(it->why), why) != 0) {
			*why = *why != NULL ? *why : "bad changed path in the site plan";
			m->nrestarts++;
			return DS_ERR_PROTO;
		}
	}
	if (get_strv(b, 0, PROTO_STRING_MAX, &m->would_run, &m->nwould_run, why) != 0) {
		*why = *why != NULL ? *why : "bad run_once list in the site plan";
		return DS_ERR_PROTO;
	}
	return 0;
}

int
proto_result_encode(struct buf *b, const struct proto_result *m)
{
	const char *msg = m->message ? m->message : "";
	size_t len = strlen(msg);
	int r;

	if (len > PROTO_MESSAGE_MAX)
		len = PROTO_MESSAGE_MAX;
	if ((r = buf_put_u32(b, (uint32_t)m->status)) != 0 ||
	    (r = buf_put_u32(b, m->flags)) != 0 ||
	    (r = buf_put_cstring(b, m->from)) != 0 ||
	    (r = buf_put_cstring(b, m->to)) != 0 ||
	    (r = buf_put_u64(b, m->added)) != 0 ||
	    (r = buf_put_u64(b, m->updated)) != 0 ||
	    (r = buf_put_u64(b, m->deleted)) != 0 ||
	    (r = buf_put_u64(b, m->changed)) != 0 ||
	    (r = buf_put_u64(b, m->objects)) != 0 ||
	    (r = buf_put_u64(b, m->bytes)) != 0 ||
	    (r = put_strv(b, m->services, m->nservices)) != 0 ||
	    (r = buf_put_cstring(b, m->health)) != 0 ||
	    (r = put_strv(b, m->drift, m->ndrift)) != 0 ||
	    (r = buf_put_string(b, msg, len)) != 0)
		return r;
	if (!m->tail && !m->siteplan)
		return 0;
	if (m->pending != NULL && strlen(m->pending) > PROTO_MESSAGE_MAX)
		return DS_ERR_INVALID;
	if ((r = buf_put_cstring(b, m->pending != NULL ? m->pending : "")) != 0 ||
	    (r = put_strv(b, m->kept, m->nkept)) != 0 ||
	    (r = put_strv(b, m->runs, m->nruns)) != 0)
		return r;
	if (!m->siteplan)
		return 0;
	return put_siteplan(b, m);
}

int
proto_result_decode(struct buf *b, const char *peer, struct proto_result *m)
{
	const char *why = NULL;
	uint32_t status;

	memset(m, 0, sizeof(*m));
	if (buf_get_u32(b, &status) != 0 || buf_get_u32(b, &m->flags) != 0) {
		why = "truncated";
		goto out;
	}
	m->status = (int32_t)status;
	if (m->status > 0 || m->status < -1000)
		why = "bad status";
	else if ((m->flags & ~PROTO_RESULT_FLAGS_ALL) != 0)
		why = "unknown flags";
	else if (get_str(b, &m->from, PROTO_STRING_MAX) != 0 ||
	    get_str(b, &m->to, PROTO_STRING_MAX) != 0)
		why = "bad release id";
	else if (buf_get_u64(b, &m->added) != 0 || buf_get_u64(b, &m->updated) != 0 ||
	    buf_get_u64(b, &m->deleted) != 0 || buf_get_u64(b, &m->changed) != 0 ||
	    buf_get_u64(b, &m->objects) != 0 || buf_get_u64(b, &m->bytes) != 0)
		why = "truncated";
	else if (get_strv(b, 0, PROTO_STRING_MAX, &m->services, &m->nservices, &why) != 0)
		why = why ? why : "bad service list";
	else if (get_str(b, &m->health, PROTO_STRING_MAX) != 0)
		why = "bad health string";
	else if (get_strv(b, 1, PATH_MAX_LEN, &m->drift, &m->ndrift, &why) != 0)
		why = why ? why : "bad drift list";
	else if (get_str(b, &m->message, PROTO_MESSAGE_MAX) != 0)
		why = "bad message string";
	else if (buf_len(b) != 0 && buf_len(b) < 12)
		why = "trailing bytes";	/* too short for a site tail */
	else if (buf_len(b) != 0) {
		/* The site tail: all of it or none. */
		m->tail = 1;
		if (get_str(b, &m->pending, PROTO_MESSAGE_MAX) != 0)
			why = "bad pending string";
		else if (get_strv(b, 0, PROTO_STRING_MAX, &m->kept, &m->nkept, &why) != 0)
			why = why ? why : "bad kept list";
		else if (get_strv(b, 0, PROTO_STRING_MAX, &m->runs, &m->nruns, &why) != 0)
			why = why ? why : "bad run_once list";
		else if (buf_len(b) != 0 && get_siteplan(b, m, &why) != 0)
			why = why ? why : "bad site plan";
		else if (buf_len(b) != 0)
			why = "trailing bytes";
	}
out:
	if (why != NULL) {
		proto_result_free(m);
		return bad(peer, PROTO_RESULT, why);
	}
	return 0;
}

void
proto_result_free(struct proto_result *m)
{
	free(m->from);
	free(m->to);
	free_strv_n(m->services, m->nservices);
	free(m->health);
	free_strv_n(m->drift, m->ndrift);
	free(m->message);
	free(m->pending);
	free_strv_n(m->kept, m->nkept);
	free_strv_n(m->runs, m->nruns);
	for (size_t i = 0; m->restarts != NULL && i < m->nrestarts; i++) {
		free(m->restarts[i].name);
		free(m->restarts[i].why);
	}
	free(m->restarts);
	free_strv_n(m->would_run, m->nwould_run);
	memset(m, 0, sizeof(*m));
}

/* SIGNATURE_REQUEST: u32 npaths × path. */
int
proto_signature_request_encode(struct buf *b, const struct proto_signature_request *m)
{
	return put_strv(b, m->paths, m->npaths);
}

int
proto_signature_request_decode(struct buf *b, const char *peer,
    struct proto_signature_request *m)
{
	const char *why = NULL;

	memset(m, 0, sizeof(*m));
	if (get_strv(b, 1, PATH_MAX_LEN, &m->paths, &m->npaths, &why) != 0)
		return bad(peer, PROTO_SIGNATURE_REQUEST, why ? why : "bad path list");
	if (buf_len(b) != 0) {
		proto_signature_request_free(m);
		return bad(peer, PROTO_SIGNATURE_REQUEST, "trailing bytes");
	}
	return 0;
}

void
proto_signature_request_free(struct proto_signature_request *m)
{
	free_strv_n(m->paths, m->npaths);
	memset(m, 0, sizeof(*m));
}

/* SIGNATURE: path, u8 present, hash, u64 size, string signature. */
int
proto_signature_encode(struct buf *b, const struct proto_signature *m)
{
	int r;

	if (m->path == NULL || strlen(m->path) > PATH_MAX_LEN || m->present > 1)
		return DS_ERR_INVALID;
	if ((r = buf_put_cstring(b, m->path)) != 0 ||
	    (r = buf_put_u8(b, m->present)) != 0 ||
	    (r = put_hash(b, m->hash)) != 0 ||
	    (r = buf_put_u64(b, m->size)) != 0 ||
	    (r = buf_put_string(b, m->sig, m->sig_len)) != 0)
		return r;
	return 0;
}

int
proto_signature_decode(struct buf *b, const char *peer, struct proto_signature *m)
{
	const char *why = NULL;

	memset(m, 0, sizeof(*m));
	if (get_str(b, &m->path, PATH_MAX_LEN) != 0)
		why = "bad path";
	else if (path_check(m->path, strlen(m->path), &why) != 0)
		;
	else if (buf_get_u8(b, &m->present) != 0 || buf_get_fixed(b, m->hash, HASH_LEN) != 0 ||
	    buf_get_u64(b, &m->size) != 0 || buf_get_string(b, &m->sig, &m->sig_len) != 0)
		why = "truncated";
	else if (m->present > 1)
		why = "bad present flag";
	else if (!m->present && m->sig_len != 0)
		why = "a signature for an absent file";
	else if (buf_len(b) != 0)
		why = "trailing bytes";
	if (why != NULL) {
		proto_signature_free(m);
		return bad(peer, PROTO_SIGNATURE, why);
	}
	return 0;
}

void
proto_signature_free(struct proto_signature *m)
{
	free(m->path);
	free(m->sig);
	memset(m, 0, sizeof(*m));
}

/* RETRY: u32 n × hash. */
int
proto_retry_encode(struct buf *b, const struct proto_retry *m)
{
	int r;

	if (m->nhashes > PROTO_LIST_MAX)
		return DS_ERR_INVALID;
	if ((r = buf_put_u32(b, (uint32_t)m->nhashes)) != 0 ||
	    (r = buf_put(b, m->hashes, m->nhashes * HASH_LEN)) != 0)
		return r;
	return 0;
}

int
proto_retry_decode(struct buf *b, const char *peer, struct proto_retry *m)
{
	uint32_t n;

	memset(m, 0, sizeof(*m));
	if (buf_get_u32(b, &n) != 0)
		return bad(peer, PROTO_RETRY, "truncated");
	if (n > PROTO_LIST_MAX || n != buf_len(b) / HASH_LEN || buf_len(b) % HASH_LEN != 0)
		return bad(peer, PROTO_RETRY, "hash count does not match the frame");
	m->hashes = xcalloc(n == 0 ? 1 : n, HASH_LEN);
	m->nhashes = n;
	if (buf_get_fixed(b, m->hashes, (size_t)n * HASH_LEN) != 0) {
		proto_retry_free(m);
		return bad(peer, PROTO_RETRY, "truncated");
	}
	return 0;
}

void
proto_retry_free(struct proto_retry *m)
{
	free(m->hashes);
	memset(m, 0, sizeof(*m));
}

/* PLAN: u64 objects, u64 bytes. */
int
proto_plan_encode(struct buf *b, const struct proto_plan *m)
{
	int r;

	if ((r = buf_put_u64(b, m->objects)) != 0 || (r = buf_put_u64(b, m->bytes)) != 0)
		return r;
	return 0;
}

int
proto_plan_decode(struct buf *b, const char *peer, struct proto_plan *m)
{
	memset(m, 0, sizeof(*m));
	if (buf_get_u64(b, &m->objects) != 0 || buf_get_u64(b, &m->bytes) != 0)
		return bad(peer, PROTO_PLAN, "truncated");
	if (buf_len(b) != 0)
		return bad(peer, PROTO_PLAN, "trailing bytes");
	return 0;
}

/* FOUND: hash digest, string release. */
int
proto_found_encode(struct buf *b, const struct proto_found *m)
{
	const char *release = m->release != NULL ? m->release : "";
	int r;

	if (strlen(release) > PROTO_STRING_MAX)
		return DS_ERR_INVALID;
	if ((r = put_hash(b, m->digest)) != 0 || (r = buf_put_cstring(b, release)) != 0)
		return r;
	return 0;
}

int
proto_found_decode(struct buf *b, const char *peer, struct proto_found *m)
{
	const char *why = NULL;

	memset(m, 0, sizeof(*m));
	if (buf_get_fixed(b, m->digest, HASH_LEN) != 0)
		why = "truncated";
	else if (get_str(b, &m->release, PROTO_STRING_MAX) != 0)
		why = "bad release id";
	else if (buf_len(b) != 0)
		why = "trailing bytes";
	if (why != NULL) {
		proto_found_free(m);
		return bad(peer, PROTO_FOUND, why);
	}
	return 0;
}

void
proto_found_free(struct proto_found *m)
{
	free(m->release);
	memset(m, 0, sizeof(*m));
}

/* RESTORE: string backup, u8 in_place, u32 n x path (at least one). */
int
proto_restore_encode(struct buf *b, const struct proto_restore *m)
{
	const char *backup = m->backup != NULL ? m->backup : "";
	int r;

	if (strlen(backup) > PROTO_STRING_MAX || m->in_place > 1 || m->npaths == 0)
		return DS_ERR_INVALID;
	if ((r = buf_put_cstring(b, backup)) != 0 || (r = buf_put_u8(b, m->in_place)) != 0 ||
	    (r = put_strv(b, m->paths, m->npaths)) != 0)
		return r;
	return 0;
}

int
proto_restore_decode(struct buf *b, const char *peer, struct proto_restore *m)
{
	const char *why = NULL;

	memset(m, 0, sizeof(*m));
	if (get_str(b, &m->backup, PROTO_STRING_MAX) != 0)
		why = "bad backup id";
	else if (buf_get_u8(b, &m->in_place) != 0)
		why = "truncated";
	else if (m->in_place > 1)
		why = "bad in-place flag";
	else if (get_strv(b, 1, PATH_MAX_LEN, &m->paths, &m->npaths, &why) != 0)
		why = why ? why : "bad path list";
	else if (m->npaths == 0)
		why = "no path";
	else if (buf_len(b) != 0)
		why = "trailing bytes";
	if (why != NULL) {
		proto_restore_free(m);
		return bad(peer, PROTO_RESTORE, why);
	}
	return 0;
}

void
proto_restore_free(struct proto_restore *m)
{
	free(m->backup);
	free_strv_n(m->paths, m->npaths);
	memset(m, 0, sizeof(*m));
}

/* RESTORED: path, string backup, u32 mode, u64 size, hash. */
int
proto_restored_encode(struct buf *b, const struct proto_restored *m)
{
	int r;

	if (m->path == NULL || strlen(m->path) > PATH_MAX_LEN || m->backup == NULL ||
	    strlen(m->backup) > PROTO_STRING_MAX || (m->mode & ~07777u) != 0)
		return DS_ERR_INVALID;
	if ((r = buf_put_cstring(b, m->path)) != 0 ||
	    (r = buf_put_cstring(b, m->backup)) != 0 ||
	    (r = buf_put_u32(b, m->mode)) != 0 ||
	    (r = buf_put_u64(b, m->size)) != 0 ||
	    (r = put_hash(b, m->hash)) != 0)
		return r;
	return 0;
}

int
proto_restored_decode(struct buf *b, const char *peer, struct proto_restored *m)
{
	const char *why = NULL;

	memset(m, 0, sizeof(*m));
	if (get_str(b, &m->path, PATH_MAX_LEN) != 0)
		why = "bad path";
	else if (path_check(m->path, strlen(m->path), &why) != 0)
		;
	else if (get_str(b, &m->backup, PROTO_STRING_MAX) != 0 || m->backup[0] == '\0')
		why = "bad backup id";
	else if (buf_get_u32(b, &m->mode) != 0 || buf_get_u64(b, &m->size) != 0 ||
	    buf_get_fixed(b, m->hash, HASH_LEN) != 0)
		why = "truncated";
	else if ((m->mode & ~07777u) != 0)
		why = "bad mode";
	else if (buf_len(b) != 0)
		why = "trailing bytes";
	if (why != NULL) {
		proto_restored_free(m);
		return bad(peer, PROTO_RESTORED, why);
	}
	return 0;
}

void
proto_restored_free(struct proto_restored *m)
{
	free(m->path);
	free(m->backup);
	memset(m, 0, sizeof(*m));
}

int
proto_msg_decode(uint8_t type, struct buf *b, const char *peer, struct proto_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	switch (type) {
	case PROTO_HELLO:
		return proto_hello_decode(b, peer, &m->u.hello);
	case PROTO_ERROR:
		return proto_error_decode(b, peer, &m->u.error);
	case PROTO_OPEN:
		return proto_open_decode(b, peer, &m->u.open);
	case PROTO_STATE:
		return proto_state_decode(b, peer, &m->u.state);
	case PROTO_MANIFEST:
		return proto_manifest_decode(b, peer, &m->u.manifest);
	case PROTO_OBJECT:
		return proto_object_decode(b, peer, &m->u.object);
	case PROTO_COMMIT:
		return proto_commit_decode(b, peer, &m->u.commit);
	case PROTO_RESULT:
		return proto_result_decode(b, peer, &m->u.result);
	case PROTO_SIGNATURE_REQUEST:
		return proto_signature_request_decode(b, peer, &m->u.signature_request);
	case PROTO_SIGNATURE:
		return proto_signature_decode(b, peer, &m->u.signature);
	case PROTO_RETRY:
		return proto_retry_decode(b, peer, &m->u.retry);
	case PROTO_PLAN:
		return proto_plan_decode(b, peer, &m->u.plan);
	case PROTO_FOUND:
		return proto_found_decode(b, peer, &m->u.found);
	case PROTO_RESTORE:
		return proto_restore_decode(b, peer, &m->u.restore);
	case PROTO_RESTORED:
		return proto_restored_decode(b, peer, &m->u.restored);
	case PROTO_MANIFEST_REQUEST:
	case PROTO_SIGNATURE_END:
	case PROTO_OBJECT_END:
		if (buf_len(b) != 0)
			return bad(peer, type, "trailing bytes");
		return 0;
	case PROTO_DATA:
		if (buf_len(b) == 0)
			return bad(peer, type, "empty chunk");
		if (buf_len(b) > PROTO_CHUNK_MAX)
			return bad(peer, type, "chunk over 1 MiB");
		m->data = buf_ptr(b);
		m->data_len = buf_len(b);
		return 0;
	}
	m->type = 0;
	log_error("%s%sunknown frame type %u", peer ? peer : "", peer ? ": " : "", type);
	return DS_ERR_PROTO;
}

void
proto_msg_free(struct proto_msg *m)
{
	switch (m->type) {
	case PROTO_HELLO:
		proto_hello_free(&m->u.hello);
		break;
	case PROTO_ERROR:
		proto_error_free(&m->u.error);
		break;
	case PROTO_OPEN:
		proto_open_free(&m->u.open);
		break;
	case PROTO_STATE:
		proto_state_free(&m->u.state);
		break;
	case PROTO_MANIFEST:
		proto_manifest_free(&m->u.manifest);
		break;
	case PROTO_COMMIT:
		proto_commit_free(&m->u.commit);
		break;
	case PROTO_RESULT:
		proto_result_free(&m->u.result);
		break;
	case PROTO_SIGNATURE_REQUEST:
		proto_signature_request_free(&m->u.signature_request);
		break;
	case PROTO_SIGNATURE:
		proto_signature_free(&m->u.signature);
		break;
	case PROTO_RETRY:
		proto_retry_free(&m->u.retry);
		break;
	case PROTO_FOUND:
		proto_found_free(&m->u.found);
		break;
	case PROTO_RESTORE:
		proto_restore_free(&m->u.restore);
		break;
	case PROTO_RESTORED:
		proto_restored_free(&m->u.restored);
		break;
	}
	memset(m, 0, sizeof(*m));
}

int
proto_frame_put(struct buf *out, uint8_t type, const struct buf *payload)
{
	size_t len = payload ? buf_len(payload) : 0;
	int r;

	if (len > PROTO_FRAME_MAX - 1)
		return DS_ERR_INVALID;
	if ((r = buf_put_u32(out, (uint32_t)(len + 1))) != 0 ||
	    (r = buf_put_u8(out, type)) != 0 ||
	    (r = buf_put(out, payload ? buf_ptr(payload) : NULL, len)) != 0)
		return r;
	return 0;
}

/* Checks a frame header; returns 0 or DS_ERR_PROTO, logged. */
static int
frame_check(const char *peer, uint32_t len, uint8_t type)
{
	if (len == 0) {
		log_error("%s%sframe of length 0 (no type)", peer ? peer : "", peer ? ": " : "");
		return DS_ERR_PROTO;
	}
	if (type < PROTO_TYPE_MIN || type > PROTO_TYPE_MAX) {
		log_error("%s%sunknown frame type %u", peer ? peer : "", peer ? ": " : "", type);
		return DS_ERR_PROTO;
	}
	if (len > PROTO_FRAME_MAX) {
		log_error("%s%s%s frame of %u bytes is over the %u byte limit",
		    peer ? peer : "", peer ? ": " : "", proto_type_name(type), len,
		    PROTO_FRAME_MAX);
		return DS_ERR_PROTO;
	}
	return 0;
}

int
proto_frame_get(struct buf *in, const char *peer, uint8_t *type, struct buf *payload)
{
	const uint8_t *p = buf_ptr(in);
	uint32_t len;
	int r;

	*type = 0;
	buf_reset(payload);
	if (buf_peek_u32(in, &len) != 0 || buf_len(in) < 5)
		return 1;
	if ((r = frame_check(peer, len, p[4])) != 0)
		return r;
	if (buf_len(in) - 4 < len)
		return 1;
	if ((r = buf_put(payload, p + 5, len - 1)) != 0)
		return bad(peer, p[4], "payload over the buffer limit");
	*type = p[4];
	return buf_consume(in, 4 + (size_t)len);
}

int
proto_send(struct xport *x, uint8_t type, const struct buf *payload)
{
	size_t len = payload ? buf_len(payload) : 0;
	uint8_t hdr[5];
	int r;

	if (len > PROTO_FRAME_MAX - 1) {
		log_error("%s: %s frame of %zu bytes is over the limit", x->peer,
		    proto_type_name(type), len);
		return DS_ERR_INVALID;
	}
	hdr[0] = (uint8_t)((len + 1) >> 24);
	hdr[1] = (uint8_t)((len + 1) >> 16);
	hdr[2] = (uint8_t)((len + 1) >> 8);
	hdr[3] = (uint8_t)(len + 1);
	hdr[4] = type;
	if ((r = xport_write(x, hdr, sizeof(hdr))) != 0)
		return r;
	if (len > 0 && (r = xport_write(x, buf_ptr(payload), len)) != 0)
		return r;
	return 0;
}

int
proto_recv(struct xport *x, uint8_t *type, struct buf *payload)
{
	uint8_t hdr[5], *dst;
	uint32_t len;
	int r;

	*type = 0;
	buf_reset(payload);
	if ((r = xport_read_full(x, hdr, sizeof(hdr))) != 0)
		return r;
	len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	if ((r = frame_check(x->peer, len, hdr[4])) != 0)
		return r;
	if ((r = buf_reserve(payload, len - 1, &dst)) != 0)
		return bad(x->peer, hdr[4], "payload over the buffer limit");
	if ((r = xport_read_full(x, dst, len - 1)) != 0)
		return r;
	*type = hdr[4];
	return 0;
}

void
proto_log_lines(const char *peer, const char *text)
{
	const char *p = text, *nl;

	if (text == NULL || text[0] == '\0')
		return;
	while (*p != '\0') {
		nl = strchr(p, '\n');
		if (nl == NULL)
			nl = p + strlen(p);
		char *line = xstrndup(p, (size_t)(nl - p));

		/* A line that names its host already ("host kirehe: ...") says it once. */
		if (log_line_names(line, peer))
			log_error("%s", line);
		else
			log_error("%s: %s", peer, line);
		free(line);
		p = *nl == '\n' ? nl + 1 : nl;
	}
}

int
proto_recv_msg(struct xport *x, uint8_t want, struct buf *payload, struct proto_msg *m)
{
	uint8_t type;
	int r;

	memset(m, 0, sizeof(*m));
	if ((r = proto_recv(x, &type, payload)) != 0)
		return r;
	if ((r = proto_msg_decode(type, payload, x->peer, m)) != 0)
		return r;
	if (type == PROTO_ERROR && want != PROTO_ERROR) {
		r = m->u.error.code;
		proto_log_lines(x->peer, m->u.error.message);
		free(x->peer_error);	/* kept whole for the session's report */
		x->peer_error = xstrdup(m->u.error.message);
		proto_msg_free(m);
		/* Preconditions keep their meaning for the exit code; the rest is the peer's. */
		switch (r) {
		case DS_ERR_LOCKED:
		case DS_ERR_NOSPACE:
		case DS_ERR_SIGNATURE:
		case DS_ERR_DRIFT:
		case DS_ERR_PRECONDITION:
		case DS_ERR_CONFIG:
		case DS_ERR_NOTFOUND:
		case DS_ERR_NOTKEPT:
		case DS_ERR_PROTO:
			return r;
		}
		return DS_ERR_PEER;
	}
	if (want != 0 && type != want) {
		log_error("%s: expected a %s frame, got %s", x->peer, proto_type_name(want),
		    proto_type_name(type));
		proto_msg_free(m);
		return DS_ERR_PROTO;
	}
	return 0;
}

int
proto_send_msg(struct xport *x, uint8_t type, const void *m)
{
	struct buf *b = buf_new(PROTO_FRAME_MAX - 1);
	int r;

	switch (type) {
	case PROTO_HELLO:
		r = proto_hello_encode(b, m);
		break;
	case PROTO_ERROR:
		r = proto_error_encode(b, m);
		break;
	case PROTO_OPEN:
		r = proto_open_encode(b, m);
		break;
	case PROTO_STATE:
		r = proto_state_encode(b, m);
		break;
	case PROTO_MANIFEST:
		r = proto_manifest_encode(b, m);
		break;
	case PROTO_OBJECT:
		r = proto_object_encode(b, m);
		break;
	case PROTO_COMMIT:
		r = proto_commit_encode(b, m);
		break;
	case PROTO_RESULT:
		r = proto_result_encode(b, m);
		break;
	case PROTO_SIGNATURE_REQUEST:
		r = proto_signature_request_encode(b, m);
		break;
	case PROTO_SIGNATURE:
		r = proto_signature_encode(b, m);
		break;
	case PROTO_RETRY:
		r = proto_retry_encode(b, m);
		break;
	case PROTO_PLAN:
		r = proto_plan_encode(b, m);
		break;
	case PROTO_FOUND:
		r = proto_found_encode(b, m);
		break;
	case PROTO_RESTORE:
		r = proto_restore_encode(b, m);
		break;
	case PROTO_RESTORED:
		r = proto_restored_encode(b, m);
		break;
	case PROTO_MANIFEST_REQUEST:
	case PROTO_SIGNATURE_END:
	case PROTO_OBJECT_END:
		r = 0;
		break;
	default:
		r = DS_ERR_INVALID;
	}
	if (r != 0)
		log_error("%s: cannot encode a %s frame: a field is over its limit", x->peer,
		    proto_type_name(type));
	else
		r = proto_send(x, type, b);
	buf_free(b);
	return r;
}

int
proto_send_hello(struct xport *x, uint8_t role, uint64_t caps)
{
	struct proto_hello h = {
		.magic = PROTO_MAGIC, .version = PROTO_VERSION, .caps = caps, .role = role,
		.software = (char *)"distsync " PACKAGE_VERSION,
	};

	return proto_send_msg(x, PROTO_HELLO, &h);
}

int
proto_send_error(struct xport *x, int code, const char *fmt, ...)
{
	struct proto_error e = { .code = code < 0 ? code : DS_ERR_PEER };
	va_list ap;
	int r, n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	e.message = xmalloc(n < 0 ? 1 : (size_t)n + 1);
	e.message[0] = '\0';
	va_start(ap, fmt);
	if (n >= 0)
		vsnprintf(e.message, (size_t)n + 1, fmt, ap);
	va_end(ap);
	r = proto_send_msg(x, PROTO_ERROR, &e);
	free(e.message);
	return r;
}

int
proto_hello_check(const struct proto_hello *h, const char *peer, uint8_t want_role,
    uint64_t our_caps, uint64_t *caps)
{
	*caps = 0;
	if (h->version != PROTO_VERSION) {
		log_error("%s: protocol version mismatch: we speak %u, %s speaks %u",
		    peer, PROTO_VERSION, h->software, h->version);
		return DS_ERR_PROTO;
	}
	if (h->role != want_role) {
		log_error("%s: the peer announced role %u where %u was expected", peer, h->role,
		    want_role);
		return DS_ERR_PROTO;
	}
	*caps = h->caps & our_caps;
	return 0;
}

size_t
proto_list_fit(char *const *paths, size_t n)
{
	size_t bytes = 0, i;

	for (i = 0; i < n && i < PROTO_LIST_MAX; i++) {
		bytes += strlen(paths[i]) + 4;
		if (bytes > PROTO_LIST_BUDGET)
			break;
	}
	return i;
}
