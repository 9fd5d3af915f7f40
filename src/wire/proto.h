/*
 * The wire protocol between an initiator (push, rollback, verify) and the
 * receiver that owns a target. Every frame is
 *
 *	u32 length (big-endian, of type + payload) | u8 type | payload
 *
 * with strings and blobs u32-length-prefixed (buf.h). A frame longer than
 * PROTO_FRAME_MAX, an unknown type, a field that overruns its frame or
 * trailing bytes are errors that name the frame. One session:
 *
 *	initiator -> HELLO, OPEN                 receiver -> HELLO, STATE
 *	[sender -> MANIFEST_REQUEST              receiver -> MANIFEST]  only if the
 *	                                         sender does not know the digest
 *	[sender -> SIGNATURE_REQUEST             receiver -> SIGNATURE... SIGNATURE_END]
 *	                                         only for bases the sender lacks (delta)
 *	                                         [receiver -> FOUND]  with PROTO_CAP_ADOPT
 *	sender -> (OBJECT, DATA..., OBJECT_END)... [FOUND] COMMIT  (pipelined, no waits)
 *	                                         receiver -> RESULT
 *	                                         (or RETRY: objects whose delta failed;
 *	                                         the sender sends them whole, COMMITs again)
 *
 * A dry-run push (a plan) is the same session with no OBJECT: the receiver
 * opens the site read-only, and with PROTO_CAP_SITEPLAN its RESULT carries
 * the site plan (what its own configuration would restart, and why).
 * For rollback, verify and releases the receiver answers OPEN with RESULT
 * directly (a verify's RESULT preceded by FOUND with PROTO_CAP_ADOPT).
 * A restore (PROTO_CAP_RESTORE) is OPEN, RESTORE; the receiver answers one
 * RESTORED per path (followed by DATA... OBJECT_END with the content unless
 * it was put back in the tree), then RESULT.
 * Either side may send ERROR instead of the next frame; the session ends.
 * Round trips: 2 (one more to fetch the manifest, one more for signatures,
 * one more after a failed delta), whatever the file count.
 */
#ifndef DS_PROTO_H
#define DS_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "base/hash.h"

struct buf;
struct xport;

#define PROTO_MAGIC		0x44535943u	/* "DSYC" */
#define PROTO_VERSION		1u
#define PROTO_FRAME_MAX		(16u * 1024 * 1024)	/* type + payload */
#define PROTO_CHUNK_MAX		(1024u * 1024)		/* DATA payload bytes */
#define PROTO_STRING_MAX	4096u	/* ids, names, short messages */
#define PROTO_MESSAGE_MAX	65536u	/* error and result messages */
#define PROTO_LIST_MAX		100000u	/* entries in one list (drift, staged, services) */

/* Capability bits offered in HELLO; the session uses the intersection. */
#define PROTO_CAP_ZSTD		(1u << 0)	/* OBJECT encoding zstd */
#define PROTO_CAP_RESUME	(1u << 1)	/* OBJECT offset > 0 into a staged .part */
#define PROTO_CAP_DELTA		(1u << 2)	/* encodings zstd-patch and rsync, SIGNATURE_REQUEST, RETRY */
#define PROTO_CAP_ZIPPATCH	(1u << 3)	/* encoding zippatch (with PROTO_CAP_DELTA) */
#define PROTO_CAP_PLAN		(1u << 4)	/* PLAN before the objects (for progress) */
#define PROTO_CAP_ZIPCOPY	(1u << 5)	/* zippatch streams may copy entries (DZP2) */
#define PROTO_CAP_TRUST		(1u << 6)	/* RESULT may carry PROTO_RESULT_VERIFIED */
/*
 * The site's side of the admin's questions: RESULT's site tail (work still
 * pending, the backups kept, the run_once runs), OPEN's rollback target,
 * and the RELEASES operation.
 */
#define PROTO_CAP_SITEINFO	(1u << 7)
#define PROTO_CAP_ADOPT		(1u << 8)	/* FOUND: the tree a never-applied site holds */
/*
 * A dry-run push is a plan: the receiver opens the site read-only and its
 * RESULT carries the site plan (the services that would restart and why,
 * the run_once runs owed), from the site's own configuration.
 */
