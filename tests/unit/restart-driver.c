/*
 * Drives the restart module the way the receiver does after a commit, for
 * tests/func/docker-restart.sh: load a config, pick a host, optionally run
 * the run_once hooks against a scan of the target, then plan and restart the
 * services the given changed paths touch.
 *
 *	restart-driver [-n] [-r] CONFIG HOST [PATH...]
 *	  -n  dry run: print the plan only
 *	  -r  run the run_once hooks first (manifest: a scan of the target)
 *
 * Prints the plan, then the report. Exit 0 when all passed, 1 when a restart,
 * health check or hook failed, 2 on a usage or config error.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/path.h"
#include "config/config.h"
#include "repo/manifest.h"
#include "site/restart.h"
#include "site/runonce.h"

int
main(int argc, char **argv)
{
	const struct config_host *host;
	struct config *config = NULL;
	struct restart_plan *plan = NULL;
	struct restart_report report;
	struct manifest *m = NULL;
	int ch, dry_run = 0, run_once = 0, r;
	char *target = NULL;

	restart_report_init(&report);
	while ((ch = getopt(argc, argv, "nrv")) != -1) {
		switch (ch) {
		case 'n':
			dry_run = 1;
			break;
		case 'r':
			run_once = 1;
			break;
		case 'v':
			log_set_level(LOG_LEVEL_DEBUG);
			break;
		default:
			goto usage;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 2)
		goto usage;
	if ((r = config_load(argv[0], &config)) != 0)
		return ds_exit_code(r);
	if ((host = config_host(config, argv[1])) == NULL) {
		log_error("%s: no host named %s", argv[0], argv[1]);
		r = DS_ERR_NOTFOUND;
		goto out;
	}
	if (run_once) {
		target = path_absolute(config->dir, host->path);
		if ((r = manifest_scan(target, NULL, NULL, 1, &m, NULL)) != 0)
			goto out;
		r = runonce_run_manifest(config, host, m, NULL, &report);
		restart_report_print(&report, "run_once: ", stdout);
		if (r != 0)
			goto out;
	}
	if ((r = restart_select(config, argv + 2, (size_t)(argc - 2), &plan)) != 0)
		goto out;
	restart_describe(plan, "plan: ", stdout);
	if (!dry_run) {
		restart_report_release(&report);
		r = restart_run(config, host, plan, &report);
		restart_report_print(&report, "report: ", stdout);
		if (report.failed != NULL)
			printf("failed: %s\n", report.failed);
	}
out:
	fflush(stdout);
	restart_plan_free(plan);
	restart_report_release(&report);
	manifest_free(m);
	free(target);
	config_free(config);
	return ds_exit_code(r);
usage:
	fprintf(stderr, "usage: restart-driver [-n] [-r] [-v] CONFIG HOST [PATH...]\n");
	return DS_EXIT_USAGE;
}
