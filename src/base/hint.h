/*
 * Commands a message suggests, written so they work as printed: every
 * argument quoted for a POSIX shell, and the configuration the command
 * needs named by an absolute -c FILE, so it runs from any directory.
 */
#ifndef DS_HINT_H
#define DS_HINT_H

/*
 * The configuration this run uses, for the commands it suggests (main sets
 * it from -c, none for the default distsync.yml; pull always, to its
 * site.yml, which is not the other commands' default). Copied and made
 * absolute against the current directory; NULL forgets it.
 */
void	 hint_set_config(const char *file);
/* What hint_set_config kept (absolute), or NULL. */
const char *hint_config(void);

/* ARG quoted for a POSIX shell ('...' with ' as '\''), unchanged when it need not be. */
char	*hint_quote(const char *arg);
/* ARGV (NULL-terminated) quoted with hint_quote, joined by spaces. Caller frees. */
char	*hint_quote_argv(char *const *argv);

/*
 * "distsync -c /ABS/FILE ARGS..." (no -c when CONFIG_FILE is NULL; a
 * relative one is made absolute), ARGS NULL-terminated and quoted. Caller
 * frees; nothing is logged. hint_command uses hint_config().
 */
char	*hint_command_config(const char *config_file, const char *const *args);
char	*hint_command(const char *const *args);

/* hint_command of "restore --backup SET HOST PATH" (into ./NAME.restored). Caller frees. */
char	*hint_restore(const char *set, const char *host, const char *path);

#endif
