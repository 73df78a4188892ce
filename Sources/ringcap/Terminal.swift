import Foundation
import Logging
import RingcapKit
import Synchronization

/// Writes to stderr with write(2): FileHandle's write traps when the other end of a pipe is
/// gone, and a recorder must outlive whoever was reading its messages. What cannot be written
/// is dropped. Thread-safe (one write(2) per call; `TerminalLog` and `ProgressLine` serialise
/// theirs).
enum StandardError {
    static func write(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(STDERR_FILENO, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }
}

/// The progress line at the bottom of a terminal: redrawn in place once a second, taken away
/// before a log line is written and put back after it, so that log lines never glue onto it.
/// Only shown when stderr is a terminal. Thread-safe: one lock orders progress and log output.
enum ProgressLine {
    /// The line shown now ("" when none).
    private static let shown = Mutex<String>("")
    static let isTerminal = isatty(STDERR_FILENO) == 1

    static func show(_ line: String) {
        guard isTerminal else { return }
        // One row: a line that wraps could not be taken back with \r and a clear.
        var size = winsize()
        let columns = ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 1 ? Int(size.ws_col) - 1 : 79
        let line = line.count > columns ? String(line.prefix(columns - 1)) + "…" : line
        shown.withLock { current in
            current = line
            StandardError.write("\r\u{1B}[K" + line)
        }
    }

    /// Takes the line away for good (the end of the recording).
    static func clear() {
        shown.withLock { current in
            if !current.isEmpty { StandardError.write("\r\u{1B}[K") }
            current = ""
        }
    }

    /// Draws `engine`'s progress once a second on a thread of its own (`rc-progress`), from its
    /// `status()`: the engine never waits for the terminal (one stopped with Ctrl-S blocks only
    /// this thread). Nothing when stderr is not a terminal. `stop()` ends it and takes the line away.
    static func follow(_ engine: RecordingEngine) -> Follower {
        let follower = Follower()
        guard isTerminal else { return follower }
        startWorkerThread("rc-progress", done: follower.done) {
            while !follower.wake.wait(timeoutNs: 1_000_000_000) {
                let status = engine.status()
                guard status.state == .running || status.state == .stopping else { continue }
                let parts = status.cameras.map { c in
                    "\(c.name) \(c.state) \(String(format: "%.1f", c.fps)) fps written \(c.written) dropped \(c.dropped)"
                        + (c.recording ? "" : " paused \(c.paused)")
                }
                show(parts.joined(separator: " | ") + " | ring \(status.ringDepth)")
            }
        }
        follower.running = true
        return follower
    }

    final class Follower: @unchecked Sendable {
        let wake = MonotonicSemaphore()
        let done = MonotonicSemaphore()
        var running = false

        func stop() {
            guard running else { return }
            wake.signal()
            done.wait()
            ProgressLine.clear()
        }
    }

    /// Writes a whole line of log output above the progress line.
    static func writeAbove(_ text: String) {
        shown.withLock { current in
            if current.isEmpty { StandardError.write(text) }
            else { StandardError.write("\r\u{1B}[K" + text + current) }
        }
    }
}

/// ringcap's log lines on stderr, `2026-12-04T21:31:08+0000 info ringcap: [camera=bow] text`, as
/// swift-log's StreamLogHandler writes them, but through `ProgressLine` so that they never glue
/// onto the progress line. A value type, as LogHandler wants.
struct TerminalLog: LogHandler {
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    let label: String

    static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in TerminalLog(logLevel: level, label: label) }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let tags = all.isEmpty ? "" : " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let line = "\(Self.timestamp()) \(event.level) \(label):\(tags.isEmpty ? "" : " [\(tags.dropFirst())]") \(event.message)\n"
        ProgressLine.writeAbove(line)
    }

    private static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let n = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
