import ArgumentParser
import Foundation
import Logging
import RingcapHTTP
import RingcapKit

/// The flags of `ringcap record` (and `ringcap config check`), as typed: each given one is read
/// by `RecordConfig.set`, the same table that reads the config file, over the file's settings,
/// over the defaults. A plain value.
struct RecordOptions: ParsableArguments {
    private static let defaults = RecordConfig(cameras: [])

    @Option(name: .customLong("config"), help: ArgumentHelp("A YAML file with the same settings as these flags (keys written keep_free for --keep-free) and the cameras, each with its own fps, size, quality, when_full and recording. Flags given here override it. See 'ringcap config example'.", valueName: "FILE"))
    var configFile: String?

    @Option(name: .customLong("camera"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("A camera to record, as [NAME=]SOURCE. Repeat for more cameras (they replace the config file's). NAME (letters, digits, '-', '_') defaults to cam0, cam1, ….",
                               valueName: "[NAME=]SOURCE"))
    var cameras: [String] = []

    @Option(name: .customLong("out"), help: ArgumentHelp("The folder to record into; created if missing. Default: \(RecordConfig.defaultOut).", valueName: "DIR"))
    var out: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Cap on each camera's frames per second, 0.001-1000. Default: the source's own rate; files are read as fast as the pipeline takes them.", valueName: "N"))
    var fps: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Frame size: webcams are asked for it, other sources are scaled to it.", valueName: "WxH"))
    var size: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("JPEG quality, 1-100. Default: \(defaults.quality). Given, it also re-encodes cameras that send JPEG.", valueName: "1-100"))
    var quality: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Cameras that send JPEG (MJPEG streams and files; not yet V4L2 webcams): auto stores their frames as they came, with ringcap's EXIF, unless --size or --quality asks for pixels; off decodes and encodes them again. Default: \(defaults.passthrough.rawValue).", valueName: "auto|off"))
    var passthrough: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Writer threads that encode and store frames, 1-256. Default: the number of cores (\(defaults.writers)).", valueName: "N"))
    var writers: String?

    @Option(name: .customLong("ring"), parsing: .unconditional,
            help: ArgumentHelp("Capacity of the ring between capture and writers, in frames, 2-1048576 (rounded up to a power of two). Default: about two seconds of frames for all cameras together (2 × each camera's rate, summed; at least 8).", valueName: "N"))
    var ring: String?

    @Option(name: .customLong("when-full"), parsing: .unconditional, help: ArgumentHelp("What a camera does when the ring is full: drop-oldest (evict the oldest frame; the default for live sources) or wait (the default for files).", valueName: "drop-oldest|wait"))
    var whenFull: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Stop after this many seconds (at most 10 years). Default: until stopped.", valueName: "SECONDS"))
    var duration: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Stop each camera after this many frames.", valueName: "N"))
    var frames: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Where positions come from: gpsd (a gpsd on this machine), gpsd://HOST:PORT, a serial device such as /dev/ttyUSB0, udp://HOST:PORT or tcp://HOST:PORT (NMEA, read through a private gpsd), fixed:LAT,LON[,ALT], or none. Without a reachable gpsd, recording goes on without positions. Default: \(defaults.gps).", valueName: "SPEC"))
    var gps: String?

    @Option(name: .customLong("gps-max-age"), parsing: .unconditional,
            help: ArgumentHelp("A fix older than this at the frame's grab is still written, marked \"stale\": true. Default: \(RecordConfig.format(defaults.gpsMaxAgeSeconds)).", valueName: "SECONDS"))
    var gpsMaxAge: String?

    @Option(name: .customLong("stats-json"), help: ArgumentHelp("Also write the summary as JSON to this file.", valueName: "FILE"))
    var statsJSON: String?

    @Option(name: .customLong("keep-free"), parsing: .unconditional,
            help: ArgumentHelp("Free space to keep on the file system of --out, as a size (500MB, 2GiB) or a percentage of it (5%). When less is free, the oldest recordings are deleted first. 0 turns this off. Default: \(defaults.keepFree).", valueName: "SIZE|PCT"))
    var keepFree: String?

    @Option(name: .customLong("max-size"), parsing: .unconditional,
            help: ArgumentHelp("Cap on the frames kept under --out, earlier recordings included, as a size such as 20GB or 500MiB (KB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB of 1024; a bare number is bytes). The oldest are deleted first. Default: no cap.", valueName: "SIZE"))
    var maxSize: String?

    @Flag(help: "Make each file durable (fsync) before renaming it into place.")
    var fsync = false

    @Option(name: .customLong("open-timeout"), parsing: .unconditional,
            help: ArgumentHelp("How long opening a network camera may take, 0.1-3600 s, before it counts as failed and is retried with backoff. Default: \(RecordConfig.format(defaults.openTimeoutSeconds)).", valueName: "SECONDS"))
    var openTimeout: String?

