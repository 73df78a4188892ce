import Foundation
import Testing
@testable import RingcapKit

struct SourceParsingTests {
    @Test(arguments: [
        ("0", SourceSpec.device(index: 0)),
        ("3", .device(index: 3)),
        ("/dev/video2", .device(index: 2)),
        ("rtsp://127.0.0.1:8554/cam", .stream(url: "rtsp://127.0.0.1:8554/cam")),
        ("http://10.0.0.5/mjpg/video.mjpg", .stream(url: "http://10.0.0.5/mjpg/video.mjpg")),
        ("HTTPS://cam.example/stream", .stream(url: "HTTPS://cam.example/stream")),
        ("/data/ship.mp4", .file(path: "/data/ship.mp4")),
        ("clip.mkv", .file(path: "clip.mkv")),
        ("test:1280x720@30", .testPattern(width: 1280, height: 720, fps: 30)),
        ("test:640x480@7.5", .testPattern(width: 640, height: 480, fps: 7.5)),
        ("test:320x240", .testPattern(width: 320, height: 240, fps: 30)),
        ("test", .testPattern(width: 640, height: 480, fps: 30)),
    ])
    func parsesSources(text: String, expected: SourceSpec) throws {
        #expect(try SourceSpec(parsing: text) == expected)
    }

    @Test(arguments: ["", "   ", "test:0x0@30", "test:640x480@0", "test:640x480@-5", "test:640x480@abc",
                      "test:640@30", "test:99999x480@30", "test:640x480@30@1", "ftp://host/x", "gopher://x",
                      "/dev/videoX", "-1", "rtsp://"])
    func rejectsBadSources(text: String) {
        #expect(throws: ConfigError.self) { try SourceSpec(parsing: text) }
    }

    @Test func errorNamesTheValue() {
        do {
            _ = try SourceSpec(parsing: "test:0x0@30")
            Issue.record("accepted test:0x0@30")
        } catch {
            #expect(error.description.contains("test:0x0@30"))
        }
    }

    @Test func testPatternDescriptionRoundTrips() throws {
        for text in ["test:1280x720@30", "test:640x480@7.5", "/dev/video1", "rtsp://h/x?a=b"] {
            #expect(try SourceSpec(parsing: text).description == text)
        }
    }
}

struct CameraSpecTests {
    @Test func namesDefaultByIndex() throws {
        #expect(try CameraSpec(parsing: "test:320x240@10", index: 2) == CameraSpec(name: "cam2", source: .testPattern(width: 320, height: 240, fps: 10)))
    }

    @Test func explicitNames() throws {
        let spec = try CameraSpec(parsing: "bow-1=rtsp://127.0.0.1/s?user=a", index: 0)
        #expect(spec.name == "bow-1")
        #expect(spec.source == .stream(url: "rtsp://127.0.0.1/s?user=a"))
    }

    @Test func equalsSignInsideAURLIsNotAName() throws {
        let spec = try CameraSpec(parsing: "http://cam/video.cgi?res=hd", index: 1)
        #expect(spec.name == "cam1")
        #expect(spec.source == .stream(url: "http://cam/video.cgi?res=hd"))
    }

    @Test(arguments: ["../x=test", "a/b=test", "=test", "bad name=test", ".hidden=test", "ü=test",
                      String(repeating: "n", count: 65) + "=test", ""])
    func rejectsBadNames(text: String) {
        #expect(throws: ConfigError.self) { try CameraSpec(parsing: text, index: 0) }
    }
}

struct RecordConfigTests {
    private func config(_ cameras: [String]) throws -> RecordConfig {
        let dir = NSTemporaryDirectory() + "ringcap-config-\(getpid())"
        return RecordConfig(cameras: try cameras.enumerated().map { try CameraSpec(parsing: $1, index: $0) },
                            outDirectory: dir, writers: 2)
    }

    @Test func ringDefaultHoldsAboutTwoSeconds() throws {
        var c = try config(["test:320x240@30", "test:320x240@15"])
        #expect(c.effectiveRingCapacity == 90)
        c.fpsCap = 10
        #expect(c.effectiveRingCapacity == 40)
        c.ringCapacity = 5
        #expect(c.effectiveRingCapacity == 5)
        #expect(try config(["test:320x240@1"]).effectiveRingCapacity == 8)
    }

