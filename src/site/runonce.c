/* run_once hooks: what a tree owes, running it, and the done file (runonce.h). */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fileio.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/path.h"
#include "base/spawn.h"
#include "base/xmalloc.h"
#include "config/config.h"
#include "repo/manifest.h"
#include "site/command.h"
#include "site/journal.h"
#include "site/restart.h"
#include "site/runonce.h"

/* A done file holds one line per run; far more than any site runs. */
#define DONE_MAX		(64u * 1024 * 1024)
/* DISTSYNC_RUN_ONCE_FILES stays well under the kernel's limit for one string. */
#define FILES_ENV_MAX		(64u * 1024)

static int
matches(const struct config_run_once *hook, const struct manifest_entry *e)
{
	return e->type != MANIFEST_DIR && path_glob_match_any(hook->paths, e->path);
}

void
runonce_file_key(const struct config_run_once *hook, const char *path,
    const uint8_t hash[HASH_LEN], char hex[HASH_HEX_LEN + 1])
{
	struct hash_ctx *h = hash_ctx_new();
	uint8_t digest[HASH_LEN];
	char chex[HASH_HEX_LEN + 1];

	hash_ctx_update(h, "run_once file\n", 14);
	for (size_t i = 0; hook->paths != NULL && hook->paths[i] != NULL; i++)
		hash_ctx_update(h, hook->paths[i], strlen(hook->paths[i]) + 1);
	hash_ctx_update(h, "\n", 1);
	if (hook->service != NULL)
		hash_ctx_update(h, hook->service, strlen(hook->service));
	hash_ctx_update(h, "\n", 1);
	hash_to_hex(hash, chex);
	hash_ctx_update(h, path, strlen(path) + 1);
	hash_ctx_update(h, chex, HASH_HEX_LEN);
	hash_ctx_final(h, digest);
	hash_ctx_free(h);
	hash_to_hex(digest, hex);
}

int
runonce_set_hash(const struct config *config, size_t index, const struct manifest *manifest,
    char hex[HASH_HEX_LEN + 1])
{
	const struct config_run_once *ro = &config->run_once[index];
	struct hash_ctx *h = hash_ctx_new();
	uint8_t digest[HASH_LEN];
	char ehex[HASH_HEX_LEN + 1];
	int matched = 0;

	hex[0] = '\0';
	for (size_t i = 0; ro->command != NULL && ro->command[i] != NULL; i++)
		hash_ctx_update(h, ro->command[i], strlen(ro->command[i]) + 1);
	hash_ctx_update(h, "\n", 1);
	for (size_t i = 0; manifest != NULL && i < manifest->count; i++) {
		const struct manifest_entry *e = &manifest->entries[i];
		if (!matches(ro, e))
			continue;
		matched = 1;
		hash_to_hex(e->hash, ehex);
		hash_ctx_update(h, e->path, strlen(e->path) + 1);
		hash_ctx_update(h, ehex, HASH_HEX_LEN);
		hash_ctx_update(h, "\n", 1);
	}
	hash_ctx_final(h, digest);
	hash_ctx_free(h);
	if (matched)
		hash_to_hex(digest, hex);
	return matched;
}

/* ---- the done file ---- */

/* Reads the done file into a NUL-terminated buffer (empty when absent). */
static int
done_read(const char *file, char **out)
{
	if (fileio_read_at(AT_FDCWD, file, DONE_MAX, out, NULL) == -1) {
		if (errno == ENOENT) {
			*out = xstrdup("");
			return 0;
		}
		log_errno("%s", file);
		return DS_ERR_SYSTEM;
	}
	return 0;
}

static int
done_seen(const char *done, const char *hex)
{
	const char *p = done;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, hex, HASH_HEX_LEN) == 0 &&
		    (p[HASH_HEX_LEN] == '\n' || p[HASH_HEX_LEN] == ' ' || p[HASH_HEX_LEN] == '\0'))
			return 1;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return 0;
}

/*
 * Whether hook INDEX has records of KIND: 's' a set record "HEX N", 'f' a
 * file record "HEX N PATH" (or "HEX N f" when the path was not written).
 */
static int
done_has_index(const char *done, size_t index, char kind)
{
	char want[32];
	size_t wlen = (size_t)snprintf(want, sizeof(want), " %zu", index);
	const char *p = done;

	while (p != NULL && *p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);

		if (len >= HASH_HEX_LEN + wlen &&
		    memcmp(p + HASH_HEX_LEN, want, wlen) == 0) {
			char next = len > HASH_HEX_LEN + wlen ? p[HASH_HEX_LEN + wlen] : '\0';

			if ((kind == 's' && next == '\0') || (kind == 'f' && next == ' '))
				return 1;
		}
		p = nl != NULL ? nl + 1 : NULL;
	}
	return 0;
}

