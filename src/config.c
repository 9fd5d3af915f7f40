/* Placeholder until the libyaml parser lands. */
#include "autoconf.h"

#include <stdlib.h>

#include "config.h"
#include "err.h"
#include "log.h"

int
config_load(const char *file, struct config **out)
{
	*out = NULL;
	log_error("%s: configuration loading is not built yet", file);
	return DS_ERR_UNSUPPORTED;
}

void
config_free(struct config *config)
{
	free(config);
}