    @Test func whenFullDefaultsBySource() throws {
        let c = try config(["test:320x240@30", "/tmp/x.mp4"])
        #expect(c.whenFull(for: c.cameras[0]) == .dropOldest)
        #expect(c.whenFull(for: c.cameras[1]) == .wait)
    }

    @Test func rejectsDuplicatesAndOutOfRangeValues() throws {
        #expect(throws: ConfigError.duplicateCamera("a")) { try self.config(["a=test", "a=test:320x240@5"]).validate() }
        var c = try config(["test"])
        c.quality = 0
        #expect(throws: ConfigError.self) { try c.validate() }
        c.quality = 101
        #expect(throws: ConfigError.self) { try c.validate() }
        c.quality = 85
        c.writers = 0
        #expect(throws: ConfigError.self) { try c.validate() }
        c.writers = 1
        c.ringCapacity = 0
        #expect(throws: ConfigError.self) { try c.validate() }
        c.ringCapacity = nil
        c.durationSeconds = -1
        #expect(throws: ConfigError.self) { try c.validate() }
        c.durationSeconds = nil
        try c.validate()
    }

    @Test func missingFileIsAUsageError() throws {
        let c = try config(["/nonexistent/ringcap/clip.mp4"])
        #expect(throws: ConfigError.missingFile("/nonexistent/ringcap/clip.mp4")) { try c.validate() }
        #expect(ConfigError.missingFile("x").exitCode == 64)
        #expect(ConfigError.outputNotWritable(path: "x", reason: "").exitCode == 73)
    }

    @Test func frameSizes() throws {
        #expect(try FrameSize(parsing: "1280x720") == FrameSize(width: 1280, height: 720))
        #expect(try FrameSize(parsing: "640X480") == FrameSize(width: 640, height: 480))
        for bad in ["1280", "x720", "0x0", "1280x720x3", "-640x480", "abcxdef", "8x8"] {
            #expect(throws: ConfigError.self, "\(bad)") { try FrameSize(parsing: bad) }
        }
    }
}

