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

/*
 * Who can make a site do what (distsync(1), TRUST MODEL): files are applied
 * only when every object matches the manifest and, where the site pins a
 * root key (trust_root), the manifest is covered by a release signature
 * that chains to that root. Commands (restarts, health checks, run_once),
 * owner and keep_backups come only from the site's own configuration; the
 * initiator's YAML in OPEN may say where the target is (under --root), never
 * what runs. The site's own --dry-run and --no-restart hold whatever the peer
 * asks.
 */
struct receiver_options {
	/*
	 * The site's own configuration and its host entry, when the receiver
	 * runs where it is read: a local push (the same distsync.yml) or a pull
	 * (site.yml). NULL (serve): see site_config.
	 */
	const struct config *config;
	const struct config_host *host;
	/*
	 * serve --site-config FILE: the site's own configuration; its host entry
	 * is site.upstream's, else the one OPEN names, else its only one. NULL:
	 * the site has none: the target's place comes from OPEN, and no command
	 * runs.
	 */
	const struct config *site_config;
	/*
	 * Or the file to load it from, in the session (serve): a file that does
	 * not load is the session's error, told to the initiator (an ERROR, not
	 * a dropped link it would retry).
	 */
	const char	*site_config_file;
	uint32_t	 force_flags;	/* PROTO_FLAG_DRY_RUN/NO_RESTART the site itself asked for */
	unsigned	 ops;		/* operations the peer may ask for, 1 << PROTO_OP_*; 0: all */
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