#define PROTO_CAP_SITEPLAN	(1u << 9)
#define PROTO_CAP_RESTORE	(1u << 10)	/* PROTO_OP_RESTORE: RESTORE, RESTORED */
/*
 * COMMIT's manifest may be one zstd frame (it starts with the zstd magic;
 * the text never does) with the manifest of the receiver's current release,
 * when it has one, as prefix dictionary: a small change to a release of
 * thousands of files costs a few hundred bytes, not the whole text.
 */
#define PROTO_CAP_MANIFEST_ZSTD	(1u << 11)
#define PROTO_CAP_ALL		(PROTO_CAP_ZSTD | PROTO_CAP_RESUME | PROTO_CAP_DELTA | \
				 PROTO_CAP_ZIPPATCH | PROTO_CAP_PLAN | PROTO_CAP_ZIPCOPY | \
				 PROTO_CAP_TRUST | PROTO_CAP_SITEINFO | PROTO_CAP_ADOPT | \
				 PROTO_CAP_SITEPLAN | PROTO_CAP_RESTORE | PROTO_CAP_MANIFEST_ZSTD)

enum proto_type {
	PROTO_HELLO = 1,
	PROTO_ERROR = 2,
	PROTO_OPEN = 3,
	PROTO_STATE = 4,
	PROTO_MANIFEST_REQUEST = 5,
	PROTO_MANIFEST = 6,
	PROTO_OBJECT = 7,
	PROTO_DATA = 8,
	PROTO_OBJECT_END = 9,
	PROTO_COMMIT = 10,
	PROTO_RESULT = 11,
	PROTO_SIGNATURE_REQUEST = 12,
	PROTO_SIGNATURE = 13,
	PROTO_SIGNATURE_END = 14,
	PROTO_RETRY = 15,
	PROTO_PLAN = 16,
	PROTO_FOUND = 17,
	PROTO_RESTORE = 18,
	PROTO_RESTORED = 19,
};
#define PROTO_TYPE_MIN	PROTO_HELLO
#define PROTO_TYPE_MAX	PROTO_RESTORED

enum proto_role {
	PROTO_ROLE_INITIATOR = 1,	/* runs push/rollback/verify; the sender of a push */
	PROTO_ROLE_RECEIVER = 2,	/* owns the target */
};

enum proto_op {
	PROTO_OP_PUSH = 1,
	PROTO_OP_ROLLBACK = 2,
	PROTO_OP_VERIFY = 3,
	PROTO_OP_RELEASES = 4,	/* the site's current state and backups kept (PROTO_CAP_SITEINFO) */
	PROTO_OP_RESTORE = 6,	/* a file as a backup set kept it (PROTO_CAP_RESTORE) */
};
#define PROTO_OP_MAX	PROTO_OP_RESTORE

/* Path lists sent back (drift) stop at this many bytes so a frame always fits. */
#define PROTO_LIST_BUDGET	(8u * 1024 * 1024)

/* How many of the N PATHS fit a list in one frame (PROTO_LIST_MAX, PROTO_LIST_BUDGET). */
size_t	proto_list_fit(char *const *paths, size_t n);

/* Flags in OPEN and COMMIT. */
#define PROTO_FLAG_DRY_RUN		(1u << 0)
#define PROTO_FLAG_FAIL_ON_DRIFT	(1u << 1)
#define PROTO_FLAG_NO_RESTART		(1u << 2)
#define PROTO_FLAGS_ALL	(PROTO_FLAG_DRY_RUN | PROTO_FLAG_FAIL_ON_DRIFT | PROTO_FLAG_NO_RESTART)
/* In RESULT only, to an initiator with PROTO_CAP_TRUST: the site pins a root (trust_root). */
#define PROTO_RESULT_VERIFIED		(1u << 8)
#define PROTO_RESULT_FLAGS_ALL		(PROTO_FLAGS_ALL | PROTO_RESULT_VERIFIED)

