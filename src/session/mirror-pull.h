/*
 * A site's pull from static HTTP mirrors (or a directory, a mounted disk) of
 * a published tree (repo/publish.h), with no code of ours on the server:
 * the site fetches the channel's signed pointer, the release document and
 * the keys documents, checks them against the root it pins (signature,
 * expiry, anti-rollback), plans from its own tree (content it holds is
 * never fetched; the precomputed patch from its release when there is one;
 * whole objects otherwise), downloads into staging with resume at the byte,
 * checks every object against the signed manifest, and applies it with the
 * same engine, restarts and result as an SSH pull (session/apply.h).
 */
#ifndef DS_MIRROR_PULL_H
#define DS_MIRROR_PULL_H

#include <stdint.h>

struct config;
struct config_host;
struct proto_result;

struct mirror_pull_options {
	const struct config	*config;	/* the site's own (site.yml): commands, channel */
	const struct config_host *host;		/* the upstream entry: mirrors, target, trust_root */
	const struct config_host *site;		/* the same named as this site, or NULL: whose commands run */
	uint32_t		 flags;		/* PROTO_FLAG_DRY_RUN, _NO_RESTART */
	unsigned		 lock_timeout;
	/* Progress (may be NULL): bytes downloaded, content bytes done, content bytes in all. */
	void			(*progress)(void *arg, uint64_t wire, uint64_t done, uint64_t total);
	void			*progress_arg;
};

/*
 * One attempt of a mirror pull. Fills RES as an SSH pull's RESULT would be
 * (free with proto_result_free) and adds the bytes downloaded to *BYTES_IN.
 * Returns 0; DS_ERR_CONNECT / DS_ERR_TIMEOUT for a link that failed (the
 * caller retries: staged downloads resume); DS_ERR_SIGNATURE when no mirror
 * served a pointer and release the site can trust (expired, rolled back,
 * badly signed; exit 3); DS_ERR_CONFIG for a site without trust_root; or
 * what the apply returned. Errors are logged.
 */
int	mirror_pull_run(const struct mirror_pull_options *o, struct proto_result *res,
	    uint64_t *bytes_in);

#endif