/// The command line itself: exit codes and one-line messages that name the bad value.
@Suite(.serialized)
struct RecordCommandLineTests {
    @Test(arguments: [
        (["--camera", "test:0x0@30"], "test:0x0@30"),
        (["--camera", "test", "--quality", "0"], "--quality"),
        (["--camera", "test", "--fps", "fast"], "fast"),
        (["--camera", "../x=test"], "../x"),
        (["--camera", "a=test", "--camera", "a=test"], "'a'"),
        (["--camera", "test", "--duration", "-5"], "-5"),
        (["--camera", "test", "--size", "12x"], "12x"),
        (["--camera", "/no/such/file.mp4"], "/no/such/file.mp4"),
        ([] as [String], "--camera"),
        (["--camera", ""], "--camera"),
        (["--camera", "   "], "--camera"),
        (["--camera", "front="], "front="),
        (["--camera", "ftp://host/x"], "ftp://host/x"),
        (["--camera", "test:640x480@abc"], "test:640x480@abc"),
        (["--camera", "/dev/videoX"], "/dev/videoX"),
        (["--camera", "test", "--quality", "101"], "101"),
        (["--camera", "test", "--quality", "high"], "high"),
        (["--camera", "test", "--fps", "0"], "--fps"),
        (["--camera", "test", "--fps", "-3"], "-3"),
        (["--camera", "test", "--writers", "0"], "--writers"),
        (["--camera", "test", "--writers", "two"], "two"),
        (["--camera", "test", "--ring", "0"], "--ring"),
        (["--camera", "test", "--ring", "1"], "--ring"),
        (["--camera", "test", "--frames", "0"], "--frames"),
        (["--camera", "test", "--duration", "abc"], "abc"),
        (["--camera", "test", "--duration", "0"], "--duration"),
        (["--camera", "test", "--size", "0x0"], "0x0"),
        (["--camera", "test", "--size", "1280x720x3"], "1280x720x3"),
        (["--camera", "test", "--when-full", "sometimes"], "sometimes"),
        (["--camera", "test", "--gps", "bogus://x"], "bogus://x"),
        (["--camera", "test", "--gps", "fixed:91,0"], "fixed:91,0"),
        (["--camera", "test", "--gps", "fixed:0,181"], "fixed:0,181"),
        (["--camera", "test", "--gps", "fixed:abc"], "fixed:abc"),
        (["--camera", "test", "--gps-max-age", "-1"], "-1"),
        (["--camera", "test", "--open-timeout", "0"], "--open-timeout"),
        (["--camera", "test", "--open-timeout", "soon"], "soon"),
        (["--camera", "test", "--read-timeout", "-2"], "-2"),
        (["--camera", "test", "--rtsp-transport", "sctp"], "sctp"),
        (["--camera", "test", "--drain-timeout", "-1"], "--drain-timeout"),
        (["--camera", "test", "--log-level", "loud"], "loud"),
        (["--camera", "a/b=test"], "a/b"),
        (["--camera", "..=test"], ".."),
        (["--camera", "test", "--no-such-flag"], "--no-such-flag"),
        (["--camera", "test", "--keep-free", "100%"], "--keep-free '100%'"),
        (["--camera", "test", "--keep-free", "0%"], "--keep-free '0%'"),
        (["--camera", "test", "--keep-free", "lots"], "--keep-free 'lots'"),
        (["--camera", "test", "--keep-free", "-5%"], "--keep-free '-5%'"),
        (["--camera", "test", "--max-size", "0"], "--max-size '0'"),
        (["--camera", "test", "--max-size", "5%"], "--max-size '5%'"),
        (["--camera", "test", "--max-size", "10XB"], "--max-size '10XB'"),
        (["--camera", "test", "--max-size", "-1GB"], "--max-size '-1GB'"),
        (["--camera", "test", "--max-size", ""], "--max-size ''"),
    ])
    func badInvocationsExit64NamingTheValue(args: [String], named: String) throws {
        let dir = try TestEnvironment.scratch("badargs")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out")
        let duration = args.contains("--duration") ? [] : ["--duration", "1"]
        let result = try runRingcap(["record", "--out", out.path] + duration + args, timeout: 30)
        #expect(result.status == 64, "exit \(result.status): \(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "one line: \(result.stderr)")
        #expect(result.stderr.contains(named), "message does not name \(named): \(result.stderr)")
        let jpgs = (FileManager.default.enumerator(atPath: out.path)?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".jpg") }
        #expect(jpgs.isEmpty, "recorded frames despite a bad invocation")
    }

    @Test func unwritableOutIs73() throws {
        let dir = try TestEnvironment.scratch("unwritable")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("plain-file")
        try Data("x".utf8).write(to: file)
        let result = try runRingcap(["record", "--camera", "test", "--duration", "1", "--out", file.path + "/out"], timeout: 30)
        #expect(result.status == 73, "exit \(result.status): \(result.stderr)")
        #expect(result.stderr.contains(file.path + "/out"))
    }
}

/// `--keep-free SIZE|PCT` and `--max-size SIZE`.
struct StorageLimitParsingTests {
    @Test(arguments: [
        ("0", UInt64(0)), ("1", 1), ("123456789", 123_456_789), ("10B", 10), ("10b", 10),
        ("1KB", 1000), ("1kb", 1000), ("2MB", 2_000_000), ("3GB", 3_000_000_000), ("1TB", 1_000_000_000_000),
        ("1KiB", 1024), ("1MiB", 1_048_576), ("2GiB", 2_147_483_648), ("1TiB", 1_099_511_627_776),
        ("1.5GB", 1_500_000_000), ("0.5KiB", 512), ("20mib", 20_971_520),
    ])
    func parsesSizes(text: String, bytes: UInt64) throws {
        #expect(try ByteSize(parsing: text, flag: "--max-size").bytes == bytes)
    }

    @Test(arguments: ["", " ", "MB", "GB1", "1 GB", "1XB", "-1", "-1MB", "+1MB", "1e6", "inf", "nan", "0x10",
                      "1.2.3MB", ".", "5%", "1KBB", "1iB", "99999999999TB"])
    func rejectsBadSizes(text: String) {
        do {
            _ = try ByteSize(parsing: text, flag: "--max-size")
            Issue.record("accepted '\(text)'")
        } catch {
            #expect(error.description.contains("--max-size '\(text)'"), "\(error)")
        }
    }

