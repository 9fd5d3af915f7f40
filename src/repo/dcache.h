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
#include "repo/plan.h"
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
 * was there already (or another session made it meanwhile). A deltas/ that
 * is gone is made again. When the cache cannot be written (read-only, full,
 * not ours: warned once per process) and ANON is not NULL, the encoding is
 * made all the same into an unnamed file (dcache_encode_anon), *anon (-1
 * otherwise) is its fd, the caller's to close, and 0 is returned. Returns 0,
 * DS_ERR_UNSUPPORTED for a refused zippatch (now or before), or another
 * DS_ERR_* (logged).
 */
int	dcache_fill(const char *path, const struct dcache_req *req, uint64_t *len, int *hit,
	    int *anon);

/*
 * Encodes REQ into an unnamed file, kept nowhere: what an encoding against
 * a basis the peer claims (rsync, against the site's own signature) gets,
 * so that no site can grow the store. O_TMPFILE in the store's tmp/, else
 * memory (memfd): a killed session leaves nothing. *fd (positioned at 0,
 * the caller's to close) and *len; returns 0 or DS_ERR_* (logged).
 */
int	dcache_encode_anon(const struct dcache_req *req, int *fd, uint64_t *len);

/*
 * Removes what killed sessions left in deltas/ and what no longer belongs
 * there: entry locks nobody holds (ENTRY.lock), temp files of a process
 * that is gone or older than a day (ENTRY.PID.N.tmp, .tmp.alt), and rsync
 * entries (older versions cached deltas against a site's signature).
 * Returns the number of files removed; errors are skipped silently.
 */
size_t	dcache_tidy(const struct store *store);

/* One object of a release pair, as dcache_fill_pair made or found its patch. */
struct dcache_pair_entry {
	const struct plan_object *po;	/* the object, and the basis the plan chose */
	int		 enc;		/* DELTA_ZIP_PATCH or DELTA_ZSTD_PATCH */
	const char	*path;		/* the cache entry */
	uint64_t	 len;		/* its length */
	int		 made;		/* 1: made now, 0: it was cached */
};

/*
 * Makes sure the cache holds the patch of every object TO needs over FROM
 * that has a basis in FROM (plan_make): zip-aware for a zip pair, else a
 * zstd patch, the smaller of DELTA_LEVEL_PRECOMPUTE and DELTA_LEVEL_DEFAULT
 * (zstd's optimal parsers sometimes miss what level 9 finds against a basis
 * of a hundred megabytes). FN (may be NULL) is called for each, in path
 * order; a nonzero return stops and is returned. Errors are logged.
 */
int	dcache_fill_pair(struct store *store, const struct manifest *from,
	    const struct manifest *to,
	    int (*fn)(const struct dcache_pair_entry *e, void *arg), void *arg);

#endif
