/*
 * Where a rollback goes: STATE/previous.list, the states the site was in
 * before its current one, newest first, one state id a line. An apply
 * pushes the state it replaces; a rollback pops back to the state it
 * restores, so each rollback undoes one more apply and never goes forward.
 * A rollback to a state that is not on the list (rollback --release of a
 * backup kept, e.g. one rolled back from) is an apply of that state: it
 * pushes the state it replaces. Re-applying the current release (a drift
 * repair) leaves the list alone.
 *
 * The list an apply leaves is decided before its commit point and recorded
 * in its journal (an L record, journal.h); the replay writes it
 * (lineage_write). A site without the file (from before the list existed)
 * rolls back to previous.id, which keeps naming the state the last apply or
 * rollback replaced.
 */
#ifndef DS_LINEAGE_H
#define DS_LINEAGE_H

#include <stddef.h>
#include <stdint.h>

struct journal;
struct target;

#define LINEAGE_FILE	"previous.list"	/* in the state directory */

/*
 * The states a rollback returns to, newest first (*ids NULL-terminated,
 * free with xfree_strv): previous.list, else previous.id alone, else none.
 * Ids that are not state ids are dropped. Returns 0 or DS_ERR_SYSTEM
 * (logged).
 */
int	lineage_read(struct target *t, char ***ids);

/*
 * Appends the L record of an apply from state FROM to state TO to J:
 * ROLLBACK says whether it is a rollback (see above). Returns 0 or
 * lineage_read's error.
 */
int	lineage_plan(struct target *t, const char *from, const char *to, int rollback,
	    struct journal *j);

/*
 * During a replay: writes previous.list from J's L record (atomically), or
 * removes it when J has none. Durable after target_sync_state. Returns 0,
 * DS_ERR_NOSPACE or DS_ERR_SYSTEM (logged).
 */
int	lineage_write(struct target *t, const struct journal *j);

/*
 * The ids J's L record lists followed by none (*ids NULL-terminated, free
 * with xfree_strv); an empty list when J has no L record.
 */
char	**lineage_of(const struct journal *j);

/* A backup set a site keeps, for "distsync releases HOST". */
struct lineage_kept {
	char		*id;		/* the state it restores */
	int64_t		 time;		/* when it was last made or refreshed (Unix seconds) */
	unsigned	 step;		/* rollbacks to reach it (1: the next), 0: only --release */
};

/*
 * Every backup set that holds a manifest (a state a rollback can restore),
 * those on the rollback list first in list order, then the others newest
 * first. *out (free with lineage_kept_free) has *n entries. Returns 0 or
 * DS_ERR_SYSTEM (logged). Reads only.
 */
int	lineage_kept(struct target *t, struct lineage_kept **out, size_t *n);
void	lineage_kept_free(struct lineage_kept *kept, size_t n);

#endif
