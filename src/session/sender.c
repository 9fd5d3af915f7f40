/*
 * The initiating role: HELLO and OPEN, then for a push plan from the
 * receiver's STATE, stream the objects it lacks (pipelined, no round trip
 * per object), COMMIT and read the RESULT. Rollback and verify only read
 * the RESULT. See proto.h for the exchange.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/fileio.h"
#include "base/hash.h"
#include "base/hint.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "codec/delta.h"
#include "config/config.h"
#include "repo/manifest.h"
#include "repo/plan.h"
#include "repo/signing.h"
#include "repo/store.h"
#include "repo/trust.h"
#include "session/encoder.h"
#include "session/encoding.h"
#include "session/report.h"
#include "session/sender.h"
#include "wire/proto.h"
#include "wire/xport.h"

#define READ_CHUNK	(128u * 1024)
/* Levels for a manifest: the best ratio is cheap for a small one, not for a large one. */
#define MANIFEST_PACK_LEVEL	19
#define MANIFEST_PACK_LEVEL_LARGE	6	/* over MANIFEST_PACK_LARGE bytes */
#define MANIFEST_PACK_LARGE	(1u << 20)
/*
 * DATA payload per frame. The receiver stages a frame once it is whole, so a
 * cut link loses the frame in flight: 16 KiB is half a second at 256 kbit/s,
 * where PROTO_CHUNK_MAX would be 33 s, longer than such a link may stay up.
 * The 5-byte header costs 0.03 %.
 */
#define DATA_CHUNK	(16u * 1024)

struct sender {
	struct xport		*x;
	const struct sender_options *opt;
	struct report		*report;
	struct buf		*payload;	/* received frames */
	struct buf		*chunk;		/* DATA being filled */
	uint8_t			*readbuf;
	ZSTD_CCtx		*cctx;
	struct encoding_ctx	 enc;		/* the receiver's caps; for a push, what the
						   encoding policy knows */
	/*
	 * The object in flight, for progress: content size, stream length, and
	 * what is sent of it: stream bytes flushed to the transport (cur_stream),
	 * or for a zstd stream, whose length is not known ahead, content read.
	 */
	uint64_t		 cur_size, cur_len, cur_sent;
	int			 cur_stream;
	/* Content the receiver held staged before this session: progress starts there. */
	uint64_t		 staged_done;
	/* Where an interrupt finds the session: 1 objects being sent, 2 COMMIT sent. */
	int			 stage;
	char			*site_release;	/* what the site held (its STATE); NULL: none */
	/*
	 * DATA payload bytes of the objects streamed so far. A dry run streams
	 * them only into this count: it encodes what a push would send (the
	 * same encodings, cached for that push) and sends nothing.
	 */
	uint64_t		 stream_bytes;
	int			 dry;
};

/*
 * After a failed write the peer has usually said why before it hung up:
 * read its ERROR so the user sees the cause, not "broken pipe".
 */
static int
peer_reason(struct sender *s, int r)
{
	struct proto_msg m;
	int r2;

	if (r != DS_ERR_CONNECT)
		return r;
	r2 = proto_recv_msg(s->x, PROTO_RESULT, s->payload, &m);
	if (r2 == 0) {
		s->report->result = m.u.result;
		return m.u.result.status != 0 ? m.u.result.status : r;
	}
	proto_msg_free(&m);
	return r2 == DS_ERR_CONNECT ? r : r2;
}

static int
flush_chunk(struct sender *s)
{
	int r = 0;

	if (buf_len(s->chunk) == 0)
		return 0;
	s->stream_bytes += buf_len(s->chunk);
	if (s->dry) {
		buf_reset(s->chunk);
		return 0;
	}
	r = proto_send(s->x, PROTO_DATA, s->chunk);
	if (s->cur_stream)
		s->cur_sent += buf_len(s->chunk);
	buf_reset(s->chunk);
	if (s->opt->progress != NULL) {
		/* Done: what was staged, whole objects, and the share of the one in flight. */
		uint64_t done = s->staged_done + s->report->object_bytes;

		if (s->cur_len > 0 && s->cur_sent <= s->cur_len)
			done += (uint64_t)((double)s->cur_size * (double)s->cur_sent /
			    (double)s->cur_len);
		s->opt->progress(s->opt->progress_arg, s->x->bytes_out, done,
		    s->report->planned_bytes);
	}
	return r;
}

/* Appends bytes to the DATA chunk, sending full chunks. */
static int
put_data(struct sender *s, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t room, n;
	int r;

	while (len > 0) {
		room = DATA_CHUNK - buf_len(s->chunk);
		n = len < room ? len : room;
		if ((r = buf_put(s->chunk, p, n)) != 0)
			return r;
		p += n;
		len -= n;
		if (buf_len(s->chunk) == DATA_CHUNK && (r = flush_chunk(s)) != 0)
			return r;
	}
	return 0;
}

static ssize_t
read_some(int fd, void *buf, size_t len)
{
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n;
}

/* Sends an object's OBJECT or OBJECT_END (m NULL) frame; a dry run sends nothing. */
static int
object_frame(struct sender *s, uint8_t type, const struct proto_object *m)
{
	if (s->dry)
		return 0;
	return m != NULL ? proto_send_msg(s->x, type, m) : proto_send(s->x, type, NULL);
}

