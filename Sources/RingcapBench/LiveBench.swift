import COpenCV
import Foundation
import Logging
import RingcapKit
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `ringcap bench --scenario live`: what viewers cost. A `ringcap record --http` of 2 test
/// cameras 1280x720@15 runs as a child process; viewers in this process (one thread, poll)
/// read its stream.mjpg: 0, 1, 10 and 50 of the full stream, then 10 of a 640-wide variant;
/// the child's CPU time (from /proc) over the frames it wrote is its cost per frame. The floor,
/// in the same run, interleaved: a plain C sender (`ringcap bench-floor`) sending the same JPEG
/// bytes at the same rate to the same viewers; what ringcap adds is judged above it.
public struct LiveBench {
    public struct Level: Codable, Sendable {
        public var what: String
        public var viewers: Int
        public var cpuMsPerFrame: Double
        public var viewerFPS: Double
        public var latencyP50Ms: Double
        public var latencyP99Ms: Double
        public var variantEncodesPerFrame: Double?
        public var residentMB: Double

        enum CodingKeys: String, CodingKey {
            case what, viewers
            case cpuMsPerFrame = "cpu_ms_per_frame"
            case viewerFPS = "viewer_fps"
            case latencyP50Ms = "latency_p50_ms"
            case latencyP99Ms = "latency_p99_ms"
            case variantEncodesPerFrame = "variant_encodes_per_frame"
            case residentMB = "resident_mb"
        }
    }

    let binary: String
    let seconds: Double
    let logger: Logger
    let stop: @Sendable () -> Bool

    public init(binary: String, seconds: Double, logger: Logger, stop: @escaping @Sendable () -> Bool) {
        self.binary = binary
        self.seconds = seconds
        self.logger = logger
        self.stop = stop
    }

    /// Runs two interleaved rounds and returns every measurement, then the summary line.
    public func run() throws(BenchError) -> (levels: [Level], summary: String, targetMet: Bool) {
        let root = NSTemporaryDirectory() + "ringcap-live-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let port = Self.freePort()
        let recorder: Child
        do {
            recorder = try Child(binary, ["record", "--camera", "cam0=test:1280x720@15", "--camera", "cam1=test:1280x720@15",
                                          "--out", root + "/out", "--gps", "none", "--http", "\(port)", "--log-level", "warning",
                                          "--keep-free", "0"])
        } catch { throw .live("cannot start \(binary): \(error)") }
        defer { recorder.stop() }
        guard Self.waitForHTTP(port: port) else { throw .live("ringcap record --http did not answer on port \(port)") }
        // The floor sends the recording's own JPEG, of the very size the viewers get from ringcap.
        guard let jpeg = Self.get(port: port, path: "/api/cameras/cam0/snapshot.jpg"), jpeg.count > 1000 else {
            throw .live("no snapshot from the recording")
        }
        let jpegPath = root + "/floor.jpg"
        guard FileManager.default.createFile(atPath: jpegPath, contents: Data(jpeg)) else { throw .live("cannot write \(jpegPath)") }
        let floorPort = Self.freePort()
        let floor: Child
        do { floor = try Child(binary, ["bench-floor", "--port", "\(floorPort)", "--jpeg", jpegPath, "--streams", "2", "--fps", "15"]) }
        catch { throw .live("cannot start the floor: \(error)") }
        defer { floor.stop() }
        guard Self.waitForPort(floorPort) else { throw .live("the floor did not listen") }

        var levels: [Level] = []
        let plan: [(String, Int, String)] = [
            ("ringcap", 0, ""), ("ringcap", 1, ""), ("ringcap", 10, ""), ("ringcap", 50, ""), ("floor", 50, ""),
            ("ringcap", 10, "?width=640"),
        ]
        for _ in 0..<2 {
            for (what, viewers, query) in plan {
                if stop() { break }
                let isFloor = what == "floor"
                let level = measure(child: isFloor ? floor : recorder, httpPort: port, streamPort: isFloor ? floorPort : port,
                                    viewers: viewers, query: query, floor: isFloor)
                var named = level
                named.what = isFloor ? "floor (C sender)" : query.isEmpty ? "full stream" : "640-wide variant"
                levels.append(named)
                logger.notice("live: \(named.what), \(viewers) viewer(s): \(String(format: "%.3f", named.cpuMsPerFrame)) ms/frame")
            }
        }
        func mean(_ what: String, _ viewers: Int) -> Double {
            let xs = levels.filter { $0.what == what && $0.viewers == viewers }.map(\.cpuMsPerFrame)
            return xs.isEmpty ? .nan : xs.reduce(0, +) / Double(xs.count)
        }
        let zero = mean("full stream", 0), fifty = mean("full stream", 50), floor50 = mean("floor (C sender)", 50)
        let bound = (zero + floor50) * 1.10
        let p99 = levels.filter { $0.what != "floor (C sender)" && $0.viewers > 0 }.map(\.latencyP99Ms).max() ?? 0
        let encodes = levels.compactMap(\.variantEncodesPerFrame).max() ?? 0
        let rss = levels.filter { $0.what != "floor (C sender)" }.map(\.residentMB)
        let met = fifty <= bound && p99 < 30 && encodes <= 1.0 + 1e-9
        let summary = String(format: "50 viewers: %.3f ms/frame; bound (0 viewers %.3f + floor %.3f) x 1.10 = %.3f: %@. Latency p99 at most %.0f ms (target < 30). Variant encodes per frame and variant: %.2f (at most 1). Resident %.0f-%.0f MB.",
                             fifty, zero, floor50, bound, fifty <= bound ? "met" : "NOT met", p99, encodes, rss.min() ?? 0, rss.max() ?? 0)
        return (levels, summary, met)
    }

