/*
 * Delta encodings: zstd (whole file or with the basis as prefix dictionary)
 * and librsync deltas compressed with zstd. See delta.h.
 */
#include "autoconf.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* For ZSTD_c_stableInBuffer and ZSTD_getFrameHeader (exported by libzstd.so). */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
#include <librsync.h>

#include "base/err.h"
#include "base/fileio.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "codec/delta.h"
#include "codec/zipdelta.h"

_Static_assert(ZIPDELTA_VIEW_MAX == DELTA_MEMORY_MAX, "one memory ceiling for every decoder");

#define IO_CHUNK		(256 * 1024)
#define SPARSE_PIECE		(64 * 1024)
#define PLAIN_WINDOWLOG_MAX	27	/* zstd's default decoder limit: 128 MiB */
#define RSYNC_WINDOWLOG		23	/* the librsync delta stream: 8 MiB is plenty */
#define SIG_BLOCK_MIN		256
#define SIG_BLOCK_MAX		(64 * 1024)
#define ZIP_STREAM_SLACK	(64 * 1024)	/* a zip patch larger than its target by more is corrupt */
#define ZIP_STREAM_MAX		((uint64_t)1 << 32)	/* zips without zip64 stay below 4 GiB */

/* A read-only view of a whole regular file; data is never NULL. */
struct map {
	const uint8_t	*data;
	size_t		 size;
	int		 mapped;
};

/* Output of a decoder: bounded, hashed, holes for runs of zeros in files. */
struct sink {
	int		 fd;
	int		 sparse;
	int		 hole_pending;
	uint64_t	 total;
	uint64_t	 max;
	struct hash_ctx	*hash;
};

struct delta_decoder {
	enum delta_encoding enc;
	struct map	 basis;
	struct sink	 out;
	ZSTD_DCtx	*dctx;
	int		 header_checked;
	uint8_t		 header[ZSTD_FRAMEHEADERSIZE_MAX];
	size_t		 header_len;
	int		 frame_done;
	rs_job_t	*job;
	int		 job_done;
	uint8_t		*zbuf;		/* rsync: decompressed delta not yet patched; zippatch: the stream */
	size_t		 zbuf_pos, zbuf_len, zbuf_cap;
	uint8_t		*obuf;
	size_t		 obuf_cap;
	int		 failed;
};

/* Where librsync jobs read from: a file by offset, a stream, or memory. */
struct source {
	int		 fd;
	int		 positional;
	uint64_t	 offset;
	const uint8_t	*mem;
	size_t		 mem_len;
};

/* Compressed output of an encoder. */
struct zout {
	ZSTD_CCtx	*cctx;
	int		 fd;
	uint8_t		*buf;
	size_t		 cap;
	uint64_t	 total;
};

typedef int (*job_output_fn)(void *arg, const void *data, size_t len);

static const uint8_t empty_bytes[1];

static void
rsync_trace(rs_loglevel level, char const *msg)
{
	log_debug("librsync: %s", msg);
}

static void
rsync_init(void)
{
	static int done;

	if (!done) {
		rs_trace_to(rsync_trace);
		rs_trace_set_level(RS_LOG_ERR);
		done = 1;
	}
}

const char *
delta_encoding_name(int enc)
{
	switch (enc) {
	case DELTA_RAW:
		return "raw";
	case DELTA_ZSTD:
		return "zst";
	case DELTA_ZSTD_PATCH:
		return "zpatch";
	case DELTA_RSYNC:
		return "rsync";
	case DELTA_ZIP_PATCH:
		return "zippatch";
	}
	return NULL;
}

int
delta_encoding_valid(int enc)
{
	return enc >= 0 && enc < DELTA_ENCODING_COUNT;
}

int
delta_encoding_needs_basis(int enc)
{
	return enc == DELTA_ZSTD_PATCH || enc == DELTA_RSYNC || enc == DELTA_ZIP_PATCH;
}

enum delta_encoding
delta_choose(enum delta_encoding enc, uint64_t encoded_len, uint64_t raw_len)
{
	if (enc == DELTA_RAW || raw_len > UINT64_MAX - DELTA_RAW_SLACK)
		return enc;
	return encoded_len > raw_len + DELTA_RAW_SLACK ? DELTA_RAW : enc;
}

static int
write_all(int fd, const void *data, size_t len)
{
	if (fileio_write_all(fd, data, len) == -1) {
		log_errno("delta: write");
		return DS_ERR_SYSTEM;
	}
	return 0;
}

static int
map_open(int fd, const char *what, struct map *m)
{
	struct stat st;
	void *p;

	m->data = empty_bytes;
	m->size = 0;
	m->mapped = 0;
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) != 0) {
		log_errno("delta: %s: fstat", what);
		return DS_ERR_SYSTEM;
	}
	if (!S_ISREG(st.st_mode)) {
		log_error("delta: %s is not a regular file", what);
		return DS_ERR_INVALID;
	}
	if ((uint64_t)st.st_size > SIZE_MAX) {
		log_error("delta: %s is too large to map", what);
		return DS_ERR_UNSUPPORTED;
	}
	if (st.st_size == 0)
		return 0;
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		log_errno("delta: %s: mmap of %lld bytes", what, (long long)st.st_size);
		return DS_ERR_SYSTEM;
	}
	m->data = p;
	m->size = (size_t)st.st_size;
	m->mapped = 1;
	return 0;
}

