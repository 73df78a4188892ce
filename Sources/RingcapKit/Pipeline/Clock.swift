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
