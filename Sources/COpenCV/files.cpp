// File-system calls the Swift side needs and Glibc's Swift module does not export (it is built
// without _GNU_SOURCE). See COpenCV.h.
#include "COpenCV.h"

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>

namespace {
// Set once renameat2 answered that the file system does not have it: from then on straight to
// link + unlink (one failed system call per file is not worth repeating twice a frame).
std::atomic<bool> no_renameat2{false};
}  // namespace

extern "C" int rc_rename_noreplace(const char *from, const char *to) {
    if (!no_renameat2.load(std::memory_order_relaxed)) {
        if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) return 0;
        int err = errno;
        if (err != EINVAL && err != ENOSYS && err != ENOTSUP) return err;
        no_renameat2.store(true, std::memory_order_relaxed);
    }
    // The file system has no RENAME_NOREPLACE (some FUSE and network file systems): a hard link
    // also refuses an existing name (EEXIST), atomically; then the temporary name goes.
    if (link(from, to) != 0) return errno;
    unlink(from);
    return 0;
}
