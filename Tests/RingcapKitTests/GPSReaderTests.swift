import Foundation
import Synchronization
import Testing
@testable import RingcapKit

/// GPSReader against real gpsd: fed by gpsfake, by NMEA over UDP, by a pseudo-terminal, or absent.
/// Every test uses its own free ports and stops what it starts by PID.
@Suite struct GPSReaderTests {
    /// gpsfake loops its log unless told otherwise: with the machine loaded, a test may be held
    /// back for seconds, and a log played once could be over before the test looks.

    /// Checks a fix against the track at the fix's own time.
    static func expectOnTrack(_ fix: GPSFix, _ track: NMEATrack, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(fix.timeNs != GPSFix.noTime, sourceLocation: sourceLocation)
        let expected = track.position(atUnixNs: fix.timeNs)
        #expect(abs(fix.latitude - expected.lat) < 1e-6, "lat \(fix.latitude) vs \(expected.lat)", sourceLocation: sourceLocation)
        #expect(abs(fix.longitude - expected.lon) < 1e-6, "lon \(fix.longitude) vs \(expected.lon)", sourceLocation: sourceLocation)
        #expect(fix.mode == 2 || fix.mode == 3, sourceLocation: sourceLocation)
        if fix.mode == 3 {
            #expect(abs(fix.altitudeM - track.altitudeM) < 0.05, "alt \(fix.altitudeM)", sourceLocation: sourceLocation)
        }
        if fix.speedMps.isFinite {
            // RMC carries knots with 3 decimals.
            #expect(abs(fix.speedMps - track.speedMps) < 0.01, "speed \(fix.speedMps)", sourceLocation: sourceLocation)
        }
        if fix.trackDeg.isFinite {
            #expect(abs(fix.trackDeg - track.courseDeg) < 0.01, sourceLocation: sourceLocation)
        }
        // Received during this test, and not in the future: a check made after sampling several
        // fixes on a loaded machine can come many seconds after the first of them.
        let now = Clock.monotonicNs()
        #expect(fix.receivedMonotonicNs > 0 && fix.receivedMonotonicNs <= now, sourceLocation: sourceLocation)
        #expect(now &- fix.receivedMonotonicNs < 60_000_000_000, sourceLocation: sourceLocation)
    }

    @Test func carFromGPSFakeMatchesTrack() async throws {
        let dir = try TemporaryDirectory()
        let track = NMEATrack.car(start: Int64(Date().timeIntervalSince1970) - 5, fixes: 40)
        try track.write(to: dir.path + "/car.nmea")
        let port = freeLoopbackPort()
        let gpsfake = try GPSFake(dir.path + "/car.nmea", port: port, in: dir.path)
        defer { gpsfake.stop() }
        try #require(try await gpsfake.waitServingFixes(timeout: 30), "\(gpsfake.logTail())")

        let log = LogRecorder()
        let snapshot = GPSSnapshot()
        let reader = try GPSReader(spec: .gpsd(host: "127.0.0.1", port: port), snapshot: snapshot, logger: log.logger())
        #expect(reader.label == "gpsd://127.0.0.1:\(port)")
        let sampler = FixSampler(snapshot)
        reader.start()
        let fixes = try await sampler.wait(for: 12, timeout: 40)
        reader.stop()
        #expect(snapshot.read() == nil, "stop() withdraws the fix")
        try #require(fixes.count >= 12, "only \(fixes.count) fixes; \(log.messages.map(\.text)); \(gpsfake.logTail())")
        for fix in fixes { Self.expectOnTrack(fix, track) }
        #expect(fixes.contains { $0.mode == 3 })
        #expect(log.count(containing: "positions from") == 1)
        #expect(log.count(containing: "cannot reach") == 0)
    }

