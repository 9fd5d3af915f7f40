/* Commands suggested in messages, quoted to work as printed (hint.h). */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "base/path.h"
#include "session/hint.h"
#include "wire/xport-ssh.h"

#define HINT_ARGS_MAX	16

char *
hint_command(const char *config_file, const char *const *args)
{
	char *argv[HINT_ARGS_MAX + 4], *file = NULL, *s;
	size_t n = 0;

	argv[n++] = (char *)"distsync";
	if (config_file != NULL) {
		file = path_absolute(NULL, config_file);
		argv[n++] = (char *)"-c";
		argv[n++] = file;
	}
	for (size_t i = 0; args[i] != NULL && i < HINT_ARGS_MAX; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	s = xport_ssh_quote_argv(argv);
	free(file);
	return s;
}

char *
hint_restore(const char *config_file, const char *set, const char *host, const char *path)
{
	const char *args[] = { "restore", "--backup", set, host, path, NULL };

	return hint_command(config_file, args);
}
