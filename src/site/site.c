/* Opening a site and recovering it are one act (site.h). */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/xmalloc.h"
#include "site/journal.h"
#include "site/owed.h"
#include "site/recover.h"
#include "site/site.h"
#include "site/target.h"

int
site_open(const char *target_dir, const char *state_dir, unsigned lock_timeout,
    struct target **out)
{
	struct target *t;
	int r;

	*out = NULL;
	if ((r = target_open(target_dir, state_dir, lock_timeout, &t)) != 0)
		return r;
	if ((r = recover_run(t)) != 0) {
		target_close(t);
		return r;
	}
	*out = t;
	return 0;
}

int
site_open_readonly(const char *target_dir, const char *state_dir, unsigned lock_timeout,
    struct target **out, char **pending)
{
	int r;

	*pending = NULL;
	if ((r = target_open_readonly(target_dir, state_dir, lock_timeout, out)) != 0)
		return r;
	*pending = site_pending(*out);
	return 0;
}

char *
site_pending(struct target *t)
{
	struct journal j;
	char *owed, *s = NULL;

	if (recover_peek(t, &j) != 0)
		return xstrdup("the journal of an interrupted apply is damaged: the target "
		    "needs manual repair");
	if (j.to != NULL) {
		owed = owed_describe(&j);
		s = xasprintf("apply of %s (from %s) was interrupted; the next push or pull "
		    "completes it%s%s", j.to, j.from != NULL ? j.from : "none",
		    owed != NULL ? ", then: " : "", owed != NULL ? owed : "");
		free(owed);
		journal_release(&j);
		return s;
	}
	if (owed_read_pending(t, &j) != 0)
		return xstrdup("the file of pending restarts is damaged");
	if (j.to != NULL && (owed = owed_describe(&j)) != NULL) {
		s = xasprintf("owed by the apply of %s: %s (the next push or pull runs it)",
		    j.to, owed);
		free(owed);
	}
	journal_release(&j);
	return s;
}
