/* Unpacking a release's source tree from an archive (zip, tar.*) with libarchive. */
#ifndef DS_UNPACK_H
#define DS_UNPACK_H

/*
 * Extracts ARCHIVE into the existing empty directory DEST, dropping the first
 * STRIP path components of every entry. Entries get the same checks as a
 * scanned tree: clean relative paths (no "..", no absolute), only files,
 * directories and symlinks that stay inside the tree; anything else is an error
 * naming the archive and the entry. Files are opened under DEST's fd without
 * following symlinks. Returns 0 or a DS_ERR_* (logged).
 */
int	unpack_archive(const char *archive, const char *dest, unsigned strip);

#endif