/* Streams fd from offset to its end as DATA frames, by enc. */
static int
send_content(struct sender *s, int fd, uint64_t offset, uint64_t size, uint8_t enc,
    const char *what)
{
	uint64_t left = size - offset;
	ZSTD_outBuffer out;
	ZSTD_inBuffer in;
	size_t outsz = ZSTD_CStreamOutSize(), rem;
	uint8_t *obuf = NULL;
	ssize_t n;
	int r = 0, level;

	if (lseek(fd, (off_t)offset, SEEK_SET) < 0) {
		log_errno("%s: seek", what);
		return DS_ERR_SYSTEM;
	}
	if (s->dry && enc == PROTO_ENC_RAW) {
		s->stream_bytes += left;	/* the bytes themselves: no need to read them */
		return 0;
	}
	if (enc == PROTO_ENC_ZSTD) {
		level = encoding_zstd_level(s->opt->level, s->opt->config);
		ZSTD_CCtx_reset(s->cctx, ZSTD_reset_session_and_parameters);
		ZSTD_CCtx_setParameter(s->cctx, ZSTD_c_compressionLevel, level);
		ZSTD_CCtx_setParameter(s->cctx, ZSTD_c_checksumFlag, 1);
		ZSTD_CCtx_setPledgedSrcSize(s->cctx, left);
		obuf = xmalloc(outsz);
	}
	s->cur_size = s->cur_len = left;
	s->cur_sent = 0;
	s->cur_stream = enc == PROTO_ENC_RAW;
	while (left > 0) {
		n = read_some(fd, s->readbuf, left < READ_CHUNK ? (size_t)left : READ_CHUNK);
		if (n < 0) {
			log_errno("%s: read", what);
			r = DS_ERR_SYSTEM;
			goto out;
		}
		if (n == 0) {
			log_error("%s: object is shorter than its manifest size", what);
			r = DS_ERR_CORRUPT;
			goto out;
		}
		left -= (uint64_t)n;
		if (!s->cur_stream)
			s->cur_sent += (uint64_t)n;
		if (enc == PROTO_ENC_RAW) {
			if ((r = put_data(s, s->readbuf, (size_t)n)) != 0)
				goto out;
			continue;
		}
		in = (ZSTD_inBuffer){ s->readbuf, (size_t)n, 0 };
		do {
			out = (ZSTD_outBuffer){ obuf, outsz, 0 };
			rem = ZSTD_compressStream2(s->cctx, &out, &in,
			    left == 0 ? ZSTD_e_end : ZSTD_e_continue);
			if (ZSTD_isError(rem)) {
				log_error("%s: zstd: %s", what, ZSTD_getErrorName(rem));
				r = DS_ERR_SYSTEM;
				goto out;
			}
			if ((r = put_data(s, obuf, out.pos)) != 0)
				goto out;
		} while (in.pos < in.size || (left == 0 && rem != 0));
	}
	if (enc == PROTO_ENC_ZSTD && size == offset) {
		/* An empty remainder still needs a (tiny) frame. */
		in = (ZSTD_inBuffer){ NULL, 0, 0 };
		do {
			out = (ZSTD_outBuffer){ obuf, outsz, 0 };
			rem = ZSTD_compressStream2(s->cctx, &out, &in, ZSTD_e_end);
			if (ZSTD_isError(rem)) {
				r = DS_ERR_SYSTEM;
				goto out;
			}
			if ((r = put_data(s, obuf, out.pos)) != 0)
				goto out;
		} while (rem != 0);
	}
	r = flush_chunk(s);
out:
	s->cur_len = 0;
	free(obuf);
	return r;
}

/*
 * Sends one object: OBJECT, DATA..., OBJECT_END. Delta encodings plug in
 * here: pick a basis from the plan, encode (or reuse the store's cached
 * encoding) and send those bytes instead.
 */
static int
send_object(struct sender *s, const struct plan_object *po, uint64_t offset)
{
	const struct manifest_entry *e = po->entry;
	struct proto_object ob;
	char hex[HASH_HEX_LEN + 1], *what;
	uint64_t out0 = s->stream_bytes;
	int fd, r;

	memset(&ob, 0, sizeof(ob));
	hash_to_hex(e->hash, hex);
	what = xasprintf("%s (object %.16s)", e->path, hex);
	fd = store_object_open(s->opt->store, e->hash);
	if (fd < 0) {
		log_errno("%s: object missing from the store", what);
		r = DS_ERR_NOTFOUND;
		goto out;
	}
	if (offset > e->size || (s->enc.caps & PROTO_CAP_RESUME) == 0)
		offset = 0;
	memcpy(ob.hash, e->hash, HASH_LEN);
	ob.size = e->size;
	ob.offset = offset;
	ob.encoding = encoding_for_stream(s->enc.caps, fd, offset, e->size);
	if ((r = object_frame(s, PROTO_OBJECT, &ob)) != 0)
		goto out;
	if ((r = send_content(s, fd, offset, e->size, ob.encoding, what)) != 0)
		goto out;
	if ((r = object_frame(s, PROTO_OBJECT_END, NULL)) != 0)
		goto out;
	s->report->objects_sent++;
	s->report->object_bytes += e->size - offset;
	s->report->enc_objects[ob.encoding]++;
	s->report->enc_bytes[ob.encoding] += s->stream_bytes - out0;
	log_debug("%s: sent %s from byte %" PRIu64 " as %s", s->x->peer, e->path, offset,
	    ob.encoding == PROTO_ENC_ZSTD ? "zstd" : "raw");
out:
	if (fd >= 0)
		close(fd);
	free(what);
	return r;
}

/*
 * COMMIT's manifest as one zstd frame against the receiver's current release
 * (PROTO_CAP_MANIFEST_ZSTD; CURRENT is it when ST names one), when smaller
 * than the text: a release that changes a few files of thousands sends a
 * few hundred bytes. The text stays when the receiver cannot take it.
 */
