import ArgumentParser
import Foundation
import Logging
import RingcapKit
import Synchronization

@main
struct Ringcap: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ringcap",
        abstract: "Record frames from many cameras at once, each stamped with when and where it was taken.",
        discussion: """
            Each camera gets a capture thread; frames go through a bounded ring that drops the \
            oldest under pressure to writer threads that store each as a JPEG with a JSON sidecar \
            under OUT/<camera>/YYYY/MM/DD/HH/MM/. See README.md.
            """,
        version: RingcapVersion.string,
        subcommands: [Record.self, Bench.self],
        defaultSubcommand: nil
    )

    /// `ringcap` alone: the usage, on stderr, and EX_USAGE (a script that forgot its subcommand
    /// must not look as if it had recorded).
    func run() throws {
        StandardError.write(Self.helpMessage() + "\n")
        throw ExitCode(64)
    }

    /// Runs the command and maps failures to exit codes: 64 for a bad flag or value (with one
    /// line naming it), 73 for an output folder that cannot be used, the command's own code
    /// otherwise.
    static func main() {
        // A closed stderr (`ringcap record … 2>&1 | head -1`) must not kill the recorder at its
        // next log line: writes to it fail with EPIPE instead, and are dropped (StandardError).
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let code as ExitCode {
            // Said already (the usage, a summary, a log line): only the status is left.
            Foundation.exit(code.rawValue)
        } catch let error as ConfigError {
            StandardError.write("ringcap: \(error)\n")
            Foundation.exit(error.exitCode)
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                let text = message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid usage"
                // Point at the help of the subcommand that was given (record unless it was bench).
                let subcommand = CommandLine.arguments.dropFirst().first == "bench" ? "bench" : "record"
                StandardError.write("ringcap: \(text) (see 'ringcap help \(subcommand)')\n")
                Foundation.exit(64)
            }
            exit(withError: error)
        }
    }
}

extension WhenFull: ExpressibleByArgument {}

/// A number option, read as people write numbers (`DecimalNumber`): `--fps 0x10` or `--duration
/// inf` is a bad value, not 16 or forever.
struct Number: ExpressibleByArgument, CustomStringConvertible {
    var value: Double
    init(_ value: Double) { self.value = value }
    init?(argument: String) {
        guard let value = DecimalNumber.parse(argument) else { return nil }
        self.value = value
    }
    var description: String { value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value) }
}

extension RTSPTransport: ExpressibleByArgument {}
extension PassthroughMode: ExpressibleByArgument {}

extension BenchScenario: ExpressibleByArgument {}

extension FrameSize: ExpressibleByArgument {
    public init?(argument: String) {
        guard let size = try? FrameSize(parsing: argument) else { return nil }
        self = size
    }
}

struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record cameras into a folder tree of JPEG frames with JSON sidecars.",
        discussion: """
            SOURCE is a V4L2 webcam (0, /dev/video0), a stream URL (rtsp://, http://, https://), \
            a video file, or test:WxH@FPS, a built-in live test pattern.

            Numbers are decimals (30, 2.5, 1e3); 0x10, inf and nan are refused. One recorder per \
            --out: a second one exits 75. SIGINT, SIGTERM and SIGHUP stop the recording after the \
            writers drained the ring.

            Exit status: 0 when frames were recorded; 64 for a bad flag or value; 73 when --out \
            cannot be used; 75 when another ringcap records into --out; 69 when no camera \
            delivered a frame; 74 when frames came but none could be stored.
            """
    )

    @Option(name: .customLong("camera"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("A camera to record, as [NAME=]SOURCE. Repeat for more cameras. NAME (letters, digits, '-', '_') defaults to cam0, cam1, ….",
                               valueName: "[NAME=]SOURCE"))
    var cameras: [String] = []

    @Option(name: .customLong("out"), help: ArgumentHelp("The folder to record into; created if missing.", valueName: "DIR"))
    var out = "captures"

    @Option(parsing: .unconditional, help: ArgumentHelp("Cap on each camera's frames per second, 0.001 to 1000. Default: the source's own rate; files are read as fast as the pipeline takes them.", valueName: "N"))
    var fps: Number?

    @Option(parsing: .unconditional, help: ArgumentHelp("Frame size: webcams are asked for it, other sources are scaled to it.", valueName: "WxH"))
    var size: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("JPEG quality, 1 to 100 (default 85). Given, it also re-encodes cameras that send JPEG.", valueName: "1-100"))
    var quality: Int?

    @Option(help: ArgumentHelp("Cameras that send JPEG (MJPEG streams and files; not yet V4L2 webcams): auto stores their frames as they came, with ringcap's EXIF, unless --size or --quality asks for pixels; off decodes and encodes them again.", valueName: "auto|off"))
    var passthrough: PassthroughMode = .auto

    @Option(parsing: .unconditional, help: ArgumentHelp("Number of writer threads that encode and store frames. Default: the number of cores.", valueName: "N"))
    var writers: Int?

    @Option(name: .customLong("ring"), parsing: .unconditional,
            help: ArgumentHelp("Capacity of the ring between capture and writers, in frames (rounded up to a power of two). Default: about two seconds of frames for all cameras together (the sum of 2 × each camera's rate, at least 8).", valueName: "N"))
    var ring: Int?

    @Option(name: .customLong("when-full"), help: ArgumentHelp("What a camera does when the ring is full: drop-oldest (evict the oldest frame; the default for live sources) or wait (the default for files).", valueName: "drop-oldest|wait"))
    var whenFull: WhenFull?

    @Option(parsing: .unconditional, help: ArgumentHelp("Stop after this many seconds (at most 10 years).", valueName: "SECONDS"))
    var duration: Number?

    @Option(parsing: .unconditional, help: ArgumentHelp("Stop each camera after this many frames.", valueName: "N"))
    var frames: Int?

    @Option(help: ArgumentHelp("Where positions come from: gpsd (a gpsd on this machine, the default), gpsd://HOST:PORT, a serial device such as /dev/ttyUSB0, udp://HOST:PORT or tcp://HOST:PORT (NMEA, read through a private gpsd), fixed:LAT,LON[,ALT], or none. Without a reachable gpsd, recording goes on without positions.", valueName: "SPEC"))
    var gps = "gpsd"

    @Option(name: .customLong("gps-max-age"), parsing: .unconditional,
            help: ArgumentHelp("A fix older than this at the frame's grab is still written, marked \"stale\": true.", valueName: "SECONDS"))
    var gpsMaxAge = Number(5)

    @Option(name: .customLong("stats-json"), help: ArgumentHelp("Also write the summary as JSON to this file.", valueName: "FILE"))
    var statsJSON: String?

    @Option(name: .customLong("keep-free"), parsing: .unconditional,
            help: ArgumentHelp("Free space to keep on the file system of --out, as a size (500MB, 2GiB) or a percentage of it (5%). When less is free, the oldest recordings are deleted first. 0 turns this off.", valueName: "SIZE|PCT"))
    var keepFree = "5%"

    @Option(name: .customLong("max-size"), parsing: .unconditional,
            help: ArgumentHelp("Cap on the frames kept under --out, earlier recordings included, as a size such as 20GB or 500MiB (KB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB of 1024; a bare number is bytes). The oldest are deleted first. Default: no cap.", valueName: "SIZE"))
    var maxSize: String?

    @Flag(help: "Make each file durable (fsync) before renaming it into place.")
    var fsync = false

    @Option(name: .customLong("open-timeout"), parsing: .unconditional,
            help: ArgumentHelp("How long opening a network camera may take before it counts as failed and is retried with backoff.", valueName: "SECONDS"))
    var openTimeout = Number(10)

    @Option(name: .customLong("read-timeout"), parsing: .unconditional,
            help: ArgumentHelp("How long a network camera may go without delivering data before it counts as failed and is reopened. A camera that delivers no frame for longer than this or 10 frame intervals, whichever is longer, is reopened too.", valueName: "SECONDS"))
    var readTimeout = Number(5)

    @Option(name: .customLong("rtsp-transport"),
            help: ArgumentHelp("How RTSP cameras send their video: tcp (through the RTSP connection, the default) or udp.", valueName: "tcp|udp"))
    var rtspTransport: RTSPTransport = .tcp

    @Option(name: .customLong("drain-timeout"), parsing: .unconditional,
            help: ArgumentHelp("On SIGINT/SIGTERM or at the end, how long the writers may go on storing the frames still in the ring; frames left after that are counted as dropped.", valueName: "SECONDS"))
    var drainTimeout = Number(5)

    @Option(name: .customLong("log-level"), help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error, critical.", valueName: "LEVEL"))
    var logLevel: String = "info"

    func buildConfig() throws -> RecordConfig {
        var specs: [CameraSpec] = []
        for (i, text) in cameras.enumerated() {
            specs.append(try CameraSpec(parsing: text, index: i))
        }
        var config = RecordConfig(cameras: specs, outDirectory: out)
        if let fps { config.fpsCap = fps.value }
        if let size { config.size = try FrameSize(parsing: size) }
        config.quality = quality ?? 85
        config.qualityGiven = quality != nil
        config.passthrough = passthrough
        if let writers { config.writers = writers }
        config.ringCapacity = ring
        config.whenFull = whenFull
        config.durationSeconds = duration?.value
        config.framesPerCamera = frames
        config.statsJSONPath = statsJSON
        config.fsync = fsync
        config.progress = isatty(STDERR_FILENO) == 1
        do {
            config.gps = try GPSSpec(parsing: gps)
        } catch {
            throw ConfigError.invalidValue(flag: "--gps", value: gps, reason: "expected \(error.expected)")
        }
        config.gpsMaxAgeSeconds = gpsMaxAge.value
        config.openTimeoutSeconds = openTimeout.value
        config.readTimeoutSeconds = readTimeout.value
        config.rtspTransport = rtspTransport
        config.drainTimeoutSeconds = drainTimeout.value
        config.keepFree = try FreeSpaceGoal(parsing: keepFree)
        if let maxSize {
            let size = try ByteSize(parsing: maxSize, flag: "--max-size")
            guard size.bytes > 0 else {
                throw ConfigError.invalidValue(flag: "--max-size", value: maxSize, reason: "must be a positive size such as 500MB")
            }
            config.maxSizeBytes = size.bytes
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ConfigError.invalidValue(flag: "--log-level", value: logLevel, reason: "expected trace, debug, info, notice, warning, error or critical")
        }
        try config.validate()
        return config
    }

    func run() throws {
        let config = try buildConfig()
        let level = Logger.Level(rawValue: logLevel) ?? .info
        TerminalLog.bootstrap(level: level)
        let logger = Logger(label: "ringcap")
        // One recorder per output folder, for as long as this process lives.
        let lock = try OutputLock(out: config.outDirectory)
        defer { withExtendedLifetime(lock) {} }
        installSignalHandlers()
        // Before any capture thread exists: setenv is not safe beside threads reading it.
        FFmpegCaptureOptions.apply(rtspTransport: config.rtspTransport)

        // The GPS thread runs around the recording; capture threads read its snapshot.
        let snapshot = GPSSnapshot()
        let gpsReader: GPSReader
        do {
            gpsReader = try GPSReader(spec: config.gps, snapshot: snapshot, logger: logger)
        } catch {
            logger.critical("\(error)")
            throw ExitCode(69)
        }
        gpsReader.start()
        defer { gpsReader.stop() }

        let engine = RecordingEngine(config: config, gps: snapshot, logger: logger)
        engine.onProgress = { line in ProgressLine.show(line) }
        var summary: RecordingSummary
        do {
            try engine.start()
        } catch {
            logger.critical("\(error)")
            throw ExitCode(69)
        }
        watchSignals { engine.requestStop(reason: "signal") }
        summary = engine.waitUntilStopped()!
        summary.clockOffsetMs = gpsReader.clockOffsetMs
        ProgressLine.clear()
        StandardError.write(summary.table)
        if let path = config.statsJSONPath, let error = summary.writeJSON(to: path) {
            logger.error("cannot write --stats-json '\(path)': \(error)")
        }
        // 69 (EX_UNAVAILABLE): no camera delivered anything; 74 (EX_IOERR): frames came but not
        // one could be stored (a full or failing disk, say).
        let status: Int32 = summary.totalWritten > 0 ? 0 : (summary.totalCaptured > 0 ? 74 : 69)
        if status == 69 { logger.error("nothing was recorded: no camera delivered a frame") }
        if status == 74 { logger.error("nothing was recorded: \(summary.totalCaptured) frame(s) were captured and none could be stored") }
        if summary.anyCameraStuck {
            // A capture thread is still inside OpenCV (a source that ignores its timeouts).
            // Exit handlers and C++ static destructors must not run under it: stop what we
            // started, then leave at once. Everything captured is already accounted for.
            gpsReader.stop()
            _exit(status)
        }
        if status != 0 { throw ExitCode(status) }
    }
}

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
            count) on stdout and the table goes to stderr. See README.md, Performance.
            """
    )

    @Option(help: ArgumentHelp("The scenario to run: sustained, saturate, files, latency or scale. Default: all of them, in that order.", valueName: "NAME"))
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
        for scenario in scenario.map({ [$0] }) ?? BenchScenario.allCases {
            if runner.isStopped { break }
            do {
                reports += try runner.run(scenario)
            } catch {
                StandardError.write("ringcap: \(error)\n")
                throw ExitCode(69)
            }
        }
        let cpu = machineDescription()
        tableOutput.write(Data(("\n" + BenchReport.table(reports) + cpu + "\n").utf8))
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

/// Set by the signal handler: 0 running, 1 stop requested, 2 or more: exit now.
let terminationRequests = Atomic<Int>(0)

/// SIGINT/SIGTERM (and SIGHUP, until it gets a meaning of its own: reloading the configuration)
/// only set a flag and ring the `SignalBell`; `watchSignals`' thread sees it and asks the engine to
/// stop, and the writers drain. A second signal exits at once.
func installSignalHandlers() {
    let handler: @convention(c) (Int32) -> Void = { _ in
        let (_, now) = terminationRequests.add(1, ordering: .relaxed)
        if now >= 2 { _exit(130) }
        SignalBell.ring()  // sem_post: async-signal-safe
    }
    signal(SIGINT, handler)
    signal(SIGTERM, handler)
    signal(SIGHUP, handler)
}

/// Calls `stop` once, on a thread of its own (`rc-signals`), when the first signal came.
func watchSignals(_ stop: @escaping @Sendable () -> Void) {
    let thread = Thread {
        while terminationRequests.load(ordering: .relaxed) == 0 { SignalBell.wait(timeoutNs: 3_600_000_000_000) }
        stop()
    }
    thread.name = "rc-signals"
    thread.start()
}
