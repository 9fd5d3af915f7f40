/* Splitting a command line into plain shell words, refusing anything a shell would run. */
#ifndef DS_WORDS_H
#define DS_WORDS_H

/*
 * Splits S (untrusted: SSH_ORIGINAL_COMMAND) as a POSIX shell would for
 * plain words: blanks separate, '...' is literal, "..." literal but for \"
 * and \\, a backslash quotes the next character. Anything a shell would
 * run or expand unquoted ($ ` ; | & < > ( ) newline) is refused: a pull
 * never sends it. Returns the words (malloc'd, NULL-terminated, *count of
 * them; free with words_free), or NULL for an empty or refused line. Does
 * not log.
 */
char	**words_split(const char *s, int *count);

/* Frees what words_split returned (NULL is fine). */
void	words_free(char **words);

#endif
