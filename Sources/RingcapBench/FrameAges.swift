import Foundation
import RingcapKit

/// How old the frames of a recording were when they were written, read back from the files:
/// a sidecar's `monotonic_ns` is its frame's grab, and its modification time is when it was
/// written (the kernel's coarse clock: a few ms). Frames are counted in three parts:
/// - the warm-up: frames grabbed before the ring first filled (before the first frame whose
///   sidecar shows a full ring or a drop), and at least in the first second. Until the ring fills
///   nothing is dropped, so nothing newer can replace a frame, and the pool's buffers are still
///   being allocated and touched for the first time; for a while after it, the writers are still
///   working off the frames that filled it;
/// - frames written while capturing, after the warm-up: the ring's promise (the newest win) is
///   about these;
/// - frames written after capture stopped (the ring's content, drained): old because nothing
///   newer can come.
///
/// A plain value, made once on one thread after the recording.
public struct FrameAges: Sendable {
    /// Frames written while the cameras were capturing, after the warm-up, and the oldest, ms.
    public var whileCapturing = 0
    public var oldestWhileCapturingMs = 0.0
    /// Frames grabbed during the warm-up and the oldest of them; how long after the first grab
    /// the warm-up ended and the ring first filled (nil: the ring never filled), ms.
    public var warmUp = 0
    public var oldestWarmUpMs = 0.0
    public var warmUpMs: Double?
    public var ringFilledMs: Double?
    /// Frames written after capture stopped (the drain), and the oldest of them, ms.
    public var afterStop = 0
    public var oldestAfterStopMs = 0.0

    private struct Frame {
        var grabNs: Int64, writtenNs: Int64, depth: Int, dropped: Int
        var ageMs: Double { Double(max(0, writtenNs - grabNs)) / 1e6 }
    }

    /// Scans every sidecar under `folder`; `stopMonotonicNs` is when capture was told to stop,
    /// `ringCapacity` the ring's size, `settleNs` the shortest warm-up (from the first grab).
    public static func scan(_ folder: String, stopMonotonicNs: UInt64, ringCapacity: Int,
                            settleNs: UInt64 = 1_000_000_000) -> FrameAges {
        var ages = FrameAges()
        // The monotonic clock's offset from the wall clock, to put modification times on it.
        let offsetNs = Clock.wallNs() - Int64(Clock.monotonicNs())
        guard let walker = FileManager.default.enumerator(atPath: folder) else { return ages }
        var frames: [Frame] = []
        while let relative = walker.nextObject() as? String {
            guard relative.hasSuffix(RecordingLayout.sidecarExtension.description) else { continue }
            let path = folder + "/" + relative
            var info = stat()
            guard stat(path, &info) == 0, let data = FileManager.default.contents(atPath: path) else { continue }
            let bytes = [UInt8](data)
            guard let grab = number(after: "\"monotonic_ns\":", in: bytes),
                  let depth = number(after: "\"depth\":", in: bytes),
                  let dropped = number(after: "\"dropped\":", in: bytes) else { continue }
            let writtenWall = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
            frames.append(Frame(grabNs: grab, writtenNs: writtenWall - offsetNs, depth: Int(depth), dropped: Int(dropped)))
        }
        guard let firstGrab = frames.lazy.map(\.grabNs).min() else { return ages }
        let filled = frames.lazy.filter { $0.depth >= ringCapacity || $0.dropped > 0 }.map(\.grabNs).min() ?? Int64.max
        ages.ringFilledMs = filled == Int64.max ? nil : Double(filled - firstGrab) / 1e6
        // The warm-up lasts until the ring first filled, and at least `settleNs`: just after the
        // first fill the writers are still catching up with the frames that filled it.
        let warmUpEnd = filled == Int64.max ? Int64.max : max(filled, firstGrab + Int64(settleNs))
        ages.warmUpMs = warmUpEnd == Int64.max ? nil : Double(warmUpEnd - firstGrab) / 1e6
        for frame in frames {
            if frame.writtenNs > Int64(stopMonotonicNs) {
                ages.afterStop += 1
                ages.oldestAfterStopMs = max(ages.oldestAfterStopMs, frame.ageMs)
            } else if frame.grabNs < warmUpEnd {
                ages.warmUp += 1
                ages.oldestWarmUpMs = max(ages.oldestWarmUpMs, frame.ageMs)
            } else {
                ages.whileCapturing += 1
                ages.oldestWhileCapturingMs = max(ages.oldestWhileCapturingMs, frame.ageMs)
            }
        }
        return ages
    }

    /// The decimal integer right after `key` in `bytes`, nil if there is none.
    private static func number(after key: String, in bytes: [UInt8]) -> Int64? {
        guard let at = bytes.firstRange(of: Array(key.utf8))?.upperBound, at < bytes.count,
              bytes[at] >= 0x30, bytes[at] <= 0x39 else { return nil }
        var value: Int64 = 0
        var i = at
        while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 {
            value = value * 10 + Int64(bytes[i] - 0x30)
            i += 1
        }
        return value
    }
}
