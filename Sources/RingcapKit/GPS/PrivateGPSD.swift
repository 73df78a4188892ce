import COpenCV
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A gpsd that ringcap runs itself, for a serial port or an NMEA feed (`gpsd -N -n -S PORT SOURCE`),
/// listening on a free loopback port that the GPS reader then connects to like any other gpsd.
///
/// gpsd is the field's well-kept NMEA/u-blox/SiRF parser, so ringcap does not write another.
/// The child gets its own process group (so a terminal's Ctrl-C reaches ringcap, which then stops
/// it in order, rather than killing it under a running reader), default signal dispositions and an
/// empty signal mask (the spawning thread may block signals, and a child inherits the mask: a gpsd
/// with SIGTERM blocked could not be stopped). It is stopped by its PID, never by name.
///
/// Owned by one thread (the GPS reader's); not thread-safe.
final class PrivateGPSD {
    let executable: String
    let source: String
    /// The loopback port gpsd listens on; a fresh free one at every start.
    private(set) var port: UInt16 = 0
    /// The child's PID while it runs, else 0.
    private(set) var pid: pid_t = 0
    /// Read end of the child's stderr (non-blocking), -1 when none.
    private var stderrFD: Int32 = -1
    /// Bytes of an unfinished stderr line.
    private var partialLine: [UInt8] = []

    /// Where gpsd is looked for: PATH, then the sbin folders (gpsd lives in /usr/sbin, which is
    /// not on every user's PATH).
    static var searchDirectories: [String] {
        var dirs: [String] = []
        if let path = getenv("PATH") { dirs = String(cString: path).split(separator: ":").map(String.init) }
        return dirs + ["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"]
    }

    /// Finds the gpsd binary in `directories`.
    static func locate(in directories: [String] = searchDirectories) -> String? {
        for dir in directories where !dir.isEmpty {
            let candidate = dir + "/gpsd"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Where each start takes its port from: a free one by default (tests hand in a taken one).
    let portSource: () -> UInt16?

    init(executable: String, source: String, portSource: @escaping () -> UInt16? = PrivateGPSD.freeLoopbackPort) {
        self.executable = executable
        self.source = source
        self.portSource = portSource
    }

    /// Who listens on 127.0.0.1 at `port` (IPv4: where the reader connects).
    enum Listener: Equatable { case ours, someoneElse, nobody }

    /// Whether the IPv4 listener on `port` is this gpsd's, from /proc/net/tcp and the child's file
    /// descriptors. Why: when another program holds 127.0.0.1:`port`, gpsd does not exit; it says
    /// "can't bind to IPv4 port" and goes on listening on [::1] alone, and a reader connecting to
    /// 127.0.0.1 would reach the other program and wait there for ever. `.nobody` also when
    /// /proc cannot be read (then the caller connects and sees).
    func listener() -> Listener {
        guard pid != 0, let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return .nobody }
        let hexPort = String(format: "%04X", port)
        var inodes: Set<String> = []
        for line in table.split(separator: "\n").dropFirst() {
            // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count > 9, f[3] == "0A" else { continue }  // 0A: LISTEN
            let local = f[1].split(separator: ":")
            guard local.count == 2, local[1] == hexPort, local[0] == "0100007F" || local[0] == "00000000" else { continue }
            inodes.insert(String(f[9]))
        }
        if inodes.isEmpty { return .nobody }
        let fdDir = "/proc/\(pid)/fd"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: fdDir)) ?? [] {
            var target = [CChar](repeating: 0, count: 64)
            let n = readlink(fdDir + "/" + entry, &target, target.count - 1)
            guard n > 0 else { continue }
            let text = String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.hasPrefix("socket:["), inodes.contains(String(text.dropFirst(8).dropLast())) { return .ours }
        }
        return .someoneElse
    }

    deinit {
        stop()
        closeErrors()
    }

    /// Starts gpsd on a free loopback port. Returns an error text naming what failed.
    func start() -> String? {
        guard pid == 0 else { return nil }
        guard let freePort = portSource() else { return "no free loopback TCP port for a private gpsd" }
        port = freePort
        let args = [executable, "-N", "-n", "-S", String(freePort), source]
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) }
        argv.append(nil)
        defer { for p in argv { free(p) } }

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

        // gpsd -N writes nothing useful to stdout. Its stderr comes through a pipe so that its
        // errors reach ringcap's log (see `drainErrors`) without its start-up noise.
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return "cannot make a pipe for gpsd: \(String(cString: strerror(errno))) (errno \(errno))" }
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[1])
        // Nothing else of ours goes into gpsd: a descriptor it inherited would outlive us in it
        // (another child's pipe or socket: Foundation's Process learns that a child ended when
        // the last copy of such a socket closes, so one held by gpsd hides that child's end).
        _ = rc_spawn_actions_close_from(&actions, 3)

        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &actions, &attr, argv, environ)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            return "cannot start \(executable): \(String(cString: strerror(rc))) (errno \(rc))"
        }
        pid = child
        closeErrors()
        stderrFD = fds[0]
        return nil
    }

    /// Hands each complete line gpsd wrote to stderr since the last call to `line`, except the
    /// harmless complaint of a gpsd built with D-Bus support on a machine without a system bus.
    /// Non-blocking; cheap when there is nothing.
    func drainErrors(_ line: (String) -> Void) {
        guard stderrFD >= 0 else { return }
        var chunk = [UInt8](repeating: 0, count: 512)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(stderrFD, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            for b in chunk[0..<n] {
                if b == 0x0A {
                    let text = String(decoding: partialLine, as: UTF8.self)
                    partialLine.removeAll(keepingCapacity: true)
                    if !text.isEmpty, !text.contains("DBUS") { line(text) }
                } else if partialLine.count < 1000 {
                    partialLine.append(b)
                }
            }
        }
    }

    private func closeErrors() {
        if stderrFD >= 0 { close(stderrFD) }
        stderrFD = -1
        partialLine.removeAll()
    }

    /// True while the child runs; reaps it (and forgets its PID) once it has exited.
    func isRunning() -> Bool {
        guard pid != 0 else { return false }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == 0 { return true }
        pid = 0
        return false
    }

    /// SIGTERM, up to a second for gpsd to exit, then SIGKILL. Always reaps the child.
    func stop() {
        guard pid != 0 else { return }
        let target = pid
        pid = 0
        kill(target, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<100 {
            if waitpid(target, &status, WNOHANG) != 0 { return }
            usleep(10_000)
        }
        kill(target, SIGKILL)
        _ = waitpid(target, &status, 0)
    }

    /// A TCP port on 127.0.0.1 that is free now: bind port 0 and ask the kernel which it chose.
    /// Another program could take it before gpsd binds it; the reader sees that (`listener()`)
    /// and restarts gpsd on a fresh port, so the race costs one restart at worst.
    static func freeLoopbackPort() -> UInt16? {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { return nil }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard named == 0 else { return nil }
        return UInt16(bigEndian: addr.sin_port)
    }
}
