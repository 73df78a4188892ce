import Foundation
import Testing
@testable import RingcapKit
import COpenCV
import RingBuffer
#if canImport(Glibc)
import Glibc
#endif

// Issue 11: what a careless or hostile user, or months at sea, did to ringcap. Each test
// reproduces one finding with the real thing (a stream that really changes resolution, real
// symlinks, a real second process, a real closed pipe, a real signal, a real full file system)
// and checks what ringcap does now.

private let runningAsRoot = getuid() == 0

/// An MPEG-TS H.264 segment of the bar-code video, frames showing `offset`..<`offset + count`.
private func makeBarcodeSegment(_ path: String, count: Int, offset: Int, width: Int, height: Int) throws {
    let band = width / 8
    let filter = "nullsrc=s=\(width)x\(height):r=25,format=gray,geq=lum='if(mod(floor((N+\(offset))/pow(2\\,floor(X/\(band))))\\,2)\\,235\\,16)'"
    let result = try runCommand("/usr/bin/ffmpeg", ["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", filter,
                                                    "-frames:v", "\(count)", "-c:v", "libx264", "-preset", "veryfast",
                                                    "-pix_fmt", "yuv420p", "-f", "mpegts", path])
    try #require(result.status == 0, "ffmpeg failed: \(result.stderr)")
}

/// An HTTP MJPEG camera (Tests/Support/mjpeg_server.py) at 20 frames/s on a free loopback port,
/// cycling through bar-code JPEGs made for it: `parts` are (prefix, count, first code, width,
/// height), served in that order. With `garbage`, every part is random bytes instead.
private func startMJPEGCamera(in dir: URL, parts: [(String, Int, Int, Int, Int)], garbage: Bool = false) async throws -> (TestProcess, UInt16) {
    let frameDir = dir.appendingPathComponent("frames")
    try FileManager.default.createDirectory(at: frameDir, withIntermediateDirectories: true)
    for (prefix, count, offset, width, height) in parts {
        try makeBarcodeJPEGs(in: frameDir, prefix: prefix, count: count, offset: offset, width: width, height: height)
    }
    let port = freeLoopbackPort()
    let server = try await startServer("mjpeg_server.py", ["\(port)", frameDir.path, "20"] + (garbage ? ["--garbage"] : []),
                                       log: dir.appendingPathComponent("server.log").path)
    return (server, port)
}

/// Runs a shell script (bash) to its end.
@discardableResult
private func runShell(_ script: String, timeout: Double = 120) async throws -> CommandResult {
    try await runCommandAsync("/bin/bash", ["-c", script], timeout: timeout)
}

private func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

@Suite(.serialized)
struct HardeningTests {
    // MARK: 1. Resolution changes

