/// The sidecar's `source` value for GPS fixes, formatted once (as a JSON string literal, quotes
/// included) so that writing it per frame copies bytes and allocates nothing.
///
/// A plain value: thread-safe (its bytes are never mutated after init).
public struct GPSSourceJSON: Sendable {
    public let bytes: [UInt8]

    public init(_ source: String) {
        var sink = ByteSink(capacity: source.utf8.count * 6 + 2)
        sink.append(jsonString: source)
        bytes = Array(sink.bytes)
    }
}

/// Writes a frame's `gps` value: `null` when there is no fix, otherwise an object with exactly
/// these names where known (unknown ones are left out):
///
/// `lat`, `lon` (degrees WGS-84, 7 decimals ≈ 1 cm), `alt_m` (above mean sea level), `speed_mps`,
/// `track_deg` (true), `mode` (2 or 3), `time` (the fix's own UTC time), `age_ms` (how long
/// before the frame's grab the fix was received, monotonic clock), `eph_m` (horizontal error
/// estimate), `source`, and `"stale": true` when `age_ms` exceeds the maximum age.
///
/// Capture reads the snapshot just after grab, so a fix can arrive between the grab and that
/// read; its age is then written as 0 rather than negative.
///
/// Allocates nothing: for the writer's hot path. Thread-safe as long as each thread uses its own
/// sink.
public func appendGPSJSON(_ fix: GPSFix?, frameMonotonicNs: UInt64, maxAgeNs: UInt64, source: GPSSourceJSON,
                          to sink: inout ByteSink) {
    guard let fix, fix.mode >= 2, fix.latitude.isFinite, fix.longitude.isFinite else {
        sink.append("null")
        return
    }
    let ageNs = frameMonotonicNs > fix.receivedMonotonicNs ? frameMonotonicNs - fix.receivedMonotonicNs : 0
    sink.append("{\"lat\":")
    sink.append(fixed: fix.latitude, decimals: 7)
    sink.append(",\"lon\":")
    sink.append(fixed: fix.longitude, decimals: 7)
    if fix.altitudeM.isFinite {
        sink.append(",\"alt_m\":")
        sink.append(fixed: fix.altitudeM, decimals: 2)
    }
    if fix.speedMps.isFinite {
        sink.append(",\"speed_mps\":")
        sink.append(fixed: fix.speedMps, decimals: 3)
    }
    if fix.trackDeg.isFinite {
        sink.append(",\"track_deg\":")
        sink.append(fixed: fix.trackDeg, decimals: 2)
    }
    sink.append(",\"mode\":")
    sink.append(int: Int64(fix.mode))
    if fix.timeNs != GPSFix.noTime {
        sink.append(",\"time\":\"")
        sink.append(isoTimeNs: fix.timeNs)
        sink.append(byte: UInt8(ascii: "\""))
    }
    sink.append(",\"age_ms\":")
    sink.append(fixed: Double(ageNs) / 1e6, decimals: 1)
    if fix.ephM.isFinite {
        sink.append(",\"eph_m\":")
        sink.append(fixed: fix.ephM, decimals: 2)
    }
    sink.append(",\"source\":")
    source.bytes.withUnsafeBufferPointer { sink.append(bytes: $0) }
    if ageNs > maxAgeNs {
        sink.append(",\"stale\":true")
    }
    sink.append(byte: UInt8(ascii: "}"))
}
