import ArgumentParser
import Foundation
import Logging
import RingcapBench
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

            Examples:
              ringcap record --camera bow=rtsp://192.168.1.20/stream1 --out /data
              ringcap record --config /etc/ringcap.yaml
              ringcap bench --scenario saturate
            """,
        version: RingcapVersion.string,
        subcommands: [Record.self, Bench.self, ConfigCommand.self, BenchFloor.self],
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
                // Point at the help of the subcommand that was given (record unless it was another).
                let given = CommandLine.arguments.dropFirst().first ?? ""
                let subcommand = ["bench", "config"].contains(given) ? given : "record"
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
    startWorkerThread("rc-signals", done: MonotonicSemaphore()) {
        while terminationRequests.load(ordering: .relaxed) == 0 { SignalBell.wait(timeoutNs: 3_600_000_000_000) }
        stop()
    }
}
