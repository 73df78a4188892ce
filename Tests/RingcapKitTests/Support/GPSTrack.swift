// NMEA 0183 tracks the tests write themselves: a straight course at constant speed, one
// RMC + GGA pair per second, with correct checksums. The tests compare what gpsd and ringcap
// report with `position(atUnixNs:)` at the fix's own time.

import Foundation
@testable import RingcapKit

/// A straight track at constant speed, one fix a second from `startUnixS`.
struct NMEATrack {
    var startUnixS: Int64
    var latitude0: Double
    var longitude0: Double
    /// Metres above mean sea level (GGA's altitude); negative works (Dead Sea shore).
    var altitudeM: Double
    var speedMps: Double
    var courseDeg: Double
    var fixes: Int

    static let earthRadiusM = 6_371_000.0

    /// A vessel at 5 knots off Rio de Janeiro (southern, western: negative lat and lon), heading 045.
    static func vessel(start: Int64, fixes: Int = 60) -> NMEATrack {
        NMEATrack(startUnixS: start, latitude0: -22.95, longitude0: -43.1, altitudeM: 3.5,
                  speedMps: 5 * 1852.0 / 3600, courseDeg: 45, fixes: fixes)
    }

    /// A car at 30 m/s (108 km/h) near Munich, heading 250.
    static func car(start: Int64, fixes: Int = 60) -> NMEATrack {
        NMEATrack(startUnixS: start, latitude0: 48.1371, longitude0: 11.5754, altitudeM: 519.2,
                  speedMps: 30, courseDeg: 250, fixes: fixes)
    }

    /// The position `seconds` after the start: a flat-earth step, exact enough over a few km and,
    /// more to the point, exactly what the sentences say (they are written from this function).
    func position(afterSeconds seconds: Double) -> (lat: Double, lon: Double) {
        let d = speedMps * seconds
        let course = courseDeg * .pi / 180
        let lat = latitude0 + (d * cos(course) / Self.earthRadiusM) * 180 / .pi
        let lon = longitude0 + (d * sin(course) / (Self.earthRadiusM * cos(latitude0 * .pi / 180))) * 180 / .pi
        return (lat, lon)
    }

    /// The track's position at a fix time (ns since the epoch).
    func position(atUnixNs ns: Int64) -> (lat: Double, lon: Double) {
        position(afterSeconds: Double(ns - startUnixS * 1_000_000_000) / 1e9)
    }

    /// The sentences of fix `i` (RMC then GGA, as most receivers order a cycle), CR LF ended.
    func sentences(fix i: Int) -> String {
        let t = startUnixS + Int64(i)
        let p = position(afterSeconds: Double(i))
        var tmv = tm()
        var tt = time_t(t)
        gmtime_r(&tt, &tmv)
        let hms = String(format: "%02d%02d%02d.00", tmv.tm_hour, tmv.tm_min, tmv.tm_sec)
        let dmy = String(format: "%02d%02d%02d", tmv.tm_mday, tmv.tm_mon + 1, tmv.tm_year % 100)
        let (lat, ns) = Self.degreesMinutes(p.lat, degreeDigits: 2, positive: "N", negative: "S")
        let (lon, ew) = Self.degreesMinutes(p.lon, degreeDigits: 3, positive: "E", negative: "W")
        let knots = String(format: "%.3f", speedMps * 3600 / 1852)
        let course = String(format: "%.2f", courseDeg)
        let rmc = "GPRMC,\(hms),A,\(lat),\(ns),\(lon),\(ew),\(knots),\(course),\(dmy),,,A"
        let alt = String(format: "%.1f", altitudeM)
        let gga = "GPGGA,\(hms),\(lat),\(ns),\(lon),\(ew),1,09,0.9,\(alt),M,25.0,M,,"
        return Self.sentence(rmc) + Self.sentence(gga)
    }

    /// The whole track as an NMEA log.
    var log: String { (0..<fixes).map { sentences(fix: $0) }.joined() }

    func write(to path: String) throws {
        try log.write(toFile: path, atomically: true, encoding: .ascii)
    }

    /// `$BODY*CS\r\n` with the XOR checksum of BODY.
    static func sentence(_ body: String) -> String {
        let cs = body.utf8.reduce(UInt8(0)) { $0 ^ $1 }
        return "$\(body)*\(String(format: "%02X", cs))\r\n"
    }

    /// `ddmm.mmmmmm` with six decimals of minutes (≈ 2 mm), so rounding stays far below the
    /// tests' 1e-6° tolerance.
    static func degreesMinutes(_ v: Double, degreeDigits: Int, positive: String, negative: String) -> (String, String) {
        let totalMicroMinutes = (v.magnitude * 60 * 1_000_000).rounded()
        let degrees = Int(totalMicroMinutes / 60_000_000)
        let minutes = (totalMicroMinutes - Double(degrees) * 60_000_000) / 1_000_000
        let text = String(format: "%0\(degreeDigits)d%09.6f", degrees, minutes)
        return (text, v < 0 ? negative : positive)
    }
}

/// Samples a `GPSSnapshot` every 10 ms on a thread of its own and keeps each distinct fix (by
/// its own time). A thread, not a task: when the machine is loaded, Swift Testing's cooperative
/// threads can be held for many seconds by blocking tests, and fixes that a task would have
/// sampled in the meantime would be missed. The thread ends when the sampler goes away.
///
/// Thread-safe (a lock around what it keeps).
final class FixSampler: Sendable {
    /// What the sampling thread shares with the sampler; the thread holds this, not the sampler,
    /// so that the sampler's deinit can end it.
    private final class State: @unchecked Sendable {
        let lock = NSLock()
        var kept: [GPSFix] = []   // protected by lock
        var running = true        // protected by lock
    }
    private let state = State()

    init(_ snapshot: GPSSnapshot) {
        let state = self.state
        Thread {
            while true {
                let fix = snapshot.read()
                state.lock.lock()
                if !state.running { state.lock.unlock(); return }
                if let fix, fix.timeNs != state.kept.last?.timeNs { state.kept.append(fix) }
                state.lock.unlock()
                usleep(10_000)
            }
        }.start()
    }

    deinit { stop() }

    var fixes: [GPSFix] {
        state.lock.lock()
        defer { state.lock.unlock() }
        return state.kept
    }

    func stop() {
        state.lock.lock()
        state.running = false
        state.lock.unlock()
    }

    /// Waits until at least `count` fixes were kept (or `timeout` passes) and returns them.
    func wait(for count: Int, timeout: Double) async throws -> [GPSFix] {
        _ = try await waitUntil(timeout: timeout) { fixes.count >= count }
        return fixes
    }
}
