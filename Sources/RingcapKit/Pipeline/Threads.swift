import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Names the calling thread as `top` and `ps -L` show it (Linux keeps 15 bytes).
/// (Foundation sets the kernel's thread name when the current thread's name is set; Glibc's
/// Swift module does not export `pthread_setname_np`.)
public func setCurrentThreadName(_ name: String) {
    Thread.current.name = String(name.prefix(15))
}

/// Runs `body` on a new thread named `name` (1 MiB of stack unless said) with SIGINT, SIGTERM and
/// SIGHUP blocked, and signals `done` when it returns: every thread of ringcap's own (cameras,
/// writers, retention, the clean-up, the engine's supervisor, the bench's limit probe, the
/// CLI's signal watcher) starts this way and is joined by waiting on `done`.
public func startWorkerThread(_ name: String, stackSize: Int = 1 << 20, done: MonotonicSemaphore,
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