static int
pack_manifest(struct sender *s, const struct proto_state *st, const struct manifest *current,
    struct proto_commit *commit)
{
	char *prefix = NULL;
	uint8_t *packed = NULL;
	size_t plen = 0, len = 0;
	int r;

	if (!(s->enc.caps & PROTO_CAP_MANIFEST_ZSTD) || commit->manifest_len == 0)
		return 0;
	if (st->release[0] != '\0' && current != NULL)
		manifest_encode(current, &prefix, &plen);
	r = delta_buf_encode(prefix, plen, commit->manifest, commit->manifest_len,
	    commit->manifest_len > MANIFEST_PACK_LARGE ? MANIFEST_PACK_LEVEL_LARGE :
	    MANIFEST_PACK_LEVEL, &packed, &len);
	free(prefix);
	if (r != 0)
		return r;
	if (len < commit->manifest_len) {
		log_debug("%s: the release's manifest as %zu bytes (%zu as text)", s->x->peer, len,
		    commit->manifest_len);
		free(commit->manifest);
		commit->manifest = packed;
		commit->manifest_len = len;
	} else
		free(packed);
	return 0;
}

/*
 * Gets the manifest of the tree the receiver holds, whose digest is DIGEST
 * (zero: an empty one): a release the store keeps (*id, caller frees, else
 * NULL; HINT is tried first), else over the wire.
 */
static int
receiver_manifest(struct sender *s, const char *hint, const uint8_t digest[HASH_LEN],
    struct manifest **out, char **id)
{
	struct proto_msg m;
	uint8_t d[HASH_LEN];
	int r;

	*out = NULL;
	*id = NULL;
	if (hash_is_zero(digest)) {
		*out = manifest_new();
		return 0;
	}
	if ((r = store_release_find(s->opt->store, hint, digest, id, out)) != 0)
		return r;
	if (*out != NULL)
		return 0;
	/* Unknown to us (pruned, or from another repository): ask for it. */
	s->report->manifest_fetched = 1;
	if ((r = proto_send(s->x, PROTO_MANIFEST_REQUEST, NULL)) != 0)
		return peer_reason(s, r);
	s->report->round_trips++;
	if ((r = proto_recv_msg(s->x, PROTO_MANIFEST, s->payload, &m)) != 0)
		return r;
	r = manifest_decode((const char *)m.u.manifest.data, m.u.manifest.len, s->x->peer, out);
	proto_msg_free(&m);
	if (r != 0) {
		log_error("%s: the receiver's manifest does not decode", s->x->peer);
		return DS_ERR_PROTO;
	}
	manifest_digest(*out, d);
	if (memcmp(d, digest, HASH_LEN) != 0) {
		log_error("%s: the receiver's manifest does not match the digest it announced",
		    s->x->peer);
		manifest_free(*out);
		*out = NULL;
		return DS_ERR_PROTO;
	}
	return 0;
}

/* Copy of CURRENT without the drifted paths: their content cannot serve as a source. */
static struct manifest *
without_drift(const struct manifest *current, char **drift, size_t ndrift)
{
	struct manifest *m = manifest_new();
	size_t j = 0;

	/* Both lists are in path order. */
	for (size_t i = 0; i < current->count; i++) {
		const char *p = current->entries[i].path;
		int c = 1;

		while (j < ndrift && (c = strcmp(drift[j], p)) < 0)
			j++;
		if (j < ndrift && c == 0)
			continue;
		manifest_add(m, &current->entries[i]);
	}
	return m;
}

/* Finds a delta stream of HASH the receiver holds in part: its encoding and length. */
static void
staged_encoded(const struct proto_state *st, const uint8_t hash[HASH_LEN], uint8_t *enc,
    uint64_t *offset)
{
	*enc = 0;
	*offset = 0;
	for (size_t i = 0; i < st->nstaged; i++) {
		if (st->staged[i].complete >= PROTO_STAGED_ENCODED(PROTO_ENC_ZSTD_PATCH) &&
		    memcmp(st->staged[i].hash, hash, HASH_LEN) == 0) {
			*enc = (uint8_t)(st->staged[i].complete - PROTO_STAGED_ENCODED(0));
			*offset = st->staged[i].offset;
			return;
		}
	}
}

static int
staged_offset(const struct proto_state *st, const uint8_t hash[HASH_LEN], int *complete,
    uint64_t *offset)
{
	for (size_t i = 0; i < st->nstaged; i++) {
		if (st->staged[i].complete > 1)
			continue;	/* a delta stream: staged_encoded */
		if (memcmp(st->staged[i].hash, hash, HASH_LEN) == 0) {
			*complete = st->staged[i].complete;
			*offset = st->staged[i].offset;
			return 1;
		}
	}
	*complete = 0;
	*offset = 0;
	return 0;
}

/*
 * Asks the receiver, in one batch, for signatures of the bases the store
 * cannot delta against: drifted paths that the release replaces, and bases
 * whose content the store lacks (pruned, or a site this store never synced).
 */