/* Object encodings (OBJECT.encoding); delta encodings plug in after these. */
enum proto_encoding {
	PROTO_ENC_RAW = 0,		/* the bytes as they are */
	PROTO_ENC_ZSTD = 1,		/* one zstd frame of the whole (remaining) content */
	PROTO_ENC_ZSTD_PATCH = 2,	/* zstd with the basis as prefix dictionary (delta.c) */
	PROTO_ENC_RSYNC = 3,		/* librsync delta, zstd-compressed (delta.c) */
	PROTO_ENC_ZIP_PATCH = 4,	/* zip-aware patch (zipdelta.c) */
};
#define PROTO_ENC_MAX	PROTO_ENC_ZIP_PATCH

struct proto_hello {
	uint32_t	 magic;
	uint32_t	 version;
	uint64_t	 caps;
	uint8_t		 role;		/* enum proto_role */
	char		*software;	/* "distsync 0.1.0", for messages */
};

struct proto_error {
	int32_t		 code;		/* a DS_ERR_* (negative) */
	char		*message;
};

/* What the initiator wants from the receiver, and for which host. */
struct proto_open {
	uint8_t		 op;		/* enum proto_op */
	uint32_t	 flags;		/* PROTO_FLAG_* */
	uint32_t	 lock_timeout;	/* seconds to wait for the target lock */
	char		*host;		/* host name as configured */
	uint8_t		*config;	/* effective config of the host as YAML (may be empty) */
	size_t		 config_len;
	/*
	 * Rollback: the state to return to (rollback --release), or NULL for
	 * the previous one. Encoded after config only when set: a receiver
	 * without PROTO_CAP_SITEINFO refuses it as trailing bytes.
	 */
	char		*release;
};

struct proto_staged {
	uint8_t		 hash[HASH_LEN];
	/*
	 * 1: verified staging/<hash>; 0: a .part of decoded content (offset
	 * counts decoded bytes); PROTO_STAGED_ENCODED(enc): the first offset
	 * bytes of a delta stream by enc (staging/<hash>.<enc>.part), which the
	 * sender resumes when its cached encoding is the same stream.
	 */
	uint8_t		 complete;
	uint64_t	 offset;	/* bytes in the .part */
};

#define PROTO_STAGED_ENCODED(enc)	(2u + (enc))
#define PROTO_STAGED_MAX		PROTO_STAGED_ENCODED(PROTO_ENC_MAX)

struct proto_state {
	char		*release;	/* current release id, "" when none */
	uint8_t		 digest[HASH_LEN]; /* of current.manifest; zero when none */
	uint64_t	 free_bytes;	/* free space on the target's filesystem, with
					   what staging holds (cleared for room) */
	struct proto_staged *staged;
	size_t		 nstaged;
	char		**drift;	/* paths that changed since the last apply */
	size_t		 ndrift;
};

struct proto_manifest {
	uint8_t		*data;		/* canonical manifest bytes */
	size_t		 len;
};

struct proto_object {
	uint8_t		 hash[HASH_LEN];
	uint8_t		 encoding;	/* enum proto_encoding */
	uint64_t	 size;		/* decoded size of the whole object */
	uint64_t	 offset;	/* DATA decodes to the content from this byte on */
	uint8_t		 basis[HASH_LEN]; /* basis object for delta encodings, else zero */
};

/* DATA and OBJECT_END carry no decoded struct: DATA's payload is the chunk itself. */

/*
 * Bases the sender cannot delta against without their content (drifted
 * files, content its store lacks): the receiver answers with one SIGNATURE
 * per path, in order, then SIGNATURE_END. One round trip for all of them.
 */
struct proto_signature_request {
	char		**paths;	/* relative to the target */
	size_t		 npaths;
};

struct proto_signature {
	char		*path;
	uint8_t		 present;	/* 0: not a regular file there; the rest is empty */
	uint8_t		 hash[HASH_LEN]; /* SHA-256 of the content signed: the basis of a delta */
	uint64_t	 size;
	uint8_t		*sig;		/* librsync signature (delta.h) */
	size_t		 sig_len;
};