static void
map_close(struct map *m)
{
	if (m->mapped)
		munmap((void *)m->data, m->size);
	m->data = empty_bytes;
	m->size = 0;
	m->mapped = 0;
}

/* Smallest n with 2^n >= v (0 for v <= 1). */
static unsigned
ceil_log2(uint64_t v)
{
	unsigned n = 0;

	while (n < 63 && ((uint64_t)1 << n) < v)
		n++;
	return n;
}

static unsigned
clamp_window(uint64_t span, unsigned max)
{
	unsigned w = ceil_log2(span);

	if (w < ZSTD_WINDOWLOG_MIN)
		w = ZSTD_WINDOWLOG_MIN;
	return w > max ? max : w;
}

static int
level_check(int *level)
{
	if (*level == 0)
		*level = DELTA_LEVEL_DEFAULT;
	if (*level < DELTA_LEVEL_MIN || *level > ZSTD_maxCLevel()) {
		log_error("delta: compression level %d out of range %d..%d", *level,
		    DELTA_LEVEL_MIN, ZSTD_maxCLevel());
		return DS_ERR_INVALID;
	}
	return 0;
}

static int
zstd_check(size_t r, const char *what)
{
	if (ZSTD_isError(r)) {
		log_error("delta: %s: %s", what, ZSTD_getErrorName(r));
		return DS_ERR_SYSTEM;
	}
	return 0;
}

/*
 * Compressor for one frame. window_max 0: no long window (stream of unknown
 * size); content_size UINT64_MAX: unknown.
 */
static int
zout_init(struct zout *z, int fd, int level, unsigned window_log, int long_matching,
    int stable_input, uint64_t content_size)
{
	int r;

	memset(z, 0, sizeof(*z));
	z->fd = fd;
	z->cap = ZSTD_CStreamOutSize();
	z->buf = xmalloc(z->cap);
	z->cctx = ZSTD_createCCtx();
	if (z->cctx == NULL) {
		log_error("delta: cannot create a zstd context");
		return DS_ERR_SYSTEM;
	}
	if ((r = zstd_check(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, level),
	    "zstd level")) != 0 ||
	    (r = zstd_check(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 1),
	    "zstd checksum")) != 0 ||
	    (r = zstd_check(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_windowLog, (int)window_log),
	    "zstd window")) != 0)
		return r;
	if (long_matching && (r = zstd_check(ZSTD_CCtx_setParameter(z->cctx,
	    ZSTD_c_enableLongDistanceMatching, 1), "zstd long matching")) != 0)
		return r;
	if (stable_input && (r = zstd_check(ZSTD_CCtx_setParameter(z->cctx,
	    ZSTD_c_stableInBuffer, 1), "zstd stable input")) != 0)
		return r;
	if (content_size != UINT64_MAX && (r = zstd_check(ZSTD_CCtx_setPledgedSrcSize(z->cctx,
	    content_size), "zstd content size")) != 0)
		return r;
	return 0;
}

static void
zout_release(struct zout *z)
{
	ZSTD_freeCCtx(z->cctx);
	free(z->buf);
	z->cctx = NULL;
	z->buf = NULL;
}

/* Compresses data; with end, also ends the frame and flushes everything. */
static int
zout_write(struct zout *z, const void *data, size_t len, int end)
{
	ZSTD_inBuffer in = { data, len, 0 };
	int r;

	for (;;) {
		ZSTD_outBuffer out = { z->buf, z->cap, 0 };
		size_t rem = ZSTD_compressStream2(z->cctx, &out, &in,
		    end ? ZSTD_e_end : ZSTD_e_continue);

		if ((r = zstd_check(rem, "zstd compression")) != 0)
			return r;
		if (out.pos > 0 && (r = write_all(z->fd, z->buf, out.pos)) != 0)
			return r;
		z->total += out.pos;
		if (end ? rem == 0 : in.pos == in.size)
			return 0;
	}
}

static int
zout_output(void *arg, const void *data, size_t len)
{
	return zout_write(arg, data, len, 0);
}

/* One zstd frame of target, with basis (may be NULL) as prefix dictionary. */
static int
encode_zstd(const struct map *basis, int target_fd, int level, int out_fd, uint64_t *out_len)
{
	struct map target;
	struct zout z;
	uint64_t span;
	unsigned window;
	int r;

	memset(&z, 0, sizeof(z));
	if ((r = map_open(target_fd, "target", &target)) != 0)
		return r;
	span = (uint64_t)target.size + (basis != NULL ? basis->size : 0);
	window = clamp_window(span, basis != NULL ? DELTA_WINDOWLOG_MAX : PLAIN_WINDOWLOG_MAX);
	/*
	 * The whole target is mapped and handed over at once: stable input
	 * keeps zstd from copying it into a window-sized buffer of its own.
	 */
	if ((r = zout_init(&z, out_fd, level, window, basis != NULL || window >= 27, 1,
	    target.size)) != 0)
		goto out;
	if (basis != NULL && basis->size > 0 &&
	    (r = zstd_check(ZSTD_CCtx_refPrefix(z.cctx, basis->data, basis->size),
	    "zstd prefix")) != 0)
		goto out;
	if ((r = zout_write(&z, target.data, target.size, 1)) != 0)
		goto out;
	if (out_len != NULL)
		*out_len = z.total;
	r = 0;
out:
	zout_release(&z);
	map_close(&target);
	return r;
}