    /// A vessel whose NMEA times are an hour behind this machine's clock, played at one fix a
    /// second: the reader measures the offset and warns once.
    @Test func vesselClockOffsetIsMeasured() async throws {
        let dir = try TemporaryDirectory()
        let start = Int64(Date().timeIntervalSince1970) - 3600
        let track = NMEATrack.vessel(start: start, fixes: 120)  // two minutes before gpsfake loops
        try track.write(to: dir.path + "/vessel.nmea")
        let port = freeLoopbackPort()
        let gpsfake = try GPSFake(dir.path + "/vessel.nmea", port: port, in: dir.path, secondsPerSentence: 0.5)
        defer { gpsfake.stop() }
        try #require(try await gpsfake.waitServingFixes(timeout: 30), "\(gpsfake.logTail())")

        let log = LogRecorder()
        let snapshot = GPSSnapshot()
        let reader = try GPSReader(spec: .gpsd(host: "127.0.0.1", port: port), snapshot: snapshot, logger: log.logger())
        let sampler = FixSampler(snapshot)
        reader.start()
        defer { reader.stop() }
        let fixes = try await sampler.wait(for: 4, timeout: 40)
        try #require(fixes.count >= 4, "only \(fixes.count) fixes; \(log.messages.map(\.text)); \(gpsfake.logTail())")
        for fix in fixes { Self.expectOnTrack(fix, track) }
        #expect(fixes.allSatisfy { $0.latitude < 0 && $0.longitude < 0 })
        let offset = try #require(reader.clockOffsetMs)
        // gpsfake starts playing a second or two after it is started and plays a little slower
        // than a fix a second; fix times are whole seconds. What matters is the hour.
        #expect(offset < -3_600_000 + 1_000 && offset > -3_600_000 - 10_000, "offset \(offset) ms")
        #expect(log.count(containing: "the system clock is") == 1)
    }

    /// gpsd goes away and comes back: the fix is withdrawn, the loss is said once, positions resume.
    @Test func reconnectsAfterGPSDRestart() async throws {
        let dir = try TemporaryDirectory()
        let track = NMEATrack.car(start: Int64(Date().timeIntervalSince1970), fixes: 30)
        try track.write(to: dir.path + "/car.nmea")
        let port = freeLoopbackPort()
        var gpsfake = try GPSFake(dir.path + "/car.nmea", port: port, in: dir.path)
        // gpsfake is Python: on a loaded machine it can take seconds to serve.
        try #require(try await gpsfake.waitServingFixes(timeout: 30), "\(gpsfake.logTail())")

        let log = LogRecorder()
        let snapshot = GPSSnapshot()
        let reader = try GPSReader(spec: .gpsd(host: "127.0.0.1", port: port), snapshot: snapshot, logger: log.logger())
        reader.start()
        defer { reader.stop() }
        try #require(try await waitUntil(timeout: 30) { snapshot.read() != nil },
                     "\(log.messages.map(\.text)); \(gpsfake.logTail())")

        gpsfake.stop()
        #expect(try await waitUntil(timeout: 3) { snapshot.read() == nil }, "fix withdrawn when gpsd goes away")
        #expect(log.count(containing: "lost gpsd") == 1)
        try await Task.sleep(for: .seconds(1.5))
        #expect(snapshot.read() == nil)