/*
 * The receiver's answer to COMMIT when objects it was sent as deltas did not
 * reconstruct to their SHA-256 (a corrupt delta, a basis not as claimed),
 * or staged objects the sender counted on had to be cleared for room:
 * nothing is applied; the sender sends those whole and COMMITs again.
 */
struct proto_retry {
	uint8_t		*hashes;	/* nhashes × HASH_LEN */
	size_t		 nhashes;
};

/* What the sender is about to send (before its first OBJECT), for the receiver's progress. */
struct proto_plan {
	uint64_t	 objects;	/* objects it will send */
	uint64_t	 bytes;		/* their content bytes, less what is staged already */
};

/*
 * Adoption (PROTO_CAP_ADOPT): a site distsync never applied holds the tree
 * found there, which decides what is sent as any applied tree does. The
 * receiver sends FOUND right after STATE (a push) or right before RESULT (a
 * verify): the digest of that tree's manifest, which MANIFEST_REQUEST then
 * returns. The sender sends FOUND right before its first COMMIT: the kept
 * release it recognised the tree as, for the site's own summary.
 */
struct proto_found {
	uint8_t		 digest[HASH_LEN]; /* zero: the site was applied, or its target is empty */
	char		*release;	/* the kept release the tree equals; "" when none */
};

/*
 * Restore (PROTO_OP_RESTORE): after OPEN the initiator names the paths it
 * wants as a backup set kept them -- the tree found and replaced when it
 * had drifted, else the release replaced.
 */
struct proto_restore {
	char		*backup;	/* the set (a state id); "": the newest that has each path */
	uint8_t		 in_place;	/* 1: put each back in the tree; 0: send the content */
	char		**paths;	/* relative to the target, path_check'd */
	size_t		 npaths;
};

/* One path restored, in RESTORE's order; unless in place, DATA... OBJECT_END follow. */
struct proto_restored {
	char		*path;
	char		*backup;	/* the set it came from */
	uint32_t	 mode;		/* permission bits (07777 at most) */
	uint64_t	 size;
	uint8_t		 hash[HASH_LEN];	/* SHA-256 of the content */
};

struct proto_commit {
	char		*release;
	uint8_t		*manifest;	/* canonical bytes; empty: the receiver's current one */
	size_t		 manifest_len;
	uint8_t		*signature;	/* may be empty */
	size_t		 signature_len;
	uint32_t	 flags;		/* PROTO_FLAG_* */
};

/* A service in a site plan: what a dry run's change would do to it. */
enum proto_restart_kind {
	PROTO_RESTART_NONE = 0,		/* restart: none; listed, not restarted */
	PROTO_RESTART_RESTART = 1,	/* restarts: a changed path matched its paths */
	PROTO_RESTART_RELOAD = 2,	/* restarts: a changed path matched its reload_on */
};
#define PROTO_RESTART_MAX	PROTO_RESTART_RELOAD

struct proto_restart {
	char		*name;		/* the service as the site configures it */
	uint8_t		 kind;		/* enum proto_restart_kind */
	char		*why;		/* the first changed path that matched */
};

struct proto_result {
	int32_t		 status;	/* 0 or a DS_ERR_* */
	uint32_t	 flags;		/* PROTO_FLAG_* that applied (dry run...) */
	char		*from;		/* release before, "" when none */
	char		*to;		/* release after */
	uint64_t	 added, updated, deleted;
	uint64_t	 changed;	/* paths in the changed set */
	uint64_t	 objects;	/* objects received */
	uint64_t	 bytes;		/* bytes received (on the wire) */
	char		**services;	/* restarted, in order */
	size_t		 nservices;
	char		*health;	/* "ok", "none", or what failed */
	char		**drift;	/* paths overwritten (push) or found (verify) */
	size_t		 ndrift;
	char		*message;	/* error text or "" */
	/*
	 * The site tail, encoded after message when tail is set (a receiver
	 * sets it only for a peer with PROTO_CAP_SITEINFO); decoded when present.
	 */
	int		 tail;
	char		*pending;	/* work owed after the session, "" for none */
	char		**kept;		/* "ID TIME STEP": backups kept, rollback order first
					   (lineage.h); STEP 0: only with --release */
	size_t		 nkept;
	char		**runs;		/* run_once runs: "run_once[N] PATH: ran 0.2 s" */
	size_t		 nruns;
	/*
	 * The site plan (PROTO_CAP_SITEPLAN, a dry run), encoded after the
	 * site tail when siteplan is set (the tail then goes too); decoded
	 * when present. restarts in restart order, those that restart first;
	 * would_run the run_once runs owed ("run_once[N] PATH").
	 */
	int		 siteplan;
	struct proto_restart *restarts;
	size_t		 nrestarts;
	char		**would_run;
	size_t		 nwould_run;
};