static int
copy_fd(int in_fd, int out_fd, uint64_t *out_len)
{
	uint8_t *buf = xmalloc(IO_CHUNK);
	uint64_t total = 0, offset = 0;
	int r = 0;

	for (;;) {
		ssize_t n = pread(in_fd, buf, IO_CHUNK, (off_t)offset);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_errno("delta: read of target");
			r = DS_ERR_SYSTEM;
			goto out;
		}
		if (n == 0)
			break;
		offset += (uint64_t)n;
		if ((r = write_all(out_fd, buf, (size_t)n)) != 0)
			goto out;
		total += (uint64_t)n;
	}
	if (out_len != NULL)
		*out_len = total;
out:
	free(buf);
	return r;
}

static ssize_t
source_read(struct source *s, void *buf, size_t cap)
{
	ssize_t n;

	if (s->fd < 0) {
		size_t left = s->mem_len - (size_t)s->offset;

		n = (ssize_t)(left < cap ? left : cap);
		if (n > 0)
			memcpy(buf, s->mem + s->offset, (size_t)n);
		s->offset += (uint64_t)n;
		return n;
	}
	do {
		if (s->positional)
			n = pread(s->fd, buf, cap, (off_t)s->offset);
		else
			n = read(s->fd, buf, cap);
	} while (n < 0 && errno == EINTR);
	if (n > 0)
		s->offset += (uint64_t)n;
	return n;
}

/* Runs a librsync job to completion over src, passing its output to fn. */
static int
job_drive(rs_job_t *job, struct source *src, job_output_fn fn, void *arg, const char *what)
{
	uint8_t *in = xmalloc(IO_CHUNK), *outb = xmalloc(IO_CHUNK);
	size_t pos = 0, len = 0;
	int eof = 0, r;

	for (;;) {
		rs_buffers_t b;
		rs_result rr;
		size_t consumed, produced;

		if (!eof && len - pos < IO_CHUNK / 2) {
			ssize_t n;

			memmove(in, in + pos, len - pos);
			len -= pos;
			pos = 0;
			n = source_read(src, in + len, IO_CHUNK - len);
			if (n < 0) {
				log_errno("delta: %s: read", what);
				r = DS_ERR_SYSTEM;
				goto out;
			}
			if (n == 0)
				eof = 1;
			len += (size_t)n;
		}
		b.next_in = (char *)in + pos;
		b.avail_in = len - pos;
		b.eof_in = eof;
		b.next_out = (char *)outb;
		b.avail_out = IO_CHUNK;
		rr = rs_job_iter(job, &b);
		consumed = (len - pos) - b.avail_in;
		produced = IO_CHUNK - b.avail_out;
		pos += consumed;
		if (produced > 0 && fn != NULL && (r = fn(arg, outb, produced)) != 0)
			goto out;
		if (rr == RS_DONE)
			break;
		if (rr != RS_BLOCKED) {
			log_error("delta: %s: %s", what, rs_strerror(rr));
			r = rr == RS_MEM_ERROR ? DS_ERR_SYSTEM : DS_ERR_INVALID;
			goto out;
		}
		if (eof && consumed == 0 && produced == 0) {
			log_error("delta: %s: input ended early", what);
			r = DS_ERR_INVALID;
			goto out;
		}
	}
	r = 0;
out:
	free(in);
	free(outb);
	return r;
}

struct membuf {
	uint8_t	*data;
	size_t	 len, alloc;
};

static int
membuf_output(void *arg, const void *data, size_t len)
{
	struct membuf *m = arg;

	m->data = xgrow(m->data, &m->alloc, m->len + len, 1);
	memcpy(m->data + m->len, data, len);
	m->len += len;
	return 0;
}

struct fd_counter {
	int		 fd;
	uint64_t	 total;
};

static int
fd_output(void *arg, const void *data, size_t len)
{
	struct fd_counter *c = arg;
	int r;

	if ((r = write_all(c->fd, data, len)) != 0)
		return r;
	c->total += len;
	return 0;
}