    @Test(arguments: [
        ("5%", FreeSpaceGoal.percent(5)), ("0.5%", .percent(0.5)), ("99.9%", .percent(99.9)),
        ("0", .off), ("0B", .off), ("2GB", .bytes(2_000_000_000)), ("512MiB", .bytes(536_870_912)),
    ])
    func parsesFreeSpaceGoals(text: String, goal: FreeSpaceGoal) throws {
        #expect(try FreeSpaceGoal(parsing: text) == goal)
    }

    @Test(arguments: ["0%", "100%", "150%", "-5%", "%", "abc%", "5 %", "5%%", "", "lots", "-1GB"])
    func rejectsBadFreeSpaceGoals(text: String) {
        do {
            _ = try FreeSpaceGoal(parsing: text)
            Issue.record("accepted '\(text)'")
        } catch {
            #expect(error.description.contains("--keep-free '\(text)'"), "\(error)")
            #expect(error.exitCode == 64)
        }
    }

    @Test func percentagesAndSizesGiveBytes() {
        #expect(FreeSpaceGoal.percent(5).bytesToKeep(ofTotal: 1_000_000) == 50_000)
        #expect(FreeSpaceGoal.bytes(123).bytesToKeep(ofTotal: 1_000_000) == 123)
        #expect(FreeSpaceGoal.off.bytesToKeep(ofTotal: 1_000_000) == 0)
        #expect(FreeSpaceGoal.standard == .percent(5))
    }

    @Test func configValidatesLimitsBuiltInCode() throws {
        var c = RecordConfig(cameras: [CameraSpec(name: "a", source: .testPattern(width: 320, height: 240, fps: 5))],
                             outDirectory: NSTemporaryDirectory() + "ringcap-limits-\(getpid())", writers: 1)
        c.maxSizeBytes = 0
        #expect(throws: ConfigError.self) { try c.validate() }
        c.maxSizeBytes = 1_000_000
        c.keepFree = .percent(100)
        #expect(throws: ConfigError.self) { try c.validate() }
        c.keepFree = .percent(5)
        try c.validate()
    }

    /// Folder and file names retention recognises as ringcap's, and only those.
    @Test func recordingNames() throws {
        let f = try #require(RecordingLayout.frameName("073112.004500_42.jpg", hour: 7, minute: 31))
        #expect(f.stem == "073112.004500_42" && f.microsInMinute == 12_004_500 && f.seq == 42 && !f.isSidecar)
        #expect(RecordingLayout.frameName("073112.004500_42.json", hour: 7, minute: 31)?.isSidecar == true)
        for bad in ["073112.004500_42.jpg.rctmp", "073112.004500_42.png", "073112.004500.jpg", "083112.004500_1.jpg",
                    "073112,004500_1.jpg", "0731a2.004500_1.jpg", "073199.004500_1.jpg", "notes.json", ".jpg",
                    "073112.004500_.jpg", "073112.004500_1x.jpg"] {
            #expect(RecordingLayout.frameName(bad, hour: 7, minute: 31) == nil, "\(bad)")
        }
        #expect(RecordingLayout.unixMinute(year: 1970, month: 1, day: 1, hour: 0, minute: 0) == 0)
        #expect(RecordingLayout.unixMinute(year: 2026, month: 12, day: 1, hour: 7, minute: 31) == 1_796_110_260 / 60)
        #expect(RecordingLayout.unixMinute(year: 2024, month: 2, day: 29, hour: 23, minute: 59) == 1_709_251_140 / 60)
        #expect(MinuteFolder(minute: 1_796_110_260 / 60, camera: "bow").relativePath == "bow/2026/12/01/07/31")
        #expect(RecordingLayout.number("07", width: 2, in: 0...59) == 7)
        #expect(RecordingLayout.number("7", width: 2, in: 0...59) == nil)
        #expect(RecordingLayout.number("60", width: 2, in: 0...59) == nil)
    }
}
