/*
 * Ctrl-C and SIGTERM for commands that change sites (push, pull): the
 * signal is only noted; the transports notice it at their next read, write
 * or wait (a blocked one returns at once: the handler does not restart
 * system calls) and end the session with DS_ERR_INTERRUPTED, whose report
 * then says what was interrupted and what state the site is in.
 */
#ifndef DS_INTERRUPT_H
#define DS_INTERRUPT_H

/* Notes SIGINT and SIGTERM from now on instead of dying of them. Logs nothing. */
void	interrupt_install(void);

/* The signal noted (SIGINT or SIGTERM), or 0. Async-signal-safe. */
int	interrupt_signal(void);

#endif
