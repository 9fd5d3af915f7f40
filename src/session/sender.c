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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "codec/delta.h"
#include "config/config.h"
#include "repo/dcache.h"
#include "repo/manifest.h"
#include "repo/plan.h"
#include "repo/store.h"
#include "session/sender.h"
#include "wire/proto.h"
#include "wire/xport.h"

#define READ_CHUNK	(128u * 1024)
/*
 * DATA payload per frame. The receiver stages a frame once it is whole, so a
 * cut link loses the frame in flight: 16 KiB is half a second at 256 kbit/s,
 * where PROTO_CHUNK_MAX would be 33 s, longer than such a link may stay up.
 * The 5-byte header costs 0.03 %.
 */
#define DATA_CHUNK	(16u * 1024)
/* Content whose first block zstd cannot shrink by this fraction goes raw. */
#define ZSTD_PROBE_BYTES (64u * 1024)
#define ZSTD_PROBE_RATIO 0.97

struct sender {
	struct xport		*x;
	const struct sender_options *opt;
	struct sender_report	*report;
	uint64_t		 caps;
	struct buf		*payload;	/* received frames */
	struct buf		*chunk;		/* DATA being filled */
	uint8_t			*readbuf;
	ZSTD_CCtx		*cctx;
	const struct proto_state *st;		/* the receiver's STATE (push) */
	struct proto_signature	*sigs;		/* answers to SIGNATURE_REQUEST, by path */
	size_t			 nsigs;
	/*
	 * The object in flight, for progress: content size, stream length, and
	 * what is sent of it: stream bytes flushed to the transport (cur_stream),
	 * or for a zstd stream, whose length is not known ahead, content read.
	 */
	uint64_t		 cur_size, cur_len, cur_sent;
	int			 cur_stream;
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
	int r;