    /// One level: viewers connected, 2 s to settle, then `seconds` measured.
    private func measure(child: Child, httpPort: Int, streamPort: Int, viewers: Int, query: String, floor: Bool) -> Level {
        let paths = (0..<viewers).map { "/api/cameras/cam\($0 % 2)/stream.mjpg\(query)" }
        let clients = ViewerClients(port: streamPort, paths: paths)
        clients.start()
        Thread.sleep(forTimeInterval: 2)
        let cpu0 = child.cpuSeconds()
        let written0 = floor ? 0 : Self.written(port: httpPort)
        // Encodes against frames written, both from one scrape at each end.
        let (encodes0, stored0) = Self.metrics(port: httpPort)
        clients.resetCounts()
        let start = Date()
        var rss: [Double] = []
        while Date().timeIntervalSince(start) < seconds && !stop() {
            Thread.sleep(forTimeInterval: 1)
            rss.append(child.residentMB())
        }
        let elapsed = Date().timeIntervalSince(start)
        let cpu = child.cpuSeconds() - cpu0
        // The floor's frames: what it sent per stream at 15 frames/s, as ringcap's two cameras.
        let frames = floor ? 2 * 15 * elapsed : Double(Self.written(port: httpPort) - written0)
        let (encodes1, stored1) = Self.metrics(port: httpPort)
        let encodes = encodes1 - encodes0, stored = max(stored1 - stored0, 1)
        let (parts, p50, p99) = clients.finish()
        return Level(what: "", viewers: viewers, cpuMsPerFrame: cpu * 1000 / max(frames, 1),
                     viewerFPS: viewers == 0 ? 0 : Double(parts) / elapsed / Double(viewers), latencyP50Ms: p50, latencyP99Ms: p99,
                     variantEncodesPerFrame: query.isEmpty || floor ? nil : encodes / stored, residentMB: rss.max() ?? 0)
    }

    // MARK: Plumbing

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    static func connectTo(_ port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc != 0 { close(fd); return nil }
        return fd
    }

    static func waitForPort(_ port: Int) -> Bool {
        for _ in 0..<200 {
            if let fd = connectTo(port) { close(fd); return true }
            usleep(50_000)
        }
        return false
    }

    static func waitForHTTP(port: Int) -> Bool {
        for _ in 0..<200 {
            if get(port: port, path: "/api/health") != nil { return true }
            usleep(50_000)
        }
        return false
    }

