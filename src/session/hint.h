/*
 * Commands a message suggests, written so they work as printed: every
 * argument quoted for a POSIX shell, and the configuration named by an
 * absolute -c FILE, so the command runs from any directory.
 */
#ifndef DS_HINT_H
#define DS_HINT_H

/*
 * "distsync -c /ABS/FILE ARGS..." (without -c when CONFIG_FILE is NULL),
 * ARGS NULL-terminated, each quoted where the shell would change it. A
 * relative CONFIG_FILE is made absolute from the current directory. The
 * caller frees the result; nothing is logged.
 */
char	*hint_command(const char *config_file, const char *const *args);

/*
 * The command that gets PATH of HOST back as backup set SET keeps it (into
 * ./NAME.restored): hint_command of "restore --backup SET HOST PATH".
 * Caller frees.
 */
char	*hint_restore(const char *config_file, const char *set, const char *host,
	    const char *path);

#endif
