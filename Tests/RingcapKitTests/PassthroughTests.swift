import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A camera that sends JPEG (an HTTP MJPEG camera here) has its frames stored as they came, with
/// ringcap's EXIF in place of its own: no decode, no encode (issue 12's passthrough). Real JPEGs
/// made by ffmpeg, a real MJPEG server on loopback, exiftool to read the EXIF back.
@Suite(.serialized)
struct PassthroughTests {
    /// `jpeg` without the APP1 "Exif" segments before its scan: what ringcap keeps of a camera's
    /// frame, to compare with what it sent.
    static func withoutExif(_ jpeg: Data) -> Data {
        let b = [UInt8](jpeg)
        guard b.count > 4, b[0] == 0xFF, b[1] == 0xD8 else { return jpeg }
        var out: [UInt8] = [0xFF, 0xD8]
        var i = 2
        while i + 4 <= b.count, b[i] == 0xFF, b[i + 1] != 0xDA {
            let length = Int(b[i + 2]) << 8 | Int(b[i + 3])
            let exif = b[i + 1] == 0xE1 && length >= 8 && Array(b[(i + 4)..<(i + 10)]) == Array("Exif\0\0".utf8)
            if !exif { out += b[i..<(i + 2 + length)] }
            i += 2 + length
        }
        out += b[i...]
        return Data(out)
    }

