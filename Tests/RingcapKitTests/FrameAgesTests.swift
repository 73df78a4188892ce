import Foundation
import Testing
@testable import RingcapBench
@testable import RingcapKit

/// The bench's frame ages, read back from sidecars written by the writers' own formatter and from
/// the files' modification times, are split into the warm-up (until the ring first filled, and
/// at least a settling time),
/// the frames written while capturing, and the drain after capture stopped.
struct FrameAgesTests {
    /// A frame grabbed `grabAgoMs` before now and written `writtenAgoMs` before now, as a
    /// sidecar file whose modification time is the write.
    static func write(_ dir: URL, name: String, seq: UInt64, nowMono: UInt64, nowWall: Int64,
                      grabAgoMs: Double, writtenAgoMs: Double, depth: Int, dropped: Int64) throws {
        var meta = FrameMeta()
        meta.seq = seq
        meta.monotonicNs = nowMono - UInt64(grabAgoMs * 1e6)
        meta.wallNs = nowWall - Int64(grabAgoMs * 1e6)
        meta.width = 64
        meta.height = 48
        meta.ringDepth = Int32(depth)
        meta.droppedSoFar = dropped
        var sink = ByteSink(capacity: 4096)
        formatSidecar(into: &sink, head: Array(#"{"camera":"a","source":"test:64x48@30","#.utf8), meta: meta, quality: 85,
                      fileBytes: 1000, fix: nil, gps: WriterGPS(maxAgeNs: 1, source: GPSSourceJSON("none")))
        let url = dir.appendingPathComponent(name + ".json")
        try Data(sink.bytes).write(to: url)
        let written = nowWall - Int64(writtenAgoMs * 1e6)
        var times = [timespec(tv_sec: Int(written / 1_000_000_000), tv_nsec: Int(written % 1_000_000_000)),
                     timespec(tv_sec: Int(written / 1_000_000_000), tv_nsec: Int(written % 1_000_000_000))]
        #expect(utimensat(AT_FDCWD, url.path, &times, 0) == 0, "utimensat: \(String(cString: strerror(errno)))")
    }

    @Test func warmUpSteadyAndDrainAreCountedApart() throws {
        let dir = try TestEnvironment.scratch("frame-ages")
        defer { try? FileManager.default.removeItem(at: dir) }
        let minute = dir.appendingPathComponent("a/2026/12/01/10/00")
        try FileManager.default.createDirectory(at: minute, withIntermediateDirectories: true)
        let nowMono = Clock.monotonicNs(), nowWall = Clock.wallNs()
        // Capture stopped 100 ms ago (ring of 8). Times below are "ms before now".
        let stop = nowMono - 100_000_000
        // Warm-up: the ring not yet full, nothing dropped; slow writers make these old.
        try Self.write(minute, name: "w0", seq: 0, nowMono: nowMono, nowWall: nowWall, grabAgoMs: 1000, writtenAgoMs: 900, depth: 0, dropped: 0)
        try Self.write(minute, name: "w1", seq: 1, nowMono: nowMono, nowWall: nowWall, grabAgoMs: 990, writtenAgoMs: 870, depth: 5, dropped: 0)
        // The first frame that found the ring full, 50 ms after the first grab: warm-up ends here.
        try Self.write(minute, name: "s0", seq: 2, nowMono: nowMono, nowWall: nowWall, grabAgoMs: 950, writtenAgoMs: 920, depth: 8, dropped: 0)
        // Steady: a drop already counted; the oldest of these is 40 ms.
        try Self.write(minute, name: "s1", seq: 9, nowMono: nowMono, nowWall: nowWall, grabAgoMs: 500, writtenAgoMs: 460, depth: 7, dropped: 3)
        try Self.write(minute, name: "s2", seq: 10, nowMono: nowMono, nowWall: nowWall, grabAgoMs: 300, writtenAgoMs: 270, depth: 7, dropped: 4)
        // Written after the stop: the drain, 130 ms old.
        try Self.write(minute, name: "d0", seq: 11, nowMono: nowMono, nowWall: nowWall, grabAgoMs: 180, writtenAgoMs: 50, depth: 8, dropped: 5)
        // Not a sidecar: ignored.
        try Data("x".utf8).write(to: minute.appendingPathComponent("s0.jpg"))

        // No settling time: the warm-up ends when the ring first filled.
        let ages = FrameAges.scan(dir.path, stopMonotonicNs: stop, ringCapacity: 8, settleNs: 0)
        #expect(ages.warmUp == 2)
        #expect(abs(try #require(ages.warmUpMs) - 50) < 0.01, "warm-up \(String(describing: ages.warmUpMs)) ms")
        #expect(abs(try #require(ages.ringFilledMs) - 50) < 0.01)
        #expect(abs(ages.oldestWarmUpMs - 120) < 2, "oldest warm-up \(ages.oldestWarmUpMs) ms")
        #expect(ages.whileCapturing == 3)
        #expect(abs(ages.oldestWhileCapturingMs - 40) < 2, "oldest while capturing \(ages.oldestWhileCapturingMs) ms")
        #expect(ages.afterStop == 1)
        #expect(abs(ages.oldestAfterStopMs - 130) < 2, "oldest after stop \(ages.oldestAfterStopMs) ms")

        // At least 300 ms of warm-up: the frame that filled the ring is still in it.
        let settled = FrameAges.scan(dir.path, stopMonotonicNs: stop, ringCapacity: 8, settleNs: 300_000_000)
        #expect(settled.warmUp == 3 && settled.whileCapturing == 2 && settled.afterStop == 1, "\(settled)")
        #expect(abs(try #require(settled.warmUpMs) - 300) < 0.01)
        #expect(abs(try #require(settled.ringFilledMs) - 50) < 0.01)
        #expect(abs(settled.oldestWhileCapturingMs - 40) < 2)
    }

    /// A recording in which the ring never filled has no end of warm-up: every frame written
    /// while capturing is warm-up, none is held to the ring's span.
    @Test func aRingThatNeverFilledIsAllWarmUp() throws {
        let dir = try TestEnvironment.scratch("frame-ages-light")
        defer { try? FileManager.default.removeItem(at: dir) }
        let nowMono = Clock.monotonicNs(), nowWall = Clock.wallNs()
        for i in 0..<3 {
            try Self.write(dir, name: "f\(i)", seq: UInt64(i), nowMono: nowMono, nowWall: nowWall,
                           grabAgoMs: 300 - Double(i) * 30, writtenAgoMs: 290 - Double(i) * 30, depth: 1, dropped: 0)
        }
        let ages = FrameAges.scan(dir.path, stopMonotonicNs: nowMono, ringCapacity: 8)
        #expect(ages.warmUp == 3 && ages.whileCapturing == 0 && ages.afterStop == 0, "\(ages)")
        #expect(ages.warmUpMs == nil && ages.ringFilledMs == nil)
    }
}
