/* Commands suggested in messages, quoted to work as printed (hint.h). */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "base/hint.h"
#include "base/path.h"
#include "base/xmalloc.h"

#define HINT_ARGS_MAX	16

static char *hint_config_file;

void
hint_set_config(const char *file)
{
	free(hint_config_file);
	hint_config_file = file != NULL ? path_absolute(NULL, file) : NULL;
}

const char *
hint_config(void)
{
	return hint_config_file;
}

char *
hint_quote(const char *arg)
{
	static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789_-+=./:,@%";
	size_t len = 0, i, n;
	char *out;

	if (*arg != '\0' && strspn(arg, safe) == strlen(arg))
		return xstrdup(arg);
	for (i = 0; arg[i] != '\0'; i++)
		len += arg[i] == '\'' ? 4 : 1;
	out = xmalloc(len + 3);
	n = 0;
	out[n++] = '\'';
	for (i = 0; arg[i] != '\0'; i++) {
		if (arg[i] == '\'') {
			memcpy(out + n, "'\\''", 4);
			n += 4;
		} else
			out[n++] = arg[i];
	}
	out[n++] = '\'';
	out[n] = '\0';
	return out;
}

char *
hint_quote_argv(char *const *argv)
{
	char *out = xstrdup(""), *quoted, *joined;

	for (size_t i = 0; argv[i] != NULL; i++) {
		quoted = hint_quote(argv[i]);
		joined = xasprintf("%s%s%s", out, i > 0 ? " " : "", quoted);
		free(quoted);
		free(out);
		out = joined;
	}
	return out;
}

char *
hint_command_config(const char *config_file, const char *const *args)
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
	s = hint_quote_argv(argv);
	free(file);
	return s;
}

char *
hint_command(const char *const *args)
{
	return hint_command_config(hint_config_file, args);
}

char *
hint_restore(const char *set, const char *host, const char *path)
{
	const char *args[] = { "restore", "--backup", set, host, path, NULL };

	return hint_command(args);
}
