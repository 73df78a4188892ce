// File-system calls the Swift side needs and Glibc's Swift module does not export (it is built
// without _GNU_SOURCE). See COpenCV.h.
#include <spawn.h>
#include "COpenCV.h"

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <ctime>
#include <semaphore.h>

namespace {
// Set once renameat2 answered that the file system does not have it: from then on straight to
// link + unlink (one failed system call per file is not worth repeating twice a frame).
std::atomic<bool> no_renameat2{false};
}  // namespace

namespace {
sem_t recorder_wake;
// Made before main runs: rc_recorder_wake may be called from a signal handler at any time.
struct WakeInit {
    WakeInit() { sem_init(&recorder_wake, 0, 0); }
} wake_init;
}  // namespace

extern "C" void rc_recorder_wake(void) { sem_post(&recorder_wake); }

extern "C" void rc_recorder_sleep(uint64_t deadline_ns) {
    timespec ts;
    ts.tv_sec = (time_t)(deadline_ns / 1000000000u);
    ts.tv_nsec = (long)(deadline_ns % 1000000000u);
    sem_clockwait(&recorder_wake, CLOCK_MONOTONIC, &ts);  // a wake, the deadline or a signal
}

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

extern "C" int rc_spawn_actions_close_from(void *actions, int lowest_fd) {
    return posix_spawn_file_actions_addclosefrom_np(static_cast<posix_spawn_file_actions_t *>(actions), lowest_fd);
}
