/*
 * STATE/history.log: one line per apply, rollback or dry run, appended by
 * the site that did it and read back for "distsync status".
 */
#ifndef DS_HISTORY_H
#define DS_HISTORY_H

struct commit_report;
struct target;

/*
 * Appends one line to STATE/history.log and fsyncs it:
 * "TIME ACTION from=A to=B added=N updated=N deleted=N mode=N bytes=N
 * drifted=N restarted=SERVICES result=ok|ERROR". R may be NULL (counts
 * omitted); RESTARTED may be NULL ("-"); RESULT is 0 or a DS_ERR_*; ACTION
 * names the operation ("apply", "rollback", "dry-run"). Returns 0 or
 * DS_ERR_SYSTEM (logged).
 */
int	history_append(struct target *t, const char *action, const struct commit_report *r,
	    const char *restarted, int result);

/*
 * The last line of STATE/history.log without its newline (caller frees), or
 * NULL when there is none, the file cannot be read, or the line is longer
 * than 4 KiB. Does not log.
 */
char	*history_last_line(struct target *t);

#endif
