/*
 * The two roles over a socketpair, no SSH (issue 17): the receiver
 * (receiver_run) in a forked child, driven by a scripted peer that speaks
 * proto.h's encoders, and an honest sender_run against a receiver.
 *
 * refusals[] is the receiver's every refusal to its peer, one row each. It
 * was made by reading every error return of receiver.c and of what it
 * calls with the peer's bytes -- proto.c's frame and message decoders,
 * room.c/stage.c (space, staging, SHA-256), commit.c (the apply) and
 * target.c (the site) -- and keeping those that answer the peer (ERROR
 * before STATE, RESULT after it, or RETRY at COMMIT). A new refusal in the
 * receiver gets a row here. Each row names the message the peer sees.
 *
 * Then the sessions that must work: an honest push and its delta, verify
 * and rollback; a store whose deltas/ was removed or cannot be written
 * (issue 16, finding 12); rsync deltas never cached and debris tidied
 * (finding 8); a site answering SIGNATURE_REQUEST with 15 MiB signatures,
 * the sender's peak RSS measured (finding 8); a small tmpfs that a hostile
 * session tries to fill and wedge (finding 6).
 */
#include "autoconf.h"

#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>

#include <zstd.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/path.h"
#include "base/util.h"
#include "base/xmalloc.h"
#include "codec/delta.h"
#include "config/config.h"
#include "repo/dcache.h"
#include "repo/manifest.h"
#include "repo/store.h"
#include "session/receiver.h"
#include "session/report.h"
#include "session/sender.h"
#include "site/site.h"
#include "site/target.h"
#include "wire/proto.h"
#include "wire/xport-local.h"
#include "wire/xport.h"
#include "rss.h"
#include "tap.h"

/* Memory ceilings are about what the code holds, not what ASan keeps of what it freed. */
const char *__asan_default_options(void);
const char *
__asan_default_options(void)
{
	return "quarantine_size_mb=16";
}

/* ---- the repository and the site ---- */

/* The absolute path of NAME in the test's directory (static: one at a time per slot). */
static const char *
abs_path(const char *name, int slot)
{
	static char buf[4][4096];
	char cwd[2048];

	if (getcwd(cwd, sizeof(cwd)) == NULL)
		cwd[0] = '\0';
	snprintf(buf[slot], sizeof(buf[slot]), "%s/%s", cwd, name);
	return buf[slot];
}

/* The config both roles read: host "site" at TARGET (relative to the test dir). */
static struct config *
make_config(const char *target)
{
	struct config *c = NULL;
	char *yaml = xasprintf("distribution: {name: roles, store: %s}\n"
	    "hosts:\n  site: {path: %s}\n", abs_path("repo/.distsync", 0), abs_path(target, 1));

	if (config_load_mem(yaml, strlen(yaml), abs_path("distsync.yml", 2), &c) != 0)
		c = NULL;
	free(yaml);
	return c;
}

/* Writes LEN bytes of a pattern seeded by SEED to PATH; incompressible unless SEED is 0. */
static int
write_pattern(const char *path, size_t len, unsigned seed)
{
	uint8_t *b = xmalloc(len + 1);
	uint32_t x = seed * 2654435761u + 1;
	int r;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = seed == 0 ? 0 : (uint8_t)x;
	}
	r = tap_write_file(path, b, len);
	free(b);
	return r;
}

/* Release ID of the store from the tree DIR: every object stored, the manifest saved. */
static int
make_release(struct store *st, const char *dir, const char *id)
{
	struct manifest *m = NULL;
	int r;

	if ((r = manifest_scan(dir, NULL, NULL, 1, &m, NULL)) != 0)
		return r;
	for (size_t i = 0; i < m->count && r == 0; i++) {
		const struct manifest_entry *e = &m->entries[i];
		uint8_t h[HASH_LEN];
		char *p;

		if (e->type == MANIFEST_SYMLINK)
			r = store_add_bytes(st, e->link, strlen(e->link), h);
		else if (e->type == MANIFEST_FILE) {
			p = xasprintf("%s/%s", dir, e->path);
			r = store_add_file(st, p, e->hash);
			free(p);
		}
	}
	if (r == 0)
		r = store_release_save(st, id, m);
	manifest_free(m);
	return r;
}

/* Do trees A and B scan to the same manifest? */
static int
same_tree(const char *a, const char *b)
{
	struct manifest *x = NULL, *y = NULL;
	uint8_t dx[HASH_LEN], dy[HASH_LEN];
	int same = 0;

	if (manifest_scan(a, NULL, NULL, 1, &x, NULL) == 0 &&
	    manifest_scan(b, NULL, NULL, 1, &y, NULL) == 0) {
		manifest_digest(x, dx);
		manifest_digest(y, dy);
		same = memcmp(dx, dy, HASH_LEN) == 0;
	}
	manifest_free(x);
	manifest_free(y);
	return same;
}