    @Option(name: .customLong("read-timeout"), parsing: .unconditional,
            help: ArgumentHelp("How long a network camera may go without delivering data, 0.1-3600 s, before it counts as failed and is reopened. A camera that delivers no frame for longer than this or 10 frame intervals, whichever is longer, is reopened too. Default: \(RecordConfig.format(defaults.readTimeoutSeconds)).", valueName: "SECONDS"))
    var readTimeout: String?

    @Option(name: .customLong("rtsp-transport"), parsing: .unconditional,
            help: ArgumentHelp("How RTSP cameras send their video: tcp (through the RTSP connection) or udp. Default: \(defaults.rtspTransport.rawValue).", valueName: "tcp|udp"))
    var rtspTransport: String?

    @Option(name: .customLong("drain-timeout"), parsing: .unconditional,
            help: ArgumentHelp("On SIGINT/SIGTERM or at the end, how long the writers may go on storing the frames still in the ring, 0-3600 s; frames left after that are counted as dropped. Default: \(RecordConfig.format(defaults.drainTimeoutSeconds)).", valueName: "SECONDS"))
    var drainTimeout: String?

    @Option(name: .customLong("log-level"), parsing: .unconditional, help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error, critical. Default: \(defaults.logLevel.rawValue).", valueName: "LEVEL"))
    var logLevel: String?

    @Option(name: .customLong("http"), parsing: .unconditional,
            help: ArgumentHelp("Serve the live view, control, /metrics and /api/health on [ADDR:]PORT (ADDR: 127.0.0.1 unless given; 0.0.0.0 for every address; port 0: any free one). Default: off.", valueName: "[ADDR:]PORT"))
    var http: String?

    @Option(name: .customLong("http-auth"), parsing: .unconditional,
            help: ArgumentHelp("An htpasswd file of bcrypt entries (htpasswd -B): the page asks for a login, the API takes it as HTTP Basic or the page's session cookie. Needed to listen beyond this machine.", valueName: "FILE"))
    var httpAuth: String?

    @Flag(name: .customLong("http-insecure"), help: "Allow --http on a non-loopback address without --http-auth: anyone who can reach it may watch and switch recording.")
    var httpInsecure = false

    @Option(name: .customLong("http-max-clients"), parsing: .unconditional,
            help: ArgumentHelp("Requests the HTTP server serves at once (streams count while open), 1-10000; the next gets 503. Default: \(defaults.httpMaxClients).", valueName: "N"))
    var httpMaxClients: String?

    /// The flags given, as config keys and their text, in a fixed order.
    var given: [(key: String, text: String)] {
        let all: [(String, String?)] = [
            ("out", out), ("fps", fps), ("size", size), ("quality", quality), ("passthrough", passthrough),
            ("writers", writers), ("ring", ring), ("when_full", whenFull), ("duration", duration), ("frames", frames),
            ("gps", gps), ("gps_max_age", gpsMaxAge), ("stats_json", statsJSON), ("keep_free", keepFree),
            ("max_size", maxSize), ("fsync", fsync ? "true" : nil), ("open_timeout", openTimeout),
            ("read_timeout", readTimeout), ("rtsp_transport", rtspTransport), ("drain_timeout", drainTimeout),
            ("log_level", logLevel), ("http", http), ("http_auth", httpAuth),
            ("http_insecure", httpInsecure ? "true" : nil), ("http_max_clients", httpMaxClients),
        ]
        return all.compactMap { key, text in text.map { (key, $0) } }
    }

    /// The defaults, then the config file, then the flags given; validated (`prepare`: the output
    /// folder is also created and probed). Errors name the flag, or the file's line and key.
    func effectiveConfig(prepare: Bool) throws(ConfigError) -> RecordConfig {
        let file = try configFile.map { path throws(ConfigError) in try ConfigFile.load(path: path) }
        var config = file?.config ?? RecordConfig(cameras: [])
        if !cameras.isEmpty {
            config.cameras = []
            for (i, text) in cameras.enumerated() { config.cameras.append(try CameraSpec(parsing: text, index: i)) }
        }
        var flags = Set<String>()
        for (key, text) in given {
            try config.set(key, to: text)
            flags.insert("--" + key.replacingOccurrences(of: "_", with: "-"))
        }
        if !cameras.isEmpty { flags.insert("--camera") }
        if let file {
            try file.validate(config, flagsGiven: flags, prepare: prepare)
        } else {
            try config.validate(prepareOutput: prepare)
        }
        return config
    }
}

struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record cameras into a folder tree of JPEG frames with JSON sidecars.",
        discussion: """
            SOURCE is a V4L2 webcam (0, /dev/video0), a stream URL (rtsp://, http://, https://), \
            a video file, or test:WxH@FPS, a built-in live test pattern.

            Examples:
              ringcap record --camera bow=rtsp://192.168.1.20/stream1 --camera mast=0 --out /data
              ringcap record --camera demo=test:1280x720@15 --duration 10 --gps fixed:54.3233,10.1228
              ringcap record --config /etc/ringcap.yaml --log-level debug

            Numbers are decimals (30, 2.5, 1e3); 0x10, inf and nan are refused. One recorder per \
            --out: a second one exits 75. A new start into the same --out goes on with each camera's \
            seq from the highest stored. SIGINT, SIGTERM and SIGHUP stop the recording after the \
            writers drained the ring.

            Exit status: 0 when frames were recorded; 64 for a bad flag, value or config file; 73 \
            when --out cannot be used; 75 when another ringcap records into --out; 69 when no camera \
            delivered a frame; 74 when frames came but none could be stored.
            """
    )

    @OptionGroup var options: RecordOptions

    func run() throws {
        let config = try options.effectiveConfig(prepare: true)
        TerminalLog.bootstrap(level: config.logLevel)
        let logger = Logger(label: "ringcap")
        // One recorder per output folder, for as long as this process lives.
        let lock = try OutputLock(out: config.outDirectory)
        defer { withExtendedLifetime(lock) {} }
        installSignalHandlers()

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
        // The live view listens before the first frame: a port in use stops us before recording.
        var server: LiveServer?
        if config.http != nil {
            do {
                server = try LiveServer(engine: engine, clockOffsetMs: { gpsReader.clockOffsetMs }, logger: logger)
                try server?.start()
            } catch {
                StandardError.write("ringcap: \(error)\n")
                if case .listen = error { throw ExitCode(69) }
                throw ExitCode(64)
            }
        }
        do {
            try engine.start()
        } catch {
            logger.critical("\(error)")
            server?.stop()
            throw ExitCode(69)
        }
        watchSignals { engine.requestStop(reason: "signal") }
        let progress = ProgressLine.follow(engine)
        var summary = engine.waitUntilStopped()!
        progress.stop()
        // After the drain: open streams and sockets end, then the server (about a second).
        server?.stop()
        summary.clockOffsetMs = gpsReader.clockOffsetMs
        StandardError.write(summary.table)
        if let path = config.statsJSONPath, let error = summary.writeJSON(to: path) {
            logger.error("cannot write --stats-json '\(path)': \(error)")
        }
        // 69 (EX_UNAVAILABLE): no camera delivered anything; 74 (EX_IOERR): frames came but not
        // one could be stored (a full or failing disk, say). Paused frames were meant not to be.
        let stored = summary.totalWritten + summary.cameras.reduce(0) { $0 + $1.paused }
        let status: Int32 = stored > 0 ? 0 : (summary.totalCaptured > 0 ? 74 : 69)
        if status == 69 { logger.error("nothing was recorded: no camera delivered a frame") }
        if status == 74 { logger.error("nothing was recorded: \(summary.totalCaptured) frame(s) were captured and none could be stored") }
        if summary.anyCameraStuck {
            // A capture thread is still inside a source call that ignores its timeouts. Exit
            // handlers and C++ static destructors must not run under it: stop what we started,
            // then leave at once. Everything captured is already accounted for.
            gpsReader.stop()
            _exit(status)
        }
        if status != 0 { throw ExitCode(status) }
    }
}

