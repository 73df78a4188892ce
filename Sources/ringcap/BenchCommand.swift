import COpenCV
import ArgumentParser
import Foundation
import Logging
import RingcapBench
import RingcapKit

/// `ringcap bench`: parses, builds the `BenchOptions`, runs `BenchRunner` and prints. Used from the
/// main thread.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure ringcap on this machine: real recordings of test cameras and video files against the machine's limit.",
        discussion: """
            Scenarios: sustained (2 test cameras 1280x720@30), saturate (4 test cameras 1280x720 \
            offering more than the machine can encode), files (two 1280x720 H.264 files read as fast \
            as possible, made on first use), latency (1 test camera 640x480@30), scale (1, 2, 4 and 8 \
            test cameras 640x480@30). Without --scenario, all of them in that order.

            The limit is the machine's own: the rate at which each usable core encodes (and, for \
            files, decodes) the very frames of the scenario at the same quality, one frame after \
            another, with every core at it at once, averaged over a measurement just before and one \
            just after the recording, summed over the cores. efficiency = written fps / \
            limit fps.

            With --json, each recording prints one line of JSON (scale prints four, one per camera \
            count) on stdout and the table goes to stderr. See README.md, Benchmarking.

            Examples:
              ringcap bench
              ringcap bench --scenario files --seconds 20
              ringcap bench --scenario saturate --json > saturate.jsonl
            """
    )

    @Option(help: ArgumentHelp("The scenario to run: sustained, saturate, files, latency, scale or live. Default: all of them, in that order.", valueName: "NAME"))
    var scenario: BenchScenario?

    @Option(parsing: .unconditional, help: ArgumentHelp("How long each recording runs, in seconds (scale makes four recordings).", valueName: "N"))
    var seconds = Number(10)

    @Option(name: .customLong("out"), help: ArgumentHelp("Keep the recordings in this folder, one subfolder per recording. Default: a temporary folder, removed afterwards.", valueName: "DIR"))
    var out: String?

    @Flag(help: "Print each recording's figures as one line of JSON on stdout (the table then goes to stderr).")
    var json = false

    @Option(name: .customLong("log-level"), help: ArgumentHelp("Log level of the recordings: trace, debug, info, notice, warning, error, critical.", valueName: "LEVEL"))
    var logLevel: String = "warning"

    func run() throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ConfigError.invalidValue(flag: "--log-level", value: logLevel, reason: "expected trace, debug, info, notice, warning, error or critical")
        }
        TerminalLog.bootstrap(level: level)
        var options = BenchOptions()
        options.seconds = seconds.value
        options.outDirectory = out
        let runner = BenchRunner(options: options, logger: Logger(label: "ringcap"))
        try runner.prepare()
        installSignalHandlers()
        watchSignals { runner.requestStop() }
        defer { runner.finish() }

        let tableOutput = json ? FileHandle.standardError : FileHandle.standardOutput
        runner.onReport = { report in
            if json { FileHandle.standardOutput.write(Data((report.jsonLine() + "\n").utf8)) }
            tableOutput.write(Data(report.detailLines.utf8))
        }
        var reports: [BenchReport] = []
        var liveSummary = ""
        for scenario in scenario.map({ [$0] }) ?? BenchScenario.allCases {
            if runner.isStopped { break }
            if scenario == .live {
                let bench = LiveBench(binary: "/proc/self/exe", seconds: seconds.value, logger: Logger(label: "ringcap")) { runner.isStopped }
                do {
                    let result = try bench.run()
                    if json { for level in result.levels { FileHandle.standardOutput.write(Data((LiveBench.jsonLine(level) + "\n").utf8)) } }
                    liveSummary = "\n" + LiveBench.table(result.levels) + result.summary + "\n"
                } catch {
                    StandardError.write("ringcap: \(error)\n")
                    throw ExitCode(69)
                }
                continue
            }
            do {
                reports += try runner.run(scenario)
            } catch {
                StandardError.write("ringcap: \(error)\n")
                throw ExitCode(69)
            }
        }
        let cpu = machineDescription()
        if !reports.isEmpty { tableOutput.write(Data(("\n" + BenchReport.table(reports)).utf8)) }
        tableOutput.write(Data((liveSummary + cpu + "\n").utf8))
    }

    /// "2 cores (AMD EPYC)": what the figures were measured on, from /proc/cpuinfo.
    private func machineDescription() -> String {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = info.split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        return "\(BenchOptions().writers) usable core(s), \(model); \(BenchOptions().writers) writer(s), JPEG quality \(BenchOptions().quality)"
    }
}


/// `ringcap bench-floor`: the live benchmark's floor, a plain C MJPEG sender (not for users).
struct BenchFloor: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-floor", abstract: "The live benchmark's floor.", shouldDisplay: false)
    @Option var port: Int
    @Option var jpeg: String
    @Option var streams = 2
    @Option var fps = 15.0

    func run() throws {
        let bytes = [UInt8]((try? Data(contentsOf: URL(fileURLWithPath: jpeg))) ?? Data())
        guard !bytes.isEmpty else { throw ValidationError("--jpeg '\(jpeg)': cannot read it") }
        var message = [CChar](repeating: 0, count: 256)
        guard rc_mjpeg_floor_serve(Int32(port), bytes, bytes.count, Int32(streams), fps, &message, message.count) == RC_OK else {
            StandardError.write("ringcap bench-floor: \(String(cString: message))\n")
            throw ExitCode(69)
        }
    }
}
