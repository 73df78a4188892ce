import Foundation
import RingcapKit

/// The scenarios of `ringcap bench`.
public enum BenchScenario: String, CaseIterable, Sendable {
    /// 2 test cameras 1280x720@30: everything written, and how long it took.
    case sustained
    /// Test cameras 1280x720 offering clearly more than the writers can encode: throughput, the
    /// age of what is written against the ring's span, resident memory over time.
    case saturate
    /// Two 1280x720 H.264 files read as fast as the pipeline takes them, nothing dropped.
    case files
    /// 1 test camera 640x480@30: latency only.
    case latency
    /// 1, 2, 4, 8 test cameras 640x480@30: CPU per frame at each count.
    case scale
    /// 2 test cameras 1280x720@15 recorded by a `ringcap record --http` child: CPU per frame with
    /// 0, 1, 10, 50 viewers and 10 of a variant, against a C sender of the same bytes.
    case live
}

/// One recording of the bench, as printed: one JSON object with exactly the names of
/// `CodingKeys`, and a table row with the details beside it.
///
/// A plain value.
public struct BenchReport: Codable, Sendable {
    /// Grab-to-rename latency percentiles over every frame written, ms. A plain value.
    public struct Latency: Codable, Sendable {
        public var p50: Double, p90: Double, p99: Double, p999: Double, max: Double
    }

    public var scenario: String
    public var cameras: Int
    /// How long the recording ran, drain included.
    public var seconds: Double
    /// Frames the cameras delivered (captured) a second.
    public var offeredFPS: Double
    public var writtenFPS: Double
    public var dropped: Int
    public var failed: Int
    public var latencyMs: Latency?
    /// Process CPU time (every thread, user + system) during the recording / frames written.
    public var cpuMsPerFrame: Double
    /// The highest resident memory sampled during the recording (once a second).
    public var peakRSSMB: Double
    /// `MachineLimit.fps` measured in the same run.
    public var limitFPS: Double
    /// `writtenFPS / limitFPS`.
    public var efficiency: Double

    /// What the table shows besides the JSON's names. Not encoded.
    public var details = Details()

    /// Details of a report that only the table shows. A plain value.
    public struct Details: Sendable {
        public var limit: MachineLimit?
        public var writers = 0
        public var ringCapacity = 0
        /// Time a full ring covers at the offered rate: `ringCapacity / offeredFPS`.
        public var ringSpanMs = 0.0
        /// Resident memory, MiB, once a second during the recording.
        public var residentSamplesMB: [Double] = []
        public var captured = 0
        public var written = 0
        public var outDirectory = ""
        /// Ages of the frames written, from the files (saturate only).
        public var ages: FrameAges?
    }

    enum CodingKeys: String, CodingKey {
        case scenario, cameras, seconds, dropped, failed, efficiency
        case offeredFPS = "offered_fps"
        case writtenFPS = "written_fps"
        case latencyMs = "latency_ms"
        case cpuMsPerFrame = "cpu_ms_per_frame"
        case peakRSSMB = "peak_rss_mb"
        case limitFPS = "limit_fps"
    }

    public init(scenario: String, cameras: Int, seconds: Double, offeredFPS: Double, writtenFPS: Double, dropped: Int,
                failed: Int, latencyMs: Latency?, cpuMsPerFrame: Double, peakRSSMB: Double, limitFPS: Double,
                efficiency: Double) {
        self.scenario = scenario
        self.cameras = cameras
        self.seconds = seconds
        self.offeredFPS = offeredFPS
        self.writtenFPS = writtenFPS
        self.dropped = dropped
        self.failed = failed
        self.latencyMs = latencyMs
        self.cpuMsPerFrame = cpuMsPerFrame
        self.peakRSSMB = peakRSSMB
        self.limitFPS = limitFPS
        self.efficiency = efficiency
    }

    /// Resident memory grown over the second half of the recording, MiB (the pools fill in its
    /// first moments and may still touch a few more slots while the cameras' shares of the ring
    /// move); nil with fewer than four samples.
    public var residentGrowthMB: Double? {
        let samples = details.residentSamplesMB
        guard samples.count >= 4 else { return nil }
        return samples.last! - samples[samples.count / 2]
    }

    /// Flat: grew by at most 8 MiB or 3 % of the peak over the second half.
    public var residentIsFlat: Bool? {
        residentGrowthMB.map { $0 <= max(8, 0.03 * peakRSSMB) }
    }