/* A path goes on its record line only when it cannot be mistaken for more fields. */
static int
plain_path(const char *path)
{
	for (const unsigned char *p = (const unsigned char *)path; *p != '\0'; p++)
		if (*p <= 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

/* Appends "HEX N[ PATH]\n" to the done file and makes it durable; keeps DONE current. */
static int
done_record(const char *dir, const char *file, char **done, const char *hex, size_t index,
    const char *path)
{
	char *line = path == NULL ? xasprintf("%s %zu\n", hex, index) :
	    xasprintf("%s %zu %s\n", hex, index, plain_path(path) ? path : "f");
	char *grown;
	int fd = -1, dfd = -1, created, r = DS_ERR_SYSTEM;

	created = access(file, F_OK) != 0;
	if ((fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)) == -1 ||
	    fileio_write_all(fd, line, strlen(line)) == -1 || fsync(fd) == -1) {
		log_errno("%s", file);
		goto out;
	}
	if (created && ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fsync(dfd) == -1)) {
		log_errno("%s: fsync", dir);
		goto out;
	}
	grown = xasprintf("%s%s", *done, line);
	free(*done);
	*done = grown;
	r = 0;
out:
	if (fd != -1 && close(fd) == -1 && r == 0) {
		log_errno("%s: close", file);
		r = DS_ERR_SYSTEM;
	}
	if (dfd != -1)
		close(dfd);
	free(line);
	return r;
}

/* The state directory (absolute, made if missing when MAKE) and its done file. */
static int
done_open(const struct config *config, const char *state_dir, int make, char **dir,
    char **file, char **done)
{
	*dir = command_config_path(config, state_dir);
	*file = path_join(*dir, RUNONCE_DONE_FILE);
	*done = NULL;
	if (make && path_mkdirs(*dir) == -1) {
		log_errno("%s", *dir);
		return DS_ERR_SYSTEM;
	}
	return done_read(*file, done);
}

/* ---- what a tree owes ---- */

/*
 * A hook that ran once per set and now runs per file: the files of FROM it
 * matched ran with their set. Recorded with MIGRATE, else only skipped.
 */
static int
migrate_set(const struct config *config, size_t index, const struct manifest *from,
    int migrate, const char *dir, const char *file, char **done, char ***covered,
    size_t *ncovered)
{
	const struct config_run_once *hook = &config->run_once[index];
	char key[HASH_HEX_LEN + 1];
	size_t n = 0;
	int r;

	*covered = NULL;
	*ncovered = 0;
	if (from == NULL || !done_has_index(*done, index, 's') ||
	    done_has_index(*done, index, 'f'))
		return 0;
	for (size_t i = 0; i < from->count; i++) {
		const struct manifest_entry *e = &from->entries[i];

		if (!matches(hook, e))
			continue;
		runonce_file_key(hook, e->path, e->hash, key);
		if (migrate) {
			if ((r = done_record(dir, file, done, key, index, e->path)) != 0)
				return r;
		} else {
			*covered = xreallocarray(*covered, n + 2, sizeof(char *));
			(*covered)[n++] = xstrdup(key);
			(*covered)[n] = NULL;
		}
		*ncovered += 1;
	}
	if (*ncovered > 0)
		log_info("run_once[%zu]: %zu file(s) of the release replaced ran with their set "
		    "(each: set); from now on each new or changed file runs once", index,
		    *ncovered);
	return 0;
}

static int
in_list(char **list, const char *key)
{
	for (size_t i = 0; list != NULL && list[i] != NULL; i++)
		if (strcmp(list[i], key) == 0)
			return 1;
	return 0;
}

