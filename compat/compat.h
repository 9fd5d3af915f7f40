/* Declarations of functions compat/ supplies where the C library lacks them. */
#ifndef DS_COMPAT_H
#define DS_COMPAT_H
#include <stddef.h>
#ifndef HAVE_STRLCPY
size_t	strlcpy(char *, const char *, size_t);
#endif
#ifndef HAVE_STRLCAT
size_t	strlcat(char *, const char *, size_t);
#endif
#ifndef HAVE_REALLOCARRAY
void	*reallocarray(void *, size_t, size_t);
#endif
#endif
