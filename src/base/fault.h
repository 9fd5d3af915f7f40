/*
 * Crash points for tests. Built with --enable-fault-injection, each
 * fault_point("name") reached counts 1, 2, ...; with DISTSYNC_FAULT=N in the
 * environment the process kills itself with SIGKILL at point N. With
 * DISTSYNC_FAULT_TRACE=FILE each point reached appends "N name" to FILE.
 * Otherwise fault_point compiles to nothing.
 */
#ifndef DS_FAULT_H
#define DS_FAULT_H

#ifdef DS_FAULT_INJECTION
/* Counts one point; kills the process if it is the one DISTSYNC_FAULT names. */
void	fault_hit(const char *name);
#define fault_point(name)	fault_hit(name)
#define FAULT_ENABLED		1
#else
#define fault_point(name)	do { } while (0)
#define FAULT_ENABLED		0
#endif

#endif
