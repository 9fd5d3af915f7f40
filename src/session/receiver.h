/*
 * The side that owns a target: answers HELLO, opens the target (lock,
 * journal recovery, drift check), reports its state, stages the objects it
 * is sent, applies a COMMIT with the atomic engine, runs the restarts and
 * answers RESULT. It runs in `distsync serve` (over SSH) and in the child of
 * xport-local, the same code either way.
 */
#ifndef DS_RECEIVER_H
#define DS_RECEIVER_H

#include <stdint.h>

struct config;
struct config_host;
struct proto_result;
struct xport;

/* A site distsync never applied, as a push or pull found it (pull prints it). */
struct receiver_found {
	int		 found;		/* 1: never applied, and its target held files */
	char		*release;	/* the kept release the sender recognised them as, or NULL */
	uint64_t	 identical;	/* paths the apply kept as they were found */
};

struct receiver_options {
	/*
	 * The host's config when known locally (xport-local). NULL (serve):
	 * taken from the YAML the initiator sends in OPEN.
	 */
	const struct config *config;
	const struct config_host *host;
	const char	*root;		/* serve --root: targets must be under it; NULL: any */
	const char	*state;		/* serve --state: state dir override, or NULL */
	/*
	 * When set, receives what the RESULT said (also when it could not be
	 * delivered): pull prints it. The caller frees it with proto_result_free.
	 */
	struct proto_result *result;
	/* When set, receives what the session found (caller frees ->release). */
	struct receiver_found *found;
	/*
	 * When set, called as objects arrive (pull's progress): bytes read on
	 * the transport, content bytes received, and the total the sender
	 * announced in PLAN (0 until then).
	 */
	void	(*progress)(void *arg, uint64_t wire, uint64_t done, uint64_t total);
	void	*progress_arg;
};

/*
 * Serves one session on x. Returns 0 when the operation succeeded, else the
 * DS_ERR_* that ended it (already reported to the peer in RESULT or ERROR
 * when the stream still worked, and logged).
 */
int	receiver_run(struct xport *x, const struct receiver_options *opt);

#endif
