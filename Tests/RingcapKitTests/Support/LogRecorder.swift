import Logging
import Synchronization

/// Keeps every message a `Logger` is given, so tests can check what was said and how often.
/// Thread-safe (a mutex around the list).
final class LogRecorder: Sendable {
    private let lines = Mutex<[(Logger.Level, String)]>([])

    var messages: [(level: Logger.Level, text: String)] { lines.withLock { $0.map { ($0.0, $0.1) } } }

    func count(containing text: String) -> Int { messages.filter { $0.text.contains(text) }.count }

    /// Every message, one a line with its level, for failure messages.
    var transcript: String { messages.map { "[\($0.level)] \($0.text)" }.joined(separator: "\n") }

    func logger(_ label: String = "test") -> Logger {
        var logger = Logger(label: label) { _ in Handler(recorder: self) }
        logger.logLevel = .debug
        return logger
    }

    fileprivate func append(_ level: Logger.Level, _ text: String) { lines.withLock { $0.append((level, text)) } }

    private struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            recorder.append(event.level, event.message.description)
        }
    }
}
