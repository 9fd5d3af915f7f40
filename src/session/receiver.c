/*
 * The role that owns a target: HELLO, OPEN (lock, journal recovery, drift),
 * STATE, then objects into staging, COMMIT with the atomic engine, restarts,
 * RESULT. Everything the peer sends is checked before use: frames by proto,
 * paths by path_check, content by its SHA-256 (stage_finish).
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/path.h"
#include "base/xmalloc.h"
#include "codec/delta.h"
#include "config/config.h"
#include "repo/manifest.h"
#include "repo/store.h"
#include "session/decoder.h"
#include "session/receiver.h"
#include "session/room.h"
#include "site/commit.h"
#include "site/finish.h"
#include "site/history.h"
#include "site/site.h"
#include "site/stage.h"
#include "site/target.h"
#include "wire/proto.h"
#include "wire/xport.h"

/* Lists sent back (drift) stop at this many bytes so a frame always fits. */
#define LIST_BUDGET	(8u * 1024 * 1024)

struct basis_ref;

struct receiver {
	struct xport		*x;
	const struct receiver_options *opt;
	struct config		*own_config;	/* loaded from OPEN (serve) */
	const struct config	*config;
	const struct config_host *host;
	struct target		*t;
	struct proto_open	 open;
	struct buf		*payload;
	uint64_t		 caps;
	uint64_t		 objects;	/* received */
	uint64_t		 in0;		/* bytes_in at the start */
	ZSTD_DCtx		*dctx;
	uint8_t			*outbuf;
	size_t			 outsize;
	char			*errors;	/* error lines logged during the session, for the peer */
	size_t			 errors_len;
	struct basis_ref	*bases;		/* delta bases: current files, signed files */
	size_t			 nbases, abases;
	int			 bases_loaded, bases_sorted;
	uint8_t			*retry;		/* objects whose delta failed, HASH_LEN each */
	size_t			 nretry;
	uint64_t		 delta_objects;	/* received as deltas */
	uint64_t		 fallbacks;	/* of which asked for again whole */
	uint64_t		 done;		/* content bytes received, for progress */
	uint64_t		 total;		/* as PLAN announced them */
	struct decoder		*dec;		/* made with the first delta object */
	struct room		*room;		/* free space for what is announced (room.h) */
	int			 commits;	/* COMMITs received */
	int			 opened;	/* OPEN was received */
	int			 answered;	/* the peer had its first answer: RESULT ends the session */
	pthread_mutex_t		 errors_lock;	/* capture_error runs on the decoder too */
};

#define ERRORS_MAX	(PROTO_MESSAGE_MAX - 256)

/* log_set_capture hook: keeps error lines for the peer instead of printing them. */
static int
capture_error(const char *line, void *arg)
{
	struct receiver *rc = arg;
	size_t len = strlen(line);

	pthread_mutex_lock(&rc->errors_lock);
	if (rc->errors_len + len + 2 > ERRORS_MAX) {
		pthread_mutex_unlock(&rc->errors_lock);
		return 0;	/* too many to carry: print the rest here */
	}
	rc->errors = xreallocarray(rc->errors, rc->errors_len + len + 2, 1);
	if (rc->errors_len > 0)
		rc->errors[rc->errors_len++] = '\n';
	memcpy(rc->errors + rc->errors_len, line, len + 1);
	rc->errors_len += len;
	pthread_mutex_unlock(&rc->errors_lock);
	return 1;
}

/* Prints the kept error lines here when they could not reach the peer. */
static void
print_errors(struct receiver *rc)
{
	log_set_capture(NULL, NULL);
	if (rc->errors != NULL)
		proto_log_lines(rc->x->peer, rc->errors);
}

/* Copies paths into a list that fits LIST_BUDGET; returns the count kept. */
static size_t
budget_list(char **paths, size_t n)
{
	size_t bytes = 0, i;

	for (i = 0; i < n && i < PROTO_LIST_MAX; i++) {
		bytes += strlen(paths[i]) + 4;
		if (bytes > LIST_BUDGET)
			break;
	}
	return i;
}

static size_t
strv_len(char **v)
{
	size_t n = 0;

	while (v != NULL && v[n] != NULL)
		n++;
	return n;
}

/*
 * Resolves PATH (absolute) through symlinks into out (PATH_MAX bytes); the
 * part that does not exist yet (a first push creates it) is appended to its
 * nearest existing ancestor as written. Returns 0 or -1.
 */
static int
resolve_path(const char *path, char *out)
{
	char *dir, *base, *joined;
	int r;

	if (realpath(path, out) != NULL)
		return 0;
	if (errno != ENOENT || strcmp(path, "/") == 0 || path[0] != '/')
		return -1;
	dir = path_dirname(path);
	base = path_basename(path);
	r = -1;
	if (strcmp(base, "..") != 0 && strcmp(base, ".") != 0 && resolve_path(dir, out) == 0) {
		joined = path_join(out, base);
		if (strlen(joined) < PATH_MAX) {
			memcpy(out, joined, strlen(joined) + 1);
			r = 0;
		}
		free(joined);
	}
	free(dir);
	free(base);
	return r;
}