/// `ringcap config check|example`.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check a config file, or print an example of one.",
        discussion: """
            Examples:
              ringcap config example > ringcap.yaml
              ringcap config check ringcap.yaml
              ringcap config check ringcap.yaml --fps 5
            """,
        subcommands: [Check.self, Example.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a config file (and any record flags given with it) and print the effective configuration.",
            discussion: """
                Prints every setting as `ringcap record` would use it, defaults included, as a config \
                file. Exits 64 naming the file, line and key of the first bad one. Creates nothing.

                Examples:
                  ringcap config check /etc/ringcap.yaml
                  ringcap config check --camera a=test:640x480@30 --fps 5
                """
        )

        @Argument(help: ArgumentHelp("The config file (the same as --config FILE).", valueName: "FILE"))
        var file: String?

        @OptionGroup var options: RecordOptions

        func run() throws {
            var options = options
            if let file {
                guard options.configFile == nil || options.configFile == file else {
                    throw ValidationError("give the config file once: as FILE or as --config")
                }
                options.configFile = file
            }
            let config = try options.effectiveConfig(prepare: false)
            print(config.yaml, terminator: "")
        }
    }

    struct Example: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a commented example config file.",
            discussion: """
                Examples:
                  ringcap config example > ringcap.yaml
                """
        )

        func run() { print(RecordConfig.exampleYAML, terminator: "") }
    }
}
