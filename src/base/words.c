/* Splitting a command line into plain shell words (a forced command's request). */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "base/words.h"
#include "base/xmalloc.h"

char **
words_split(const char *s, int *count)
{
	char **words = NULL, *w = NULL;
	size_t nwords = 0, cap = 0, wlen = 0, wcap = 0;
	int in_word = 0;

	for (const char *p = s;; p++) {
		char c = *p;

		if (c == '\0' || c == ' ' || c == '\t') {
			if (in_word) {
				w = xgrow(w, &wcap, wlen + 1, 1);
				w[wlen] = '\0';
				words = xgrow(words, &cap, nwords + 2, sizeof(*words));
				words[nwords++] = w;
				w = NULL;
				wlen = wcap = 0;
				in_word = 0;
			}
			if (c == '\0')
				break;
			continue;
		}
		if (strchr("$`;|&<>()\n", c) != NULL)
			goto bad;
		in_word = 1;
		if (c == '\'') {
			const char *q = strchr(p + 1, '\'');

			if (q == NULL)
				goto bad;
			w = xgrow(w, &wcap, wlen + (size_t)(q - p), 1);
			memcpy(w + wlen, p + 1, (size_t)(q - p - 1));
			wlen += (size_t)(q - p - 1);
			p = q;
			continue;
		}
		if (c == '"') {
			for (p++; *p != '"'; p++) {
				if (*p == '\0' || *p == '$' || *p == '`')
					goto bad;
				if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
					p++;
				w = xgrow(w, &wcap, wlen + 1, 1);
				w[wlen++] = *p;
			}
			continue;
		}
		if (c == '\\') {
			if (p[1] == '\0')
				goto bad;
			c = *++p;
		}
		w = xgrow(w, &wcap, wlen + 1, 1);
		w[wlen++] = c;
	}
	if (nwords == 0)
		goto bad;
	words[nwords] = NULL;
	*count = (int)nwords;
	return words;
bad:
	free(w);
	for (size_t i = 0; i < nwords; i++)
		free(words[i]);
	free(words);
	return NULL;
}

void
words_free(char **words)
{
	if (words == NULL)
		return;
	for (size_t i = 0; words[i] != NULL; i++)
		free(words[i]);
	free(words);
}
