/*
 * The apply journal (STATE/journal) as bytes and back: what an apply will do
 * to the tree, written and fsynced before the tree is touched (the commit
 * point, commit.h) and rolled forward by recover.c. This module is only the
 * format: no file is read or written here.
 *
 * One record per line, paths %HH-escaped (bytes <= 0x20, 0x7f and '%'):
 *	distsync-journal 1
 *	from ID|-		state replaced (its backup set is backup/ID/)
 *	to ID			a release, or a state of commit.h's COMMIT_ID_*
 *	keep N			backup sets to keep
 *	B HEX PATH		old content of PATH saved as backup/FROM/objects/HEX (done before)
 *	U PATH			unlink a file or symlink (skipped if absent or now a dir)
 *	R PATH			remove a directory (skipped if absent or no longer a dir)
 *	D MODE UID GID PATH	make a directory
 *	P N MODE UID GID PATH	rename prep/N to PATH (skipped if prep/N is gone), set mode/owner
 *	M MODE UID GID PATH	set mode/owner
 *	F N HEX PATH		owed: run_once hook N on file PATH (content HEX)
 *	O N HEX			owed: run_once hook N on its set of files (set hash HEX)
 *	S NAME			owed: restart service NAME and wait for its health check
 *	L [ID ...]		the states a rollback returns to after this one, newest first
 *	end
 * MODE is four octal digits, UID/GID -1 leave ownership alone. An apply
 * writes U and R in reverse path order (children first), D and P in path
 * order (parents first); the format does not check the order.
 *
 * F, O and S are the work the apply owes once its files are in place, in the
 * order it is done (run_once hooks, then restarts in after: order). They do
 * not touch the tree: the replay moves them to STATE/pending (pending.h), and
 * whoever finishes the apply runs them. L, at most one, is what the replay
 * writes as STATE/previous.list (lineage.h); a journal without one (written
 * before rollbacks kept a list) leaves no list, and previous.id decides.
 *
 * A first apply (no current.id) has "from (pre-distsync)", or "from (none)"
 * for an empty target: the tree as found is the state a rollback returns to,
 * backed up like a release, its manifest the scan. "to (none)" ends with no
 * current.* at all, as before the first apply.
 *
 * The bytes are the on-disk format that crashed applies leave behind: never
 * change what journal_encode writes for a given journal.
 */
#ifndef DS_JOURNAL_H
#define DS_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "base/hash.h"

#define JOURNAL_HEADER	"distsync-journal 1"

/* What a record does; the value is the letter that starts its line. */
enum journal_kind {
	JOURNAL_BACKUP = 'B',	/* hash, path */
	JOURNAL_UNLINK = 'U',	/* path */
	JOURNAL_RMDIR = 'R',	/* path */
	JOURNAL_MKDIR = 'D',	/* mode, uid, gid, path */
	JOURNAL_PLACE = 'P',	/* prep, mode, uid, gid, path */
	JOURNAL_MODE = 'M',	/* mode, uid, gid, path */
	JOURNAL_RUN_FILE = 'F',	/* prep: hook index, hash: the file's content, path */
	JOURNAL_RUN_SET = 'O',	/* prep: hook index, hash: the set's hash; path "" */
	JOURNAL_RESTART = 'S',	/* path: the service name (one path component) */
	JOURNAL_LINEAGE = 'L',	/* path: state ids separated by one space, or "" */
};

/* Most state ids an L record holds: older ones have no backup set left anyway. */
#define JOURNAL_LINEAGE_MAX	64

/* 1 when a record of KIND changes the tree (U, R, D, P, M), 0 otherwise. */
int	journal_kind_is_tree(char kind);

/* 1 when a record of KIND is owed work (F, O, S), 0 otherwise. */
int	journal_kind_is_owed(char kind);

struct journal_record {
	char		 kind;		/* enum journal_kind */
	char		*path;		/* relative, path_check clean */
	unsigned	 mode;		/* <= 07777 */
	long		 uid, gid;	/* -1: leave alone */
	size_t		 prep;		/* JOURNAL_PLACE: prep/N; F, O: the hook's index */
	uint8_t		 hash[HASH_LEN];	/* B: the saved content; F, O: see above */
};

struct journal {
	char		*from;		/* state replaced; NULL is written "-" */
	char		*to;		/* state the tree becomes */
	unsigned	 keep;		/* backup sets to keep */
	struct journal_record *records;
	size_t		 count, alloc;
};

/*
 * Appends a record of KIND for PATH (copied) with uid and gid -1 and every
 * other field zero; returns it for the caller to fill (valid until the next
 * journal_add).
 */
struct journal_record *journal_add(struct journal *j, char kind, const char *path);

/* Frees what j holds and zeroes it; a zeroed journal is an empty one. */
void	journal_release(struct journal *j);

/*
 * Encodes j, which the caller built (to set, every record valid), into a
 * new NUL-terminated block (caller frees; *len excludes the NUL). Does not
 * fail.
 */
char	*journal_encode(const struct journal *j, size_t *len);

/*
 * Decodes LEN bytes of DATA (the bytes up to a NUL, if there is one) into
 * *j, which it zeroes first; the caller frees it with journal_release. The
 * decoder accepts only a complete journal: the header, from, to and keep
 * lines in that order, records whose fields parse, modes <= 07777, clean
 * relative paths (no %00; a service name is one component), ids that
 * commit_state_id_check accepts (in L too, at most JOURNAL_LINEAGE_MAX, one
 * L), and "end" as the last line, newline included. Anything else returns DS_ERR_CORRUPT,
 * logged once as "NAME:LINE: damaged journal; ..." naming the first line
 * that is wrong (the last line when "end" is missing), with j zeroed.
 */
int	journal_decode(const char *data, size_t len, const char *name, struct journal *j);

#endif