static uint64_t
isqrt(uint64_t v)
{
	uint64_t lo = 0, hi = 1ULL << 32;

	while (lo + 1 < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (mid * mid <= v)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Signature of the file behind src (size bytes) through fn. */
static int
signature_run(struct source *src, uint64_t size, job_output_fn fn, void *arg)
{
	rs_magic_number magic = RS_RK_BLAKE2_SIG_MAGIC;
	uint64_t block = isqrt(size);
	size_t block_len, strong_len = (size_t)-1;
	rs_job_t *job;
	rs_result rr;
	int r;

	/* About sqrt(size), as rsync does: fewer blocks for big files, finer ones for small. */
	block = (block + 63) & ~(uint64_t)63;
	if (block < SIG_BLOCK_MIN)
		block = SIG_BLOCK_MIN;
	if (block > SIG_BLOCK_MAX)
		block = SIG_BLOCK_MAX;
	block_len = (size_t)block;
	rsync_init();
	if ((rr = rs_sig_args((rs_long_t)size, &magic, &block_len, &strong_len)) != RS_DONE) {
		log_error("delta: signature parameters: %s", rs_strerror(rr));
		return DS_ERR_SYSTEM;
	}
	if ((job = rs_sig_begin(block_len, strong_len, magic)) == NULL) {
		log_error("delta: cannot start a signature");
		return DS_ERR_SYSTEM;
	}
	r = job_drive(job, src, fn, arg, "signature");
	rs_job_free(job);
	return r;
}

static int
file_size(int fd, const char *what, uint64_t *size)
{
	struct stat st;

	*size = 0;
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) != 0) {
		log_errno("delta: %s: fstat", what);
		return DS_ERR_SYSTEM;
	}
	if (!S_ISREG(st.st_mode)) {
		log_error("delta: %s is not a regular file", what);
		return DS_ERR_INVALID;
	}
	*size = (uint64_t)st.st_size;
	return 0;
}

int
delta_signature(int basis_fd, int out_fd, uint64_t *sig_len)
{
	struct source src = { basis_fd, 1, 0, empty_bytes, 0 };
	struct fd_counter c = { out_fd, 0 };
	uint64_t size;
	int r;

	if ((r = file_size(basis_fd, "basis", &size)) != 0)
		return r;
	if ((r = signature_run(&src, size, fd_output, &c)) != 0)
		return r;
	if (sig_len != NULL)
		*sig_len = c.total;
	return 0;
}

/* Loads and indexes a signature; the caller frees *sig with rs_free_sumset. */
static int
signature_load(struct source *src, rs_signature_t **sig)
{
	rs_job_t *job;
	rs_result rr;
	int r;

	*sig = NULL;
	rsync_init();
	if ((job = rs_loadsig_begin(sig)) == NULL) {
		log_error("delta: cannot start loading a signature");
		return DS_ERR_SYSTEM;
	}
	r = job_drive(job, src, NULL, NULL, "signature load");
	rs_job_free(job);
	if (r != 0)
		goto out;
	if (*sig == NULL) {
		log_error("delta: signature is empty");
		r = DS_ERR_INVALID;
		goto out;
	}
	if ((rr = rs_build_hash_table(*sig)) != RS_DONE) {
		log_error("delta: signature index: %s", rs_strerror(rr));
		r = DS_ERR_INVALID;
		goto out;
	}
	r = 0;
out:
	if (r != 0 && *sig != NULL) {
		rs_free_sumset(*sig);
		*sig = NULL;
	}
	return r;
}

/* rsync delta of target against sig, zstd-compressed into out_fd. */
static int
rsync_encode_sig(rs_signature_t *sig, int target_fd, int level, int out_fd, uint64_t *out_len)
{
	struct source src = { target_fd, 1, 0, empty_bytes, 0 };
	struct zout z;
	rs_job_t *job = NULL;
	int r;

	if ((r = zout_init(&z, out_fd, level, RSYNC_WINDOWLOG, 0, 0, UINT64_MAX)) != 0)
		goto out;
	if ((job = rs_delta_begin(sig)) == NULL) {
		log_error("delta: cannot start an rsync delta");
		r = DS_ERR_SYSTEM;
		goto out;
	}
	if ((r = job_drive(job, &src, zout_output, &z, "rsync delta")) != 0)
		goto out;
	if ((r = zout_write(&z, NULL, 0, 1)) != 0)
		goto out;
	if (out_len != NULL)
		*out_len = z.total;
out:
	if (job != NULL)
		rs_job_free(job);
	zout_release(&z);
	return r;
}

int
delta_rsync_encode(int sig_fd, int target_fd, int level, int out_fd, uint64_t *out_len)
{
	struct source src = { sig_fd, 0, 0, empty_bytes, 0 };
	rs_signature_t *sig = NULL;
	int r;

	if ((r = level_check(&level)) != 0)
		return r;
	if ((r = signature_load(&src, &sig)) != 0)
		return r;
	r = rsync_encode_sig(sig, target_fd, level, out_fd, out_len);
	rs_free_sumset(sig);
	return r;
}