int
runonce_owed(const struct config *config, const char *state_dir, const struct manifest *from,
    const struct manifest *to, int migrate, struct journal *j, struct restart_report *skipped)
{
	char *dir = NULL, *file = NULL, *done = NULL, key[HASH_HEX_LEN + 1], name[32];
	int r;

	if (config == NULL || config->nrun_once == 0 || to == NULL)
		return 0;
	/* Only an apply (MIGRATE) records; a dry run makes nothing. */
	if ((r = done_open(config, state_dir, migrate, &dir, &file, &done)) != 0)
		goto out;
	for (size_t i = 0; i < config->nrun_once; i++) {
		const struct config_run_once *hook = &config->run_once[i];
		struct journal_record *rec;
		char **covered = NULL;
		size_t ncovered;

		snprintf(name, sizeof(name), "run_once[%zu]", i);
		if (hook->each == CONFIG_EACH_SET) {
			if (!runonce_set_hash(config, i, to, key))
				continue;
			if (done_seen(done, key)) {
				if (skipped != NULL)
					restart_report_add(skipped, name, key, RESTART_SKIPPED, NULL,
					    0)->run_once = 1;
				continue;
			}
			rec = journal_add(j, JOURNAL_RUN_SET, "");
			rec->prep = i;
			hash_from_hex(key, HASH_HEX_LEN, rec->hash);
			continue;
		}
		if ((r = migrate_set(config, i, from, migrate, dir, file, &done, &covered,
		    &ncovered)) != 0)
			goto out;
		for (size_t k = 0; k < to->count; k++) {
			const struct manifest_entry *e = &to->entries[k];

			if (!matches(hook, e))
				continue;
			runonce_file_key(hook, e->path, e->hash, key);
			if (done_seen(done, key) || in_list(covered, key)) {
				if (skipped != NULL)
					restart_report_add(skipped, name, e->path, RESTART_SKIPPED,
					    NULL, 0)->run_once = 1;
				continue;
			}
			rec = journal_add(j, JOURNAL_RUN_FILE, e->path);
			rec->prep = i;
			memcpy(rec->hash, e->hash, HASH_LEN);
		}
		xfree_strv(covered);
	}
	r = 0;
out:
	free(done);
	free(file);
	free(dir);
	return r;
}

/* ---- running ---- */

/* Logs a run's output line by line, so -v and the site's log show what SQL said. */
static void
log_output(const char *host, const char *what, const char *output)
{
	const char *line = output;

	while (line != NULL && *line != '\0') {
		const char *nl = strchr(line, '\n');
		int len = nl != NULL ? (int)(nl - line) : (int)strlen(line);

		log_info("host %s: %s: | %.*s", host, what, len, line);
		line = nl != NULL ? nl + 1 : NULL;
	}
}

/* The matched paths of a set hook, for its environment and arguments. */
static char **
set_paths(const struct config_run_once *hook, const struct manifest *m)
{
	char **v = xcalloc(1, sizeof(char *));
	size_t n = 0;

	for (size_t i = 0; m != NULL && i < m->count; i++) {
		if (!matches(hook, &m->entries[i]))
			continue;
		v = xreallocarray(v, n + 2, sizeof(char *));
		v[n++] = xstrdup(m->entries[i].path);
		v[n] = NULL;
	}
	return v;
}

/* One run: what it runs on and how. */
struct run {
	const struct config_run_once *hook;
	size_t		 index;
	const char	*path;		/* each: file; NULL for a set */
	char		**files;	/* each: set: the matched paths; NULL for a file */
	char		 key[HASH_HEX_LEN + 1];
	char		 what[64 + PATH_MAX_LEN];	/* "run_once[N] PATH" for messages */
};

/* argv of a run: the command (in its compose service), and the file(s) as arguments. */
static int
run_argv(const struct command_ctx *ctx, const struct run *run, char ***argv_out,
    char ***owned_out)
{
	const struct config_run_once *hook = run->hook;
	char **args = NULL, **owned = NULL, **argv = NULL;
	size_t n = 0, nowned = 0, count = 8;
	int r = 0;

	for (size_t i = 0; hook->command[i] != NULL; i++)
		count++;
	for (size_t i = 0; run->files != NULL && run->files[i] != NULL; i++)
		count++;
	args = xcalloc(count + 1, sizeof(char *));
	owned = xcalloc(count + 1, sizeof(char *));
	if (hook->service != NULL) {
		args[n++] = "exec";
		args[n++] = "-T";
		if (run->path != NULL) {
			args[n++] = "-e";
			args[n++] = owned[nowned++] = xasprintf("DISTSYNC_RUN_ONCE_FILE=%s",
			    run->path);
		}
		args[n++] = hook->service;
	}
	for (size_t i = 0; hook->command[i] != NULL; i++)
		args[n++] = hook->command[i];
	if (hook->input == CONFIG_INPUT_ARGUMENT) {
		if (run->path != NULL)
			args[n++] = owned[nowned++] = path_join(ctx->target, run->path);
		for (size_t i = 0; run->files != NULL && run->files[i] != NULL; i++)
			args[n++] = owned[nowned++] = path_join(ctx->target, run->files[i]);
	}
	args[n] = NULL;
	if (hook->service != NULL) {
		r = command_compose_argv(ctx, run->what, args, &argv);
		free(args);
		args = NULL;
	} else {
		argv = args;
		args = NULL;
	}
	if (r != 0) {
		xfree_strv(owned);
		owned = NULL;
	}
	*argv_out = argv;
	*owned_out = owned;
	return r;
}

