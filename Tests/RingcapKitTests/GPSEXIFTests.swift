import Foundation
import Testing
@testable import RingcapKit

/// The EXIF segment read back by exiftool, an independent reader, tag by tag.
@Suite struct GPSEXIFTests {
    /// A small real JPEG from ffmpeg's test source.
    static func sampleJPEG(in dir: TemporaryDirectory) throws -> [UInt8] {
        let path = dir.path + "/src.jpg"
        let r = try runCommand("/usr/bin/ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120", "-frames:v", "1", "-y", path])
        #expect(r.status == 0, "\(r.stderr)")
        return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Writes SOI, the APP1, then the JPEG without its SOI (as the writers do) and returns what
    /// `exiftool -j -n -G1` says about it, plus whether ffmpeg still decodes it.
    func roundTrip(wallTimeNs: Int64, fix: GPSFix?, make: String = "ringcap", model: String = "cam0",
                   software: String = "ringcap 0.1.0") throws -> [String: Any] {
        let dir = try TemporaryDirectory()
        let jpeg = try Self.sampleJPEG(in: dir)
        #expect(jpeg[0] == 0xFF && jpeg[1] == 0xD8)
        var exif = EXIFSegment(make: make, model: model, software: software)
        let app1 = exif.build(wallTimeNs: wallTimeNs, fix: fix)
        #expect(app1[0] == 0xFF && app1[1] == 0xE1)
        #expect(Int(app1[2]) << 8 | Int(app1[3]) == app1.count - 2)
        let out = [0xFF, 0xD8] + Array(app1) + jpeg[2...]
        let path = dir.path + "/out.jpg"
        try Data(out).write(to: URL(fileURLWithPath: path))

        let decode = try runCommand("/usr/bin/ffmpeg", ["-v", "error", "-i", path, "-f", "null", "-"])
        #expect(decode.status == 0 && decode.stderr.isEmpty, "ffmpeg: \(decode.stderr)")
        let r = try runCommand("/usr/bin/exiftool", ["-j", "-n", "-G1", "-a", path])
        #expect(r.status == 0, "\(r.stderr)")
        let list = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        let tags = try #require(list.first)
        #expect(tags["ExifTool:Warning"] == nil, "exiftool warns: \(tags["ExifTool:Warning"] ?? "")")
        #expect(tags["ExifTool:Error"] == nil)
        return tags
    }

    func number(_ v: Any?) -> Double? {
        if let d = v as? Double { return d }
        if let i = v as? Int { return Double(i) }
        if let s = v as? String { return Double(s) }
        return nil
    }