/* A decoded message of any type, for generic handling (tests, fuzzing). */
struct proto_msg {
	uint8_t	type;
	union {
		struct proto_hello	hello;
		struct proto_error	error;
		struct proto_open	open;
		struct proto_state	state;
		struct proto_manifest	manifest;
		struct proto_object	object;
		struct proto_commit	commit;
		struct proto_result	result;
		struct proto_signature_request signature_request;
		struct proto_signature	signature;
		struct proto_retry	retry;
		struct proto_plan	plan;
		struct proto_found	found;
		struct proto_restore	restore;
		struct proto_restored	restored;
	} u;
	const uint8_t	*data;		/* DATA: the chunk, pointing into the payload */
	size_t		 data_len;
};

/* Returns the frame name for a type ("HELLO"), or "unknown". */
const char	*proto_type_name(uint8_t type);

/*
 * Encoders append the message's payload (without length or type) to b.
 * They return 0 or DS_ERR_INVALID when a field is over its limit.
 */
int	proto_hello_encode(struct buf *b, const struct proto_hello *m);
int	proto_error_encode(struct buf *b, const struct proto_error *m);
int	proto_open_encode(struct buf *b, const struct proto_open *m);
int	proto_state_encode(struct buf *b, const struct proto_state *m);
int	proto_manifest_encode(struct buf *b, const struct proto_manifest *m);
int	proto_object_encode(struct buf *b, const struct proto_object *m);
int	proto_commit_encode(struct buf *b, const struct proto_commit *m);
int	proto_result_encode(struct buf *b, const struct proto_result *m);
int	proto_signature_request_encode(struct buf *b, const struct proto_signature_request *m);
int	proto_signature_encode(struct buf *b, const struct proto_signature *m);
int	proto_retry_encode(struct buf *b, const struct proto_retry *m);
int	proto_plan_encode(struct buf *b, const struct proto_plan *m);
int	proto_found_encode(struct buf *b, const struct proto_found *m);
int	proto_restore_encode(struct buf *b, const struct proto_restore *m);
int	proto_restored_encode(struct buf *b, const struct proto_restored *m);

/*
 * Decoders consume the whole payload in b into *m (zeroed first) and reject
 * overruns, over-limit fields, unclean paths (path_check) and trailing bytes
 * with DS_ERR_PROTO, logging "peer: FRAME frame: reason" (peer may be NULL).
 * On error *m holds nothing to free. Free a decoded message with the
 * matching _free (which accepts a zeroed struct).
 */
int	proto_hello_decode(struct buf *b, const char *peer, struct proto_hello *m);
int	proto_error_decode(struct buf *b, const char *peer, struct proto_error *m);
int	proto_open_decode(struct buf *b, const char *peer, struct proto_open *m);
int	proto_state_decode(struct buf *b, const char *peer, struct proto_state *m);
int	proto_manifest_decode(struct buf *b, const char *peer, struct proto_manifest *m);
int	proto_object_decode(struct buf *b, const char *peer, struct proto_object *m);
int	proto_commit_decode(struct buf *b, const char *peer, struct proto_commit *m);
int	proto_result_decode(struct buf *b, const char *peer, struct proto_result *m);
int	proto_signature_request_decode(struct buf *b, const char *peer,
	    struct proto_signature_request *m);