    /// A GET's body (Content-Length responses), nil on any failure.
    static func get(port: Int, path: String) -> [UInt8]? {
        guard let fd = connectTo(port) else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBufferPointer { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBufferPointer { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            data += chunk[0..<n]
        }
        let end: [UInt8] = [13, 10, 13, 10]
        guard data.count > 12, data[9] == UInt8(ascii: "2"),
              let i = (0...(data.count - 4)).first(where: { Array(data[$0..<($0 + 4)]) == end }) else { return nil }
        return Array(data[(i + 4)...])
    }

    static func written(port: Int) -> Int {
        guard let body = get(port: port, path: "/api/cameras"),
              let list = try? JSONSerialization.jsonObject(with: Data(body)) as? [[String: Any]] else { return 0 }
        return list.reduce(0) { $0 + ($1["written"] as? Int ?? 0) }
    }

    /// Variant encodes and frames written, summed over the cameras, from one scrape of /metrics.
    static func metrics(port: Int) -> (encodes: Double, written: Double) {
        guard let body = get(port: port, path: "/metrics") else { return (0, 0) }
        let lines = String(decoding: body, as: UTF8.self).split(separator: "\n")
        func sum(_ name: String) -> Double {
            lines.filter { $0.hasPrefix(name + "{") }.compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
        }
        return (sum("ringcap_live_variant_encodes_total"), sum("ringcap_frames_written_total"))
    }
}

/// A child process of the bench, its CPU time and memory read from /proc. Not thread-safe.
final class Child {
    let pid: pid_t

    init(_ path: String, _ arguments: [String]) throws {
        var argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var child: pid_t = 0
        let rc = posix_spawn(&child, path, &actions, nil, &argv, environ)
        guard rc == 0 else { throw BenchError.live("posix_spawn \(path): errno \(rc)") }
        pid = child
    }

    func cpuSeconds() -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .ascii),
              let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After "(comm)": state is field 3; utime and stime are fields 14 and 15.
        guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return 0 }
        return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    func residentMB() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/statm", encoding: .ascii) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Double(fields[1]) else { return 0 }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
    }

    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<200 {
            if waitpid(pid, &status, WNOHANG) == pid { return }
            usleep(50_000)
        }
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
    }
}

/// The bench's viewers: sockets reading MJPEG streams (chunked) on one thread with poll(),
/// counting parts and the latency from each part's X-Timestamp to its last byte read.
/// Thread-safe: start/resetCounts/finish from the bench thread; the counts under a lock.
final class ViewerClients: @unchecked Sendable {
    private let port: Int
    private let paths: [String]
    private let stopFlag = Atomic<Bool>(false)
    private let done = MonotonicSemaphore()
    private let counts = Mutex<(parts: Int, latenciesMs: [Double])>((0, []))

    init(port: Int, paths: [String]) {
        self.port = port
        self.paths = paths
    }

    func start() {
        guard !paths.isEmpty else { done.signal(); return }
        startWorkerThread("bench-viewers", done: done) { [self] in loop() }
    }

    func resetCounts() { counts.withLock { $0 = (0, []) } }

