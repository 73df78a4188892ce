import COpenCV
import Foundation
import Synchronization
import Testing
@testable import RingcapKit

/// The taps on their own, with many threads at once (also run under ThreadSanitizer by
/// scripts/test.sh).
@Suite struct TapTests {
    /// Frame n's bytes: its length and every byte follow from n, so a reader can tell a whole
    /// frame from a torn one.
    private static func length(of seq: UInt64) -> Int { 500 + Int(seq % 97) * 37 }
    private static func byte(_ seq: UInt64, _ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: seq &* 31 &+ UInt64(i)) }

    @Test func latestJPEGWithEightReadersNeverTorn() throws {
        let latest = LatestJPEG()
        var none: [UInt8] = []
        #expect(latest.copyLatest(into: &none) == nil)
        latest.addClient()
        let frames: UInt64 = 20_000
        let writersDone = Atomic<Bool>(false)
        let torn = Atomic<Int>(0), read = Atomic<Int>(0), backwards = Atomic<Int>(0)
        var threads: [@Sendable () -> Void] = []
        // Two writers, as two writer threads storing one camera's frames: even and odd seqs.
        for w in 0..<2 {
            threads.append {
                var buffer = [UInt8](repeating: 0, count: 5000)
                let iov = UnsafeMutablePointer<iovec>.allocate(capacity: 3)
                defer { iov.deallocate() }
                var seq = UInt64(w)
                while seq < frames {
                    let n = Self.length(of: seq)
                    for i in 0..<n { buffer[i] = Self.byte(seq, i) }
                    buffer.withUnsafeMutableBytes { raw in
                        // Three parts, as the writer offers SOI, EXIF and the rest.
                        iov[0] = iovec(iov_base: raw.baseAddress, iov_len: 2)
                        iov[1] = iovec(iov_base: raw.baseAddress! + 2, iov_len: 100)
                        iov[2] = iovec(iov_base: raw.baseAddress! + 102, iov_len: n - 102)
                        latest.offer(iov, count: 3, frame: .init(seq: seq, wallNs: Int64(seq), width: 1, height: 1, bytes: 0))
                    }
                    seq += 2
                }
            }
        }
        for _ in 0..<8 {
            threads.append {
                var bytes: [UInt8] = []
                var last: UInt64?
                while !writersDone.load(ordering: .relaxed) {
                    guard let frame = latest.copyLatest(newerThan: last, into: &bytes) else { continue }
                    read.add(1, ordering: .relaxed)
                    if let last, frame.seq <= last { backwards.add(1, ordering: .relaxed) }
                    last = frame.seq
                    let whole = bytes.count == Self.length(of: frame.seq) && frame.bytes == bytes.count
                        && bytes.indices.allSatisfy { bytes[$0] == Self.byte(frame.seq, $0) } && frame.wallNs == Int64(frame.seq)
                    if !whole { torn.add(1, ordering: .relaxed) }
                }
            }
        }
        let done = threads.map { _ in MonotonicSemaphore() }
        for (i, body) in threads.enumerated() {
            Thread.detachNewThread { body(); done[i].signal() }
        }
        done[0].wait(); done[1].wait()
        writersDone.store(true, ordering: .relaxed)
        for d in done.dropFirst(2) { d.wait() }
        #expect(torn.load(ordering: .relaxed) == 0)
        #expect(backwards.load(ordering: .relaxed) == 0)
        #expect(read.load(ordering: .relaxed) > 0)
        #expect(latest.published.load(ordering: .relaxed) + latest.skipped.load(ordering: .relaxed) == Int(frames))
        // The newest frame is what a late reader gets.
        var bytes: [UInt8] = []
        #expect(latest.copyLatest(into: &bytes)?.seq ?? 0 >= frames - 2)
    }

    @Test func latestJPEGWithoutClientsCopiesNothing() {
        let latest = LatestJPEG()
        var byte: UInt8 = 7
        withUnsafeMutablePointer(to: &byte) { p in
            var iov = iovec(iov_base: p, iov_len: 1)
            latest.offer(&iov, count: 1, frame: .init(seq: 1, wallNs: 0, width: 1, height: 1, bytes: 0))
        }
        #expect(latest.published.load(ordering: .relaxed) == 0 && latest.skipped.load(ordering: .relaxed) == 0)
        var out: [UInt8] = []
        #expect(latest.copyLatest(into: &out) == nil)
    }

    @Test func frameEventsOverflowIsCounted() throws {
        let events = FrameEvents(capacity: 16, cameraNames: ["bow"])
        func event(_ seq: UInt64) -> FrameEvent {
            FrameEvent(kind: .stored, camera: 0, seq: seq, wallNs: 1_796_110_272_004_500_000 + Int64(seq) * 1000, bytes: 10,
                       width: 4, height: 4, hasFix: false, fix: GPSFix(latitude: 0, longitude: 0, mode: 0, receivedMonotonicNs: 0))
        }
        events.publish(event(0))
        #expect(events.next() == nil, "nothing is queued before a subscriber")
        events.subscribe()
        for seq in 0..<UInt64(100) { events.publish(event(seq)) }
        #expect(events.overflowed.load(ordering: .relaxed) == 100 - 16)
        var seqs: [UInt64] = []
        while let e = events.next() { seqs.append(e.seq) }
        #expect(seqs == Array(84..<100), "the newest stay")
        #expect(events.relativePath(of: event(42)) == "bow/2026/12/01/07/31/073112.004542_42")
        #expect(events.cameraName(events.cameraID(for: "old")) == "old" && events.cameraID(for: "bow") == 0)
    }

    @Test func frameEventsFromManyWritersAreAllAccountedFor() {
        let events = FrameEvents(capacity: 64, cameraNames: ["a"])
        events.subscribe()
        let taken = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        let consumerDone = MonotonicSemaphore()
        Thread.detachNewThread {
            while !stop.load(ordering: .relaxed) { if events.next() != nil { taken.add(1, ordering: .relaxed) } }
            while events.next() != nil { taken.add(1, ordering: .relaxed) }
            consumerDone.signal()
        }
        let producers = (0..<4).map { _ in MonotonicSemaphore() }
        for p in producers {
            Thread.detachNewThread {
                for seq in 0..<UInt64(5000) {
                    events.publish(FrameEvent(kind: .stored, camera: 0, seq: seq, wallNs: 0, bytes: 0, width: 0, height: 0,
                                              hasFix: false, fix: GPSFix(latitude: 0, longitude: 0, mode: 0, receivedMonotonicNs: 0)))
                }
                p.signal()
            }
        }
        producers.forEach { $0.wait() }
        stop.store(true, ordering: .relaxed)
        consumerDone.wait()
        #expect(taken.load(ordering: .relaxed) + events.overflowed.load(ordering: .relaxed) == 20_000)
    }

    @Test func recordingLayoutRoundTrip() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            // From 1970 to 2100, to the microsecond; seqs up to 2^63.
            let wallNs = Int64.random(in: 0..<4_102_444_800_000_000, using: &generator) * 1000
            let seq = UInt64.random(in: 0...UInt64(Int64.max), using: &generator)
            let path = RecordingLayout.framePath(camera: "cam-1", wallNs: wallNs, seq: seq)
            let parts = path.split(separator: "/").map(String.init)
            #expect(parts.count == 7 && parts[0] == "cam-1")
            let minute = RecordingLayout.unixMinute(year: Int(parts[1])!, month: Int(parts[2])!, day: Int(parts[3])!,
                                                    hour: Int(parts[4])!, minute: Int(parts[5])!)
            #expect(minute == RecordingLayout.unixMinute(wallNs: wallNs))
            #expect(RecordingLayout.minuteFolderPath(camera: "cam-1", minute: minute) == parts[..<6].joined(separator: "/"))
            for ext in [".jpg", ".json"] {
                let name = RecordingLayout.frameName(parts[6] + ext, hour: Int(parts[4])!, minute: Int(parts[5])!)
                #expect(name?.seq == seq && name?.isSidecar == (ext == ".json"))
                #expect(name.map { minute * 60_000_000_000 + $0.microsInMinute * 1000 } == wallNs)
            }
        }
    }

    /// The tap's grey copies: a box mean of luma (I420) or of BGR weighted as JPEG's Y.
    @Test func greyShrinkIsABoxMean() {
        // 6x4 luma, factor 2: each output pixel the rounded mean of its 2x2 block.
        let luma: [UInt8] = [0, 2, 10, 20, 100, 100,
                             4, 6, 30, 40, 100, 101,
                             255, 255, 1, 1, 7, 9,
                             255, 254, 1, 2, 8, 10]
        var out = [UInt8](repeating: 0, count: 6)
        rc_grey_shrink(luma, 6, 6, 4, 2, &out)
        #expect(out == [3, 25, 100, 255, 1, 9])
        // 2x2 BGR, factor 2: pure red, green, blue and white average to Y of their mean colour.
        let bgr: [UInt8] = [0, 0, 255, 0, 255, 0,
                            255, 0, 0, 255, 255, 255]
        var grey: [UInt8] = [0]
        rc_bgr_grey_shrink(bgr, 6, 2, 2, 2, &grey)
        // mean B = G = R = 127.5: Y = 127.5, rounded
        #expect(grey == [128])
        var red: [UInt8] = [0]
        rc_bgr_grey_shrink([0, 0, 255], 3, 1, 1, 1, &red)
        #expect(red == [76], "0.299 × 255")
    }
}
