/*
 * The receiver's delta decoder: a delta stream received whole waits here to
 * be decoded against its basis into staging. Decoding (a zippatch
 * re-deflates a whole war) runs on one worker thread while the session goes
 * on receiving, so the link does not wait for it; the session takes the
 * results in as they come and all of them before it answers COMMIT.
 */
#ifndef DS_DECODER_H
#define DS_DECODER_H

struct decoder;
struct proto_object;
struct target;

/*
 * Called on the session's thread for each decoded object with the decoder's
 * result: 0 (the object is staged, verified), DS_ERR_SYSTEM or
 * DS_ERR_NOSPACE (the site's fault), or another DS_ERR_* (the delta or its
 * basis was wrong: ask for the object whole). Returns 0 or an error that
 * ends the session, which decoder_submit and decoder_collect return.
 */
typedef int (*decoder_done_fn)(void *arg, const struct proto_object *ob, int result);

/*
 * A decoder staging into T, naming PEER in its messages, reporting to DONE
 * with ARG. The worker starts with the first job. Free with decoder_free.
 */
struct decoder *decoder_new(struct target *t, const char *peer, decoder_done_fn done,
	    void *arg);

/*
 * Hands the whole delta stream of OB (encfd, staged as stage_encoded_*) with
 * its opened BASIS to the worker; decodes it here when no thread can be had.
 * Takes ownership of both fds; WHAT names the object in messages. The staged
 * stream is removed once decoded. Returns the first error a DONE call
 * returned for a result already in (decoder_collect without waiting).
 */
int	decoder_submit(struct decoder *d, const struct proto_object *ob, int basis, int encfd,
	    const char *what);

/*
 * Takes in every decoded job (DONE for each); with WAIT, first lets the
 * worker finish the queue. Returns the first error DONE returned. D may be
 * NULL (nothing to collect).
 */
int	decoder_collect(struct decoder *d, int wait);

/*
 * Ends the worker: it finishes the job in hand; the queued ones and the
 * results not taken in are dropped (their streams stay staged whole, so the
 * next session sends nothing more of them and decodes them then). Frees d;
 * NULL is fine.
 */
void	decoder_free(struct decoder *d);

#endif
