import Dispatch
import Synchronization

/// Lets threads sleep until another thread says there may be work, without a system call on
/// the fast path: `ring()` costs one fence and one load when nobody sleeps.
///
/// Thread-safe. Usage: a waiter calls `wait(timeoutNs:recheck:)`, which registers as a
/// sleeper, re-checks for work (closing the race with a `ring()` that came just before), and
/// sleeps only if there is none. Spurious wake-ups happen (a semaphore may hold extra
/// signals); callers loop.
public final class Doorbell: @unchecked Sendable {
    private let sleepers = Atomic<Int>(0)
    private let semaphore = MonotonicSemaphore()  // monotonic: a clock step must not stretch a sleep

    public init() {}

    /// Wakes one sleeper, if any. Call after making work available.
    @inline(__always)
    public func ring() {
        // Sequentially consistent: the work published before this fence and the sleeper's
        // increment in `wait` (also sequentially consistent) cannot both be missed: either we
        // see the sleeper, or the sleeper's re-check sees the work.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .relaxed) > 0 { semaphore.signal() }
    }

    /// Wakes every sleeper there is; as cheap as `ring()` when there is none.
    @inline(__always)
    public func ringEverySleeper() {
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        let n = sleepers.load(ordering: .relaxed)
        for _ in 0..<max(0, n) { semaphore.signal() }
    }

    /// Wakes every sleeper (shutdown).
    public func ringAll() {
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        for _ in 0..<max(1, sleepers.load(ordering: .relaxed)) { semaphore.signal() }
    }

    /// Sleeps up to `timeoutNs` unless `recheck` finds work after registering. Returns what
    /// `recheck` returned, or false after sleeping.
    @inline(__always)
    public func wait(timeoutNs: UInt64, recheck: () -> Bool) -> Bool {
        sleepers.add(1, ordering: .sequentiallyConsistent)  // pairs with the fence in ring()
        defer { sleepers.subtract(1, ordering: .relaxed) }
        if recheck() { return true }
        semaphore.wait(timeoutNs: timeoutNs)
        return false
    }
}

/// A flag set once by one thread and read by others. Thread-safe.
public final class OnceFlag: Sendable {
    private let value = Atomic<Bool>(false)
    public init() {}
    /// Releasing: what the setter did before is visible to a reader that sees the flag.
    public func set() { value.store(true, ordering: .releasing) }
    public var isSet: Bool { value.load(ordering: .acquiring) }
}
