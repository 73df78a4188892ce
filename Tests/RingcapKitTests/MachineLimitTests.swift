import Foundation
import Testing
@testable import RingcapKit

/// The bench's machine limit is measured on every CPU the process may use, one after the other,
/// and is the sum of the cores' rates. Rates are checked for consistency, never for speed.
@Suite(.serialized)
struct MachineLimitTests {
    /// The CPUs in this process's affinity mask, from the kernel's own words
    /// (`Cpus_allowed_list: 0-1,4`), independently of the code under test.
    static func allowedCPUs() throws -> [Int] {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") })
        var cpus: [Int] = []
        for range in line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces).split(separator: ",") {
            let ends = range.split(separator: "-").compactMap { Int($0) }
            cpus += ends.count == 2 ? Array(ends[0]...ends[1]) : ends
        }
        return cpus
    }

    @Test func everyUsableCoreIsMeasuredAndTheLimitIsTheirSum() throws {
        let limit = try MachineLimit.measure(.pattern(width: 160, height: 120), quality: 85, seconds: 0.2)
        #expect(limit.perCore.map(\.cpu) == (try Self.allowedCPUs()))
        #expect(limit.cores == limit.perCore.count)
        for core in limit.perCore {
            #expect(core.encodeFPS > 0 && core.encodeCPUFPS > 0 && core.decodeFPS == nil, "cpu\(core.cpu): \(core)")
            #expect(abs(core.fps - core.encodeFPS) < 1e-9 * core.fps)
        }
        let sum = limit.perCore.reduce(0) { $0 + $1.encodeFPS }
        #expect(abs(limit.fps - sum) <= 1e-9 * sum)
        #expect(abs(limit.secondsPerFrame - Double(limit.cores) / limit.fps) <= 1e-12)
    }

    @Test func bestTakesEachCoresBetterRate() {
        let a = MachineLimit(perCore: [.init(cpu: 0, encodeFPS: 100, encodeCPUFPS: 110, decodeFPS: 50),
                                       .init(cpu: 1, encodeFPS: 300, encodeCPUFPS: 300, decodeFPS: 40)])
        let b = MachineLimit(perCore: [.init(cpu: 0, encodeFPS: 200, encodeCPUFPS: 210, decodeFPS: 45),
                                       .init(cpu: 1, encodeFPS: 150, encodeCPUFPS: 160, decodeFPS: 60)])
        let best = MachineLimit.best(a, b)
        #expect(best.perCore.map(\.encodeFPS) == [200, 300])
        #expect(best.perCore.map(\.encodeCPUFPS) == [210, 300])
        #expect(best.perCore.map(\.decodeFPS) == [50, 60])
        // Per core: 1/(1/200 + 1/50) + 1/(1/300 + 1/60) = 40 + 50.
        #expect(abs(best.fps - 90) < 1e-9)
    }

    /// The bench honours the affinity mask it is started with: under `taskset -c 0` it measures
    /// CPU 0 alone and says so.
    @Test func benchMeasuresOnlyTheCPUsItMayUse() throws {
        guard let taskset = TestProcess.which("taskset") else { throw TestFailure("taskset (util-linux) not found") }
        let first = try #require(try Self.allowedCPUs().first)
        let dir = try TestEnvironment.scratch("bench-affinity")
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try runCommand(taskset, ["-c", String(first), TestEnvironment.ringcapBinary.path, "bench", "--scenario", "latency",
                                              "--seconds", "1", "--out", dir.path], timeout: 60)
        #expect(result.status == 0, "stderr: \(result.stderr)")
        // Without --json the report is on stdout.
        let line = try #require(result.stdout.split(separator: "\n").first { $0.contains(": limit ") }, "\(result.stdout)")
        #expect(line.contains("= cpu\(first) (encode "), "\(line)")
        #expect(!line.contains(" + cpu"), "one CPU only: \(line)")
    }
}
