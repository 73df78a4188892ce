import Foundation
import Logging
import Synchronization
import Testing
@testable import RingcapKit

/// The engine in the test process: started and stopped twice, recording switched off and on
/// while it runs, its status and its events, against the files it wrote.
@Suite struct EngineTests {
    private func config(_ out: URL, cameras: [CameraSpec]) -> RecordConfig {
        var c = RecordConfig(cameras: cameras, outDirectory: out.path, writers: 2)
        c.keepFree = .off
        return c
    }

    private func waitFor(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    @Test func startedAndStoppedTwiceSeqGoesOnAndRunChanges() throws {
        let out = try TestEnvironment.scratch("engine-twice")
        defer { try? FileManager.default.removeItem(at: out) }
        let log = LogRecorder()
        let engine = RecordingEngine(config: config(out, cameras: [CameraSpec(name: "a", source: .testPattern(width: 160, height: 120, fps: 50))]),
                                     logger: log.logger())
        #expect(engine.status().state == .idle)
        #expect(engine.waitUntilStopped() == nil)
        var summaries: [RecordingSummary] = []
        for _ in 0..<2 {
            try engine.start()
            #expect(engine.status().state == .running)
            #expect(waitFor(10) { engine.status().cameras[0].written >= 10 }, "\(log.transcript)")
            engine.requestStop()
            summaries.append(try #require(engine.waitUntilStopped()))
            #expect(engine.status().state == .stopped)
        }
        let recorded = try recordedFrames(in: out)
        let frames = try #require(recorded.frames["a"])
        #expect(recorded.strays.isEmpty)
        #expect(frames.count == summaries.reduce(0) { $0 + $1.totalWritten })
        // seq never repeats, and goes on across the two runs: 0..<n, nothing dropped at 50 fps.
        #expect(frames.map(\.seq) == Array(0..<frames.count))
        let runs = frames.map { $0.sidecar["run"] as? String ?? "" }
        #expect(Set(runs).count == 2)
        let firstRun = summaries[0].totalWritten
        #expect(Set(runs[..<firstRun]).count == 1 && Set(runs[firstRun...]).count == 1)
        #expect(runs[0] < runs[firstRun], "the second run starts later")
        for s in summaries {
            let c = s.cameras[0]
            #expect(c.captured == c.written + c.dropped + c.failed + c.paused)
            #expect(s.stopReason == "stop requested")
        }
    }

    @Test func recordingSwitchedOffAndOnAtRuntime() throws {
        let out = try TestEnvironment.scratch("engine-pause")
        defer { try? FileManager.default.removeItem(at: out) }
        let log = LogRecorder()
        let cameras = [CameraSpec(name: "p", source: .testPattern(width: 160, height: 120, fps: 50)),
                       CameraSpec(name: "q", source: .testPattern(width: 160, height: 120, fps: 50))]
        let engine = RecordingEngine(config: config(out, cameras: cameras), logger: log.logger())
        let p = try #require(engine.camera(named: "p"))
        #expect(engine.camera(named: "nope") == nil)
        try engine.start()
        #expect(waitFor(10) { engine.status().cameras[0].written >= 10 })
        p.setRecording(false)
        #expect(!p.isRecording)
        let writtenAtOff = engine.status().cameras[0].written
        #expect(waitFor(10) { engine.status().cameras[0].paused >= 20 })
        #expect(engine.status().cameras[0].recording == false)
        // Nothing more is stored while off (a frame or two in the ring when it was switched may be).
        #expect(engine.status().cameras[0].written <= writtenAtOff + 4)
        p.setRecording(true)
        let pausedAtOn = engine.status().cameras[0].paused
        #expect(waitFor(10) { engine.status().cameras[0].written >= writtenAtOff + 10 })
        engine.requestStop()
        let summary = try #require(engine.waitUntilStopped())
        let c = summary.cameras[0]
        #expect(c.captured == c.written + c.dropped + c.failed + c.paused)
        #expect(c.paused >= pausedAtOn && c.paused >= 20 && c.dropped == 0 && c.failed == 0)
        #expect(summary.cameras[1].paused == 0)

        let frames = try #require(recordedFrames(in: out).frames["p"]).map(\.seq)
        #expect(frames.count == c.written)
        // seq is continuous across the pause: the stored frames are 0..<captured less exactly the
        // paused ones, which form one gap.
        let missing = Set(0..<c.captured).subtracting(frames).sorted()
        #expect(missing.count == c.paused)
        #expect(missing.last! - missing.first! + 1 == missing.count, "one gap: \(missing.first!)...\(missing.last!)")
        #expect(frames.last! == c.captured - 1)
    }

    @Test func statusAndEventsMatchTheFiles() throws {
        let out = try TestEnvironment.scratch("engine-events")
        defer { try? FileManager.default.removeItem(at: out) }
        let log = LogRecorder()
        var cfg = config(out, cameras: [CameraSpec(name: "e", source: .testPattern(width: 320, height: 240, fps: 30))])
        cfg.framesPerCamera = 30
        cfg.gps = .fixed(latitude: 54.3233, longitude: 10.1228, altitudeM: 5)
        let gps = GPSSnapshot()
        gps.publish(GPSFix(latitude: 54.3233, longitude: 10.1228, altitudeM: 5, mode: 3, receivedMonotonicNs: Clock.monotonicNs()))
        let engine = RecordingEngine(config: cfg, gps: gps, logger: log.logger())
        engine.frameEvents.subscribe()
        let tap = try #require(engine.camera(named: "e")).pixelTap
        tap.subscribe()
        try engine.start()
        #expect(waitFor(10) { engine.status().cameras[0].written >= 5 })
        let status = engine.status()
        #expect(status.cameras[0].state == "streaming")
        #expect(status.cameras[0].latencyMs != nil && status.cameras[0].lastFrameWallNs != nil)
        #expect(status.gps?.mode == 3 && status.ringCapacity > 0)
        let summary = try #require(engine.waitUntilStopped())
        #expect(summary.stopReason == "all cameras finished" && summary.totalWritten == 30)

        var stored: [String] = []
        while let event = engine.frameEvents.next() {
            #expect(event.kind == .stored && event.width == 320 && event.hasFix)
            stored.append(engine.frameEvents.relativePath(of: event))
        }
        #expect(engine.frameEvents.overflowed.load(ordering: .relaxed) == 0)
        let files = try #require(recordedFrames(in: out).frames["e"]).map {
            String($0.json.dropFirst(out.path.count + 1).dropLast(5))
        }
        #expect(stored.sorted() == files.sorted())

        // The tap got shrunk grey copies: 320 wide is within its 320, factor 1.
        var copies = 0
        while let frame = tap.next() {
            #expect(frame.width == 320 && frame.height == 240 && frame.factor == 1)
            let pixels = tap.pixels(of: frame)
            #expect(pixels.count == 320 * 240 && pixels.contains { $0 != pixels[0] }, "a pattern, not a flat plane")
            tap.release(frame)
            copies += 1
        }
        #expect(copies > 0 && copies <= tap.slotCount)
        #expect(tap.offered.load(ordering: .relaxed) == 30)
        #expect(tap.offered.load(ordering: .relaxed) - tap.dropped.load(ordering: .relaxed) == copies)
    }

    /// A new process recording into the same folder goes on from the highest seq stored there
    /// (in the newest minute folder), with a run of its own; other cameras start at 0.
    @Test func restartIntoTheSameFolderContinuesSeq() throws {
        let out = try TestEnvironment.scratch("restart")
        defer { try? FileManager.default.removeItem(at: out) }
        for (i, cameras) in [["a=test:160x120@30"], ["a=test:160x120@30", "b=test:160x120@30"]].enumerated() {
            let result = try runRingcap(["record"] + cameras.flatMap { ["--camera", $0] } + ["--out", out.path, "--frames", "5", "--gps", "none",
                                                                                  "--keep-free", "0"])
            #expect(result.status == 0, "run \(i): \(result.stderr)")
        }
        let frames = try recordedFrames(in: out).frames
        let a = try #require(frames["a"]), b = try #require(frames["b"])
        #expect(a.map(\.seq) == Array(0..<10))
        #expect(b.map(\.seq) == Array(0..<5))
        let runs = a.map { $0.sidecar["run"] as? String ?? "" }
        #expect(Set(runs[..<5]).count == 1 && Set(runs[5...]).count == 1 && runs[0] != runs[5])
        #expect(b.allSatisfy { $0.sidecar["run"] as? String == runs[5] })
        try expectSidecarsValid(a.map(\.json) + b.map(\.json))
    }

    /// A run that paused with a viewer watching, then a new run: seq goes on from where the
    /// engine got to (not from the stored frames), and the viewer keeps getting new frames.
    /// Two threads waiting for one run both get its summary.
    @Test func restartAfterAPauseKeepsSeqAndTheViewerGoing() throws {
        let out = try TestEnvironment.scratch("engine-viewer")
        defer { try? FileManager.default.removeItem(at: out) }
        let log = LogRecorder()
        let engine = RecordingEngine(config: config(out, cameras: [CameraSpec(name: "v", source: .testPattern(width: 160, height: 120, fps: 50))]),
                                     logger: log.logger())
        let v = try #require(engine.camera(named: "v"))
        v.latestJPEG.addClient()
        try engine.start()
        #expect(waitFor(10) { engine.status().cameras[0].written >= 5 })
        v.setRecording(false)
        #expect(waitFor(10) { engine.status().cameras[0].paused >= 20 })
        var bytes: [UInt8] = []
        let seenPaused = try #require(v.latestJPEG.copyLatest(into: &bytes)).seq
        #expect(bytes.starts(with: [0xFF, 0xD8]) && bytes.suffix(2) == [0xFF, 0xD9], "a whole JPEG")
        let waiters = (0..<2).map { _ in MonotonicSemaphore() }
        let summaries = Mutex<[RecordingSummary?]>([])
        for w in waiters {
            Thread.detachNewThread {
                let s = engine.waitUntilStopped()
                summaries.withLock { $0.append(s) }
                w.signal()
            }
        }
        engine.requestStop()
        for w in waiters { #expect(w.wait(timeoutNs: 20_000_000_000)) }
        let first = try #require(engine.waitUntilStopped())
        #expect(summaries.withLock { $0.count == 2 && $0.allSatisfy { $0?.totalCaptured == first.totalCaptured } })

        v.setRecording(true)
        try engine.start()
        #expect(waitFor(10) { engine.status().cameras[0].written >= 5 })
        let shown = try #require(v.latestJPEG.copyLatest(into: &bytes)).seq
        #expect(shown > seenPaused, "the viewer sees the new run's frames")
        engine.requestStop()
        _ = engine.waitUntilStopped()
        let seqs = try #require(recordedFrames(in: out).frames["v"]).map(\.seq)
        #expect(Set(seqs).count == seqs.count)
        let secondRunFirst = try #require(seqs.first { $0 >= first.cameras[0].captured })
        #expect(secondRunFirst == first.cameras[0].captured, "on from the last captured frame, paused ones included")
    }

    /// The mark a stop leaves in OUT/.ringcap wins when it is higher than the stored frames (a
    /// clock that went back put newer frames in older-named folders), and loses when lower.
    @Test func theSeqMarkAndTheStoredFramesTakeTheHigher() throws {
        let out = try TestEnvironment.scratch("seqmark")
        defer { try? FileManager.default.removeItem(at: out) }
        func record() throws {
            let r = try runRingcap(["record", "--camera", "m=test:160x120@30", "--out", out.path, "--frames", "3", "--gps", "none", "--keep-free", "0"])
            #expect(r.status == 0, "\(r.stderr)")
        }
        try record()
        #expect(RecordingLayout.readSeqMark(out: out.path, camera: "m") == 3)
        RecordingLayout.writeSeqMark(500, out: out.path, camera: "m")
        try record()
        RecordingLayout.writeSeqMark(1, out: out.path, camera: "m")
        try record()
        let seqs = try #require(recordedFrames(in: out).frames["m"]).map(\.seq)
        #expect(seqs == [0, 1, 2, 500, 501, 502, 503, 504, 505])
    }

    /// Retention's deletions reach FrameEvents too: every frame deleted is an event whose path is
    /// gone from the disk, every frame left was stored and not deleted.
    @Test func retentionDeletionsAreEvents() throws {
        let out = try TestEnvironment.scratch("engine-deleted")
        defer { try? FileManager.default.removeItem(at: out) }
        let log = LogRecorder()
        var cfg = config(out, cameras: [CameraSpec(name: "d", source: .testPattern(width: 320, height: 240, fps: 30))])
        cfg.maxSizeBytes = 150_000
        cfg.durationSeconds = 3.5
        let engine = RecordingEngine(config: cfg, logger: log.logger())
        engine.frameEvents.subscribe()
        try engine.start()
        let summary = try #require(engine.waitUntilStopped())
        var stored = Set<String>(), deleted = Set<String>()
        while let event = engine.frameEvents.next() {
            switch event.kind {
            case .stored: stored.insert(engine.frameEvents.relativePath(of: event))
            case .frameDeleted: deleted.insert(engine.frameEvents.relativePath(of: event))
            case .minuteDeleted: Issue.record("no minute folder closes in 3.5 s")
            }
        }
        #expect(engine.frameEvents.overflowed.load(ordering: .relaxed) == 0)
        #expect(stored.count == summary.totalWritten)
        #expect(!deleted.isEmpty && deleted.isSubset(of: stored), "\(log.transcript)")
        #expect(deleted.count * 2 == summary.retention.deletedFiles)
        let left = Set(try #require(recordedFrames(in: out).frames["d"]).map { String($0.json.dropFirst(out.path.count + 1).dropLast(5)) })
        #expect(left == stored.subtracting(deleted))
    }
}
