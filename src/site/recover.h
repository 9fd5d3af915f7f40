/*
 * Rolling a journal forward (journal.h): the second half of every apply and
 * the recovery of an interrupted one are the same code, so a crash anywhere
 * after the commit point ends in the same tree as no crash at all. Every
 * step a journal lists is idempotent and is skipped when already done.
 *
 * What an apply prepares before its commit point, for the replay:
 *	STATE/prep/N			content of the journal's "P N" records
 *	STATE/prep/manifest		the manifest of the state the tree becomes
 *	STATE/prep/tree.manifest	the tree's manifest when it is not the state's
 *					(a rollback that restores drift)
 */
#ifndef DS_RECOVER_H
#define DS_RECOVER_H

struct journal;
struct target;

#define RECOVER_TREE_MANIFEST	"prep/tree.manifest"	/* relative to the state directory */

/*
 * Performs STATE/journal to its end: the records in order, fsyncs of the
 * directories they touched, previous.id, current.manifest (from
 * prep/manifest) and current.id, or no current.* for "to (none)"; then
 * removes the journal, prep/ and staging, prunes backup sets and writes the
 * stat cache. Returns 0 when the tree is the journal's state, else
 * DS_ERR_CORRUPT (a damaged journal, or a journaled file gone with prep/)
 * or DS_ERR_SYSTEM, logged; the journal then stays for the next attempt.
 */
int	recover_replay(struct target *t);

/*
 * Called by site_open with the lock held: rolls forward a journal left by an
 * interrupted apply (recover_replay), or discards prep/ when the crash came
 * before the commit point. Returns 0 when the tree is exactly one release
 * again, else recover_replay's errors or DS_ERR_SYSTEM (logged).
 */
int	recover_run(struct target *t);

/*
 * Reads STATE/journal without performing it (a read-only open, site.h):
 * *j is the interrupted apply, or zeroed (j->to NULL) when there is none.
 * Returns 0, or DS_ERR_CORRUPT / DS_ERR_SYSTEM (logged).
 */
int	recover_peek(struct target *t, struct journal *j);

#endif
