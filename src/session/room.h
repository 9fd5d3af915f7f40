/*
 * The receiver's room in staging for one push: every object it announces is
 * checked against free space before a byte of it is written
 * (room_reserve), and when space is short what earlier sessions left in
 * staging makes way -- never what this session wrote (room_touch). An
 * object the sender counted on (STATE listed it staged) that had to make
 * way is asked for again at COMMIT (room_evicted_needed), so a failed or
 * hostile session's leftovers can never wedge the next one.
 */
#ifndef DS_ROOM_H
#define DS_ROOM_H

#include <stdint.h>

#include "base/hash.h"

struct manifest;
struct room;
struct target;

/* An empty record for one session; free with room_free (NULL is fine). */
struct room	*room_new(void);
void		 room_free(struct room *room);

/* This session writes object HASH (its content or delta stream): it stays. */
void	room_touch(struct room *room, const uint8_t hash[HASH_LEN]);

/*
 * Makes room for BYTES more in staging (stage_reserve), removing only
 * entries this session did not touch. Returns 0, or DS_ERR_NOSPACE (logged
 * with the figures) or DS_ERR_SYSTEM.
 */
int	room_reserve(struct room *room, struct target *t, uint64_t bytes);

/* 1 when making room removed a complete object this session, else 0. */
int	room_evicted(const struct room *room);

/*
 * Calls FN(hash, ARG) for each complete object making room removed that TO
 * holds (a file or symlink) and the site lacks: not in CURRENT (may be
 * NULL), not staged again since. Each is named once.
 */
void	room_evicted_needed(struct room *room, struct target *t, const struct manifest *to,
	    const struct manifest *current, void (*fn)(const uint8_t *hash, void *arg),
	    void *arg);

#endif
