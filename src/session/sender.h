/*
 * The initiating side of a session: for a push it is the sender (plans from
 * the receiver's state and streams the objects the receiver lacks, then
 * COMMIT); for rollback and verify it only asks and reads the RESULT.
 * Only sender.c and receiver.c speak proto.
 */
#ifndef DS_SENDER_H
#define DS_SENDER_H

#include <stdint.h>
#include <stdio.h>

#include "wire/proto.h"

struct config;
struct config_host;
struct store;
struct xport;

struct sender_options {
	uint8_t		 op;		/* PROTO_OP_PUSH, _ROLLBACK or _VERIFY */
	const struct config *config;	/* the repository's config */
	const struct config_host *host;	/* the target host */
	struct store	*store;		/* push: the repository's store (not owned) */
	const char	*release;	/* push: release id; NULL: the latest */
	uint32_t	 flags;		/* PROTO_FLAG_* */
	unsigned	 lock_timeout;	/* seconds the receiver waits for its lock */
	int		 level;		/* zstd level for whole-file objects; 0: config's */
	/*
	 * Push progress (may be NULL): wire bytes sent so far, content bytes of
	 * the objects sent and planned; called after the plan and per DATA chunk.
	 */
	void		(*progress)(void *arg, uint64_t wire, uint64_t done, uint64_t total);
	void		*progress_arg;
};

struct sender_report {
	struct proto_result result;	/* what the receiver answered */
	char		*release;	/* release pushed (push only) */
	uint64_t	 objects_sent;
	uint64_t	 object_bytes;	/* decoded bytes of the objects sent */
	uint64_t	 planned_bytes;	/* push: content bytes the plan needs sent */
	uint64_t	 bytes_sent;	/* on the wire */
	uint64_t	 bytes_received;
	unsigned	 round_trips;	/* times the sender waited for the peer */
	int		 manifest_fetched; /* 1: the receiver's manifest was unknown */
	uint64_t	 enc_objects[PROTO_ENC_MAX + 1]; /* objects sent, by PROTO_ENC_* */
	uint64_t	 enc_bytes[PROTO_ENC_MAX + 1];	/* their encoded bytes */
	uint64_t	 signatures;	/* bases the receiver signed (unknown to the store) */
	uint64_t	 fallbacks;	/* deltas the receiver could not use: sent again whole */
	uint64_t	 cache_hits;	/* encodings taken from the store's delta cache */
};

/*
 * Runs one session over x as the initiator. Returns 0 when the receiver
 * reported success, else a DS_ERR_* (the peer's status when it sent one);
 * report is filled as far as the session got either way and must be
 * released with sender_report_release. Errors are logged once, prefixed by
 * the host name for remote ones.
 */
int	sender_run(struct xport *x, const struct sender_options *opt,
	    struct sender_report *report);
void	sender_report_release(struct sender_report *report);


/*
 * Prints what a session did on HOST, for people: from -> to release, counts,
 * bytes sent, drift, services restarted and health; or the error. STATUS is
 * what sender_run returned.
 */
void	sender_report_print(const struct sender_report *report, const char *host, uint8_t op,
	    int status, FILE *fp);
/* The same as one JSON object (no newline). */
void	sender_report_json(const struct sender_report *report, const char *host, uint8_t op,
	    int status, FILE *fp);

#endif
