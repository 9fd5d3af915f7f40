/*
 * The encoding policy of a push (encoding.h): which encoding and basis each
 * object gets, and the store's cached encodings behind them.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "codec/delta.h"
#include "config/config.h"
#include "repo/dcache.h"
#include "repo/manifest.h"
#include "repo/plan.h"
#include "repo/store.h"
#include "session/encoding.h"
#include "wire/proto.h"

/* Content whose first block zstd cannot shrink by this fraction goes raw. */
#define ZSTD_PROBE_BYTES (64u * 1024)
#define ZSTD_PROBE_RATIO 0.97


int
encoding_zstd_level(int level, const struct config *config)
{
	if (level == 0 && config != NULL)
		level = config->distribution.level;
	return level <= 0 ? 3 : level;
}

int
encoding_delta_level(int level, const struct config *config)
{
	if (level == 0 && config != NULL)
		level = config->distribution.level;
	if (level < DELTA_LEVEL_MIN || level > DELTA_LEVEL_MAX)
		level = DELTA_LEVEL_DEFAULT;
	return level;
}

/*
 * Does zstd shrink the block of fd at OFFSET (of SIZE) by ZSTD_PROBE_RATIO?
 * 1 yes, 0 no or too small to tell, -1 when it cannot be read.
 */
static int
probe_shrinks(int fd, uint64_t offset, uint64_t size)
{
	size_t probe = size - offset < ZSTD_PROBE_BYTES ? (size_t)(size - offset) :
	    ZSTD_PROBE_BYTES;
	size_t bound, out;
	uint8_t *in, *dst;
	ssize_t n;
	int yes;

	if (probe < 128)
		return 0;
	in = xmalloc(probe);
	n = pread(fd, in, probe, (off_t)offset);
	if (n <= 0) {
		free(in);
		return -1;
	}
	bound = ZSTD_compressBound((size_t)n);
	dst = xmalloc(bound);
	out = ZSTD_compress(dst, bound, in, (size_t)n, 1);
	yes = !ZSTD_isError(out) && (double)out <= (double)n * ZSTD_PROBE_RATIO;
	free(in);
	free(dst);
	return yes;
}

uint8_t
encoding_for_stream(uint64_t caps, int fd, uint64_t offset, uint64_t size)
{
	if ((caps & PROTO_CAP_ZSTD) == 0)
		return PROTO_ENC_RAW;
	/* Unreadable: zstd, and the stream itself reports the read error. */
	return probe_shrinks(fd, offset, size) != 0 ? PROTO_ENC_ZSTD : PROTO_ENC_RAW;
}

/* The signature the receiver sent for PATH (present or not), or NULL. */
static const struct proto_signature *
find_signature(const struct encoding_ctx *ctx, const char *path)
{
	size_t lo = 0, hi = ctx->nsigs;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(ctx->sigs[mid].path, path);

		if (c == 0)
			return &ctx->sigs[mid];
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

struct sig_source {
	const struct encoding_ctx	*ctx;
	const struct proto_signature	*sig;
};

void
encoding_ctx_init(struct encoding_ctx *ctx, struct store *store)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->store = store;
	ctx->sig_spool = -1;
}

void
encoding_ctx_release(struct encoding_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nsigs; i++)
		proto_signature_free(&ctx->sigs[i]);
	free(ctx->sigs);
	free(ctx->sig_offsets);
	if (ctx->sig_spool != -1)
		close(ctx->sig_spool);
	ctx->sigs = NULL;
	ctx->sig_offsets = NULL;
	ctx->nsigs = ctx->asigs = 0;
	ctx->sig_spool = -1;
}

/* An unnamed file in the store's tmp/ (O_TMPFILE): gone with its fd. -1 (logged) on error. */
static int
scratch_open(const struct encoding_ctx *ctx)
{
	char *dir = xasprintf("%s/tmp", store_dir(ctx->store));
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd == -1)
		log_errno("%s: no scratch file for the receiver's signatures", dir);
	free(dir);
	return fd;
}

/* Appends SIG's blob to the spool at ctx->spooled; 0 or -1 (logged). */
static int
spool_put(struct encoding_ctx *ctx, const struct proto_signature *sig)
{
	uint64_t off = 0;
	ssize_t n;

	if (ctx->sig_spool == -1 && (ctx->sig_spool = scratch_open(ctx)) == -1)
		return -1;
	while (off < sig->sig_len) {
		n = pwrite(ctx->sig_spool, sig->sig + off, sig->sig_len - off,
		    (off_t)(ctx->spooled + off));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_errno("%s/tmp: spooling a signature", store_dir(ctx->store));
			return -1;
		}
		off += (uint64_t)n;
	}
	return 0;
}