/* Runs one run; its outcome goes to REPORT. */
static int
run_one(const struct command_ctx *ctx, const char *dir, const struct run *run,
    struct restart_report *report)
{
	const struct config_run_once *hook = run->hook;
	char *env[12], name[32], *cmd = NULL, **argv = NULL, **owned = NULL, *list = NULL;
	struct spawn_opts opts = { .cwd = ctx->workdir, .env = env,
	    .timeout_ms = RUNONCE_TIMEOUT * 1000U };
	struct spawn_result res;
	size_t nenv = 0;
	int fd = -1, r;

	memset(&res, 0, sizeof(res));
	snprintf(name, sizeof(name), "run_once[%zu]", run->index);
	while (ctx->env[nenv] != NULL) {
		env[nenv] = xstrdup(ctx->env[nenv]);
		nenv++;
	}
	env[nenv++] = xasprintf("DISTSYNC_STATE=%s", dir);
	env[nenv++] = xasprintf("DISTSYNC_RUN_ONCE_HASH=%s", run->key);
	if (run->path != NULL)
		env[nenv++] = xasprintf("DISTSYNC_RUN_ONCE_FILE=%s", run->path);
	else {
		size_t len = 0;

		for (size_t i = 0; run->files[i] != NULL; i++)
			len += strlen(run->files[i]) + 1;
		if (len < FILES_ENV_MAX) {
			size_t off = 0;

			list = xcalloc(1, len + 1);
			for (size_t i = 0; run->files[i] != NULL; i++) {
				size_t l = strlen(run->files[i]);

				memcpy(list + off, run->files[i], l);
				list[off + l] = '\n';
				off += l + 1;
			}
			env[nenv++] = xasprintf("DISTSYNC_RUN_ONCE_FILES=%s", list);
		}
	}
	env[nenv] = NULL;
	if ((r = run_argv(ctx, run, &argv, &owned)) != 0) {
		restart_report_add(report, name, run->path != NULL ? run->path : run->key,
		    RESTART_FAILED, xasprintf("%s: compose: %s", run->what, ds_strerror(r)),
		    0)->run_once = 1;
		goto out;
	}
	cmd = spawn_argv_string(argv);
	if (hook->input == CONFIG_INPUT_STDIN && run->path != NULL) {
		/* The file as applied, under the target, never through a symlink out of it. */
		int root = open(ctx->target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		fd = root == -1 ? -1 : path_openat(root, run->path, O_RDONLY | O_NOFOLLOW, 0);
		if (root != -1)
			close(root);
		if (fd == -1) {
			log_errno("host %s: %s: %s/%s", ctx->host->name, run->what, ctx->target,
			    run->path);
			restart_report_add(report, name, run->path, RESTART_FAILED,
			    xasprintf("%s: cannot open %s/%s: %s", run->what, ctx->target,
			    run->path, strerror(errno)), 0)->run_once = 1;
			r = DS_ERR_SYSTEM;
			goto out;
		}
		opts.stdin_fd = fd;
	}
	r = spawn_run(argv, &opts, &res);
	log_output(ctx->host->name, run->what, res.output);
	if (r != 0) {
		log_error("host %s: %s (%s:%u): %s: %s (exit %d)", ctx->host->name, run->what,
		    ctx->config->file != NULL ? ctx->config->file : "config", hook->line, cmd,
		    ds_strerror(r), res.exit_code);
		restart_report_add(report, name, run->path != NULL ? run->path : run->key,
		    RESTART_FAILED, xasprintf("%s: %s: %s (exit %d)\n%s", run->what, cmd,
		    ds_strerror(r), res.exit_code, res.output), res.elapsed_ms)->run_once = 1;
		if (r != DS_ERR_TIMEOUT && r != DS_ERR_SYSTEM)
			r = DS_ERR_CHILD;
		goto out;
	}
	log_info("host %s: %s: ran %s (%lu.%lu s)", ctx->host->name, run->what, cmd,
	    res.elapsed_ms / 1000, res.elapsed_ms % 1000 / 100);
	restart_report_add(report, name, run->path != NULL ? run->path : run->key, RESTART_OK,
	    NULL, res.elapsed_ms)->run_once = 1;
out:
	if (fd != -1)
		close(fd);
	spawn_result_release(&res);
	free(cmd);
	free(argv);
	xfree_strv(owned);
	free(list);
	for (size_t k = 0; k < nenv; k++)
		free(env[k]);
	return r;
}

/*
 * Fills RUN for record REC: its hook, key and files. Returns 1 when it is
 * to run, 0 when it is skipped (logged; a done one added to REPORT).
 */
static int
run_prepare(const struct config *config, const struct command_ctx *ctx,
    const struct journal_record *rec, const char *done, const struct manifest *tree,
    struct run *run, struct restart_report *report)
{
	const struct config_run_once *hook;
	char name[32];

