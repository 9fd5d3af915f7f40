/*
 * Fuzz target for the apply journal's decoder (site/journal.c): the bytes
 * a site reads back from its own state directory after a crash, which a
 * torn write or a full disk may have damaged. Nothing may crash or leak,
 * and the decoder keeps one encoding: a journal it accepts encodes again
 * to the same bytes (those before a NUL, which ends what it reads).
 *
 * Built with -DDS_LIBFUZZER it is a libFuzzer target (tools/fuzz);
 * otherwise main() replays tests/fuzz/corpus/journal and mutates it (TAP).
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "site/journal.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz-main.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct journal j;
	const void *nul = memchr(data, '\0', size);
	size_t len = nul != NULL ? (size_t)((const uint8_t *)nul - data) : size;

	if (journal_decode((const char *)data, size, "fuzz", &j) == 0) {
		size_t n;
		char *again = journal_encode(&j, &n);

		if (n != len || memcmp(again, data, n) != 0)
			FUZZ_BROKEN();
		free(again);
	}
	journal_release(&j);
	return 0;
}

#ifndef DS_LIBFUZZER
#define HEX64	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void
own_seeds(struct fuzz_seeds *s)
{
	static const char *const journals[] = {
		"distsync-journal 1\nfrom -\nto 7\nkeep 3\nend\n",
		"distsync-journal 1\nfrom (pre-distsync)\nto 2024.1+b_2\nkeep 2\n"
		    "B " HEX64 " core.war\n"
		    "U old/deep/f\n"
		    "R old\n"
		    "D 0755 -1 -1 new\n"
		    "P 0 0644 -1 -1 core.war\n"
		    "P 1 0600 1000 1001 new/caf\xc3\xa9.omod\n"
		    "M 4755 0 0 run.sh\n"
		    "end\n",
		"distsync-journal 1\nfrom 1\nto 2\nkeep 5\n"
		    "P 0 0644 -1 -1 trusted_sql/001%20a.sql\n"
		    "F 0 " HEX64 " trusted_sql/001%20a.sql\n"
		    "O 1 " HEX64 "\n"
		    "S db\n"
		    "L 1 (pre-distsync)\n"
		    "end\n",
	};

	for (size_t i = 0; i < sizeof(journals) / sizeof(journals[0]); i++)
		fuzz_seed_add(s, journals[i], strlen(journals[i]));
}

int
main(void)
{
	return fuzz_main("journal", 3000, own_seeds);
}
#endif
