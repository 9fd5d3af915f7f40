/*
 * Writing a published tree (publish.h) from the store: `distsync publish`.
 * Files that exist are never rewritten (a content-named file is the same
 * content; a keys document of the same version must be byte-identical);
 * the channel pointer is written last, atomically.
 */
#ifndef DS_PUBLISHER_H
#define DS_PUBLISHER_H

#include <stddef.h>
#include <stdint.h>

struct ed25519_key;
struct store;

struct publisher_opts {
	const char	*dir;		/* the published tree (created when missing) */
	const char	*release;	/* the release to publish; NULL: the newest */
	unsigned	 deltas;	/* patches from each of the last N releases */
	uint64_t	 expires_in;	/* seconds the pointer stays valid */
	struct ed25519_key *pointer_key; /* timestamp key, or release key without one */
};

struct publisher_report {
	char		*release;	/* the release published (caller frees) */
	char		*channel;	/* its channel (caller frees) */
	uint64_t	 sequence;
	int64_t		 expires;	/* the pointer's expiry */
	size_t		 files_added;	/* files written this time (pointer excluded) */
	uint64_t	 bytes_added;
	size_t		 indexes;	/* FROM-TO indexes this release has */
	uint64_t	 full_bytes;	/* bytes of every object, whole */
};

/*
 * Publishes O->release (which must be signed) to O->dir. Refuses
 * (DS_ERR_PRECONDITION, logged) to point the channel back at a release
 * older than the one it points at. Errors are logged naming the file.
 */
int	publisher_run(struct store *store, const struct publisher_opts *o,
	    struct publisher_report *rep);

void	publisher_report_release(struct publisher_report *rep);

#endif
