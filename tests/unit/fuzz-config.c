/*
 * Fuzz target for the config parser (config_load_mem): a distsync.yml, and
 * the host config a push ships to its receiver, which parses it (untrusted
 * there). Nothing may crash, leak or read out of bounds; a config that
 * loads prints, and what it prints loads again.
 *
 * Built with -DDS_LIBFUZZER it is a libFuzzer target (tools/fuzz);
 * otherwise main() replays tests/fuzz/corpus/config and mutates it (TAP).
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "config/config.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz-main.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *c = NULL, *again = NULL;
	char *printed = NULL;
	size_t printed_len = 0;
	FILE *fp;

	log_set_level(LOG_LEVEL_SILENT);
	if (config_load_mem((const char *)data, size, "fuzz.yml", &c) != 0) {
		if (c != NULL)
			FUZZ_BROKEN();	/* an error leaves no config behind */
		return 0;
	}
	/* What config_print writes is a config too. */
	if ((fp = open_memstream(&printed, &printed_len)) == NULL)
		abort();
	config_print(c, fp);
	fclose(fp);
	if (config_load_mem(printed, printed_len, "printed.yml", &again) != 0)
		FUZZ_BROKEN();
	config_free(again);
	config_free(c);
	free(printed);
	return 0;
}

#ifndef DS_LIBFUZZER
int
main(void)
{
	return fuzz_main("config", 1000, NULL);
}
#endif
