import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A counting semaphore whose timed waits measure `CLOCK_MONOTONIC`.
///
/// Why not `DispatchSemaphore`: on Linux its timed wait is `sem_timedwait` with an absolute
/// deadline on the wall clock, so a clock stepped back by NTP or GPS (a Raspberry Pi after a cold
/// boot without a real-time clock) stretches every wait in progress by the step, and a step
/// forward ends them early: a 5 s reconnect backoff became an hour. Foundation's `Thread.sleep`
/// and `NSCondition.wait(until:)` take wall-clock dates too. This is a pthread mutex and a
/// condition variable whose clock is set to `CLOCK_MONOTONIC` (`pthread_condattr_setclock`).
///
/// Thread-safe. `count` is protected by `mutex`. Never used per frame when nobody sleeps: the
/// writers' and cameras' doorbells signal it only when a thread is registered as asleep.
public final class MonotonicSemaphore: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// Signals not yet taken by a waiter. Protected by `mutex`.
    private var count: Int

    public init(value: Int = 0) {
        count = value
        pthread_mutex_init(mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Adds one signal and wakes one waiter.
    public func signal() {
        pthread_mutex_lock(mutex)
        count += 1
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Waits for a signal, however long it takes.
    public func wait() {
        pthread_mutex_lock(mutex)
        while count == 0 { pthread_cond_wait(condition, mutex) }
        count -= 1
        pthread_mutex_unlock(mutex)
    }

    /// Waits at most `timeoutNs` on the monotonic clock. Returns true when it took a signal,
    /// false when the time ran out.
    @discardableResult
    public func wait(timeoutNs: UInt64) -> Bool {
        let deadline = Clock.monotonicNs() &+ min(timeoutNs, UInt64(Int64.max) / 2)
        var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while count == 0 {
            if pthread_cond_timedwait(condition, mutex, &ts) == ETIMEDOUT {
                if count == 0 { return false }
                break
            }
        }
        count -= 1
        return true
    }
}