    /// Stops the viewers and returns parts received and latency p50/p99, ms.
    func finish() -> (Int, Double, Double) {
        stopFlag.store(true, ordering: .relaxed)
        done.wait()
        let (parts, lat) = counts.withLock { $0 }
        let sorted = lat.sorted()
        func p(_ q: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(q * Double(sorted.count)))] }
        return (parts, p(0.5), p(0.99))
    }

    private struct Stream {
        var fd: Int32
        var buffer: [UInt8] = []
        /// Body bytes still to skip (the JPEG and its CRLF) and the part's timestamp.
        var skip = 0
        var stamp = 0.0
        var inBody = false
        var chunkLeft = 0
    }

    private func loop() {
        var streams: [Stream] = []
        for path in paths {
            guard let fd = LiveBench.connectTo(port) else { continue }
            let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
            _ = request.withUnsafeBufferPointer { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            streams.append(Stream(fd: fd))
        }
        var chunk = [UInt8](repeating: 0, count: 1 << 18)
        while !stopFlag.load(ordering: .relaxed) {
            var fds = streams.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            guard poll(&fds, nfds_t(fds.count), 100) > 0 else { continue }
            for i in fds.indices where fds[i].revents != 0 {
                let n = chunk.withUnsafeMutableBufferPointer { recv(fds[i].fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { continue }
                consume(&streams[i], chunk[0..<n])
            }
        }
        for s in streams { close(s.fd) }
    }

    /// Undoes the chunked framing, then walks the parts: headers parsed, JPEG bytes skipped.
    private func consume(_ s: inout Stream, _ bytes: ArraySlice<UInt8>) {
        var rest = bytes[...]
        while !rest.isEmpty {
            if !s.inBody {
                // The response head, once: everything up to the first blank line.
                s.buffer += rest
                rest = []
                guard let end = Self.find(s.buffer, [13, 10, 13, 10]) else { return }
                rest = ArraySlice(s.buffer[(end + 4)...])
                s.buffer = []
                s.inBody = true
                continue
            }
            if s.chunkLeft == 0 {
                s.buffer += rest
                rest = []
                // A chunk-size line (after the previous chunk's CRLF, which it may start with).
                while s.buffer.first == 13 || s.buffer.first == 10 { s.buffer.removeFirst() }
                guard let eol = Self.find(s.buffer, [13, 10]) else { return }
                let size = Int(String(decoding: s.buffer[0..<eol], as: UTF8.self), radix: 16) ?? 0
                rest = ArraySlice(s.buffer[(eol + 2)...])
                s.buffer = []
                s.chunkLeft = size
                if size == 0 { return }
                continue
            }
            let take = min(s.chunkLeft, rest.count)
            part(&s, rest.prefix(take))
            s.chunkLeft -= take
            rest = rest.dropFirst(take)
        }
    }

    private var pending: [UInt8] = []

    /// Part bytes (chunk framing removed): headers, then Content-Length bytes of JPEG and CRLF.
    private func part(_ s: inout Stream, _ bytes: ArraySlice<UInt8>) {
        var rest = bytes
        while !rest.isEmpty {
            if s.skip > 0 {
                let take = min(s.skip, rest.count)
                s.skip -= take
                rest = rest.dropFirst(take)
                if s.skip == 0 {
                    let latency = (Date().timeIntervalSince1970 - s.stamp) * 1000
                    counts.withLock { $0.parts += 1; $0.latenciesMs.append(latency) }
                }
                continue
            }
            s.buffer += rest
            rest = []
            guard let end = Self.find(s.buffer, [13, 10, 13, 10]) else { return }
            let head = String(decoding: s.buffer[0..<end], as: UTF8.self)
            var length = 0
            for line in head.split(separator: "\r\n") {
                if line.lowercased().hasPrefix("content-length:") { length = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0 }
                if line.lowercased().hasPrefix("x-timestamp:") { s.stamp = Double(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0 }
            }
            rest = ArraySlice(s.buffer[(end + 4)...])
            s.buffer = []
            s.skip = length + 2
        }
    }

    private static func find(_ haystack: [UInt8], _ needle: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var i = 0
        while i <= haystack.count - needle.count {
            if haystack[i] == needle[0] && haystack[i + 1] == needle[1] && (needle.count < 3 || (haystack[i + 2] == needle[2] && haystack[i + 3] == needle[3])) {
                return i
            }
            i += 1
        }
        return nil
    }
}

extension LiveBench {
    public static func jsonLine(_ level: Level) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var object = (try? JSONSerialization.jsonObject(with: encoder.encode(level))) as? [String: Any] ?? [:]
        object["scenario"] = "live"
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    public static func table(_ levels: [Level]) -> String {
        var text = "live: 2 test cameras 1280x720@15, viewers of cam0 and cam1 in turn\n"
        text += "what              viewers  CPU ms/frame  viewer fps  p50 ms  p99 ms  encodes/frame  RSS MB\n"
        for l in levels {
            let what = l.what.padding(toLength: 17, withPad: " ", startingAt: 0)
            let encodes = (l.variantEncodesPerFrame.map { String(format: "%.2f", $0) } ?? "-")
            text += what + String(format: " %7d  %12.3f  %10.1f  %6.1f  %6.1f  ", l.viewers, l.cpuMsPerFrame, l.viewerFPS, l.latencyP50Ms, l.latencyP99Ms)
                + String(repeating: " ", count: max(0, 13 - encodes.count)) + encodes + String(format: "  %6.0f\n", l.residentMB)
        }
        return text
    }
}