void
encoding_signature_add(struct encoding_ctx *ctx, struct proto_signature *sig)
{
	size_t i = ctx->nsigs;

	ctx->sigs = xgrow(ctx->sigs, &ctx->asigs, i + 1, sizeof(*ctx->sigs));
	ctx->sig_offsets = xreallocarray(ctx->sig_offsets, ctx->asigs, sizeof(*ctx->sig_offsets));
	if (sig->present && ctx->spooled + sig->sig_len > ENCODING_SIGNATURES_MAX) {
		if (ctx->spooled <= ENCODING_SIGNATURES_MAX)
			log_warn("the receiver's signatures pass %" PRIu64 " MiB: the rest are not "
			    "used (those files go without rsync)", ENCODING_SIGNATURES_MAX >> 20);
		ctx->spooled = ENCODING_SIGNATURES_MAX + 1;
		sig->present = 0;
	}
	if (sig->present && spool_put(ctx, sig) != 0)
		sig->present = 0;
	ctx->sig_offsets[i] = ctx->spooled;
	if (sig->present)
		ctx->spooled += sig->sig_len;
	else
		sig->sig_len = 0;
	free(sig->sig);
	sig->sig = NULL;
	ctx->sigs[i] = *sig;
	ctx->nsigs++;
	memset(sig, 0, sizeof(*sig));
}

/*
 * A file holding SIG alone, for delta_rsync_encode (which reads to its
 * end): copied from the spool in small pieces. -1 (logged) on error.
 */
static int
signature_fd(const struct encoding_ctx *ctx, const struct proto_signature *sig)
{
	uint64_t from = ctx->sig_offsets[sig - ctx->sigs], done = 0;
	char buf[64 * 1024];
	ssize_t n;
	int fd;

	if ((fd = scratch_open(ctx)) == -1)
		return -1;
	while (done < sig->sig_len) {
		size_t want = sig->sig_len - done < sizeof(buf) ? (size_t)(sig->sig_len - done) :
		    sizeof(buf);

		n = pread(ctx->sig_spool, buf, want, (off_t)(from + done));
		if (n <= 0 || fileio_write_all(fd, buf, (size_t)n) != 0) {
			log_errno("%s/tmp: reading a spooled signature", store_dir(ctx->store));
			close(fd);
			return -1;
		}
		done += (uint64_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) != 0) {
		log_errno("%s/tmp: seek", store_dir(ctx->store));
		close(fd);
		return -1;
	}
	return fd;
}

/* dcache_req.sig_open for an rsync delta: the signature the receiver sent. */
static int
open_signature(void *arg)
{
	const struct sig_source *src = arg;

	return signature_fd(src->ctx, src->sig);
}

/*
 * Makes the encoding of e's object by e->enc against its basis object
 * (patches) or sig (rsync): e->cache through the store's delta cache, or
 * e->fd, an unnamed file, for rsync (never cached: its basis is the site's
 * word) and when the cache cannot be written. Returns 0, DS_ERR_UNSUPPORTED
 * (no zippatch for this pair) or DS_ERR_*, logged.
 */
static int
cache_fill(const struct encoding_ctx *ctx, struct encoded *e, const struct proto_signature *sig)
{
	struct sig_source src = { ctx, sig };
	struct dcache_req req;

	memset(&req, 0, sizeof(req));
	req.store = ctx->store;
	req.enc = e->enc;
	req.basis = e->enc == PROTO_ENC_ZSTD_PATCH || e->enc == PROTO_ENC_ZIP_PATCH ?
	    e->basis : NULL;
	req.target = e->po->entry->hash;
	req.what = e->po->entry->path;
	req.level = ctx->level;
	req.sig_open = open_signature;
	req.sig_arg = &src;
	if (e->enc == PROTO_ENC_RSYNC)
		return dcache_encode_anon(&req, &e->fd, &e->len);
	e->cache = store_delta_path(ctx->store, req.basis, e->po->entry->hash,
	    delta_encoding_name(e->enc));
	return dcache_fill(e->cache, &req, &e->len, &e->hit, &e->fd);
}

void
encoding_release(struct encoded *e)
{
	free(e->cache);
	e->cache = NULL;
	if (e->fd != -1)
		close(e->fd);
	e->fd = -1;
}

