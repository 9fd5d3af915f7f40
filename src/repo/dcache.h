/*
 * The store's cache of encodings, deltas/BASIS-TARGET.ENC (store_delta_path):
 * one place that makes an entry, for a push (sender.c) and for release
 * --precompute (cmd-release.c). An entry is written to a temp file and
 * renamed into place (not fsynced: one lost in a crash is made again); an
 * flock on ENTRY.lock makes sessions that need the same entry at once wait
 * for the first one's result instead of making it again; a zippatch of a
 * pair that is not zips leaves an empty entry, which every later fill
 * answers with DS_ERR_UNSUPPORTED (no encoded stream is ever empty).
 */
#ifndef DS_DCACHE_H
#define DS_DCACHE_H

#include <stdint.h>

#include "base/hash.h"
#include "repo/store.h"

struct dcache_req {
	struct store	*store;
	int		 enc;		/* DELTA_*: zstd, zstd-patch, zippatch or rsync */
	const uint8_t	*basis;		/* the basis object (patches), else NULL */
	const uint8_t	*target;	/* the object encoded */
	const char	*what;		/* its path, for messages */
	int		 level;
	int		 alt_level;	/* also encode at this level, keep the smaller; 0: no */
	/* rsync: opens the receiver's signature (fd at its start), -1 on error (logged). */
	int		(*sig_open)(void *arg);
	void		*sig_arg;
};

/*
 * Makes sure the entry at PATH exists: *len is its length, *hit 1 when it
 * was there already (or another session made it meanwhile). Returns 0,
 * DS_ERR_UNSUPPORTED for a refused zippatch (now or before), or another
 * DS_ERR_* (logged).
 */
int	dcache_fill(const char *path, const struct dcache_req *req, uint64_t *len, int *hit);

#endif
