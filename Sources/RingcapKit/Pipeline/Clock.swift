import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The two clocks every frame is stamped with. Plain `clock_gettime`: no allocation, no lock.
public enum Clock {
    /// `CLOCK_MONOTONIC` in ns: for ages and latencies, immune to wall-clock steps.
    @inline(__always)
    public static func monotonicNs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// `CLOCK_REALTIME` in ns since the Unix epoch (UTC): for the time a frame says it was taken.
    @inline(__always)
    public static func wallNs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) &* 1_000_000_000 &+ Int64(ts.tv_nsec)
    }

    /// Sleeps until the monotonic clock reads `deadlineNs` (absolute, so that pacing does not
    /// accumulate the error of each wake-up).
    public static func sleep(untilMonotonicNs deadlineNs: UInt64) {
        var ts = timespec(ns: deadlineNs)
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil) == EINTR {}
    }
}

private extension timespec {
    init(ns: UInt64) { self.init(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000)) }
}

/// Names the calling thread as `top` and `ps -L` show it (Linux keeps 15 bytes).
/// (Foundation sets the kernel's thread name when the current thread's name is set; Glibc's
/// Swift module does not export `pthread_setname_np`.)
public func setCurrentThreadName(_ name: String) {
    Thread.current.name = String(name.prefix(15))
}

/// Runs `body` on a new thread named `name` (1 MiB of stack unless said) with SIGINT, SIGTERM and
/// SIGHUP blocked, and signals `done` when it returns: the recorder's own threads (cameras,
/// writers, retention, the clean-up, the bench's limit probe) start this way and are joined by
/// waiting on `done`.
func startWorkerThread(_ name: String, stackSize: Int = 1 << 20, done: MonotonicSemaphore,
                       _ body: @escaping @Sendable () -> Void) {
    let thread = Thread {
        setCurrentThreadName(name)
        blockTerminationSignals()
        body()
        done.signal()
    }
    thread.name = name
    thread.stackSize = stackSize
    thread.start()
}

/// Blocks SIGINT, SIGTERM and SIGHUP on the calling thread, so that only the main thread takes
/// them: workers must never be interrupted in the middle of a frame by a handler.
public func blockTerminationSignals() {
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGINT)
    sigaddset(&set, SIGTERM)
    sigaddset(&set, SIGHUP)
    pthread_sigmask(SIG_BLOCK, &set, nil)
}
