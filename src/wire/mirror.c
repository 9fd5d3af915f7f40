/* Mirrors of a published tree, with failover (mirror.h). */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fileio.h"
#include "base/http.h"
#include "base/log.h"
#include "base/path.h"
#include "base/xmalloc.h"
#include "wire/mirror.h"

struct mirror {
	char		*url;		/* as configured, for messages */
	char		*base;		/* http(s) URL without a trailing '/', or a directory */
	int		 local;		/* 1: a directory read directly */
};

struct mirror_set {
	struct mirror	 mirrors[MIRROR_MAX];
	size_t		 count;
	size_t		 cur;		/* in use */
	size_t		 tried;		/* mirrors moved past in this round */
	struct http_opts http;
	uint64_t	 rate;
	int		 quiet;		/* an absent file is no news (mirror_get_opt) */
};

int
mirror_set_new(char *const *urls, size_t n, const struct mirror_opts *o, struct mirror_set **out)
{
	struct mirror_set *m = xcalloc(1, sizeof(*m));

	*out = NULL;
	if (n == 0 || n > MIRROR_MAX) {
		log_error("a site takes 1 to %d mirrors", MIRROR_MAX);
		free(m);
		return DS_ERR_CONFIG;
	}
	for (size_t i = 0; i < n; i++) {
		struct mirror *mi = &m->mirrors[m->count++];
		const char *u = urls[i];
		size_t len;

		mi->url = xstrdup(u);
		if (strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0) {
			mi->base = xstrdup(u);
		} else if (strncmp(u, "file://", 7) == 0 && u[7] == '/') {
			mi->base = xstrdup(u + 7);
			mi->local = 1;
		} else if (strstr(u, "://") == NULL && u[0] != '\0') {
			mi->base = path_absolute(NULL, u);
			mi->local = 1;
		} else {
			log_error("mirror '%s': use an http://, https:// or file:/// URL, or a "
			    "directory", u);
			mirror_set_free(m);
			return DS_ERR_CONFIG;
		}
		len = strlen(mi->base);
		while (len > 1 && mi->base[len - 1] == '/')
			mi->base[--len] = '\0';
	}
	if (o != NULL) {
		m->http.ca_file = o->ca_file;
		m->http.connect_timeout_ms = o->connect_timeout_ms;
		m->http.low_speed_time_s = o->low_speed_time_s;
		m->rate = o->rate;
	}
	*out = m;
	return 0;
}

void
mirror_set_free(struct mirror_set *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->count; i++) {
		free(m->mirrors[i].url);
		free(m->mirrors[i].base);
	}
	free(m);
}

const char *
mirror_current(const struct mirror_set *m)
{
	return m->mirrors[m->cur].url;
}

int
mirror_next(struct mirror_set *m)
{
	if (m->tried + 1 >= m->count)
		return DS_ERR_NOTFOUND;
	m->tried++;
	m->cur = (m->cur + 1) % m->count;
	log_info("using mirror %s", mirror_current(m));
	return 0;
}

void
mirror_rewind(struct mirror_set *m)
{
	m->cur = 0;
	m->tried = 0;
}