	if (buf_len(s->chunk) == 0)
		return 0;
	r = proto_send(s->x, PROTO_DATA, s->chunk);
	if (s->cur_stream)
		s->cur_sent += buf_len(s->chunk);
	buf_reset(s->chunk);
	if (s->opt->progress != NULL) {
		/* Done: whole objects, and the share of the one in flight. */
		uint64_t done = s->report->object_bytes;

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

/* Picks raw for content zstd cannot shrink (zip-based .war/.omod mostly), else zstd. */
static uint8_t
choose_encoding(struct sender *s, int fd, uint64_t offset, uint64_t size)
{
	size_t probe = size - offset < ZSTD_PROBE_BYTES ? (size_t)(size - offset) : ZSTD_PROBE_BYTES;
	size_t bound, out;
	uint8_t *dst;
	ssize_t n;

	if ((s->caps & PROTO_CAP_ZSTD) == 0 || probe < 128)
		return PROTO_ENC_RAW;
	n = pread(fd, s->readbuf, probe, (off_t)offset);
	if (n <= 0)
		return PROTO_ENC_ZSTD;
	bound = ZSTD_compressBound((size_t)n);
	dst = xmalloc(bound);
	out = ZSTD_compress(dst, bound, s->readbuf, (size_t)n, 1);
	free(dst);
	if (ZSTD_isError(out) || (double)out > (double)n * ZSTD_PROBE_RATIO)
		return PROTO_ENC_RAW;
	return PROTO_ENC_ZSTD;
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
	if (enc == PROTO_ENC_ZSTD) {
		level = s->opt->level;
		if (level == 0 && s->opt->config != NULL)
			level = s->opt->config->distribution.level;
		if (level <= 0)
			level = 3;
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
	uint64_t out0 = s->x->bytes_out;
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
	if (offset > e->size || (s->caps & PROTO_CAP_RESUME) == 0)
		offset = 0;
	memcpy(ob.hash, e->hash, HASH_LEN);
	ob.size = e->size;
	ob.offset = offset;
	ob.encoding = choose_encoding(s, fd, offset, e->size);
	if ((r = proto_send_msg(s->x, PROTO_OBJECT, &ob)) != 0)
		goto out;
	if ((r = send_content(s, fd, offset, e->size, ob.encoding, what)) != 0)
		goto out;
	if ((r = proto_send(s->x, PROTO_OBJECT_END, NULL)) != 0)
		goto out;
	s->report->objects_sent++;
	s->report->object_bytes += e->size - offset;
	s->report->enc_objects[ob.encoding]++;
	s->report->enc_bytes[ob.encoding] += s->x->bytes_out - out0;
	log_debug("%s: sent %s from byte %" PRIu64 " as %s", s->x->peer, e->path, offset,
	    ob.encoding == PROTO_ENC_ZSTD ? "zstd" : "raw");
out:
	if (fd >= 0)
		close(fd);
	free(what);
	return r;
}

/* Finds the release of the store whose manifest has DIGEST; hint is tried first. */
static int
known_manifest(struct sender *s, const char *hint, const uint8_t digest[HASH_LEN],
    struct manifest **out)
{
	char **ids = NULL;
	size_t count = 0;
	uint8_t d[HASH_LEN];
	struct manifest *m = NULL;
	int r;

	*out = NULL;
	if (hint != NULL && hint[0] != '\0' && store_release_id_check(hint) == 0) {
		char *path = xasprintf("%s/releases/%s.manifest", store_dir(s->opt->store), hint);

		if (access(path, F_OK) == 0 && store_release_load(s->opt->store, hint, &m) == 0) {
			manifest_digest(m, d);
			if (memcmp(d, digest, HASH_LEN) == 0) {
				free(path);
				*out = m;
				return 0;
			}
			manifest_free(m);
			m = NULL;
		}
		free(path);
	}
	if ((r = store_release_list(s->opt->store, &ids, &count)) != 0)
		return r;
	for (size_t i = count; i-- > 0;) {
		if (store_release_load(s->opt->store, ids[i], &m) != 0)
			continue;
		manifest_digest(m, d);
		if (memcmp(d, digest, HASH_LEN) == 0) {
			*out = m;
			break;
		}
		manifest_free(m);
		m = NULL;
	}
	xfree_strv(ids);
	return 0;
}

/* Gets the receiver's current manifest: from the store, else over the wire. */
static int
receiver_manifest(struct sender *s, const struct proto_state *st, struct manifest **out)
{
	struct proto_msg m;
	uint8_t d[HASH_LEN];
	int r;

	*out = NULL;
	if (hash_is_zero(st->digest)) {
		*out = manifest_new();
		return 0;
	}
	if ((r = known_manifest(s, st->release, st->digest, out)) != 0)
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
	if (memcmp(d, st->digest, HASH_LEN) != 0) {
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
 * Encodings. Each object the receiver lacks goes as, in this order of
 * preference:
 *	rsync		against the receiver's own file when its path drifted, or
 *			when the store lacks the basis content (signature asked
 *			for in one batch, see request_signatures)
 *	zstd-patch	against the basis the plan chose, from the store's copy
 *	zstd / raw	whole; raw when zstd cannot shrink it
 * and a delta larger than the content goes raw (delta_choose). Encodings
 * are written once into the store's deltas/ (atomically, never replaced)
 * and streamed from there, so a second host at the same release costs a
 * file read, and an encoded stream is stable enough to resume at an offset.
 * A worker thread encodes ahead while the main thread sends, so CPU and
 * the link overlap.
 */

static const struct proto_signature *find_signature(const struct sender *, const char *);

static int
strcmp_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Forgets the cached deltas of PO's object that the receiver could not use. */
static void
drop_cached_deltas(struct sender *s, const struct plan_object *po)
{
	const struct proto_signature *sig;
	char *path;

	if (po->basis != NULL) {
		path = store_delta_path(s->opt->store, po->basis->hash, po->entry->hash,
		    delta_encoding_name(DELTA_ZSTD_PATCH));
		unlink(path);
		free(path);
		path = store_delta_path(s->opt->store, po->basis->hash, po->entry->hash,
		    delta_encoding_name(DELTA_ZIP_PATCH));
		unlink(path);
		free(path);
	}
	if ((sig = find_signature(s, po->entry->path)) == NULL && po->basis != NULL)
		sig = find_signature(s, po->basis->path);
	if (sig != NULL && sig->present) {
		path = store_delta_path(s->opt->store, sig->hash, po->entry->hash,
		    delta_encoding_name(DELTA_RSYNC));
		unlink(path);
		free(path);
	}
}

/* How one object goes on the wire. */
struct encoded {
	const struct plan_object *po;
	uint8_t		 enc;		/* PROTO_ENC_* */
	uint8_t		 basis[HASH_LEN]; /* delta encodings: the basis content */
	char		*cache;		/* the cached encoding to stream; NULL: stream the object */
	uint64_t	 len;		/* bytes of the cached encoding */
	int		 hit;		/* 1: the cache had it */
};

/*
 * Encoding ahead: items are claimed from ORDER (most expensive first) by the
 * worker thread from the front and by the sending thread from the back, so
 * the costly encodings start at once while cheap objects keep the link busy.
 * Everything below the lock is guarded by it.
 */
struct encoder {
	struct sender	*s;
	struct encoded	*items;
	size_t		 n;
	size_t		*order;		/* item indices, most expensive first */
	size_t		 lo, hi;	/* order[lo..hi) is not claimed yet */
	size_t		*ready;		/* items the worker finished, not sent yet */
	size_t		 nready;
	int		 stop;
	int		 started;
	pthread_t	 thread;
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
};

static unsigned long cache_seq;

/* The signature the receiver sent for PATH (present or not), or NULL. */
static const struct proto_signature *
find_signature(const struct sender *s, const char *path)
{
	size_t lo = 0, hi = s->nsigs;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(s->sigs[mid].path, path);

		if (c == 0)
			return &s->sigs[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int
is_drifted(const struct proto_state *st, const char *path)
{
	size_t lo = 0, hi = st->ndrift;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(st->drift[mid], path);

		if (c == 0)
			return 1;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

static int
delta_level(const struct sender *s)
{
	int level = s->opt->level;

	if (level == 0 && s->opt->config != NULL)
		level = s->opt->config->distribution.level;
	if (level < DELTA_LEVEL_MIN || level > DELTA_LEVEL_MAX)
		level = DELTA_LEVEL_DEFAULT;
	return level;
}

/* Does zstd shrink the first block of fd? Zip-based .war/.omod mostly not. */
static int
compressible(int fd, uint64_t size)
{
	size_t probe = size < ZSTD_PROBE_BYTES ? (size_t)size : ZSTD_PROBE_BYTES;
	uint8_t *in, *dst;
	size_t bound, out;
	ssize_t n;
	int yes = 0;

	if (probe < 128)
		return 0;
	in = xmalloc(probe);
	bound = ZSTD_compressBound(probe);
	dst = xmalloc(bound);
	n = pread(fd, in, probe, 0);
	if (n > 0) {
		out = ZSTD_compress(dst, bound, in, (size_t)n, 1);
		yes = !ZSTD_isError(out) && (double)out <= (double)n * ZSTD_PROBE_RATIO;
	}
	free(in);
	free(dst);
	return yes;
}

struct sig_source {
	const struct sender		*s;
	const struct proto_signature	*sig;
};

/* A temp file holding a signature from the receiver, for delta_rsync_encode; -1 on error. */
static int
signature_fd(const struct sender *s, const struct proto_signature *sig)
{
	char *tmp = xasprintf("%s/tmp/signature.%ld.%lu", store_dir(s->opt->store),
	    (long)getpid(), __atomic_fetch_add(&cache_seq, 1, __ATOMIC_RELAXED));
	int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	size_t off = 0;
	ssize_t n;

	if (fd != -1) {
		unlink(tmp);
		while (off < sig->sig_len) {
			n = write(fd, sig->sig + off, sig->sig_len - off);
			if (n <= 0 && errno != EINTR) {
				close(fd);
				fd = -1;
				break;
			}
			off += n > 0 ? (size_t)n : 0;
		}
	}
	if (fd != -1 && lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		fd = -1;
	}
	if (fd == -1)
		log_errno("%s", tmp);
	free(tmp);
	return fd;
}

/* dcache_req.sig_open for an rsync delta: the signature the receiver sent. */
static int
open_signature(void *arg)
{
	const struct sig_source *src = arg;

	return signature_fd(src->s, src->sig);
}

/*
 * Makes e->cache exist: the encoding of e's object by e->enc against its
 * basis object (patches) or sig (rsync), through the store's delta cache
 * (dcache.c: made once however many hosts need it at once). Returns 0,
 * DS_ERR_UNSUPPORTED (no zippatch for this pair) or DS_ERR_*, logged.
 */
static int
cache_fill(struct sender *s, struct encoded *e, const struct proto_signature *sig, int level)
{
	struct sig_source src = { s, sig };
	struct dcache_req req;

	memset(&req, 0, sizeof(req));
	req.store = s->opt->store;
	req.enc = e->enc;
	req.basis = e->enc == PROTO_ENC_ZSTD_PATCH || e->enc == PROTO_ENC_ZIP_PATCH ?
	    e->basis : NULL;
	req.target = e->po->entry->hash;
	req.what = e->po->entry->path;
	req.level = level;
	req.sig_open = open_signature;
	req.sig_arg = &src;
	return dcache_fill(e->cache, &req, &e->len, &e->hit);
}

/* Decides e's encoding and basis, encoding into the cache when it is not there yet. */
static void
encode_one(struct sender *s, struct encoded *e, int whole)
{
	const struct manifest_entry *ent = e->po->entry, *basis = e->po->basis;
	const struct proto_signature *sig = NULL;
	int level = delta_level(s), fd;

	e->enc = PROTO_ENC_RAW;
	e->cache = NULL;
	if (ent->type != MANIFEST_FILE || ent->size == 0)
		return;		/* streamed: symlink targets and empty files are tiny */
	if (!whole && (s->caps & PROTO_CAP_DELTA) != 0) {
		if (is_drifted(s->st, ent->path))
			sig = find_signature(s, ent->path);
		if ((sig == NULL || !sig->present) && basis != NULL) {
			if (store_has(s->opt->store, basis->hash)) {
				e->enc = PROTO_ENC_ZSTD_PATCH;
				memcpy(e->basis, basis->hash, HASH_LEN);
			} else
				sig = find_signature(s, basis->path);
		}
		if (e->enc == PROTO_ENC_RAW && sig != NULL && sig->present) {
			e->enc = PROTO_ENC_RSYNC;
			memcpy(e->basis, sig->hash, HASH_LEN);
		}
	}
	if (e->enc == PROTO_ENC_RAW) {
		if ((s->caps & PROTO_CAP_ZSTD) == 0)
			return;
		if ((fd = store_object_open(s->opt->store, ent->hash)) == -1)
			return;		/* send_object reports it */
		if (compressible(fd, ent->size))
			e->enc = PROTO_ENC_ZSTD;
		close(fd);
		if (e->enc == PROTO_ENC_RAW)
			return;
	}
	if (e->enc == PROTO_ENC_ZSTD_PATCH && (s->caps & PROTO_CAP_ZIPPATCH) != 0 &&
	    (s->caps & PROTO_CAP_ZIPCOPY) != 0) {
		/*
		 * Zips (by content) as zippatch; delta_encode refuses anything
		 * else. Its streams copy entries (DZP2): an older receiver that
		 * decodes only DZP1 gets a plain zstd patch.
		 */
		e->enc = PROTO_ENC_ZIP_PATCH;
		e->cache = store_delta_path(s->opt->store, e->basis, ent->hash,
		    delta_encoding_name(e->enc));
		if (cache_fill(s, e, sig, level) == 0 &&
		    delta_choose(e->enc, e->len, ent->size) != DELTA_RAW)
			return;
		free(e->cache);
		e->enc = PROTO_ENC_ZSTD_PATCH;
	}
	e->cache = store_delta_path(s->opt->store, e->enc == PROTO_ENC_ZSTD ? NULL : e->basis,
	    ent->hash, delta_encoding_name(e->enc));
	if (cache_fill(s, e, sig, level) != 0 ||
	    delta_choose(e->enc, e->len, ent->size) == DELTA_RAW) {
		/* Not worth it (or not possible): the bytes as they are. */
		free(e->cache);
		e->cache = NULL;
		e->enc = PROTO_ENC_RAW;
	}
}

static void *
encoder_main(void *arg)
{
	struct encoder *w = arg;
	size_t i;

	for (;;) {
		pthread_mutex_lock(&w->lock);
		if (w->stop || w->lo == w->hi) {
			pthread_mutex_unlock(&w->lock);
			break;
		}
		i = w->order[w->lo++];
		pthread_mutex_unlock(&w->lock);
		encode_one(w->s, &w->items[i], 0);
		pthread_mutex_lock(&w->lock);
		w->ready[w->nready++] = i;
		pthread_cond_broadcast(&w->cond);
		pthread_mutex_unlock(&w->lock);
	}
	return NULL;
}

/* Rough encoding cost of an item: the bytes its encoder reads. */
static uint64_t
encode_cost(const struct encoded *e)
{
	const struct plan_object *po = e->po;

	if (po->entry->type != MANIFEST_FILE)
		return 0;
	return po->entry->size + (po->basis != NULL ? po->basis->size : 0);
}

static struct encoded *cost_items;	/* for cost_cmp; set while sorting */

static int
cost_cmp(const void *a, const void *b)
{
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	uint64_t ci = encode_cost(&cost_items[i]), cj = encode_cost(&cost_items[j]);

	if (ci != cj)
		return ci > cj ? -1 : 1;
	return i < j ? -1 : i > j;
}

/* Orders w's items most expensive first. Before the worker starts. */
static void
encoder_order(struct encoder *w)
{
	w->order = xcalloc(w->n + 1, sizeof(*w->order));
	w->ready = xcalloc(w->n + 1, sizeof(*w->ready));
	for (size_t i = 0; i < w->n; i++)
		w->order[i] = i;
	cost_items = w->items;
	qsort(w->order, w->n, sizeof(*w->order), cost_cmp);
	cost_items = NULL;
	w->lo = 0;
	w->hi = w->n;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
}

/*
 * The next item to send, of those not taken yet (the caller takes each item
 * once, n times in all): one the worker finished, else the cheapest not
 * claimed yet, encoded here so the link does not wait for the worker's
 * expensive one, else the worker's next to finish.
 */
static size_t
encoder_next(struct encoder *w)
{
	size_t i;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		if (w->nready > 0) {
			/* Oldest first; n is at most the plan's objects. */
			i = w->ready[0];
			w->nready--;
			memmove(w->ready, w->ready + 1, w->nready * sizeof(*w->ready));
			break;
		}
		if (w->lo < w->hi) {
			i = w->order[--w->hi];
			pthread_mutex_unlock(&w->lock);
			encode_one(w->s, &w->items[i], 0);
			return i;
		}
		pthread_cond_wait(&w->cond, &w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return i;
}

static void
encoder_stop(struct encoder *w)
{
	if (w->started) {
		pthread_mutex_lock(&w->lock);
		w->stop = 1;
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
		w->started = 0;
	}
	if (w->order != NULL) {
		pthread_mutex_destroy(&w->lock);
		pthread_cond_destroy(&w->cond);
	}
	for (size_t i = 0; i < w->n; i++)
		free(w->items[i].cache);
	free(w->items);
	free(w->order);
	free(w->ready);
	w->items = NULL;
	w->order = w->ready = NULL;
	w->n = 0;
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
	size_t alloc = 0, i, j;
	int r = 0;

	memset(&req, 0, sizeof(req));
	if ((s->caps & PROTO_CAP_DELTA) == 0)
		return 0;
	for (i = 0; i < plan->nobjects; i++) {
		const struct plan_object *po = &plan->objects[i];
		const char *want = NULL;

		if (po->entry->type != MANIFEST_FILE || po->entry->size == 0)
			continue;
		if (is_drifted(s->st, po->entry->path))
			want = po->entry->path;
		else if (po->basis != NULL && !store_has(s->opt->store, po->basis->hash))
			want = po->basis->path;
		if (want == NULL || req.npaths >= PROTO_LIST_MAX)
			continue;
		req.paths = xgrow(req.paths, &alloc, req.npaths + 1, sizeof(char *));
		req.paths[req.npaths++] = (char *)want;
	}
	if (req.npaths == 0)
		goto out;
	qsort(req.paths, req.npaths, sizeof(char *), strcmp_ptr);
	for (i = j = 0; i < req.npaths; i++)
		if (j == 0 || strcmp(req.paths[j - 1], req.paths[i]) != 0)
			req.paths[j++] = req.paths[i];
	req.npaths = j;
	if ((r = proto_send_msg(s->x, PROTO_SIGNATURE_REQUEST, &req)) != 0) {
		r = peer_reason(s, r);
		goto out;
	}
	s->report->round_trips++;
	s->sigs = xcalloc(req.npaths, sizeof(*s->sigs));
	for (;;) {
		if ((r = proto_recv_msg(s->x, 0, s->payload, &m)) != 0)
			goto out;
		if (m.type == PROTO_SIGNATURE_END && s->nsigs == req.npaths)
			break;
		if (m.type != PROTO_SIGNATURE || s->nsigs == req.npaths ||
		    strcmp(m.u.signature.path, req.paths[s->nsigs]) != 0) {
			log_error("%s: unexpected %s in answer to SIGNATURE_REQUEST", s->x->peer,
			    proto_type_name(m.type));
			proto_msg_free(&m);
			r = DS_ERR_PROTO;
			goto out;
		}
		s->sigs[s->nsigs++] = m.u.signature;
		s->report->signatures += m.u.signature.present;
		memset(&m, 0, sizeof(m));
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
	char *what = xasprintf("%s (%s)", ent->path, e->cache);
	int fd, r;

	memset(&ob, 0, sizeof(ob));
	if ((fd = open(e->cache, O_RDONLY | O_CLOEXEC)) == -1) {
		log_errno("%s", e->cache);
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
	r = proto_send_msg(s->x, PROTO_OBJECT, &ob);
	if (r == 0)
		r = send_file_bytes(s, fd, offset, e->len - offset, what);
	s->cur_len = 0;
	if (r != 0 || (r = proto_send(s->x, PROTO_OBJECT_END, NULL)) != 0)
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
static int
send_objects(struct sender *s, const struct plan *plan, const struct proto_state *st)
{
	struct encoder w;
	uint64_t *offsets, *enc_offsets;
	uint8_t *enc_kinds;
	size_t n = 0;
	int r = 0;

	memset(&w, 0, sizeof(w));
	w.s = s;
	w.items = xcalloc(plan->nobjects + 1, sizeof(*w.items));
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
		w.items[n].po = po;
		offsets[n] = offset;
		staged_encoded(st, po->entry->hash, &enc_kinds[n], &enc_offsets[n]);
		n++;
	}
	w.n = n;
	if (s->caps & PROTO_CAP_PLAN) {
		struct proto_plan pp = { n, 0 };

		for (size_t i = 0; i < n; i++)
			pp.bytes += w.items[i].po->entry->size - offsets[i];
		if ((r = proto_send_msg(s->x, PROTO_PLAN, &pp)) != 0)
			goto out;
	}
	if ((r = request_signatures(s, plan)) != 0)
		goto out;
	encoder_order(&w);
	if (pthread_create(&w.thread, NULL, encoder_main, &w) == 0)
		w.started = 1;	/* else every object is encoded here */
	/* In any order: the receiver stages objects by hash and needs all only at COMMIT. */
	for (size_t k = 0; k < n; k++) {
		size_t i = encoder_next(&w);

		/* A delta stream cut mid-way continues at its byte when it is the same stream. */
		if (w.items[i].cache != NULL && enc_offsets[i] > 0 &&
		    w.items[i].enc == enc_kinds[i] && enc_offsets[i] <= w.items[i].len)
			r = send_encoded(s, &w.items[i], enc_offsets[i]);
		else if (w.items[i].cache != NULL && offsets[i] == 0)
			r = send_encoded(s, &w.items[i], 0);
		else
			r = send_object(s, w.items[i].po, offsets[i]);
		if (r != 0) {
			r = peer_reason(s, r);
			goto out;
		}
	}
out:
	encoder_stop(&w);
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
			log_warn("%s: %s: the delta did not reconstruct the file on the host; sent "
			    "whole instead", s->x->peer, po->entry->path);
			drop_cached_deltas(s, po);
			s->report->fallbacks++;
			if ((r = send_object(s, po, 0)) != 0)
				r = peer_reason(s, r);
		}
		proto_msg_free(m);
		if (r != 0)
			return r;
	}
}

static int
run_push(struct sender *s, const struct proto_state *st)
{
	const struct sender_options *opt = s->opt;
	struct manifest *target = NULL, *current = NULL, *usable = NULL;
	struct plan *plan = NULL;
	struct proto_commit commit;
	struct proto_msg m;
	char *release = NULL;
	size_t len;
	int r;

	memset(&commit, 0, sizeof(commit));
	if (opt->release != NULL)
		release = xstrdup(opt->release);
	else if ((r = store_release_latest(opt->store, &release)) != 0) {
		log_error("%s: no release in the store: make one with 'distsync release'",
		    store_dir(opt->store));
		goto out;
	}
	s->report->release = xstrdup(release);
	if ((r = store_release_load(opt->store, release, &target)) != 0)
		goto out;
	if ((r = receiver_manifest(s, st, &current)) != 0)
		goto out;
	usable = without_drift(current, st->drift, st->ndrift);
	plan = plan_make(usable, target);
	s->report->planned_bytes = plan->object_bytes;
	if (opt->progress != NULL)
		opt->progress(opt->progress_arg, s->x->bytes_out, 0, plan->object_bytes);
	if (plan->object_bytes > st->free_bytes) {
		char need[32], have[32];

		util_format_bytes(plan->object_bytes, need, sizeof(need));
		util_format_bytes(st->free_bytes, have, sizeof(have));
		log_error("%s: the release needs %s of new content but only %s are free; "
		    "nothing sent", s->x->peer, need, have);
		r = DS_ERR_NOSPACE;
		goto out;
	}
	/* A refusal for drift is the receiver's to make; it needs no objects for it. */
	if ((opt->flags & PROTO_FLAG_DRY_RUN) == 0 &&
	    ((opt->flags & PROTO_FLAG_FAIL_ON_DRIFT) == 0 || st->ndrift == 0)) {
		s->st = st;
		if ((r = send_objects(s, plan, st)) != 0)
			goto out;
		if (opt->progress != NULL)	/* everything is sent (and encoded) */
			opt->progress(opt->progress_arg, s->x->bytes_out,
			    s->report->planned_bytes, s->report->planned_bytes);
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
	commit.flags = opt->flags;
	if ((r = commit_result(s, plan, &commit, &m)) != 0)
		goto out;
	s->report->result = m.u.result;
	r = m.u.result.status;
out:
	free(commit.manifest);
	free(release);
	plan_free(plan);
	manifest_free(target);
	manifest_free(current);
	manifest_free(usable);
	return r;
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

int
sender_run(struct xport *x, const struct sender_options *opt, struct sender_report *report)
{
	struct sender s;
	struct proto_open open;
	struct proto_msg m;
	uint64_t in0 = x->bytes_in, out0 = x->bytes_out;
	int r;

	memset(report, 0, sizeof(*report));
	memset(&s, 0, sizeof(s));
	memset(&open, 0, sizeof(open));
	memset(&m, 0, sizeof(m));
	s.x = x;
	s.opt = opt;
	s.report = report;
	s.payload = buf_new(PROTO_FRAME_MAX);
	s.chunk = buf_new(PROTO_CHUNK_MAX);
	s.readbuf = xmalloc(READ_CHUNK > ZSTD_PROBE_BYTES ? READ_CHUNK : ZSTD_PROBE_BYTES);
	s.cctx = ZSTD_createCCtx();

	open.op = opt->op;
	open.flags = opt->flags;
	open.lock_timeout = opt->lock_timeout;
	open.host = opt->host != NULL ? opt->host->name : (char *)"local";
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
	r = proto_hello_check(&m.u.hello, x->peer, PROTO_ROLE_RECEIVER, PROTO_CAP_ALL, &s.caps);
	proto_msg_free(&m);
	if (r != 0)
		goto out;
	if (opt->op != PROTO_OP_PUSH) {
		x->idle_timeout = 0;	/* a rollback restarts services: see run_push */
		if ((r = proto_recv_msg(x, PROTO_RESULT, s.payload, &m)) != 0)
			goto out;
		report->result = m.u.result;
		r = m.u.result.status;
		goto out;
	}
	if ((r = proto_recv_msg(x, PROTO_STATE, s.payload, &m)) != 0)
		goto out;
	r = run_push(&s, &m.u.state);
	proto_msg_free(&m);
out:
	if (r != 0 && report->result.message != NULL)
		proto_log_lines(x->peer, report->result.message);
	report->bytes_sent = x->bytes_out - out0;
	report->bytes_received = x->bytes_in - in0;
	free(open.config);
	for (size_t i = 0; i < s.nsigs; i++)
		proto_signature_free(&s.sigs[i]);
	free(s.sigs);
	ZSTD_freeCCtx(s.cctx);
	free(s.readbuf);
	buf_free(s.chunk);
	buf_free(s.payload);
	return r;
}

void
sender_report_release(struct sender_report *report)
{
	proto_result_free(&report->result);
	free(report->release);
	memset(report, 0, sizeof(*report));
}

static const char *
op_name(uint8_t op)
{
	switch (op) {
	case PROTO_OP_PUSH:	return "push";
	case PROTO_OP_ROLLBACK:	return "rollback";
	case PROTO_OP_VERIFY:	return "verify";
	}
	return "?";
}

void
sender_report_print(const struct sender_report *rep, const char *host, uint8_t op, int status,
    FILE *fp)
{
	const struct proto_result *res = &rep->result;
	const char *from = res->from != NULL && res->from[0] != '\0' ? res->from : "(none)";
	const char *to = res->to != NULL && res->to[0] != '\0' ? res->to :
	    (rep->release ? rep->release : "?");
	int dry = (res->flags & PROTO_FLAG_DRY_RUN) != 0;
	char sent[32], recv[32];

	if (op == PROTO_OP_VERIFY) {
		if (status != 0 && status != DS_ERR_CORRUPT) {
			fprintf(fp, "%s: verify failed: %s\n", host, ds_strerror(status));
			return;
		}
		fprintf(fp, "%s: release %s: %s\n", host, from,
		    res->changed == 0 ? "no drift" : "drifted");
		for (size_t i = 0; i < res->ndrift; i++)
			fprintf(fp, "  drift   %s\n", res->drift[i]);
		if (res->changed > res->ndrift)
			fprintf(fp, "  ... and %" PRIu64 " more\n", res->changed - res->ndrift);
		return;
	}
	if (status != 0 && res->to == NULL) {
		fprintf(fp, "%s: %s failed: %s\n", host, op_name(op), ds_strerror(status));
		return;
	}
	util_format_bytes(rep->bytes_sent, sent, sizeof(sent));
	util_format_bytes(rep->object_bytes, recv, sizeof(recv));
	fprintf(fp, "%s: %s%s %s -> %s: %" PRIu64 " added, %" PRIu64 " updated, %" PRIu64
	    " deleted%s\n", host, dry ? "dry run, " : "", op_name(op), from, to, res->added,
	    res->updated, res->deleted, status == 0 ? "" : " (not applied)");
	if (op == PROTO_OP_PUSH)
		fprintf(fp, "  %" PRIu64 " object%s sent (%s of content, %s on the wire), "
		    "%u round trip%s\n", rep->objects_sent, rep->objects_sent == 1 ? "" : "s",
		    recv, sent, rep->round_trips, rep->round_trips == 1 ? "" : "s");
	if (op == PROTO_OP_PUSH && rep->objects_sent > 0) {
		fprintf(fp, "  encodings:");
		for (int enc = 0; enc <= PROTO_ENC_MAX; enc++) {
			char b[32];

			if (rep->enc_objects[enc] == 0)
				continue;
			util_format_bytes(rep->enc_bytes[enc], b, sizeof(b));
			fprintf(fp, " %s %" PRIu64 " (%s)", delta_encoding_name(enc),
			    rep->enc_objects[enc], b);
		}
		if (rep->signatures > 0)
			fprintf(fp, "; %" PRIu64 " signature%s", rep->signatures,
			    rep->signatures == 1 ? "" : "s");
		if (rep->cache_hits > 0)
			fprintf(fp, "; %" PRIu64 " from the delta cache", rep->cache_hits);
		fprintf(fp, "\n");
		if (rep->fallbacks > 0)
			fprintf(fp, "  %" PRIu64 " delta%s did not reconstruct on the host: sent whole "
			    "instead\n", rep->fallbacks, rep->fallbacks == 1 ? "" : "s");
	}
	for (size_t i = 0; i < res->ndrift; i++)
		fprintf(fp, "  drift   %s (changed on the host since the last apply%s)\n",
		    res->drift[i], status == DS_ERR_DRIFT ? "" : dry ? "; would be overwritten" :
		    "; overwritten");
	if (res->nservices > 0) {
		fprintf(fp, "  restarted:");
		for (size_t i = 0; i < res->nservices; i++)
			fprintf(fp, " %s", res->services[i]);
		fprintf(fp, " (health: %s)\n", res->health ? res->health : "?");
	} else if (res->health != NULL && strcmp(res->health, "none") != 0)
		fprintf(fp, "  services: %s\n", res->health);
	else if (!dry && status == 0)
		fprintf(fp, "  no service restarted\n");
	if (status != 0)
		fprintf(fp, "  failed: %s\n", res->message && res->message[0] ? res->message :
		    ds_strerror(status));
}

void
sender_report_json(const struct sender_report *rep, const char *host, uint8_t op, int status,
    FILE *fp)
{
	const struct proto_result *res = &rep->result;

	fprintf(fp, "{\"host\":");
	util_json_string(fp, host);
	fprintf(fp, ",\"operation\":\"%s\",\"ok\":%s,\"error\":", op_name(op),
	    status == 0 ? "true" : "false");
	if (status == 0)
		fprintf(fp, "null");
	else
		util_json_string(fp, res->message && res->message[0] ? res->message :
		    ds_strerror(status));
	fprintf(fp, ",\"dry_run\":%s,\"from\":", (res->flags & PROTO_FLAG_DRY_RUN) ? "true" : "false");
	if (res->from != NULL && res->from[0] != '\0')
		util_json_string(fp, res->from);
	else
		fprintf(fp, "null");
	fprintf(fp, ",\"to\":");
	if (res->to != NULL && res->to[0] != '\0')
		util_json_string(fp, res->to);
	else if (rep->release != NULL)
		util_json_string(fp, rep->release);
	else
		fprintf(fp, "null");
	fprintf(fp, ",\"added\":%" PRIu64 ",\"updated\":%" PRIu64 ",\"deleted\":%" PRIu64
	    ",\"changed\":%" PRIu64 ",\"objects_sent\":%" PRIu64 ",\"object_bytes\":%" PRIu64
	    ",\"bytes_sent\":%" PRIu64 ",\"bytes_received\":%" PRIu64 ",\"round_trips\":%u"
	    ",\"encodings\":{", res->added, res->updated, res->deleted, res->changed,
	    rep->objects_sent, rep->object_bytes, rep->bytes_sent, rep->bytes_received,
	    rep->round_trips);
	for (int enc = 0; enc <= PROTO_ENC_MAX; enc++)
		fprintf(fp, "%s\"%s\":{\"objects\":%" PRIu64 ",\"bytes\":%" PRIu64 "}",
		    enc ? "," : "", delta_encoding_name(enc), rep->enc_objects[enc],
		    rep->enc_bytes[enc]);
	fprintf(fp, "},\"signatures\":%" PRIu64 ",\"delta_fallbacks\":%" PRIu64
	    ",\"cache_hits\":%" PRIu64 ",\"services\":[", rep->signatures, rep->fallbacks,
	    rep->cache_hits);
	for (size_t i = 0; i < res->nservices; i++) {
		fprintf(fp, "%s", i ? "," : "");
		util_json_string(fp, res->services[i]);
	}
	fprintf(fp, "],\"health\":");
	util_json_string(fp, res->health ? res->health : "none");
	fprintf(fp, ",\"drift\":[");
	for (size_t i = 0; i < res->ndrift; i++) {
		fprintf(fp, "%s", i ? "," : "");
		util_json_string(fp, res->drift[i]);
	}
	fprintf(fp, "]}");
}
