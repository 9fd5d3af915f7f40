#include "autoconf.h"

#include "base/err.h"

const char *
ds_strerror(int err)
{
	switch (err) {
	case DS_OK:		return "success";
	case DS_ERR_SYSTEM:	return "system error";
	case DS_ERR_INVALID:	return "invalid input";
	case DS_ERR_USAGE:	return "usage error";
	case DS_ERR_CONFIG:	return "configuration error";
	case DS_ERR_NOTFOUND:	return "not found";
	case DS_ERR_PROTO:	return "protocol error";
	case DS_ERR_LOCKED:	return "target is locked";
	case DS_ERR_NOSPACE:	return "not enough free space";
	case DS_ERR_SIGNATURE:	return "not trusted (signature, expiry or anti-rollback check failed)";
	case DS_ERR_CORRUPT:	return "content does not match its digest";
	case DS_ERR_CONNECT:	return "connection failed";
	case DS_ERR_HOSTKEY:	return "host key verification failed";
	case DS_ERR_AUTH:	return "authentication failed";
	case DS_ERR_TIMEOUT:	return "timed out";
	case DS_ERR_HEALTH:	return "health check failed";
	case DS_ERR_DRIFT:	return "target has drifted";
	case DS_ERR_PEER:	return "peer reported an error";
	case DS_ERR_UNSUPPORTED: return "not supported";
	case DS_ERR_PRECONDITION: return "precondition failed";
	case DS_ERR_CHILD:	return "command failed";
	case DS_ERR_INTERRUPTED: return "interrupted";
	}
	return "unknown error";
}

int
ds_exit_code(int err)
{
	switch (err) {
	case DS_OK:
		return DS_EXIT_OK;
	case DS_ERR_INTERRUPTED:
		return DS_EXIT_INTERRUPTED;
	case DS_ERR_USAGE:
	case DS_ERR_CONFIG:
		return DS_EXIT_USAGE;
	case DS_ERR_LOCKED:
	case DS_ERR_NOSPACE:
	case DS_ERR_SIGNATURE:
	case DS_ERR_DRIFT:
	case DS_ERR_PRECONDITION:
		return DS_EXIT_PRECONDITION;
	default:
		return DS_EXIT_FAILED;
	}
}
