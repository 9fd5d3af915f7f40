/*
 * The role that owns a target: HELLO, OPEN (lock, journal recovery, drift),
 * STATE, then objects into staging, COMMIT with the atomic engine, restarts,
 * RESULT. Everything the peer sends is checked before use: frames by proto,
 * paths by path_check, content by its SHA-256 (stage_finish).
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <dirent.h>

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
#include "compat/compat.h"
#include "config/config.h"
#include "repo/manifest.h"
#include "repo/store.h"
#include "session/receiver.h"
#include "site/commit.h"
#include "site/restart.h"
#include "site/site.h"
#include "site/stage.h"
#include "site/target.h"
#include "wire/proto.h"
#include "wire/xport.h"

/* Lists sent back (drift) stop at this many bytes so a frame always fits. */
#define LIST_BUDGET	(8u * 1024 * 1024)

struct basis_ref;

/*
 * A delta stream received whole, waiting to be decoded against its basis.
 * Decoding (a zippatch re-deflates a whole war) runs on one worker thread
 * while the session goes on receiving, so the link does not wait for it;
 * the results are taken in before COMMIT answers (RETRY for failures).
 */
struct decode_job {
	struct decode_job	*next;
	struct proto_object	 ob;
	int			 encfd;		/* the encoded stream */
	int			 basis;		/* opened by the session thread */
	char			*name;		/* staging/HEX.ENC.part, removed once decoded */
	char			*what;
	int			 result;
};

struct decoder {
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	pthread_t		 thread;
	int			 started, stop;
	struct decode_job	*queue, **queue_tail;	/* waiting */
	struct decode_job	*done;			/* decoded, not taken in yet */
	size_t			 busy;			/* queued or decoding */
};

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
	struct decoder		 dec;
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

