import Foundation
import Testing

/// `ringcap bench` end to end: the real binary makes a real recording and reports it as JSON
/// with exactly the agreed names; the frames it recorded are on disk and decode. Figures are
/// checked for consistency only, never for speed.
@Suite(.serialized)
struct BenchCommandTests {
    static let names: Set<String> = ["scenario", "cameras", "seconds", "offered_fps", "written_fps", "dropped", "failed",
                                     "latency_ms", "cpu_ms_per_frame", "peak_rss_mb", "limit_fps", "efficiency"]

    @Test func latencyScenarioReportsJSONAndRecordsRealFrames() throws {
        let dir = try TestEnvironment.scratch("bench")
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try runRingcap(["bench", "--scenario", "latency", "--seconds", "2", "--json", "--out", dir.path], timeout: 60)
        #expect(result.status == 0, "stderr: \(result.stderr)")

        let lines = result.stdout.split(separator: "\n")
        try #require(lines.count == 1, "one JSON line on stdout, got: \(result.stdout)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(Set(object.keys) == Self.names, "names: \(object.keys.sorted())")
        #expect(object["scenario"] as? String == "latency")
        #expect(object["cameras"] as? Int == 1)
        let seconds = try #require(object["seconds"] as? Double)
        #expect(seconds >= 2 && seconds < 30)
        let offered = try #require(object["offered_fps"] as? Double)
        let written = try #require(object["written_fps"] as? Double)
        #expect(offered > 0 && written > 0 && written <= offered * 1.01)
        #expect(object["failed"] as? Int == 0)
        let dropped = try #require(object["dropped"] as? Int)
        #expect(dropped >= 0)
        #expect((object["cpu_ms_per_frame"] as? Double ?? 0) > 0)
        #expect((object["peak_rss_mb"] as? Double ?? 0) > 1)
        let limit = try #require(object["limit_fps"] as? Double)
        let efficiency = try #require(object["efficiency"] as? Double)
        #expect(limit > 0)
        #expect(abs(efficiency - written / limit) <= 0.002, "efficiency \(efficiency) vs \(written) / \(limit)")

        let latency = try #require(object["latency_ms"] as? [String: Double], "latency_ms: \(String(describing: object["latency_ms"]))")
        #expect(Set(latency.keys) == ["p50", "p90", "p99", "p999", "max"])
        let ordered = ["p50", "p90", "p99", "p999", "max"].compactMap { latency[$0] }
        #expect(ordered.count == 5 && ordered.first! > 0 && ordered == ordered.sorted(), "latency \(latency)")

        // The recording is real: every frame written is on disk with its sidecar, and decodes.
        let (frames, strays, orphans) = try recordedFrames(in: dir.appendingPathComponent("latency"))
        #expect(strays.isEmpty, "files that are not frames: \(strays)")
        #expect(orphans.isEmpty, "JPEGs without sidecars: \(orphans)")
        let list = frames["cam0"] ?? []
        #expect(Double(list.count) == (written * seconds).rounded(), "\(list.count) frames on disk, \(written) fps over \(seconds) s reported")
        #expect(list.map(\.seq) == Array(0..<list.count) || dropped > 0, "seqs without drops must be gap-free")
        for frame in list.prefix(3) + list.suffix(2) {
            let probe = try #require(probeImage(frame.jpg), "\(frame.jpg) does not decode")
            #expect(probe.width == 640 && probe.height == 480)
        }
        try expectSidecarsValid(list.prefix(20).map(\.json))
        #expect(result.stderr.contains("limit fps"), "the table goes to stderr with --json: \(result.stderr)")
    }

    @Test func badValuesExit64WithOneLineAndRecordNothing() throws {
        let dir = try TestEnvironment.scratch("bench-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out")
        for (arguments, flag, value) in [(["--scenario", "warp"], "--scenario", "warp"),
                                         (["--seconds", "0"], "--seconds", "0"),
                                         (["--seconds", "-3"], "--seconds", "-3")] {
            let result = try runRingcap(["bench"] + arguments + ["--out", out.path])
            #expect(result.status == 64, "\(arguments): status \(result.status), stderr \(result.stderr)")
            let lines = result.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(arguments): one line, got \(result.stderr)")
            #expect(result.stderr.contains(flag) && result.stderr.contains(value), "\(arguments): \(result.stderr)")
            #expect(result.stdout.isEmpty)
            #expect(!FileManager.default.fileExists(atPath: out.path), "\(arguments): nothing may be recorded")
        }
    }
}
