/*
 * A plan compares what a site holds with a release: per path added, updated,
 * deleted or mode-only, and for every object the site lacks, the basis it
 * already holds that a delta can be made against. Pure: no I/O.
 */
#ifndef DS_PLAN_H
#define DS_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "repo/manifest.h"

enum plan_basis_kind {
	PLAN_BASIS_NONE,	/* nothing similar: whole file */
	PLAN_BASIS_SAME_PATH,	/* the same path, older content */
	PLAN_BASIS_IDENTITY,	/* same artifact under an older versioned name */
	PLAN_BASIS_NAME,	/* a similar name in the same (or same-identity) directory */
	PLAN_BASIS_SIZE,	/* a file the release dropped there, of nearly the same size */
};

struct plan_item {
	enum manifest_change		 change;
	const struct manifest_entry	*old;	/* in current, NULL when added */
	const struct manifest_entry	*new;	/* in target, NULL when deleted */
};

/* One object the site lacks, with the basis chosen for it. */
struct plan_object {
	const struct manifest_entry	*entry;	/* first target entry with this content */
	const struct manifest_entry	*basis;	/* a file in current, or NULL */
	enum plan_basis_kind		 basis_kind;
};

struct plan {
	struct plan_item	*items;		/* in path order */
	size_t			 count;
	size_t			 added, updated, deleted, mode_changed, unchanged;
	struct plan_object	*objects;	/* unique by hash, in path order */
	size_t			 nobjects;
	uint64_t		 object_bytes;	/* sum of the sizes of objects */
	char			**changed_paths; /* content, type or mode changed, or deleted; NULL-terminated */
	size_t			 nchanged_paths;
};

/*
 * Plans the move from CURRENT (may be NULL: an empty site) to TARGET. Entries
 * of both manifests are referenced, not copied: keep them alive while the
 * plan is used. Objects present anywhere in CURRENT are not needed.
 */
struct plan	*plan_make(const struct manifest *current, const struct manifest *target);
void		 plan_free(struct plan *plan);

/*
 * Returns the artifact identity of PATH (caller frees): each component with
 * its version-like tokens ("5.3.1", "v2.0", "10.0.1-SNAPSHOT") and content-hash
 * tokens ("a1b2c3d4e5") replaced by '#', so versioned names of one artifact
 * compare equal.
 */
char	*plan_identity(const char *path);

/* Human name of a basis kind ("same path", "artifact identity", ...). */
const char *plan_basis_name(enum plan_basis_kind kind);

#endif
