/*
 * Staging: objects received for the next apply, in STATE/staging/. A partial
 * object is HEX.part (resumable at its size); a complete one is HEX, renamed
 * there only after its SHA-256 was verified. Symlink targets are objects too
 * (the content is the target string). A delta stream received for an object
 * is HEX.ENC.part (ENC: delta_encoding_name), kept until it is decoded into
 * HEX.part, so a cut link resumes it at its byte. Only this module knows
 * these names.
 */
#ifndef DS_STAGE_H
#define DS_STAGE_H

#include <stddef.h>
#include <stdint.h>

#include "base/hash.h"

struct target;

/* One staged object, as listed for the receiver's state message. */
struct stage_object {
	uint8_t		hash[HASH_LEN];
	uint64_t	size;		/* complete: object size; partial: bytes so far */
	int		complete;	/* 1: verified HEX; 0: HEX.part */
};

/* Returns 1 if the object is staged and complete, 0 if not. */
int	stage_has(struct target *t, const uint8_t hash[HASH_LEN]);

/* Sets *offset to the bytes already in HEX.part (0 if none); returns 0 or DS_ERR_SYSTEM. */
int	stage_partial(struct target *t, const uint8_t hash[HASH_LEN], uint64_t *offset);

/*
 * Lists complete and partial objects. *objects is an array of *count
 * entries (caller frees with free; NULL when empty). Looks only: a
 * staging directory that is not there (a read-only open) lists none.
 */
int	stage_list(struct target *t, struct stage_object **objects, size_t *count);

/*
 * Returns DS_ERR_NOSPACE (logged with both figures) if the state directory's
 * filesystem has fewer than BYTES (plus a margin) available, else 0. Call it
 * before receiving objects.
 */
int	stage_check_space(struct target *t, uint64_t bytes);

/*
 * Bytes the files in staging take on disk (0 when there is no staging):
 * space a push may count on, since stage_reserve clears what it does not
 * need.
 */
uint64_t stage_usage(struct target *t);

/*
 * Makes room for BYTES more in staging, so that nothing an earlier session
 * left there can wedge this one: when the filesystem has less than BYTES
 * (plus the margin) available, removes staged entries -- objects, parts,
 * delta streams -- whose object KEEP(hash, arg) does not claim (KEEP NULL:
 * any), oldest first, until it has. GONE(hash, arg) (may be NULL) hears of
 * each complete object removed: a sender that counted on it must send it
 * again. Returns 0, DS_ERR_NOSPACE (logged with the figures) when even that
 * is not enough, or DS_ERR_SYSTEM (logged).
 */
int	stage_reserve(struct target *t, uint64_t bytes, int (*keep)(const uint8_t *hash, void *arg),
	    void (*gone)(const uint8_t *hash, void *arg), void *arg);

/*
 * Opens HEX.part for writing positioned at OFFSET (truncating anything past
 * it; 0 starts over). *fd is the caller's until stage_finish or stage_abort.
 */
int	stage_open(struct target *t, const uint8_t hash[HASH_LEN], uint64_t offset, int *fd);

/*
 * Completes an object written through stage_open: fsyncs and closes fd,
 * verifies the SHA-256 (on mismatch removes the part and returns
 * DS_ERR_CORRUPT, logged), renames HEX.part to HEX. fd is closed in all cases.
 */
int	stage_finish(struct target *t, const uint8_t hash[HASH_LEN], int fd);

/*
 * stage_finish for content the caller wrote from its first byte and hashed
 * as it wrote (a decoded delta), having checked that hash is HASH: no
 * second read of the part.
 */
int	stage_finish_hashed(struct target *t, const uint8_t hash[HASH_LEN], int fd);

/* Closes fd of an unfinished object, keeping the part for a later resume. */
void	stage_abort(struct target *t, const uint8_t hash[HASH_LEN], int fd);

/* Stages a memory block (e.g. decoded content or a symlink target) that must hash to HASH. */
int	stage_add_bytes(struct target *t, const uint8_t hash[HASH_LEN], const void *data,
	    size_t len);

/* Stages the content of fd (read to its end) that must hash to HASH. */
int	stage_add_fd(struct target *t, const uint8_t hash[HASH_LEN], int fd);

/* Opens a complete staged object read-only; returns an fd or -1 with errno set. */
int	stage_object_open(struct target *t, const uint8_t hash[HASH_LEN]);

/*
 * Returns 1 and sets *size when the object is staged complete (a regular
 * file), else 0. Does not log.
 */
int	stage_object_size(struct target *t, const uint8_t hash[HASH_LEN], uint64_t *size);

/*
 * Hard-links the complete staged object HASH as NAME under DIRFD (same
 * filesystem); 0, or -1 with errno set (e.g. EPERM under
 * protected_hardlinks: the caller copies instead). Does not log.
 */
int	stage_object_link(struct target *t, const uint8_t hash[HASH_LEN], int dirfd,
	    const char *name);

/* One delta stream staged whole or in part, as listed for the receiver's state message. */
struct stage_encoded {
	uint8_t		hash[HASH_LEN];	/* the object it decodes to */
	int		encoding;	/* enum delta_encoding, one that needs a basis */
	uint64_t	size;		/* bytes of the stream staged so far (> 0) */
};

/*
 * Lists the non-empty delta streams in staging (HEX.ENC.part). *parts is an
 * array of *count entries (caller frees with free; NULL when empty). A
 * staging directory that cannot be read lists nothing.
 */
void	stage_list_encoded(struct target *t, struct stage_encoded **parts, size_t *count);

/*
 * Opens the delta stream of HASH in ENCODING (HEX.ENC.part) for writing,
 * creating it empty, and sets *size to the bytes it already holds. *fd is the
 * caller's to close. Returns 0 or DS_ERR_SYSTEM (logged).
 */
int	stage_encoded_open(struct target *t, const uint8_t hash[HASH_LEN], int encoding,
	    int *fd, uint64_t *size);

/*
 * Cuts the stream opened by stage_encoded_open to OFFSET bytes (<= its size)
 * and positions fd there for appending. Returns 0 or DS_ERR_SYSTEM (logged).
 */
int	stage_encoded_seek(struct target *t, const uint8_t hash[HASH_LEN], int encoding, int fd,
	    uint64_t offset);

/* Removes the delta stream of HASH in ENCODING (decoded, or useless); quiet. */
void	stage_encoded_remove(struct target *t, const uint8_t hash[HASH_LEN], int encoding);

/*
 * Writes into NAME (STAGE_NAME_MAX bytes) "staging/HEX.ENC.part", the
 * stream's name relative to the state directory, for messages.
 */
#define STAGE_NAME_MAX	(HASH_HEX_LEN + 40)
void	stage_encoded_name(const uint8_t hash[HASH_LEN], int encoding, char *name);

/*
 * Creates an anonymous scratch file in staging (already unlinked: it goes
 * with its fd) for work bigger than memory should hold. Returns the fd, or
 * -1 (logged).
 */
int	stage_scratch_open(struct target *t);

/* Removes every staged object, complete or partial. */
int	stage_clear(struct target *t);

#endif
