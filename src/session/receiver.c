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
#include <time.h>
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
#include "session/apply.h"
#include "session/decoder.h"
#include "session/receiver.h"
#include "session/room.h"
#include "site/backup.h"
#include "site/commit.h"
#include "site/history.h"
#include "site/lineage.h"
#include "site/owner.h"
#include "site/site.h"
#include "site/stage.h"
#include "site/target.h"
#include "wire/proto.h"
#include "wire/xport.h"


struct basis_ref;

struct receiver {
	struct xport		*x;
	const struct receiver_options *opt;
	struct config		*own_config;	/* loaded from OPEN (serve) */
	const struct config	*config;	/* where the target is (path, state) */
	const struct config_host *host;
	/* The site's own configuration: the only source of commands, owner, pins. */
	const struct config	*trusted;	/* NULL: the site has none, nothing runs */
	const struct config_host *trusted_host;
	char			**pins;		/* root key ids releases must chain to; NULL: none */
	uint32_t		 flags_forced;	/* the site's own --dry-run / --no-restart */
	struct target		*t;
	struct proto_open	 open;
	struct proto_restore	 restore;	/* a restore's request (after OPEN) */
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
	char			*pending;	/* a read-only open: what the site still owes */
	struct manifest		*found;		/* never applied: the tree found, as STATE
						   described it (PROTO_CAP_ADOPT) */
	struct receiver_found	 adopted;	/* what a first apply found and kept */
	int			 opened;	/* OPEN was received */
	int			 looking;	/* opened read-only: a look, a dry-run push */
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

/* The host entry of a site's own config: site.upstream's, else NAME's, else its only one. */
static const struct config_host *
site_entry(const struct config *c, const char *name)
{
	const struct config_host *h = NULL;

	if (c->site.upstream != NULL)
		h = config_host(c, c->site.upstream);
	if (h == NULL)
		h = config_host(c, name);
	if (h == NULL && c->nhosts == 1)
		h = &c->hosts[0];
	return h;
}

/* The root key ids of H (NULL: none set). */
static char **
pins_of(const struct config_host *h)
{
	return h != NULL && h->trust_root != NULL && h->trust_root[0] != NULL ?
	    h->trust_root : NULL;
}

/*
 * Resolves the host to serve and what the site trusts: the site's own
 * configuration when it has one (local push, pull, serve --site-config);
 * else the initiator's YAML in OPEN for the target's place only.
 */
static int
resolve_host(struct receiver *rc)
{
	char *name = NULL;
	int r;

	rc->flags_forced = rc->opt->force_flags & (PROTO_FLAG_DRY_RUN | PROTO_FLAG_NO_RESTART);
	if (rc->opt->ops != 0 && (rc->open.op >= 32 || (rc->opt->ops & (1u << rc->open.op)) == 0)) {
		log_error("%s: this site does not take that operation from its peer", rc->x->peer);
		return DS_ERR_PRECONDITION;
	}
	if (rc->opt->host != NULL) {
		rc->config = rc->trusted = rc->opt->config;
		rc->host = rc->trusted_host = rc->opt->host;
		rc->pins = pins_of(rc->host);
		return 0;
	}
	if (rc->opt->site_config == NULL && rc->opt->site_config_file != NULL) {
		if ((r = config_load(rc->opt->site_config_file, &rc->own_config)) != 0)
			return r;
		rc->trusted = rc->config = rc->own_config;
	} else if (rc->opt->site_config != NULL)
		rc->trusted = rc->config = rc->opt->site_config;
	if (rc->trusted != NULL) {
		rc->trusted_host = rc->host = site_entry(rc->trusted, rc->open.host);
		if (rc->host == NULL) {
			log_error("%s: the site configuration has no hosts: entry for this site: "
			    "add one named %s (as the repository names the host), or keep a "
			    "single hosts: entry", rc->trusted->file, rc->open.host);
			return DS_ERR_CONFIG;
		}
		rc->pins = pins_of(rc->host);
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
	/* The initiator may ask for more checks (its trust_root), never for commands. */
	rc->pins = pins_of(rc->host);
	return 0;
}

/*
 * Operations that only look at the site (verify, releases, a dry-run push):
 * it stays as it is, not even locked or recovered.
 */
static int
read_only_op(const struct receiver *rc)
{
	return rc->open.op == PROTO_OP_VERIFY || rc->open.op == PROTO_OP_RELEASES ||
	    (rc->open.op == PROTO_OP_RESTORE && !rc->restore.in_place) ||
	    (rc->open.op == PROTO_OP_PUSH &&
	    ((rc->open.flags | rc->flags_forced) & PROTO_FLAG_DRY_RUN) != 0);
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
	if ((rc->looking = read_only_op(rc)) != 0)
		r = site_open_readonly(target, state, rc->open.lock_timeout, &rc->t, &rc->pending);
	else
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

/*
 * FOUND: the digest of the tree a never-applied site holds (zero when it
 * was applied, or its target is empty): MANIFEST_REQUEST returns that tree.
 */
static int
send_found(struct receiver *rc)
{
	struct proto_found f;

	memset(&f, 0, sizeof(f));
	if (rc->found != NULL && rc->found->count > 0)
		manifest_digest(rc->found, f.digest);
	f.release = (char *)"";
	return proto_send_msg(rc->x, PROTO_FOUND, &f);
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
	st.ndrift = proto_list_fit(drift, xstrv_len(drift));
	/* Never applied: the tree found decides what is sent, as an applied one does. */
	if (id == NULL && (rc->caps & PROTO_CAP_ADOPT) &&
	    (r = target_verify(rc->t, &rc->found, NULL)) != 0)
		goto out;
	if ((r = proto_send_msg(rc->x, PROTO_STATE, &st)) != 0)
		goto out;
	if (rc->caps & PROTO_CAP_ADOPT)
		r = send_found(rc);
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

	if (rc->found != NULL && rc->found->count > 0)
		manifest_encode(rc->found, &data, &pm.len);	/* what FOUND named */
	else if ((r = target_current(rc->t, NULL, &m)) != 0)
		return r;
	else
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
 * of the current release (or of the tree found, never applied) or one signed
 * for the sender. The content is not
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
		if (rc->found == NULL && target_current(rc->t, NULL, &m) == 0) {
			for (size_t i = 0; i < m->count; i++)
				if (m->entries[i].type == MANIFEST_FILE)
					bases_add(rc, m->entries[i].hash, m->entries[i].path);
		}
		for (size_t i = 0; rc->found != NULL && i < rc->found->count; i++)
			if (rc->found->entries[i].type == MANIFEST_FILE)
				bases_add(rc, rc->found->entries[i].hash, rc->found->entries[i].path);
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
 * A scratch file for a signature: in staging, or on a site opened to look
 * only (whose staging may not exist, and is not made) in TMPDIR. Unlinked:
 * nothing stays. -1 (logged) when none can be made.
 */
static int
scratch_open(struct receiver *rc)
{
	FILE *fp;
	int fd;

	if (!rc->looking)
		return stage_scratch_open(rc->t);
	if ((fp = tmpfile()) == NULL) {
		log_errno("a scratch file for a signature");
		return -1;
	}
	fd = dup(fileno(fp));
	fclose(fp);
	if (fd == -1)
		log_errno("a scratch file for a signature");
	return fd;
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
			if ((tfd = scratch_open(rc)) == -1) {
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

/*
 * The flags an operation runs with: the peer's, and the site's own always;
 * a site opened to look only is a dry run, whatever COMMIT says.
 */
static uint32_t
effective_flags(struct receiver *rc, uint32_t flags)
{
	return flags | rc->flags_forced | (rc->looking ? PROTO_FLAG_DRY_RUN : 0);
}

/* The site this session applies to, and what it trusts (apply.h). */
static void
apply_site_of(struct receiver *rc, struct apply_site *as)
{
	memset(as, 0, sizeof(*as));
	as->t = rc->t;
	as->trusted = rc->trusted;
	as->trusted_host = rc->trusted_host;
	as->host = rc->host;
	as->pins = rc->pins;
	as->who = rc->x->peer;
	as->preview = (rc->caps & PROTO_CAP_SITEPLAN) != 0;
}

/*
 * COMMIT's manifest: its text, or with PROTO_CAP_MANIFEST_ZSTD a zstd frame
 * (it starts with the zstd magic, which the text never does) against the
 * manifest of the release this site holds, as the sender encoded it
 * (delta_buf_encode); decoded within the frame limit the text had. The
 * empty one is this site's own. 0 and *to, or DS_ERR_* (logged).
 */
static int
commit_manifest(struct receiver *rc, const struct proto_commit *c, struct manifest **to)
{
	static const uint8_t magic[4] = { 0x28, 0xb5, 0x2f, 0xfd };
	struct manifest *cur = NULL;
	char *prefix = NULL, *id = NULL;
	uint8_t *text = NULL;
	size_t plen = 0, tlen = 0;
	int r;

	*to = NULL;
	if (c->manifest_len == 0)	/* the sender saw our digest: the one we hold */
		return target_current(rc->t, NULL, to);
	if (!(rc->caps & PROTO_CAP_MANIFEST_ZSTD) || c->manifest_len < sizeof(magic) ||
	    memcmp(c->manifest, magic, sizeof(magic)) != 0)
		return manifest_decode((const char *)c->manifest, c->manifest_len, c->release,
		    to) != 0 ? DS_ERR_PROTO : 0;
	if ((r = target_current(rc->t, &id, &cur)) != 0)
		return r;
	if (id != NULL)
		manifest_encode(cur, &prefix, &plen);
	r = delta_buf_decode(prefix, plen, c->manifest, c->manifest_len, PROTO_FRAME_MAX,
	    "COMMIT's manifest", &text, &tlen);
	if (r == 0 && manifest_decode((const char *)text, tlen, c->release, to) != 0)
		r = DS_ERR_PROTO;
	else if (r != 0)
		r = DS_ERR_PROTO;
	free(text);
	free(prefix);
	free(id);
	manifest_free(cur);
	return r;
}

/* Applies a COMMIT of release TO (freed here): apply_release (trust, engine, restarts). */
static int
do_commit(struct receiver *rc, const struct proto_commit *c, struct manifest *to,
    struct proto_result *res)
{
	struct apply_site as;
	struct apply_outcome oc;
	uint32_t flags = effective_flags(rc, c->flags);
	int r;

	res->flags = flags;
	if (store_release_id_check(c->release) != 0) {
		log_error("%s: COMMIT names an invalid release id", rc->x->peer);
		manifest_free(to);
		return DS_ERR_PROTO;
	}
	apply_site_of(rc, &as);
	r = apply_release(&as, c->release, to, c->signature, c->signature_len, flags, res, &oc);
	/* A look completes nothing: what an interrupted apply owes stays pending, and is said. */
	if (rc->looking && rc->pending != NULL && (res->pending == NULL || res->pending[0] == '\0')) {
		free(res->pending);
		res->pending = rc->pending;
		rc->pending = NULL;
	}
	if (oc.first && rc->found != NULL && rc->found->count > 0) {
		rc->adopted.found = 1;
		rc->adopted.identical = oc.identical;
	}
	res->objects = rc->objects;
	res->bytes = rc->x->bytes_in - rc->in0;
	manifest_free(to);
	return r;
}

static int
do_rollback(struct receiver *rc, struct proto_result *res)
{
	struct apply_site as;
	int r;

	apply_site_of(rc, &as);
	r = apply_rollback(&as, effective_flags(rc, rc->open.flags), rc->open.release, res);
	res->objects = rc->objects;
	res->bytes = rc->x->bytes_in - rc->in0;
	return r;
}

/*
 * The site tail of a read-only answer: what the site still owes and the
 * backups kept ("ID TIME STEP", lineage.h's order).
 */
static int
site_info(struct receiver *rc, struct proto_result *res)
{
	struct lineage_kept *kept = NULL;
	size_t n = 0;
	int r;

	res->pending = rc->pending;
	rc->pending = NULL;
	if ((r = lineage_kept(rc->t, &kept, &n)) != 0)
		return r;
	if (n > PROTO_LIST_MAX)
		n = PROTO_LIST_MAX;
	res->kept = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		char stamp[32];
		time_t when = (time_t)kept[i].time;
		struct tm tm;

		gmtime_r(&when, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
		res->kept[i] = xasprintf("%s %s %u", kept[i].id, stamp, kept[i].step);
	}
	res->nkept = n;
	lineage_kept_free(kept, n);
	return 0;
}

/* RELEASES: the current state, the backups a rollback can restore, what is owed. */
static int
do_releases(struct receiver *rc, struct proto_result *res)
{
	char *id = NULL;
	int r;

	if ((r = target_current(rc->t, &id, NULL)) != 0)
		return r;
	res->from = id != NULL ? id : xstrdup("");
	res->to = xstrdup(res->from);
	res->message = history_last_line(rc->t);
	return site_info(rc, res);
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
	if ((r = target_verify(rc->t, id == NULL && (rc->caps & PROTO_CAP_ADOPT) ? &rc->found :
	    NULL, &drift)) != 0)
		return r;
	n = proto_list_fit(drift, xstrv_len(drift));
	res->drift = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		res->drift[i] = xstrdup(drift[i]);
	res->ndrift = n;
	res->changed = xstrv_len(drift);
	xfree_strv(drift);
	res->message = history_last_line(rc->t);
	if ((r = site_info(rc, res)) != 0)
		return r;
	if ((rc->caps & PROTO_CAP_ADOPT) == 0)
		return 0;
	/* The initiator names the tree found (status): FOUND, then RESULT. */
	return send_found(rc);
}

/* Sends the kept content K as DATA frames, then OBJECT_END. */
static int
send_kept(struct receiver *rc, const struct backup_kept *k, const char *path)
{
	struct buf *chunk = buf_new(PROTO_CHUNK_MAX);
	uint8_t *data = xmalloc(PROTO_CHUNK_MAX);
	uint64_t sent = 0;
	ssize_t n;
	int fd, r;

	if ((fd = backup_kept_open(rc->t, k)) == -1) {
		r = DS_ERR_SYSTEM;
		goto out;
	}
	while (sent < k->size) {
		size_t want = k->size - sent < PROTO_CHUNK_MAX ? (size_t)(k->size - sent) :
		    PROTO_CHUNK_MAX;

		if ((n = read(fd, data, want)) <= 0) {
			if (n == -1 && errno == EINTR)
				continue;
			log_error("%s/backup/%s: the copy of %s is shorter than recorded",
			    target_state_dir(rc->t), k->set, path);
			r = DS_ERR_CORRUPT;
			goto out;
		}
		buf_reset(chunk);
		if ((r = buf_put(chunk, data, (size_t)n)) != 0 ||
		    (r = proto_send(rc->x, PROTO_DATA, chunk)) != 0)
			goto out;
		sent += (uint64_t)n;
	}
	r = proto_send(rc->x, PROTO_OBJECT_END, NULL);
out:
	if (fd != -1)
		close(fd);
	free(data);
	buf_free(chunk);
	return r;
}

/*
 * Puts every path of the RESTORE back in the tree from KEPT: each copy is
 * staged beside its path first, and only when all are staged is each renamed
 * over its path; a copy that cannot be staged (no room, a directory there
 * now) changes nothing. A path named twice goes back once.
 */
static int
put_back_all(struct receiver *rc, const struct backup_kept *kept, long uid, long gid)
{
	const struct proto_restore *rq = &rc->restore;
	struct backup_put *puts = xcalloc(rq->npaths + 1, sizeof(*puts));
	size_t i, j;
	int r = 0;

	for (i = 0; i < rq->npaths; i++)
		puts[i].pfd = -1;
	for (i = 0; i < rq->npaths && r == 0; i++) {
		for (j = 0; j < i && strcmp(rq->paths[j], rq->paths[i]) != 0; j++)
			;
		if (j == i)
			r = backup_put_prepare(rc->t, &kept[i], rq->paths[i], uid, gid, &puts[i]);
	}
	if (r != 0 && rq->npaths > 1)
		log_error("%s: nothing was put back (all paths or none)", target_dir(rc->t));
	for (i = 0; i < rq->npaths; i++) {
		if (r == 0 && puts[i].pfd != -1 &&
		    (r = backup_put_commit(rc->t, &puts[i], rq->paths[i])) != 0 && i > 0)
			log_error("%s: the paths named before %s were put back", target_dir(rc->t),
			    rq->paths[i]);
		else
			backup_put_abort(&puts[i]);
	}
	free(puts);
	return r;
}

/*
 * RESTORE: every path is looked up first, so a path no set keeps changes
 * nothing; then each is sent, or all are put back in the tree (in place,
 * all or none), and each is named in a RESTORED. The RESULT lists the paths
 * restored.
 */
static int
do_restore(struct receiver *rc, struct proto_result *res)
{
	const struct proto_restore *rq = &rc->restore;
	const char *set = rq->backup[0] != '\0' ? rq->backup : NULL;
	struct backup_kept *kept = xcalloc(rq->npaths, sizeof(*kept));
	const struct config_host *own = rc->trusted_host;
	long uid = -1, gid = -1;
	char *id = NULL;
	int r;

	if (set != NULL && commit_state_id_check(set) != 0) {
		log_error("--backup: '%s' is not a backup set's id", set);
		r = DS_ERR_INVALID;
		goto out;
	}
	/* The owner of what is put back is the site's to say, as for an apply. */
	if (rq->in_place && own != NULL && (r = owner_resolve(own->owner, own->group, &uid,
	    &gid)) != 0)
		goto out;
	if ((r = target_current(rc->t, &id, NULL)) != 0)
		goto out;
	for (size_t i = 0; i < rq->npaths; i++)
		if ((r = backup_kept_find(rc->t, set, rq->paths[i], &kept[i])) != 0)
			goto out;
	/* In place, all or none: every copy is staged beside its path before any is renamed. */
	if (rq->in_place && (r = put_back_all(rc, kept, uid, gid)) != 0)
		goto out;
	res->drift = xcalloc(rq->npaths + 1, sizeof(char *));
	for (size_t i = 0; i < rq->npaths; i++) {
		struct proto_restored rd = { .path = rq->paths[i], .backup = kept[i].set,
		    .mode = kept[i].mode, .size = kept[i].size };

		memcpy(rd.hash, kept[i].hash, HASH_LEN);
		if (rq->in_place)
			log_info("%s/%s: put back from backup set %s; the tree differs from "
			    "release %s until the next apply", target_dir(rc->t), rq->paths[i],
			    kept[i].set, id != NULL ? id : "(none)");
		if ((r = proto_send_msg(rc->x, PROTO_RESTORED, &rd)) != 0)
			goto out;
		rc->answered = 1;
		if (!rq->in_place && (r = send_kept(rc, &kept[i], rq->paths[i])) != 0)
			goto out;
		res->drift[res->ndrift++] = xstrdup(rq->paths[i]);
	}
	r = 0;
out:
	res->from = id != NULL ? id : xstrdup("");
	res->to = xstrdup(res->from);
	for (size_t i = 0; i < rq->npaths; i++)
		backup_kept_release(&kept[i]);
	free(kept);
	return r;
}

/*
 * Keeps the release the sender recognised the tree found as (its FOUND
 * before COMMIT), for the site's summary: a name only, and only one that
 * could be a release id.
 */
static void
found_release(struct receiver *rc, const struct proto_found *f)
{
	uint8_t d[HASH_LEN] = { 0 };

	if (rc->found != NULL && rc->found->count > 0)
		manifest_digest(rc->found, d);
	if (f->release[0] == '\0' || memcmp(d, f->digest, HASH_LEN) != 0 ||
	    hash_is_zero(d) || store_release_id_check(f->release) != 0)
		return;
	free(rc->adopted.release);
	rc->adopted.release = xstrdup(f->release);
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
evicted_for_commit(struct receiver *rc, const struct manifest *to)
{
	struct manifest *current = NULL;

	if (rc->commits++ > 0 || !room_evicted(rc->room))
		return;
	/* What the sender planned from: the current release, or the tree found. */
	if (rc->found != NULL)
		room_evicted_needed(rc->room, rc->t, to, rc->found, retry_evicted, rc);
	else if (target_current(rc->t, NULL, &current) == 0)
		room_evicted_needed(rc->room, rc->t, to, current, retry_evicted, rc);
	manifest_free(current);
}

/* Serves the push after STATE: manifest requests, objects, then COMMIT. */
static int
serve_push(struct receiver *rc, struct proto_result *res)
{
	struct manifest *to = NULL;
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
			if (effective_flags(rc, 0) & PROTO_FLAG_DRY_RUN) {
				log_error("%s: sent an object during this site's dry run", rc->x->peer);
				r = DS_ERR_PROTO;
				break;
			}
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
		case PROTO_FOUND:
			found_release(rc, &m.u.found);
			break;
		case PROTO_COMMIT:
			/* Every delta decoded: the failures are in the RETRY list. */
			if ((r = decoder_collect(rc->dec, 1)) != 0 ||
			    (r = commit_manifest(rc, &m.u.commit, &to)) != 0)
				break;
			evicted_for_commit(rc, to);
			if (rc->nretry > 0) {
				/* Deltas failed: the sender sends those whole, then COMMITs again. */
				struct proto_retry rt = { rc->retry, rc->nretry };

				r = proto_send_msg(rc->x, PROTO_RETRY, &rt);
				free(rc->retry);
				rc->retry = NULL;
				rc->nretry = 0;
				manifest_free(to);
				to = NULL;
				break;
			}
			r = do_commit(rc, &m.u.commit, to, res);
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
	if (rc->pins != NULL && (rc->caps & PROTO_CAP_TRUST))
		res->flags |= PROTO_RESULT_VERIFIED;
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
	/* Only a peer that reads the site tail gets it. */
	res->tail = (rc->caps & PROTO_CAP_SITEINFO) != 0;
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
	if (rc->open.op == PROTO_OP_RESTORE) {
		/* Before the target opens: a restore in place takes its lock. */
		if ((rc->caps & PROTO_CAP_RESTORE) == 0) {
			log_error("%s: asked for a restore without offering it", x->peer);
			return DS_ERR_PROTO;
		}
		if ((r = proto_recv_msg(x, PROTO_RESTORE, rc->payload, &m)) != 0)
			return r;
		rc->restore = m.u.restore;
		memset(&m, 0, sizeof(m));
	}
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
	case PROTO_OP_RELEASES:
		r = do_releases(rc, res);
		rc->answered = 1;
		break;
	case PROTO_OP_RESTORE:
		r = do_restore(rc, res);
		break;
	default:
		log_error("%s: operation %u is not served here", x->peer, rc->open.op);
		r = DS_ERR_UNSUPPORTED;
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
	xport_shutdown(x);
	if (opt->found != NULL) {
		*opt->found = rc.adopted;
		memset(&rc.adopted, 0, sizeof(rc.adopted));
	}
	if (opt->result != NULL) {
		res.status = r;
		/* Errors the peer got (not printed here) go to the caller too. */
		if (delivered && res.message == NULL && rc.errors != NULL)
			res.message = xstrdup(rc.errors);
		*opt->result = res;
		memset(&res, 0, sizeof(res));
	}
	free(rc.errors);
	proto_result_free(&res);
	target_close(rc.t);
	proto_open_free(&rc.open);
	proto_restore_free(&rc.restore);
	free(rc.pending);
	config_free(rc.own_config);
	bases_free(&rc);
	room_free(rc.room);
	manifest_free(rc.found);
	free(rc.adopted.release);
	free(rc.retry);
	ZSTD_freeDCtx(rc.dctx);
	free(rc.outbuf);
	buf_free(rc.payload);
	pthread_mutex_destroy(&rc.errors_lock);
	return r;
}