/* Reads a file of a directory mirror from byte OFFSET into FD (or memory). */
static int
local_copy(const struct mirror *mi, const char *rel, int fd, uint64_t offset, uint64_t max,
    int quiet, uint64_t *size, uint64_t *received)
{
	char *path = path_join(mi->base, rel);
	struct stat st;
	int in, r = 0;

	*received = 0;
	*size = offset;
	if ((in = open(path, O_RDONLY | O_CLOEXEC)) == -1 || fstat(in, &st) == -1) {
		r = errno == ENOENT ? DS_ERR_NOTFOUND : DS_ERR_CONNECT;
		if (!(r == DS_ERR_NOTFOUND && quiet))
			log_warn("mirror %s: %s: %s", mi->url, rel, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		log_warn("mirror %s: %s: not a file of at most %" PRIu64 " bytes", mi->url, rel, max);
		r = DS_ERR_INVALID;
		goto out;
	}
	if ((uint64_t)st.st_size < offset && ftruncate(fd, 0) == 0)
		*size = 0;	/* not the file the part was begun from */
	for (;;) {
		char buf[65536];
		ssize_t n = pread(in, buf, sizeof(buf), (off_t)*size), w = 0;

		if (n == 0)
			break;
		for (ssize_t done = 0; n > 0 && done < n; done += w)
			if ((w = pwrite(fd, buf + done, (size_t)(n - done), (off_t)(*size +
			    (uint64_t)done))) <= 0)
				break;
		if (n < 0 || w <= 0) {
			log_warn("mirror %s: %s: %s", mi->url, rel, strerror(errno));
			r = DS_ERR_CONNECT;
			goto out;
		}
		*size += (uint64_t)n;
		*received += (uint64_t)n;
	}
out:
	if (in != -1)
		close(in);
	free(path);
	return r;
}

/* One attempt at the mirror in use. */
static int
fetch_one(struct mirror_set *m, const char *rel, int fd, uint64_t offset, uint64_t max,
    void (*progress)(uint64_t, void *), void *arg, uint64_t *size, uint64_t *received)
{
	const struct mirror *mi = &m->mirrors[m->cur];
	struct http_fetch f;
	char *url, *detail = NULL;
	int r;

	if (mi->local)
		return local_copy(mi, rel, fd, offset, max, m->quiet, size, received);
	memset(&f, 0, sizeof(f));
	f.fd = fd;
	f.offset = offset;
	f.max = max;
	f.rate = m->rate;
	f.progress = progress;
	f.arg = arg;
	url = xasprintf("%s/%s", mi->base, rel);
	r = http_fetch(url, &m->http, &f, &detail);
	*size = f.size;
	*received = f.wire;
	if (r != 0 && !(r == DS_ERR_NOTFOUND && m->quiet))
		log_warn("mirror %s: %s", mi->url, detail != NULL ? detail : rel);
	else if (f.range_ignored)
		log_info("mirror %s ignores ranges: %s was read again from its first byte",
		    mi->url, rel);
	free(detail);
	free(url);
	return r;
}

int
mirror_fetch(struct mirror_set *m, const char *rel, int fd, uint64_t offset, uint64_t max,
    void (*progress)(uint64_t, void *), void *arg, uint64_t *size, uint64_t *received)
{
	uint64_t got = 0, total = 0;
	int r;

	*size = offset;
	*received = 0;
	for (;;) {
		r = fetch_one(m, rel, fd, *size, max, progress, arg, size, &got);
		total += got;
		*received = total;
		if (r == 0 || r == DS_ERR_SYSTEM)
			return r;
		/* A cut with bytes moved is resumed by the caller's retry, on this mirror. */
		if ((r == DS_ERR_CONNECT || r == DS_ERR_TIMEOUT) && got > 0)
			return r;
		if (mirror_next(m) != 0) {
			if (!(r == DS_ERR_NOTFOUND && m->quiet))
				log_error("%s: no mirror could serve it (last: %s)", rel, ds_strerror(r));
			return r;
		}
	}
}

int
mirror_get(struct mirror_set *m, const char *rel, size_t max, char **data, size_t *len)
{
	return mirror_get_opt(m, rel, max, data, len, 0);
}

int
mirror_get_opt(struct mirror_set *m, const char *rel, size_t max, char **data, size_t *len,
    int optional)
{
	size_t cur = m->cur, tried = m->tried;
	const char *tmpdir = getenv("TMPDIR");
	uint64_t size, received;
	int fd, r;

	*data = NULL;
	*len = 0;
	/* Small documents pass through an unnamed temp file: one code path for both. */
	if ((fd = open(tmpdir != NULL && *tmpdir == '/' ? tmpdir : "/tmp",
	    O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) == -1) {
		log_errno("a temporary file for %s", rel);
		return DS_ERR_SYSTEM;
	}
	m->quiet = optional;
	r = mirror_fetch(m, rel, fd, 0, max, NULL, NULL, &size, &received);
	m->quiet = 0;
	if (r == DS_ERR_NOTFOUND && optional) {
		m->cur = cur;
		m->tried = tried;
	}
	if (r == 0 && (lseek(fd, 0, SEEK_SET) == -1 || fileio_read_fd(fd, max, data, len) != 0)) {
		log_errno("%s", rel);
		r = DS_ERR_SYSTEM;
	}
	close(fd);
	return r;
}