static int
encode_rsync(int basis_fd, int target_fd, int level, int out_fd, uint64_t *out_len)
{
	struct source bsrc = { basis_fd, 1, 0, empty_bytes, 0 };
	struct membuf sigbuf = { NULL, 0, 0 };
	struct source ssrc;
	rs_signature_t *sig = NULL;
	uint64_t size;
	int r;

	if ((r = file_size(basis_fd, "basis", &size)) != 0)
		goto out;
	if ((r = signature_run(&bsrc, size, membuf_output, &sigbuf)) != 0)
		goto out;
	ssrc.fd = -1;
	ssrc.positional = 0;
	ssrc.offset = 0;
	ssrc.mem = sigbuf.data != NULL ? sigbuf.data : empty_bytes;
	ssrc.mem_len = sigbuf.len;
	if ((r = signature_load(&ssrc, &sig)) != 0)
		goto out;
	r = rsync_encode_sig(sig, target_fd, level, out_fd, out_len);
out:
	if (sig != NULL)
		rs_free_sumset(sig);
	free(sigbuf.data);
	return r;
}

/* A zip patch of target against basis (see zipdelta.h). */
static int
encode_zip(int basis_fd, int target_fd, int level, int out_fd, uint64_t *out_len)
{
	struct map basis, target;
	uint8_t *enc = NULL;
	size_t len = 0;
	int r;

	if ((r = map_open(basis_fd, "basis", &basis)) != 0)
		return r;
	if ((r = map_open(target_fd, "target", &target)) != 0)
		goto out;
	if ((r = zipdelta_encode(basis.data, basis.size, target.data, target.size, level,
	    &enc, &len, NULL)) != 0)
		goto out;
	if ((r = write_all(out_fd, enc, len)) != 0)
		goto out;
	if (out_len != NULL)
		*out_len = len;
out:
	free(enc);
	map_close(&target);
	map_close(&basis);
	return r;
}

int
delta_encode(enum delta_encoding enc, int basis_fd, int target_fd, int level, int out_fd,
    uint64_t *out_len)
{
	struct map basis;
	int r;

	if ((r = level_check(&level)) != 0)
		return r;
	switch (enc) {
	case DELTA_RAW:
		return copy_fd(target_fd, out_fd, out_len);
	case DELTA_ZSTD:
		return encode_zstd(NULL, target_fd, level, out_fd, out_len);
	case DELTA_ZSTD_PATCH:
		if ((r = map_open(basis_fd, "basis", &basis)) != 0)
			return r;
		r = encode_zstd(&basis, target_fd, level, out_fd, out_len);
		map_close(&basis);
		return r;
	case DELTA_RSYNC:
		return encode_rsync(basis_fd, target_fd, level, out_fd, out_len);
	case DELTA_ZIP_PATCH:
		return encode_zip(basis_fd, target_fd, level, out_fd, out_len);
	}
	log_error("delta: unknown encoding %d", (int)enc);
	return DS_ERR_INVALID;
}

/* Decoder side. */