/* Entries of DIR whose name ends in SUFFIX ("" for all). */
static size_t
count_files(const char *dir, const char *suffix)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(dir);

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name), sl = strlen(suffix);

		if (de->d_name[0] != '.' && len >= sl && strcmp(de->d_name + len - sl, suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static int
site_main(struct xport *x, void *arg)
{
	return receiver_run(x, arg);
}

/*
 * Pushes release ID of STORE to the site of CONFIG by sender_run, the
 * receiver in a child. Returns sender_run's result; *rep is filled (release
 * it), *site_exit the receiver's exit status.
 */
static int
push(struct config *config, struct store *store, const char *id, uint32_t flags,
    struct report *rep, int *site_exit)
{
	struct receiver_options ro;
	struct sender_options so;
	struct xport *x = NULL;
	int r;

	memset(&ro, 0, sizeof(ro));
	ro.config = config;
	ro.host = config_host(config, "site");
	memset(&so, 0, sizeof(so));
	so.op = PROTO_OP_PUSH;
	so.config = config;
	so.host = ro.host;
	so.store = store;
	so.release = id;
	so.flags = flags;
	report_init(rep, PROTO_OP_PUSH, flags);
	if ((r = xport_fork_open("site", site_main, &ro, &x)) != 0)
		return r;
	r = sender_run(x, &so, rep);
	*site_exit = xport_close(x);
	xport_free(x);
	return r;
}

/* ---- a scripted peer ---- */

/* One receiver in a child and the scripted peer's end of its socketpair. */
struct site {
	struct config		*config;
	struct receiver_options	 ro;
	struct xport		*x;
	struct buf		*payload;
	struct store		*store;		/* the repository, for content a row needs */
	uint64_t		 caps;		/* what the peer offers in HELLO */
};

static int
site_start(struct site *s)
{
	s->payload = buf_new(PROTO_FRAME_MAX);
	return xport_fork_open("site", site_main, &s->ro, &s->x);
}

/* Stops the receiver; returns its exit status. */
static int
site_stop(struct site *s)
{
	int status;

	xport_shutdown(s->x);
	status = xport_close(s->x);
	xport_free(s->x);
	buf_free(s->payload);
	s->x = NULL;
	s->payload = NULL;
	return status;
}

static int
send_hello(struct site *s)
{
	return proto_send_hello(s->x, PROTO_ROLE_INITIATOR, s->caps);
}

static int
send_open(struct site *s, uint8_t op, uint32_t flags, const char *config_yaml)
{
	struct proto_open o;

	memset(&o, 0, sizeof(o));
	o.op = op;
	o.flags = flags;
	o.host = (char *)"site";
	o.config = (uint8_t *)config_yaml;
	o.config_len = config_yaml != NULL ? strlen(config_yaml) : 0;
	return proto_send_msg(s->x, PROTO_OPEN, &o);
}

/* HELLO and OPEN for a push, then the receiver's HELLO and STATE (into *st, may be NULL). */
static int
open_push(struct site *s, uint32_t flags, struct proto_state *st)
{
	struct proto_msg m;
	int r;

	if ((r = send_hello(s)) != 0 || (r = send_open(s, PROTO_OP_PUSH, flags, NULL)) != 0)
		return r;
	if ((r = proto_recv_msg(s->x, PROTO_HELLO, s->payload, &m)) != 0)
		return r;
	proto_msg_free(&m);
	if ((r = proto_recv_msg(s->x, PROTO_STATE, s->payload, &m)) != 0)
		return r;
	if (st != NULL)
		*st = m.u.state;
	else
		proto_msg_free(&m);
	return 0;
}

static int
send_object(struct site *s, const uint8_t hash[HASH_LEN], uint8_t enc, uint64_t size,
    uint64_t offset, const uint8_t *basis)
{
	struct proto_object ob;

	memset(&ob, 0, sizeof(ob));
	memcpy(ob.hash, hash, HASH_LEN);
	ob.encoding = enc;
	ob.size = size;
	ob.offset = offset;
	if (basis != NULL)
		memcpy(ob.basis, basis, HASH_LEN);
	return proto_send_msg(s->x, PROTO_OBJECT, &ob);
}

/* DATA frames of LEN bytes (in 16 KiB chunks); an empty frame when LEN is 0. */
static int
send_data(struct site *s, const void *data, size_t len)
{
	struct buf *b = buf_new(PROTO_CHUNK_MAX);
	const uint8_t *p = data;
	int r = 0;

	do {
		size_t n = len < 16384 ? len : 16384;

		buf_reset(b);
		if ((r = buf_put(b, p, n)) != 0 || (r = proto_send(s->x, PROTO_DATA, b)) != 0)
			break;
		p += n;
		len -= n;
	} while (len > 0);
	buf_free(b);
	return r;
}

static int
send_end(struct site *s)
{
	return proto_send(s->x, PROTO_OBJECT_END, NULL);
}

/* A whole raw object: OBJECT, DATA..., OBJECT_END; its hash is that of DATA. */
static int
send_raw(struct site *s, const void *data, size_t len, uint8_t hash[HASH_LEN])
{
	int r;

	hash_bytes(data, len, hash);
	if ((r = send_object(s, hash, PROTO_ENC_RAW, len, 0, NULL)) != 0 ||
	    (len > 0 && (r = send_data(s, data, len)) != 0))
		return r;
	return send_end(s);
}

static int
send_commit(struct site *s, const char *release, const char *manifest, uint32_t flags)
{
	struct proto_commit c;

	memset(&c, 0, sizeof(c));
	c.release = (char *)release;
	c.manifest = (uint8_t *)manifest;
	c.manifest_len = manifest != NULL ? strlen(manifest) : 0;
	c.flags = flags;
	return proto_send_msg(s->x, PROTO_COMMIT, &c);
}

/* A frame of TYPE with these payload bytes, as they are. */
static int
send_frame(struct site *s, uint8_t type, const void *payload, size_t len)
{
	struct buf *b = buf_new(PROTO_FRAME_MAX);
	int r = buf_put(b, payload, len);

	if (r == 0)
		r = proto_send(s->x, type, b);
	buf_free(b);
	return r;
}

/* The manifest line of a file or symlink whose content is TEXT, at PATH (escaped by the caller). */
static char *
entry_line(char type, const char *mode, const char *text, size_t len, const char *path)
{
	uint8_t h[HASH_LEN];
	char hex[HASH_HEX_LEN + 1];

	hash_bytes(text, len, h);
	hash_to_hex(h, hex);
	return xasprintf("%c %s %zu %s %s\n", type, mode, len, hex, path);
}

/* ---- the receiver's refusals ---- */

/* How a row's site is set up before its script runs. */
enum {
	SITE_LOCAL = 0,		/* the host's config is local (xport-local) */
	SITE_FROM_OPEN = 1,	/* serve: the config comes in OPEN */
	SITE_ROOT = 2,		/* serve --root ROOT */
	SITE_APPLIED = 4,	/* release 1 applied, then a file edited (drift) */
	SITE_LOCKED = 8,	/* another process holds the target's lock */
	SITE_STATE_LINK = 16,	/* the default state directory is a planted symlink */
	SITE_BACKED = 32,	/* backup set 1 keeps dir/f (drifted), only and a symlink */
	SITE_PARENT_LINK = 64,	/* t/dir is a planted symlink to outside/ */
	SITE_OBJECT_LINK = 128,	/* set 1's copy of dir/f is a planted symlink to outside/ */
};

struct refusal {
	const char	*name;
	int		 setup;
	int		(*script)(struct site *s);
	uint8_t		 answer;	/* ERROR, RESULT or RETRY; 0: none can arrive */
	int		 code;		/* ERROR.code / RESULT.status */
	const char	*message;	/* a part of what the peer is told */
};

/* -- before STATE: the answer is ERROR -- */

static int
s_not_hello(struct site *s)
{
	return send_open(s, PROTO_OP_PUSH, 0, NULL);
}

static int
s_bad_magic(struct site *s)
{
	struct proto_hello h = { 0x12345678, PROTO_VERSION, PROTO_CAP_ALL,
	    PROTO_ROLE_INITIATOR, (char *)"x" };

	return proto_send_msg(s->x, PROTO_HELLO, &h);
}

static int
s_bad_version(struct site *s)
{
	struct proto_hello h = { PROTO_MAGIC, PROTO_VERSION + 1, PROTO_CAP_ALL,
	    PROTO_ROLE_INITIATOR, (char *)"distsync 99" };

	return proto_send_msg(s->x, PROTO_HELLO, &h);
}

static int
s_bad_role(struct site *s)
{
	return proto_send_hello(s->x, PROTO_ROLE_RECEIVER, PROTO_CAP_ALL);
}

static int
s_hello_trailing(struct site *s)
{
	struct buf *b = buf_new(PROTO_FRAME_MAX);
	struct proto_hello h = { PROTO_MAGIC, PROTO_VERSION, PROTO_CAP_ALL,
	    PROTO_ROLE_INITIATOR, (char *)"x" };
	int r;

	proto_hello_encode(b, &h);
	buf_put_u8(b, 0);
	r = proto_send(s->x, PROTO_HELLO, b);
	buf_free(b);
	return r;
}

static int
s_oversize_frame(struct site *s)
{
	uint8_t hdr[5] = { 0x02, 0x00, 0x00, 0x00, PROTO_HELLO };	/* 32 MiB */

	return xport_write(s->x, hdr, sizeof(hdr));
}

static int
s_unknown_type(struct site *s)
{
	uint8_t frame[6] = { 0, 0, 0, 2, 99, 0 };

	return xport_write(s->x, frame, sizeof(frame));
}

static int
s_empty_frame(struct site *s)
{
	uint8_t frame[5] = { 0, 0, 0, 0, PROTO_HELLO };

	return xport_write(s->x, frame, sizeof(frame));
}

static int
s_open_missing(struct site *s)
{
	int r = send_hello(s);

	return r != 0 ? r : send_commit(s, "1", NULL, 0);
}

static int
s_open_bad_op(struct site *s)
{
	int r = send_hello(s);

	return r != 0 ? r : send_open(s, 9, 0, NULL);
}

static int
s_open_bad_flags(struct site *s)
{
	int r = send_hello(s);

	return r != 0 ? r : send_open(s, PROTO_OP_PUSH, 1u << 20, NULL);
}

static int
s_open_no_config(struct site *s)
{
	int r = send_hello(s);

	return r != 0 ? r : send_open(s, PROTO_OP_PUSH, 0, NULL);
}

static int
s_open_bad_config(struct site *s)
{
	int r = send_hello(s);

	return r != 0 ? r : send_open(s, PROTO_OP_PUSH, 0, "hosts: [this is: not: yaml\n");
}

static int
s_open_no_host(struct site *s)
{
	int r = send_hello(s);

	return r != 0 ? r : send_open(s, PROTO_OP_PUSH, 0,
	    "distribution: {name: x}\nhosts:\n  other: {path: /tmp/other}\n");
}

static int
s_open_outside_root(struct site *s)
{
	int r = send_hello(s);

	return r != 0 ? r : send_open(s, PROTO_OP_PUSH, 0,
	    "distribution: {name: x}\nhosts:\n  site: {path: /etc/distsync-test-outside}\n");
}

static int
s_open_state_outside_root(struct site *s)
{
	char *yaml = xasprintf("distribution: {name: x}\nhosts:\n  site: {path: %s, "
	    "state: /var/tmp/distsync-test-state}\n", abs_path("root/t", 0));
	int r = send_hello(s);

	if (r == 0)
		r = send_open(s, PROTO_OP_PUSH, 0, yaml);
	free(yaml);
	return r;
}

static int
s_open_push(struct site *s)
{
	int r = send_hello(s);

	return r != 0 ? r : send_open(s, PROTO_OP_PUSH, 0, NULL);
}

static int
s_eof(struct site *s)
{
	int r = send_hello(s);

	xport_shutdown(s->x);	/* then nothing: the stream ends */
	return r;
}

/* -- after STATE: the answer is RESULT (or RETRY at COMMIT) -- */

static int
s_unexpected_frame(struct site *s)
{
	int r = open_push(s, 0, NULL);

	return r != 0 ? r : send_hello(s);
}

static int
s_unsupported_encoding(struct site *s)
{
	uint8_t h[HASH_LEN] = { 1 };
	int r;

	s->caps = PROTO_CAP_ZSTD | PROTO_CAP_RESUME;	/* no PROTO_CAP_DELTA */
	if ((r = open_push(s, 0, NULL)) != 0)
		return r;
	return send_object(s, h, PROTO_ENC_ZSTD_PATCH, 10, 0, h);
}

static int
s_unknown_encoding(struct site *s)
{
	uint8_t h[HASH_LEN] = { 1 };
	int r = open_push(s, 0, NULL);

	return r != 0 ? r : send_object(s, h, PROTO_ENC_MAX + 1, 10, 0, NULL);
}

static int
s_offset_past_size(struct site *s)
{
	uint8_t h[HASH_LEN] = { 1 };
	int r = open_push(s, 0, NULL);

	return r != 0 ? r : send_object(s, h, PROTO_ENC_RAW, 10, 11, NULL);
}

static int
s_resume_past_staged(struct site *s)
{
	uint8_t h[HASH_LEN] = { 2 };
	int r = open_push(s, 0, NULL);

	return r != 0 ? r : send_object(s, h, PROTO_ENC_RAW, 100, 50, NULL);
}

static int
s_raw_overlong(struct site *s)
{
	uint8_t h[HASH_LEN] = { 3 };
	int r = open_push(s, 0, NULL);

	if (r == 0)
		r = send_object(s, h, PROTO_ENC_RAW, 4, 0, NULL);
	return r != 0 ? r : send_data(s, "12345678", 8);
}

static int
s_raw_short(struct site *s)
{
	uint8_t h[HASH_LEN] = { 3 };
	int r = open_push(s, 0, NULL);

	if (r == 0)
		r = send_object(s, h, PROTO_ENC_RAW, 8, 0, NULL);
	if (r == 0)
		r = send_data(s, "1234", 4);
	return r != 0 ? r : send_end(s);
}

static int
s_wrong_hash(struct site *s)
{
	uint8_t h[HASH_LEN] = { 4 };
	int r = open_push(s, 0, NULL);

	if (r == 0)
		r = send_object(s, h, PROTO_ENC_RAW, 4, 0, NULL);
	if (r == 0)
		r = send_data(s, "1234", 4);
	return r != 0 ? r : send_end(s);
}

static int
s_not_data(struct site *s)
{
	uint8_t h[HASH_LEN] = { 5 };
	int r = open_push(s, 0, NULL);

	if (r == 0)
		r = send_object(s, h, PROTO_ENC_RAW, 4, 0, NULL);
	return r != 0 ? r : send_commit(s, "1", NULL, 0);
}

static int
s_empty_data(struct site *s)
{
	uint8_t h[HASH_LEN] = { 5 };
	int r = open_push(s, 0, NULL);

	if (r == 0)
		r = send_object(s, h, PROTO_ENC_RAW, 4, 0, NULL);
	return r != 0 ? r : send_frame(s, PROTO_DATA, NULL, 0);
}

static int
s_end_payload(struct site *s)
{
	uint8_t h[HASH_LEN] = { 5 };
	int r = open_push(s, 0, NULL);

	if (r == 0)
		r = send_object(s, h, PROTO_ENC_RAW, 0, 0, NULL);
	return r != 0 ? r : send_frame(s, PROTO_OBJECT_END, "x", 1);
}

/* A zstd frame of LEN zero bytes (caller frees), *n its size. */
static uint8_t *
zstd_zeros(size_t len, size_t *n)
{
	uint8_t *zeros = xcalloc(len + 1, 1), *z = xmalloc(ZSTD_compressBound(len));

	*n = ZSTD_compress(z, ZSTD_compressBound(len), zeros, len, 1);
	free(zeros);
	return z;
}

static int
s_zstd_garbage(struct site *s)
{
	uint8_t h[HASH_LEN] = { 6 };
	int r = open_push(s, 0, NULL);

	if (r == 0)
		r = send_object(s, h, PROTO_ENC_ZSTD, 100, 0, NULL);
	return r != 0 ? r : send_data(s, "this is not zstd at all", 23);
}

static int
s_zstd_overlong(struct site *s)
{
	uint8_t h[HASH_LEN] = { 6 }, *z;
	size_t n;
	int r = open_push(s, 0, NULL);

	z = zstd_zeros(1u << 20, &n);
	if (r == 0)
		r = send_object(s, h, PROTO_ENC_ZSTD, 1000, 0, NULL);
	if (r == 0)
		r = send_data(s, z, n);
	free(z);
	return r;
}

static int
s_zstd_trailing(struct site *s)
{
	uint8_t h[HASH_LEN] = { 6 }, *z, *two;
	size_t n;
	int r = open_push(s, 0, NULL);

	z = zstd_zeros(100, &n);
	two = xmalloc(2 * n);
	memcpy(two, z, n);
	memcpy(two + n, z, n);
	if (r == 0)
		r = send_object(s, h, PROTO_ENC_ZSTD, 100, 0, NULL);
	if (r == 0)
		r = send_data(s, two, 2 * n);
	free(z);
	free(two);
	return r;
}

static int
s_delta_overlong(struct site *s)
{
	uint8_t h[HASH_LEN] = { 7 }, junk[8192] = { 0 };
	int r = open_push(s, 0, NULL);

	if (r == 0)
		r = send_object(s, h, PROTO_ENC_ZSTD_PATCH, 10, 0, h);
	return r != 0 ? r : send_data(s, junk, sizeof(junk));
}

static int
s_delta_resume_past(struct site *s)
{
	uint8_t h[HASH_LEN] = { 7 };
	int r = open_push(s, 0, NULL);

	return r != 0 ? r : send_object(s, h, PROTO_ENC_ZSTD_PATCH, 1000, 500, h);
}

static int
s_delta_no_basis(struct site *s)
{
	uint8_t h[HASH_LEN] = { 8 }, b[HASH_LEN] = { 9 };
	int r = open_push(s, 0, NULL);

	if (r == 0)
		r = send_object(s, h, PROTO_ENC_ZSTD_PATCH, 100, 0, b);
	if (r == 0)
		r = send_data(s, "junk", 4);
	if (r == 0)
		r = send_end(s);
	return r != 0 ? r : send_commit(s, "1", NULL, 0);
}

static int
s_delta_garbage(struct site *s)
{
	static const char basis[] = "the basis the site holds\n";
	uint8_t h[HASH_LEN] = { 8 }, b[HASH_LEN];
	int r = open_push(s, 0, NULL);

	/* A staged object is a basis; then a delta against it that does not decode. */
	if (r == 0)
		r = send_raw(s, basis, strlen(basis), b);
	if (r == 0)
		r = send_object(s, h, PROTO_ENC_ZSTD_PATCH, 100, 0, b);
	if (r == 0)
		r = send_data(s, "not a zstd patch", 16);
	if (r == 0)
		r = send_end(s);
	return r != 0 ? r : send_commit(s, "1", NULL, 0);
}

static int
s_object_too_big(struct site *s)
{
	uint8_t h[HASH_LEN] = { 10 };
	int r = open_push(s, 0, NULL);

	if (r == 0)
		r = send_object(s, h, PROTO_ENC_RAW, (uint64_t)1 << 40, 0, NULL);
	if (r == 0)
		r = send_data(s, "x", 1);
	xport_shutdown(s->x);	/* no more: a receiver that took it waits no longer */
	return r;
}

static int
s_delta_too_big(struct site *s)
{
	uint8_t h[HASH_LEN] = { 10 };
	int r = open_push(s, 0, NULL);

	if (r == 0)
		r = send_object(s, h, PROTO_ENC_RSYNC, (uint64_t)1 << 40, 0, h);
	if (r == 0)
		r = send_data(s, "x", 1);
	xport_shutdown(s->x);	/* no more: a receiver that took it waits no longer */
	return r;
}

static int
s_delta_wraps(struct site *s)
{
	uint8_t h[HASH_LEN] = { 10 };
	int r = open_push(s, 0, NULL);

	/* Its stream limit (size + slack) and room (stream + size) would wrap around. */
	if (r == 0)
		r = send_object(s, h, PROTO_ENC_ZSTD_PATCH, UINT64_MAX - 100, 0, h);
	if (r == 0)
		r = send_data(s, "x", 1);
	xport_shutdown(s->x);
	return r;
}

static int
s_signature_bad_path(struct site *s)
{
	static char *paths[] = { (char *)"../../etc/shadow" };
	struct buf *b = buf_new(PROTO_FRAME_MAX);
	int r = open_push(s, 0, NULL);

	/* The encoder refuses such a path: the bytes are put by hand. */
	buf_put_u32(b, 1);
	buf_put_cstring(b, paths[0]);
	if (r == 0)
		r = proto_send(s->x, PROTO_SIGNATURE_REQUEST, b);
	buf_free(b);
	return r;
}

static int
s_commit_bad_id(struct site *s)
{
	int r = open_push(s, 0, NULL);

	return r != 0 ? r : send_commit(s, "../1", NULL, 0);
}

static int
s_commit_bad_manifest(struct site *s)
{
	int r = open_push(s, 0, NULL);

	return r != 0 ? r : send_commit(s, "1", "distsync-manifest 1\nnot a line\n", 0);
}

/* COMMIT with these manifest bytes as they are (a packed one: PROTO_CAP_MANIFEST_ZSTD). */
static int
send_commit_bytes(struct site *s, const void *manifest, size_t len)
{
	struct proto_commit c;

	memset(&c, 0, sizeof(c));
	c.release = (char *)"1";
	c.manifest = (uint8_t *)(uintptr_t)manifest;
	c.manifest_len = len;
	return proto_send_msg(s->x, PROTO_COMMIT, &c);
}

/*
 * LEN zero bytes as one zstd frame with a 1 MiB window and no content size
 * (a stream: nothing up front says how much it makes), then EXTRA bytes.
 */
static uint8_t *
zeros_frame(size_t len, size_t extra, size_t *out_len)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	uint8_t *zeros = xcalloc(len + 1, 1), *out;
	size_t cap = ZSTD_compressBound(len) + extra;
	ZSTD_inBuffer in = { zeros, len, 0 };
	ZSTD_outBuffer o;

	out = xcalloc(cap, 1);
	o = (ZSTD_outBuffer){ out, cap - extra, 0 };
	ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 20);
	ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
	while (ZSTD_compressStream2(c, &o, &in, ZSTD_e_end) != 0)
		;
	memset(out + o.pos, 'x', extra);
	*out_len = o.pos + extra;
	ZSTD_freeCCtx(c);
	free(zeros);
	return out;
}