static uint64_t
free_bytes(struct receiver *rc)
{
	struct statvfs sv;

	if (fstatvfs(target_state_fd(rc->t), &sv) != 0)
		return UINT64_MAX;
	return (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
}

/*
 * Appends to st the delta streams cut mid-way (staging/HEX.ENC.part, see
 * recv_delta_object) as PROTO_STAGED_ENCODED(enc) entries, so the sender
 * resumes them at their byte instead of sending the delta again.
 */
static void
list_encoded_parts(struct receiver *rc, struct proto_state *st)
{
	static const int encs[] = { PROTO_ENC_ZSTD_PATCH, PROTO_ENC_RSYNC, PROTO_ENC_ZIP_PATCH };
	char name[HASH_HEX_LEN + 32], hex[HASH_HEX_LEN + 1];
	struct dirent *de;
	struct stat sb;
	DIR *dir;
	int fd;

	fd = openat(target_state_fd(rc->t), "staging", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1 || (dir = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return;
	}
	while ((de = readdir(dir)) != NULL && st->nstaged < PROTO_LIST_MAX) {
		size_t len = strlen(de->d_name);

		if (len <= HASH_HEX_LEN + 1 || de->d_name[HASH_HEX_LEN] != '.')
			continue;
		memcpy(hex, de->d_name, HASH_HEX_LEN);
		hex[HASH_HEX_LEN] = '\0';
		for (size_t i = 0; i < sizeof(encs) / sizeof(encs[0]); i++) {
			snprintf(name, sizeof(name), "%s.%s.part", hex,
			    delta_encoding_name(encs[i]));
			if (strcmp(name, de->d_name) != 0 ||
			    fstatat(dirfd(dir), name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
			    !S_ISREG(sb.st_mode) || sb.st_size == 0)
				continue;
			st->staged = xreallocarray(st->staged, st->nstaged + 1,
			    sizeof(*st->staged));
			if (hash_from_hex(hex, HASH_HEX_LEN, st->staged[st->nstaged].hash) != 0)
				continue;
			st->staged[st->nstaged].complete = PROTO_STAGED_ENCODED(encs[i]);
			st->staged[st->nstaged].offset = (uint64_t)sb.st_size;
			st->nstaged++;
		}
	}
	closedir(dir);
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

/* Writes one DATA chunk of an object, decoding it by encoding. */
static int
object_data(struct receiver *rc, const struct proto_object *ob, int fd, const uint8_t *data,
    size_t len, uint64_t *written, size_t *zstd_left, const char *what)
{
	uint64_t want = ob->size - ob->offset;
	ZSTD_inBuffer in = { data, len, 0 };
	ZSTD_outBuffer out;
	size_t rem;

	if (ob->encoding == PROTO_ENC_RAW) {
		if (len > want - *written) {
			log_error("%s: %s: more data than the object's size", rc->x->peer, what);
			return DS_ERR_PROTO;
		}
		if (fileio_write_all(fd, data, len) != 0) {
			log_errno("%s: staging %s", target_state_dir(rc->t), what);
			return DS_ERR_SYSTEM;
		}
		*written += len;
		rc->done += len;
		report(rc);
		return 0;
	}
	while (in.pos < in.size) {
		if (*zstd_left == 0) {
			log_error("%s: %s: data after the end of the zstd frame", rc->x->peer, what);
			return DS_ERR_CORRUPT;
		}
		out = (ZSTD_outBuffer){ rc->outbuf, rc->outsize, 0 };
		rem = ZSTD_decompressStream(rc->dctx, &out, &in);
		if (ZSTD_isError(rem)) {
			log_error("%s: %s: zstd: %s", rc->x->peer, what, ZSTD_getErrorName(rem));
			return DS_ERR_CORRUPT;
		}
		if (out.pos > want - *written) {
			log_error("%s: %s: decodes to more than the object's size", rc->x->peer,
			    what);
			return DS_ERR_CORRUPT;
		}
		if (out.pos > 0 && fileio_write_all(fd, rc->outbuf, out.pos) != 0) {
			log_errno("%s: staging %s", target_state_dir(rc->t), what);
			return DS_ERR_SYSTEM;
		}
		*written += out.pos;
		*zstd_left = rem;
		rc->done += out.pos;
	}
	report(rc);
	return 0;
}

/*
 * Delta objects (zstd-patch, rsync). The encoded stream is staged as
 * staging/HEX.ENC.part and decoded against the basis into HEX.part once
 * complete. OBJECT.offset > 0 appends to that part: the sender's cached
 * encoding is a stable stream, so an offset into it is meaningful. (STATE
 * does not list these parts yet, so today a new session sends a delta
 * object from byte 0; deltas are small, whole-file parts do resume.) A basis the site does not hold, a
 * delta that does not decode or content whose SHA-256 is wrong is not an
 * error: the object is listed for RETRY and the sender sends it whole.
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
	if (!rc->bases_sorted) {
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
	char *tmpl = NULL;
	int fd = -1, tfd = -1, r = 0;

	for (size_t i = 0; i < req->npaths; i++) {
		memset(&sig, 0, sizeof(sig));
		sig.path = req->paths[i];
		if ((fd = open_target_file(rc, req->paths[i])) != -1) {
			tmpl = xasprintf("%s/staging/.signature.XXXXXX", target_state_dir(rc->t));
			if ((tfd = mkstemp(tmpl)) == -1) {
				log_errno("%s", tmpl);
				r = DS_ERR_SYSTEM;
				goto out;
			}
			unlink(tmpl);
			free(tmpl);
			tmpl = NULL;
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
	free(tmpl);
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

/* Decodes a complete encoded stream (fd at any offset) against its basis into staging. */
static int
decode_staged(struct receiver *rc, const struct proto_object *ob, int basis, int encfd,
    const char *what)
{
	uint8_t got[HASH_LEN];
	uint64_t len = 0;
	int out = -1, r;

	if (lseek(encfd, 0, SEEK_SET) != 0)
		return DS_ERR_SYSTEM;
	if ((r = stage_open(rc->t, ob->hash, 0, &out)) != 0)
		return r;
	r = delta_decode(ob->encoding, basis, encfd, out, ob->size, &len, got);
	if (r == 0 && (len != ob->size || memcmp(got, ob->hash, HASH_LEN) != 0)) {
		log_warn("%s: %s: its delta decodes to other content than announced (a basis "
		    "that is not what it claims, or a corrupt delta); asking for the whole "
		    "object", rc->x->peer, what);
		r = DS_ERR_CORRUPT;
	} else if (r != 0)
		log_warn("%s: %s: its delta does not decode; asking for the whole object",
		    rc->x->peer, what);
	if (r != 0) {
		/* Leave no wrong bytes behind that a resume would build on. */
		if (ftruncate(out, 0) == -1)
			log_errno("%s: staging %s", target_state_dir(rc->t), what);
		stage_abort(rc->t, ob->hash, out);
		return r;
	}
	/* delta_decode hashed every byte it wrote, and it is the object's. */
	return stage_finish_hashed(rc->t, ob->hash, out);
}

static void
job_free(struct decode_job *j)
{
	if (j->encfd != -1)
		close(j->encfd);
	if (j->basis != -1)
		close(j->basis);
	free(j->name);
	free(j->what);
	free(j);
}

static void *
decoder_main(void *arg)
{
	struct receiver *rc = arg;
	struct decoder *d = &rc->dec;
	struct decode_job *j;

	pthread_mutex_lock(&d->lock);
	for (;;) {
		while (d->queue == NULL && !d->stop)
			pthread_cond_wait(&d->cond, &d->lock);
		if (d->queue == NULL)
			break;
		j = d->queue;
		d->queue = j->next;
		if (d->queue == NULL)
			d->queue_tail = &d->queue;
		pthread_mutex_unlock(&d->lock);
		j->result = decode_staged(rc, &j->ob, j->basis, j->encfd, j->what);
		pthread_mutex_lock(&d->lock);
		j->next = d->done;
		d->done = j;
		d->busy--;
		pthread_cond_broadcast(&d->cond);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

/* Takes in one decoded job: the object is staged, or asked for whole. */
static int
job_finish(struct receiver *rc, struct decode_job *j)
{
	int r = 0;

	unlinkat(target_state_fd(rc->t), j->name, 0);
	if (j->result == 0) {
		rc->objects++;
		rc->done += j->ob.size;	/* a delta counts whole once decoded */
		report(rc);
	} else if (j->result == DS_ERR_SYSTEM || j->result == DS_ERR_NOSPACE)
		r = j->result;
	else {
		retry_add(rc, j->ob.hash);
		rc->fallbacks++;
	}
	job_free(j);
	return r;
}

/* Takes in every decoded job; with wait, first lets the worker finish the queue. */
static int
decoder_collect(struct receiver *rc, int wait)
{
	struct decoder *d = &rc->dec;
	struct decode_job *list, *next;
	int r = 0, r2;

	if (!d->started)
		return 0;
	pthread_mutex_lock(&d->lock);
	while (wait && d->busy > 0)
		pthread_cond_wait(&d->cond, &d->lock);
	list = d->done;
	d->done = NULL;
	pthread_mutex_unlock(&d->lock);
	for (; list != NULL; list = next) {
		next = list->next;
		if ((r2 = job_finish(rc, list)) != 0 && r == 0)
			r = r2;
	}
	return r;
}

/*
 * Hands a whole delta stream (encfd, staged as name) to the worker, which is
 * started on first use; decodes it here when no thread can be had. Takes
 * ownership of encfd, basis and name.
 */
static int
decoder_submit(struct receiver *rc, const struct proto_object *ob, int basis, int encfd,
    char *name, const char *what)
{
	struct decoder *d = &rc->dec;
	struct decode_job *j = xcalloc(1, sizeof(*j));

	j->ob = *ob;
	j->basis = basis;
	j->encfd = encfd;
	j->name = name;
	j->what = xstrdup(what);
	if (!d->started) {
		pthread_mutex_init(&d->lock, NULL);
		pthread_cond_init(&d->cond, NULL);
		d->queue_tail = &d->queue;
		if (pthread_create(&d->thread, NULL, decoder_main, rc) == 0)
			d->started = 1;
		else {
			pthread_mutex_destroy(&d->lock);
			pthread_cond_destroy(&d->cond);
		}
	}
	if (!d->started) {
		j->result = decode_staged(rc, &j->ob, j->basis, j->encfd, j->what);
		return job_finish(rc, j);
	}
	pthread_mutex_lock(&d->lock);
	*d->queue_tail = j;
	d->queue_tail = &j->next;
	d->busy++;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	/* Results that are ready already: progress moves, a full disk stops early. */
	return decoder_collect(rc, 0);
}

/*
 * Ends the worker: it finishes the job in hand; the queued ones are dropped
 * (their streams stay staged whole, so the next session sends nothing more
 * of them and decodes them then).
 */
static void
decoder_stop(struct receiver *rc)
{
	struct decoder *d = &rc->dec;
	struct decode_job *j, *next;

	if (!d->started)
		return;
	pthread_mutex_lock(&d->lock);
	d->stop = 1;
	for (j = d->queue; j != NULL; j = next) {
		next = j->next;
		job_free(j);
		d->busy--;
	}
	d->queue = NULL;
	d->queue_tail = &d->queue;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	pthread_join(d->thread, NULL);
	for (j = d->done; j != NULL; j = next) {
		next = j->next;
		job_free(j);
	}
	d->done = NULL;
	d->started = 0;
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
}

/* Receives DATA... OBJECT_END of a delta object: stage the stream, then decode it. */
static int
recv_delta_object(struct receiver *rc, const struct proto_object *ob, const char *what)
{
	struct proto_msg m;
	struct stat st;
	char hex[HASH_HEX_LEN + 1], *name;
	/* The sender sends a delta only when it is not larger than the content (delta.h). */
	uint64_t limit = ob->size + DELTA_RAW_SLACK + 4096, have;
	int fd = -1, basis, r;

	hash_to_hex(ob->hash, hex);
	name = xasprintf("staging/%s.%s.part", hex, delta_encoding_name(ob->encoding));
	fd = openat(target_state_fd(rc->t), name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    0644);
	if (fd == -1 || fstat(fd, &st) == -1) {
		log_errno("%s/%s", target_state_dir(rc->t), name);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	if (ob->offset > (uint64_t)st.st_size) {
		log_error("%s: %s: resume at byte %" PRIu64 " of its delta but only %jd are "
		    "staged", rc->x->peer, what, ob->offset, (intmax_t)st.st_size);
		r = DS_ERR_PROTO;
		goto out;
	}
	if (ftruncate(fd, (off_t)ob->offset) == -1 ||
	    lseek(fd, (off_t)ob->offset, SEEK_SET) == -1) {
		log_errno("%s/%s", target_state_dir(rc->t), name);
		r = DS_ERR_SYSTEM;
		goto out;
	}
	have = ob->offset;
	if (ob->offset > 0)
		log_info("%s: %s: resuming its %s stream at byte %" PRIu64, rc->x->peer, what,
		    delta_encoding_name(ob->encoding), ob->offset);
	else
		log_debug("%s: receiving %s as %s", rc->x->peer, what,
		    delta_encoding_name(ob->encoding));
	for (;;) {
		if ((r = proto_recv_msg(rc->x, 0, rc->payload, &m)) != 0)
			goto out;
		if (m.type == PROTO_OBJECT_END)
			break;
		if (m.type != PROTO_DATA) {
			log_error("%s: expected DATA or OBJECT_END in %s, got %s", rc->x->peer,
			    what, proto_type_name(m.type));
			proto_msg_free(&m);
			r = DS_ERR_PROTO;
			goto out;
		}
		if (m.data_len > limit - have) {
			log_error("%s: %s: its delta is larger than the object", rc->x->peer, what);
			proto_msg_free(&m);
			r = DS_ERR_PROTO;
			goto out;
		}
		r = fileio_write_all(fd, m.data, m.data_len);
		have += m.data_len;
		proto_msg_free(&m);
		if (r != 0) {
			log_errno("%s/%s: write", target_state_dir(rc->t), name);
			r = DS_ERR_SYSTEM;
			goto out;
		}
		report(rc);
	}
	rc->delta_objects++;
	if ((basis = open_basis(rc, ob->basis)) == -1) {
		log_warn("%s: %s: the basis of its delta is not on this site; asking for the "
		    "whole object", rc->x->peer, what);
		unlinkat(target_state_fd(rc->t), name, 0);
		retry_add(rc, ob->hash);
		rc->fallbacks++;
		r = 0;
		goto out;
	}
	r = decoder_submit(rc, ob, basis, fd, name, what);
	fd = -1;
	name = NULL;
out:
	if (fd != -1)
		close(fd);
	free(name);
	return r;
}

/* Receives DATA... OBJECT_END for the object announced by ob into staging. */
static int
recv_object(struct receiver *rc, const struct proto_object *ob)
{
	struct proto_msg m;
	uint64_t have = 0, written = 0;
	size_t zstd_left = 1;
	char hex[HASH_HEX_LEN + 1], what[HASH_HEX_LEN + 16];
	int fd = -1, r;

	hash_to_hex(ob->hash, hex);
	snprintf(what, sizeof(what), "object %s", hex);
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
	if ((r = stage_open(rc->t, ob->hash, ob->offset, &fd)) != 0)
		return r;
	if (ob->offset > 0)
		log_info("%s: %s: resuming at byte %" PRIu64 " of %" PRIu64, rc->x->peer, what,
		    ob->offset, ob->size);
	else
		log_debug("%s: receiving %s (%s, %" PRIu64 " bytes)", rc->x->peer, what,
		    ob->encoding == PROTO_ENC_ZSTD ? "zstd" : "raw", ob->size);
	if (ob->encoding == PROTO_ENC_ZSTD)
		ZSTD_DCtx_reset(rc->dctx, ZSTD_reset_session_only);
	for (;;) {
		if ((r = proto_recv_msg(rc->x, 0, rc->payload, &m)) != 0)
			goto out;
		if (m.type == PROTO_OBJECT_END)
			break;
		if (m.type != PROTO_DATA) {
			log_error("%s: expected DATA or OBJECT_END in %s, got %s", rc->x->peer,
			    what, proto_type_name(m.type));
			proto_msg_free(&m);
			r = DS_ERR_PROTO;
			goto out;
		}
		r = object_data(rc, ob, fd, m.data, m.data_len, &written, &zstd_left, what);
		proto_msg_free(&m);
		if (r != 0)
			goto out;
	}
	if (written != ob->size - ob->offset ||
	    (ob->encoding == PROTO_ENC_ZSTD && zstd_left != 0)) {
		log_error("%s: %s: got %" PRIu64 " of %" PRIu64 " bytes", rc->x->peer, what,
		    written, ob->size - ob->offset);
		r = DS_ERR_CORRUPT;
		goto out;
	}
	r = stage_finish(rc->t, ob->hash, fd);
	fd = -1;
	if (r == 0)
		rc->objects++;
out:
	if (fd >= 0)
		stage_abort(rc->t, ob->hash, fd);
	return r;
}

/* Joins names with ',' for history.log; "-" when empty. Caller frees. */
static char *
join_names(char **names, size_t n)
{
	size_t len = 2;
	char *s;

	for (size_t i = 0; i < n; i++)
		len += strlen(names[i]) + 1;
	s = xcalloc(1, len);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			strlcat(s, ",", len);
		strlcat(s, names[i], len);
	}
	if (n == 0)
		strlcpy(s, "-", len);
	return s;
}

/*
 * Restarts what the changed paths touch. On a failure the files are rolled
 * back and the same services restarted again on the old files.
 */
static int
run_restarts(struct receiver *rc, const struct manifest *to, struct commit_report *rep,
    const struct commit_opts *co, struct proto_result *res)
{
	struct restart_report rr, rr2;
	struct restart_plan *plan = NULL;
	struct commit_report back;
	struct commit_opts bo = *co;
	size_t n = strv_len(rep->changed_paths);
	int r;

	restart_report_init(&rr);
	restart_report_init(&rr2);
	memset(&back, 0, sizeof(back));
	if (rc->config == NULL || (rc->config->nservices == 0 && rc->config->nrun_once == 0)) {
		res->health = xstrdup("none");
		return 0;
	}
	if (to != NULL && (r = restart_run_once(rc->config, rc->host, to,
	    target_state_dir(rc->t), &rr)) != 0)
		goto failed;
	if ((r = restart_select(rc->config, rep->changed_paths, n, &plan)) != 0)
		goto out;
	if ((r = restart_run(rc->config, rc->host, plan, &rr)) != 0)
		goto failed;
	goto out;
failed:
	log_error("%s: %s failed; rolling the files back", rc->host->name,
	    rr.failed ? rr.failed : "a restart");
	bo.fail_on_drift = 0;
	bo.dry_run = 0;
	if (commit_rollback(rc->t, &bo, &back) != 0)
		log_error("%s: rollback after the failed restart failed too", rc->host->name);
	else if (plan != NULL)
		restart_run(rc->config, rc->host, plan, &rr2);
	commit_report_release(&back);
out:
	for (size_t i = 0; i < rr.count; i++) {
		if (rr.items[i].status != RESTART_OK ||
		    strncmp(rr.items[i].name, "run_once", 8) == 0)
			continue;
		res->services = xreallocarray(res->services, res->nservices + 2, sizeof(char *));
		res->services[res->nservices++] = xstrdup(rr.items[i].name);
		res->services[res->nservices] = NULL;
	}
	if (r != 0 && rr.failed != NULL)
		res->health = xasprintf("%s failed%s%s", rr.failed,
		    rr.failed_output ? ": " : "", rr.failed_output ? rr.failed_output : "");
	else if (r != 0)
		res->health = xstrdup("failed");
	else
		res->health = xstrdup(res->nservices > 0 ? "ok" : "none");
	if (res->health != NULL && strlen(res->health) > PROTO_STRING_MAX)
		res->health[PROTO_STRING_MAX] = '\0';
	restart_plan_free(plan);
	restart_report_release(&rr);
	restart_report_release(&rr2);
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

/* Applies a COMMIT: the manifest, the atomic engine, restarts, history. */
static int
do_commit(struct receiver *rc, const struct proto_commit *c, struct proto_result *res)
{
	struct manifest *to = NULL;
	struct commit_report rep;
	struct commit_opts co;
	char *restarted = NULL;
	int r, hr;

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
	if (r == 0 && !co.dry_run && !rep.noop && (c->flags & PROTO_FLAG_NO_RESTART) == 0)
		r = run_restarts(rc, to, &rep, &co, res);
	if (res->health == NULL)
		res->health = xstrdup((c->flags & PROTO_FLAG_NO_RESTART) ? "not restarted" : "none");
	restarted = join_names(res->services, res->nservices);
	if (!co.dry_run && (hr = commit_history_write(rc->t, "apply", &rep, restarted, r)) != 0)
		log_warn("%s: history.log not written", target_state_dir(rc->t));
	/* The site's logs show each release's arrival, whatever the initiator keeps. */
	if (!co.dry_run)
		log_syslog_event("host %s: apply release %s (from %s) in %s: %s", rc->host->name,
		    c->release, rep.from_release != NULL && rep.from_release[0] != '\0' ?
		    rep.from_release : "none", target_dir(rc->t), r == 0 ? "ok" : ds_strerror(r));
	free(restarted);
	commit_report_release(&rep);
	manifest_free(to);
	return r;
}

static int
do_rollback(struct receiver *rc, struct proto_result *res)
{
	struct commit_report rep;
	struct commit_opts co;
	char *restarted;
	int r;

	memset(&rep, 0, sizeof(rep));
	commit_options(rc, rc->open.flags, &co);
	r = commit_rollback(rc->t, &co, &rep);
	result_from_report(rc, &rep, res);
	res->flags = rc->open.flags;
	if (r == 0 && !co.dry_run && !rep.noop && (rc->open.flags & PROTO_FLAG_NO_RESTART) == 0)
		r = run_restarts(rc, NULL, &rep, &co, res);
	if (res->health == NULL)
		res->health = xstrdup("none");
	restarted = join_names(res->services, res->nservices);
	if (!co.dry_run)
		commit_history_write(rc->t, "rollback", &rep, restarted, r);
	free(restarted);
	commit_report_release(&rep);
	return r;
}

/* The last line of STATE/history.log without its newline (caller frees), or NULL. */
static char *
last_history_line(struct target *t)
{
	char buf[4096], *nl, *line = NULL;
	struct stat st;
	off_t from;
	ssize_t n;
	int fd;

	fd = openat(target_state_fd(t), "history.log", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0 || st.st_size <= 0)
		goto out;
	from = st.st_size > (off_t)sizeof(buf) - 1 ? st.st_size - (off_t)sizeof(buf) + 1 : 0;
	if ((n = pread(fd, buf, sizeof(buf) - 1, from)) <= 0)
		goto out;
	buf[n] = '\0';
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	nl = strrchr(buf, '\n');
	if (nl == NULL && from > 0)
		goto out;	/* a line longer than the buffer: not worth showing */
	line = xstrdup(nl != NULL ? nl + 1 : buf);
out:
	close(fd);
	return line;
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
	res->message = last_history_line(rc->t);
	return 0;
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
			if ((r = decoder_collect(rc, 1)) != 0)
				break;
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

int
receiver_run(struct xport *x, const struct receiver_options *opt)
{
	struct receiver rc;
	struct proto_result res;
	struct proto_msg m;
	int r, opened = 0, answered = 0, delivered = 1;

	memset(&rc, 0, sizeof(rc));
	memset(&res, 0, sizeof(res));
	rc.x = x;
	rc.opt = opt;
	rc.in0 = x->bytes_in;
	rc.payload = buf_new(PROTO_FRAME_MAX);
	rc.dctx = ZSTD_createDCtx();
	rc.outsize = ZSTD_DStreamOutSize();
	rc.outbuf = xmalloc(rc.outsize);
	pthread_mutex_init(&rc.errors_lock, NULL);
	log_set_capture(capture_error, &rc);

	if ((r = proto_recv_msg(x, PROTO_HELLO, rc.payload, &m)) != 0)
		goto out;
	r = proto_hello_check(&m.u.hello, x->peer, PROTO_ROLE_INITIATOR, PROTO_CAP_ALL, &rc.caps);
	proto_msg_free(&m);
	if ((r = r != 0 ? r : proto_send_hello(x, PROTO_ROLE_RECEIVER, PROTO_CAP_ALL)) != 0)
		goto out;
	if ((r = proto_recv_msg(x, PROTO_OPEN, rc.payload, &m)) != 0)
		goto out;
	rc.open = m.u.open;
	memset(&m, 0, sizeof(m));
	opened = 1;
	if ((r = resolve_host(&rc)) != 0)
		goto out;
	/* Waiting for objects: the host's idle limit; the sender may be slow to encode. */
	if (x->idle_timeout == 0)
		x->idle_timeout = rc.host->idle_timeout;
	if ((r = open_target(&rc)) != 0)
		goto out;
	switch (rc.open.op) {
	case PROTO_OP_PUSH:
		if ((r = send_state(&rc)) != 0)
			goto out;
		answered = 1;
		r = serve_push(&rc, &res);
		break;
	case PROTO_OP_ROLLBACK:
		r = do_rollback(&rc, &res);
		answered = 1;
		break;
	case PROTO_OP_VERIFY:
		r = do_verify(&rc, &res);
		answered = 1;
		break;
	}
out:
	decoder_stop(&rc);
	/*
	 * Before the first answer an error is an ERROR frame, after it a RESULT.
	 * A broken stream carries neither: the errors are printed here then.
	 */
	if (r == DS_ERR_CONNECT || r == DS_ERR_TIMEOUT)
		delivered = 0;
	else if (answered || (opened && rc.open.op != PROTO_OP_PUSH && r == 0))
		delivered = send_result(&rc, &res, r) == 0;
	else if (r != 0)
		delivered = proto_send_error(x, r, "%s", rc.errors != NULL ? rc.errors :
		    ds_strerror(r)) == 0;
	if (!delivered)
		print_errors(&rc);
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
	free(rc.retry);
	ZSTD_freeDCtx(rc.dctx);
	free(rc.outbuf);
	buf_free(rc.payload);
	pthread_mutex_destroy(&rc.errors_lock);
	return r;
}
