/* The rollback list, STATE/previous.list (lineage.h). */
#include "autoconf.h"

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "site/commit.h"
#include "site/journal.h"
#include "site/lineage.h"
#include "site/target.h"

/* The list holds at most JOURNAL_LINEAGE_MAX short ids; anything longer is not one. */
#define LINEAGE_READ_MAX	(64u * 1024)

static void
strv_push(char ***v, size_t *n, const char *s)
{
	*v = xreallocarray(*v, *n + 2, sizeof(char *));
	(*v)[(*n)++] = xstrdup(s);
	(*v)[*n] = NULL;
}

/* Splits DATA (lines or space-separated ids) into a list of state ids. */
static char **
split_ids(const char *data, const char *seps)
{
	char *copy = xstrdup(data), *p, *next;
	char **v = xcalloc(1, sizeof(char *));
	size_t n = 0;

	for (p = copy; p != NULL && *p != '\0'; p = next) {
		size_t len = strcspn(p, seps);

		next = p[len] != '\0' ? p + len + 1 : NULL;
		p[len] = '\0';
		if (*p != '\0' && commit_state_id_check(p) == 0 && n < JOURNAL_LINEAGE_MAX)
			strv_push(&v, &n, p);
	}
	free(copy);
	return v;
}

int
lineage_read(struct target *t, char ***ids)
{
	char *data = NULL, *prev = NULL;
	int r;

	*ids = NULL;
	if (target_state_fd(t) == -1) {
		*ids = xcalloc(1, sizeof(char *));
		return 0;
	}
	if (fileio_read_at(target_state_fd(t), LINEAGE_FILE, LINEAGE_READ_MAX, &data, NULL) == 0) {
		*ids = split_ids(data, "\n");
		free(data);
		return 0;
	}
	if (errno != ENOENT) {
		log_errno("%s/%s", target_state_dir(t), LINEAGE_FILE);
		return DS_ERR_SYSTEM;
	}
	/* A site from before the list: previous.id is the one state to go back to. */
	if ((r = target_read_id(t, "previous.id", &prev)) != 0)
		return r;
	*ids = split_ids(prev != NULL ? prev : "", "\n");
	free(prev);
	return 0;
}

int
lineage_plan(struct target *t, const char *from, const char *to, int rollback, struct journal *j)
{
	char **prev = NULL, **next = NULL, *joined;
	size_t n = 0, len = 1, off = 0, k;
	int r;

	if ((r = lineage_read(t, &prev)) != 0)
		return r;
	next = xcalloc(1, sizeof(char *));
	for (k = 0; rollback && prev[k] != NULL; k++)
		if (strcmp(prev[k], to) == 0)
			break;
	if (rollback && prev[k] != NULL) {
		/* Back to a state on the list: what came after it is undone. */
		for (k++; prev[k] != NULL; k++)
			strv_push(&next, &n, prev[k]);
	} else {
		if (from != NULL && strcmp(from, to) != 0)
			strv_push(&next, &n, from);
		for (k = 0; prev[k] != NULL && n < JOURNAL_LINEAGE_MAX; k++)
			strv_push(&next, &n, prev[k]);
	}
	for (k = 0; k < n; k++)
		len += strlen(next[k]) + 1;
	joined = xcalloc(1, len);
	for (k = 0; k < n; k++) {
		size_t l = strlen(next[k]);

		if (k > 0)
			joined[off++] = ' ';
		memcpy(joined + off, next[k], l);
		off += l;
	}
	journal_add(j, JOURNAL_LINEAGE, joined);
	free(joined);
	xfree_strv(prev);
	xfree_strv(next);
	return 0;
}

static const struct journal_record *
lineage_record(const struct journal *j)
{
	for (size_t i = 0; i < j->count; i++)
		if (j->records[i].kind == JOURNAL_LINEAGE)
			return &j->records[i];
	return NULL;
}

char **
lineage_of(const struct journal *j)
{
	const struct journal_record *rec = lineage_record(j);

	return split_ids(rec != NULL ? rec->path : "", " ");
}

int
lineage_write(struct target *t, const struct journal *j)
{
	const struct journal_record *rec = lineage_record(j);
	char *data;
	int r;

	if (rec == NULL) {
		/* A journal from before the list: previous.id decides again. */
		if (unlinkat(target_state_fd(t), LINEAGE_FILE, 0) == -1 && errno != ENOENT) {
			log_errno("%s/%s", target_state_dir(t), LINEAGE_FILE);
			return DS_ERR_SYSTEM;
		}
		return 0;
	}
	data = xasprintf("%s%s", rec->path, rec->path[0] != '\0' ? "\n" : "");
	for (char *p = data; *p != '\0'; p++)
		if (*p == ' ')
			*p = '\n';
	r = target_write_state(t, LINEAGE_FILE, data, strlen(data));
	free(data);
	return r;
}

static int
kept_cmp(const void *a, const void *b)
{
	const struct lineage_kept *x = a, *y = b;

	if ((x->step != 0) != (y->step != 0))
		return x->step != 0 ? -1 : 1;
	if (x->step != y->step)
		return x->step < y->step ? -1 : 1;
	if (x->time != y->time)
		return x->time > y->time ? -1 : 1;
	return strcmp(x->id, y->id);
}

int
lineage_kept(struct target *t, struct lineage_kept **out, size_t *n)
{
	struct lineage_kept *kept = NULL;
	char **list = NULL;
	size_t count = 0, alloc = 0;
	struct dirent *de;
	struct stat st;
	DIR *dir = NULL;
	int fd, r;

	*out = NULL;
	*n = 0;
	if (target_state_fd(t) == -1)
		return 0;
	if ((r = lineage_read(t, &list)) != 0)
		return r;
	fd = openat(target_state_fd(t), "backup", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1 || (dir = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		xfree_strv(list);
		if (errno == ENOENT)
			return 0;
		log_errno("%s/backup", target_state_dir(t));
		return DS_ERR_SYSTEM;
	}
	while ((de = readdir(dir)) != NULL) {
		char *manifest;

		if (de->d_name[0] == '.' || commit_state_id_check(de->d_name) != 0)
			continue;
		manifest = xasprintf("%s/manifest", de->d_name);
		if (fstatat(dirfd(dir), manifest, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
			free(manifest);
			continue;
		}
		free(manifest);
		kept = xgrow(kept, &alloc, count + 1, sizeof(*kept));
		kept[count].id = xstrdup(de->d_name);
		kept[count].time = (int64_t)st.st_mtime;
		kept[count].step = 0;
		for (size_t k = 0; list[k] != NULL; k++)
			if (strcmp(list[k], de->d_name) == 0) {
				kept[count].step = (unsigned)k + 1;
				break;
			}
		count++;
	}
	closedir(dir);
	xfree_strv(list);
	if (count > 1)
		qsort(kept, count, sizeof(*kept), kept_cmp);
	*out = kept;
	*n = count;
	return 0;
}

void
lineage_kept_free(struct lineage_kept *kept, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(kept[i].id);
	free(kept);
}
