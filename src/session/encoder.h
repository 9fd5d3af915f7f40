/*
 * Encoding ahead of the link: while the sender streams one object, a worker
 * thread encodes others (encoding_decide), so CPU and the link overlap.
 * Items are claimed most expensive first by the worker and cheapest first
 * by the sender, so the costly encodings start at once while cheap objects
 * keep the link busy.
 */
#ifndef DS_ENCODER_H
#define DS_ENCODER_H

#include <stddef.h>

struct encoded;
struct encoder;
struct encoding_ctx;
struct plan_object;

/*
 * An empty pool of objects encoded by CTX's policy (CTX is read by the
 * worker until encoder_free, and must not change after encoder_start).
 * Free with encoder_free.
 */
struct encoder	*encoder_new(const struct encoding_ctx *ctx);

/* Adds PO (not after encoder_start); returns its item index, 0 up. */
size_t		 encoder_add(struct encoder *w, const struct plan_object *po);

/*
 * Item I: its object, and its encoding once encoder_next returned I. The
 * pointer holds until the next encoder_add or encoder_free.
 */
const struct encoded *encoder_item(const struct encoder *w, size_t i);

/*
 * Starts the worker on the items added. Without a thread (pthread_create
 * failed) every item is encoded by encoder_next instead.
 */
void		 encoder_start(struct encoder *w);

/*
 * The index of the next item to send, encoded, of those not taken yet (call
 * it once per item): one the worker finished, else the cheapest not claimed
 * yet, encoded here so the link does not wait for the worker's expensive
 * one, else the worker's next to finish.
 */
size_t		 encoder_next(struct encoder *w);

/*
 * Item I (returned by encoder_next) was sent: what its encoding holds (an
 * unnamed file, perhaps in memory) is freed now rather than at the end.
 */
void		 encoder_sent(struct encoder *w, size_t i);
/* Stops the worker (after its current item) and frees the pool; NULL is fine. */
void		 encoder_free(struct encoder *w);

#endif
