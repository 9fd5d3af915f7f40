/* The receiver's delta decoder thread (decoder.h). */
#include "autoconf.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "codec/delta.h"
#include "session/decoder.h"
#include "site/stage.h"
#include "site/target.h"
#include "wire/proto.h"

/* A delta stream received whole, waiting to be decoded against its basis. */
struct decode_job {
	struct decode_job	*next;
	struct proto_object	 ob;
	int			 encfd;		/* the encoded stream */
	int			 basis;		/* opened by the session thread */
	char			*what;
	int			 result;
};

struct decoder {
	struct target		*t;
	char			*peer;
	decoder_done_fn		 done_fn;
	void			*arg;
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	pthread_t		 thread;
	int			 started, stop;
	struct decode_job	*queue, **queue_tail;	/* waiting */
	struct decode_job	*done;			/* decoded, not taken in yet */
	size_t			 busy;			/* queued or decoding */
};

struct decoder *
decoder_new(struct target *t, const char *peer, decoder_done_fn done, void *arg)
{
	struct decoder *d = xcalloc(1, sizeof(*d));

	d->t = t;
	d->peer = xstrdup(peer);
	d->done_fn = done;
	d->arg = arg;
	return d;
}

/* Decodes a complete encoded stream (fd at any offset) against its basis into staging. */
static int
decode_staged(struct decoder *d, const struct proto_object *ob, int basis, int encfd,
    const char *what)
{
	uint8_t got[HASH_LEN];
	uint64_t len = 0;
	int out = -1, r;

	if (lseek(encfd, 0, SEEK_SET) != 0)
		return DS_ERR_SYSTEM;
	if ((r = stage_open(d->t, ob->hash, 0, &out)) != 0)
		return r;
	r = delta_decode(ob->encoding, basis, encfd, out, ob->size, &len, got);
	if (r == 0 && (len != ob->size || memcmp(got, ob->hash, HASH_LEN) != 0)) {
		log_warn("%s: %s: its delta decodes to other content than announced (a basis "
		    "that is not what it claims, or a corrupt delta); asking for the whole "
		    "object", d->peer, what);
		r = DS_ERR_CORRUPT;
	} else if (r != 0)
		log_warn("%s: %s: its delta does not decode; asking for the whole object",
		    d->peer, what);
	if (r != 0) {
		/* Leave no wrong bytes behind that a resume would build on. */
		if (ftruncate(out, 0) == -1)
			log_errno("%s: staging %s", target_state_dir(d->t), what);
		stage_abort(d->t, ob->hash, out);
		return r;
	}
	/* delta_decode hashed every byte it wrote, and it is the object's. */
	return stage_finish_hashed(d->t, ob->hash, out);
}

static void
job_free(struct decode_job *j)
{
	if (j->encfd != -1)
		close(j->encfd);
	if (j->basis != -1)
		close(j->basis);
	free(j->what);
	free(j);
}

static void *
decoder_main(void *arg)
{
	struct decoder *d = arg;
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
		j->result = decode_staged(d, &j->ob, j->basis, j->encfd, j->what);
		pthread_mutex_lock(&d->lock);
		j->next = d->done;
		d->done = j;
		d->busy--;
		pthread_cond_broadcast(&d->cond);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

/* Takes in one decoded job: its stream goes, the session hears the result. */
static int
job_finish(struct decoder *d, struct decode_job *j)
{
	int r;

	stage_encoded_remove(d->t, j->ob.hash, j->ob.encoding);
	r = d->done_fn(d->arg, &j->ob, j->result);
	job_free(j);
	return r;
}

int
decoder_collect(struct decoder *d, int wait)
{
	struct decode_job *list, *next;
	int r = 0, r2;

	if (d == NULL || !d->started)
		return 0;
	pthread_mutex_lock(&d->lock);
	while (wait && d->busy > 0)
		pthread_cond_wait(&d->cond, &d->lock);
	list = d->done;
	d->done = NULL;
	pthread_mutex_unlock(&d->lock);
	for (; list != NULL; list = next) {
		next = list->next;
		if ((r2 = job_finish(d, list)) != 0 && r == 0)
			r = r2;
	}
	return r;
}

/* Starts the worker on first use; 1 when it runs. */
static int
decoder_start(struct decoder *d)
{
	if (d->started)
		return 1;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	d->queue_tail = &d->queue;
	if (pthread_create(&d->thread, NULL, decoder_main, d) == 0)
		d->started = 1;
	else {
		pthread_mutex_destroy(&d->lock);
		pthread_cond_destroy(&d->cond);
	}
	return d->started;
}

int
decoder_submit(struct decoder *d, const struct proto_object *ob, int basis, int encfd,
    const char *what)
{
	struct decode_job *j = xcalloc(1, sizeof(*j));

	j->ob = *ob;
	j->basis = basis;
	j->encfd = encfd;
	j->what = xstrdup(what);
	if (!decoder_start(d)) {
		j->result = decode_staged(d, &j->ob, j->basis, j->encfd, j->what);
		return job_finish(d, j);
	}
	pthread_mutex_lock(&d->lock);
	*d->queue_tail = j;
	d->queue_tail = &j->next;
	d->busy++;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	/* Results that are ready already: progress moves, a full disk stops early. */
	return decoder_collect(d, 0);
}

void
decoder_free(struct decoder *d)
{
	struct decode_job *j, *next;

	if (d == NULL)
		return;
	if (d->started) {
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
	free(d->peer);
	free(d);
}
