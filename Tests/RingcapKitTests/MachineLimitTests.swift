import Foundation
import Testing
@testable import RingcapBench
@testable import RingcapKit

/// The bench's machine limit is measured on every CPU the process may use, all at once, and is
/// the sum of the cores' rates. Rates are checked for consistency, never for speed.
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

    @Test func meanAveragesEachCoresRatesOverTheTwoMeasurements() {
        let a = MachineLimit(perCore: [.init(cpu: 0, encodeFPS: 100, encodeCPUFPS: 110, decodeFPS: 50),
                                       .init(cpu: 1, encodeFPS: 300, encodeCPUFPS: 300, decodeFPS: 40)])
        let b = MachineLimit(perCore: [.init(cpu: 0, encodeFPS: 200, encodeCPUFPS: 210, decodeFPS: 45),
                                       .init(cpu: 1, encodeFPS: 150, encodeCPUFPS: 160, decodeFPS: 60)])
        let mean = MachineLimit.mean(a, b)
        #expect(mean.perCore.map(\.cpu) == [0, 1])
        #expect(mean.perCore.map(\.encodeFPS) == [150, 225])
        #expect(mean.perCore.map(\.encodeCPUFPS) == [160, 230])
        #expect(mean.perCore.map(\.decodeFPS) == [47.5, 50])
        // Per core: 1/(1/150 + 1/47.5) + 1/(1/225 + 1/50).
        let cpu0: Double = 1 / (1.0 / 150 + 1.0 / 47.5)
        let cpu1: Double = 1 / (1.0 / 225 + 1.0 / 50)
        let expected = cpu0 + cpu1
        #expect(abs(mean.fps - expected) < 1e-9)
    }

    /// Together, every core's encode runs at the same time (each thread starts when all are
    /// ready); one after the other, no two overlap.
    @Test func togetherMeasuresEveryCoreAtOnceAndAloneOneAfterTheOther() throws {
        let cpus = try Self.allowedCPUs()
        let together = try MachineLimit.measure(.pattern(width: 160, height: 120), quality: 85, seconds: 0.3, together: true)
        let alone = try MachineLimit.measure(.pattern(width: 160, height: 120), quality: 85, seconds: 0.3, together: false)
        #expect(together.perCore.map(\.cpu) == cpus)
        #expect(alone.perCore.map(\.cpu) == cpus)
        for core in together.perCore + alone.perCore {
            #expect(core.encodeToNs > core.encodeFromNs, "cpu\(core.cpu): \(core)")
        }
        // With every core at once, the latest start comes before the earliest end, by most of
        // the 0.3 s each thread measures.
        let latestStart = together.perCore.map(\.encodeFromNs).max()!
        let earliestEnd = together.perCore.map(\.encodeToNs).min()!
        #expect(earliestEnd > latestStart + 150_000_000, "overlap \(Int64(earliestEnd) - Int64(latestStart)) ns: \(together.perCore)")
        // One after the other: each core's measurement ends before the next one's starts.
        for (earlier, later) in zip(alone.perCore, alone.perCore.dropFirst()) {
            #expect(earlier.encodeToNs <= later.encodeFromNs, "cpu\(earlier.cpu) then cpu\(later.cpu): \(alone.perCore)")
        }
        if cpus.count < 2 { print("machine-limit: one usable CPU, so together and alone are the same measurement") }
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
