import Foundation
import RingcapKit
#if canImport(Glibc)
import Glibc
#endif

/// The process's CPU time and resident memory, as the bench reports them. Reads only, from the
/// kernel: thread-safe. Not for the hot path (it reads a /proc file).
public enum ProcessUsage {
    /// User plus system CPU time of every thread of the process so far, seconds (getrusage).
    public static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }

    /// The CPU time of the calling thread only, seconds.
    public static func threadCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Resident memory now, MiB: the second field of /proc/self/statm (pages) times the page size.
    public static func residentMB() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .ascii) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Double(fields[1]) else { return 0 }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
    }
}
