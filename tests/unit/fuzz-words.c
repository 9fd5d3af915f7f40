/*
 * Fuzz target for the forced command's word splitter (base/words.c): a
 * site's SSH_ORIGINAL_COMMAND, untrusted. Nothing may crash or leak; a
 * line that splits has at least one word, and no word holds a character a
 * shell would act on unless the line quoted it.
 *
 * Built with -DDS_LIBFUZZER it is a libFuzzer target (tools/fuzz);
 * otherwise main() replays tests/fuzz/corpus/words and mutates it (TAP).
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/words.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz-main.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1), **words;
	int count = -1;

	memcpy(line, data, size);
	line[size] = '\0';
	words = words_split(line, &count);
	if (words != NULL) {
		int n = 0;

		while (words[n] != NULL)
			n++;
		if (n != count || n < 1)
			FUZZ_BROKEN();
		/* A refused character can only be in the line quoted. */
		if (strpbrk(line, "'\"\\") == NULL)
			for (int i = 0; i < n; i++)
				if (strpbrk(words[i], "$`;|&<>()\n") != NULL)
					FUZZ_BROKEN();
	}
	words_free(words);
	free(line);
	return 0;
}

#ifndef DS_LIBFUZZER
static void
own_seeds(struct fuzz_seeds *s)
{
	static const char *lines[] = {
		"distsync -c /srv/repo serve --send --host kirehe",
		"distsync -c '/srv/my repo' serve --send --host \"site \\\"one\\\"\" --dry-run",
		"distsync serve --send --host a --bwlimit 2m --lock-timeout 30 --idle-timeout 60",
		"distsync serve --send --host a\\ b --release 2026.11.2 --no-restart",
		"serve --send --host x; rm -rf /",
		"serve --send --host $(id)",
		"'unterminated",
	};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		fuzz_seed_add(s, lines[i], strlen(lines[i]));
}

int
main(void)
{
	return fuzz_main("words", 2000, own_seeds);
}
#endif