	memset(run, 0, sizeof(*run));
	snprintf(name, sizeof(name), "run_once[%zu]", rec->prep);
	if (rec->prep >= config->nrun_once) {
		log_warn("host %s: %s is no longer configured; not run", ctx->host->name, name);
		return 0;
	}
	hook = &config->run_once[rec->prep];
	run->hook = hook;
	run->index = rec->prep;
	if (rec->kind == JOURNAL_RUN_FILE) {
		struct manifest_entry e;

		memset(&e, 0, sizeof(e));
		e.type = MANIFEST_FILE;
		e.path = rec->path;
		if (hook->each != CONFIG_EACH_FILE || !matches(hook, &e)) {
			log_warn("host %s: %s no longer runs on %s; not run", ctx->host->name, name,
			    rec->path);
			return 0;
		}
		run->path = rec->path;
		runonce_file_key(hook, rec->path, rec->hash, run->key);
		snprintf(run->what, sizeof(run->what), "%s %s", name, rec->path);
	} else {
		if (hook->each != CONFIG_EACH_SET) {
			log_warn("host %s: %s no longer runs once per set; not run", ctx->host->name,
			    name);
			return 0;
		}
		hash_to_hex(rec->hash, run->key);
		run->files = set_paths(hook, tree);
		snprintf(run->what, sizeof(run->what), "%s", name);
	}
	if (done_seen(done, run->key)) {
		restart_report_add(report, name, run->path != NULL ? run->path : run->key,
		    RESTART_SKIPPED, NULL, 0)->run_once = 1;
		xfree_strv(run->files);
		run->files = NULL;
		return 0;
	}
	return 1;
}

int
runonce_run(const struct config *config, const struct config_host *host, const char *state_dir,
    const struct manifest *tree, const struct journal_record *recs, size_t n,
    struct restart_report *report)
{
	struct command_ctx ctx;
	char *dir = NULL, *file = NULL, *done = NULL;
	int r = 0, any = 0;

	for (size_t i = 0; i < n; i++)
		any |= recs[i].kind == JOURNAL_RUN_FILE || recs[i].kind == JOURNAL_RUN_SET;
	if (!any || config == NULL)
		return 0;
	command_ctx_init(&ctx, config, host);
	if ((r = done_open(config, state_dir, 1, &dir, &file, &done)) != 0)
		goto out;
	for (size_t i = 0; i < n && r == 0; i++) {
		struct run run;

		if (recs[i].kind != JOURNAL_RUN_FILE && recs[i].kind != JOURNAL_RUN_SET)
			continue;
		if (!run_prepare(config, &ctx, &recs[i], done, tree, &run, report))
			continue;
		if ((r = run_one(&ctx, dir, &run, report)) == 0)
			r = done_record(dir, file, &done, run.key, run.index, run.path);
		xfree_strv(run.files);
	}
out:
	free(done);
	free(file);
	free(dir);
	command_ctx_release(&ctx);
	return r;
}

int
runonce_run_manifest(const struct config *config, const struct config_host *host,
    const struct manifest *manifest, const char *state_dir, struct restart_report *report)
{
	struct journal j;
	int r;

	if (config->nrun_once == 0)
		return 0;
	if (state_dir == NULL)
		state_dir = host->state;
	if (state_dir == NULL) {
		log_error("host %s: run_once needs a state directory", host->name);
		return DS_ERR_CONFIG;
	}
	memset(&j, 0, sizeof(j));
	if ((r = runonce_owed(config, state_dir, NULL, manifest, 1, &j, report)) == 0)
		r = runonce_run(config, host, state_dir, manifest, j.records, j.count, report);
	journal_release(&j);
	return r;
}
