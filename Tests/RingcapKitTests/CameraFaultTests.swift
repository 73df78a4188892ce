import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Cameras that fail for real while a recording runs: a real RTSP server (gst-rtsp-server) and
/// a real HTTP MJPEG server on loopback, killed and restarted or hung with SIGSTOP, beside a
/// test-pattern camera that must not notice. Each test starts and stops its servers by PID.
///
/// The figures each test measured (time to reconnect, frames lost) are printed on lines that
/// start with `fault-figures:`.
@Suite(.serialized)
struct CameraFaultTests {
    /// RTSP: killed and restarted, then hung and resumed. Frames from before, between and after;
    /// the test pattern beside it without a gap; reconnects counted; everything accounted for.
    @Test func rtspServerKilledRestartedAndHung() async throws {
        let dir = try TestEnvironment.scratch("rtsp")
        defer { try? FileManager.default.removeItem(at: dir) }
        let port = freeLoopbackPort()
        let serverLog = dir.appendingPathComponent("rtsp.log").path
        var server = try await startServer("rtsp_server.py", [String(port), "320x240", "10"], log: serverLog)
        defer { server.stop() }

        let url = "rtsp://127.0.0.1:\(port)/cam"
        let recording = try LiveRecording(["--camera", "ip=\(url)", "--camera", "pat=test:320x240@10",
                                           "--open-timeout", "5", "--read-timeout", "2", "--writers", "2"], in: dir)
        #expect(try await recording.waitForFrames("ip", count: 10, timeout: 30), "no frames from the RTSP camera: \(recording.stderr)")

        // 1. Killed: the stream stops; the camera backs off and retries.
        let killedAt = Date().timeIntervalSince1970
        server.signalGroup(SIGKILL)
        _ = server.wait(timeout: 5)
        try await Task.sleep(for: .seconds(3))
        let framesDuringKill = recording.frameCount("ip", after: killedAt + 1)
        #expect(framesDuringKill == 0, "frames from a dead server: \(framesDuringKill)")
        let restartedAt = Date().timeIntervalSince1970
        server = try await startServer("rtsp_server.py", [String(port), "320x240", "10"], log: serverLog + ".2")
        #expect(try await recording.waitForFrames("ip", count: 10, after: restartedAt, timeout: 40),
                "no frames after the server came back: \(recording.stderr.suffix(2000))")
        let backAfterKill = (recording.frameTimes("ip").first { $0 > restartedAt } ?? .nan) - restartedAt

