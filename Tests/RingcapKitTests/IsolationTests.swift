import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// No camera waits for another (issue 12's first target): streams are opened through FFmpeg
/// directly, with no lock shared between cameras (OpenCV 4.6 held one process-wide mutex around
/// every open, so a hung camera held up every other camera's open for its whole timeout). Real
/// servers on loopback; the figures are printed on `fault-figures:` lines.
@Suite(.serialized)
struct IsolationTests {
    /// The wall-clock time of `camera`'s first stored frame, from its sidecars' names.
    private static func firstFrameTime(_ recording: LiveRecording, _ camera: String) -> Double? {
        recording.frameTimes(camera).first
    }

    /// A camera whose server accepts and never answers, opened with a long timeout, beside a good
    /// RTSP camera and a good HTTP MJPEG camera: the good ones deliver their first frames long
    /// before the hung camera's open gives up (through OpenCV they waited for it, every retry).
    /// The RTSP server comes up a second after the recorder, so that the good camera's open falls
    /// inside the hung camera's (with OpenCV's one lock, whichever opened first held the others).
    @Test func hungCameraDoesNotDelayTheOthers() async throws {
        let dir = try TestEnvironment.scratch("isolation")
        defer { try? FileManager.default.removeItem(at: dir) }
        let rtspPort = freeLoopbackPort(), silentPort = freeLoopbackPort(), mjpegPort = freeLoopbackPort()
        let silent = try await startServer("silent_server.py", [String(silentPort)], log: dir.appendingPathComponent("silent.log").path)
        defer { silent.stop() }
        let frames = dir.appendingPathComponent("frames")
        try FileManager.default.createDirectory(at: frames, withIntermediateDirectories: true)
        try makeBarcodeJPEGs(in: frames, prefix: "f", count: 10, offset: 0, width: 320, height: 240)
        let mjpeg = try await startServer("mjpeg_server.py", [String(mjpegPort), frames.path, "10"], log: dir.appendingPathComponent("mjpeg.log").path)
        defer { mjpeg.stop() }

        let openTimeout = 8.0
        func firstFrames(withHungCamera: Bool, _ name: String) async throws -> (rtsp: Double, mjpeg: Double, stop: Double) {
            let run = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
            var cameras = ["--camera", "good=rtsp://127.0.0.1:\(rtspPort)/cam", "--camera", "web=http://127.0.0.1:\(mjpegPort)/video.mjpg"]
            if withHungCamera { cameras += ["--camera", "hung=rtsp://127.0.0.1:\(silentPort)/cam"] }
            let started = Date().timeIntervalSince1970
            let recording = try LiveRecording(cameras + ["--open-timeout", "\(Int(openTimeout))", "--drain-timeout", "1"], in: run)
            try await Task.sleep(for: .seconds(1))
            let rtspStarted = Date().timeIntervalSince1970
            let rtsp = try await startServer("rtsp_server.py", [String(rtspPort), "320x240", "10"], log: run.appendingPathComponent("rtsp.log").path)
            defer { rtsp.stop() }
            let arrived = try await waitUntil(timeout: 30) {
                Self.firstFrameTime(recording, "good") != nil && Self.firstFrameTime(recording, "web") != nil
            }
            #expect(arrived, "no first frames within 30 s: \(recording.stderr.suffix(2000))")
            let (status, stopSeconds) = recording.terminate()
            #expect(status == 0, "\(recording.stderr.suffix(2000))")
            let good = (Self.firstFrameTime(recording, "good") ?? .infinity) - rtspStarted
            let web = (Self.firstFrameTime(recording, "web") ?? .infinity) - started
            if withHungCamera {
                let cameras = try readStats(recording.stats).cameras
                #expect(cameras["hung"]?["captured"] as? Int == 0)
                #expect(cameras["hung"]?["stuck"] as? Bool == false, "the hung open was not interrupted at the stop")
                expectEveryFrameAccountedFor(cameras)
            }
            return (good, web, stopSeconds)
        }
        let alone = try await firstFrames(withHungCamera: false, "alone")
        let beside = try await firstFrames(withHungCamera: true, "beside")
        // Not a speed limit: had the hung open held a shared lock, the good cameras could not have
        // opened before it timed out.
        #expect(beside.rtsp < openTimeout && beside.mjpeg < openTimeout,
                "first frames \(beside.rtsp) s (RTSP) and \(beside.mjpeg) s (MJPEG) after start: held up by the hung camera's \(openTimeout) s open")
        print(String(format: "fault-figures: first frame, alone / beside a camera that never answers (%.0f s open timeout): RTSP %.2f / %.2f s after its server came up, MJPEG %.2f / %.2f s after start; SIGTERM to exit with the hung open in progress %.2f s",
                     openTimeout, alone.rtsp, beside.rtsp, alone.mjpeg, beside.mjpeg, beside.stop))
    }

    /// 20 RTSP cameras on one loopback server, opened at once: every one streams, and the stop
    /// drains and exits with all of them accounted for.
    @Test func twentyRTSPCamerasStreamTogether() async throws {
        let dir = try TestEnvironment.scratch("rtsp20")
        defer { try? FileManager.default.removeItem(at: dir) }
        let port = freeLoopbackPort()
        let server = try await startServer("rtsp_server.py", [String(port), "160x120", "10"], log: dir.appendingPathComponent("rtsp.log").path)
        defer { server.stop() }
        let cameras = (0..<20).flatMap { ["--camera", "c\($0)=rtsp://127.0.0.1:\(port)/cam"] }
        let started = Date().timeIntervalSince1970
        let recording = try LiveRecording(cameras + ["--drain-timeout", "2"], in: dir)
        // Together, not one after another: an open takes 1 to 3 s here, so twenty in turn (as
        // behind OpenCV's one lock) take about a minute.
        let all = try await waitUntil(timeout: 20) { (0..<20).allSatisfy { recording.frameCount("c\($0)") >= 5 } }
        let streaming = Date().timeIntervalSince1970 - started
        #expect(all, "cameras without 5 frames: \((0..<20).filter { recording.frameCount("c\($0)") < 5 }): \(recording.stderr.suffix(2000))")
        let firsts = (0..<20).compactMap { Self.firstFrameTime(recording, "c\($0)") }.map { $0 - started }
        let (status, stopSeconds) = recording.terminate()
        #expect(status == 0, "\(recording.stderr.suffix(2000))")
        let stats = try readStats(recording.stats).cameras
        #expect(stats.count == 20)
        expectEveryFrameAccountedFor(stats)
        print(String(format: "fault-figures: 20 RTSP cameras on one server: first frames %.2f to %.2f s after start, all with 5 frames after %.2f s; SIGTERM to exit %.2f s (--drain-timeout 2)",
                     firsts.min() ?? -1, firsts.max() ?? -1, streaming, stopSeconds))
    }
}
