/*
 * A list of mirrors of one published tree (repo/publish.h): http:// and
 * https:// URLs through base/http.c, file:// URLs and plain directories (a
 * mounted disk) read directly. A request goes to the mirror in use; one that
 * fails (absent, an error status, a refused or lost connection, a body over
 * its bound) moves the set on to the next mirror, in the order configured,
 * until each was tried once. Nothing here trusts what a mirror sends: the
 * caller checks every byte against signed digests, and calls mirror_next when
 * a mirror served a wrong one.
 */
#ifndef DS_MIRROR_H
#define DS_MIRROR_H

#include <stddef.h>
#include <stdint.h>

#define MIRROR_MAX	16	/* mirrors in one list */

struct mirror_opts {
	const char	*ca_file;		/* https: PEM bundle; NULL: the system's CAs */
	unsigned	 connect_timeout_ms;	/* 0: the http default */
	unsigned	 low_speed_time_s;	/* a transfer this long under 1 byte/s has stalled */
	uint64_t	 rate;			/* bytes per second at most; 0: no cap */
};

struct mirror_set;

/*
 * A set of N mirrors (URLS: http://, https://, file:///ABS or a directory
 * path). DS_ERR_CONFIG, logged naming the URL, for one of another kind.
 */
int	mirror_set_new(char *const *urls, size_t n, const struct mirror_opts *o,
	    struct mirror_set **out);
void	mirror_set_free(struct mirror_set *m);

/* The base URL of the mirror in use. */
const char *mirror_current(const struct mirror_set *m);

/*
 * Moves on to the next mirror after one served something wrong. 0, or
 * DS_ERR_NOTFOUND when every mirror of this round was tried.
 */
int	mirror_next(struct mirror_set *m);

/* Starts a new round at the first mirror (after a backoff, say). */
void	mirror_rewind(struct mirror_set *m);

/*
 * Reads REL (a path in the published tree) from the mirror in use, or the
 * next ones when it fails: *data (NUL-terminated, caller frees), *len, at
 * most MAX bytes. Each failure is logged as a warning naming the mirror;
 * when all fail, the last error is returned (DS_ERR_NOTFOUND when every
 * mirror lacks the file) and logged.
 */
int	mirror_get(struct mirror_set *m, const char *rel, size_t max, char **data, size_t *len);
/*
 * mirror_get of a file that may not be published (OPTIONAL 1): that every
 * mirror lacks it returns DS_ERR_NOTFOUND quietly, and leaves the mirror in
 * use as it was.
 */
int	mirror_get_opt(struct mirror_set *m, const char *rel, size_t max, char **data,
	    size_t *len, int optional);

/*
 * Downloads REL into FD, which holds its first OFFSET bytes already (a
 * resumed download; a mirror that ignores ranges is read from byte 0), at
 * most MAX bytes in all, failing over like mirror_get. *size is what FD holds
 * after (whole or cut), *received the bytes that crossed the link (HTTP
 * headers included). PROGRESS
 * (may be NULL) is called with the bytes received so far in this call.
 */
int	mirror_fetch(struct mirror_set *m, const char *rel, int fd, uint64_t offset,
	    uint64_t max, void (*progress)(uint64_t received, void *arg), void *arg,
	    uint64_t *size, uint64_t *received);

#endif