static int
is_zero(const uint8_t *p, size_t len)
{
	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

static int
sink_write(struct sink *s, const uint8_t *data, size_t len)
{
	int r;

	if (len > s->max - s->total) {
		log_error("delta: decoded content exceeds its declared size of %llu bytes",
		    (unsigned long long)s->max);
		return DS_ERR_CORRUPT;
	}
	hash_ctx_update(s->hash, data, len);
	s->total += len;
	if (!s->sparse)
		return write_all(s->fd, data, len);
	while (len > 0) {
		size_t n = len < SPARSE_PIECE ? len : SPARSE_PIECE;

		if (is_zero(data, n)) {
			if (lseek(s->fd, (off_t)n, SEEK_CUR) < 0) {
				log_errno("delta: seek in output");
				return DS_ERR_SYSTEM;
			}
			s->hole_pending = 1;
		} else {
			if ((r = write_all(s->fd, data, n)) != 0)
				return r;
			s->hole_pending = 0;
		}
		data += n;
		len -= n;
	}
	return 0;
}

static int
sink_finish(struct sink *s)
{
	off_t end;

	if (!s->hole_pending)
		return 0;
	if ((end = lseek(s->fd, 0, SEEK_CUR)) < 0 || ftruncate(s->fd, end) != 0) {
		log_errno("delta: extend output");
		return DS_ERR_SYSTEM;
	}
	s->hole_pending = 0;
	return 0;
}

static rs_result
rsync_copy(void *arg, rs_long_t pos, size_t *len, void **buf)
{
	const struct map *m = arg;
	size_t avail;

	/* A position past the basis: a hostile delta or not the basis it was made against. */
	if (pos < 0 || (uint64_t)pos >= m->size)
		return RS_CORRUPT;
	avail = m->size - (size_t)pos;
	if (*len > avail)
		*len = avail;
	*buf = (void *)(m->data + pos);
	return RS_DONE;
}

int
delta_decoder_new(enum delta_encoding enc, int basis_fd, int out_fd, uint64_t max_out,
    struct delta_decoder **out)
{
	struct delta_decoder *d;
	struct stat st;
	off_t here;
	int r;

	*out = NULL;
	if (!delta_encoding_valid(enc)) {
		log_error("delta: unknown encoding %d", (int)enc);
		return DS_ERR_INVALID;
	}
	d = xcalloc(1, sizeof(*d));
	d->enc = enc;
	d->basis.data = empty_bytes;
	d->out.fd = out_fd;
	d->out.max = max_out;
	d->out.hash = hash_ctx_new();
	/* Holes are safe only where the file has no old bytes to show through. */
	if (fstat(out_fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (here = lseek(out_fd, 0, SEEK_CUR)) >= 0 && st.st_size <= here)
		d->out.sparse = 1;
	if (delta_encoding_needs_basis(enc) &&
	    (r = map_open(basis_fd, "basis", &d->basis)) != 0)
		goto out;
	d->obuf_cap = ZSTD_DStreamOutSize();
	d->obuf = xmalloc(d->obuf_cap);
	if (enc != DELTA_RAW && enc != DELTA_ZIP_PATCH) {
		/*
		 * The window the encoder picked for these sizes, never more: a
		 * patch's covers basis and target, a whole file's the target.
		 */
		uint64_t span = max_out > UINT64_MAX - d->basis.size ? UINT64_MAX :
		    max_out + d->basis.size;
		unsigned window = enc == DELTA_ZSTD_PATCH ? clamp_window(span, DELTA_WINDOWLOG_MAX) :
		    enc == DELTA_RSYNC ? RSYNC_WINDOWLOG : clamp_window(max_out, PLAIN_WINDOWLOG_MAX);

		if ((d->dctx = ZSTD_createDCtx()) == NULL) {
			log_error("delta: cannot create a zstd context");
			r = DS_ERR_SYSTEM;
			goto out;
		}
		if ((r = zstd_check(ZSTD_DCtx_setParameter(d->dctx, ZSTD_d_windowLogMax,
		    (int)window), "zstd window limit")) != 0)
			goto out;
		if (enc == DELTA_ZSTD_PATCH && d->basis.size > 0 &&
		    (r = zstd_check(ZSTD_DCtx_refPrefix(d->dctx, d->basis.data, d->basis.size),
		    "zstd prefix")) != 0)
			goto out;
	}
	if (enc == DELTA_RSYNC) {
		rsync_init();
		if ((d->job = rs_patch_begin(rsync_copy, &d->basis)) == NULL) {
			log_error("delta: cannot start an rsync patch");
			r = DS_ERR_SYSTEM;
			goto out;
		}
		d->zbuf_cap = IO_CHUNK;
		d->zbuf = xmalloc(d->zbuf_cap);
	}
	*out = d;
	d = NULL;
	r = 0;
out:
	delta_decoder_free(d);
	return r;
}

void
delta_decoder_free(struct delta_decoder *d)
{
	if (d == NULL)
		return;
	if (d->job != NULL)
		rs_job_free(d->job);
	ZSTD_freeDCtx(d->dctx);
	map_close(&d->basis);
	hash_ctx_free(d->out.hash);
	free(d->zbuf);
	free(d->obuf);
	free(d);
}

/* Feeds decompressed rsync delta bytes (in zbuf) to the patch job. */
static int
rsync_pump(struct delta_decoder *d, int eof)
{
	int r;

	for (;;) {
		rs_buffers_t b;
		rs_result rr;
		size_t consumed, produced;

		if (d->job_done) {
			if (d->zbuf_pos < d->zbuf_len) {
				log_error("delta: rsync delta has bytes after its end");
				return DS_ERR_CORRUPT;
			}
			break;
		}
		b.next_in = (char *)d->zbuf + d->zbuf_pos;
		b.avail_in = d->zbuf_len - d->zbuf_pos;
		b.eof_in = eof;
		b.next_out = (char *)d->obuf;
		b.avail_out = d->obuf_cap;
		rr = rs_job_iter(d->job, &b);
		consumed = (d->zbuf_len - d->zbuf_pos) - b.avail_in;
		produced = d->obuf_cap - b.avail_out;
		d->zbuf_pos += consumed;
		if (produced > 0 && (r = sink_write(&d->out, d->obuf, produced)) != 0)
			return r;
		if (rr == RS_DONE) {
			d->job_done = 1;
			continue;
		}
		if (rr != RS_BLOCKED) {
			log_error("delta: rsync delta does not apply: %s", rs_strerror(rr));
			return rr == RS_MEM_ERROR ? DS_ERR_SYSTEM : DS_ERR_CORRUPT;
		}
		if (consumed == 0 && produced == 0)
			break;
	}
	memmove(d->zbuf, d->zbuf + d->zbuf_pos, d->zbuf_len - d->zbuf_pos);
	d->zbuf_len -= d->zbuf_pos;
	d->zbuf_pos = 0;
	return 0;
}

static int
decompress(struct delta_decoder *d, const uint8_t *data, size_t len)
{
	ZSTD_inBuffer in = { data, len, 0 };
	int more_output = 0, r;

	while (in.pos < in.size || more_output) {
		ZSTD_outBuffer zo;
		size_t rr;

		if (d->frame_done) {
			log_error("delta: bytes after the end of the zstd frame");
			return DS_ERR_CORRUPT;
		}
		if (d->enc == DELTA_RSYNC) {
			if (d->zbuf_len == d->zbuf_cap) {
				log_error("delta: rsync delta stalled");
				return DS_ERR_CORRUPT;
			}
			zo.dst = d->zbuf + d->zbuf_len;
			zo.size = d->zbuf_cap - d->zbuf_len;
		} else {
			zo.dst = d->obuf;
			zo.size = d->obuf_cap;
		}
		zo.pos = 0;
		rr = ZSTD_decompressStream(d->dctx, &zo, &in);
		if (ZSTD_isError(rr)) {
			log_error("delta: %s stream is corrupt or its basis differs: %s",
			    delta_encoding_name(d->enc), ZSTD_getErrorName(rr));
			return DS_ERR_CORRUPT;
		}
		more_output = zo.pos == zo.size;
		if (rr == 0) {
			d->frame_done = 1;
			more_output = 0;
		}
		if (d->enc == DELTA_RSYNC) {
			d->zbuf_len += zo.pos;
			if ((r = rsync_pump(d, 0)) != 0)
				return r;
		} else if ((r = sink_write(&d->out, d->obuf, zo.pos)) != 0)
			return r;
		if (d->frame_done && in.pos < in.size) {
			log_error("delta: bytes after the end of the zstd frame");
			return DS_ERR_CORRUPT;
		}
	}
	return 0;
}

/* Checks the frame header before any allocation it could ask for. */
static int
feed_zstd(struct delta_decoder *d, const uint8_t *data, size_t len)
{
	ZSTD_frameHeader fh;
	size_t n, rr;
	int r;

	if (d->header_checked)
		return decompress(d, data, len);
	n = sizeof(d->header) - d->header_len;
	if (n > len)
		n = len;
	memcpy(d->header + d->header_len, data, n);
	d->header_len += n;
	rr = ZSTD_getFrameHeader(&fh, d->header, d->header_len);
	if (ZSTD_isError(rr) || (rr > 0 && d->header_len == sizeof(d->header))) {
		log_error("delta: %s stream does not start with a zstd frame",
		    delta_encoding_name(d->enc));
		return DS_ERR_CORRUPT;
	}
	if (rr > 0)
		return 0;	/* n == len: wait for more */
	if (fh.frameType != ZSTD_frame) {
		log_error("delta: unexpected skippable zstd frame");
		return DS_ERR_CORRUPT;
	}
	if (d->enc != DELTA_RSYNC && (fh.frameContentSize == ZSTD_CONTENTSIZE_UNKNOWN ||
	    fh.frameContentSize > d->out.max)) {
		log_error("delta: zstd frame declares %s content, more than %llu bytes",
		    fh.frameContentSize == ZSTD_CONTENTSIZE_UNKNOWN ? "unknown" : "larger",
		    (unsigned long long)d->out.max);
		return DS_ERR_CORRUPT;
	}
	d->header_checked = 1;
	if ((r = decompress(d, d->header, d->header_len)) != 0)
		return r;
	return decompress(d, data + n, len - n);
}

/* A zip patch decodes as a whole: hold it, bounded by what its target may be. */
static int
feed_zip(struct delta_decoder *d, const uint8_t *data, size_t len)
{
	uint64_t cap = (d->out.max < ZIP_STREAM_MAX ? d->out.max : ZIP_STREAM_MAX) +
	    ZIP_STREAM_SLACK;

	if (len > cap - d->zbuf_len) {
		log_error("delta: zippatch stream is larger than its target may be");
		return DS_ERR_CORRUPT;
	}
	d->zbuf = xgrow(d->zbuf, &d->zbuf_cap, d->zbuf_len + len, 1);
	memcpy(d->zbuf + d->zbuf_len, data, len);
	d->zbuf_len += len;
	return 0;
}

static int
zip_emit(void *arg, const void *data, size_t len)
{
	return sink_write(arg, data, len);
}

int
delta_decoder_feed(struct delta_decoder *d, const void *data, size_t len)
{
	int r;

	if (d->failed)
		return DS_ERR_INVALID;
	if (len == 0)
		return 0;
	if (d->enc == DELTA_RAW)
		r = sink_write(&d->out, data, len);
	else if (d->enc == DELTA_ZIP_PATCH)
		r = feed_zip(d, data, len);
	else
		r = feed_zstd(d, data, len);
	if (r != 0)
		d->failed = 1;
	return r;
}

int
delta_decoder_finish(struct delta_decoder *d, uint64_t *out_len, uint8_t out_hash[HASH_LEN])
{
	int r;

	if (d->failed)
		return DS_ERR_INVALID;
	d->failed = 1;
	if (d->enc == DELTA_ZIP_PATCH) {
		if ((r = zipdelta_decode(d->basis.data, d->basis.size, d->zbuf, d->zbuf_len,
		    d->out.max, zip_emit, &d->out)) != 0)
			return r;
	} else if (d->enc != DELTA_RAW) {
		if (!d->header_checked || !d->frame_done) {
			log_error("delta: %s stream is truncated", delta_encoding_name(d->enc));
			return DS_ERR_CORRUPT;
		}
		if (d->enc == DELTA_RSYNC) {
			if ((r = rsync_pump(d, 1)) != 0)
				return r;
			if (!d->job_done) {
				log_error("delta: rsync delta is truncated");
				return DS_ERR_CORRUPT;
			}
		}
	}
	if ((r = sink_finish(&d->out)) != 0)
		return r;
	if (out_len != NULL)
		*out_len = d->out.total;
	if (out_hash != NULL)
		hash_ctx_final(d->out.hash, out_hash);
	return 0;
}

int
delta_decode(enum delta_encoding enc, int basis_fd, int in_fd, int out_fd, uint64_t max_out,
    uint64_t *out_len, uint8_t out_hash[HASH_LEN])
{
	struct delta_decoder *d = NULL;
	uint8_t *buf = NULL;
	int r;

	if ((r = delta_decoder_new(enc, basis_fd, out_fd, max_out, &d)) != 0)
		goto out;
	buf = xmalloc(IO_CHUNK);
	for (;;) {
		ssize_t n = read(in_fd, buf, IO_CHUNK);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_errno("delta: read of encoded input");
			r = DS_ERR_SYSTEM;
			goto out;
		}
		if (n == 0)
			break;
		if ((r = delta_decoder_feed(d, buf, (size_t)n)) != 0)
			goto out;
	}
	r = delta_decoder_finish(d, out_len, out_hash);
out:
	free(buf);
	delta_decoder_free(d);
	return r;
}

int
delta_buf_encode(const void *prefix, size_t plen, const void *src, size_t slen, int level,
    uint8_t **out, size_t *out_len)
{
	ZSTD_CCtx *cctx;
	size_t cap = ZSTD_compressBound(slen), n;
	int r;

	*out = NULL;
	*out_len = 0;
	if ((r = level_check(&level)) != 0)
		return r;
	if ((cctx = ZSTD_createCCtx()) == NULL) {
		log_error("delta: out of memory for a compressor");
		return DS_ERR_SYSTEM;
	}
	*out = xmalloc(cap > 0 ? cap : 1);
	if ((r = zstd_check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level),
	    "level")) != 0 ||
	    (r = zstd_check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog,
	    (int)clamp_window((uint64_t)plen + slen, DELTA_BUF_WINDOWLOG_MAX)), "window")) != 0 ||
	    (r = zstd_check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1), "checksum")) != 0 ||
	    (plen > 0 && (r = zstd_check(ZSTD_CCtx_refPrefix(cctx, prefix, plen), "prefix")) != 0))
		goto out;
	n = ZSTD_compress2(cctx, *out, cap, src, slen);
	if ((r = zstd_check(n, "compress")) == 0)
		*out_len = n;
