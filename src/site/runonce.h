/*
 * run_once hooks (the job trusted_sql scripts do): commands a site runs once
 * per content of the files they match, each done run recorded in
 * STATE/run_once.done so that no content runs twice.
 *
 * A hook with "each: file" (the default) owes one run for every matched file
 * whose path and content have no record yet, in path order: the file on
 * stdin ("input: stdin"), its absolute path as the last argument ("input:
 * argument"), or only in DISTSYNC_RUN_ONCE_FILE ("input: none"). Its record
 * is keyed by the hook's paths globs (and service), the file's path and its
 * content: editing the hook's command or input does not run its files again.
 * A hook with "each: set" owes one run whenever the content of its whole
 * matched set (and its command) has no record, with every matched path as
 * an argument for "input: argument". A hook with "service: NAME" runs its
 * command in that docker compose service ("compose exec -T", v2 or v1 as
 * command.h detects), with the file on the command's stdin.
 *
 * Commands run where command.h says, with DISTSYNC_STATE, DISTSYNC_RUN_ONCE_HASH
 * (the record's key), DISTSYNC_RUN_ONCE_FILE (each: file) or
 * DISTSYNC_RUN_ONCE_FILES (each: set, one path a line, when under 64 KiB)
 * added, within RUNONCE_TIMEOUT seconds. Output is logged line by line.
 *
 * When a hook that ran under "each: set" (a record "HEX N" for its index)
 * meets "each: file" for the first time, the files of the state being
 * replaced count as run: the set that covered them ran.
 *
 * run_once.done: one line per done run, "HEX N" (each: set) or "HEX N PATH"
 * (each: file; PATH omitted when it holds spaces or control bytes).
 */
#ifndef DS_RUNONCE_H
#define DS_RUNONCE_H

#include <stddef.h>
#include <stdint.h>

#include "base/hash.h"

struct config;
struct config_host;
struct config_run_once;
struct journal;
struct journal_record;
struct manifest;
struct restart_report;

#define RUNONCE_TIMEOUT		3600	/* seconds a run_once command may take */
#define RUNONCE_DONE_FILE	"run_once.done"	/* in the state directory */

/*
 * The record key of HOOK's run on PATH with content HASH (each: file), as 64
 * hex digits in hex.
 */
void	runonce_file_key(const struct config_run_once *hook, const char *path,
	    const uint8_t hash[HASH_LEN], char hex[HASH_HEX_LEN + 1]);

/*
 * The record key of hook INDEX's set in MANIFEST (each: set): SHA-256 over
 * the hook's argv and, for each matched non-directory entry in path order,
 * "path\0sha256hex\n". Returns 1 when entries matched, 0 when none did (hex
 * then empty).
 */
int	runonce_set_hash(const struct config *config, size_t index,
	    const struct manifest *manifest, char hex[HASH_HEX_LEN + 1]);

/*
 * Appends to J the runs TO owes (see above): F records (hook, content,
 * path) and O records (hook, set hash), hooks in config order. FROM is the
 * state replaced (NULL: none). With MIGRATE, the files a former each: set
 * run covered are recorded as done (only then, or an apply that does not
 * happen would record them). When SKIPPED is not NULL, each matched file or
 * set already done is added to it as RESTART_SKIPPED. STATE_DIR is the
 * directory of the done file (relative: to the config's directory).
 * Returns 0 or DS_ERR_SYSTEM (logged) when the done file cannot be read or
 * written.
 */
int	runonce_owed(const struct config *config, const char *state_dir,
	    const struct manifest *from, const struct manifest *to, int migrate,
	    struct journal *j, struct restart_report *skipped);

/*
 * Runs the F and O records among the N records RECS on HOST, in order (TREE,
 * the manifest of the tree they run on, gives a set its paths), each
 * recorded (fsynced) in STATE_DIR's done file once it succeeded; a record
 * already there (a run done before a crash) is reported as skipped, one
 * whose hook is gone or no longer matches is skipped with a warning. Stops
 * at the first failure and returns DS_ERR_CHILD or DS_ERR_TIMEOUT (logged,
 * naming the hook and the file), DS_ERR_CONFIG (a compose service without a
 * compose directory) or DS_ERR_SYSTEM. Outcomes go to REPORT, named
 * "run_once[N]" with the path (each: file) or the hash as why.
 */
int	runonce_run(const struct config *config, const struct config_host *host,
	    const char *state_dir, const struct manifest *tree,
	    const struct journal_record *recs, size_t n, struct restart_report *report);

/*
 * runonce_owed (no FROM, MIGRATE set, skipped runs reported) then
 * runonce_run for MANIFEST: what a site owes and runs for a tree, for
 * tests and restart-driver. STATE_DIR NULL: host->state, and
 * DS_ERR_CONFIG (logged) when neither is set.
 */
int	runonce_run_manifest(const struct config *config, const struct config_host *host,
	    const struct manifest *manifest, const char *state_dir,
	    struct restart_report *report);

#endif