/* A packed manifest of 16 MiB + 1 zero bytes from 1 KB: refused at the frame limit. */
static int
s_commit_packed_bomb(struct site *s)
{
	size_t len;
	uint8_t *f = zeros_frame(PROTO_FRAME_MAX + 1, 0, &len);
	int r = open_push(s, 0, NULL);

	if (r == 0)
		r = send_commit_bytes(s, f, len);
	free(f);
	return r;
}

/* The zstd magic, then bytes that are no frame. */
static int
s_commit_packed_garbage(struct site *s)
{
	uint8_t g[36] = { 0x28, 0xb5, 0x2f, 0xfd };
	int r = open_push(s, 0, NULL);

	memset(g + 4, 0xff, sizeof(g) - 4);	/* a frame header with its reserved bit set */
	return r != 0 ? r : send_commit_bytes(s, g, sizeof(g));
}

/* A whole frame, then bytes after it. */
static int
s_commit_packed_trailing(struct site *s)
{
	size_t len;
	uint8_t *f = zeros_frame(16, 5, &len);
	int r = open_push(s, 0, NULL);

	if (r == 0)
		r = send_commit_bytes(s, f, len);
	free(f);
	return r;
}

static int
s_commit_newline(struct site *s)
{
	char *line = entry_line('f', "0644", "x", 1, "a\\x0ab"), *m;
	int r = open_push(s, 0, NULL);
	uint8_t h[HASH_LEN];

	if (r == 0)
		r = send_raw(s, "x", 1, h);
	m = xasprintf("distsync-manifest 1\n%s", line);
	if (r == 0)
		r = send_commit(s, "1", m, 0);
	free(line);
	free(m);
	return r;
}

static int
s_commit_link_out(struct site *s)
{
	static const char target[] = "../../etc/passwd";
	char *line = entry_line('l', "0777", target, strlen(target), "passwd"), *m;
	uint8_t h[HASH_LEN];
	int r = open_push(s, 0, NULL);

	if (r == 0)
		r = send_raw(s, target, strlen(target), h);
	m = xasprintf("distsync-manifest 1\n%s", line);
	if (r == 0)
		r = send_commit(s, "1", m, 0);
	free(line);
	free(m);
	return r;
}

static int
s_commit_setuid(struct site *s)
{
	char *line = entry_line('f', "4755", "#!/bin/sh\n", 10, "suid"), *m;
	uint8_t h[HASH_LEN];
	int r = open_push(s, 0, NULL);

	if (r == 0)
		r = send_raw(s, "#!/bin/sh\n", 10, h);
	m = xasprintf("distsync-manifest 1\n%s", line);
	if (r == 0)
		r = send_commit(s, "1", m, 0);
	free(line);
	free(m);
	return r;
}

static int
s_commit_missing(struct site *s)
{
	char *line = entry_line('f', "0644", "never sent", 10, "a"), *m;
	int r = open_push(s, 0, NULL);

	m = xasprintf("distsync-manifest 1\n%s", line);
	if (r == 0)
		r = send_commit(s, "1", m, 0);
	free(line);
	free(m);
	return r;
}

static int
s_commit_drift(struct site *s)
{
	char *line = entry_line('f', "0644", "x", 1, "only"), *m;
	uint8_t h[HASH_LEN];
	int r = open_push(s, PROTO_FLAG_FAIL_ON_DRIFT, NULL);

	if (r == 0)
		r = send_raw(s, "x", 1, h);
	m = xasprintf("distsync-manifest 1\n%s", line);
	if (r == 0)
		r = send_commit(s, "9", m, PROTO_FLAG_FAIL_ON_DRIFT);
	free(line);
	free(m);
	return r;
}

static int
s_rollback_nothing(struct site *s)
{
	int r = send_hello(s);

	return r != 0 ? r : send_open(s, PROTO_OP_ROLLBACK, 0, NULL);
}

static int
s_eof_mid_object(struct site *s)
{
	uint8_t h[HASH_LEN] = { 11 };
	int r = open_push(s, 0, NULL);

	if (r == 0)
		r = send_object(s, h, PROTO_ENC_RAW, 100, 0, NULL);
	if (r == 0)
		r = send_data(s, "half", 4);
	xport_shutdown(s->x);
	return r;
}

/* -- RESTORE (PROTO_OP_RESTORE): the peer names paths and a backup set -- */

/* HELLO, OPEN for a restore, then a RESTORE frame of PAYLOAD (put by hand). */
static int
send_restore_raw(struct site *s, struct buf *payload)
{
	int r;

	if ((r = send_hello(s)) == 0 && (r = send_open(s, PROTO_OP_RESTORE, 0, NULL)) == 0)
		r = proto_send(s->x, PROTO_RESTORE, payload);
	buf_free(payload);
	return r;
}

/* RESTORE of one PATH from set BACKUP ("": the newest), by hand: the encoder checks nothing. */
static int
send_restore(struct site *s, const char *backup, int in_place, const char *path)
{
	struct buf *b = buf_new(PROTO_FRAME_MAX);

	buf_put_cstring(b, backup);
	buf_put_u8(b, (uint8_t)in_place);
	buf_put_u32(b, 1);
	buf_put_cstring(b, path);
	return send_restore_raw(s, b);
}