        // 2. Hung: the server stops answering but keeps its sockets; the read timeout fires.
        let hungAt = Date().timeIntervalSince1970
        server.signalGroup(SIGSTOP)
        try await Task.sleep(for: .seconds(5))
        let framesWhileHung = recording.frameCount("ip", after: hungAt + 1)
        let resumedAt = Date().timeIntervalSince1970
        server.signalGroup(SIGCONT)
        #expect(try await recording.waitForFrames("ip", count: 10, after: resumedAt, timeout: 40),
                "no frames after the server resumed: \(recording.stderr.suffix(2000))")
        let backAfterHang = (recording.frameTimes("ip").first { $0 > resumedAt } ?? .nan) - resumedAt

        let (status, stopSeconds) = recording.terminate()
        #expect(status == 0, "exit \(String(describing: status)): \(recording.stderr.suffix(2000))")

        let ip = recording.frameTimes("ip")
        #expect(ip.contains { $0 < killedAt }, "frames from before the kill")
        #expect(ip.contains { $0 > restartedAt && $0 < hungAt }, "frames between the restart and the hang")
        #expect(ip.contains { $0 > resumedAt }, "frames after the resume")
        #expect(framesWhileHung <= 2, "a hung server gives at most what was buffered: \(framesWhileHung)")

        // The test pattern beside it never noticed: every seq, no gap in time.
        let (frames, strays, orphans) = try recordedFrames(in: recording.out)
        #expect(strays.isEmpty && orphans.isEmpty, "\(strays) \(orphans)")
        let pattern = frames["pat"] ?? []
        #expect(pattern.map(\.seq) == Array(0..<pattern.count), "the test pattern lost frames")
        let patternGap = largestGap(recording.frameTimes("pat"))
        #expect(patternGap < 1.0, "the test pattern stalled for \(patternGap) s while the RTSP camera failed")
        try expectSidecarsValid(frames.values.flatMap { $0.map(\.json) })

        let cameras = try readStats(recording.stats).cameras
        let c = try #require(cameras["ip"])
        let reconnects = c["reconnects"] as? Int ?? -1
        #expect(reconnects >= 2, "reconnects \(reconnects)")
        #expect((c["down_s"] as? Double ?? 0) > 2)
        expectEveryFrameAccountedFor(cameras)
        let patternStats = try #require(cameras["pat"])
        #expect(patternStats["dropped"] as? Int == 0 && patternStats["reconnects"] as? Int == 0)
        print(String(format: "fault-figures: rtsp killed: first frame %.2f s after the server restarted; hung (SIGSTOP 5 s): first frame %.2f s after SIGCONT, %d buffered frame(s) while hung; reconnects %d, down %.1f s; test pattern beside it: 0 frames lost, largest gap %.3f s; SIGTERM to exit %.2f s",
                     backAfterKill, backAfterHang, framesWhileHung, reconnects, c["down_s"] as? Double ?? -1, patternGap, stopSeconds))
    }

    /// A camera blocked in a read (a hung server and long timeouts) does not hold up the stop
    /// beyond the drain deadline; the other camera's frames are safe. FFmpeg's interrupt callback
    /// ends the blocked read at the stop, so the camera is not even left behind as stuck (through
    /// OpenCV it was: its reads could not be interrupted).
    @Test func hungCameraDoesNotHoldUpShutdown() async throws {
        let dir = try TestEnvironment.scratch("rtsp-stuck")
        defer { try? FileManager.default.removeItem(at: dir) }
        let port = freeLoopbackPort()
        let server = try await startServer("rtsp_server.py", [String(port), "160x120", "10"], log: dir.appendingPathComponent("rtsp.log").path)
        defer { server.signalGroup(SIGCONT); server.stop() }
        let recording = try LiveRecording(["--camera", "ip=rtsp://127.0.0.1:\(port)/cam", "--camera", "pat=test:160x120@10",
                                           "--open-timeout", "60", "--read-timeout", "60", "--drain-timeout", "1"], in: dir)
        #expect(try await recording.waitForFrames("ip", count: 5, timeout: 30), "\(recording.stderr)")
        server.signalGroup(SIGSTOP)
        try await Task.sleep(for: .seconds(1.5))  // the capture thread is now blocked in a read
        let (status, seconds) = recording.terminate()
        #expect(status == 0, "\(recording.stderr.suffix(1500))")
        #expect(seconds < 1 + 4, "the stop waited \(seconds) s for a camera blocked in its source")
        let cameras = try readStats(recording.stats).cameras
        #expect(cameras["ip"]?["stuck"] as? Bool == false, "the blocked read was not interrupted")
        #expect(cameras["pat"]?["stuck"] as? Bool == false)
        expectEveryFrameAccountedFor(cameras)
        #expect(!recording.stderr.contains("still blocked"))
        print(String(format: "fault-figures: RTSP camera blocked in a read (server hung, 60 s timeouts), --drain-timeout 1: SIGTERM to exit %.2f s", seconds))
    }

    /// HTTP MJPEG (as most IP cameras serve it): killed and restarted.
    @Test func mjpegServerKilledAndRestarted() async throws {
        let dir = try TestEnvironment.scratch("mjpeg")
        defer { try? FileManager.default.removeItem(at: dir) }
        let frames = dir.appendingPathComponent("frames")
        try FileManager.default.createDirectory(at: frames, withIntermediateDirectories: true)
        let made = try runCommand("/usr/bin/ffmpeg", ["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=10",
                                                      "-frames:v", "10", "-q:v", "4", frames.appendingPathComponent("f%02d.jpg").path])
        try #require(made.status == 0, "\(made.stderr)")
        let port = freeLoopbackPort()
        let log = dir.appendingPathComponent("mjpeg.log").path
        var server = try await startServer("mjpeg_server.py", [String(port), frames.path, "10"], log: log)
        defer { server.stop() }

        let recording = try LiveRecording(["--camera", "web=http://127.0.0.1:\(port)/video.mjpg",
                                           "--camera", "pat=test:160x120@10", "--open-timeout", "5", "--read-timeout", "2"], in: dir)
        #expect(try await recording.waitForFrames("web", count: 10, timeout: 30), "no MJPEG frames: \(recording.stderr)")
        let killedAt = Date().timeIntervalSince1970
        server.signalGroup(SIGKILL)
        _ = server.wait(timeout: 5)
        try await Task.sleep(for: .seconds(3))
        let restartedAt = Date().timeIntervalSince1970
        server = try await startServer("mjpeg_server.py", [String(port), frames.path, "10"], log: log + ".2")
        #expect(try await recording.waitForFrames("web", count: 10, after: restartedAt, timeout: 40),
                "no MJPEG frames after the restart: \(recording.stderr.suffix(2000))")
        let backAfter = (recording.frameTimes("web").first { $0 > restartedAt } ?? .nan) - restartedAt
        let (status, _) = recording.terminate()
        #expect(status == 0, "\(recording.stderr.suffix(2000))")

        let web = recording.frameTimes("web")
        #expect(web.contains { $0 < killedAt } && web.contains { $0 > restartedAt })
        #expect(web.filter { $0 > killedAt + 1 && $0 < restartedAt }.isEmpty, "frames while the server was dead")
        let (all, strays, orphans) = try recordedFrames(in: recording.out)
        #expect(strays.isEmpty && orphans.isEmpty)
        for frame in (all["web"] ?? []).suffix(3) {
            let probe = try #require(probeImage(frame.jpg))
            #expect(probe.width == 320 && probe.height == 240)
        }
        let pattern = all["pat"] ?? []
        #expect(pattern.map(\.seq) == Array(0..<pattern.count))
        let c = try #require(try readStats(recording.stats).cameras["web"])
        #expect((c["reconnects"] as? Int ?? 0) >= 1)
        print(String(format: "fault-figures: mjpeg killed 3 s: first frame %.2f s after the server restarted; reconnects %d; test pattern largest gap %.3f s",
                     backAfter, c["reconnects"] as? Int ?? -1, largestGap(recording.frameTimes("pat"))))
    }

    /// A webcam that is not there (no /dev/video7 here) keeps being retried with backoff and
    /// never holds up the camera beside it; with nothing else recorded the exit is 69.
    @Test func missingWebcamIsRetriedWithoutHarm() throws {
        let dir = try TestEnvironment.scratch("nowebcam")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out")
        let stats = dir.appendingPathComponent("stats.json")
        let result = try runRingcap(["record", "--camera", "usb=/dev/video7", "--camera", "pat=test:160x120@20", "--out", out.path,
                                     "--duration", "3", "--gps", "none", "--stats-json", stats.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("/dev/video7"), "the failing camera is named: \(result.stderr)")
        let cameras = try readStats(stats).cameras
        let usb = try #require(cameras["usb"])
        #expect(usb["captured"] as? Int == 0)
        #expect((usb["down_s"] as? Double ?? 0) > 1)
        let pat = try #require(cameras["pat"])
        #expect((pat["written"] as? Int ?? 0) >= 20)
        // Retries back off: 0.5 s, 1 s, 2 s … so three seconds see only a few attempts.
        let attempts = result.stderr.components(separatedBy: "retrying in").count - 1
        #expect(attempts >= 2 && attempts <= 4, "\(attempts) attempts in 3 s")
        // OpenCV's own words come through ringcap's logger, with the camera, not raw on stderr.
        let lines = result.stderr.split(separator: "\n")
        #expect(!lines.contains { $0.hasPrefix("[ WARN") || $0.hasPrefix("[ERROR") }, "\(result.stderr)")
        #expect(lines.contains { $0.contains("warning ringcap: [camera=usb] OpenCV: ") && $0.contains("/dev/video7") }, "\(result.stderr)")

        let alone = try runRingcap(["record", "--camera", "/dev/video7", "--out", out.path, "--duration", "1", "--gps", "none"])
        #expect(alone.status == 69, "\(alone.stderr)")
    }
}