void
encoding_decide(const struct encoding_ctx *ctx, struct encoded *e)
{
	const struct manifest_entry *ent = e->po->entry, *basis = e->po->basis;
	const struct proto_signature *sig = NULL;
	int fd;

	e->enc = PROTO_ENC_RAW;
	e->cache = NULL;
	e->fd = -1;
	if (ent->type != MANIFEST_FILE || ent->size == 0)
		return;		/* streamed: symlink targets and empty files are tiny */
	if ((ctx->caps & PROTO_CAP_DELTA) != 0) {
		if (is_drifted(ctx->st, ent->path))
			sig = find_signature(ctx, ent->path);
		if ((sig == NULL || !sig->present) && basis != NULL) {
			if (store_has(ctx->store, basis->hash)) {
				e->enc = PROTO_ENC_ZSTD_PATCH;
				memcpy(e->basis, basis->hash, HASH_LEN);
			} else
				sig = find_signature(ctx, basis->path);
		}
		if (e->enc == PROTO_ENC_RAW && sig != NULL && sig->present) {
			e->enc = PROTO_ENC_RSYNC;
			memcpy(e->basis, sig->hash, HASH_LEN);
		}
	}
	if (e->enc == PROTO_ENC_RAW) {
		if ((ctx->caps & PROTO_CAP_ZSTD) == 0)
			return;
		if ((fd = store_object_open(ctx->store, ent->hash)) == -1)
			return;		/* the sender reports it when it streams the object */
		if (probe_shrinks(fd, 0, ent->size) == 1)
			e->enc = PROTO_ENC_ZSTD;
		close(fd);
		if (e->enc == PROTO_ENC_RAW)
			return;
	}
	if (e->enc == PROTO_ENC_ZSTD_PATCH && (ctx->caps & PROTO_CAP_ZIPPATCH) != 0 &&
	    (ctx->caps & PROTO_CAP_ZIPCOPY) != 0) {
		/*
		 * Zips (by content) as zippatch; delta_encode refuses anything
		 * else. Its streams copy entries (DZP2): an older receiver that
		 * decodes only DZP1 gets a plain zstd patch.
		 */
		e->enc = PROTO_ENC_ZIP_PATCH;
		if (cache_fill(ctx, e, sig) == 0 &&
		    delta_choose(e->enc, e->len, ent->size) != DELTA_RAW)
			return;
		encoding_release(e);
		e->enc = PROTO_ENC_ZSTD_PATCH;
	}
	if (cache_fill(ctx, e, sig) != 0 ||
	    delta_choose(e->enc, e->len, ent->size) == DELTA_RAW) {
		/* Not worth it (or not possible): the bytes as they are. */
		encoding_release(e);
		e->enc = PROTO_ENC_RAW;
	}
}

static int
strcmp_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t
encoding_signature_paths(const struct encoding_ctx *ctx, const struct plan *plan, char ***paths)
{
	char **v = NULL;
	size_t alloc = 0, n = 0, i, j;

	*paths = NULL;
	if ((ctx->caps & PROTO_CAP_DELTA) == 0)
		return 0;
	for (i = 0; i < plan->nobjects; i++) {
		const struct plan_object *po = &plan->objects[i];
		const char *want = NULL;

		if (po->entry->type != MANIFEST_FILE || po->entry->size == 0)
			continue;
		if (is_drifted(ctx->st, po->entry->path))
			want = po->entry->path;
		else if (po->basis != NULL && !store_has(ctx->store, po->basis->hash))
			want = po->basis->path;
		if (want == NULL || n >= PROTO_LIST_MAX)
			continue;
		v = xgrow(v, &alloc, n + 1, sizeof(char *));
		v[n++] = (char *)want;
	}
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(char *), strcmp_ptr);
	for (i = j = 0; i < n; i++)
		if (j == 0 || strcmp(v[j - 1], v[i]) != 0)
			v[j++] = v[i];
	*paths = v;
	return j;
}

void
encoding_drop_cached(const struct encoding_ctx *ctx, const struct plan_object *po)
{
	char *path;

	if (po->basis != NULL) {
		path = store_delta_path(ctx->store, po->basis->hash, po->entry->hash,
		    delta_encoding_name(DELTA_ZSTD_PATCH));
		unlink(path);
		free(path);
		path = store_delta_path(ctx->store, po->basis->hash, po->entry->hash,
		    delta_encoding_name(DELTA_ZIP_PATCH));
		unlink(path);
		free(path);
	}
	/* rsync deltas are never cached: nothing to drop. */
}