int	proto_signature_decode(struct buf *b, const char *peer, struct proto_signature *m);
int	proto_retry_decode(struct buf *b, const char *peer, struct proto_retry *m);
int	proto_plan_decode(struct buf *b, const char *peer, struct proto_plan *m);
int	proto_found_decode(struct buf *b, const char *peer, struct proto_found *m);
int	proto_restore_decode(struct buf *b, const char *peer, struct proto_restore *m);
int	proto_restored_decode(struct buf *b, const char *peer, struct proto_restored *m);

void	proto_hello_free(struct proto_hello *m);
void	proto_error_free(struct proto_error *m);
void	proto_open_free(struct proto_open *m);
void	proto_state_free(struct proto_state *m);
void	proto_manifest_free(struct proto_manifest *m);
void	proto_commit_free(struct proto_commit *m);
void	proto_result_free(struct proto_result *m);
void	proto_signature_request_free(struct proto_signature_request *m);
void	proto_signature_free(struct proto_signature *m);
void	proto_retry_free(struct proto_retry *m);
void	proto_found_free(struct proto_found *m);
void	proto_restore_free(struct proto_restore *m);
void	proto_restored_free(struct proto_restored *m);

/*
 * Decodes a payload of TYPE into *m by the type's decoder (MANIFEST_REQUEST
 * and OBJECT_END must be empty; DATA must be 1..PROTO_CHUNK_MAX bytes).
 * DS_ERR_PROTO, logged, for an unknown type or a bad payload.
 */
int	proto_msg_decode(uint8_t type, struct buf *b, const char *peer, struct proto_msg *m);
/* Frees what proto_msg_decode allocated; a zeroed struct is fine. */
void	proto_msg_free(struct proto_msg *m);

/*
 * Appends one whole frame (length, type, payload) to out. DS_ERR_INVALID
 * when the payload is over the frame limit.
 */
int	proto_frame_put(struct buf *out, uint8_t type, const struct buf *payload);
/*
 * Takes one whole frame from the front of in: checks the length against the
 * limit and the type against the known types, and moves the payload into
 * payload (reset first). Returns 0, 1 when in holds only part of a frame
 * (nothing consumed), or DS_ERR_PROTO (logged) on a bad frame.
 */
int	proto_frame_get(struct buf *in, const char *peer, uint8_t *type, struct buf *payload);

/* Sends one frame over x; payload may be NULL for an empty one. */
int	proto_send(struct xport *x, uint8_t type, const struct buf *payload);
/*
 * Receives one frame from x into payload (reset first). An early end of
 * stream is DS_ERR_CONNECT naming the peer; a bad frame DS_ERR_PROTO.
 */
int	proto_recv(struct xport *x, uint8_t *type, struct buf *payload);
/*
 * Receives one frame and decodes it. An ERROR frame from the peer is logged
 * as "peer: message", kept whole in x->peer_error and turned into DS_ERR_PEER (or the peer's code when it
 * is a precondition such as DS_ERR_LOCKED); any type other than want is
 * DS_ERR_PROTO naming both frames. want 0 accepts any type.
 */
int	proto_recv_msg(struct xport *x, uint8_t want, struct buf *payload, struct proto_msg *m);

/* Logs each line of a peer's message (ERROR, RESULT) as "peer: line". */
void	proto_log_lines(const char *peer, const char *text);

/* Convenience senders: encode into a scratch buffer and send. */
int	proto_send_hello(struct xport *x, uint8_t role, uint64_t caps);
int	proto_send_error(struct xport *x, int code, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
int	proto_send_msg(struct xport *x, uint8_t type, const void *m);

/*
 * Checks a received HELLO: magic, version, role. Returns 0 and the common
 * capabilities in *caps, or DS_ERR_PROTO with a message naming the peer and
 * both versions.
 */
int	proto_hello_check(const struct proto_hello *h, const char *peer, uint8_t want_role,
	    uint64_t our_caps, uint64_t *caps);

#endif
