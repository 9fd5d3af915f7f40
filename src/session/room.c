/*
 * The receiver's room in staging (room.h).
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "base/xmalloc.h"
#include "repo/manifest.h"
#include "session/room.h"
#include "site/stage.h"

/* A set of hashes: appended, sorted when looked up. */
struct hashes {
	uint8_t	(*v)[HASH_LEN];
	size_t	  n, alloc;
	int	  sorted;
};

struct room {
	struct hashes	touched;	/* objects this session writes */
	struct hashes	evicted;	/* complete objects removed to make room */
};

static int
hash_cmp(const void *a, const void *b)
{
	return memcmp(a, b, HASH_LEN);
}

static void
hashes_add(struct hashes *h, const uint8_t hash[HASH_LEN])
{
	h->v = xgrow(h->v, &h->alloc, h->n + 1, sizeof(*h->v));
	memcpy(h->v[h->n++], hash, HASH_LEN);
	h->sorted = 0;
}

static int
hashes_has(struct hashes *h, const uint8_t hash[HASH_LEN])
{
	if (h->n == 0)
		return 0;
	if (!h->sorted) {
		qsort(h->v, h->n, sizeof(*h->v), hash_cmp);
		h->sorted = 1;
	}
	return bsearch(hash, h->v, h->n, sizeof(*h->v), hash_cmp) != NULL;
}

struct room *
room_new(void)
{
	return xcalloc(1, sizeof(struct room));
}

void
room_free(struct room *room)
{
	if (room == NULL)
		return;
	free(room->touched.v);
	free(room->evicted.v);
	free(room);
}

void
room_touch(struct room *room, const uint8_t hash[HASH_LEN])
{
	if (!hashes_has(&room->touched, hash))
		hashes_add(&room->touched, hash);
}

/* stage_reserve's KEEP: what this session wrote stays. */
static int
keep_touched(const uint8_t *hash, void *arg)
{
	struct room *room = arg;

	return hashes_has(&room->touched, hash);
}

/* stage_reserve's GONE: remembered, for COMMIT. */
static void
note_evicted(const uint8_t *hash, void *arg)
{
	struct room *room = arg;

	if (!hashes_has(&room->evicted, hash))
		hashes_add(&room->evicted, hash);
}

int
room_reserve(struct room *room, struct target *t, uint64_t bytes)
{
	return stage_reserve(t, bytes, keep_touched, note_evicted, room);
}

int
room_evicted(const struct room *room)
{
	return room->evicted.n > 0;
}

/* 1 when M (may be NULL) holds HASH as a file's or symlink's content. */
static int
holds(const struct manifest *m, const uint8_t hash[HASH_LEN])
{
	if (m == NULL)
		return 0;
	for (size_t i = 0; i < m->count; i++)
		if (m->entries[i].type != MANIFEST_DIR &&
		    memcmp(m->entries[i].hash, hash, HASH_LEN) == 0)
			return 1;
	return 0;
}

void
room_evicted_needed(struct room *room, struct target *t, const struct manifest *to,
    const struct manifest *current, void (*fn)(const uint8_t *hash, void *arg), void *arg)
{
	for (size_t i = 0; i < room->evicted.n; i++) {
		const uint8_t *h = room->evicted.v[i];

		if (holds(to, h) && !holds(current, h) && !stage_has(t, h))
			fn(h, arg);
	}
	room->evicted.n = 0;
}