    /// Known JPEGs (some with the camera's own EXIF), and the frames stored from them: each is
    /// byte for byte one the camera sent, less the camera's EXIF, plus ringcap's (time, camera,
    /// position); the sidecar says passthrough, with no quality; the size is the JPEG's own.
    @Test func mjpegFramesAreStoredAsTheyCame() async throws {
        let dir = try TestEnvironment.scratch("passthrough")
        defer { try? FileManager.default.removeItem(at: dir) }
        let frames = dir.appendingPathComponent("frames")
        try FileManager.default.createDirectory(at: frames, withIntermediateDirectories: true)
        try makeBarcodeJPEGs(in: frames, prefix: "f", count: 6, offset: 1, width: 640, height: 480)
        // Half of them carry a camera's EXIF, as many IP cameras' frames do.
        for i in [1, 3, 5] {
            let tag = try runCommand("/usr/bin/exiftool", ["-q", "-overwrite_original", "-Make=AcmeCam", "-Model=IPC-9",
                                                           frames.appendingPathComponent(String(format: "f_%03d.jpg", i)).path])
            try #require(tag.status == 0, "\(tag.stderr)")
        }
        let sent = try (1...6).map { try Data(contentsOf: frames.appendingPathComponent(String(format: "f_%03d.jpg", $0))) }
        let kept = Set(sent.map(Self.withoutExif))
        let port = freeLoopbackPort()
        let server = try await startServer("mjpeg_server.py", [String(port), frames.path, "20"], log: dir.appendingPathComponent("server.log").path)
        defer { server.stop() }
        let out = dir.appendingPathComponent("out")
        let result = try await runRingcapAsync(["record", "--camera", "cam=http://127.0.0.1:\(port)/video.mjpg", "--out", out.path,
                                                "--gps", "fixed:-22.9498453,-43.0984627,3.5", "--frames", "18"], timeout: 60)
        #expect(result.status == 0, "\(result.stderr)")
        let stored = try recordedFrames(in: out).frames["cam"] ?? []
        #expect(stored.count == 18)
        for frame in stored {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: frame.jpg))
            #expect(kept.contains(Self.withoutExif(bytes)), "frame \(frame.seq) is not one the camera sent, as it sent it")
            let jpeg = frame.sidecar["jpeg"] as? [String: Any] ?? [:]
            #expect(jpeg["passthrough"] as? Bool == true && jpeg["quality"] is NSNull, "\(jpeg)")
            #expect(jpeg["bytes"] as? Int == bytes.count)
            #expect(frame.sidecar["width"] as? Int == 640 && frame.sidecar["height"] as? Int == 480)
        }
        try expectSidecarsValid(stored.map(\.json))
        // One EXIF, ringcap's: the camera's Make is gone, the position and the time are there.
        let tagged = try #require(stored.first { (try? Data(contentsOf: URL(fileURLWithPath: $0.jpg)))?.count ?? 0 > 0 })
        let exif = try runCommand("/usr/bin/exiftool", ["-j", "-n", "-G1", "-a", tagged.jpg])
        let object = try #require((try JSONSerialization.jsonObject(with: Data(exif.stdout.utf8)) as? [[String: Any]])?.first)
        #expect(object["IFD0:Make"] as? String == "ringcap", "\(object)")
        #expect(!exif.stdout.contains("AcmeCam"))
        #expect(abs((object["GPS:GPSLatitude"] as? Double ?? 0) - 22.9498453) < 1e-6 && object["GPS:GPSLatitudeRef"] as? String == "S")
        #expect(object["ExifIFD:DateTimeOriginal"] != nil)
    }

    /// Every third part cut in half: those frames are counted failed and none is stored broken;
    /// the whole ones are stored.
    @Test func brokenJPEGsAreFailedNeverStored() async throws {
        let dir = try TestEnvironment.scratch("passthrough-broken")
        defer { try? FileManager.default.removeItem(at: dir) }
        let frames = dir.appendingPathComponent("frames")
        try FileManager.default.createDirectory(at: frames, withIntermediateDirectories: true)
        try makeBarcodeJPEGs(in: frames, prefix: "f", count: 6, offset: 1, width: 320, height: 240)
        let port = freeLoopbackPort()
        let server = try await startServer("mjpeg_server.py", [String(port), frames.path, "20", "--damage"], log: dir.appendingPathComponent("server.log").path)
        defer { server.stop() }
        let out = dir.appendingPathComponent("out"), stats = dir.appendingPathComponent("stats.json")
        let result = try await runRingcapAsync(["record", "--camera", "cam=http://127.0.0.1:\(port)/video.mjpg", "--out", out.path,
                                                "--gps", "none", "--duration", "4", "--stats-json", stats.path], timeout: 60)
        #expect(result.status == 0, "\(result.stderr)")
        let (_, cameras) = try readStats(stats)
        let c = try #require(cameras["cam"])
        expectEveryFrameAccountedFor(cameras)
        let failed = c["failed"] as? Int ?? 0, written = c["written"] as? Int ?? 0
        #expect(failed > 0 && written > 0, "\(c)")
        #expect(result.stderr.contains("not a whole JPEG"), "\(result.stderr.suffix(1500))")
        let stored = try recordedFrames(in: out).frames["cam"] ?? []
        #expect(stored.count == written)
        for frame in stored {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: frame.jpg)))
            #expect(bytes.suffix(2) == [0xFF, 0xD9], "frame \(frame.seq) does not end with EOI")
            #expect(probeImage(frame.jpg)?.code != nil, "frame \(frame.seq) does not decode whole")
        }
    }

    /// `--passthrough off`, and `--quality` given, re-encode: the sidecar says so.
    @Test(arguments: [(["--passthrough", "off"], 85), (["--quality", "60"], 60)])
    func reencodedWhenAsked(arguments: [String], quality: Int) async throws {
        let dir = try TestEnvironment.scratch("passthrough-off")
        defer { try? FileManager.default.removeItem(at: dir) }
        let video = dir.appendingPathComponent("clip.avi").path
        try makeBarcodeVideo(at: video, frames: 10, codec: "mjpeg")
        let out = dir.appendingPathComponent("out")
        let result = try await runRingcapAsync(["record", "--camera", "cam=\(video)", "--out", out.path, "--gps", "none"] + arguments)
        #expect(result.status == 0, "\(result.stderr)")
        let stored = try recordedFrames(in: out).frames["cam"] ?? []
        #expect(stored.count == 10)
        for frame in stored {
            let jpeg = frame.sidecar["jpeg"] as? [String: Any] ?? [:]
            #expect(jpeg["passthrough"] as? Bool == false && jpeg["quality"] as? Int == quality, "\(jpeg)")
            #expect(probeImage(frame.jpg)?.code == frame.seq)
        }
    }
}
