/* Opening a site and recovering it are one act (site.h). */
#include "autoconf.h"

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