static int
s_restore_dotdot(struct site *s)
{
	return send_restore(s, "", 0, "../outside/secret");
}

static int
s_restore_inner_dotdot(struct site *s)
{
	return send_restore(s, "", 1, "dir/../../outside/x");
}

static int
s_restore_absolute(struct site *s)
{
	return send_restore(s, "", 0, "/etc/passwd");
}

static int
s_restore_newline(struct site *s)
{
	return send_restore(s, "", 0, "dir/f\nonly");
}

static int
s_restore_nul(struct site *s)
{
	struct buf *b = buf_new(PROTO_FRAME_MAX);
	static const char path[] = "only\0../../etc/passwd";

	buf_put_cstring(b, "");
	buf_put_u8(b, 0);
	buf_put_u32(b, 1);
	buf_put_string(b, path, sizeof(path) - 1);
	return send_restore_raw(s, b);
}

static int
s_restore_huge_count(struct site *s)
{
	struct buf *b = buf_new(PROTO_FRAME_MAX);

	buf_put_cstring(b, "");
	buf_put_u8(b, 0);
	buf_put_u32(b, UINT32_MAX);
	buf_put_cstring(b, "only");
	return send_restore_raw(s, b);
}

static int
s_restore_no_path(struct site *s)
{
	struct buf *b = buf_new(PROTO_FRAME_MAX);

	buf_put_cstring(b, "");
	buf_put_u8(b, 0);
	buf_put_u32(b, 0);
	return send_restore_raw(s, b);
}

static int
s_restore_bad_flag(struct site *s)
{
	return send_restore(s, "", 2, "only");
}

static int
s_restore_backup_dotdot(struct site *s)
{
	return send_restore(s, "..", 0, "only");
}

static int
s_restore_backup_slash(struct site *s)
{
	return send_restore(s, "../../outside", 0, "only");
}

static int
s_restore_not_offered(struct site *s)
{
	s->caps &= ~(uint64_t)PROTO_CAP_RESTORE;
	return send_restore(s, "", 0, "only");
}

static int
s_restore_in_place(struct site *s)
{
	return send_restore(s, "", 1, "dir/f");
}

static int
s_restore_symlink(struct site *s)
{
	return send_restore(s, "1", 0, "link");
}

static int
s_restore_dir_f(struct site *s)
{
	return send_restore(s, "", 0, "dir/f");
}

static int
s_restore_never_kept(struct site *s)
{
	return send_restore(s, "", 1, "dir/never");
}

static const struct refusal refusals[] = {
	/* Frames (proto.c), any time. */
	{ "a frame over 16 MiB", 0, s_oversize_frame, PROTO_ERROR, DS_ERR_PROTO,
	    "over the 16777216 byte limit" },
	{ "an unknown frame type", 0, s_unknown_type, PROTO_ERROR, DS_ERR_PROTO,
	    "unknown frame type 99" },
	{ "a frame of length 0", 0, s_empty_frame, PROTO_ERROR, DS_ERR_PROTO,
	    "frame of length 0" },
	{ "trailing bytes in a frame", 0, s_hello_trailing, PROTO_ERROR, DS_ERR_PROTO,
	    "HELLO frame: trailing bytes" },
	{ "the stream ends", 0, s_eof, 0, DS_ERR_CONNECT, NULL },
	/* HELLO. */
	{ "a first frame that is not HELLO", 0, s_not_hello, PROTO_ERROR, DS_ERR_PROTO,
	    "expected a HELLO frame, got OPEN" },
	{ "HELLO with a bad magic", 0, s_bad_magic, PROTO_ERROR, DS_ERR_PROTO,
	    "bad magic: the peer is not distsync" },
	{ "HELLO of another protocol version", 0, s_bad_version, PROTO_ERROR, DS_ERR_PROTO,
	    "protocol version mismatch" },
	{ "HELLO from a receiver", 0, s_bad_role, PROTO_ERROR, DS_ERR_PROTO,
	    "announced role 2 where 1 was expected" },
	/* OPEN, the host, the target. */
	{ "another frame instead of OPEN", 0, s_open_missing, PROTO_ERROR, DS_ERR_PROTO,
	    "expected a OPEN frame, got COMMIT" },
	{ "OPEN with an unknown operation", 0, s_open_bad_op, PROTO_ERROR, DS_ERR_PROTO,
	    "OPEN frame: unknown operation" },
	{ "OPEN with unknown flags", 0, s_open_bad_flags, PROTO_ERROR, DS_ERR_PROTO,
	    "OPEN frame: unknown flags" },
	{ "OPEN without the host's config (serve)", SITE_FROM_OPEN, s_open_no_config,
	    PROTO_ERROR, DS_ERR_PROTO, "OPEN carries no configuration for host site" },
	{ "OPEN with a config that does not load", SITE_FROM_OPEN, s_open_bad_config,
	    PROTO_ERROR, DS_ERR_CONFIG, "distsync.yml (from" },
	{ "OPEN with a config without the host", SITE_FROM_OPEN, s_open_no_host,
	    PROTO_ERROR, DS_ERR_CONFIG, "the configuration sent has no host 'site'" },
	{ "a target outside --root", SITE_FROM_OPEN | SITE_ROOT, s_open_outside_root,
	    PROTO_ERROR, DS_ERR_PRECONDITION, "it is outside --root" },
	{ "a state directory outside --root", SITE_FROM_OPEN | SITE_ROOT,
	    s_open_state_outside_root, PROTO_ERROR, DS_ERR_PRECONDITION,
	    "refusing state directory /var/tmp/distsync-test-state" },
	{ "a target whose lock is held", SITE_LOCKED, s_open_push, PROTO_ERROR,
	    DS_ERR_LOCKED, "locked by" },
	{ "a state directory that is a planted symlink", SITE_STATE_LINK, s_open_push,
	    PROTO_ERROR, DS_ERR_PRECONDITION, "the state directory is a symlink" },
	{ "ROLLBACK with nothing to roll back to", 0, s_rollback_nothing, PROTO_RESULT,
	    DS_ERR_NOTFOUND, "release to roll back to" },
	/* The push: frames out of place. */
	{ "HELLO again during a push", 0, s_unexpected_frame, PROTO_RESULT, DS_ERR_PROTO,
	    "unexpected HELLO frame during a push" },
	{ "a SIGNATURE_REQUEST path that climbs out", 0, s_signature_bad_path, PROTO_RESULT,
	    DS_ERR_PROTO, "SIGNATURE_REQUEST frame" },
	/* OBJECT and its DATA. */
	{ "an encoding no receiver knows", 0, s_unknown_encoding, PROTO_RESULT, DS_ERR_PROTO,
	    "OBJECT frame: unknown encoding" },
	{ "a delta to a receiver without deltas", 0, s_unsupported_encoding, PROTO_RESULT,
	    DS_ERR_UNSUPPORTED, "is not supported by this receiver" },
	{ "an offset past the object's size", 0, s_offset_past_size, PROTO_RESULT,
	    DS_ERR_PROTO, "offset past the object's size" },
	{ "a resume past what is staged", 0, s_resume_past_staged, PROTO_RESULT, DS_ERR_PROTO,
	    "resume at byte 50 but only 0 are staged" },
	{ "more DATA than the object's size", 0, s_raw_overlong, PROTO_RESULT, DS_ERR_PROTO,
	    "more data than the object's size" },
	{ "fewer bytes than the object's size", 0, s_raw_short, PROTO_RESULT, DS_ERR_CORRUPT,
	    "got 4 of 8 bytes" },
	{ "content whose SHA-256 is not its name", 0, s_wrong_hash, PROTO_RESULT,
	    DS_ERR_CORRUPT, "SHA-256" },
	{ "another frame inside an object", 0, s_not_data, PROTO_RESULT, DS_ERR_PROTO,
	    "expected DATA or OBJECT_END" },
	{ "an empty DATA frame", 0, s_empty_data, PROTO_RESULT, DS_ERR_PROTO,
	    "DATA frame: empty chunk" },
	{ "OBJECT_END with a payload", 0, s_end_payload, PROTO_RESULT, DS_ERR_PROTO,
	    "OBJECT_END frame: trailing bytes" },
	{ "zstd that does not decode", 0, s_zstd_garbage, PROTO_RESULT, DS_ERR_CORRUPT,
	    "zstd:" },
	{ "zstd decoding past the object's size", 0, s_zstd_overlong, PROTO_RESULT,
	    DS_ERR_CORRUPT, "decodes to more than the object's size" },
	{ "data after the zstd frame", 0, s_zstd_trailing, PROTO_RESULT, DS_ERR_CORRUPT,
	    "data after the end of the zstd frame" },
	{ "a delta larger than its object", 0, s_delta_overlong, PROTO_RESULT, DS_ERR_PROTO,
	    "its delta is larger than the object" },
	{ "a delta resumed past what is staged", 0, s_delta_resume_past, PROTO_RESULT,
	    DS_ERR_PROTO, "resume at byte 500 of its delta but only 0 are staged" },
	{ "the stream ends inside an object", 0, s_eof_mid_object, 0, DS_ERR_CONNECT, NULL },
	/* Space (issue 16, finding 6). */
	{ "an object larger than the free space", 0, s_object_too_big, PROTO_RESULT,
	    DS_ERR_NOSPACE, "not enough free space" },
	{ "a delta whose stream and content do not fit", 0, s_delta_too_big, PROTO_RESULT,
	    DS_ERR_NOSPACE, "not enough free space" },
	{ "a delta declaring 2^64 - 101 bytes", 0, s_delta_wraps, PROTO_RESULT, DS_ERR_NOSPACE,
	    "not enough free space" },
	/* Deltas that cannot be used: not refusals, the objects are asked for whole. */
	{ "a delta against a basis the site lacks", 0, s_delta_no_basis, PROTO_RETRY, 0,
	    NULL },
	{ "a delta that does not decode", 0, s_delta_garbage, PROTO_RETRY, 0, NULL },
	/* COMMIT. */
	{ "COMMIT with an invalid release id", 0, s_commit_bad_id, PROTO_RESULT, DS_ERR_PROTO,
	    "COMMIT names an invalid release id" },
	{ "COMMIT with a manifest that does not decode", 0, s_commit_bad_manifest,
	    PROTO_RESULT, DS_ERR_PROTO, "bad entry type" },
	{ "COMMIT with a packed manifest of 16 MiB + 1 from 1 KB", 0, s_commit_packed_bomb,
	    PROTO_RESULT, DS_ERR_PROTO, "COMMIT's manifest: decodes to more than 16777216 bytes" },
	{ "COMMIT with a packed manifest that is no zstd frame", 0, s_commit_packed_garbage,
	    PROTO_RESULT, DS_ERR_PROTO, "COMMIT's manifest: does not decode" },
	{ "COMMIT with bytes after its packed manifest", 0, s_commit_packed_trailing,
	    PROTO_RESULT, DS_ERR_PROTO, "COMMIT's manifest: has bytes after its frame" },
	{ "COMMIT naming a file with a newline", 0, s_commit_newline, PROTO_RESULT,
	    DS_ERR_PROTO, "newline in path" },
	{ "COMMIT with a symlink out of the tree", 0, s_commit_link_out, PROTO_RESULT,
	    DS_ERR_INVALID, "symlink target leads outside the tree" },
	{ "COMMIT with a setuid file", 0, s_commit_setuid, PROTO_RESULT, DS_ERR_INVALID,
	    "setuid, setgid or sticky mode" },
	{ "COMMIT of content never sent", 0, s_commit_missing, PROTO_RESULT, DS_ERR_NOTFOUND,
	    "is neither staged nor present" },
	{ "COMMIT over drift with --fail-on-drift", SITE_APPLIED, s_commit_drift,
	    PROTO_RESULT, DS_ERR_DRIFT, "refusing (--fail-on-drift)" },
	/* RESTORE: paths and a set named by the peer; nothing read or written outside. */
	{ "RESTORE of ../outside/secret", 0, s_restore_dotdot, PROTO_ERROR, DS_ERR_PROTO,
	    "RESTORE frame: backtracking component '..'" },
	{ "RESTORE in place of dir/../../outside/x", 0, s_restore_inner_dotdot, PROTO_ERROR,
	    DS_ERR_PROTO, "RESTORE frame: backtracking component '..'" },
	{ "RESTORE of an absolute path", 0, s_restore_absolute, PROTO_ERROR, DS_ERR_PROTO,
	    "RESTORE frame: absolute path" },
	{ "RESTORE of a path with a newline", 0, s_restore_newline, PROTO_ERROR, DS_ERR_PROTO,
	    "RESTORE frame: newline in path" },
	{ "RESTORE of a path with a NUL", 0, s_restore_nul, PROTO_ERROR, DS_ERR_PROTO,
	    "holds NUL" },
	{ "RESTORE of 2^32 - 1 paths", 0, s_restore_huge_count, PROTO_ERROR, DS_ERR_PROTO,
	    "list count is larger than the frame" },
	{ "RESTORE of no path", 0, s_restore_no_path, PROTO_ERROR, DS_ERR_PROTO,
	    "RESTORE frame: no path" },
	{ "RESTORE with an in-place flag of 2", 0, s_restore_bad_flag, PROTO_ERROR,
	    DS_ERR_PROTO, "RESTORE frame: bad in-place flag" },
	{ "RESTORE from backup set ..", SITE_BACKED, s_restore_backup_dotdot, PROTO_ERROR,
	    DS_ERR_INVALID, "'..' is not a backup set's id" },
	{ "RESTORE from backup set ../../outside", SITE_BACKED, s_restore_backup_slash,
	    PROTO_ERROR, DS_ERR_INVALID, "is not a backup set's id" },
	{ "RESTORE from a peer that did not offer it", 0, s_restore_not_offered, PROTO_ERROR,
	    DS_ERR_PROTO, "asked for a restore without offering it" },
	{ "RESTORE in place while the lock is held", SITE_BACKED | SITE_LOCKED,
	    s_restore_in_place, PROTO_ERROR, DS_ERR_LOCKED, "locked by" },
	{ "RESTORE of a symlink the set keeps", SITE_BACKED, s_restore_symlink, PROTO_ERROR,
	    DS_ERR_NOTKEPT, "link: backup set 1 keeps no copy of it" },
	{ "RESTORE of a path no set keeps", SITE_BACKED, s_restore_never_kept, PROTO_ERROR,
	    DS_ERR_NOTKEPT, "dir/never: no backup set keeps a copy of it" },
	{ "RESTORE in place under a planted symlink", SITE_BACKED | SITE_PARENT_LINK,
	    s_restore_in_place, PROTO_ERROR, DS_ERR_SYSTEM, "/t/dir/f:" },
	{ "RESTORE of a kept copy that is a planted symlink", SITE_BACKED | SITE_OBJECT_LINK,
	    s_restore_dir_f, PROTO_ERROR, DS_ERR_NOTKEPT, "dir/f: no backup set keeps" },
};