out:
	ZSTD_freeCCtx(cctx);
	if (r != 0) {
		free(*out);
		*out = NULL;
	}
	return r;
}

int
delta_buf_decode(const void *prefix, size_t plen, const void *src, size_t slen, size_t max,
    const char *what, uint8_t **out, size_t *out_len)
{
	ZSTD_inBuffer in = { src, slen, 0 };
	ZSTD_outBuffer o = { NULL, 0, 0 };
	ZSTD_DCtx *dctx;
	size_t left = 1;
	int r = 0;

	*out = NULL;
	*out_len = 0;
	if ((dctx = ZSTD_createDCtx()) == NULL) {
		log_error("%s: out of memory for a decompressor", what);
		return DS_ERR_SYSTEM;
	}
	/* The window the encoder used covers the prefix and the output: no more. */
	if ((r = zstd_check(ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax,
	    (int)clamp_window((uint64_t)plen + max, DELTA_BUF_WINDOWLOG_MAX)), "window")) != 0 ||
	    (plen > 0 && (r = zstd_check(ZSTD_DCtx_refPrefix(dctx, prefix, plen), "prefix")) != 0))
		goto out;
	while (left != 0) {
		if (o.pos == o.size) {
			if (o.size >= max + 1) {
				log_error("%s: decodes to more than %zu bytes", what, max);
				r = DS_ERR_CORRUPT;
				goto out;
			}
			/* Grows as the output does, to one byte over the limit (to see it passed). */
			o.size = o.size == 0 ? 65536 : o.size * 2;
			if (o.size > max + 1)
				o.size = max + 1;
			o.dst = xreallocarray(o.dst, o.size, 1);
		}
		left = ZSTD_decompressStream(dctx, &o, &in);
		if (ZSTD_isError(left)) {
			log_error("%s: does not decode: %s", what, ZSTD_getErrorName(left));
			r = DS_ERR_CORRUPT;
			goto out;
		}
		if (left != 0 && in.pos == in.size && o.pos < o.size) {
			log_error("%s: ends mid-frame", what);
			r = DS_ERR_CORRUPT;
			goto out;
		}
	}
	if (o.pos > max) {
		log_error("%s: decodes to more than %zu bytes", what, max);
		r = DS_ERR_CORRUPT;
		goto out;
	}
	if (in.pos != in.size) {
		log_error("%s: has bytes after its frame", what);
		r = DS_ERR_CORRUPT;
		goto out;
	}
	*out = o.dst;
	*out_len = o.pos;
	o.dst = NULL;
out:
	ZSTD_freeDCtx(dctx);
	free(o.dst);
	return r;
}
