import Foundation
import Histogram

/// What a recording did, per camera. `captured == written + dropped + failed + paused` for each
/// camera once the recording has drained.
public struct RecordingSummary: Codable, Sendable {
    public struct Latency: Codable, Sendable {
        public var p50: Double, p90: Double, p99: Double, p999: Double, max: Double
    }

    public struct Camera: Codable, Sendable {
        public var name: String
        public var source: String
        public var captured: Int, written: Int, dropped: Int, failed: Int
        /// Frames not stored because the camera's recording was off.
        public var paused: Int = 0
        public var reconnects: Int
        public var downSeconds: Double
        public var latencyMs: Latency?
        /// For a file: the frames its container announces (a damaged or truncated file ends with
        /// fewer captured); nil for live sources or when unknown.
        public var announcedFrames: Int?
        /// The camera's thread was still blocked in its source when the recording ended.
        public var stuck: Bool

        enum CodingKeys: String, CodingKey {
            case name, source, captured, written, dropped, failed, paused, reconnects
            case downSeconds = "down_s"
            case latencyMs = "latency_ms"
            case announcedFrames = "announced_frames"
            case stuck
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(source, forKey: .source)
            try c.encode(captured, forKey: .captured)
            try c.encode(written, forKey: .written)
            try c.encode(dropped, forKey: .dropped)
            try c.encode(failed, forKey: .failed)
            try c.encode(paused, forKey: .paused)
            try c.encode(reconnects, forKey: .reconnects)
            try c.encode((downSeconds * 1000).rounded() / 1000, forKey: .downSeconds)
            try c.encode(latencyMs, forKey: .latencyMs)
            try c.encode(announcedFrames, forKey: .announcedFrames)  // null when unknown
            try c.encode(stuck, forKey: .stuck)
        }
    }

    public var elapsedSeconds: Double
    public var ringCapacity: Int
    public var writers: Int
    public var stopReason: String
    public var cameras: [Camera]

    /// The frame pool all cameras share: its slots, how many ever held a frame, and the bytes of
    /// pixel buffers they hold (what the pool made resident).
    public struct Pool: Codable, Sendable {
        public var slots: Int
        public var slotsUsed: Int
        public var residentMB: Double
        enum CodingKeys: String, CodingKey {
            case slots
            case slotsUsed = "slots_used"
            case residentMB = "resident_mb"
        }
    }
    public var pool: Pool
    /// What `--keep-free` and `--max-size` deleted (zeros when nothing was).
    public var retention = RetentionTotals()
    /// GPS time minus the system clock, ms, when fixes carried time (`GPSReader.clockOffsetMs`);
    /// set by the command after the recording. Encoded as null when unknown.
    public var clockOffsetMs: Double?
    /// Grab-to-rename latency of every camera's frames in one histogram, µs (`ringcap bench`
    /// reports its percentiles). Not part of the JSON summary.
    public var latencyUs: Histogram<UInt64>? = nil

    enum CodingKeys: String, CodingKey {
        case clockOffsetMs = "clock_offset_ms"
        case elapsedSeconds = "elapsed_s"
        case ringCapacity = "ring_capacity"
        case writers
        case stopReason = "stop_reason"
        case cameras
        case pool
        case retention
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(elapsedSeconds, forKey: .elapsedSeconds)
        try c.encode(ringCapacity, forKey: .ringCapacity)
        try c.encode(writers, forKey: .writers)
        try c.encode(stopReason, forKey: .stopReason)
        try c.encode(cameras, forKey: .cameras)
        try c.encode(pool, forKey: .pool)
        try c.encode(retention, forKey: .retention)
        try c.encode(clockOffsetMs.map { ($0 * 10).rounded() / 10 }, forKey: .clockOffsetMs)  // null when unknown
    }

    public var totalWritten: Int { cameras.reduce(0) { $0 + $1.written } }
    public var totalCaptured: Int { cameras.reduce(0) { $0 + $1.captured } }

    /// Writes the JSON summary to `path` (replacing it: it is the user's own file). Returns nil,
    /// or what failed in ringcap's words with the system's reason.
    public func writeJSON(to path: String) -> String? {
        guard let data = try? jsonData() else { return "the summary could not be encoded" }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return "cannot create it (\(String(cString: strerror(errno))))" }
        var failure: String?
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { failure = "cannot write it (\(String(cString: strerror(errno))))"; return }
                offset += n
            }
        }
        if close(fd) != 0 && failure == nil { failure = "cannot write it (\(String(cString: strerror(errno))))" }
        return failure
    }

    /// Some camera's thread is still inside a blocking source call: the process must leave
    /// without running exit handlers under it.
    public var anyCameraStuck: Bool { cameras.contains { $0.stuck } }

    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// The table printed at the end of a recording.
    public var table: String {
        var rows = [["camera", "source", "captured", "written", "dropped", "failed", "paused", "reconnects", "fps written",
                     "p50 ms", "p99 ms", "max ms"]]
        for c in cameras {
            rows.append([c.name, c.source, "\(c.captured)", "\(c.written)", "\(c.dropped)", "\(c.failed)", "\(c.paused)",
                         "\(c.reconnects)", String(format: "%.1f", Double(c.written) / max(elapsedSeconds, 1e-9)),
                         c.latencyMs.map { String(format: "%.1f", $0.p50) } ?? "-",
                         c.latencyMs.map { String(format: "%.1f", $0.p99) } ?? "-",
                         c.latencyMs.map { String(format: "%.1f", $0.max) } ?? "-"])
        }
        let widths = rows[0].indices.map { col in rows.map { $0[col].count }.max() ?? 0 }
        var text = ""
        for (r, row) in rows.enumerated() {
            let cells = row.enumerated().map { col, cell in
                col < 2 ? cell.padding(toLength: widths[col], withPad: " ", startingAt: 0)
                        : String(repeating: " ", count: widths[col] - cell.count) + cell
            }
            text += cells.joined(separator: "  ") + "\n"
            if r == 0 { text += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n" }
        }
        text += String(format: "%.2f s, %d writer(s), ring %d, ", elapsedSeconds, writers, ringCapacity) + "stopped: \(stopReason)\n"
        if retention.deletedFiles > 0 {
            text += "retention deleted \(retention.deletedFiles) file(s), \(ByteSize.format(retention.deletedBytes)), "
                + "\(retention.deletedFolders) minute folder(s) whole\n"
        }
        return text
    }
}