/// Files that are damaged: what decodes is recorded, the rest is reported.
struct DamagedFileTests {
    @Test func truncatedFileRecordsWhatDecodes() throws {
        let dir = try TestEnvironment.scratch("truncated")
        defer { try? FileManager.default.removeItem(at: dir) }
        let video = dir.appendingPathComponent("cut.mkv").path
        try makeBarcodeVideo(at: video, frames: 100, codec: "h264")
        let size = try #require(try FileManager.default.attributesOfItem(atPath: video)[.size] as? Int)
        let handle = try #require(FileHandle(forUpdatingAtPath: video))
        try handle.truncate(atOffset: UInt64(size / 2))
        try handle.close()

        let out = dir.appendingPathComponent("out")
        let stats = dir.appendingPathComponent("stats.json")
        let result = try runRingcap(["record", "--camera", "cut=\(video)", "--out", out.path, "--gps", "none", "--stats-json", stats.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("did not decode"), "the missing part is reported: \(result.stderr)")
        let list = try recordedFrames(in: out).frames["cut"] ?? []
        #expect(list.count >= 10 && list.count < 100, "\(list.count) frames from half a file")
        #expect(list.map(\.seq) == Array(0..<list.count))
        // What was recorded is real frames of the file, in order, none twice (at the cut the
        // decoder may skip frames it cannot rebuild, so a code may run ahead of its seq).
        let codes = list.map { probeImage($0.jpg)?.code ?? -1 }
        #expect(codes.allSatisfy { $0 >= 0 }, "frames that do not show a bar code: \(codes)")
        #expect(zip(codes, codes.dropFirst()).allSatisfy { $0 < $1 }, "frames out of order or repeated: \(codes)")
        #expect(zip(codes, list).allSatisfy { $0 >= $1.seq }, "\(codes)")
        #expect(codes.prefix(10) == Array(0..<10)[...], "the file's start is recorded whole: \(codes)")
        let c = try #require(try readStats(stats).cameras["cut"])
        #expect(c["captured"] as? Int == list.count && c["written"] as? Int == list.count)
        #expect(c["announced_frames"] as? Int == 100)
    }

    @Test func fileThatIsNotAVideoIsReportedAndNothingIsRecorded() throws {
        let dir = try TestEnvironment.scratch("garbage")
        defer { try? FileManager.default.removeItem(at: dir) }
        let junk = dir.appendingPathComponent("junk.mp4")
        try Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7919) }).write(to: junk)
        let result = try runRingcap(["record", "--camera", junk.path, "--out", dir.appendingPathComponent("out").path, "--gps", "none"])
        #expect(result.status == 69, "\(result.stderr)")
        #expect(result.stderr.contains(junk.path))
    }
}