/* Is PATH ROOT itself or under it, both resolved through symlinks? */
static int
under_root(const char *root, const char *path)
{
	char rroot[PATH_MAX], rpath[PATH_MAX];
	size_t len;

	char *aroot = path_absolute(NULL, root);
	int r;

	r = resolve_path(aroot, rroot);
	free(aroot);
	if (r != 0 || resolve_path(path, rpath) != 0)
		return 0;
	if (strcmp(rroot, "/") == 0)
		return 1;
	len = strlen(rroot);
	return strncmp(rpath, rroot, len) == 0 && (rpath[len] == '\0' || rpath[len] == '/');
}

/* Resolves the host to serve: given locally, or from the YAML in OPEN. */
static int
resolve_host(struct receiver *rc)
{
	char *name = NULL;
	int r;

	if (rc->opt->host != NULL) {
		rc->config = rc->opt->config;
		rc->host = rc->opt->host;
		return 0;
	}
	if (rc->open.config_len == 0) {
		log_error("%s: OPEN carries no configuration for host %s", rc->x->peer,
		    rc->open.host);
		return DS_ERR_PROTO;
	}
	name = xasprintf("%s (from %s)", "distsync.yml", rc->x->peer);
	r = config_load_mem((const char *)rc->open.config, rc->open.config_len, name,
	    &rc->own_config);
	free(name);
	if (r != 0)
		return r;
	rc->config = rc->own_config;
	rc->host = config_host(rc->config, rc->open.host);
	if (rc->host == NULL) {
		log_error("%s: the configuration sent has no host '%s'", rc->x->peer,
		    rc->open.host);
		return DS_ERR_CONFIG;
	}
	return 0;
}

static int
open_target(struct receiver *rc)
{
	const char *root = rc->opt->root;
	char *state = NULL, *target = NULL, *deflt = NULL;
	int r;

	target = path_absolute(NULL, rc->host->path);
	if (rc->opt->state != NULL)
		state = path_absolute(NULL, rc->opt->state);
	else if (rc->host->state != NULL)
		state = path_absolute(NULL, rc->host->state);
	if (root != NULL) {
		if (!under_root(root, target)) {
			log_error("refusing target %s: it is outside --root %s", target, root);
			r = DS_ERR_PRECONDITION;
			goto out;
		}
		deflt = target_default_state_dir(target);
		if (state != NULL && rc->opt->state == NULL && strcmp(state, deflt) != 0 &&
		    !under_root(root, state)) {
			log_error("refusing state directory %s: it is outside --root %s and is "
			    "not the target's default state directory", state, root);
			r = DS_ERR_PRECONDITION;
			goto out;
		}
	}
	r = site_open(target, state, rc->open.lock_timeout, &rc->t);
out:
	free(deflt);
	free(target);
	free(state);
	return r;
}

/*
 * The space STATE announces: free, plus what staging holds, which the
 * objects of this push either reuse or clear for room (room.h) -- the
 * sender's check against it must not count leftovers as taken.
 */