static int
request_signatures(struct sender *s, const struct plan *plan)
{
	struct proto_signature_request req;
	struct proto_msg m;
	int r = 0;

	memset(&req, 0, sizeof(req));
	if ((req.npaths = encoding_signature_paths(&s->enc, plan, &req.paths)) == 0)
		goto out;
	if ((r = proto_send_msg(s->x, PROTO_SIGNATURE_REQUEST, &req)) != 0) {
		r = peer_reason(s, r);
		goto out;
	}
	s->report->round_trips++;
	for (;;) {
		if ((r = proto_recv_msg(s->x, 0, s->payload, &m)) != 0)
			goto out;
		if (m.type == PROTO_SIGNATURE_END && s->enc.nsigs == req.npaths)
			break;
		if (m.type != PROTO_SIGNATURE || s->enc.nsigs == req.npaths ||
		    strcmp(m.u.signature.path, req.paths[s->enc.nsigs]) != 0) {
			log_error("%s: unexpected %s in answer to SIGNATURE_REQUEST", s->x->peer,
			    proto_type_name(m.type));
			proto_msg_free(&m);
			r = DS_ERR_PROTO;
			goto out;
		}
		s->report->signatures += m.u.signature.present;
		encoding_signature_add(&s->enc, &m.u.signature);
	}
	proto_msg_free(&m);
out:
	free(req.paths);
	return r;
}