    /// One line of JSON (sorted names, rounded figures).
    public func jsonLine() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var rounded = self
        func r(_ x: Double, _ digits: Double = 1000) -> Double { (x * digits).rounded() / digits }
        rounded.seconds = r(seconds)
        rounded.offeredFPS = r(offeredFPS, 10)
        rounded.writtenFPS = r(writtenFPS, 10)
        rounded.cpuMsPerFrame = r(cpuMsPerFrame)
        rounded.peakRSSMB = r(peakRSSMB, 10)
        rounded.limitFPS = r(limitFPS, 10)
        rounded.efficiency = r(efficiency)
        guard let data = try? encoder.encode(rounded) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(scenario, forKey: .scenario)
        try c.encode(cameras, forKey: .cameras)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(offeredFPS, forKey: .offeredFPS)
        try c.encode(writtenFPS, forKey: .writtenFPS)
        try c.encode(dropped, forKey: .dropped)
        try c.encode(failed, forKey: .failed)
        try c.encode(latencyMs, forKey: .latencyMs)  // null when nothing was written
        try c.encode(cpuMsPerFrame, forKey: .cpuMsPerFrame)
        try c.encode(peakRSSMB, forKey: .peakRSSMB)
        try c.encode(limitFPS, forKey: .limitFPS)
        try c.encode(efficiency, forKey: .efficiency)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(scenario: try c.decode(String.self, forKey: .scenario), cameras: try c.decode(Int.self, forKey: .cameras),
                  seconds: try c.decode(Double.self, forKey: .seconds),
                  offeredFPS: try c.decode(Double.self, forKey: .offeredFPS),
                  writtenFPS: try c.decode(Double.self, forKey: .writtenFPS),
                  dropped: try c.decode(Int.self, forKey: .dropped), failed: try c.decode(Int.self, forKey: .failed),
                  latencyMs: try c.decodeIfPresent(Latency.self, forKey: .latencyMs),
                  cpuMsPerFrame: try c.decode(Double.self, forKey: .cpuMsPerFrame),
                  peakRSSMB: try c.decode(Double.self, forKey: .peakRSSMB),
                  limitFPS: try c.decode(Double.self, forKey: .limitFPS),
                  efficiency: try c.decode(Double.self, forKey: .efficiency))
    }

    /// The table of several reports, then a few lines of details per report.
    public static func table(_ reports: [BenchReport]) -> String {
        var rows = [["scenario", "cams", "seconds", "offered fps", "written fps", "dropped", "failed", "p50 ms", "p99 ms",
                     "max ms", "cpu ms/frame", "peak RSS MB", "limit fps", "efficiency"]]
        func f(_ x: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", x) }
        for r in reports {
            rows.append([r.scenario, "\(r.cameras)", f(r.seconds, 2), f(r.offeredFPS), f(r.writtenFPS), "\(r.dropped)",
                         "\(r.failed)", r.latencyMs.map { f($0.p50) } ?? "-", r.latencyMs.map { f($0.p99) } ?? "-",
                         r.latencyMs.map { f($0.max) } ?? "-", f(r.cpuMsPerFrame, 3), f(r.peakRSSMB), f(r.limitFPS),
                         f(r.efficiency, 3)])
        }
        let widths = rows[0].indices.map { col in rows.map { $0[col].count }.max() ?? 0 }
        var text = ""
        for (i, row) in rows.enumerated() {
            let cells = row.enumerated().map { col, cell in
                col == 0 ? cell.padding(toLength: widths[col], withPad: " ", startingAt: 0)
                         : String(repeating: " ", count: widths[col] - cell.count) + cell
            }
            text += cells.joined(separator: "  ") + "\n"
            if i == 0 { text += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n" }
        }
        return text
    }

    /// The lines under the table for this report: how the limit was made up, and for
    /// saturation the age of the frames and resident memory over time.
    public var detailLines: String {
        var text = ""
        let label = cameras > 1 && scenario == "scale" ? "\(scenario) (\(cameras) cameras)" : scenario
        if let limit = details.limit {
            // "limit 970.5 fps = cpu0 (encode 2.06 ms) + cpu1 (encode 2.10 ms), one frame after another on each"
            let parts = limit.perCore.map { core -> String in
                var part = "cpu\(core.cpu) (" + String(format: "encode %.2f ms", 1000 / core.encodeFPS)
                if let decode = core.decodeFPS { part += String(format: " + decode %.2f ms", 1000 / decode) }
                if core.encodeCPUFPS > core.encodeFPS * 1.1 { part += ", shared with other work" }
                return part + ")"
            }
            text += "\(label): limit \(String(format: "%.1f", limit.fps)) fps = " + parts.joined(separator: " + ")
                + ": every core at once, each doing one frame after another (mean of before and after the recording)\n"
        }
        text += "\(label): \(details.captured) captured, \(details.written) written, \(dropped) dropped, \(failed) failed; \(details.writers) writer(s), ring \(details.ringCapacity)\n"
        if scenario == BenchScenario.saturate.rawValue {
            if let ages = details.ages {
                let ok = ages.oldestWhileCapturingMs <= ringSpanAllowanceMs
                let until = ages.warmUpMs.map { end in
                    String(format: "the first %.0f ms (the ring first filled after %.0f ms)", end, ages.ringFilledMs ?? 0)
                } ?? "the ring never filled"
                text += String(format: "\(label): warm-up, \(until): %d frames written, the oldest %.1f ms after its grab\n",
                               ages.warmUp, ages.oldestWarmUpMs)
                text += String(format: "\(label): while capturing after that, %d frames written, the oldest %.1f ms after its grab; the ring spans %.1f ms (%d frames at %.1f fps offered), + %.1f ms for the frame's own encode and write: ",
                               ages.whileCapturing, ages.oldestWhileCapturingMs, details.ringSpanMs, details.ringCapacity,
                               offeredFPS, ringSpanAllowanceMs - details.ringSpanMs) + (ok ? "ok" : "OLDER THAN THE RING") + "\n"
                text += String(format: "\(label): after capture stopped, the %d frames left in the ring were written, the last %.1f ms after its grab\n",
                               ages.afterStop, ages.oldestAfterStopMs)
            }
            let samples = details.residentSamplesMB.map { String(format: "%.0f", $0) }.joined(separator: " ")
            var line = "\(label): resident MB each second: \(samples)"
            if let growth = residentGrowthMB, let flat = residentIsFlat {
                line += String(format: "; %+.1f MB over the second half: ", growth) + (flat ? "flat" : "GROWING")
            }
            text += line + "\n"
        }
        return text
    }

    /// The ring's span plus the time the frame itself spends being encoded and written: four
    /// times its single-core cost, for a writer that shares its core with the capture threads.
    public var ringSpanAllowanceMs: Double {
        details.ringSpanMs + 4 * 1000 * (details.limit?.secondsPerFrame ?? 0)
    }
}