/* Reads the receiver's answer: its type, code and message (caller frees). */
static uint8_t
read_answer(struct site *s, int *code, char **message)
{
	struct proto_msg m;
	uint8_t type;

	*code = 0;
	*message = NULL;
	for (;;) {
		if (proto_recv(s->x, &type, s->payload) != 0)
			return 0;
		if (proto_msg_decode(type, s->payload, "site", &m) != 0)
			return 0;
		/* Its own HELLO, STATE, FOUND may come first: the script did not read them. */
		if (type != PROTO_HELLO && type != PROTO_STATE && type != PROTO_FOUND)
			break;
		proto_msg_free(&m);
	}
	if (type == PROTO_ERROR) {
		*code = m.u.error.code;
		*message = xstrdup(m.u.error.message);
	} else if (type == PROTO_RESULT) {
		*code = m.u.result.status;
		*message = xstrdup(m.u.result.message != NULL ? m.u.result.message : "");
	}
	proto_msg_free(&m);
	return type;
}

/* Applies a release with one file to the site, then edits it: drift. */
static int
apply_and_drift(struct site *s)
{
	struct target *t = NULL;
	struct report rep;
	int exit_status, r;

	mkdir("r1", 0755);
	tap_write_file("r1/only", "first\n", 6);
	if ((r = make_release(s->store, "r1", "1")) != 0)
		return r;
	r = push(s->config, s->store, "1", 0, &rep, &exit_status);
	report_release(&rep);
	if (r != 0)
		return r;
	(void)t;
	return tap_write_file("t/only", "edited\n", 7);
}

/*
 * Release 1 (only, dir/f, link -> only) applied, dir/f edited by hand,
 * then release 2 applied over it: backup set 1 keeps the drifted dir/f,
 * only, and the symlink (as a symlink: no copy a restore could send).
 */
static int
apply_and_back_up(struct site *s)
{
	struct report rep;
	int exit_status, r;

	mkdir("r1", 0755);
	mkdir("r1/dir", 0755);
	mkdir("r2", 0755);
	mkdir("r2/dir", 0755);
	mkdir("outside", 0755);
	if (tap_write_file("r1/only", "first\n", 6) != 0 ||
	    tap_write_file("r1/dir/f", "f one\n", 6) != 0 || symlink("only", "r1/link") != 0 ||
	    tap_write_file("r2/only", "second\n", 7) != 0 ||
	    tap_write_file("r2/dir/f", "f two\n", 6) != 0 || symlink("dir/f", "r2/link") != 0)
		return -1;
	if ((r = make_release(s->store, "r1", "1")) != 0 ||
	    (r = make_release(s->store, "r2", "2")) != 0)
		return r;
	r = push(s->config, s->store, "1", 0, &rep, &exit_status);
	report_release(&rep);
	if (r != 0)
		return r;
	if (tap_write_file("t/dir/f", "f edited\n", 9) != 0)
		return -1;
	r = push(s->config, s->store, "2", 0, &rep, &exit_status);
	report_release(&rep);
	return r;
}

/* SITE_OBJECT_LINK: set 1's copy of the drifted dir/f becomes a symlink to outside/secret. */
static int
plant_object_link(void)
{
	char hex[HASH_HEX_LEN + 1], *rel;
	uint8_t h[HASH_LEN];
	int r;

	hash_bytes("f edited\n", 9, h);
	hash_to_hex(h, hex);
	rel = xasprintf(".t.distsync/backup/1/objects/%s", hex);
	r = tap_write_file("outside/secret", "f edited\n", 9) != 0 || unlink(rel) != 0 ||
	    symlink(abs_path("outside/secret", 3), rel) != 0 ? -1 : 0;
	free(rel);
	return r;
}

