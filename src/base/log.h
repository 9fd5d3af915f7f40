/* Logging to stderr (and syslog when opened). Messages are one line each. */
#ifndef DS_LOG_H
#define DS_LOG_H

enum log_level { LOG_LEVEL_SILENT = -1, LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Sets the most verbose level printed to stderr (default: info). */
void	log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* -vv: the libraries' own logs (libssh's protocol log) beside debug lines. */
void	log_set_trace(int on);
int	log_trace(void);
/* Prefixes every stderr line with "prefix: " (e.g. a host name); NULL clears. */
void	log_set_prefix(const char *prefix);
int	log_line_names(const char *line, const char *name);
/*
 * Hands each error line (without "distsync: " and the prefix) to fn first;
 * when fn returns nonzero the line is not printed to stderr (it is still
 * sent to syslog). NULL removes it. The receiver uses it to send its errors
 * to the peer, which prints them prefixed by the host name.
 */
void	log_set_capture(int (*fn)(const char *line, void *arg), void *arg);
/*
 * Hands each line that would go to stderr (whole, "distsync: ..." without the
 * newline) to fn instead: a live progress display prints it above itself.
 * NULL restores stderr.
 */
void	log_set_writer(void (*fn)(const char *line, void *arg), void *arg);
/*
 * Marks info and debug lines on stderr ("distsync: info: ...") as warnings
 * always are: serve's stderr goes to the peer over SSH, which prints each
 * line at its level (an initiator's -q silences a site's info lines).
 */
void	log_set_level_tags(int on);
/* Also sends warnings and errors to syslog under the ident "distsync". */
void	log_open_syslog(void);
/* Sends one line to syslog at notice level whether or not it was opened. */
void	log_syslog_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void	log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Like log_error, with ": strerror(errno)" appended. */
void	log_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
