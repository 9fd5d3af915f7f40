/*
 * The encoder pool of a push (encoder.h): one worker thread claiming items
 * from the front of ORDER (most expensive first), the sender from the back.
 */
#include "autoconf.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/xmalloc.h"
#include "repo/manifest.h"
#include "repo/plan.h"
#include "session/encoder.h"
#include "session/encoding.h"

/* Everything below the lock is guarded by it once the worker runs. */
struct encoder {
	const struct encoding_ctx *ctx;
	struct encoded	*items;
	size_t		 n, alloc;
	size_t		*order;		/* item indices, most expensive first */
	size_t		 lo, hi;	/* order[lo..hi) is not claimed yet */
	size_t		*ready;		/* items the worker finished, not sent yet */
	size_t		 nready;
	int		 stop;
	int		 started;	/* the worker thread runs */
	int		 ordered;	/* encoder_start ran: lock and cond exist */
	pthread_t	 thread;
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
};

struct encoder *
encoder_new(const struct encoding_ctx *ctx)
{
	struct encoder *w = xcalloc(1, sizeof(*w));

	w->ctx = ctx;
	return w;
}

size_t
encoder_add(struct encoder *w, const struct plan_object *po)
{
	w->items = xgrow(w->items, &w->alloc, w->n + 1, sizeof(*w->items));
	memset(&w->items[w->n], 0, sizeof(w->items[w->n]));
	w->items[w->n].po = po;
	w->items[w->n].fd = -1;
	return w->n++;
}

const struct encoded *
encoder_item(const struct encoder *w, size_t i)
{
	return &w->items[i];
}

void
encoder_sent(struct encoder *w, size_t i)
{
	encoding_release(&w->items[i]);
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
		encoding_decide(w->ctx, &w->items[i]);
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

void
encoder_start(struct encoder *w)
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
	w->ordered = 1;
	if (pthread_create(&w->thread, NULL, encoder_main, w) == 0)
		w->started = 1;
}

size_t
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
			encoding_decide(w->ctx, &w->items[i]);
			return i;
		}
		pthread_cond_wait(&w->cond, &w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return i;
}

void
encoder_free(struct encoder *w)
{
	if (w == NULL)
		return;
	if (w->started) {
		pthread_mutex_lock(&w->lock);
		w->stop = 1;
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
	}
	if (w->ordered) {
		pthread_mutex_destroy(&w->lock);
		pthread_cond_destroy(&w->cond);
	}
	for (size_t i = 0; i < w->n; i++)
		encoding_release(&w->items[i]);
	free(w->items);
	free(w->order);
	free(w->ready);
	free(w);
}
