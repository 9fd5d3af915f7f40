/* Unpacking a release's source tree from an archive (zip, tar.*) with libarchive. */
#ifndef DS_UNPACK_H
#define DS_UNPACK_H

#include <stddef.h>
#include <stdint.h>

/*
 * Most bytes (the sum of the files' sizes, holes included) an archive may
 * unpack to, unless the caller passes another limit: an OpenMRS
 * distribution is a few GiB, and a ten-kilobyte sparse tar must not fill
 * the store's disk.
 */
#define UNPACK_MAX_BYTES_DEFAULT	((uint64_t)16 << 30)
/*
 * Free space left on DEST's filesystem: before each file, the filesystem
 * must hold that file twice (here, and as a store object) plus the store
 * objects of the files already unpacked, plus this.
 */
#define UNPACK_FREE_RESERVE		((uint64_t)64 << 20)

/*
 * Extracts ARCHIVE (a zip or a tar, plain or gzip, bzip2, xz, lzma, lz4 or
 * zstd compressed; other formats are refused) into the existing empty
 * directory DEST, dropping the first STRIP path components of every entry.
 * Entries get the same checks as a scanned tree: clean relative paths (no
 * "..", no absolute), only files, directories and symlinks; hardlinks,
 * devices and fifos are refused. Nothing is ever done through a symlink:
 * every file and directory is created or opened under DEST's fd without
 * following one, and an entry whose path goes through or replaces a symlink
 * an earlier entry made, or replaces an earlier file, is refused. Modes
 * lose setuid, setgid and sticky (manifest_mode_clean). The files may hold
 * at most MAX_BYTES in all (0: UNPACK_MAX_BYTES_DEFAULT), and DEST's
 * filesystem must keep room for them (UNPACK_FREE_RESERVE).
 *
 * Returns 0, DS_ERR_INVALID for an archive that is malformed, of another
 * format or refused as above, or larger than MAX_BYTES, DS_ERR_NOSPACE when
 * DEST's filesystem lacks the room, or DS_ERR_SYSTEM; every error is logged
 * naming the archive and the entry. On error DEST holds a partial tree the
 * caller removes (path_remove_tree follows no symlink).
 */
int	unpack_archive(const char *archive, const char *dest, unsigned strip,
	    uint64_t max_bytes);

/* Like unpack_archive, for an archive of LEN bytes at DATA, named NAME in messages. */
int	unpack_memory(const void *data, size_t len, const char *name, const char *dest,
	    unsigned strip, uint64_t max_bytes);

#endif
