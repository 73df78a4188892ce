import Foundation

/// How old the frames of a recording were when they were written, read back from the files:
/// a sidecar's `monotonic_ns` is its frame's grab, and its modification time is when it was
/// written (the kernel's coarse clock: a few ms). Frames written after capture stopped (the
/// ring's content, drained) are counted apart: they are old because nothing newer can come.
///
/// A plain value, made once on one thread after the recording.
public struct FrameAges: Sendable {
    /// Frames written while the cameras were capturing, and the oldest of them, ms.
    public var whileCapturing = 0
    public var oldestWhileCapturingMs = 0.0
    /// Frames written after capture stopped (the drain), and the oldest of them, ms.
    public var afterStop = 0
    public var oldestAfterStopMs = 0.0

    /// Scans every sidecar under `folder`; `stopMonotonicNs` is when capture was told to stop.
    public static func scan(_ folder: String, stopMonotonicNs: UInt64) -> FrameAges {
        var ages = FrameAges()
        // The monotonic clock's offset from the wall clock, to put modification times on it.
        let offsetNs = Clock.wallNs() - Int64(Clock.monotonicNs())
        guard let walker = FileManager.default.enumerator(atPath: folder) else { return ages }
        let key = Array("\"monotonic_ns\":".utf8)
        while let relative = walker.nextObject() as? String {
            guard relative.hasSuffix(".json") else { continue }
            let path = folder + "/" + relative
            var info = stat()
            guard stat(path, &info) == 0, let data = FileManager.default.contents(atPath: path) else { continue }
            let bytes = [UInt8](data)
            guard let at = bytes.firstRange(of: key)?.upperBound else { continue }
            var grab: Int64 = 0
            var i = at
            while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 {
                grab = grab * 10 + Int64(bytes[i] - 0x30)
                i += 1
            }
            let writtenWall = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
            let written = writtenWall - offsetNs
            let ageMs = Double(max(0, written - grab)) / 1e6
            if written <= Int64(stopMonotonicNs) {
                ages.whileCapturing += 1
                ages.oldestWhileCapturingMs = max(ages.oldestWhileCapturingMs, ageMs)
            } else {
                ages.afterStop += 1
                ages.oldestAfterStopMs = max(ages.oldestAfterStopMs, ageMs)
            }
        }
        return ages
    }
}
