/* Allocation that cannot fail: out-of-memory is fatal. */
#ifndef DS_XMALLOC_H
#define DS_XMALLOC_H
#include <stddef.h>

void	*xmalloc(size_t size);
void	*xcalloc(size_t nmemb, size_t size);
void	*xreallocarray(void *ptr, size_t nmemb, size_t size);
/* Grows *ptr (of *alloc elements of size) to hold at least need elements. */
void	*xgrow(void *ptr, size_t *alloc, size_t need, size_t size);
char	*xstrdup(const char *s);
char	*xstrndup(const char *s, size_t n);
/* Returns a newly allocated formatted string; caller frees. */
char	*xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Frees a NULL-terminated array of strings and the array itself. */
void	 xfree_strv(char **v);
/* Entries of a NULL-terminated list (NULL: 0). */
size_t	 xstrv_len(char *const *v);

#endif
