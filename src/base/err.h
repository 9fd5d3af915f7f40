/* Error codes shared by every module: 0 is success, negative is failure. */
#ifndef DS_ERR_H
#define DS_ERR_H

enum ds_err {
	DS_OK = 0,
	DS_ERR_SYSTEM = -1,	/* a system call failed; errno-level detail was logged */
	DS_ERR_INVALID = -2,	/* malformed input: a file, manifest, frame, argument */
	DS_ERR_USAGE = -3,	/* bad command line */
	DS_ERR_CONFIG = -4,	/* bad configuration */
	DS_ERR_NOTFOUND = -5,	/* a named thing (host, release, object) does not exist */
	DS_ERR_PROTO = -6,	/* the peer broke the protocol */
	DS_ERR_LOCKED = -7,	/* the target is locked by another run */
	DS_ERR_NOSPACE = -8,	/* not enough free space; nothing was touched */
	DS_ERR_SIGNATURE = -9,	/* a signature is missing or does not verify */
	DS_ERR_CORRUPT = -10,	/* content does not match its digest */
	DS_ERR_CONNECT = -11,	/* transport could not be established or was lost */
	DS_ERR_HOSTKEY = -12,	/* SSH host key unknown or changed */
	DS_ERR_AUTH = -13,	/* SSH authentication failed */
	DS_ERR_TIMEOUT = -14,	/* an operation ran past its time limit */
	DS_ERR_HEALTH = -15,	/* a service failed its health check; rolled back */
	DS_ERR_DRIFT = -16,	/* target drifted and --fail-on-drift was given */
	DS_ERR_PEER = -17,	/* the peer reported an error */
	DS_ERR_UNSUPPORTED = -18, /* the operation is not supported here */
	DS_ERR_PRECONDITION = -19, /* refused before touching anything */
	DS_ERR_CHILD = -20,	/* an external command failed */
	DS_ERR_INTERRUPTED = -21, /* SIGINT or SIGTERM stopped the session */
};

/* Process exit codes, as documented in distsync(1). */
enum ds_exit {
	DS_EXIT_OK = 0,
	DS_EXIT_FAILED = 1,	/* some host or operation failed */
	DS_EXIT_USAGE = 2,	/* usage or configuration error */
	DS_EXIT_PRECONDITION = 3, /* nothing applied: lock, signature, space */
	DS_EXIT_INTERRUPTED = 130, /* Ctrl-C or SIGTERM, as a shell reports SIGINT */
};

/* Returns a static one-line description of an error code. */
const char	*ds_strerror(int err);

/* Maps an error code to the process exit code documented in distsync(1). */
int		 ds_exit_code(int err);

#endif
