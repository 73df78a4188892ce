import Foundation
import Testing
@testable import RingcapKit

/// `ringcap record` with a test-pattern camera and positions from a real gpsd fed by gpsfake:
/// the sidecars, the JPEGs' EXIF as exiftool reads it, and a gpsd that dies mid-recording.
@Suite struct GPSRecordEndToEndTests {
    static func text(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    static func gps(_ frame: RecordedFrame) -> [String: Any]? { frame.sidecar["gps"] as? [String: Any] }

    /// Checks a sidecar's gps object against the track at the fix's own time.
    static func expectOnTrack(_ gps: [String: Any], _ track: NMEATrack, source: String,
                              sourceLocation: SourceLocation = #_sourceLocation) throws {
        let time = try #require(gps["time"] as? String, sourceLocation: sourceLocation)
        let seconds = try #require(parseSidecarTime(time), sourceLocation: sourceLocation)
        let expected = track.position(atUnixNs: Int64((seconds * 1e9).rounded()))
        let lat = try #require(gps["lat"] as? Double), lon = try #require(gps["lon"] as? Double)
        #expect(abs(lat - expected.lat) < 1e-6, "lat \(lat) vs \(expected.lat) at \(time)", sourceLocation: sourceLocation)
        #expect(abs(lon - expected.lon) < 1e-6, "lon \(lon) vs \(expected.lon) at \(time)", sourceLocation: sourceLocation)
        let mode = try #require(gps["mode"] as? Int)
        #expect(mode == 2 || mode == 3, sourceLocation: sourceLocation)
        if mode == 3 { #expect(abs((gps["alt_m"] as? Double ?? .nan) - track.altitudeM) < 0.01, sourceLocation: sourceLocation) }
        if let speed = gps["speed_mps"] as? Double { #expect(abs(speed - track.speedMps) < 0.01, sourceLocation: sourceLocation) }
        if let course = gps["track_deg"] as? Double { #expect(abs(course - track.courseDeg) < 0.01, sourceLocation: sourceLocation) }
        #expect(gps["source"] as? String == source, sourceLocation: sourceLocation)
    }

    /// exiftool's reading of every JPEG, by file path (one exiftool run for all of them).
    static func exiftool(_ paths: [String]) throws -> [String: [String: Any]] {
        let r = try runCommand("/usr/bin/exiftool", ["-j", "-n", "-G1", "-a"] + paths)
        #expect(r.status == 0, "\(r.stderr)")
        let list = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        var byPath: [String: [String: Any]] = [:]
        for tags in list { byPath[tags["SourceFile"] as? String ?? "?"] = tags }
        return byPath
    }

    /// The JPEG's EXIF says what its sidecar says: time, camera, and the fix.
    static func expectEXIFMatchesSidecar(_ frame: RecordedFrame, _ tags: [String: Any],
                                         sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(tags["ExifTool:Warning"] == nil, "\(tags["ExifTool:Warning"] ?? "")", sourceLocation: sourceLocation)
        #expect(tags["IFD0:Make"] as? String == "ringcap", sourceLocation: sourceLocation)
        #expect(tags["IFD0:Model"] as? String == frame.camera, sourceLocation: sourceLocation)
        #expect(tags["IFD0:Software"] as? String == "ringcap \(RingcapVersion.string)", sourceLocation: sourceLocation)
        // "2026-11-22T04:30:35.720682Z" → "2026:11:22 04:30:35.720682+00:00"
        let time = try #require(frame.sidecar["time"] as? String)
        let exifTime = time.prefix(19).replacingOccurrences(of: "-", with: ":").replacingOccurrences(of: "T", with: " ")
            + "." + time.dropFirst(20).prefix(6) + "+00:00"
        #expect(tags["Composite:SubSecDateTimeOriginal"] as? String == exifTime, sourceLocation: sourceLocation)
        guard let gps = gps(frame) else {
            #expect(tags.keys.filter { $0.hasPrefix("GPS:") }.isEmpty, "no GPS IFD without a fix", sourceLocation: sourceLocation)
            return
        }
        func number(_ key: String) -> Double? { (tags[key] as? Double) ?? (tags[key] as? Int).map(Double.init) }
        #expect(abs((number("Composite:GPSLatitude") ?? .nan) - (gps["lat"] as! Double)) < 1e-6, sourceLocation: sourceLocation)
        #expect(abs((number("Composite:GPSLongitude") ?? .nan) - (gps["lon"] as! Double)) < 1e-6, sourceLocation: sourceLocation)
        #expect(tags["GPS:GPSLatitudeRef"] as? String == ((gps["lat"] as! Double) < 0 ? "S" : "N"), sourceLocation: sourceLocation)
        #expect(tags["GPS:GPSLongitudeRef"] as? String == ((gps["lon"] as! Double) < 0 ? "W" : "E"), sourceLocation: sourceLocation)
        if let alt = gps["alt_m"] as? Double {
            #expect(abs((number("Composite:GPSAltitude") ?? .nan) - alt) < 0.01, sourceLocation: sourceLocation)
        } else {
            #expect(tags["GPS:GPSAltitude"] == nil, sourceLocation: sourceLocation)
        }
        if let speed = gps["speed_mps"] as? Double {
            #expect(tags["GPS:GPSSpeedRef"] as? String == "K", sourceLocation: sourceLocation)
            #expect(abs((number("GPS:GPSSpeed") ?? .nan) - speed * 3.6) < 0.01, sourceLocation: sourceLocation)
        }
        if let course = gps["track_deg"] as? Double {
            #expect(tags["GPS:GPSTrackRef"] as? String == "T", sourceLocation: sourceLocation)
            #expect(abs((number("GPS:GPSTrack") ?? .nan) - course) < 0.01, sourceLocation: sourceLocation)
        }
        #expect(tags["GPS:GPSMapDatum"] as? String == "WGS-84", sourceLocation: sourceLocation)
        if let fixTime = gps["time"] as? String {
            // "2026-11-22T03:30:38.000000Z" → GPSDateStamp "2026:11:22", GPSTimeStamp "3:30:38" (or with 0s).
            #expect(tags["GPS:GPSDateStamp"] as? String == fixTime.prefix(10).replacingOccurrences(of: "-", with: ":"),
                    sourceLocation: sourceLocation)
            let stamp = (tags["GPS:GPSTimeStamp"] as? String ?? "").split(separator: ":").compactMap { Double($0) }
            let parts = fixTime.dropFirst(11).prefix(15).split(separator: ":").compactMap { Double($0) }
            #expect(stamp.count == 3 && parts.count == 3 && zip(stamp, parts).allSatisfy { abs($0 - $1) < 1e-5 },
                    "GPSTimeStamp \(stamp) vs \(fixTime)", sourceLocation: sourceLocation)
        }
    }

    @Test func everyFrameCarriesTheTrackPosition() async throws {
        let dir = try TemporaryDirectory("ringcap-gps-e2e")
        let track = NMEATrack.car(start: Int64(Date().timeIntervalSince1970) - 2, fixes: 80)
        try track.write(to: dir.path + "/car.nmea")
        let port = freeLoopbackPort()
        // gpsfake loops its log, 0.1 s per sentence: a fix every 0.2 s, so a few seconds of
        // recording see many fixes, however long a loaded machine holds the test back.
        let gpsfake = try GPSFake(dir.path + "/car.nmea", port: port, in: dir.path)
        defer { gpsfake.stop() }
        try #require(try await gpsfake.waitServingFixes(timeout: 30), "\(gpsfake.logTail())")

        let out = URL(fileURLWithPath: dir.path + "/out"), stats = dir.path + "/stats.json"
        let result = try runRingcap(["record", "--camera", "bow=test:320x240@10", "--duration", "4",
                                     "--gps", "gpsd://127.0.0.1:\(port)", "--out", out.path, "--stats-json", stats])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let (byCamera, strays, _) = try recordedFrames(in: out)
        #expect(strays.isEmpty)
        let frames = try #require(byCamera["bow"])
        try #require(frames.count >= 20, "\(frames.count) frames")
        try expectSidecarsValid(frames.map(\.json))

        let withFix = frames.filter { Self.gps($0) != nil }
        #expect(withFix.count * 2 >= frames.count, "\(withFix.count) of \(frames.count) frames have a fix")
        #expect(Self.gps(frames.last!) != nil, "the last frames have a fix")
        for frame in withFix {
            let gps = Self.gps(frame)!
            try Self.expectOnTrack(gps, track, source: "gpsd://127.0.0.1:\(port)")
            // A fix every 0.2 s: a frame's fix is never much older than that.
            let age = try #require(gps["age_ms"] as? Double)
            #expect(age >= 0 && age < 1500, "age_ms \(age)")
            #expect(gps["stale"] == nil)
        }
        // Fixes change during the recording: the frames do not all carry the same one.
        #expect(Set(withFix.compactMap { Self.gps($0)?["time"] as? String }).count >= 5)

        let exif = try Self.exiftool(frames.map(\.jpg))
        for frame in frames {
            try Self.expectEXIFMatchesSidecar(frame, try #require(exif[frame.jpg], "\(frame.jpg) not read"))
        }

        let (root, _) = try readStats(URL(fileURLWithPath: stats))
        #expect(root["clock_offset_ms"] is Double, "clock_offset_ms: \(root["clock_offset_ms"] ?? "missing")")
    }

    /// gpsd is killed once positions reach the recording and restarted a few seconds later:
    /// recording never stops, frames in between carry a stale fix or none, and fixes resume.
    /// Each step waits for what ringcap logs, not for the clock, so a loaded machine only slows
    /// it down; SIGINT ends the recording once fixes are back.
    @Test func gpsdKilledMidRecordingThenRestarted() async throws {
        let dir = try TemporaryDirectory("ringcap-gps-e2e")
        let track = NMEATrack.vessel(start: Int64(Date().timeIntervalSince1970), fixes: 40)
        try track.write(to: dir.path + "/vessel.nmea")
        let port = freeLoopbackPort()
        var gpsfake = try GPSFake(dir.path + "/vessel.nmea", port: port, in: dir.path)
        try #require(try await gpsfake.waitServingFixes(timeout: 30), "\(gpsfake.logTail())")

        let out = dir.path + "/out", log = dir.path + "/stderr"
        let ringcap = try TestProcess(TestEnvironment.ringcapBinary.path,
                                      ["record", "--camera", "mast=test:320x240@10", "--duration", "120",
                                       "--gps", "gpsd://127.0.0.1:\(port)", "--gps-max-age", "1", "--out", out],
                                      stderr: log)
        defer { ringcap.stop() }
        try #require(try await waitUntil(timeout: 20) { Self.text(log).contains("positions from") },
                     "\(Self.text(log)); \(gpsfake.logTail())")
        try await Task.sleep(for: .seconds(1.5))
        gpsfake.stop()
        try #require(try await waitUntil(timeout: 20) { Self.text(log).contains("lost gpsd") }, "\(Self.text(log))")
        try await Task.sleep(for: .seconds(2))
        gpsfake = try GPSFake(dir.path + "/vessel.nmea", port: port, in: dir.path)
        defer { gpsfake.stop() }
        try #require(try await gpsfake.waitServingFixes(timeout: 30), "\(gpsfake.logTail())")
        try #require(try await waitUntil(timeout: 30) { Self.text(log).components(separatedBy: "positions from").count - 1 >= 2 },
                     "positions resume: \(Self.text(log)); \(gpsfake.logTail())")
        try await Task.sleep(for: .seconds(1.5))
        ringcap.signalGroup(SIGINT)
        #expect(try await waitUntil(timeout: 20) { !ringcap.isRunning })
        let stderr = Self.text(log)
        #expect(ringcap.exitStatus == 0, "\(stderr)")

        let (byCamera, _, _) = try recordedFrames(in: URL(fileURLWithPath: out))
        let frames = try #require(byCamera["mast"])
        try expectSidecarsValid(frames.map(\.json))
        // Recording never stopped: every frame from 0 is there, at about the camera's rate.
        #expect(frames.map(\.seq) == Array(0..<frames.count))
        #expect(frames.count >= 40, "\(frames.count) frames: at 10 frames/s for at least 5 s")

        let firstFix = try #require(frames.firstIndex { Self.gps($0) != nil }, "fixes before gpsd went away")
        let firstNull = try #require(frames[firstFix...].firstIndex { Self.gps($0) == nil },
                                     "frames while gpsd was away carry no fix")
        let lastNull = try #require(frames.lastIndex { Self.gps($0) == nil })
        let resumed = frames[(lastNull + 1)...]
        #expect(resumed.count >= 5, "fixes resume after gpsd comes back (\(resumed.count) frames)")
        // Between the first and the last frame without a fix: none, or a stale one.
        for frame in frames[firstNull...lastNull] {
            if let gps = Self.gps(frame) { #expect(gps["stale"] as? Bool == true || (gps["age_ms"] as? Double ?? 0) <= 1000) }
        }
        for frame in frames {
            guard let gps = Self.gps(frame) else { continue }
            try Self.expectOnTrack(gps, track, source: "gpsd://127.0.0.1:\(port)")
            let age = try #require(gps["age_ms"] as? Double)
            #expect((gps["stale"] as? Bool == true) == (age > 1000), "stale exactly when older than --gps-max-age")
        }
        #expect(stderr.components(separatedBy: "lost gpsd").count - 1 == 1, "the loss is said once")
        #expect(stderr.components(separatedBy: "positions from").count - 1 == 2)
    }

    /// `--gps fixed:` through the CLI: every frame carries the position, fresh, in sidecar and EXIF.
    @Test func fixedPositionInEveryFrame() throws {
        let dir = try TemporaryDirectory("ringcap-gps-e2e")
        let out = URL(fileURLWithPath: dir.path + "/out")
        let result = try runRingcap(["record", "--camera", "pole=test:160x120@10", "--frames", "10",
                                     "--gps", "fixed:-33.8568,151.2153,-5.5", "--out", out.path])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let frames = try #require(try recordedFrames(in: out).frames["pole"])
        #expect(frames.count == 10)
        try expectSidecarsValid(frames.map(\.json))
        let exif = try Self.exiftool(frames.map(\.jpg))
        for frame in frames {
            let gps = try #require(Self.gps(frame))
            #expect(gps["lat"] as? Double == -33.8568 && gps["lon"] as? Double == 151.2153 && gps["alt_m"] as? Double == -5.5)
            #expect(gps["mode"] as? Int == 3 && gps["time"] == nil && gps["stale"] == nil)
            #expect(gps["source"] as? String == "fixed:-33.8568,151.2153,-5.5")
            try Self.expectEXIFMatchesSidecar(frame, try #require(exif[frame.jpg]))
        }
    }

    /// Bad GPS flags are usage errors (64) naming the flag and the value.
    @Test func badGPSFlagsAreUsageErrors() throws {
        let dir = try TemporaryDirectory("ringcap-gps-e2e")
        for (args, mentioned) in [(["--gps", "fixed:95,1"], "--gps 'fixed:95,1'"), (["--gps", "serial"], "--gps 'serial'"),
                                  (["--gps-max-age", "-1"], "--gps-max-age")] {
            let result = try runRingcap(["record", "--camera", "test:160x120@10", "--frames", "1", "--out", dir.path] + args)
            #expect(result.status == 64, "\(args): \(result.stderr)")
            #expect(result.stderr.contains(mentioned), "\(result.stderr)")
        }
    }
}
