// gpsfake as the GPS tests run it: a real gpsd on a loopback port, fed an NMEA log through a
// pseudo-terminal. Shared by GPSReaderTests and GPSRecordEndToEndTests.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One gpsfake run (gpsfake and the gpsd it starts, in one process group), with its own
/// temporary folder and its own log.
///
/// gpsfake starts gpsd, waits for gpsd's control socket, then hands gpsd its pseudo-terminal
/// through that socket. On a loaded machine its wait sometimes ends before gpsd has even
/// started (seen here: gpsfake's "log cycle begins" logged before gpsd's "launching"); the
/// hand-over then finds no socket and is skipped without a word, and gpsd listens for ever
/// with no device and no fix. `waitServingFixes` notices that from the log (`-D 3` makes gpsd
/// log each device it is given) and does the hand-over gpsfake skipped: the `+DEVICE` control
/// command to `$TMPDIR/gpsfake-<pid>.sock`, naming the pseudo-terminal gpsfake holds open.
/// (Checked by hand with dead sockets under the next PIDs, which make gpsfake skip it on an
/// idle machine; a test cannot rely on that, as a loaded one lets gpsd replace them in time.)
///
/// Its own `TMPDIR`, because gpsd drops root before it exits and so cannot remove its control
/// socket from /tmp: dead sockets pile up there, and once PIDs wrap a new gpsfake can find one
/// under its own name. A private folder, removed with the test's, cannot hold a dead socket.
///
/// Not thread-safe: owned by one test.
final class GPSFake {
    let port: UInt16
    let logPath: String
    private let folder: String
    private let process: TestProcess
    /// Whether gpsfake skipped handing gpsd its device and `waitServingFixes` did it.
    private var handedOver = false

    /// Starts gpsfake on 127.0.0.1:`port`, playing `log` at `secondsPerSentence`, looping it
    /// unless `once`. `folder` is the test's temporary folder.
    init(_ log: String, port: UInt16, in folder: String, once: Bool = false, secondsPerSentence: Double = 0.1) throws {
        self.port = port
        self.folder = "\(folder)/gpsfake-\(port)-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: self.folder, withIntermediateDirectories: true)
        logPath = self.folder + "/gpsfake.log"
        var args = ["-D", "3", "-n", "-c", String(secondsPerSentence), "-P", String(port)]
        if once { args.append("-1") }
        args.append(log)
        process = try TestProcess("gpsfake", args, stderr: logPath, environment: ["TMPDIR": self.folder])
    }

    deinit { stop() }

    /// Stops gpsfake and its gpsd (the whole process group), by PID.
    func stop() { process.stop() }

    /// Waits until gpsd serves fixes: something listens on the port, and a client of its own
    /// (one `?WATCH`) receives a TPV report with a 2D or 3D fix. Hands gpsd its device if
    /// gpsfake skipped that. False after `timeout` seconds.
    func waitServingFixes(timeout: Double) async throws -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        guard try await waitUntil(timeout: timeout, { isListening(port) }) else { return false }
        let probe = GPSDProbe(port: port)
        return try await waitUntil(timeout: max(0, deadline.timeIntervalSinceNow)) {
            if probe.sawFix() { return true }
            handOverIfSkipped()
            return false
        }
    }

    /// gpsfake logs "log cycle of … begins" once it has handed gpsd the device; gpsd logs
    /// "adding /dev/pts/N" when it gets it, before it replies. The first without the second is
    /// the skipped hand-over.
    private func handOverIfSkipped() {
        guard !handedOver else { return }
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        guard text.contains("log cycle of"), !text.contains(": adding /dev/"),
              text.contains("listening on port") else { return }
        guard let pty = pseudoTerminal() else { return }
        guard sendControl("+\(pty)\r\n\0", to: "\(folder)/gpsfake-\(process.pid).sock") else { return }
        handedOver = true
        print("gpsfake-handover: gpsfake (pid \(process.pid), port \(port)) never gave gpsd \(pty); the test did")
    }

    /// The pseudo-terminal gpsfake writes the log to: of the /dev/pts/N it holds open (it also
    /// holds one from checking that ptys work), the one it opened to everyone (0666) for gpsd,
    /// which runs as another user.
    private func pseudoTerminal() -> String? {
        let fdDir = "/proc/\(process.pid)/fd"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: fdDir)) ?? [] {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fdDir)/\(entry)"),
                  target.hasPrefix("/dev/pts/") else { continue }
            var info = stat()
            if stat(target, &info) == 0, info.st_mode & 0o777 == 0o666 { return target }
        }
        return nil
    }

    private static func unixAddress(_ path: String) -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        precondition(bytes.count < MemoryLayout.size(ofValue: addr.sun_path), "socket path too long: \(path)")
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return addr
    }

    /// One command to gpsd's control socket; true when gpsd answered OK.
    private func sendControl(_ command: String, to path: String) -> Bool {
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { return false }
        defer { close(s) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var addr = Self.unixAddress(path)
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { return false }
        let message = Array(command.utf8)
        guard message.withUnsafeBytes({ send(s, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == message.count else { return false }
        var reply = [UInt8](repeating: 0, count: 16)
        let n = reply.withUnsafeMutableBytes { recv(s, $0.baseAddress, $0.count, 0) }
        return n > 0 && String(decoding: reply[0..<n], as: UTF8.self).hasPrefix("OK")
    }

    /// The last lines of gpsfake's and gpsd's log, for a failure message.
    func logTail(lines: Int = 40) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "(no log at \(logPath))"
        return "gpsfake on port \(port), pid \(process.pid), running \(process.isRunning):\n"
            + text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}

/// A minimal gpsd client that never blocks: connects, sends `?WATCH`, and on each `sawFix()`
/// reads what has arrived and looks for a TPV report with mode 2 or 3. Reconnects if gpsd
/// closes the connection.
final class GPSDProbe {
    private let port: UInt16
    private var fd: Int32 = -1
    private var text = ""

    init(port: UInt16) { self.port = port }
    deinit { if fd >= 0 { close(fd) } }

    func sawFix() -> Bool {
        if fd < 0 { connectAndWatch() }
        guard fd >= 0 else { return false }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 {
                text += String(decoding: buffer[0..<n], as: UTF8.self)
                continue
            }
            if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) {  // closed or failed
                close(fd)
                fd = -1
            }
            break
        }
        for line in text.split(separator: "\n") where line.contains("\"class\":\"TPV\"") {
            if line.contains("\"mode\":2") || line.contains("\"mode\":3") { return true }
        }
        if let last = text.lastIndex(of: "\n") { text = String(text[text.index(after: last)...]) }
        return false
    }

    private func connectAndWatch() {
        guard let s = connectLoopback(port) else { return }
        let watch = Array("?WATCH={\"enable\":true,\"json\":true};\n".utf8)
        guard watch.withUnsafeBytes({ send(s, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == watch.count else {
            close(s)
            return
        }
        fd = s
        text = ""
    }
}
