import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A `ringcap record` running in the background while a test breaks things around it: started
/// by the test, signalled and reaped by its PID.
///
/// Not thread-safe: owned by one test.
final class LiveRecording {
    let out: URL
    let stats: URL
    let stderrPath: String
    let process: TestProcess

    /// Records into `out` (default: `dir/out`); the stats and ringcap's stderr go into `dir`.
    init(_ arguments: [String], in dir: URL, out: URL? = nil) throws {
        self.out = out ?? dir.appendingPathComponent("out")
        stats = dir.appendingPathComponent("stats.json")
        stderrPath = dir.appendingPathComponent("ringcap.stderr").path
        process = try TestProcess(TestEnvironment.ringcapBinary.path,
                                  ["record", "--out", self.out.path, "--stats-json", stats.path, "--gps", "none"] + arguments,
                                  stderr: stderrPath)
    }

    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Sends `signal` to ringcap itself (not its group).
    func signal(_ signal: Int32) { kill(process.pid, signal) }

    /// SIGTERM, then waits for the exit; returns the status and how long the stop took.
    func terminate(timeout: Double = 30) -> (status: Int32?, seconds: Double) {
        let start = Date()
        signal(SIGTERM)
        let status = process.wait(timeout: timeout)
        return (status, Date().timeIntervalSince(start))
    }

    /// The wall-clock times (Unix seconds) of the frames of `camera` whose sidecars are in
    /// place, sorted. Reads only the file names' folders and stems: cheap enough to poll.
    func frameTimes(_ camera: String) -> [Double] {
        var times: [Double] = []
        let root = out.appendingPathComponent(camera).path
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
        while let relative = walker.nextObject() as? String {
            guard relative.hasSuffix(".json") else { continue }
            // YYYY/MM/DD/HH/MM/HHMMSS.ffffff_SEQ.json
            let parts = relative.split(separator: "/")
            guard parts.count == 6, let y = Int(parts[0]), let mo = Int(parts[1]), let d = Int(parts[2]) else { continue }
            let stem = parts[5]
            guard stem.count > 14, let hh = Int(stem.prefix(2)), let mm = Int(stem.dropFirst(2).prefix(2)),
                  let ss = Double(stem.dropFirst(4).prefix(9)) else { continue }
            var c = DateComponents()
            c.year = y; c.month = mo; c.day = d; c.hour = hh; c.minute = mm; c.second = 0
            c.timeZone = TimeZone(identifier: "UTC")
            guard let minute = Calendar(identifier: .gregorian).date(from: c) else { continue }
            times.append(minute.timeIntervalSince1970 + ss)
        }
        return times.sorted()
    }

    func frameCount(_ camera: String, after time: Double = 0) -> Int {
        frameTimes(camera).filter { $0 > time }.count
    }

    /// Waits until `camera` has `count` frames stamped after `time`; false on timeout.
    func waitForFrames(_ camera: String, count: Int, after time: Double = 0, timeout: Double) async throws -> Bool {
        try await waitUntil(timeout: timeout) { frameCount(camera, after: time) >= count }
    }

    deinit { process.stop() }
}

/// A test server (Python, from Tests/Support) that prints "ready …" once it listens.
func startServer(_ script: String, _ arguments: [String], log: String) async throws -> TestProcess {
    let server = try TestProcess("/usr/bin/python3", [TestEnvironment.support.appendingPathComponent(script).path] + arguments,
                                 stdout: log, stderr: log + ".err")
    let ready = try await waitUntil(timeout: 20) {
        ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("ready")
    }
    if !ready {
        let err = (try? String(contentsOfFile: log + ".err", encoding: .utf8)) ?? ""
        server.stop()
        throw TestFailure("\(script) did not become ready: \(err)")
    }
    return server
}

/// Resident memory of a process, from /proc/PID/status, in KiB.
func residentKiB(of pid: pid_t) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }
    return nil
}

/// Largest gap between consecutive times, in seconds.
func largestGap(_ times: [Double]) -> Double {
    zip(times, times.dropFirst()).map { $1 - $0 }.max() ?? 0
}
