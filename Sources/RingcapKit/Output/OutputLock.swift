import Foundation

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