    @Test func southWestBelowSeaLevelWithEverything() throws {
        // 2026-11-22 04:14:26.123456 UTC wall clock; fix time 2026-11-22 04:14:25.250 UTC.
        let wall: Int64 = 1_795_320_866_123_456_000
        let fix = GPSFix(latitude: -22.951234567, longitude: -43.100987654, altitudeM: -430.25, speedMps: 30,
                         trackDeg: 250.5, ephM: 5, mode: 3, timeNs: 1_795_320_865_250_000_000, receivedMonotonicNs: 0)
        let t = try roundTrip(wallTimeNs: wall, fix: fix)
        #expect(t["IFD0:Make"] as? String == "ringcap")
        #expect(t["IFD0:Model"] as? String == "cam0")
        #expect(t["IFD0:Software"] as? String == "ringcap 0.1.0")
        #expect(t["IFD0:ModifyDate"] as? String == "2026:11:22 04:14:26")
        #expect(t["ExifIFD:DateTimeOriginal"] as? String == "2026:11:22 04:14:26")
        #expect(number(t["ExifIFD:SubSecTimeOriginal"]) == 123456)
        #expect(t["ExifIFD:OffsetTimeOriginal"] as? String == "+00:00")
        #expect(t["ExifIFD:OffsetTime"] as? String == "+00:00")
        #expect(t["Composite:SubSecDateTimeOriginal"] as? String == "2026:11:22 04:14:26.123456+00:00")
        #expect(t["GPS:GPSVersionID"] as? String == "2 3 0 0")
        #expect(t["GPS:GPSLatitudeRef"] as? String == "S")
        #expect(t["GPS:GPSLongitudeRef"] as? String == "W")
        #expect(abs(number(t["GPS:GPSLatitude"])! - 22.951234567) < 1e-6)
        #expect(abs(number(t["GPS:GPSLongitude"])! - 43.100987654) < 1e-6)
        #expect(abs(number(t["Composite:GPSLatitude"])! - fix.latitude) < 1e-6)
        #expect(abs(number(t["Composite:GPSLongitude"])! - fix.longitude) < 1e-6)
        #expect(number(t["GPS:GPSAltitudeRef"]) == 1)
        #expect(number(t["GPS:GPSAltitude"]) == 430.25)
        #expect(number(t["Composite:GPSAltitude"]) == -430.25)
        #expect(t["GPS:GPSSpeedRef"] as? String == "K")
        #expect(number(t["GPS:GPSSpeed"]) == 108)
        #expect(t["GPS:GPSTrackRef"] as? String == "T")
        #expect(number(t["GPS:GPSTrack"]) == 250.5)
        #expect(t["GPS:GPSDateStamp"] as? String == "2026:11:22")
        let stamp = try #require(t["GPS:GPSTimeStamp"] as? String).split(separator: ":").compactMap { Double($0) }
        #expect(stamp == [4, 14, 25.25])
        #expect(t["GPS:GPSMapDatum"] as? String == "WGS-84")
    }

    @Test func northEast2DWithoutTimeOrMotion() throws {
        let fix = GPSFix(latitude: 59.999999999, longitude: 179.9999995, mode: 2, receivedMonotonicNs: 0)
        let t = try roundTrip(wallTimeNs: 1_000_000_000_000_000_000, fix: fix, model: "bow-camera")
        #expect(t["IFD0:Model"] as? String == "bow-camera")
        #expect(t["ExifIFD:DateTimeOriginal"] as? String == "2001:09:09 01:46:40")
        #expect(number(t["ExifIFD:SubSecTimeOriginal"]) == 0)
        #expect(t["GPS:GPSLatitudeRef"] as? String == "N")
        #expect(t["GPS:GPSLongitudeRef"] as? String == "E")
        #expect(abs(number(t["GPS:GPSLatitude"])! - 59.999999999) < 1e-6)
        #expect(abs(number(t["GPS:GPSLongitude"])! - 179.9999995) < 1e-6)
        #expect(t["GPS:GPSMapDatum"] as? String == "WGS-84")
        for absent in ["GPS:GPSAltitude", "GPS:GPSAltitudeRef", "GPS:GPSSpeed", "GPS:GPSTrack", "GPS:GPSTimeStamp", "GPS:GPSDateStamp"] {
            #expect(t[absent] == nil, "\(absent) should be absent")
        }
    }

    @Test func noFixNoGPSIFD() throws {
        let t = try roundTrip(wallTimeNs: 1_795_320_866_999_999_000, fix: nil, make: "ringcap", model: "rtsp://cam/ä")
        #expect(t["IFD0:Model"] as? String == "rtsp://cam/__")  // ä is two UTF-8 bytes, each outside ASCII
        #expect(number(t["ExifIFD:SubSecTimeOriginal"]) == 999999)
        #expect(t.keys.filter { $0.hasPrefix("GPS:") }.isEmpty)
    }

    @Test func buildReusesItsMemory() {
        var exif = EXIFSegment(make: "ringcap", model: "cam0", software: "ringcap test")
        let fix = GPSFix(latitude: 1, longitude: 2, altitudeM: 3, speedMps: 4, trackDeg: 5, mode: 3,
                         timeNs: 1_795_320_865_250_000_000, receivedMonotonicNs: 0)
        let a = exif.build(wallTimeNs: 1, fix: fix)
        let b = exif.build(wallTimeNs: 2, fix: nil)
        #expect(a.baseAddress == b.baseAddress)
        #expect(b.count < a.count)
    }
}