        gpsfake = try GPSFake(dir.path + "/car.nmea", port: port, in: dir.path)
        defer { gpsfake.stop() }
        try #require(try await gpsfake.waitServingFixes(timeout: 30), "\(gpsfake.logTail())")
        let sampler = FixSampler(snapshot)
        let fixes = try await sampler.wait(for: 3, timeout: 40)
        try #require(fixes.count >= 3, "positions resume after gpsd comes back; \(log.messages.map(\.text)); \(gpsfake.logTail())")
        for fix in fixes { Self.expectOnTrack(fix, track) }
        #expect(log.count(containing: "lost gpsd") == 1, "said once per outage")
        #expect(log.count(containing: "positions from") == 2)
    }

    /// Nothing listens: no fix, one message, no crash; when gpsd appears later, positions come.
    @Test func missingGPSDThenAppears() async throws {
        let dir = try TemporaryDirectory()
        let track = NMEATrack.vessel(start: Int64(Date().timeIntervalSince1970), fixes: 30)
        try track.write(to: dir.path + "/vessel.nmea")
        let port = freeLoopbackPort()
        let log = LogRecorder()
        let snapshot = GPSSnapshot()
        let reader = try GPSReader(spec: .gpsd(host: "127.0.0.1", port: port), snapshot: snapshot, logger: log.logger())
        reader.start()
        defer { reader.stop() }
        try await Task.sleep(for: .seconds(2))  // attempts at 0, 0.5, 1.5 s
        #expect(snapshot.read() == nil)
        #expect(log.count(containing: "cannot reach gpsd") == 1)
        #expect(log.messages.first { $0.text.contains("cannot reach") }?.text.contains("recording goes on without positions") == true)

        let gpsfake = try GPSFake(dir.path + "/vessel.nmea", port: port, in: dir.path)
        defer { gpsfake.stop() }
        try #require(try await gpsfake.waitServingFixes(timeout: 30), "\(gpsfake.logTail())")
        let sampler = FixSampler(snapshot)
        let fixes = try await sampler.wait(for: 2, timeout: 40)
        try #require(fixes.count >= 2, "\(log.messages.map(\.text)); \(gpsfake.logTail())")
        for fix in fixes { Self.expectOnTrack(fix, track) }
        #expect(log.count(containing: "cannot reach gpsd") == 1)
        #expect(log.count(containing: "positions from") == 1)
    }

    /// `stop()` comes promptly even in the middle of a long backoff.
    @Test func stopInterruptsBackoff() async throws {
        let snapshot = GPSSnapshot()
        let reader = try GPSReader(spec: .gpsd(host: "127.0.0.1", port: freeLoopbackPort()), snapshot: snapshot,
                                   logger: LogRecorder().logger())
        reader.start()
        try await Task.sleep(for: .seconds(1.7))  // now sleeping in the 2 s backoff
        let before = Date()
        reader.stop()
        #expect(Date().timeIntervalSince(before) < 1)
    }

    /// NMEA datagrams sent by the test, read by the reader's private gpsd (`udp://`).
    @Test func nmeaOverUDPThroughPrivateGPSD() async throws {
        let udpPort = freeLoopbackPort(udp: true)
        let track = NMEATrack.vessel(start: Int64(Date().timeIntervalSince1970), fixes: 200)
        let spec = try GPSSpec(parsing: "udp://127.0.0.1:\(udpPort)")
        let log = LogRecorder()
        let snapshot = GPSSnapshot()
        let reader = try GPSReader(spec: spec, snapshot: snapshot, logger: log.logger())
        reader.start()
        var stopped = false
        defer { if !stopped { reader.stop() } }

        // The private gpsd is a child of this process, reading that UDP port.
        #expect(try await waitUntil(timeout: 5) { !Self.childGPSDs(reading: "udp://127.0.0.1:\(udpPort)").isEmpty })
        let sender = UDPSender(port: udpPort)
        let fixes = try await Self.feed(track, untilFixes: 4, into: snapshot) { _, sentences in
            // One sentence per datagram, as chartplotters send them.
            for line in sentences.split(separator: "\n") { sender.send(String(line) + "\n") }
        }
        try #require(fixes.count >= 4, "only \(fixes.count) fixes over UDP")
        for fix in fixes { Self.expectOnTrack(fix, track) }
        reader.stop()
        stopped = true
        #expect(Self.childGPSDs(reading: "udp://127.0.0.1:\(udpPort)").isEmpty, "the private gpsd is stopped")
    }

    /// Another program holds 127.0.0.1 on the port the private gpsd is given. gpsd does not exit
    /// then: it listens on [::1] alone. The reader must notice, start gpsd on another port and
    /// get positions, not sit connected to the other program.
    @Test func privateGPSDMovesOffAPortAnotherProgramHolds() async throws {
        let taken = try LoopbackListener()
        let handedOut = Mutex(0)
        let udpPort = freeLoopbackPort(udp: true)
        let track = NMEATrack.vessel(start: Int64(Date().timeIntervalSince1970), fixes: 200)
        let log = LogRecorder()
        let snapshot = GPSSnapshot()
        let reader = try GPSReader(spec: try GPSSpec(parsing: "udp://127.0.0.1:\(udpPort)"), snapshot: snapshot,
                                   logger: log.logger(), gpsdSearchDirectories: PrivateGPSD.searchDirectories,
                                   privatePorts: {
                                       // The held port first, free ones after.
                                       handedOut.withLock { n in n += 1; return n == 1 ? taken.port : freeLoopbackPort() }
                                   })
        reader.start()
        defer { reader.stop() }
        let sender = UDPSender(port: udpPort)
        let fixes = try await Self.feed(track, untilFixes: 3, into: snapshot) { _, sentences in
            for line in sentences.split(separator: "\n") { sender.send(String(line) + "\n") }
        }
        let messages = log.transcript
        try #require(fixes.count >= 3, "only \(fixes.count) fixes; reader's log:\n\(messages)")
        for fix in fixes { Self.expectOnTrack(fix, track) }
        #expect(log.count(containing: "another program took 127.0.0.1:\(taken.port)") == 1, "\(messages)")
        #expect(handedOut.withLock { $0 } >= 2)
        #expect(log.count(containing: "exited; restarting") == 0, "a gpsd ringcap stopped itself is not reported as exited: \(messages)")
    }

    /// A serial GPS, emulated by a pseudo-terminal pair from socat: the private gpsd reads one end,
    /// the test writes NMEA into the other.
    @Test func serialPortThroughPseudoTerminal() async throws {
        let dir = try TemporaryDirectory()
        let socat = try TestProcess("socat", ["pty,raw,echo=0,link=\(dir.path)/gps", "pty,raw,echo=0,link=\(dir.path)/feed"])
        defer { socat.stop() }
        #expect(try await waitUntil(timeout: 5) {
            FileManager.default.fileExists(atPath: dir.path + "/gps") && FileManager.default.fileExists(atPath: dir.path + "/feed")
        })
        let device = try #require(realpath(dir.path + "/gps", nil).map { p in defer { free(p) }; return String(cString: p) })
        let feed = open(dir.path + "/feed", O_WRONLY | O_NOCTTY)
        try #require(feed >= 0)
        defer { close(feed) }

        let track = NMEATrack.car(start: Int64(Date().timeIntervalSince1970), fixes: 200)
        let spec = try GPSSpec(parsing: device)
        #expect(spec == .device(path: device))
        let snapshot = GPSSnapshot()
        let log = LogRecorder()
        let reader = try GPSReader(spec: spec, snapshot: snapshot, logger: log.logger())
        reader.start()
        defer { reader.stop() }
        var writeFailures: [String] = []
        let fixes = try await Self.feed(track, untilFixes: 4, into: snapshot) { i, sentences in
            let bytes = Array(sentences.utf8)
            let written = bytes.withUnsafeBytes { write(feed, $0.baseAddress, $0.count) }
            if written != bytes.count, writeFailures.count < 3 {
                writeFailures.append("fix \(i): wrote \(written) of \(bytes.count) bytes (\(String(cString: strerror(errno))))")
            }
        }
        // On failure, say which part stopped: the pty pair (socat), the private gpsd, or the reader.
        try #require(fixes.count >= 4, """
            only \(fixes.count) fixes through the pty; socat running: \(socat.isRunning); \
            private gpsds reading \(device): \(Self.childGPSDs(reading: device)); writes to the feed: \
            \(writeFailures.isEmpty ? "all complete" : writeFailures.joined(separator: "; ")); reader's log:
            \(log.transcript)
            """)
        for fix in fixes { Self.expectOnTrack(fix, track) }
    }

    @Test func fixedPosition() async throws {
        let snapshot = GPSSnapshot()
        let reader = try GPSReader(spec: try GPSSpec(parsing: "fixed:31.5,35.5,-430"), snapshot: snapshot,
                                   logger: LogRecorder().logger())
        reader.start()
        #expect(try await waitUntil(timeout: 2) { snapshot.read() != nil })
        try await Task.sleep(for: .seconds(0.6))
        let fix = try #require(snapshot.read())
        #expect(fix.latitude == 31.5 && fix.longitude == 35.5 && fix.altitudeM == -430 && fix.mode == 3)
        #expect(fix.timeNs == GPSFix.noTime)
        #expect(Clock.monotonicNs() - fix.receivedMonotonicNs < 2_000_000_000, "refreshed every 250 ms, never stale")
        #expect(reader.clockOffsetMs == nil)
        let threadNames = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []).compactMap {
            try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(threadNames.contains("rc-gps"))
        reader.stop()
        #expect(snapshot.read() == nil)

        let flat = GPSSnapshot()
        let reader2 = try GPSReader(spec: .fixed(latitude: -1, longitude: -2, altitudeM: .nan), snapshot: flat,
                                    logger: LogRecorder().logger())
        reader2.start()
        defer { reader2.stop() }
        #expect(try await waitUntil(timeout: 2) { flat.read()?.mode == 2 })
    }

    /// A device or feed needs gpsd; on a machine without it the error says so and names the spec.
    @Test func missingGPSDBinaryIsAClearError() throws {
        for text in ["/dev/ttyUSB0", "udp://0.0.0.0:10110", "tcp://10.0.0.1:2000"] {
            let spec = try GPSSpec(parsing: text)
            #expect(throws: GPSReaderError.gpsdMissing(spec: text)) {
                try GPSReader(spec: spec, snapshot: GPSSnapshot(), logger: LogRecorder().logger(),
                              gpsdSearchDirectories: ["/nonexistent"])
            }
            #expect(GPSReaderError.gpsdMissing(spec: text).description.contains("--gps \(text) needs gpsd"))
            #expect(GPSReaderError.gpsdMissing(spec: text).description.contains("apt-get install gpsd"))
        }
        // Reading a running gpsd or a fixed position needs no gpsd binary.
        _ = try GPSReader(spec: .default, snapshot: GPSSnapshot(), logger: LogRecorder().logger(), gpsdSearchDirectories: [])
        _ = try GPSReader(spec: .fixed(latitude: 1, longitude: 2, altitudeM: .nan), snapshot: GPSSnapshot(),
                          logger: LogRecorder().logger(), gpsdSearchDirectories: [])
    }

    @Test func noneDoesNothing() throws {
        let snapshot = GPSSnapshot()
        let reader = try GPSReader(spec: .none, snapshot: snapshot, logger: LogRecorder().logger())
        reader.start()
        #expect(snapshot.read() == nil)
        reader.stop()
    }

    /// PIDs of gpsd processes that are children of this test process and read `source`.
    /// Hands `track`'s sentences to `send` one fix every 200 ms (fix index, its sentences) and
    /// collects the distinct fixes the snapshot shows, until there are `count` or the track ends.
    static func feed(_ track: NMEATrack, untilFixes count: Int, into snapshot: GPSSnapshot,
                     send: (Int, String) -> Void) async throws -> [GPSFix] {
        var fixes: [GPSFix] = []
        for i in 0..<track.fixes where fixes.count < count {
            send(i, track.sentences(fix: i))
            try await Task.sleep(for: .milliseconds(200))
            if let fix = snapshot.read(), fix.timeNs != fixes.last?.timeNs { fixes.append(fix) }
        }
        return fixes
    }

    static func childGPSDs(reading source: String) -> [Int32] {
        let me = getpid()
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, Int32(fields[1]) == me else { return false }
            let cmdline = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
            let args = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return args.first?.hasSuffix("gpsd") == true && args.contains(source)
        }
    }
}

/// The GPS reader refuses a TCP connection to itself (what a retry against a dead gpsd on a
/// loopback port in the ephemeral range can become on Linux), and accepts a real one.
struct SelfConnectTests {
    @Test func selfConnectedSocketIsDetected() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        try #require(bound)
        // Connecting a socket to its own address: TCP's simultaneous open makes it connect to itself.
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) == 0 }
        }
        try #require(connected, "errno \(errno)")
        #expect(GPSReader.isConnectedToItself(fd))

        // A real connection to a listener is not.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var any = sockaddr_in()
        any.sin_family = sa_family_t(AF_INET)
        any.sin_addr.s_addr = inet_addr("127.0.0.1")
        var anyLength = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &any) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, anyLength) + getsockname(listener, $0, &anyLength) }
        }
        listen(listener, 1)
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(client) }
        let ok = withUnsafePointer(to: &any) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, anyLength) == 0 }
        }
        try #require(ok)
        #expect(!GPSReader.isConnectedToItself(client))
        #expect(!GPSReader.isConnectedToItself(-1))
    }
}
