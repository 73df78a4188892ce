// Starting and stopping the real programs tests need (gpsfake, gpsd, socat, ffmpeg, exiftool,
// ringcap itself), always by PID, never by name. Shared by the GPS tests and the end-to-end tests.
// (`runCommand`, for programs that run to their end, is in Recording.swift.)

import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A program a test started, in a process group of its own so that stopping it also stops what
/// it started (gpsfake starts a gpsd). Stopped by its PID (the group's id) in `stop()` and, as a
/// safety net, in `deinit`.
///
/// Not thread-safe: owned by one test.
final class TestProcess {
    let pid: pid_t
    let commandLine: String
    private var reaped = false
    private(set) var exitStatus: Int32?

    /// Starts `executable` (a path, or a name looked up with `TestProcess.which`) with `arguments`.
    /// stdout and stderr go to the given files (or /dev/null).
    init(_ executable: String, _ arguments: [String], stdout: String? = nil, stderr: String? = nil,
         environment: [String: String]? = nil) throws {
        guard let path = executable.hasPrefix("/") ? executable : TestProcess.which(executable) else {
            throw TestFailure("\(executable) not found in PATH, /usr/sbin or /sbin")
        }
        let args = [path] + arguments
        commandLine = args.joined(separator: " ")
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) }
        argv.append(nil)
        defer { for p in argv { free(p) } }
        var envStrings: [UnsafeMutablePointer<CChar>?]
        if let environment {
            var merged = ProcessInfo.processInfo.environment
            for (k, v) in environment { merged[k] = v }
            envStrings = merged.map { strdup("\($0.key)=\($0.value)") }
        } else {
            envStrings = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") }
        }
        envStrings.append(nil)
        defer { for p in envStrings { free(p) } }

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGINT, SIGTERM, SIGPIPE, SIGHUP, SIGCHLD] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout ?? "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr ?? "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var child: pid_t = 0
        let rc = posix_spawn(&child, path, &actions, &attr, argv, envStrings)
        guard rc == 0 else { throw TestFailure("cannot start \(commandLine): errno \(rc)") }
        pid = child
    }

    deinit { stop() }

    /// True until the process has exited (reaps it then).
    var isRunning: Bool {
        if reaped { return false }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == 0 { return true }
        reaped = true
        exitStatus = Self.decode(status)
        return false
    }

    /// Sends `signal` to the whole group (the process and what it started).
    func signalGroup(_ signal: Int32) {
        if !reaped { kill(-pid, signal) }
    }

    /// SIGTERM to the group, up to `grace` seconds, then SIGKILL; reaps the process.
    /// The whole group gets the signal, so what the program started (gpsfake's gpsd) stops too,
    /// and `stop` returns once the group is empty (up to 5 s more): a straggler still dying
    /// holds its port, and a server restarted on that port at once would fail to bind it.
    func stop(grace: Double = 2) {
        guard !reaped else { return }
        kill(-pid, SIGTERM)
        let deadline = Date(timeIntervalSinceNow: grace)
        while Date() < deadline, isRunning { usleep(10_000) }
        // While any member lives, the group id cannot go to another process: signalling it is safe.
        kill(-pid, SIGKILL)
        if !reaped {
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            reaped = true
            exitStatus = Self.decode(status)
        }
        let gone = Date(timeIntervalSinceNow: 5)
        while groupHasLiveMembers(), Date() < gone { usleep(10_000) }
    }

    /// Whether a process of this group is still alive: not a zombie, which holds no sockets and
    /// which, orphaned, only init reaps (a container's PID 1 may never do it). From /proc/*/stat:
    /// "pid (comm) state ppid pgrp ...".
    private func groupHasLiveMembers() -> Bool {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where entry.first?.isNumber == true {
            guard let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 2, fields[0] != "Z", Int32(fields[2]) == pid { return true }
        }
        return false
    }

    /// Waits for the process to exit by itself; nil on timeout.
    func wait(timeout: Double) -> Int32? {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while Date() < deadline {
            if !isRunning { return exitStatus }
            usleep(10_000)
        }
        return nil
    }

    private static func decode(_ status: Int32) -> Int32 {
        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros Swift does not import.
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }

    /// Finds a program in PATH and the sbin folders (gpsd is in /usr/sbin).
    static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for dir in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin"] {
            let candidate = dir + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}

/// A fresh folder under /tmp, removed in `deinit`.
final class TemporaryDirectory {
    let path: String
    init(_ prefix: String = "ringcap-test") throws {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw TestFailure("mkdtemp failed: errno \(errno)")
        }
        path = String(cString: made)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Ports `freeLoopbackPort` has handed out in this test process.
private let portsHandedOut = Mutex<Set<UInt16>>([])

/// A port on 127.0.0.1 that is free now, for TCP (`SOCK_STREAM`) or UDP (`SOCK_DGRAM`), and
/// that no other test of this process was given: the kernel may hand a port that was just
/// closed to the next bind, and a server a test stopped for a while (gpsd killed, then
/// restarted) must not find its port taken by another test's server.
func freeLoopbackPort(udp: Bool = false) -> UInt16 {
    while true {
        let port = kernelFreeLoopbackPort(udp: udp)
        if portsHandedOut.withLock({ $0.insert(port).inserted }) { return port }
    }
}

private func kernelFreeLoopbackPort(udp: Bool) -> UInt16 {
    let fd = socket(AF_INET, Int32(udp ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue), 0)
    precondition(fd >= 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    return UInt16(bigEndian: addr.sin_port)
}

/// A TCP socket connected to 127.0.0.1:`port`, or nil when nothing accepts there. The caller
/// closes it.
func connectLoopback(_ port: UInt16) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else {
        close(fd)
        return nil
    }
    return fd
}

/// True once something accepts TCP connections on 127.0.0.1:`port`.
func isListening(_ port: UInt16) -> Bool {
    guard let fd = connectLoopback(port) else { return false }
    close(fd)
    return true
}

/// Polls `condition` every 50 ms until it holds or `timeout` seconds pass. Sleeps without
/// blocking a thread, so tests that wait on servers overlap.
func waitUntil(timeout: Double, _ condition: () throws -> Bool) async throws -> Bool {
    let deadline = Date(timeIntervalSinceNow: timeout)
    repeat {
        if try condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    } while Date() < deadline
    return try condition()
}

/// Sends datagrams to 127.0.0.1:`port` (NMEA over UDP, as chartplotters broadcast it).
final class UDPSender {
    private let fd: Int32
    private var addr = sockaddr_in()
    init(port: UInt16) {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    }
    deinit { close(fd) }
    func send(_ text: String) {
        var bytes = Array(text.utf8)
        _ = withUnsafePointer(to: &addr) { a in
            a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bytes.withUnsafeMutableBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
    }
}

/// A TCP socket listening on 127.0.0.1 at a port of the kernel's choosing, accepting nothing:
/// "another program" holding a port. Closed on deinit.
final class LoopbackListener: Sendable {
    let port: UInt16
    private let fd: Int32
    init() throws {
        // Close-on-exec: a child this process starts (a private gpsd) must not hold it too, as a
        // socket of another program would not be.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, len) == 0 && listen(fd, 8) == 0 && getsockname(fd, $0, &len) == 0
            }
        }
        guard ok else {
            close(fd)
            throw TestFailure("bind/listen on 127.0.0.1: \(String(cString: strerror(errno)))")
        }
        self.fd = fd
        port = UInt16(bigEndian: addr.sin_port)
    }
    deinit { close(fd) }
}
