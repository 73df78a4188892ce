import Foundation
import Testing
@testable import RingcapKit

@Suite struct GPSSidecarTests {
    static let source = GPSSourceJSON("gpsd://127.0.0.1:2947")

    func format(_ fix: GPSFix?, frameNs: UInt64, maxAgeNs: UInt64 = 5_000_000_000) -> String {
        var sink = ByteSink(capacity: 1024)
        appendGPSJSON(fix, frameMonotonicNs: frameNs, maxAgeNs: maxAgeNs, source: Self.source, to: &sink)
        let overflowed = sink.overflowed
        #expect(!overflowed)
        return String(decoding: sink.bytes, as: UTF8.self)
    }

    func object(_ text: String) throws -> [String: Any] {
        let value = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        return try #require(value as? [String: Any])
    }

    @Test func noFixIsNull() {
        #expect(format(nil, frameNs: 1) == "null")
        let noFix = GPSFix(latitude: 1, longitude: 2, mode: 1, receivedMonotonicNs: 0)
        #expect(format(noFix, frameNs: 1) == "null")
    }

    @Test func fullFix() throws {
        // 2026-11-22T04:14:26.250Z
        let fix = GPSFix(latitude: -22.9512345678, longitude: -43.1, altitudeM: -12.345, speedMps: 2.572,
                         trackDeg: 45.5, ephM: 17.1, mode: 3, timeNs: 1_795_320_866_250_000_000,
                         receivedMonotonicNs: 1_000_000_000)
        let text = format(fix, frameNs: 1_123_400_000)
        let o = try object(text)
        #expect(Set(o.keys) == ["lat", "lon", "alt_m", "speed_mps", "track_deg", "mode", "time", "age_ms", "eph_m", "source"])
        #expect(o["lat"] as? Double == -22.9512346)
        #expect(o["lon"] as? Double == -43.1)
        #expect(o["alt_m"] as? Double == -12.35 || o["alt_m"] as? Double == -12.34)
        #expect(o["speed_mps"] as? Double == 2.572)
        #expect(o["track_deg"] as? Double == 45.5)
        #expect(o["mode"] as? Int == 3)
        #expect(o["time"] as? String == "2026-11-22T04:14:26.250000Z")
        #expect(o["age_ms"] as? Double == 123.4)
        #expect(o["eph_m"] as? Double == 17.1)
        #expect(o["source"] as? String == "gpsd://127.0.0.1:2947")
        #expect(o["stale"] == nil)
    }

    @Test func unknownFieldsAreLeftOut() throws {
        let fix = GPSFix(latitude: 52.5, longitude: 13.4, mode: 2, receivedMonotonicNs: 5)
        let o = try object(format(fix, frameNs: 5))
        #expect(Set(o.keys) == ["lat", "lon", "mode", "age_ms", "source"])
        #expect(o["age_ms"] as? Double == 0)
    }

    @Test func staleAfterMaxAge() throws {
        let fix = GPSFix(latitude: 52.5, longitude: 13.4, mode: 2, receivedMonotonicNs: 1_000_000_000)
        let fresh = try object(format(fix, frameNs: 6_000_000_000))  // exactly 5 s: not stale yet
        #expect(fresh["stale"] == nil)
        let stale = try object(format(fix, frameNs: 6_000_000_001))
        #expect(stale["stale"] as? Bool == true)
        #expect(stale["age_ms"] as? Double == 5000)
        let custom = try object(format(fix, frameNs: 1_600_000_000, maxAgeNs: 500_000_000))
        #expect(custom["stale"] as? Bool == true)
    }

    @Test func fixAfterGrabHasAgeZero() throws {
        let fix = GPSFix(latitude: 1, longitude: 2, mode: 2, receivedMonotonicNs: 2_000)
        #expect(try object(format(fix, frameNs: 1_000))["age_ms"] as? Double == 0)
    }

    @Test func sourceIsEscaped() throws {
        let source = GPSSourceJSON("/dev/odd\"name\\")
        var sink = ByteSink(capacity: 512)
        appendGPSJSON(GPSFix(latitude: 1, longitude: 2, mode: 2, receivedMonotonicNs: 0), frameMonotonicNs: 0,
                      maxAgeNs: 1, source: source, to: &sink)
        let o = try object(String(decoding: sink.bytes, as: UTF8.self))
        #expect(o["source"] as? String == "/dev/odd\"name\\")
    }
}