/* Streams LEN bytes of fd from OFFSET as DATA frames. */
static int
send_file_bytes(struct sender *s, int fd, uint64_t offset, uint64_t len, const char *what)
{
	ssize_t n;
	int r;

	while (len > 0) {
		n = pread(fd, s->readbuf, len < READ_CHUNK ? (size_t)len : READ_CHUNK,
		    (off_t)offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_errno("%s: read", what);
			return DS_ERR_SYSTEM;
		}
		if ((r = put_data(s, s->readbuf, (size_t)n)) != 0)
			return r;
		offset += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return flush_chunk(s);
}

/*
 * Sends one object by its cached encoding: OBJECT, DATA..., OBJECT_END, from
 * byte OFFSET of the encoding (a delta stream the receiver holds that much of).
 */
static int
send_encoded(struct sender *s, const struct encoded *e, uint64_t offset)
{
	const struct manifest_entry *ent = e->po->entry;
	struct proto_object ob;
	char *what = xasprintf("%s (%s)", ent->path, e->cache != NULL ? e->cache :
	    delta_encoding_name(e->enc));
	int fd, r;

	memset(&ob, 0, sizeof(ob));
	/* Cached, or made for this session only (encoding.h): pread either way. */
	if ((fd = e->fd != -1 ? dup(e->fd) : open(e->cache, O_RDONLY | O_CLOEXEC)) == -1) {
		log_errno("%s", what);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	memcpy(ob.hash, ent->hash, HASH_LEN);
	ob.size = ent->size;
	ob.encoding = e->enc;
	ob.offset = offset;
	if (e->enc != PROTO_ENC_ZSTD)
		memcpy(ob.basis, e->basis, HASH_LEN);
	/* Progress counts the whole object once its stream is sent, resumed or not. */
	s->cur_size = ent->size;
	s->cur_len = e->len;
	s->cur_sent = offset;
	s->cur_stream = 1;
	r = object_frame(s, PROTO_OBJECT, &ob);
	if (r == 0 && s->dry)
		s->stream_bytes += e->len - offset;	/* counted, not read */
	else if (r == 0)
		r = send_file_bytes(s, fd, offset, e->len - offset, what);
	s->cur_len = 0;
	if (r != 0 || (r = object_frame(s, PROTO_OBJECT_END, NULL)) != 0)
		goto out;
	s->report->objects_sent++;
	s->report->object_bytes += ent->size;
	s->report->enc_objects[e->enc]++;
	s->report->enc_bytes[e->enc] += e->len - offset;
	s->report->cache_hits += e->hit;
	log_debug("%s: sent %s as %s (%" PRIu64 " of %" PRIu64 " bytes)", s->x->peer,
	    ent->path, delta_encoding_name(e->enc), e->len, ent->size);
out:
	if (fd != -1)
		close(fd);
	free(what);
	return r;
}

/*
 * Sends the objects the receiver lacks, encoded ahead by a worker thread.
 * Objects partly staged on the receiver resume their content stream.
 */
/* What the receiver holds staged of PLAN's objects already: where progress starts. */
static uint64_t
staged_share(const struct plan *plan, const struct proto_state *st)
{
	uint64_t done = 0, offset;
	int complete;

	for (size_t i = 0; i < plan->nobjects; i++) {
		const struct plan_object *po = &plan->objects[i];

		if (po->entry->type != MANIFEST_FILE && po->entry->type != MANIFEST_SYMLINK)
			continue;
		staged_offset(st, po->entry->hash, &complete, &offset);
		if (complete)
			done += po->entry->size;
		else if (offset <= po->entry->size)
			done += offset;
	}
	return done;
}

static int
send_objects(struct sender *s, const struct plan *plan, const struct proto_state *st)
{
	struct encoder *w;
	uint64_t *offsets, *enc_offsets;
	uint8_t *enc_kinds;
	size_t n = 0;
	int r = 0;

	w = encoder_new(&s->enc);
	offsets = xcalloc(plan->nobjects + 1, sizeof(*offsets));
	enc_offsets = xcalloc(plan->nobjects + 1, sizeof(*enc_offsets));
	enc_kinds = xcalloc(plan->nobjects + 1, sizeof(*enc_kinds));
	for (size_t i = 0; i < plan->nobjects; i++) {
		const struct plan_object *po = &plan->objects[i];
		uint64_t offset;
		int complete;

		if (po->entry->type != MANIFEST_FILE && po->entry->type != MANIFEST_SYMLINK)
			continue;
		staged_offset(st, po->entry->hash, &complete, &offset);
		if (complete)
			continue;
		n = encoder_add(w, po);
		offsets[n] = offset;
		staged_encoded(st, po->entry->hash, &enc_kinds[n], &enc_offsets[n]);
		n++;
	}
	if ((s->enc.caps & PROTO_CAP_PLAN) && !s->dry) {
		struct proto_plan pp = { n, 0 };

		for (size_t i = 0; i < n; i++)
			pp.bytes += encoder_item(w, i)->po->entry->size - offsets[i];
		if ((r = proto_send_msg(s->x, PROTO_PLAN, &pp)) != 0)
			goto out;
	}
	if ((r = request_signatures(s, plan)) != 0)
		goto out;
	encoder_start(w);
	/* In any order: the receiver stages objects by hash and needs all only at COMMIT. */
	for (size_t k = 0; k < n; k++) {
		size_t i = encoder_next(w);
		const struct encoded *e = encoder_item(w, i);
		int encoded = e->cache != NULL || e->fd != -1;

		/* A delta stream cut mid-way continues at its byte when it is the same stream. */
		if (encoded && enc_offsets[i] > 0 && e->enc == enc_kinds[i] &&
		    enc_offsets[i] <= e->len)
			r = send_encoded(s, e, enc_offsets[i]);
		else if (encoded && offsets[i] == 0)
			r = send_encoded(s, e, 0);
		else
			r = send_object(s, e->po, offsets[i]);
		encoder_sent(w, i);
		if (r != 0) {
			r = peer_reason(s, r);
			goto out;
		}
	}
out:
	encoder_free(w);
	free(offsets);
	free(enc_offsets);
	free(enc_kinds);
	return r;
}

/*
 * Sends COMMIT and reads RESULT. A RETRY instead lists objects whose delta
 * the receiver could not use: their cached encodings are dropped, they go
 * whole, and COMMIT is sent again (once).
 */
static int
commit_result(struct sender *s, const struct plan *plan, const struct proto_commit *commit,
    struct proto_msg *m)
{
	int r, retried = 0;

	for (;;) {
		s->stage = 2;	/* from here the receiver may be applying */
		if ((r = proto_send_msg(s->x, PROTO_COMMIT, commit)) != 0)
			return peer_reason(s, r);
		s->report->round_trips++;
		/*
		 * The apply, restarts and health checks may take longer than any idle
		 * limit while the link is quiet; a dead link is the transport's to notice.
		 */
		s->x->idle_timeout = 0;
		if ((r = proto_recv_msg(s->x, retried ? PROTO_RESULT : 0, s->payload, m)) != 0)
			return r;
		if (m->type == PROTO_RESULT)
			return 0;
		if (m->type != PROTO_RETRY) {
			log_error("%s: expected RESULT or RETRY after COMMIT, got %s", s->x->peer,
			    proto_type_name(m->type));
			proto_msg_free(m);
			return DS_ERR_PROTO;
		}
		retried = 1;
		for (size_t i = 0; i < m->u.retry.nhashes && r == 0; i++) {
			const uint8_t *h = m->u.retry.hashes + i * HASH_LEN;
			const struct plan_object *po = NULL;

			for (size_t j = 0; j < plan->nobjects && po == NULL; j++)
				if (memcmp(plan->objects[j].entry->hash, h, HASH_LEN) == 0)
					po = &plan->objects[j];
			if (po == NULL) {
				log_error("%s: RETRY names an object that was not sent", s->x->peer);
				r = DS_ERR_PROTO;
				break;
			}
			log_warn("%s: %s: the host asked for it again (a delta that did not "
			    "reconstruct the file, or a staged copy it cleared for room); sent "
			    "whole instead", s->x->peer, po->entry->path);
			encoding_drop_cached(&s->enc, po);
			s->report->fallbacks++;
			if ((r = send_object(s, po, 0)) != 0)
				r = peer_reason(s, r);
		}
		proto_msg_free(m);
		if (r != 0)
			return r;
	}
}

/*
 * A signed release travels with its signature: the release document and
 * the store's keys documents, for the site to walk from the root it pins.
 * An unsigned release sends none (the site decides whether it takes one).
 */
static int
attach_signature(struct sender *s, const char *release, struct proto_commit *commit)
{
	struct trust_doc *doc = NULL, **chain = NULL;
	size_t n = 0, len;
	int r;

	r = signing_release_load(s->opt->store, release, &doc, NULL, NULL);
	if (r == DS_ERR_NOTFOUND)
		return 0;
	if (r != 0 || (r = signing_chain_load(s->opt->store, &chain, &n)) != 0)
		goto out;
	trust_bundle_encode(doc, chain, n, &commit->signature, &len);
	commit->signature_len = len;
out:
	trust_doc_free(doc);
	signing_chain_free(chain, n);
	return r;
}

/*
 * Will the receiver refuse for drift (--fail-on-drift)? Then it needs no
 * objects. A site never applied has no drift, but refuses a first apply that
 * would replace or remove files found there (commit.h).
 */
static int
drift_refused(const struct sender *s, const struct proto_state *st, const struct plan *plan)
{
	if ((s->opt->flags & PROTO_FLAG_FAIL_ON_DRIFT) == 0)
		return 0;
	if (s->report->found)
		return plan->updated + plan->mode_changed + plan->deleted > 0;
	return st->ndrift > 0;
}

/* FOUND before COMMIT: the release the tree found was recognised as, for the site. */
static int
send_found(struct sender *s, const struct proto_found *found)
{
	struct proto_found f;

	if ((s->enc.caps & PROTO_CAP_ADOPT) == 0)
		return 0;
	memset(&f, 0, sizeof(f));
	if (s->report->found)
		memcpy(f.digest, found->digest, HASH_LEN);
	f.release = s->report->found_release != NULL ? s->report->found_release : (char *)"";
	return proto_send_msg(s->x, PROTO_FOUND, &f);
}

/*
 * The push after STATE (and FOUND: found, zeroed for a receiver without
 * PROTO_CAP_ADOPT). The tree the receiver holds is its current release,
 * or on a site never applied the tree found there, recognised as a kept
 * release when it is one: either way content decides what is sent.
 */
static int
run_push(struct sender *s, const struct proto_state *st, const struct proto_found *found)
{
	const struct sender_options *opt = s->opt;
	struct manifest *target = NULL, *current = NULL, *usable = NULL;
	struct plan *plan = NULL;
	struct proto_commit commit;
	struct proto_msg m;
	char *release = NULL, *current_id = NULL;
	const uint8_t *digest = st->digest;
	const char *hint = st->release;
	size_t len;
	int r;

	memset(&commit, 0, sizeof(commit));
	if (opt->release != NULL)
		release = xstrdup(opt->release);
	else if ((r = store_release_latest(opt->store, &release)) != 0) {
		char *cmd = hint_command((const char *const[]){ "release", NULL });

		log_error("%s: no release in the store: make one with '%s'",
		    store_dir(opt->store), cmd);
		free(cmd);
		goto out;
	}
	s->report->release = xstrdup(release);
	if ((r = store_release_load(opt->store, release, &target)) != 0)
		goto out;
	if (st->release[0] == '\0' && hash_is_zero(st->digest) && !hash_is_zero(found->digest)) {
		s->report->found = 1;
		digest = found->digest;
		hint = NULL;
	}
	if ((r = receiver_manifest(s, hint, digest, &current, &current_id)) != 0)
		goto out;
	if (s->report->found && current_id != NULL)
		s->report->found_release = xstrdup(current_id);
	usable = without_drift(current, st->drift, st->ndrift);
	plan = plan_make(usable, target);
	s->report->planned_bytes = plan->object_bytes;
	s->staged_done = staged_share(plan, st);
	if (opt->progress != NULL)
		opt->progress(opt->progress_arg, s->x->bytes_out, s->staged_done,
		    plan->object_bytes);
	if (plan->object_bytes > st->free_bytes) {
		char need[32], have[32];

		util_format_bytes(plan->object_bytes, need, sizeof(need));
		util_format_bytes(st->free_bytes, have, sizeof(have));
		log_error("%s: the release needs %s of new content but only %s are free; "
		    "nothing sent", s->x->peer, need, have);
		r = DS_ERR_NOSPACE;
		goto out;
	}
	/*
	 * A refusal for drift is the receiver's to make; it needs no objects for
	 * it. A dry run encodes every object as a push would and counts it.
	 */
	s->site_release = st->release[0] != '\0' ? xstrdup(st->release) : NULL;
	s->stage = 1;
	if (!drift_refused(s, st, plan)) {
		s->enc.st = st;
		s->dry = (opt->flags & PROTO_FLAG_DRY_RUN) != 0;
		if ((r = send_objects(s, plan, st)) != 0)
			goto out;
		if (opt->progress != NULL && !s->dry)	/* everything is sent (and encoded) */
			opt->progress(opt->progress_arg, s->x->bytes_out,
			    s->report->planned_bytes, s->report->planned_bytes);
	}
	if ((r = send_found(s, found)) != 0) {
		r = peer_reason(s, r);
		goto out;
	}
	commit.release = release;
	manifest_encode(target, (char **)&commit.manifest, &len);
	commit.manifest_len = len;
	{
		uint8_t d[HASH_LEN];

		/* The receiver holds this very manifest: an empty one says "yours". */
		hash_bytes(commit.manifest, len, d);
		if (memcmp(d, st->digest, HASH_LEN) == 0)
			commit.manifest_len = 0;
	}
	if ((r = pack_manifest(s, st, current, &commit)) != 0)
		goto out;
	commit.flags = opt->flags;
	if ((r = attach_signature(s, release, &commit)) != 0)
		goto out;
	if ((r = commit_result(s, plan, &commit, &m)) != 0)
		goto out;
	s->report->result = m.u.result;
	r = m.u.result.status;
	/* What the release keeps of the tree found: its paths less those the apply places. */
	if (s->report->found && target->count >= m.u.result.added + m.u.result.updated)
		s->report->identical = target->count - m.u.result.added - m.u.result.updated;
out:
	if (opt->site != NULL && current != NULL) {
		manifest_free(*opt->site);
		*opt->site = current;
		current = NULL;
	}
	free(commit.manifest);
	free(commit.signature);
	free(current_id);
	free(release);
	plan_free(plan);
	manifest_free(target);
	manifest_free(current);
	manifest_free(usable);
	return r;
}

/* Reads the FOUND that follows STATE (PROTO_CAP_ADOPT; else *found stays zero). */
static int
recv_found(struct sender *s, struct proto_found *found)
{
	struct proto_msg m;
	int r;

	if ((s->enc.caps & PROTO_CAP_ADOPT) == 0)
		return 0;
	if ((r = proto_recv_msg(s->x, PROTO_FOUND, s->payload, &m)) != 0)
		return r;
	*found = m.u.found;
	return 0;
}

/*
 * Reads a verify's or rollback's RESULT. With PROTO_CAP_ADOPT a verify's
 * comes after FOUND (none after an error): a site never applied whose target
 * holds files, named by the kept release that tree equals when the store is
 * at hand (status).
 */
static int
recv_result(struct sender *s, struct proto_found *found)
{
	struct proto_msg m;
	int r;

	if ((r = proto_recv_msg(s->x, 0, s->payload, &m)) != 0)
		return r;
	if (m.type == PROTO_FOUND && s->opt->op == PROTO_OP_VERIFY &&
	    (s->enc.caps & PROTO_CAP_ADOPT) != 0) {
		*found = m.u.found;
		if (!hash_is_zero(found->digest)) {
			s->report->found = 1;
			if (s->opt->store != NULL && (r = store_release_find(s->opt->store, NULL,
			    found->digest, &s->report->found_release, NULL)) != 0)
				return r;
		}
		if ((r = proto_recv_msg(s->x, PROTO_RESULT, s->payload, &m)) != 0)
			return r;
	} else if (m.type != PROTO_RESULT) {
		log_error("%s: expected a RESULT frame, got %s", s->x->peer,
		    proto_type_name(m.type));
		proto_msg_free(&m);
		return DS_ERR_PROTO;
	}
	s->report->result = m.u.result;
	return m.u.result.status;
}

/*
 * One restored file's content: DATA up to RD's size, then OBJECT_END; the
 * bytes must hash to RD's SHA-256. Written to the fd restore_begin gave.
 */
static int
recv_restored_content(struct sender *s, const struct proto_restored *rd)
{
	const struct sender_options *opt = s->opt;
	struct hash_ctx *h = hash_ctx_new();
	uint8_t digest[HASH_LEN];
	uint64_t got = 0;
	struct proto_msg m;
	int fd, r, end, ok = 0;

	if ((fd = opt->restore_begin(opt->restore_arg, rd)) == -1) {
		hash_ctx_free(h);
		return DS_ERR_SYSTEM;
	}
	for (;;) {
		if ((r = proto_recv_msg(s->x, 0, s->payload, &m)) != 0)
			goto out;
		if (m.type == PROTO_OBJECT_END)
			break;
		if (m.type != PROTO_DATA || m.data_len > rd->size - got) {
			log_error("%s: %s: %s", s->x->peer, rd->path, m.type != PROTO_DATA ?
			    "expected DATA or OBJECT_END" : "more content than RESTORED declared");
			proto_msg_free(&m);
			r = DS_ERR_PROTO;
			goto out;
		}
		hash_ctx_update(h, m.data, m.data_len);
		if (fileio_write_all(fd, m.data, m.data_len) == -1) {
			log_errno("%s: writing the restored copy", rd->path);
			proto_msg_free(&m);
			r = errno == ENOSPC ? DS_ERR_NOSPACE : DS_ERR_SYSTEM;
			goto out;
		}
		got += m.data_len;
		proto_msg_free(&m);
	}
	hash_ctx_final(h, digest);
	if (got != rd->size || memcmp(digest, rd->hash, HASH_LEN) != 0) {
		log_error("%s: %s: the content sent does not match its size and SHA-256",
		    s->x->peer, rd->path);
		r = DS_ERR_CORRUPT;
		goto out;
	}
	ok = 1;
	r = 0;
out:
	if (h != NULL)
		hash_ctx_free(h);
	if ((end = opt->restore_end(opt->restore_arg, rd, ok)) != 0 && r == 0)
		r = end;
	return r;
}

/* A restore after HELLO: RESTORE, then a RESTORED per path, then RESULT. */
static int
run_restore(struct sender *s, struct proto_found *found)
{
	const struct proto_restore *rq = s->opt->restore;
	struct proto_msg m;
	int r;

	if ((s->enc.caps & PROTO_CAP_RESTORE) == 0) {
		log_error("%s: its distsync is older than 'restore'; update it there", s->x->peer);
		return DS_ERR_UNSUPPORTED;
	}
	if ((r = proto_send_msg(s->x, PROTO_RESTORE, rq)) != 0)
		return peer_reason(s, r);
	s->report->round_trips++;
	for (size_t i = 0; i < rq->npaths; i++) {
		if ((r = proto_recv_msg(s->x, 0, s->payload, &m)) != 0)
			return r;
		if (m.type == PROTO_RESULT) {
			/* The site stopped early: its RESULT says why. */
			s->report->result = m.u.result;
			return m.u.result.status != 0 ? m.u.result.status : DS_ERR_PROTO;
		}
		if (m.type != PROTO_RESTORED) {
			log_error("%s: expected RESTORED for %s, got %s", s->x->peer, rq->paths[i],
			    proto_type_name(m.type));
			proto_msg_free(&m);
			return DS_ERR_PROTO;
		}
		if (strcmp(m.u.restored.path, rq->paths[i]) != 0) {
			char *sent = util_printable(m.u.restored.path, 0);

			log_error("%s: sent %s where %s was asked for: refused, nothing written",
			    s->x->peer, sent, rq->paths[i]);
			free(sent);
			proto_msg_free(&m);
			return DS_ERR_PROTO;
		}
		r = rq->in_place ? s->opt->restore_end(s->opt->restore_arg, &m.u.restored, 1) :
		    recv_restored_content(s, &m.u.restored);
		proto_msg_free(&m);
		if (r != 0)
			return r;
	}
	return recv_result(s, found);
}

/* The effective config of the host as YAML, for a receiver that has none (serve). */
static void
host_yaml(const struct sender_options *opt, uint8_t **out, size_t *len)
{
	char *data = NULL;
	size_t size = 0;
	FILE *fp;

	*out = NULL;
	*len = 0;
	if (opt->config == NULL || opt->host == NULL)
		return;
	if ((fp = open_memstream(&data, &size)) == NULL)
		return;
	config_print_host(opt->config, opt->host, fp);
	if (fclose(fp) != 0) {
		free(data);
		return;
	}
	*out = (uint8_t *)data;
	*len = size;
}

/*
 * A session SIGINT or SIGTERM stopped (*r, whatever the transport made of
 * it, becomes DS_ERR_INTERRUPTED): its reason says where it stopped and what
 * the site holds now.
 */
static void
interrupted(struct sender *s, int *r)
{
	struct report *rep = s->report;
	const char *sig = interrupt_signal() == SIGTERM ? "SIGTERM" : "SIGINT";

	*r = DS_ERR_INTERRUPTED;
	free(rep->reason);
	if (s->opt->op != PROTO_OP_PUSH || s->stage == 0)
		rep->reason = xasprintf("interrupted (%s) before anything was sent: the site "
		    "is as it was", sig);
	else if (s->stage == 1 && s->site_release != NULL)
		rep->reason = xasprintf("interrupted (%s) while sending objects: the site still "
		    "holds release %s, nothing applied; staged objects are kept for resume",
		    sig, s->site_release);
	else if (s->stage == 1)
		rep->reason = xasprintf("interrupted (%s) while sending objects: nothing "
		    "applied; staged objects are kept for resume", sig);
	else
		rep->reason = xasprintf("interrupted (%s) during apply: the site completes or "
		    "undoes it on its next session", sig);
}

int
sender_run(struct xport *x, const struct sender_options *opt, struct report *report)
{
	struct sender s;
	struct proto_open open;
	struct proto_found found;
	struct proto_msg m;
	uint64_t in0 = x->bytes_in, out0 = x->bytes_out;
	int r;

	report_init(report, opt->op, opt->flags);
	memset(&s, 0, sizeof(s));
	memset(&open, 0, sizeof(open));
	memset(&m, 0, sizeof(m));
	memset(&found, 0, sizeof(found));
	s.x = x;
	s.opt = opt;
	s.report = report;
	s.payload = buf_new(PROTO_FRAME_MAX);
	s.chunk = buf_new(PROTO_CHUNK_MAX);
	s.readbuf = xmalloc(READ_CHUNK);
	s.cctx = ZSTD_createCCtx();
	encoding_ctx_init(&s.enc, opt->store);
	s.enc.level = encoding_delta_level(opt->level, opt->config);

	open.op = opt->op;
	open.flags = opt->flags;
	open.lock_timeout = opt->lock_timeout;
	open.host = opt->host != NULL ? opt->host->name : (char *)"local";
	if (opt->op == PROTO_OP_ROLLBACK)
		open.release = (char *)opt->release;
	host_yaml(opt, &open.config, &open.config_len);
	/* HELLO and OPEN go together: the first answer is the peer's HELLO and STATE. */
	if ((r = proto_send_hello(x, PROTO_ROLE_INITIATOR, PROTO_CAP_ALL)) != 0 ||
	    (r = proto_send_msg(x, PROTO_OPEN, &open)) != 0) {
		r = peer_reason(&s, r);
		goto out;
	}
	report->round_trips++;
	if ((r = proto_recv_msg(x, PROTO_HELLO, s.payload, &m)) != 0)
		goto out;
	r = proto_hello_check(&m.u.hello, x->peer, PROTO_ROLE_RECEIVER, PROTO_CAP_ALL, &s.enc.caps);
	proto_msg_free(&m);
	if (r != 0)
		goto out;
	if ((s.enc.caps & PROTO_CAP_SITEINFO) == 0 && (opt->op == PROTO_OP_RELEASES ||
	    (opt->op == PROTO_OP_ROLLBACK && open.release != NULL))) {
		log_error("%s: its distsync is older than %s; update it there",
		    x->peer, opt->op == PROTO_OP_RELEASES ? "'releases HOST'" :
		    "'rollback --release'");
		r = DS_ERR_UNSUPPORTED;
		goto out;
	}
	if (opt->op == PROTO_OP_RESTORE) {
		r = run_restore(&s, &found);
		goto out;
	}
	if (opt->op != PROTO_OP_PUSH) {
		x->idle_timeout = 0;	/* a rollback restarts services: see run_push */
		r = recv_result(&s, &found);
		goto out;
	}
	if ((r = proto_recv_msg(x, PROTO_STATE, s.payload, &m)) != 0)
		goto out;
	if ((r = recv_found(&s, &found)) == 0)
		r = run_push(&s, &m.u.state, &found);
	proto_msg_free(&m);
out:
	if (r != 0 && report->result.message != NULL)
		proto_log_lines(x->peer, report->result.message);
	if (r != 0 && interrupt_signal() != 0)
		interrupted(&s, &r);
	/* A refusal before any RESULT: its ERROR's text, whole, is the reason. */
	if (r != 0 && report->reason == NULL && x->peer_error != NULL &&
	    (report->result.message == NULL || report->result.message[0] == '\0'))
		report->reason = xstrdup(x->peer_error);
	report->bytes_sent = x->bytes_out - out0;
	report->bytes_received = x->bytes_in - in0;
	free(open.config);
	report->status = r;
	proto_found_free(&found);
	free(s.site_release);
	encoding_ctx_release(&s.enc);
	ZSTD_freeCCtx(s.cctx);
	free(s.readbuf);
	buf_free(s.chunk);
	buf_free(s.payload);
	return r;
}