static uint64_t
free_bytes(struct receiver *rc)
{
	struct statvfs sv;

	if (fstatvfs(target_state_fd(rc->t), &sv) != 0)
		return UINT64_MAX;
	return (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize + stage_usage(rc->t);
}

/*
 * Appends to st the delta streams cut mid-way (stage_list_encoded) as
 * PROTO_STAGED_ENCODED(enc) entries, so the sender resumes them at their
 * byte instead of sending the delta again.
 */
static void
list_encoded_parts(struct receiver *rc, struct proto_state *st)
{
	struct stage_encoded *parts = NULL;
	size_t n = 0;

	stage_list_encoded(rc->t, &parts, &n);
	for (size_t i = 0; i < n && st->nstaged < PROTO_LIST_MAX; i++) {
		st->staged = xreallocarray(st->staged, st->nstaged + 1, sizeof(*st->staged));
		memcpy(st->staged[st->nstaged].hash, parts[i].hash, HASH_LEN);
		st->staged[st->nstaged].complete = PROTO_STAGED_ENCODED(parts[i].encoding);
		st->staged[st->nstaged].offset = parts[i].size;
		st->nstaged++;
	}
	free(parts);
}

static int
send_state(struct receiver *rc)
{
	struct proto_state st;
	struct stage_object *staged = NULL;
	struct manifest *m = NULL;
	char *id = NULL, **drift = NULL;
	size_t nstaged = 0;
	int r;

	memset(&st, 0, sizeof(st));
	if ((r = target_current(rc->t, &id, &m)) != 0)
		goto out;
	if (id != NULL)
		manifest_digest(m, st.digest);
	st.release = id != NULL ? id : (char *)"";
	st.free_bytes = free_bytes(rc);
	if ((r = stage_list(rc->t, &staged, &nstaged)) != 0)
		goto out;
	if (nstaged > PROTO_LIST_MAX)
		nstaged = PROTO_LIST_MAX;
	st.staged = xcalloc(nstaged + 1, sizeof(*st.staged));
	st.nstaged = nstaged;
	for (size_t i = 0; i < nstaged; i++) {
		memcpy(st.staged[i].hash, staged[i].hash, HASH_LEN);
		st.staged[i].complete = staged[i].complete ? 1 : 0;
		st.staged[i].offset = staged[i].complete ? 0 : staged[i].size;
	}
	if (rc->caps & PROTO_CAP_DELTA)
		list_encoded_parts(rc, &st);
	if (id != NULL && (r = target_verify(rc->t, NULL, &drift)) != 0)
		goto out;
	st.drift = drift;
	st.ndrift = budget_list(drift, strv_len(drift));
	r = proto_send_msg(rc->x, PROTO_STATE, &st);
out:
	free(st.staged);
	free(staged);
	free(id);
	manifest_free(m);
	xfree_strv(drift);
	return r;
}

static int
send_manifest(struct receiver *rc)
{
	struct proto_manifest pm;
	struct manifest *m = NULL;
	char *data = NULL;
	int r;

	if ((r = target_current(rc->t, NULL, &m)) != 0)
		return r;
	manifest_encode(m, &data, &pm.len);
	pm.data = (uint8_t *)data;
	r = proto_send_msg(rc->x, PROTO_MANIFEST, &pm);
	free(data);
	manifest_free(m);
	return r;
}

/* Tells the caller's progress callback, if any, how far the objects are. */
static void
report(struct receiver *rc)
{
	if (rc->opt->progress != NULL)
		rc->opt->progress(rc->opt->progress_arg, rc->x->bytes_in, rc->done, rc->total);
}

/* Where the DATA of a raw or zstd object goes: staging/HEX.part. */
struct object_sink {
	const struct proto_object *ob;
	int		 fd;
	uint64_t	 written;	/* content bytes written since ob->offset */
	size_t		 zstd_left;	/* ZSTD_decompressStream's hint; 0 at the frame's end */
	const char	*what;
};

/* Writes one DATA chunk of an object, decoding it by encoding. */
static int
object_chunk(struct receiver *rc, void *arg, const uint8_t *data, size_t len)
{
	struct object_sink *os = arg;
	const struct proto_object *ob = os->ob;
	uint64_t want = ob->size - ob->offset;
	ZSTD_inBuffer in = { data, len, 0 };
	ZSTD_outBuffer out;
	size_t rem;

	if (ob->encoding == PROTO_ENC_RAW) {
		if (len > want - os->written) {
			log_error("%s: %s: more data than the object's size", rc->x->peer, os->what);
			return DS_ERR_PROTO;
		}
		if (fileio_write_all(os->fd, data, len) != 0) {
			log_errno("%s: staging %s", target_state_dir(rc->t), os->what);
			return DS_ERR_SYSTEM;
		}
		os->written += len;
		rc->done += len;
		report(rc);
		return 0;
	}
	while (in.pos < in.size) {
		if (os->zstd_left == 0) {
			log_error("%s: %s: data after the end of the zstd frame", rc->x->peer,
			    os->what);
			return DS_ERR_CORRUPT;
		}
		out = (ZSTD_outBuffer){ rc->outbuf, rc->outsize, 0 };
		rem = ZSTD_decompressStream(rc->dctx, &out, &in);
		if (ZSTD_isError(rem)) {
			log_error("%s: %s: zstd: %s", rc->x->peer, os->what, ZSTD_getErrorName(rem));
			return DS_ERR_CORRUPT;
		}
		if (out.pos > want - os->written) {
			log_error("%s: %s: decodes to more than the object's size", rc->x->peer,
			    os->what);
			return DS_ERR_CORRUPT;
		}
		if (out.pos > 0 && fileio_write_all(os->fd, rc->outbuf, out.pos) != 0) {
			log_errno("%s: staging %s", target_state_dir(rc->t), os->what);
			return DS_ERR_SYSTEM;
		}
		os->written += out.pos;
		os->zstd_left = rem;
		rc->done += out.pos;
	}
	report(rc);
	return 0;
}

/*
 * Delta objects (zstd-patch, rsync, zippatch). The encoded stream is staged
 * (stage_encoded_open) and decoded against the basis into HEX.part once
 * complete. OBJECT.offset > 0 appends to that stream: the sender's cached
 * encoding is a stable stream, so an offset into it is meaningful, and
 * STATE lists the streams staged (list_encoded_parts). A basis the site
 * does not hold, a delta that does not decode or content whose SHA-256 is
 * wrong is not an error: the object is listed for RETRY and the sender
 * sends it whole.
 */

/* Content the site holds, by hash: a delta's basis. */
struct basis_ref {
	uint8_t	 hash[HASH_LEN];
	char	*path;		/* under the target */
};

static int
basis_ref_cmp(const void *a, const void *b)
{
	return memcmp(((const struct basis_ref *)a)->hash, ((const struct basis_ref *)b)->hash,
	    HASH_LEN);
}

static void
bases_add(struct receiver *rc, const uint8_t hash[HASH_LEN], const char *path)
{
	rc->bases = xgrow(rc->bases, &rc->abases, rc->nbases + 1, sizeof(*rc->bases));
	memcpy(rc->bases[rc->nbases].hash, hash, HASH_LEN);
	rc->bases[rc->nbases].path = xstrdup(path);
	rc->nbases++;
	rc->bases_sorted = 0;
}

static void
bases_free(struct receiver *rc)
{
	for (size_t i = 0; i < rc->nbases; i++)
		free(rc->bases[i].path);
	free(rc->bases);
	rc->bases = NULL;
	rc->nbases = rc->abases = 0;
}

/* Opens a regular file under the target without following symlinks; -1 if not one. */
static int
open_target_file(struct receiver *rc, const char *path)
{
	struct stat st;
	int fd;

	fd = path_openat(target_root_fd(rc->t), path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Opens the content HASH for reading: a complete staged object, else a file
 * of the current release or one signed for the sender. The content is not
 * rehashed here: a basis that is not what it claims yields a wrong SHA-256
 * after decoding, which is caught there.
 */
static int
open_basis(struct receiver *rc, const uint8_t hash[HASH_LEN])
{
	struct basis_ref key, *ref;
	int fd;

	if ((fd = stage_object_open(rc->t, hash)) != -1)
		return fd;
	if (!rc->bases_loaded) {
		struct manifest *m = NULL;

		rc->bases_loaded = 1;
		if (target_current(rc->t, NULL, &m) == 0) {
			for (size_t i = 0; i < m->count; i++)
				if (m->entries[i].type == MANIFEST_FILE)
					bases_add(rc, m->entries[i].hash, m->entries[i].path);
		}
		manifest_free(m);
	}
	if (!rc->bases_sorted && rc->nbases > 0) {
		qsort(rc->bases, rc->nbases, sizeof(*rc->bases), basis_ref_cmp);
		rc->bases_sorted = 1;
	}
	memcpy(key.hash, hash, HASH_LEN);
	ref = rc->nbases == 0 ? NULL :
	    bsearch(&key, rc->bases, rc->nbases, sizeof(*rc->bases), basis_ref_cmp);
	if (ref == NULL)
		return -1;
	/* Equal hashes sit together; any of their files will do, the first that opens. */
	while (ref > rc->bases && memcmp(ref[-1].hash, hash, HASH_LEN) == 0)
		ref--;
	for (; ref < rc->bases + rc->nbases && memcmp(ref->hash, hash, HASH_LEN) == 0; ref++)
		if ((fd = open_target_file(rc, ref->path)) != -1)
			return fd;
	return -1;
}

/*
 * Answers SIGNATURE_REQUEST: one SIGNATURE per path (absent when it is not a
 * regular file, or its signature would not fit a frame), then SIGNATURE_END.
 * The signed files become bases for the deltas that follow.
 */
static int
send_signatures(struct receiver *rc, const struct proto_signature_request *req)
{
	struct proto_signature sig;
	int fd = -1, tfd = -1, r = 0;

	for (size_t i = 0; i < req->npaths; i++) {
		memset(&sig, 0, sizeof(sig));
		sig.path = req->paths[i];
		if ((fd = open_target_file(rc, req->paths[i])) != -1) {
			if ((tfd = stage_scratch_open(rc->t)) == -1) {
				r = DS_ERR_SYSTEM;
				goto out;
			}
			if (hash_fd(fd, sig.hash, &sig.size) == 0 && lseek(fd, 0, SEEK_SET) == 0 &&
			    delta_signature(fd, tfd, NULL) == 0 &&
			    lseek(tfd, 0, SEEK_SET) == 0 &&
			    fileio_read_fd(tfd, PROTO_FRAME_MAX - PATH_MAX_LEN - 256,
			    (char **)&sig.sig, &sig.sig_len) == 0) {
				sig.present = 1;
				bases_add(rc, sig.hash, req->paths[i]);
			}
			close(tfd);
			tfd = -1;
			close(fd);
			fd = -1;
		}
		r = proto_send_msg(rc->x, PROTO_SIGNATURE, &sig);
		free(sig.sig);
		if (r != 0)
			goto out;
	}
	r = proto_send(rc->x, PROTO_SIGNATURE_END, NULL);
out:
	if (fd != -1)
		close(fd);
	if (tfd != -1)
		close(tfd);
	return r;
}

/* Lists an object whose delta failed, for RETRY. */
static void
retry_add(struct receiver *rc, const uint8_t hash[HASH_LEN])
{
	for (size_t i = 0; i < rc->nretry; i++)
		if (memcmp(rc->retry + i * HASH_LEN, hash, HASH_LEN) == 0)
			return;
	rc->retry = xreallocarray(rc->retry, rc->nretry + 1, HASH_LEN);
	memcpy(rc->retry + rc->nretry * HASH_LEN, hash, HASH_LEN);
	rc->nretry++;
}

/* decoder_done_fn: a decoded object is staged, or asked for whole. */
static int
decoded(void *arg, const struct proto_object *ob, int result)
{
	struct receiver *rc = arg;

	if (result == 0) {
		rc->objects++;
		rc->done += ob->size;	/* a delta counts whole once decoded */
		report(rc);
		return 0;
	}
	if (result == DS_ERR_SYSTEM || result == DS_ERR_NOSPACE)
		return result;
	retry_add(rc, ob->hash);
	rc->fallbacks++;
	return 0;
}

/* Receives the DATA frames of WHAT up to OBJECT_END, handing each chunk to chunk(). */
static int
recv_data(struct receiver *rc, const char *what,
    int (*chunk)(struct receiver *, void *, const uint8_t *, size_t), void *arg)
{
	struct proto_msg m;
	int r;

	for (;;) {
		if ((r = proto_recv_msg(rc->x, 0, rc->payload, &m)) != 0)
			return r;
		if (m.type == PROTO_OBJECT_END)
			return 0;
		if (m.type != PROTO_DATA) {
			log_error("%s: expected DATA or OBJECT_END in %s, got %s", rc->x->peer,
			    what, proto_type_name(m.type));
			proto_msg_free(&m);
			return DS_ERR_PROTO;
		}
		r = chunk(rc, arg, m.data, m.data_len);
		proto_msg_free(&m);
		if (r != 0)
			return r;
	}
}

/* Where the DATA of a delta object goes: its staged stream. */
struct delta_sink {
	const struct proto_object *ob;
	int		 fd;
	uint64_t	 have;		/* bytes of the stream staged */
	uint64_t	 limit;		/* most bytes the stream may have */
	const char	*what;
};

/* Appends one DATA chunk to a delta object's stream. */
static int
delta_chunk(struct receiver *rc, void *arg, const uint8_t *data, size_t len)
{
	struct delta_sink *ds = arg;
	char name[STAGE_NAME_MAX];

	if (len > ds->limit - ds->have) {
		log_error("%s: %s: its delta is larger than the object", rc->x->peer, ds->what);
		return DS_ERR_PROTO;
	}
	if (fileio_write_all(ds->fd, data, len) != 0) {
		stage_encoded_name(ds->ob->hash, ds->ob->encoding, name);
		log_errno("%s/%s: write", target_state_dir(rc->t), name);
		return DS_ERR_SYSTEM;
	}
	ds->have += len;
	report(rc);
	return 0;
}

/* Receives DATA... OBJECT_END of a delta object: stage the stream, then decode it. */
static int
recv_delta_object(struct receiver *rc, const struct proto_object *ob, const char *what)
{
	/* The sender sends a delta only when it is not larger than the content (delta.h). */
	struct delta_sink ds = { ob, -1, ob->offset, ob->size + DELTA_RAW_SLACK + 4096, what };
	uint64_t staged;
	int basis, r;

	/* Room for the rest of the stream and for what it decodes to (no sum that wraps). */
	room_touch(rc->room, ob->hash);
	if ((r = room_reserve(rc->room, rc->t, ob->size > UINT64_MAX / 4 ? UINT64_MAX :
	    ds.limit - ob->offset + ob->size)) != 0)
		return r;
	if ((r = stage_encoded_open(rc->t, ob->hash, ob->encoding, &ds.fd, &staged)) != 0)
		return r;
	if (ob->offset > staged) {
		log_error("%s: %s: resume at byte %" PRIu64 " of its delta but only %jd are "
		    "staged", rc->x->peer, what, ob->offset, (intmax_t)staged);
		r = DS_ERR_PROTO;
		goto out;
	}
	if ((r = stage_encoded_seek(rc->t, ob->hash, ob->encoding, ds.fd, ob->offset)) != 0)
		goto out;
	if (ob->offset > 0)
		log_info("%s: %s: resuming its %s stream at byte %" PRIu64, rc->x->peer, what,
		    delta_encoding_name(ob->encoding), ob->offset);
	else
		log_debug("%s: receiving %s as %s", rc->x->peer, what,
		    delta_encoding_name(ob->encoding));
	if ((r = recv_data(rc, what, delta_chunk, &ds)) != 0)
		goto out;
	rc->delta_objects++;
	if ((basis = open_basis(rc, ob->basis)) == -1) {
		log_warn("%s: %s: the basis of its delta is not on this site; asking for the "
		    "whole object", rc->x->peer, what);
		stage_encoded_remove(rc->t, ob->hash, ob->encoding);
		retry_add(rc, ob->hash);
		rc->fallbacks++;
		r = 0;
		goto out;
	}
	if (rc->dec == NULL)
		rc->dec = decoder_new(rc->t, rc->x->peer, decoded, rc);
	r = decoder_submit(rc->dec, ob, basis, ds.fd, what);
	ds.fd = -1;
out:
	if (ds.fd != -1)
		close(ds.fd);
	return r;
}

/* Receives DATA... OBJECT_END for the object announced by ob into staging. */
static int
recv_object(struct receiver *rc, const struct proto_object *ob)
{
	struct object_sink os = { ob, -1, 0, 1, NULL };
	uint64_t have = 0;
	char hex[HASH_HEX_LEN + 1], what[HASH_HEX_LEN + 16];
	int r;

	hash_to_hex(ob->hash, hex);
	snprintf(what, sizeof(what), "object %s", hex);
	os.what = what;
	if (ob->encoding != PROTO_ENC_RAW && ob->encoding != PROTO_ENC_ZSTD) {
		if ((rc->caps & PROTO_CAP_DELTA) == 0 || !delta_encoding_valid(ob->encoding)) {
			log_error("%s: %s: encoding %u is not supported by this receiver",
			    rc->x->peer, what, ob->encoding);
			return DS_ERR_UNSUPPORTED;
		}
		return recv_delta_object(rc, ob, what);
	}
	if (ob->offset > 0) {
		if ((r = stage_partial(rc->t, ob->hash, &have)) != 0)
			return r;
		if (ob->offset > have) {
			log_error("%s: %s: resume at byte %" PRIu64 " but only %" PRIu64
			    " are staged", rc->x->peer, what, ob->offset, have);
			return DS_ERR_PROTO;
		}
	}
	room_touch(rc->room, ob->hash);
	if ((r = room_reserve(rc->room, rc->t, ob->size - ob->offset)) != 0)
		return r;
	if ((r = stage_open(rc->t, ob->hash, ob->offset, &os.fd)) != 0)
		return r;
	if (ob->offset > 0)
		log_info("%s: %s: resuming at byte %" PRIu64 " of %" PRIu64, rc->x->peer, what,
		    ob->offset, ob->size);
	else
		log_debug("%s: receiving %s (%s, %" PRIu64 " bytes)", rc->x->peer, what,
		    ob->encoding == PROTO_ENC_ZSTD ? "zstd" : "raw", ob->size);
	if (ob->encoding == PROTO_ENC_ZSTD)
		ZSTD_DCtx_reset(rc->dctx, ZSTD_reset_session_only);
	if ((r = recv_data(rc, what, object_chunk, &os)) != 0)
		goto out;
	if (os.written != ob->size - ob->offset ||
	    (ob->encoding == PROTO_ENC_ZSTD && os.zstd_left != 0)) {
		log_error("%s: %s: got %" PRIu64 " of %" PRIu64 " bytes", rc->x->peer, what,
		    os.written, ob->size - ob->offset);
		r = DS_ERR_CORRUPT;
		goto out;
	}
	r = stage_finish(rc->t, ob->hash, os.fd);
	os.fd = -1;
	if (r == 0)
		rc->objects++;
out:
	if (os.fd >= 0)
		stage_abort(rc->t, ob->hash, os.fd);
	return r;
}

/* Fills res from a commit report. */
static void
result_from_report(struct receiver *rc, const struct commit_report *rep,
    struct proto_result *res)
{
	size_t nd = strv_len(rep->drifted_paths);

	res->from = xstrdup(rep->from_release ? rep->from_release : "");
	res->to = xstrdup(rep->to_release ? rep->to_release : "");
	res->added = rep->added;
	res->updated = rep->updated + rep->mode_changed;
	res->deleted = rep->deleted;
	res->changed = strv_len(rep->changed_paths);
	res->objects = rc->objects;
	res->bytes = rc->x->bytes_in - rc->in0;
	if (nd > 0) {
		nd = budget_list(rep->drifted_paths, nd);
		res->drift = xcalloc(nd + 1, sizeof(char *));
		for (size_t i = 0; i < nd; i++)
			res->drift[i] = xstrdup(rep->drifted_paths[i]);
		res->ndrift = nd;
	}
}

static void
commit_options(struct receiver *rc, uint32_t flags, struct commit_opts *co)
{
	memset(co, 0, sizeof(*co));
	co->owner = rc->host->owner;
	co->group = rc->host->group;
	co->keep_backups = rc->host->keep_backups;
	co->fail_on_drift = (flags & PROTO_FLAG_FAIL_ON_DRIFT) != 0;
	co->dry_run = (flags & PROTO_FLAG_DRY_RUN) != 0;
}

/* Moves what finishing reported (the services restarted, health) into res. */
static void
result_from_finish(struct finish_report *fr, struct proto_result *res)
{
	res->services = fr->services;
	res->nservices = fr->nservices;
	res->health = fr->health;
	if (res->health != NULL && strlen(res->health) > PROTO_STRING_MAX)
		res->health[PROTO_STRING_MAX] = '\0';
	memset(fr, 0, sizeof(*fr));
}

/* The site an apply of this session finishes on (finish.h). */
static void
finish_site(struct receiver *rc, const struct commit_opts *co, uint32_t flags,
    struct finish_site *fs)
{
	fs->t = rc->t;
	fs->config = rc->config;
	fs->host = rc->host;
	fs->opts = co;
	fs->no_restart = (flags & PROTO_FLAG_NO_RESTART) != 0;
}

/* Applies a COMMIT: the manifest, the atomic engine, then finish_apply. */
static int
do_commit(struct receiver *rc, const struct proto_commit *c, struct proto_result *res)
{
	struct manifest *to = NULL;
	struct commit_report rep;
	struct commit_opts co;
	struct finish_site fs;
	struct finish_report fr;
	int r;

	memset(&rep, 0, sizeof(rep));
	res->flags = c->flags;
	if (store_release_id_check(c->release) != 0) {
		log_error("%s: COMMIT names an invalid release id", rc->x->peer);
		return DS_ERR_PROTO;
	}
	if (c->manifest_len == 0) {
		/* The sender saw our digest: the release is the manifest we hold. */
		if ((r = target_current(rc->t, NULL, &to)) != 0)
			return r;
	} else if ((r = manifest_decode((const char *)c->manifest, c->manifest_len,
	    c->release, &to)) != 0)
		return DS_ERR_PROTO;
	commit_options(rc, c->flags, &co);
	co.release_id = c->release;
	co.to = to;
	r = commit_apply(rc->t, &co, &rep);
	result_from_report(rc, &rep, res);
	finish_site(rc, &co, c->flags, &fs);
	r = finish_apply(&fs, to, &rep, r, &fr);
	result_from_finish(&fr, res);
	commit_report_release(&rep);
	manifest_free(to);
	return r;
}

static int
do_rollback(struct receiver *rc, struct proto_result *res)
{
	struct commit_report rep;
	struct commit_opts co;
	struct finish_site fs;
	struct finish_report fr;
	int r;

	memset(&rep, 0, sizeof(rep));
	commit_options(rc, rc->open.flags, &co);
	r = commit_rollback(rc->t, &co, &rep);
	result_from_report(rc, &rep, res);
	res->flags = rc->open.flags;
	finish_site(rc, &co, rc->open.flags, &fs);
	r = finish_rollback(&fs, &rep, r, &fr);
	result_from_finish(&fr, res);
	commit_report_release(&rep);
	return r;
}

/*
 * A verify's RESULT carries the current release, the drift, and as its
 * message the last history.log line (for "distsync status").
 */
static int
do_verify(struct receiver *rc, struct proto_result *res)
{
	char **drift = NULL, *id = NULL;
	size_t n;
	int r;

	if ((r = target_current(rc->t, &id, NULL)) != 0)
		return r;
	res->from = id != NULL ? id : xstrdup("");
	res->to = xstrdup(res->from);
	res->health = xstrdup("none");
	if ((r = target_verify(rc->t, NULL, &drift)) != 0)
		return r;
	n = budget_list(drift, strv_len(drift));
	res->drift = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		res->drift[i] = xstrdup(drift[i]);
	res->ndrift = n;
	res->changed = strv_len(drift);
	xfree_strv(drift);
	res->message = history_last_line(rc->t);
	return 0;
}

/* room_evicted_needed's callback: asked for again, as a delta that failed. */
static void
retry_evicted(const uint8_t *hash, void *arg)
{
	struct receiver *rc = arg;
	char hex[HASH_HEX_LEN + 1];

	hash_to_hex(hash, hex);
	log_info("%s: object %s made room for others: asking for it again", rc->x->peer, hex);
	retry_add(rc, hash);
}

/*
 * At the first COMMIT: staged objects the sender counted on that had to
 * make room (room.h) and that C's release needs join the RETRY list.
 */
static void
evicted_for_commit(struct receiver *rc, const struct proto_commit *c)
{
	struct manifest *to = NULL, *current = NULL;

	if (rc->commits++ > 0 || !room_evicted(rc->room) || c->manifest_len == 0 ||
	    manifest_decode((const char *)c->manifest, c->manifest_len, c->release, &to) != 0)
		return;		/* do_commit reports a manifest that does not decode */
	if (target_current(rc->t, NULL, &current) == 0)
		room_evicted_needed(rc->room, rc->t, to, current, retry_evicted, rc);
	manifest_free(to);
	manifest_free(current);
}

/* Serves the push after STATE: manifest requests, objects, then COMMIT. */
static int
serve_push(struct receiver *rc, struct proto_result *res)
{
	struct proto_msg m;
	int r;

	for (;;) {
		if ((r = proto_recv_msg(rc->x, 0, rc->payload, &m)) != 0)
			return r;
		switch (m.type) {
		case PROTO_MANIFEST_REQUEST:
			r = send_manifest(rc);
			break;
		case PROTO_OBJECT:
			r = recv_object(rc, &m.u.object);
			break;
		case PROTO_SIGNATURE_REQUEST:
			r = send_signatures(rc, &m.u.signature_request);
			break;
		case PROTO_PLAN:
			rc->total = m.u.plan.bytes;
			rc->done = 0;
			report(rc);
			break;
		case PROTO_COMMIT:
			/* Every delta decoded: the failures are in the RETRY list. */
			if ((r = decoder_collect(rc->dec, 1)) != 0)
				break;
			evicted_for_commit(rc, &m.u.commit);
			if (rc->nretry > 0) {
				/* Deltas failed: the sender sends those whole, then COMMITs again. */
				struct proto_retry rt = { rc->retry, rc->nretry };

				r = proto_send_msg(rc->x, PROTO_RETRY, &rt);
				free(rc->retry);
				rc->retry = NULL;
				rc->nretry = 0;
				break;
			}
			r = do_commit(rc, &m.u.commit, res);
			proto_msg_free(&m);
			return r;
		default:
			log_error("%s: unexpected %s frame during a push", rc->x->peer,
			    proto_type_name(m.type));
			r = DS_ERR_PROTO;
		}
		proto_msg_free(&m);
		if (r != 0)
			return r;
	}
}

/* Reports the end of the session to the peer as RESULT; returns 0 when sent. */
static int
send_result(struct receiver *rc, struct proto_result *res, int status)
{
	res->status = status;
	if (res->from == NULL)
		res->from = xstrdup("");
	if (res->to == NULL)
		res->to = xstrdup("");
	if (res->health == NULL)
		res->health = xstrdup("none");
	if (res->message == NULL)
		res->message = xstrdup(status == 0 ? "" : rc->errors != NULL ? rc->errors :
		    ds_strerror(status));
	if (res->bytes == 0)
		res->bytes = rc->x->bytes_in - rc->in0;
	res->objects = rc->objects;
	return proto_send_msg(rc->x, PROTO_RESULT, res);
}

/*
 * The session up to its answer: HELLO both ways, OPEN, the host and the
 * target, then the operation, which fills res.
 */
static int
serve(struct receiver *rc, struct proto_result *res)
{
	struct xport *x = rc->x;
	struct proto_msg m;
	int r;

	if ((r = proto_recv_msg(x, PROTO_HELLO, rc->payload, &m)) != 0)
		return r;
	r = proto_hello_check(&m.u.hello, x->peer, PROTO_ROLE_INITIATOR, PROTO_CAP_ALL, &rc->caps);
	proto_msg_free(&m);
	if ((r = r != 0 ? r : proto_send_hello(x, PROTO_ROLE_RECEIVER, PROTO_CAP_ALL)) != 0)
		return r;
	if ((r = proto_recv_msg(x, PROTO_OPEN, rc->payload, &m)) != 0)
		return r;
	rc->open = m.u.open;
	memset(&m, 0, sizeof(m));
	rc->opened = 1;
	if ((r = resolve_host(rc)) != 0)
		return r;
	/* Waiting for objects: the host's idle limit; the sender may be slow to encode. */
	if (x->idle_timeout == 0)
		x->idle_timeout = rc->host->idle_timeout;
	if ((r = open_target(rc)) != 0)
		return r;
	switch (rc->open.op) {
	case PROTO_OP_PUSH:
		if ((r = send_state(rc)) != 0)
			return r;
		rc->answered = 1;
		r = serve_push(rc, res);
		break;
	case PROTO_OP_ROLLBACK:
		r = do_rollback(rc, res);
		rc->answered = 1;
		break;
	case PROTO_OP_VERIFY:
		r = do_verify(rc, res);
		rc->answered = 1;
		break;
	}
	return r;
}

/*
 * Tells the peer how the session (status r) ended; returns 1 when the
 * answer reached it. Before the first answer an error is an ERROR frame,
 * after it a RESULT. A broken stream carries neither: the errors are
 * printed here then.
 */
static int
answer(struct receiver *rc, struct proto_result *res, int r)
{
	int delivered = 1;

	if (r == DS_ERR_CONNECT || r == DS_ERR_TIMEOUT)
		delivered = 0;
	else if (rc->answered || (rc->opened && rc->open.op != PROTO_OP_PUSH && r == 0))
		delivered = send_result(rc, res, r) == 0;
	else if (r != 0)
		delivered = proto_send_error(rc->x, r, "%s", rc->errors != NULL ? rc->errors :
		    ds_strerror(r)) == 0;
	if (!delivered)
		print_errors(rc);
	return delivered;
}

int
receiver_run(struct xport *x, const struct receiver_options *opt)
{
	struct receiver rc;
	struct proto_result res;
	int r, delivered;

	memset(&rc, 0, sizeof(rc));
	memset(&res, 0, sizeof(res));
	rc.x = x;
	rc.opt = opt;
	rc.in0 = x->bytes_in;
	rc.payload = buf_new(PROTO_FRAME_MAX);
	rc.dctx = ZSTD_createDCtx();
	rc.outsize = ZSTD_DStreamOutSize();
	rc.outbuf = xmalloc(rc.outsize);
	rc.room = room_new();
	pthread_mutex_init(&rc.errors_lock, NULL);
	log_set_capture(capture_error, &rc);

	r = serve(&rc, &res);
	decoder_free(rc.dec);
	delivered = answer(&rc, &res, r);
	log_set_capture(NULL, NULL);
	free(rc.errors);
	xport_shutdown(x);
	if (opt->result != NULL) {
		res.status = r;
		/* Errors the peer got (not printed here) go to the caller too. */
		if (delivered && res.message == NULL && rc.errors != NULL)
			res.message = xstrdup(rc.errors);
		*opt->result = res;
		memset(&res, 0, sizeof(res));
	}
	proto_result_free(&res);
	target_close(rc.t);
	proto_open_free(&rc.open);
	config_free(rc.own_config);
	bases_free(&rc);
	room_free(rc.room);
	free(rc.retry);
	ZSTD_freeDCtx(rc.dctx);
	free(rc.outbuf);
	buf_free(rc.payload);
	pthread_mutex_destroy(&rc.errors_lock);
	return r;
}
