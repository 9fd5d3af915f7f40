/*
 * Applying a release to an opened target, all or nothing.
 *
 * Content for each path comes from staging/HEX, from a file of the current
 * tree with that hash (copied, never moved), or from a backup set. Before the
 * tree is touched: every object is present, free space is checked, drift is
 * detected. Then every new file is prepared in STATE/prep/ (written, mode,
 * owner, fsynced), old content is hard-linked into STATE/backup/FROM/, and a
 * journal of every step (journal.h) is written and fsynced: that is the
 * commit point. The journal is performed (recover.h: deletes, directory
 * changes, renames into place, mode changes), directories are fsynced,
 * current.* are written, the journal is removed. A crash before the commit
 * point leaves the old release (the next site_open discards prep/); after
 * it, site_open rolls the journal forward. Either way the tree is release A
 * or release B, byte for byte. Backup sets are backup.h's, the history line
 * history.h's.
 */
#ifndef DS_COMMIT_H
#define DS_COMMIT_H

#include <stddef.h>
#include <stdint.h>

#include "base/hash.h"

struct config;
struct manifest;
struct target;

/*
 * States that are not releases. A first apply (no current.id) records what
 * it replaces as one of these, so that a rollback can return the target to
 * the tree as it was found: backup/ID/ holds its manifest and the replaced
 * content, previous.id names it. Neither can be a release id (parentheses),
 * so neither can collide with one.
 */
#define COMMIT_ID_FOUND	"(pre-distsync)"	/* files that were there before distsync */
#define COMMIT_ID_EMPTY	"(none)"		/* the target was empty; rolling back to it
						   removes current.* again */

/* 0 if ID is a release id (store_release_id_check) or one of the COMMIT_ID_*. */
int	commit_state_id_check(const char *id);

struct commit_opts {
	const char	*release_id;	/* id of TO (store_release_id_check) */
	const struct manifest *to;	/* the release to apply */
	const char	*owner;		/* chown applied files and dirs to this user; NULL: leave */
	const char	*group;		/* ... and group; NULL: leave */
	unsigned	 keep_backups;	/* backup sets kept; 0: CONFIG_KEEP_BACKUPS_DEFAULT */
	int		 fail_on_drift;	/* 1: DS_ERR_DRIFT before touching anything */
	int		 dry_run;	/* 1: plan and check only; the report says what would change */
	/*
	 * The services and run_once hooks whose restarts and runs the apply owes
	 * (owed.h), recorded in its journal; NULL: none but those still pending.
	 */
	const struct config *config;
	const char	*rollback_to;	/* commit_rollback: this state; NULL: the previous one */
	/*
	 * commit_rollback without rollback_to: refuse (DS_ERR_PRECONDITION) a
	 * rollback that would empty the target, which held nothing before the
	 * first apply; naming "(none)" in rollback_to does it.
	 */
	int		 keep_nonempty;
};

struct commit_report {
	char		*from_release;	/* NULL if never applied (current.id absent) */
	char		*to_release;
	size_t		 added, updated, deleted, mode_changed, unchanged;
	uint64_t	 bytes;		/* bytes of new content placed */
	uint64_t	 bytes_copied;	/* of which copied (not linked from staging) */
	/* paths whose content, mode or type changed, plus deletions: what restarts key off */
	char		**changed_paths;	/* NULL-terminated, path order */
	/*
	 * Overwritten drift (see target_verify). A first apply has no drift: it
	 * lists the found paths it replaces or removes (fail_on_drift refuses
	 * them too); the found paths it keeps as they are are not among them.
	 */
	char		**drifted_paths;
	int		 noop;		/* 1: tree already was the release; nothing written */
};

/*
 * Hashes of the objects TO needs that are neither staged nor present in the
 * current tree (with content vouched for by the stat cache): what the sender
 * must still send. *missing is an array of *count hashes (caller frees).
 */
int	commit_missing(struct target *t, const struct manifest *to,
	    uint8_t (**missing)[HASH_LEN], size_t *count);

/*
 * Applies o->to atomically (see above) and fills r (commit_report_release
 * frees it, also on error). What the apply owes after its files (run_once
 * runs, restarts under o->config) is in its journal and, once the tree is
 * in place, in STATE/pending (owed.h) for finish.h to run. Before the
 * commit point every directory the apply changes is checked: one the user
 * distsync runs as cannot write is DS_ERR_PRECONDITION, logged naming it,
 * its owner and mode (perm.h). A first apply backs up the files it replaces or
 * deletes as COMMIT_ID_FOUND (COMMIT_ID_EMPTY for an empty target) and makes
 * that the previous state; r->from_release stays NULL. Errors before the
 * commit point leave the tree unchanged: DS_ERR_NOTFOUND (an object is
 * missing, logged), DS_ERR_NOSPACE (logged with the figures), DS_ERR_DRIFT
 * (with fail_on_drift; r lists the drift), DS_ERR_CORRUPT. Staging is
 * emptied after success. Writes no history line: the caller does, after
 * restarts, with history_append (history.h).
 */
int	commit_apply(struct target *t, const struct commit_opts *o, struct commit_report *r);

/*
 * Restores, from its backup set and by the same atomic apply, the state the
 * site was in before its current one (the first of the rollback list,
 * lineage.h), or o->rollback_to, any state whose backup set is kept: a
 * release, or after a first apply the tree as found (COMMIT_ID_FOUND,
 * COMMIT_ID_EMPTY). Rolling back again goes further back, never forward.
 * When the apply that replaced that state overwrote drift, the tree comes
 * back exactly as it was, drift included, and target_verify reports that
 * drift again. A rollback owes the restarts of what it changed (and those
 * still pending), no run_once. o->to and o->release_id are ignored (may be
 * NULL), the other options apply. DS_ERR_NOTFOUND (logged) when there is no
 * previous state or its backup set is gone or incomplete; the tree is then
 * unchanged.
 */
int	commit_rollback(struct target *t, const struct commit_opts *o, struct commit_report *r);

/* Frees what r holds and zeroes it. */
void	commit_report_release(struct commit_report *r);

#endif