    /// An H.264 stream that goes 320x240 -> 640x480 -> 320x240: every frame is stored at its own
    /// size, is the frame it claims to be (its bar code), and the sidecar says its true size.
    /// Through OpenCV, the 20 large frames were pixel copies of the last small one.
    @Test func h264ResolutionChangeStoresEveryFrameAtItsOwnSize() async throws {
        let dir = try TestEnvironment.scratch("resize-h264")
        defer { try? FileManager.default.removeItem(at: dir) }
        let parts = [(320, 240, 0), (640, 480, 20), (320, 240, 40)]
        var data = Data()
        for (i, (w, h, offset)) in parts.enumerated() {
            let seg = dir.appendingPathComponent("seg\(i).ts").path
            try makeBarcodeSegment(seg, count: 20, offset: offset, width: w, height: h)
            data.append(try Data(contentsOf: URL(fileURLWithPath: seg)))
        }
        let video = dir.appendingPathComponent("changing.ts")
        try data.write(to: video)
        let out = dir.appendingPathComponent("out"), stats = dir.appendingPathComponent("stats.json")
        let result = try await runRingcapAsync(["record", "--camera", "cam=\(video.path)", "--out", out.path, "--gps", "none",
                                     "--stats-json", stats.path])
        #expect(result.status == 0, "\(result.stderr)")
        let frames = try recordedFrames(in: out).frames["cam"] ?? []
        #expect(frames.count == 60, "\(frames.count) frames stored: \(result.stderr)")
        for frame in frames {
            let expected = frame.seq < 20 || frame.seq >= 40 ? (320, 240) : (640, 480)
            let probe = try #require(probeImage(frame.jpg))
            #expect(frame.sidecar["width"] as? Int == expected.0 && frame.sidecar["height"] as? Int == expected.1,
                    "frame \(frame.seq): sidecar says \(frame.sidecar["width"] ?? "?")x\(frame.sidecar["height"] ?? "?")")
            #expect(probe.width == expected.0 && probe.height == expected.1, "frame \(frame.seq) is \(probe.width)x\(probe.height)")
            #expect(probe.code == frame.seq, "frame \(frame.seq) shows frame \(String(describing: probe.code))")
        }
        // Logged once per change, with both sizes.
        #expect(result.stderr.components(separatedBy: "frame size changed from 320x240 to 640x480").count == 2, "\(result.stderr)")
        #expect(result.stderr.components(separatedBy: "frame size changed from 640x480 to 320x240").count == 2, "\(result.stderr)")
        let (_, cameras) = try readStats(stats)
        expectEveryFrameAccountedFor(cameras)
        #expect(cameras["cam"]?["failed"] as? Int == 0)
    }

    /// An HTTP MJPEG camera whose frames go 320x240 -> 640x480 and back: the large ones are
    /// stored large, each the camera's own frame.
    @Test func mjpegStreamResolutionChange() async throws {
        let dir = try TestEnvironment.scratch("resize-mjpeg")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (server, port) = try await startMJPEGCamera(in: dir, parts: [("a", 10, 0, 320, 240), ("b", 10, 100, 640, 480)])
        defer { server.stop() }
        let out = dir.appendingPathComponent("out")
        let result = try await runRingcapAsync(["record", "--camera", "cam=http://127.0.0.1:\(port)/video.mjpg", "--out", out.path,
                                     "--gps", "none", "--frames", "40"], timeout: 60)
        #expect(result.status == 0, "\(result.stderr)")
        let frames = try recordedFrames(in: out).frames["cam"] ?? []
        #expect(frames.count == 40)
        var sizes = Set<Int>()
        for frame in frames {
            let probe = try #require(probeImage(frame.jpg))
            let w = frame.sidecar["width"] as? Int ?? 0, h = frame.sidecar["height"] as? Int ?? 0
            #expect(probe.width == w && probe.height == h, "frame \(frame.seq): stored \(probe.width)x\(probe.height), sidecar \(w)x\(h)")
            let code = try #require(probe.code, "frame \(frame.seq) has no bar code")
            // Codes 0-9 are the small frames, 100-109 the large: a frame is what its size says.
            #expect(w == 320 ? code < 10 : (code >= 100 && code < 110), "frame \(frame.seq): \(w)x\(h) showing \(code)")
            sizes.insert(w)
        }
        #expect(sizes == [320, 640], "sizes stored: \(sizes)")
    }

    // MARK: 2. A sidecar longer than its buffer

    /// A source URL of 5,000 characters: every sidecar is whole, valid JSON naming the source.
    @Test func longSourceURLGivesWholeSidecars() async throws {
        let dir = try TestEnvironment.scratch("long-url")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (server, port) = try await startMJPEGCamera(in: dir, parts: [("a", 5, 0, 320, 240)])
        defer { server.stop() }
        // Quotes and backslashes grow when escaped into JSON; FFmpeg sends a request line of this
        // length as it is (much longer, or with characters it percent-encodes, it gives up).
        let url = "http://127.0.0.1:\(port)/video.mjpg?token=" + String(repeating: "a", count: 5000) + String(repeating: "\"\\", count: 20)
        #expect(url.count > 5000)
        let out = dir.appendingPathComponent("out")
        let result = try await runRingcapAsync(["record", "--camera", "cam=\(url)", "--out", out.path, "--gps", "none", "--frames", "10"], timeout: 60)
        #expect(result.status == 0, "\(result.stderr.prefix(2000))")
        let frames = try recordedFrames(in: out).frames["cam"] ?? []  // parses every sidecar
        #expect(frames.count == 10)
        for frame in frames { #expect(frame.sidecar["source"] as? String == url) }
        try expectSidecarsValid(frames.map(\.json))
    }

    // MARK: 3. A clock that stands still

    /// Two runs of the real writer into one folder with the wall clock reading the same at the
    /// grab (a frozen or repeated clock) and the same seq: the second run's frame has the first
    /// run's name. It must not replace the stored frame: counted failed, logged, and the stored
    /// files are byte for byte what they were. (rename(2) replaced them.)
    @Test func sameClockReadingNeverReplacesAStoredFrame() async throws {
        let dir = try TestEnvironment.scratch("frozen")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.path
        let frozenNs: Int64 = 1_767_225_600_000_000_000  // 2026-01-01T00:00:00Z, every time
        func storeOneFrame(quality: Int) throws -> (counters: CameraCounters, log: String) {
            let ring = DropOldestRing<FrameToken>(capacity: 8)
            let pool = FramePool(slotCount: 4)
            let channel = CameraChannel(index: 0, name: "cam", recording: true)
            let counters = channel.counters
            let log = LogRecorder()
            let camera = WriterCamera(pool: pool, channel: channel, quality: quality,
                                      sidecarHead: WriterCamera.sidecarHead(name: "cam", source: "test:64x48@30",
                                                                            run: "2026-01-01T00:00:00.000000Z"),
                                      folder: Array((out + "/cam/").utf8), name: "cam")
            let done = OnceFlag()
            done.set()
            let writer = try FrameWriter(index: 0, cameras: [camera], ring: ring, framesReady: Doorbell(), spaceReady: Doorbell(),
                                         producersDone: done, fsync: false,
                                         gps: WriterGPS(maxAgeNs: 5_000_000_000, source: GPSSourceJSON("none")),
                                         ledger: StoreLedger(cameras: 1, maxBytes: nil),
                                         temporarySuffix: RecordingLayout.temporarySuffix(runToken: UInt32.random(in: 0...UInt32.max)),
                                         logger: log.logger())
            let slot = try #require(pool.acquire())
            let pattern = try TestPattern(width: 64, height: 48)
            pattern.render(into: try #require(pool.buffer(slot, atLeast: 64 * 48 * 3)), stride: 64 * 3, frame: 0, wallNs: frozenNs)
            pool.meta[Int(slot)] = FrameMeta(seq: 0, wallNs: frozenNs, monotonicNs: Clock.monotonicNs(), width: 64, height: 48,
                                             stride: 64 * 3, ringDepth: 0, droppedSoFar: 0, hasFix: false,
                                             fix: GPSFix(latitude: 0, longitude: 0, mode: 0, receivedMonotonicNs: 0))
            counters.captured.add(1, ordering: .relaxed)
            #expect(ring.push(FrameToken(camera: 0, slot: slot)) == nil)
            writer.run()  // stores what is in the ring, then returns (producers are done)
            return (counters, log.transcript)
        }
        let first = try storeOneFrame(quality: 90)
        #expect(first.counters.written.load(ordering: .relaxed) == 1, "\(first.log)")
        let stored = filesUnder(out)
        #expect(stored.keys.sorted() == ["cam/2026/01/01/00/00/000000.000000_0.jpg", "cam/2026/01/01/00/00/000000.000000_0.json"])
        let bytes = try stored.keys.sorted().map { try Data(contentsOf: URL(fileURLWithPath: out + "/" + $0)) }

        let second = try storeOneFrame(quality: 20)  // another JPEG under the same name
        #expect(second.counters.written.load(ordering: .relaxed) == 0)
        #expect(second.counters.failed.load(ordering: .relaxed) == 1)
        #expect(second.log.contains("not replacing the stored frame") && second.log.contains("already stored"), "\(second.log)")
        #expect(filesUnder(out) == stored, "files changed or a temporary was left: \(filesUnder(out).keys.sorted())")
        let bytesAfter = try stored.keys.sorted().map { try Data(contentsOf: URL(fileURLWithPath: out + "/" + $0)) }
        #expect(bytesAfter == bytes, "a stored frame was replaced")
    }

    /// `rc_rename_noreplace` itself: refuses an existing name with EEXIST and leaves both files.
    @Test func renameNeverReplaces() async throws {
        let dir = try TestEnvironment.scratch("noreplace")
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = dir.appendingPathComponent("a").path, b = dir.appendingPathComponent("b").path
        try Data("A".utf8).write(to: URL(fileURLWithPath: a))
        try Data("B".utf8).write(to: URL(fileURLWithPath: b))
        #expect(rc_rename_noreplace(a, b) == EEXIST)
        #expect(try String(contentsOfFile: b, encoding: .utf8) == "B")
        #expect(FileManager.default.fileExists(atPath: a))
        let c = dir.appendingPathComponent("c").path
        #expect(rc_rename_noreplace(a, c) == 0)
        #expect(try String(contentsOfFile: c, encoding: .utf8) == "A" && !FileManager.default.fileExists(atPath: a))
    }

    // MARK: 4. Retention never leaves --out

    /// Links out of --out (`OUT/ext -> elsewhere`, `OUT/cam0/2018 -> elsewhere2`), each full of
    /// ringcap-named frames: retention under a tiny --max-size deletes none of them, nor the
    /// folders there, and deletes the old frames that really are under --out.
    @Test func retentionDoesNotFollowSymlinks() async throws {
        let dir = try TestEnvironment.scratch("symlinks")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path
        let elsewhere = dir.appendingPathComponent("elsewhere").path
        let elsewhere2 = dir.appendingPathComponent("elsewhere2").path
        let fm = FileManager.default
        func plantFrames(_ folder: String) throws {
            try fm.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for i in 0..<3 {
                let stem = folder + "/0000\(i)0.000000_\(i)"
                try Data(repeating: 0xFF, count: 20_000).write(to: URL(fileURLWithPath: stem + ".jpg"))
                try Data("{}".utf8).write(to: URL(fileURLWithPath: stem + ".json"))
            }
        }
        // A camera-shaped tree behind each link, with frames of 2018 (older than anything).
        try plantFrames(elsewhere + "/2018/01/01/00/00")
        try plantFrames(elsewhere2 + "/01/01/00/00")
        try fm.createDirectory(atPath: out + "/cam0", withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: out + "/ext", withDestinationPath: elsewhere)
        try fm.createSymbolicLink(atPath: out + "/cam0/2018", withDestinationPath: elsewhere2)
        // And real old frames under --out, which may go.
        try plantFrames(out + "/cam0/2019/01/01/00/00")
        let outside = filesUnder(elsewhere).merging(filesUnder(elsewhere2).mapKeys { "2:" + $0 }) { a, _ in a }
        #expect(outside.count == 12)

        let result = try await runRingcapAsync(["record", "--camera", "cam0=test:320x240@10", "--duration", "3", "--out", out,
                                     "--gps", "none", "--max-size", "200KB", "--keep-free", "0"])
        #expect(result.status == 0, "\(result.stderr)")
        let outsideAfter = filesUnder(elsewhere).merging(filesUnder(elsewhere2).mapKeys { "2:" + $0 }) { a, _ in a }
        #expect(outsideAfter == outside, "retention deleted outside --out: \(Set(outside.keys).subtracting(outsideAfter.keys).sorted())")
        #expect(fm.fileExists(atPath: elsewhere + "/2018/01/01/00/00"))
        #expect(fm.fileExists(atPath: elsewhere2 + "/01/01/00/00"))
        var st = stat()
        #expect(lstat(out + "/ext", &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK, "the link OUT/ext is gone")
        #expect(lstat(out + "/cam0/2018", &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK, "the link OUT/cam0/2018 is gone")
        #expect(!fm.fileExists(atPath: out + "/cam0/2019"), "the real old frames under --out were not deleted")
    }

    // MARK: 5. Two recorders in one folder

    /// A second `ringcap record` into a folder another one records into exits 75 naming the
    /// first one's PID, and deletes nothing of it.
    @Test func secondRecorderIntoTheSameFolderExits75() async throws {
        let dir = try TestEnvironment.scratch("lock")
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = try LiveRecording(["--camera", "cam=test:320x240@10"], in: dir)
        #expect(try await first.waitForFrames("cam", count: 5, timeout: 30))
        let before = Set(first.frameTimes("cam"))
        let second = try await runRingcapAsync(["record", "--camera", "cam=test:320x240@10", "--out", first.out.path, "--gps", "none",
                                     "--max-size", "200KB", "--duration", "2"])
        #expect(second.status == 75, "exit \(second.status): \(second.stderr)")
        #expect(second.stderr.contains("PID \(first.process.pid)"), "\(second.stderr)")
        let missing = before.subtracting(first.frameTimes("cam"))
        #expect(missing.isEmpty, "the second recorder deleted \(missing.count) frame(s)")
        let stop = first.terminate()
        #expect(stop.status == 0)
        // Once the first has stopped, the folder is free again.
        let third = try await runRingcapAsync(["record", "--camera", "cam=test:320x240@10", "--out", first.out.path, "--gps", "none", "--frames", "3"])
        #expect(third.status == 0, "\(third.stderr)")
    }

    // MARK: 6. Numbers that used to trap

    /// Each of these trapped (SIGILL) or was read as another number; now each is refused with
    /// exit 64 and a message naming the flag and the value, before anything is recorded.
    @Test(arguments: [
        (["--fps", "1e-300"], "--fps"), (["--fps", "1e-10"], "--fps"), (["--fps", "0x10"], "--fps"),
        (["--fps", "inf"], "--fps"), (["--fps", "nan"], "--fps"),
        (["--duration", "19000000000"], "--duration"), (["--duration", "1e400"], "--duration"),
        (["--camera", "x=test:640x480@1e-300"], "test:640x480@1e-300"),
        (["--read-timeout", "0x10"], "--read-timeout"),
        (["--gps", "fixed:0x10,5"], "0x10"),
    ])
    func badNumbersAreRefusedNotTrapped(arguments: [String], named: String) async throws {
        let dir = try TestEnvironment.scratch("numbers")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cameras = arguments.contains("--camera") ? [] : ["--camera", "test:320x240@10"]
        let result = try await runRingcapAsync(["record", "--out", dir.appendingPathComponent("out").path, "--gps", "none"] + cameras + arguments
                                    + ["--frames", "1"], timeout: 30)
        #expect(result.status == 64, "\(arguments): exit \(result.status): \(result.stderr)")
        #expect(result.stderr.contains(named) && result.stderr.contains(arguments.last!), "\(arguments): \(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("out/x").path))
    }

    @Test func decimalNumbersAreReadAsPeopleWriteThem() {
        for (text, value) in [("30", 30.0), ("2.5", 2.5), (".5", 0.5), ("5.", 5.0), ("1e3", 1000), ("-22.95", -22.95), ("+4", 4)] {
            #expect(DecimalNumber.parse(text) == value, "\(text)")
        }
        for text in ["", "0x10", "inf", "nan", "1e", "e5", ".", "1..2", "1e400", " 5", "5 ", "1,5", "0x1p4", "--1"] {
            #expect(DecimalNumber.parse(text) == nil, "\(text) was accepted")
        }
    }

    // MARK: 7. A frame pool the machine cannot hold

    /// `--ring 1048576` with 1920x1080 frames aborted after recording began; now exit 64 at start,
    /// naming the figure and what to lower.
    @Test func ringTooLargeForMemoryIsRefusedAtStart() async throws {
        let dir = try TestEnvironment.scratch("pool")
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try await runRingcapAsync(["record", "--camera", "test:1920x1080@1000", "--ring", "1048576", "--out",
                                     dir.appendingPathComponent("out").path, "--gps", "none", "--duration", "5"], timeout: 30)
        #expect(result.status == 64, "exit \(result.status): \(result.stderr)")
        #expect(result.stderr.contains("--ring '1048576'") && result.stderr.contains("memory") && result.stderr.contains("lower --ring"),
                "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("out/cam0").path), "recording began")
    }

    /// The default ring is lowered to fit a quarter of memory, and the plan says so; sources of
    /// unknown size count as 1920x1080; an explicit ring that fits is kept.
    @Test func defaultRingIsCappedByMemory() async throws {
        let fourK = (0..<4).map { CameraSpec(name: "c\($0)", source: .testPattern(width: 3840, height: 2160, fps: 30)) }
        var config = RecordConfig(cameras: fourK, writers: 2)
        let gib: UInt64 = 1 << 30
        // 240 frames wanted -> 256; 263 frames of 24.9 MB = 6.5 GB > 8 GiB / 4: halved to 64.
        let plan = try config.ringPlan(memoryBytes: 8 * gib)
        #expect(plan.capacity == 64)
        #expect(plan.note?.contains("lowered from 256 to 64") == true, "\(plan.note ?? "no note")")
        #expect(try config.ringPlan(memoryBytes: 64 * gib) == RingPlan(capacity: 256, note: nil))
        config.ringCapacity = 32
        #expect(try config.ringPlan(memoryBytes: 8 * gib).capacity == 32)
        // Unknown sizes count as 1920x1080 (6.2 MB): 60 fps of streams wants 120 -> 128 frames.
        let streams = RecordConfig(cameras: [CameraSpec(name: "a", source: .stream(url: "rtsp://127.0.0.1/a")),
                                             CameraSpec(name: "b", source: .stream(url: "rtsp://127.0.0.1/b"))], writers: 2)
        let small = try streams.ringPlan(memoryBytes: gib)
        #expect(small.capacity == 32, "\(small)")  // 37 frames x 6.2 MB = 230 MB <= 256 MB
        #expect(small.note?.contains("1920x1080") == true)
        // Even the smallest ring does not fit: refused, naming the size.
        let huge = RecordConfig(cameras: fourK, writers: 2)
        #expect(throws: ConfigError.self) { try huge.ringPlan(memoryBytes: 256 << 20) }
    }

    // MARK: 8. A closed stderr

    /// `ringcap record … 2>&1 | head -1`: once head has gone, ringcap's next log lines meet a
    /// closed pipe. It keeps recording, drains, writes its stats and exits 0.
    @Test func closedStderrDoesNotKillTheRecorder() async throws {
        let dir = try TestEnvironment.scratch("pipe")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path, stats = dir.appendingPathComponent("stats.json").path
        let status = dir.appendingPathComponent("status").path
        let script = "\(quoted(TestEnvironment.ringcapBinary.path)) record --camera cam=test:320x240@20 --duration 3 --out \(quoted(out)) "
            + "--gps none --stats-json \(quoted(stats)) --log-level debug 2>&1 | head -1 > /dev/null; echo ${PIPESTATUS[0]} > \(quoted(status))"
        let result = try await runShell(script, timeout: 60)
        #expect(result.status == 0)
        let code = (try? String(contentsOfFile: status, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(code == "0", "ringcap exited \(code ?? "?") (141 is SIGPIPE)")
        let (root, cameras) = try readStats(URL(fileURLWithPath: stats))
        #expect(root["stop_reason"] as? String == "duration reached")
        // Frames kept coming after head had gone (it left at the first line): they span the run.
        let frames = try recordedFrames(in: URL(fileURLWithPath: out)).frames["cam"] ?? []
        let times = frames.compactMap { ($0.sidecar["time"] as? String).flatMap(parseSidecarTime) }
        #expect((times.max() ?? 0) - (times.min() ?? 0) > 2, "frames span \((times.max() ?? 0) - (times.min() ?? 0)) s of a 3 s run")
        #expect(cameras["cam"]?["written"] as? Int == frames.count)
        expectEveryFrameAccountedFor(cameras)
    }

    // MARK: 9. SIGHUP

    /// SIGHUP stops like SIGTERM: drain, stats, exit 0 (it used to kill at once, exit 129).
    @Test func sighupStopsGracefully() async throws {
        let dir = try TestEnvironment.scratch("sighup")
        defer { try? FileManager.default.removeItem(at: dir) }
        let recording = try LiveRecording(["--camera", "cam=test:320x240@20"], in: dir)
        #expect(try await recording.waitForFrames("cam", count: 10, timeout: 30))
        recording.signal(SIGHUP)
        let status = recording.process.wait(timeout: 30)
        #expect(status == 0, "exit \(String(describing: status)): \(recording.stderr)")
        let (root, cameras) = try readStats(recording.stats)
        #expect(root["stop_reason"] as? String == "signal")
        expectEveryFrameAccountedFor(cameras)
        #expect(cameras["cam"]?["written"] as? Int == recording.frameCount("cam"))
    }

    // MARK: 10. Start-up does not walk --out first

    /// 40,000 temporaries left in old minute folders: the first frame is stored before any is
    /// removed (the walk runs beside the recording, once it has stored a frame), and by the end
    /// they are all gone; this run's own frames are all written.
    @Test func startupCleanupRunsBesideTheRecording() async throws {
        let dir = try TestEnvironment.scratch("startup")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path
        let leftovers = 40_000
        for folder in 0..<200 {
            let path = out + String(format: "/cam/2020/01/01/%02d/%02d", folder / 60, folder % 60)
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            for i in 0..<(leftovers / 200) {
                let fd = open(path + String(format: "/%02d%02d00.000000_%d.jpg.0000abcd.rctmp", folder % 60, i % 60, i), O_WRONLY | O_CREAT, 0o644)
                close(fd)
            }
        }
        func remaining() -> Int { SignalTests.temporaries(in: URL(fileURLWithPath: out)).count }
        let recording = try LiveRecording(["--camera", "cam=test:320x240@20", "--keep-free", "0"], in: dir, out: URL(fileURLWithPath: out))
        var leftAtFirstFrame = -1
        _ = try await waitUntil(timeout: 30) {
            if recording.frameCount("cam") > 0 { leftAtFirstFrame = remaining(); return true }
            return false
        }
        #expect(leftAtFirstFrame > 0, "all \(leftovers) temporaries were removed before the first frame was stored")
        #expect(try await waitUntil(timeout: 60) { remaining() == 0 }, "\(remaining()) temporaries left")
        let stop = recording.terminate()
        #expect(stop.status == 0)
        #expect(recording.stderr.contains("removed \(leftovers) temporary file(s)"), "\(recording.stderr)")
        let (_, cameras) = try readStats(recording.stats)
        #expect(cameras["cam"]?["failed"] as? Int == 0)
        expectEveryFrameAccountedFor(cameras)
    }

    // MARK: 11. Timed waits on the monotonic clock

    /// Every timed wait ringcap makes measures CLOCK_MONOTONIC, so a wall-clock step cannot
    /// stretch or cut it: under strace, no futex wait of the recorder carries FUTEX_CLOCK_REALTIME
    /// (what sem_timedwait, DispatchSemaphore's timed wait and NSCondition.wait(until:) use), while
    /// the recorder's threads did wait (writers, retention, a camera in backoff, the GPS reader).
    @Test func timedWaitsUseTheMonotonicClock() async throws {
        let dir = try TestEnvironment.scratch("monotonic")
        defer { try? FileManager.default.removeItem(at: dir) }
        let trace = dir.appendingPathComponent("trace").path
        let deadPort = freeLoopbackPort()
        let result = try await runCommandAsync("/usr/bin/strace", ["-f", "-e", "trace=futex", "-o", trace, TestEnvironment.ringcapBinary.path,
                                                        "record", "--camera", "cam=test:320x240@10", "--camera", "gone=rtsp://127.0.0.1:\(deadPort)/x",
                                                        "--duration", "4", "--out", dir.appendingPathComponent("out").path,
                                                        "--gps", "gpsd://127.0.0.1:\(deadPort)", "--max-size", "1GB"], timeout: 60)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n")
        let timedWaits = lines.filter { $0.contains("FUTEX_WAIT_BITSET") && !$0.contains("NULL, FUTEX_BITSET_MATCH_ANY") }
        let realtime = timedWaits.filter { $0.contains("FUTEX_CLOCK_REALTIME") }
        #expect(timedWaits.count > 10, "the recorder made only \(timedWaits.count) timed waits: is strace seeing it?")
        #expect(realtime.isEmpty, "\(realtime.count) timed waits on the wall clock, e.g. \(realtime.prefix(3))")
    }

    // MARK: 12. Errors that misled

    /// File cameras that meet EMFILE: the message says "too many open files" with the limit, and
    /// the cameras are retried, not given up for good: once others finished, every file is read
    /// whole. (Writers meet EMFILE too; their frames are counted failed, as for any write error.)
    @Test func tooManyOpenFilesIsSaidAndRetried() async throws {
        let dir = try TestEnvironment.scratch("emfile")
        defer { try? FileManager.default.removeItem(at: dir) }
        let video = dir.appendingPathComponent("clip.mp4").path
        try makeBarcodeVideo(at: video, frames: 100, codec: "h264")
        let cameras = (0..<24).flatMap { ["--camera", "f\($0)=\(video)"] }
        let stats = dir.appendingPathComponent("stats.json").path
        let command = ([TestEnvironment.ringcapBinary.path, "record"] + cameras
                       + ["--out", dir.appendingPathComponent("out").path, "--gps", "none", "--stats-json", stats]).map(quoted).joined(separator: " ")
        let result = try await runShell("ulimit -n \(Self.descriptorLimitForEMFILE); exec \(command)", timeout: 120)
        #expect(result.status == 0, "exit \(result.status): \(result.stderr.suffix(2000))")
        #expect(result.stderr.contains("too many open files (this process may have \(Self.descriptorLimitForEMFILE) open at once"),
                "EMFILE was not met or not named: \(result.stderr.suffix(2000))")
        #expect(!result.stderr.contains("giving up"), "\(result.stderr.suffix(2000))")
        let (_, byName) = try readStats(URL(fileURLWithPath: stats))
        for i in 0..<24 { #expect(byName["f\(i)"]?["captured"] as? Int == 100, "f\(i): \(byName["f\(i)"] ?? [:])") }
        expectEveryFrameAccountedFor(byName)
    }

    /// Enough descriptors for ringcap itself and a few files at once, not for 24.
    static let descriptorLimitForEMFILE = 20

    /// Every frame failed (a file system with no room at all): exit 74, not 0.
    @Test(.enabled(if: runningAsRoot, "mounting a tmpfs needs root"))
    func everyFrameFailedExits74() async throws {
        let disk = try TmpfsMount(sizeBytes: 1 << 20)
        defer { disk.unmount() }
        // --out made first (ringcap's own probe file needs room for nothing), then the disk filled.
        let out = disk.path + "/out"
        try FileManager.default.createDirectory(atPath: out + "/.ringcap", withIntermediateDirectories: true)
        writeBallast(disk.path + "/ballast", bytes: 1 << 21)
        let statsDir = try TestEnvironment.scratch("exit74")
        defer { try? FileManager.default.removeItem(at: statsDir) }
        let stats = statsDir.appendingPathComponent("stats.json")
        let result = try await runRingcapAsync(["record", "--camera", "cam=test:320x240@10", "--duration", "2", "--out", out,
                                     "--gps", "none", "--keep-free", "0", "--stats-json", stats.path])
        #expect(result.status == 74, "exit \(result.status): \(result.stderr)")
        #expect(result.stderr.contains("none could be stored"), "\(result.stderr)")
        let (_, cameras) = try readStats(stats)
        #expect((cameras["cam"]?["captured"] as? Int ?? 0) > 0)
        #expect(cameras["cam"]?["written"] as? Int == 0)
        expectEveryFrameAccountedFor(cameras)
    }

    /// Bad places and values found at start, each with its own words and exit status.
    @Test func badPlacesAreNamedAtStart() async throws {
        let dir = try TestEnvironment.scratch("places")
        defer { try? FileManager.default.removeItem(at: dir) }
        let camera = ["--camera", "cam=test:320x240@10", "--frames", "3", "--gps", "none"]
        // /proc takes no files: 73 at once, not 69 after trying.
        let proc = try await runRingcapAsync(["record", "--out", "/proc"] + camera, timeout: 30)
        #expect(proc.status == 73, "\(proc.stderr)")
        #expect(proc.stderr.contains("--out '/proc'") && proc.stderr.contains("cannot create"), "\(proc.stderr)")
        // A dangling symbolic link.
        let link = dir.appendingPathComponent("dangling").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: dir.appendingPathComponent("nowhere").path)
        let dangling = try await runRingcapAsync(["record", "--out", link] + camera, timeout: 30)
        #expect(dangling.status == 73, "\(dangling.stderr)")
        #expect(dangling.stderr.contains("symbolic link") && dangling.stderr.contains("does not exist"), "\(dangling.stderr)")
        // --stats-json into a folder that does not exist: refused at start, nothing recorded.
        let out = dir.appendingPathComponent("out").path
        let stats = try await runRingcapAsync(["record", "--out", out, "--stats-json", dir.appendingPathComponent("no/such/stats.json").path] + camera, timeout: 30)
        #expect(stats.status == 64, "\(stats.stderr)")
        #expect(stats.stderr.contains("--stats-json") && stats.stderr.contains("no/such"), "\(stats.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out + "/cam"))
        // ... but into the --out folder this run creates, as the Quick start does, it is fine.
        let fresh = dir.appendingPathComponent("fresh").path
        let inside = try await runRingcapAsync(["record", "--out", fresh, "--stats-json", fresh + "/stats.json"] + camera, timeout: 30)
        #expect(inside.status == 0 && FileManager.default.fileExists(atPath: fresh + "/stats.json"), "\(inside.stderr)")
        // --gps that can never give a position.
        for (gps, words) in [("/dev/null", "not a serial device"), (dir.path, "is a folder")] {
            let r = try await runRingcapAsync(["record", "--out", out, "--camera", "cam=test:320x240@10", "--frames", "3", "--gps", gps], timeout: 30)
            #expect(r.status == 64, "\(gps): \(r.stderr)")
            #expect(r.stderr.contains("--gps '\(gps)'") && r.stderr.contains(words), "\(gps): \(r.stderr)")
        }
        // A device index out of V4L2's range.
        let device = try await runRingcapAsync(["record", "--out", out, "--camera", "1024", "--gps", "none"], timeout: 30)
        #expect(device.status == 64 && device.stderr.contains("0-1023"), "\(device.stderr)")
        // No Foundation text anywhere.
        for r in [proc, dangling, stats, device] {
            #expect(!r.stderr.contains("The operation could not be completed") && !r.stderr.contains("already exists"), "\(r.stderr)")
        }
    }

    // MARK: 13. FFmpeg's own messages

    /// A camera sending only broken JPEGs for 8 s: FFmpeg's complaints come through ringcap's
    /// logger, named for the camera and rate-limited (5 per 10 s, then a count), not 150 raw
    /// lines on stderr.
    @Test func ffmpegMessagesAreRateLimitedPerCamera() async throws {
        let dir = try TestEnvironment.scratch("ffmpeg-log")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (server, port) = try await startMJPEGCamera(in: dir, parts: [("a", 5, 0, 320, 240)], garbage: true)
        defer { server.stop() }
        let result = try await runRingcapAsync(["record", "--camera", "bad=http://127.0.0.1:\(port)/video.mjpg", "--camera", "good=test:320x240@10",
                                     "--duration", "8", "--out", dir.appendingPathComponent("out").path, "--gps", "none"], timeout: 60)
        #expect(result.status == 0, "\(result.stderr.suffix(3000))")
        let lines = result.stderr.split(separator: "\n")
        let ffmpeg = lines.filter { $0.contains("FFmpeg:") }
        #expect(!ffmpeg.isEmpty, "FFmpeg said nothing about 160 broken JPEGs: \(result.stderr.suffix(2000))")
        #expect(ffmpeg.count <= 2 * (FFmpegLog.burst + 1), "\(ffmpeg.count) FFmpeg lines in 8 s: \(ffmpeg.prefix(20))")
        #expect(ffmpeg.allSatisfy { $0.contains("camera=bad") }, "\(ffmpeg.prefix(5))")
        let raw = lines.filter { $0.hasPrefix("[") && $0.contains(" @ 0x") }
        #expect(raw.isEmpty, "raw FFmpeg lines: \(raw.prefix(5))")
    }

    // MARK: Usage

    /// `ringcap` alone prints the usage on stderr and exits 64, not 0.
    @Test func bareCommandIsAUsageError() async throws {
        let result = try await runRingcapAsync([], timeout: 30)
        #expect(result.status == 64, "exit \(result.status)")
        #expect(result.stderr.contains("USAGE: ringcap <subcommand>") && result.stderr.contains("record"), "\(result.stderr)")
        let help = try await runRingcapAsync(["--help"], timeout: 30)
        #expect(help.status == 0 && help.stdout.contains("USAGE: ringcap <subcommand>"))
    }

    // MARK: 14. Camera names

    @Test func dangerousAndCaseCollidingNamesAreRefused() async throws {
        let dir = try TestEnvironment.scratch("names")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path
        for name in ["-rf", "--x", "-1"] {
            let r = try await runRingcapAsync(["record", "--out", out, "--gps", "none", "--frames", "1", "--camera", "\(name)=test:320x240@10"], timeout: 30)
            #expect(r.status == 64, "\(name): \(r.stderr)")
            #expect(r.stderr.contains("'\(name)'") && r.stderr.contains("must not begin with '-'"), "\(name): \(r.stderr)")
        }
        let r = try await runRingcapAsync(["record", "--out", out, "--gps", "none", "--frames", "1",
                                "--camera", "Bow=test:320x240@10", "--camera", "bow=test:320x240@10"], timeout: 30)
        #expect(r.status == 64, "\(r.stderr)")
        #expect(r.stderr.contains("'Bow' and 'bow' differ only in case"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out + "/Bow"))
    }
}

private extension Dictionary where Key == String {
    func mapKeys(_ transform: (String) -> String) -> [String: Value] {
        Dictionary(uniqueKeysWithValues: map { (transform($0.key), $0.value) })
    }
}