/* The lock holder of SITE_LOCKED: a child holding the target open. */
static pid_t
hold_lock(void)
{
	int fds[2];
	pid_t pid;
	char c;

	if (pipe(fds) != 0)
		return -1;
	fflush(NULL);
	if ((pid = fork()) == 0) {
		struct target *t = NULL;

		close(fds[0]);
		if (site_open(abs_path("t", 0), NULL, 0, &t) != 0 || write(fds[1], "L", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(fds[1]);
	if (read(fds[0], &c, 1) != 1) {
		close(fds[0]);
		return -1;
	}
	close(fds[0]);
	return pid;
}

static void
run_refusal(const struct refusal *c, size_t i)
{
	struct site s;
	char dir[32], *message = NULL;
	uint8_t type;
	pid_t holder = -1;
	int code, status, want_exit;

	alarm(120);	/* a receiver that waits for what never comes fails the test */
	snprintf(dir, sizeof(dir), "case-%02zu", i);
	if (mkdir(dir, 0755) != 0 || chdir(dir) != 0) {
		CHECK(0, "%s: a directory for the case", c->name);
		return;
	}
	memset(&s, 0, sizeof(s));
	s.caps = PROTO_CAP_ALL;
	mkdir("repo", 0755);
	s.config = make_config((c->setup & SITE_ROOT) ? "root/t" : "t");
	if (s.config == NULL || store_open(abs_path("repo/.distsync", 0), 1, &s.store) != 0) {
		CHECK(0, "%s: config and store", c->name);
		goto out;
	}
	if (!(c->setup & SITE_FROM_OPEN)) {
		s.ro.config = s.config;
		s.ro.host = config_host(s.config, "site");
	}
	if (c->setup & SITE_ROOT) {
		mkdir("root", 0755);
		s.ro.root = abs_path("root", 3);
	}
	if (c->setup & SITE_APPLIED)
		CHECK(apply_and_drift(&s) == 0, "%s: release 1 applied, then edited", c->name);
	if (c->setup & SITE_BACKED)
		CHECK(apply_and_back_up(&s) == 0, "%s: release 2 applied over drift: set 1 kept",
		    c->name);
	if (c->setup & SITE_PARENT_LINK)
		CHECK(rename("t/dir", "dir-moved") == 0 && symlink("../outside", "t/dir") == 0,
		    "%s: t/dir -> ../outside", c->name);
	if (c->setup & SITE_OBJECT_LINK)
		CHECK(plant_object_link() == 0, "%s: set 1's copy -> outside/secret", c->name);
	if (c->setup & SITE_LOCKED)
		CHECK((holder = hold_lock()) > 0, "%s: another process holds the lock", c->name);
	if (c->setup & SITE_STATE_LINK) {
		mkdir("elsewhere", 0755);
		CHECK(symlink("elsewhere", ".t.distsync") == 0, "%s: .t.distsync -> elsewhere",
		    c->name);
	}
	if (site_start(&s) != 0) {
		CHECK(0, "%s: receiver started", c->name);
		goto out;
	}
	(void)c->script(&s);
	type = read_answer(&s, &code, &message);
	if (c->answer == 0) {
		CHECK(type == 0, "%s: no answer can reach the peer (got %s)", c->name,
		    type ? proto_type_name(type) : "none");
	} else {
		CHECK(type == c->answer && code == c->code, "%s: %s %d (got %s %d)", c->name,
		    proto_type_name(c->answer), c->code, type ? proto_type_name(type) : "nothing",
		    code);
	}
	if (c->message != NULL) {
		char *shown = util_printable(message != NULL ? message : "nothing", 0);

		CHECK(message != NULL && strstr(message, c->message) != NULL,
		    "%s: the peer is told \"%s\" (%s)", c->name, c->message, shown);
		free(shown);
	}
	status = site_stop(&s);
	want_exit = c->answer == PROTO_RETRY ? status : ds_exit_code(c->code);
	CHECK(status == want_exit, "%s: the receiver exits %d (%d)", c->name, want_exit, status);
	if (c->setup & SITE_STATE_LINK)
		CHECK(count_files("elsewhere", "") == 0, "%s: nothing was written through it",
		    c->name);
	if (c->setup & SITE_BACKED)
		CHECK(count_files("outside", "") == ((c->setup & SITE_OBJECT_LINK) ? 1 : 0),
		    "%s: nothing was written outside the target", c->name);
	if (c->setup & SITE_OBJECT_LINK) {
		char secret[16] = "";
		FILE *fp = fopen("outside/secret", "r");
		size_t len = fp != NULL ? fread(secret, 1, sizeof(secret), fp) : 0;

		if (fp != NULL)
			fclose(fp);
		CHECK(len == 9 && memcmp(secret, "f edited\n", 9) == 0,
		    "%s: outside/secret is as it was", c->name);
	}
	{
		struct stat st;

		CHECK(lstat("t/passwd", &st) == -1 && lstat("t/suid", &st) == -1,
		    "%s: nothing of a refused release is in the tree", c->name);
	}
out:
	if (holder > 0) {
		kill(holder, SIGKILL);
		waitpid(holder, NULL, 0);
	}
	free(message);
	store_free(s.store);
	config_free(s.config);
	if (chdir("..") != 0)
		exit(1);
}

static void
test_refusals(void)
{
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++)
		run_refusal(&refusals[i], i);
	alarm(0);
}

/* ---- a restore that is held, not refused ---- */

/* Does the file PATH hold exactly TEXT? */
static int
file_is(const char *path, const char *text)
{
	char buf[256];
	FILE *fp = fopen(path, "r");
	size_t len;

	if (fp == NULL)
		return 0;
	len = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	return len == strlen(text) && memcmp(buf, text, len) == 0;
}

/*
 * Reads the receiver's HELLO, RESTORED for PATH, then its content (unless
 * IN_PLACE) into *got (caller frees).
 */
static int
read_restored(struct site *s, const char *path, int in_place, char **got, size_t *len)
{
	struct proto_msg m;
	struct buf *content = buf_new(0);
	int r;

	*got = NULL;
	*len = 0;
	if ((r = proto_recv_msg(s->x, PROTO_HELLO, s->payload, &m)) != 0)
		goto out;
	proto_msg_free(&m);
	if ((r = proto_recv_msg(s->x, PROTO_RESTORED, s->payload, &m)) != 0)
		goto out;
	r = strcmp(m.u.restored.path, path) == 0 ? 0 : DS_ERR_PROTO;
	proto_msg_free(&m);
	while (r == 0 && !in_place) {
		if ((r = proto_recv_msg(s->x, 0, s->payload, &m)) != 0)
			break;
		if (m.type == PROTO_OBJECT_END)
			break;
		if (m.type == PROTO_DATA)
			buf_put(content, m.data, m.data_len);
		else
			r = DS_ERR_PROTO;
		proto_msg_free(&m);
	}
	if (r == 0) {
		*len = buf_len(content);
		*got = xmalloc(*len + 1);
		memcpy(*got, buf_ptr(content), *len);
		(*got)[*len] = '\0';
	}
out:
	buf_free(content);
	return r;
}

/*
 * What the refusals' planted symlinks stand beside: the kept copy of a
 * drifted file is sent as the set kept it, and put back in place over a
 * symlink planted at its own name -- the symlink is replaced, never
 * followed, so the file it pointed at outside the target is untouched.
 */
static void
test_restore_held(void)
{
	struct site s;
	char *got = NULL, *message = NULL;
	size_t len;
	int code;

	alarm(120);
	memset(&s, 0, sizeof(s));
	s.caps = PROTO_CAP_ALL;
	mkdir("repo", 0755);
	s.config = make_config("t");
	if (s.config == NULL || store_open(abs_path("repo/.distsync", 0), 1, &s.store) != 0) {
		CHECK(0, "config and store");
		goto out;
	}
	s.ro.config = s.config;
	s.ro.host = config_host(s.config, "site");
	CHECK(apply_and_back_up(&s) == 0, "release 2 applied over drift: set 1 kept");

	/* Sent: the drifted copy set 1 kept, the tree left alone. */
	CHECK(site_start(&s) == 0 && send_restore(&s, "", 0, "dir/f") == 0,
	    "RESTORE of dir/f sent");
	CHECK(read_restored(&s, "dir/f", 0, &got, &len) == 0 && got != NULL &&
	    strcmp(got, "f edited\n") == 0, "the content sent is the drifted copy (%s)",
	    got != NULL ? got : "none");
	free(got);
	got = NULL;
	CHECK(read_answer(&s, &code, &message) == PROTO_RESULT && code == 0,
	    "RESULT 0 (%d)", code);
	free(message);
	message = NULL;
	CHECK(site_stop(&s) == 0, "the receiver exits 0");
	CHECK(file_is("t/dir/f", "f two\n"), "the tree is left alone");

	/* In place, over a symlink planted at the file's own name. */
	CHECK(tap_write_file("outside/target", "untouched\n", 10) == 0 && unlink("t/dir/f") == 0 &&
	    symlink(abs_path("outside/target", 3), "t/dir/f") == 0,
	    "t/dir/f -> outside/target");
	CHECK(site_start(&s) == 0 && send_restore(&s, "1", 1, "dir/f") == 0,
	    "RESTORE in place of dir/f sent");
	CHECK(read_restored(&s, "dir/f", 1, &got, &len) == 0, "RESTORED dir/f");
	free(got);
	got = NULL;
	CHECK(read_answer(&s, &code, &message) == PROTO_RESULT && code == 0,
	    "RESULT 0 (%d)", code);
	free(message);
	message = NULL;
	CHECK(site_stop(&s) == 0, "the receiver exits 0");
	CHECK(file_is("outside/target", "untouched\n"),
	    "the file the symlink pointed at is untouched");
	{
		struct stat st;

		CHECK(lstat("t/dir/f", &st) == 0 && S_ISREG(st.st_mode) &&
		    file_is("t/dir/f", "f edited\n"),
		    "t/dir/f is a regular file again, holding the drifted copy");
	}
	CHECK(count_files("outside", "") == 1 && count_files("t/dir", "distsync-restore") == 0,
	    "nothing else written, no temp file left");
out:
	alarm(0);
	store_free(s.store);
	config_free(s.config);
}

/* ---- sessions that must work ---- */

/* A repository: its store and config, two releases of a small tree. */
struct repo {
	struct config	*config;
	struct store	*store;
};

/*
 * r1: a 200 KB module, a page and a symlink to it; r2: the module with a
 * few bytes changed (a delta's case), the page changed, a new file.
 */
static int
repo_make(struct repo *rp, const char *target)
{
	uint8_t *mod;
	size_t len = 200000;
	FILE *fp;

	memset(rp, 0, sizeof(*rp));
	mkdir("repo", 0755);
	mkdir("r1", 0755);
	mkdir("r1/openmrs_modules", 0755);
	mkdir("r1/frontend", 0755);
	if (write_pattern("r1/openmrs_modules/a.omod", len, 1) != 0 ||
	    tap_write_file("r1/frontend/index.html", "<html>1</html>\n", 15) != 0 ||
	    symlink("index.html", "r1/frontend/home.html") != 0)
		return -1;
	mkdir("r2", 0755);
	mkdir("r2/openmrs_modules", 0755);
	mkdir("r2/frontend", 0755);
	if ((fp = fopen("r1/openmrs_modules/a.omod", "rb")) == NULL)
		return -1;
	mod = xmalloc(len);
	if (fread(mod, 1, len, fp) != len) {
		fclose(fp);
		free(mod);
		return -1;
	}
	fclose(fp);
	memcpy(mod + 1000, "a new version", 13);
	memcpy(mod + 150000, "and another edit", 16);
	if (tap_write_file("r2/openmrs_modules/a.omod", mod, len) != 0 ||
	    tap_write_file("r2/frontend/index.html", "<html>2</html>\n", 15) != 0 ||
	    symlink("index.html", "r2/frontend/home.html") != 0 ||
	    tap_write_file("r2/frontend/new.js", "console.log(2)\n", 15) != 0) {
		free(mod);
		return -1;
	}
	free(mod);
	rp->config = make_config(target);
	if (rp->config == NULL || store_open(abs_path("repo/.distsync", 0), 1, &rp->store) != 0 ||
	    make_release(rp->store, "r1", "1") != 0 || make_release(rp->store, "r2", "2") != 0)
		return -1;
	return 0;
}

static void
repo_free(struct repo *rp)
{
	store_free(rp->store);
	config_free(rp->config);
}

/* Runs OP (verify, rollback) against the site; returns the sender's result, *rep filled. */
static int
ask(struct repo *rp, uint8_t op, struct report *rep)
{
	struct receiver_options ro;
	struct sender_options so;
	struct xport *x = NULL;
	int r;

	memset(&ro, 0, sizeof(ro));
	ro.config = rp->config;
	ro.host = config_host(rp->config, "site");
	memset(&so, 0, sizeof(so));
	so.op = op;
	so.config = rp->config;
	so.host = ro.host;
	report_init(rep, op, 0);
	if ((r = xport_fork_open("site", site_main, &ro, &x)) != 0)
		return r;
	r = sender_run(x, &so, rep);
	xport_free(x);
	return r;
}

/* Objects the push sent as a patch against a basis (zstd-patch or zippatch). */
static uint64_t
patches(const struct report *rep)
{
	return rep->enc_objects[PROTO_ENC_ZSTD_PATCH] + rep->enc_objects[PROTO_ENC_ZIP_PATCH];
}

/* The happy path: a first push, its delta, verify, rollback. */
static void
test_honest(void)
{
	struct repo rp;
	struct report rep;
	int r, site_exit;

	if (repo_make(&rp, "t") != 0) {
		CHECK(0, "a repository with releases 1 and 2");
		repo_free(&rp);
		return;
	}
	r = push(rp.config, rp.store, "1", 0, &rep, &site_exit);
	CHECK(r == 0 && site_exit == 0, "push 1 (%d, site %d)", r, site_exit);
	CHECK(same_tree("t", "r1"), "the site is release 1");
	CHECK(rep.result.added == 5 && rep.objects_sent == 3, "5 added, 3 objects (%" PRIu64
	    ", %" PRIu64 ")", rep.result.added, rep.objects_sent);
	report_release(&rep);
	r = push(rp.config, rp.store, "2", 0, &rep, &site_exit);
	CHECK(r == 0 && site_exit == 0, "push 2 (%d, site %d)", r, site_exit);
	CHECK(same_tree("t", "r2"), "the site is release 2");
	CHECK(patches(&rep) >= 1, "the module went as a patch (%" PRIu64 ")", patches(&rep));
	CHECK(rep.enc_bytes[PROTO_ENC_ZSTD_PATCH] + rep.enc_bytes[PROTO_ENC_ZIP_PATCH] < 2000,
	    "a small one");
	report_release(&rep);
	r = ask(&rp, PROTO_OP_VERIFY, &rep);
	CHECK(r == 0 && rep.result.changed == 0 && strcmp(rep.result.from, "2") == 0,
	    "verify: release 2, no drift");
	report_release(&rep);
	r = ask(&rp, PROTO_OP_ROLLBACK, &rep);
	CHECK(r == 0 && same_tree("t", "r1"), "rollback: release 1 again (%d)", r);
	report_release(&rep);
	repo_free(&rp);
}

/*
 * The delta cache removed, then made impossible to write (issue 16,
 * finding 12): pushes still send deltas; the cache is made again when it
 * can be.
 */
static void
test_deltas_cache(void)
{
	const char *deltas = "repo/.distsync/deltas";
	struct repo rp;
	struct report rep;
	struct stat st;
	int r, site_exit;

	if (repo_make(&rp, "t") != 0) {
		CHECK(0, "a repository with releases 1 and 2");
		repo_free(&rp);
		return;
	}
	r = push(rp.config, rp.store, "1", 0, &rep, &site_exit);
	report_release(&rep);
	CHECK(r == 0 && path_remove_tree(deltas) == 0, "release 1 pushed, deltas/ removed");
	r = push(rp.config, rp.store, "2", 0, &rep, &site_exit);
	CHECK(r == 0 && same_tree("t", "r2"), "push 2 without deltas/ (%d)", r);
	CHECK(patches(&rep) >= 1, "the module still went as a patch (%" PRIu64 ")",
	    patches(&rep));
	CHECK(stat(deltas, &st) == 0 && S_ISDIR(st.st_mode) && count_files(deltas, "") >= 1,
	    "deltas/ was made again and holds the patch");
	report_release(&rep);
	r = ask(&rp, PROTO_OP_ROLLBACK, &rep);
	report_release(&rep);
	CHECK(r == 0 && path_remove_tree(deltas) == 0 && tap_write_file(deltas, "x", 1) == 0,
	    "back at release 1; deltas/ is now a file: the cache cannot be written");
	r = push(rp.config, rp.store, "2", 0, &rep, &site_exit);
	CHECK(r == 0 && same_tree("t", "r2"), "push 2 with a cache it cannot write (%d)", r);
	CHECK(patches(&rep) >= 1, "the module still went as a patch, made for the session (%"
	    PRIu64 ")", patches(&rep));
	CHECK(count_files("repo/.distsync/tmp", "") == 0, "and it left nothing in tmp/");
	report_release(&rep);
	repo_free(&rp);
}

/*
 * An rsync delta is made against the signature of a drifted file: a basis
 * only the site vouches for. It is never cached, so sessions cannot grow
 * deltas/; and what killed sessions left there is tidied (finding 8).
 */
static void
test_rsync_uncached(void)
{
	const char *deltas = "repo/.distsync/deltas";
	struct repo rp;
	struct report rep;
	size_t entries = 0;
	int r, site_exit;

	if (repo_make(&rp, "t") != 0) {
		CHECK(0, "a repository with releases 1 and 2");
		repo_free(&rp);
		return;
	}
	r = push(rp.config, rp.store, "1", 0, &rep, &site_exit);
	report_release(&rep);
	CHECK(r == 0, "release 1 pushed");
	for (unsigned round = 0; round < 3; round++) {
		/* The site's module drifted, differently each time. */
		CHECK(write_pattern("t/openmrs_modules/a.omod", 200000, 1) == 0, "drift");
		{
			char edit[32];
			int fd = open("t/openmrs_modules/a.omod", O_WRONLY);

			snprintf(edit, sizeof(edit), "site edit %u", round);
			CHECK(fd != -1 && pwrite(fd, edit, strlen(edit), 5000) > 0,
			    "round %u: the site's module edited", round);
			if (fd != -1)
				close(fd);
		}
		r = push(rp.config, rp.store, "2", 0, &rep, &site_exit);
		CHECK(r == 0 && same_tree("t", "r2"), "round %u: push 2 over the drift (%d)",
		    round, r);
		CHECK(rep.enc_objects[PROTO_ENC_RSYNC] == 1,
		    "round %u: the drifted module went as an rsync delta", round);
		report_release(&rep);
		CHECK(count_files(deltas, ".rsync") == 0, "round %u: no rsync delta cached", round);
		if (round == 0)
			entries = count_files(deltas, "");
		else
			CHECK(count_files(deltas, "") == entries, "round %u: deltas/ holds %zu "
			    "entries, as after round 0 (%zu)", round, count_files(deltas, ""),
			    entries);
		r = ask(&rp, PROTO_OP_ROLLBACK, &rep);
		report_release(&rep);
		CHECK(r == 0, "round %u: rolled back", round);
	}
	repo_free(&rp);
}

/* What killed sessions leave in deltas/ goes; what live ones hold stays. */
static void
test_tidy(void)
{
	struct store *st = NULL;
	char live_tmp[128];
	int fds[2];
	pid_t holder;
	char c;

	CHECK(store_open(abs_path("store", 0), 1, &st) == 0, "a store");
	if (st == NULL)
		return;
	snprintf(live_tmp, sizeof(live_tmp), "store/deltas/c-d.zpatch.%ld.1.tmp", (long)getpid());
	CHECK(tap_write_file("store/deltas/a-b.zpatch.lock", "", 0) == 0 &&
	    tap_write_file("store/deltas/a-b.zpatch.999999999.7.tmp", "x", 1) == 0 &&
	    tap_write_file("store/deltas/a-b.zpatch.999999999.8.tmp.alt", "x", 1) == 0 &&
	    tap_write_file("store/deltas/e-f.rsync", "x", 1) == 0 &&
	    tap_write_file(live_tmp, "x", 1) == 0 &&
	    tap_write_file("store/deltas/c-d.zpatch", "x", 1) == 0 &&
	    tap_write_file("store/deltas/g-h.zpatch.lock", "", 0) == 0 && pipe(fds) == 0,
	    "debris of killed sessions, a live session's files, an entry");
	fflush(NULL);
	if ((holder = fork()) == 0) {
		int fd = open("store/deltas/g-h.zpatch.lock", O_RDWR);

		close(fds[0]);
		if (fd == -1 || flock(fd, LOCK_EX) != 0 || write(fds[1], "L", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(fds[1]);
	CHECK(read(fds[0], &c, 1) == 1, "another session holds g-h's lock");
	close(fds[0]);
	CHECK(dcache_tidy(st) == 4, "four leftovers removed");
	CHECK(count_files("store/deltas", "") == 3 && access(live_tmp, F_OK) == 0 &&
	    access("store/deltas/c-d.zpatch", F_OK) == 0 &&
	    access("store/deltas/g-h.zpatch.lock", F_OK) == 0,
	    "the entry, the live temp file and the held lock stay");
	kill(holder, SIGKILL);
	waitpid(holder, NULL, 0);
	store_free(st);
}

/* ---- a site that floods the repository with signatures (finding 8) ---- */

struct flood {
	uint8_t		 digest[HASH_LEN];	/* of release 1: the site claims it */
	char		**paths;		/* it claims these drifted */
	size_t		 npaths;
	size_t		 sig_len;		/* bytes of each signature it sends */
};

/*
 * A receiver that claims drift on every path and answers SIGNATURE_REQUEST
 * with a signature of sig_len junk bytes per path, then takes the objects
 * and hangs up at COMMIT.
 */
static int
flood_main(struct xport *x, void *arg)
{
	const struct flood *f = arg;
	struct buf *payload = buf_new(PROTO_FRAME_MAX);
	struct proto_state st;
	struct proto_msg m;
	uint8_t *junk = xmalloc(f->sig_len);
	int r;

	memset(junk, 'j', f->sig_len);
	memset(&st, 0, sizeof(st));
	st.release = (char *)"1";
	memcpy(st.digest, f->digest, HASH_LEN);
	st.free_bytes = (uint64_t)1 << 40;
	st.drift = f->paths;
	st.ndrift = f->npaths;
	if ((r = proto_recv_msg(x, PROTO_HELLO, payload, &m)) != 0)
		goto out;
	proto_msg_free(&m);
	/* No FOUND follows its STATE: it does not offer adoption. */
	if ((r = proto_send_hello(x, PROTO_ROLE_RECEIVER, PROTO_CAP_ALL & ~PROTO_CAP_ADOPT)) != 0 ||
	    (r = proto_recv_msg(x, PROTO_OPEN, payload, &m)) != 0)
		goto out;
	proto_msg_free(&m);
	if ((r = proto_send_msg(x, PROTO_STATE, &st)) != 0)
		goto out;
	while ((r = proto_recv_msg(x, 0, payload, &m)) == 0 && m.type != PROTO_COMMIT) {
		if (m.type == PROTO_SIGNATURE_REQUEST) {
			for (size_t i = 0; i < m.u.signature_request.npaths && r == 0; i++) {
				struct proto_signature sig;

				memset(&sig, 0, sizeof(sig));
				sig.path = m.u.signature_request.paths[i];
				sig.present = 1;
				hash_bytes(sig.path, strlen(sig.path), sig.hash);
				sig.size = 1u << 20;
				sig.sig = junk;
				sig.sig_len = f->sig_len;
				r = proto_send_msg(x, PROTO_SIGNATURE, &sig);
			}
			if (r == 0)
				r = proto_send(x, PROTO_SIGNATURE_END, NULL);
		}
		proto_msg_free(&m);
		if (r != 0)
			break;
	}
	proto_msg_free(&m);
out:
	free(junk);
	buf_free(payload);
	return 0;
}

struct flood_push {
	struct repo	*rp;
	struct flood	*flood;
	uint64_t	 signatures;	/* as the sender counted them */
};

/* In rss_run's child: a push of release 2 to the flooding site. */
static int
flood_push(void *arg)
{
	struct flood_push *fp = arg;
	struct sender_options so;
	struct report rep;
	struct xport *x = NULL;
	int r;

	memset(&so, 0, sizeof(so));
	so.op = PROTO_OP_PUSH;
	so.config = fp->rp->config;
	so.host = config_host(fp->rp->config, "site");
	so.store = fp->rp->store;
	so.release = "2";
	report_init(&rep, PROTO_OP_PUSH, 0);
	if (xport_fork_open("flood", flood_main, fp->flood, &x) != 0)
		return -1;
	(void)sender_run(x, &so, &rep);
	r = (int)rep.signatures;
	report_release(&rep);
	xport_free(x);
	return r;
}

/*
 * Every SIGNATURE a site sends was held in memory until the session ended:
 * 3.5 GB from one site claiming drift on 200 paths. Twenty signatures of
 * 15 MiB each: the sender's peak RSS must stay under 96 MiB (it grew by the
 * 300 MiB they add up to before).
 */
static void
test_signature_flood(void)
{
	struct flood f;
	struct flood_push fp;
	struct repo rp;
	struct manifest *m = NULL;
	char name[64], *paths[20];
	long growth = -1;
	int signatures = 0;

	memset(&rp, 0, sizeof(rp));
	mkdir("repo", 0755);
	mkdir("s1", 0755);
	mkdir("s2", 0755);
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "s1/f%02d.war", i);
		write_pattern(name, 4096, (unsigned)i + 1);
		snprintf(name, sizeof(name), "s2/f%02d.war", i);
		write_pattern(name, 4096, (unsigned)i + 100);
		paths[i] = xasprintf("f%02d.war", i);
	}
	rp.config = make_config("t");
	CHECK(rp.config != NULL && store_open(abs_path("repo/.distsync", 0), 1, &rp.store) == 0 &&
	    make_release(rp.store, "s1", "1") == 0 && make_release(rp.store, "s2", "2") == 0 &&
	    store_release_load(rp.store, "1", &m) == 0, "releases 1 and 2 of twenty files");
	memset(&f, 0, sizeof(f));
	if (m != NULL)
		manifest_digest(m, f.digest);
	f.paths = paths;
	f.npaths = 20;
	f.sig_len = 15u << 20;
	fp.rp = &rp;
	fp.flood = &f;
	alarm(600);	/* a sender and a site waiting on each other fail the test */
	CHECK(rss_run(flood_push, &fp, &growth, &signatures) == 0, "the push ran in a child");
	alarm(0);
	CHECK(signatures == 20, "the site sent 20 signatures of 15 MiB (%d)", signatures);
	CHECK(growth >= 0 && growth <= 96, "the sender's peak RSS grew by %ld MiB, at most 96 MiB",
	    growth);
	CHECK(count_files("repo/.distsync/tmp", "") == 0, "the spool left nothing in tmp/");
	for (int i = 0; i < 20; i++)
		free(paths[i]);
	manifest_free(m);
	repo_free(&rp);
}

/* ---- a small filesystem (finding 6) ---- */

/* Bytes available on the filesystem of PATH. */
static uint64_t
free_bytes(const char *path)
{
	struct statvfs sv;

	if (statvfs(path, &sv) != 0)
		return 0;
	return (uint64_t)sv.f_bavail * sv.f_frsize;
}

/* A scripted session on the site of CONFIG: SCRIPT runs, then the answer is read. */
static uint8_t
hostile_session(struct config *config, int (*script)(struct site *s, void *arg), void *arg,
    int *code)
{
	struct site s;
	char *message = NULL;
	uint8_t type;

	memset(&s, 0, sizeof(s));
	s.caps = PROTO_CAP_ALL;
	s.ro.config = config;
	s.ro.host = config_host(config, "site");
	if (site_start(&s) != 0)
		return 0;
	(void)script(&s, arg);
	type = read_answer(&s, code, &message);
	free(message);
	site_stop(&s);
	return type;
}

/* A zstd object declaring 2^40 bytes: zeros, 64 MiB of them in 2 KB. */
static int
h_zstd_bomb(struct site *s, void *arg)
{
	uint8_t h[HASH_LEN] = { 0x42 }, *z;
	size_t n;
	int r = open_push(s, 0, NULL);

	(void)arg;
	z = zstd_zeros(64u << 20, &n);
	if (r == 0)
		r = send_object(s, h, PROTO_ENC_ZSTD, (uint64_t)1 << 40, 0, NULL);
	if (r == 0)
		r = send_data(s, z, n);
	free(z);
	return r;
}

/* A raw object declared *(size_t *)arg bytes, sent whole but for its end: a part kept. */
static int
h_part(struct site *s, void *arg)
{
	size_t len = *(size_t *)arg;
	uint8_t h[HASH_LEN] = { 0x43 }, *zeros = xcalloc(len, 1);
	int r = open_push(s, 0, NULL);

	h[1] = (uint8_t)len;
	if (r == 0)
		r = send_object(s, h, PROTO_ENC_RAW, len, 0, NULL);
	if (r == 0)
		r = send_data(s, zeros, len);
	free(zeros);
	xport_shutdown(s->x);
	return r;
}

/* A real object of the next release staged whole, as a cut session leaves it. */
static int
h_staged(struct site *s, void *arg)
{
	const char *file = arg;
	uint8_t h[HASH_LEN], *data = xmalloc(8u << 20);
	FILE *fp = fopen(file, "rb");
	size_t len = fp != NULL ? fread(data, 1, 8u << 20, fp) : 0;
	int r = open_push(s, 0, NULL);

	if (fp != NULL)
		fclose(fp);
	if (r == 0)
		r = send_raw(s, data, len, h);
	free(data);
	xport_shutdown(s->x);
	return r;
}

/* Sets the mtime of every staged file whose name starts with PREFIX to WHEN. */
static void
age_staged(const char *staging, time_t when)
{
	struct timespec ts[2] = { { when, 0 }, { when, 0 } };
	struct dirent *de;
	DIR *d = opendir(staging);

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			utimensat(dirfd(d), de->d_name, ts, 0);
	closedir(d);
}

/*
 * A 24 MiB tmpfs: a declared 2^40 bytes is refused before a byte is
 * written; what a hostile session leaves in staging never stops the next
 * honest push, which clears it for room; a staged object the sender
 * counted on that had to go is sent again (RETRY).
 */
static void
test_no_space(void)
{
	const char *staging = "mnt/.t.distsync/staging";
	struct repo rp;
	struct report rep;
	size_t part = 18u << 20, junk = 6u << 20;
	uint64_t before;
	int code = 0, r, site_exit;
	uint8_t type;

	mkdir("mnt", 0755);
	if (mount("distsync-roles", abs_path("mnt", 0), "tmpfs", 0, "size=24m,mode=0755") != 0) {
		const char *ci = getenv("CI");

		CHECK(ci == NULL || strcmp(ci, "true") != 0,
		    "a tmpfs for the space tests (%s)%s", strerror(errno),
		    ci != NULL && strcmp(ci, "true") == 0 ? "" : " # SKIP needs root");
		return;
	}
	memset(&rp, 0, sizeof(rp));
	mkdir("repo", 0755);
	mkdir("r3", 0755);
	mkdir("r4", 0755);
	rp.config = make_config("mnt/t");
	CHECK(write_pattern("r3/big.war", 8u << 20, 3) == 0 &&
	    tap_write_file("r3/small.txt", "small\n", 6) == 0 &&
	    write_pattern("r4/big.war", 8u << 20, 3) == 0 &&
	    tap_write_file("r4/small.txt", "small\n", 6) == 0 &&
	    write_pattern("r4/extra.war", 4u << 20, 4) == 0 &&
	    write_pattern("r4/more.war", 3u << 20, 5) == 0 && rp.config != NULL &&
	    store_open(abs_path("repo/.distsync", 0), 1, &rp.store) == 0 &&
	    make_release(rp.store, "r3", "3") == 0 && make_release(rp.store, "r4", "4") == 0,
	    "releases 3 (8 MiB) and 4 (15 MiB), a 24 MiB tmpfs for the site");

	before = free_bytes("mnt");
	type = hostile_session(rp.config, h_zstd_bomb, NULL, &code);
	CHECK(type == PROTO_RESULT && code == DS_ERR_NOSPACE,
	    "a zstd object declaring 2^40 bytes: refused for space (%s %d)",
	    type ? proto_type_name(type) : "nothing", code);
	CHECK(count_files(staging, "") == 0, "nothing of it was staged");
	CHECK(free_bytes("mnt") + (1u << 20) >= before, "the free space is as before (%" PRIu64
	    " of %" PRIu64 ")", free_bytes("mnt"), before);

	type = hostile_session(rp.config, h_part, &part, &code);
	CHECK(count_files(staging, ".part") == 1 && free_bytes("mnt") < (8u << 20),
	    "a session cut after 18 MiB left its part: %" PRIu64 " bytes free",
	    free_bytes("mnt"));
	r = push(rp.config, rp.store, "3", 0, &rep, &site_exit);
	CHECK(r == 0 && site_exit == 0 && same_tree("mnt/t", "r3"),
	    "an honest push of 8 MiB still goes through (%d)", r);
	CHECK(count_files(staging, "") == 0, "the leftover made room, staging is empty");
	report_release(&rep);

	/* A cut session left release 4's extra.war staged whole, then junk came. */
	CHECK(hostile_session(rp.config, h_staged, (void *)"r4/extra.war", &code) == 0 &&
	    count_files(staging, "") == 1, "extra.war of release 4 staged by a cut session");
	age_staged(staging, 1000000000);
	hostile_session(rp.config, h_part, &junk, &code);
	CHECK(count_files(staging, "") == 2, "then 6 MiB of junk: %" PRIu64 " bytes free",
	    free_bytes("mnt"));
	r = push(rp.config, rp.store, "4", 0, &rep, &site_exit);
	CHECK(r == 0 && site_exit == 0 && same_tree("mnt/t", "r4"),
	    "release 4 goes through (%d)", r);
	CHECK(rep.fallbacks == 1, "the staged extra.war had to make room and was sent again "
	    "(%" PRIu64 ")", rep.fallbacks);
	report_release(&rep);

	repo_free(&rp);
	CHECK(umount2(abs_path("mnt", 0), MNT_DETACH) == 0, "tmpfs unmounted");
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	/* The receiver's children log every refusal; the checks say what matters. */
	if (getenv("DS_TEST_VERBOSE") == NULL)
		log_set_level(LOG_LEVEL_SILENT);
	tap_run("roles-refusals", test_refusals);
	tap_run("roles-restore-held", test_restore_held);
	tap_run("roles-honest", test_honest);
	tap_run("roles-deltas-cache", test_deltas_cache);
	tap_run("roles-rsync-uncached", test_rsync_uncached);
	tap_run("roles-tidy", test_tidy);
	tap_run("roles-signature-flood", test_signature_flood);
	tap_run("roles-no-space", test_no_space);
	return tap_done();
}
