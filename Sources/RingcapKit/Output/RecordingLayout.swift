import Foundation

/// Names on disk that are ringcap's own besides the frames: its folder `OUT/.ringcap/` (the lock),
/// and the temporaries writers rename frames from. Stateless.
///
/// Temporaries end in `.rctmp`, which no reader matches. Each run adds a token of its own before
/// that ending (`HHMMSS.ffffff_SEQ.jpg.1a2b3c4d.rctmp`), so that the start-up clean-up, which runs
/// beside the writers, can tell what an earlier run left (any other token) from what this run is
/// writing, without trusting file times to a clock that may have been stepped.
public enum RecordingLayout {
    /// Every temporary ends so.
    public static let temporaryEnding = ".rctmp"

    /// `OUT/.ringcap`: ringcap's own files (the lock). Not a valid camera name, so no camera
    /// folder can collide with it and retention never looks inside.
    public static func ownFolder(out: String) -> String { trimmed(out) + "/.ringcap" }

    /// `OUT/.ringcap/lock`: held (flock) by the recorder writing into OUT.
    public static func lockFile(out: String) -> String { ownFolder(out: out) + "/lock" }

    /// The suffix of this run's temporaries: `.<8 hex digits>.rctmp`.
    public static func temporarySuffix(runToken: UInt32) -> String {
        let hex = String(runToken, radix: 16)
        return "." + String(repeating: "0", count: 8 - hex.count) + hex + temporaryEnding
    }

    /// A file an earlier run left half-written: a temporary whose suffix is not this run's.
    public static func isLeftoverTemporary(_ name: String, currentSuffix: String) -> Bool {
        name.hasSuffix(temporaryEnding) && !name.hasSuffix(currentSuffix)
    }

    private static func trimmed(_ out: String) -> String {
        out.count > 1 && out.hasSuffix("/") ? String(out.dropLast()) : out
    }
}

/// The exclusive lock that keeps two recorders out of one folder (their retention would delete
/// each other's frames): `flock` on the output folder itself, and the holder's PID in
/// `OUT/.ringcap/lock` for the message a second recorder prints. The kernel releases a flock when
/// the process ends, however it ends, so a crash or a power cut leaves no stale lock. The folder,
/// not a file in it, is what is locked, so that a disk too full to create a file does not keep a
/// recorder from starting (and its retention from making room).
///
/// Owned by the thread that took it; the lock lasts until `deinit` (or the process's end).
public final class OutputLock {
    private let fd: Int32
    public let path: String

    /// Takes the lock or throws `.outputLocked` naming the holder's PID.
    public init(out: String) throws(ConfigError) {
        path = RecordingLayout.lockFile(out: out)
        let fd = open(out, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            throw .outputNotWritable(path: out, reason: "cannot open it (\(String(cString: strerror(errno))))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let err = errno
            close(fd)
            if err == EWOULDBLOCK {
                let text = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
                throw .outputLocked(path: out, pid: text.flatMap { Int32($0) })
            }
            throw .outputNotWritable(path: out, reason: "cannot lock it (\(String(cString: strerror(err))))")
        }
        self.fd = fd
        // Best effort: the PID is for a second recorder's message only.
        let pidFile = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        if pidFile >= 0 {
            let pid = Array("\(getpid())\n".utf8)
            _ = write(pidFile, pid, pid.count)
            close(pidFile)
        }
    }

    deinit { close(fd) }
}
