import CGPS
import Dispatch
import Foundation
import Logging
import Synchronization

/// Reads positions from gpsd on its own thread (`rc-gps`) and publishes the newest fix into a
/// `GPSSnapshot`, which capture threads read right after each grab without ever waiting.
///
/// - `gpsd` / `gpsd://HOST:PORT`: connects to that gpsd through libgps.
/// - a device, `udp://…`, `tcp://…`: starts a private gpsd child on a free loopback port
///   (`gpsd -N -n -S PORT SOURCE`), restarts it if it dies, stops it by PID on `stop()`.
/// - `fixed:`: publishes the constant position (mode 3 with an altitude, else 2), refreshed
///   every 250 ms so its age stays small and it is never stale.
/// - `none`: publishes nothing.
///
/// When gpsd cannot be reached, or the connection ends, the snapshot is cleared (frames carry
/// `"gps": null`), the reader says so once, and reconnects with a backoff that doubles from 0.5 s
/// to 8 s; `stop()` interrupts the backoff at once. When positions come (again) it says so once.
///
/// The clock: Raspberry Pis have no real-time clock, so after a cold boot without network the
/// wall clock can be days off. When fixes carry time, the reader compares each new fix time with
/// `CLOCK_REALTIME` at reception and keeps the median of the last 15 differences as
/// `clockOffsetMs` (GPS − system). That includes the delay from the fix to its reception (the
/// receiver's computation, the serial line, gpsd), and gpsd's NMEA fix times have only
/// whole-second or centisecond resolution, so the figure can be off by up to about a second: good
/// enough to catch a clock that is minutes or days wrong, which is what it is for. It warns once
/// when the offset exceeds 2 s.
///
/// Thread-safety: `start()` and `stop()` are called by the owner (not concurrently with each
/// other); `clockOffsetMs`, `label` and `spec` may be read from any thread. Everything about the
/// libgps connection and the private gpsd is owned by the `rc-gps` thread.
public final class GPSReader: @unchecked Sendable {
    public let spec: GPSSpec
    public let snapshot: GPSSnapshot
    /// What the sidecar's `source` says: the spec as text.
    public let label: String
    private let logger: Logger
    /// The gpsd binary, for specs that need a private gpsd.
    private let gpsdExecutable: String?
    private let privatePorts: @Sendable () -> UInt16?

    /// Guards `stopping` and wakes the backoff sleep. Taken by the owner in `stop()` and by the
    /// GPS thread between reads, never on the capture path.
    private let condition = NSCondition()
    /// Ends the backoff sleep at once when `stop()` is called.
    private let wake = MonotonicSemaphore()
    /// Protected by `condition`.
    private var stopping = false
    /// Protected by `condition`: true from `start()` until the thread is handed its stop.
    private var started = false
    /// Signalled by the GPS thread when it has released everything (closed libgps, stopped gpsd).
    private let finished = MonotonicSemaphore()

    /// Median clock offset in ms as a Double bit pattern; NaN when unknown. Written by the GPS
    /// thread, read by anyone (relaxed: a lone value, nothing else is published with it).
    private let offsetBits = Atomic<UInt64>(Double.nan.bitPattern)

    /// How long to wait for a connection attempt stuck in libgps (a remote host that drops
    /// packets: libgps connects blocking) before `stop()` gives up waiting for the thread.
    /// Set by the owner before `start()`.
    public var stopTimeoutSeconds: Double = 3

    static let initialBackoffS = 0.5
    static let maxBackoffS = 8.0
    static let offsetWarningMs = 2000.0

    /// Throws when the spec needs a private gpsd and no gpsd binary is installed.
    public convenience init(spec: GPSSpec, snapshot: GPSSnapshot, logger: Logger) throws(GPSReaderError) {
        try self.init(spec: spec, snapshot: snapshot, logger: logger, gpsdSearchDirectories: PrivateGPSD.searchDirectories)
    }

    /// `gpsdSearchDirectories`: where to look for gpsd (tests use it to see a machine without).
    /// `privatePorts`: where a private gpsd takes its ports from (tests hand in a taken one).
    init(spec: GPSSpec, snapshot: GPSSnapshot, logger: Logger, gpsdSearchDirectories: [String],
         privatePorts: @escaping @Sendable () -> UInt16? = PrivateGPSD.freeLoopbackPort) throws(GPSReaderError) {
        self.privatePorts = privatePorts
        self.spec = spec
        self.snapshot = snapshot
        self.logger = logger
        self.label = spec.description
        if spec.gpsdSource != nil {
            guard let gpsd = PrivateGPSD.locate(in: gpsdSearchDirectories) else {
                throw GPSReaderError.gpsdMissing(spec: spec.description)
            }
            gpsdExecutable = gpsd
        } else {
            gpsdExecutable = nil
        }
    }

    /// GPS time minus the system's wall clock in ms (median of recent fixes), nil until fixes
    /// with a time arrive. Thread-safe.
    public var clockOffsetMs: Double? {
        let v = Double(bitPattern: offsetBits.load(ordering: .relaxed))
        return v.isNaN ? nil : v
    }

    /// Starts the `rc-gps` thread. Does nothing for `none` or when already started.
    public func start() {
        if case .none = spec { return }
        condition.lock()
        defer { condition.unlock() }
        guard !started else { return }
        started = true
        stopping = false
        if case let .fixed(lat, lon, alt) = spec {
            // Known now: publish it before the first frame can be grabbed, not when the reader's
            // thread first runs (on a loaded machine that came after the first frames, which then
            // had no position).
            snapshot.publish(GPSFix(latitude: lat, longitude: lon, altitudeM: alt, mode: alt.isNaN ? 2 : 3,
                                    receivedMonotonicNs: Clock.monotonicNs()))
        }
        // Nobody joins: stop() waits on `finished` with a timeout instead, so a libgps call
        // stuck on an unresponsive remote host cannot hold up the end of a recording.
        startWorkerThread("rc-gps", done: MonotonicSemaphore()) { [self] in run() }
    }

    /// Stops the thread: closes the connection, stops a private gpsd, clears the snapshot.
    /// Returns when that is done (or after `stopTimeoutSeconds` if libgps is stuck connecting).
    public func stop() {
        condition.lock()
        let wasStarted = started
        started = false
        stopping = true
        condition.broadcast()
        condition.unlock()
        wake.signal()
        guard wasStarted else { return }
        if !finished.wait(timeoutNs: UInt64(stopTimeoutSeconds * 1e9)) {
            logger.warning("the GPS thread did not stop within \(stopTimeoutSeconds) s (libgps still connecting to \(label)); leaving it")
        }
    }

    // MARK: - The rc-gps thread

    /// A TCP socket whose local and peer addresses are the same (a self-connect).
    static func isConnectedToItself(_ fd: Int32) -> Bool {
        guard fd >= 0 else { return false }
        var local = sockaddr_storage(), peer = sockaddr_storage()
        var localLength = socklen_t(MemoryLayout<sockaddr_storage>.size), peerLength = localLength
        let gotLocal = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &localLength) }
        }
        let gotPeer = withUnsafeMutablePointer(to: &peer) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &peerLength) }
        }
        guard gotLocal == 0, gotPeer == 0, localLength == peerLength else { return false }
        return memcmp(&local, &peer, Int(localLength)) == 0
    }

    private var isStopping: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopping
    }

    /// Sleeps up to `seconds`; returns early (true) when `stop()` was called.
    private func sleep(_ seconds: Double) -> Bool {
        // On the monotonic clock: NSCondition.wait(until:) takes a wall-clock date, which a clock
        // step would move.
        let deadline = Clock.monotonicNs() + UInt64(max(0, seconds) * 1e9)
        while !isStopping {
            let now = Clock.monotonicNs()
            if now >= deadline { break }
            wake.wait(timeoutNs: deadline - now)
        }
        return isStopping
    }

    private func run() {
        setCurrentThreadName("rc-gps")
        // Signals are for the main thread (see blockTerminationSignals); the private gpsd gets
        // an empty mask of its own at spawn.
        blockTerminationSignals()
        defer {
            snapshot.publish(nil)
            finished.signal()
        }
        switch spec {
        case .none: return
        case let .fixed(lat, lon, alt): runFixed(lat, lon, alt)
        case let .gpsd(host, port): runGPSD(host: host, port: port, child: nil)
        case .device, .udp, .tcp:
            let child = PrivateGPSD(executable: gpsdExecutable!, source: spec.gpsdSource!, portSource: privatePorts)
            runGPSD(host: "127.0.0.1", port: 0, child: child)
            child.stop()
        }
    }

    private func runFixed(_ lat: Double, _ lon: Double, _ alt: Double) {
        logger.info("GPS: fixed position \(lat), \(lon)\(alt.isNaN ? "" : ", \(alt) m")")
        repeat {
            snapshot.publish(GPSFix(latitude: lat, longitude: lon, altitudeM: alt, mode: alt.isNaN ? 2 : 3,
                                    receivedMonotonicNs: Clock.monotonicNs()))
        } while !sleep(0.25)
    }

    /// The connect / read / reconnect loop. `child` is the private gpsd, if any; `port` is then
    /// taken from it at every (re)start.
    private func runGPSD(host: String, port: UInt16, child: PrivateGPSD?) {
        let data = UnsafeMutablePointer<gps_data_t>.allocate(capacity: 1)
        defer { data.deallocate() }
        var backoff = Self.initialBackoffS
        var saidUnreachable = false  // once per outage
        var saidPositions = false    // once per run of fixes
        var childStartedNs: UInt64 = 0
        var childStarts = 0
        // After the private gpsd's first failure in an outage, its complaints (the same ones at
        // every restart) go to the debug level.
        var childQuiet = false
        var saidNoDevice = false
        var portTaken = false  // the private gpsd was stopped because its port was taken
        var offsets = OffsetWindow()

        while !isStopping {
            var targetPort = port
            if let child {
                child.drainErrors { childQuiet ? logger.debug("GPS: \($0)") : logger.warning("GPS: \($0)") }
                // A USB receiver may be plugged in later: wait for its device rather than start
                // a gpsd that can only fail.
                if case let .device(path) = spec, access(path, F_OK) != 0 {
                    if !saidNoDevice {
                        saidNoDevice = true
                        logger.warning("GPS: \(path) does not exist; recording goes on without positions and waits for it")
                    }
                    child.stop()
                    if sleep(backoff) { break }
                    backoff = min(backoff * 2, Self.maxBackoffS)
                    continue
                }
                saidNoDevice = false
                if !child.isRunning() {
                    if childStarts > 0 && !portTaken {
                        if childQuiet {
                            logger.debug("GPS: the private gpsd for \(child.source) exited; restarting it")
                        } else {
                            logger.warning("GPS: the private gpsd for \(child.source) exited; restarting it (further restarts are logged at debug level until positions come)")
                        }
                        childQuiet = true
                    }
                    if let error = child.start() {
                        logger.error("GPS: \(error); recording goes on without positions")
                        if sleep(backoff) { break }
                        backoff = min(backoff * 2, Self.maxBackoffS)
                        continue
                    }
                    childStarts += 1
                    childStartedNs = Clock.monotonicNs()
                    logger.debug("GPS: private gpsd (pid \(child.pid)) on 127.0.0.1:\(child.port) reading \(child.source)")
                    // Connect only once the port is known to be this gpsd's (up to 3 s; after
                    // that, or without /proc, the connect below finds out).
                    var listener = PrivateGPSD.Listener.nobody
                    while !isStopping, listener == .nobody, Clock.monotonicNs() &- childStartedNs < 3_000_000_000, child.isRunning() {
                        listener = child.listener()
                        if listener == .nobody, sleep(0.02) { break }
                    }
                    portTaken = listener == .someoneElse
                    if portTaken {
                        logger.info("GPS: another program took 127.0.0.1:\(child.port) before the private gpsd could; starting it on another port")
                        child.stop()
                        continue
                    }
                }
                targetPort = child.port
            }

            memset(data, 0, MemoryLayout<gps_data_t>.size)
            guard gps_open(host, String(targetPort), data) == 0 else {
                // A private gpsd listens about 0.2 s after it starts: retry quietly at first.
                if child != nil, Clock.monotonicNs() &- childStartedNs < 3_000_000_000 {
                    if sleep(0.1) { break }
                    continue
                }
                if !saidUnreachable {
                    saidUnreachable = true
                    let reason = String(cString: gps_errstr(errno))
                    logger.warning("GPS: cannot reach gpsd at \(host):\(targetPort) (\(reason)); recording goes on without positions and retries")
                }
                if sleep(backoff) { break }
                backoff = min(backoff * 2, Self.maxBackoffS)
                continue
            }
            if Self.isConnectedToItself(Int32(data.pointee.gps_fd)) {
                // Linux lets a TCP connect to a free loopback port in the ephemeral range pick
                // that same port as its source and connect to itself: it "succeeds", reads back
                // its own WATCH, and holds the port a restarted gpsd needs. Not a gpsd: retry.
                gps_close(data)
                if sleep(backoff) { break }
                backoff = min(backoff * 2, Self.maxBackoffS)
                continue
            }
            _ = gps_stream(data, WATCH_ENABLE | WATCH_JSON, nil)
            logger.debug("GPS: connected to gpsd at \(host):\(targetPort)")
            let connectedNs = Clock.monotonicNs()
            var saidNoFixYet = false

            while !isStopping {
                // gpsd is there but has no fix (no antenna view indoors, a receiver still
                // starting, a port that is not a GPS): say so once, or the silence is puzzling.
                if !saidPositions, !saidNoFixYet, Clock.monotonicNs() &- connectedNs > 15_000_000_000 {
                    saidNoFixYet = true
                    logger.notice("GPS: connected to gpsd at \(host):\(targetPort) for \(label), but no fix yet; frames carry \"gps\": null until there is one")
                }
                // A quarter second at most, so stop() is noticed promptly.
                guard gps_waiting(data, 250_000) else {
                    if let child {
                        child.drainErrors { childQuiet ? logger.debug("GPS: \($0)") : logger.warning("GPS: \($0)") }
                        if !child.isRunning() { break }
                    }
                    continue
                }
                data.pointee.set = 0
                if gps_read(data, nil, 0) < 0 { break }
                backoff = Self.initialBackoffS  // the connection works
                saidUnreachable = false
                handle(data.pointee, offsets: &offsets, saidPositions: &saidPositions)
                if saidPositions { childQuiet = false }
            }
            gps_close(data)
            snapshot.publish(nil)
            saidPositions = false
            if isStopping { break }
            if !saidUnreachable {
                saidUnreachable = true
                logger.warning("GPS: lost gpsd at \(host):\(targetPort); recording goes on without positions and reconnects")
            }
            if sleep(backoff) { break }
            backoff = min(backoff * 2, Self.maxBackoffS)
        }
        child?.stop()
    }

    /// Turns one report into a published fix (TPV with mode ≥ 2), a withdrawn fix (TPV without
    /// a fix), or nothing (other reports: SKY, DEVICES, VERSION…, which never set MODE_SET).
    private func handle(_ data: gps_data_t, offsets: inout OffsetWindow, saidPositions: inout Bool) {
        guard data.set & MODE_SET != 0 else { return }
        let f = data.fix
        guard f.mode >= 2, f.latitude.isFinite, f.longitude.isFinite else {
            snapshot.publish(nil)
            return
        }
        let receivedMono = Clock.monotonicNs()
        let receivedReal = Clock.wallNs()
        var timeNs = GPSFix.noTime
        if data.set & TIME_SET != 0, f.time.tv_sec > 0 {
            timeNs = Int64(f.time.tv_sec) * 1_000_000_000 + Int64(f.time.tv_nsec)
        }
        // EXIF and the sidecar want height above mean sea level; altHAE is above the ellipsoid
        // (tens of metres apart), so it is not used in its place.
        let alt = f.mode >= 3 && f.altMSL.isFinite ? f.altMSL : .nan
        let fix = GPSFix(latitude: f.latitude, longitude: f.longitude, altitudeM: alt,
                         speedMps: f.speed.isFinite ? f.speed : .nan,
                         trackDeg: f.track.isFinite ? f.track : .nan,
                         ephM: f.eph.isFinite ? f.eph : .nan,
                         mode: f.mode >= 3 ? 3 : 2, timeNs: timeNs, receivedMonotonicNs: receivedMono)
        snapshot.publish(fix)
        if !saidPositions {
            saidPositions = true
            logger.info("GPS: positions from \(label) (mode \(fix.mode)D)")
        }
        if timeNs != GPSFix.noTime, offsets.add(fixTimeNs: timeNs, offsetMs: Double(timeNs - receivedReal) / 1e6) {
            let median = offsets.median
            offsetBits.store(median.bitPattern, ordering: .relaxed)
            if !offsets.warned, offsets.count >= 3, abs(median) > Self.offsetWarningMs {
                offsets.warned = true
                logger.warning("GPS: the system clock is \(Int(abs(median) / 1000)) s \(median > 0 ? "behind" : "ahead of") GPS time (offset \(Int(median)) ms); frame times come from the system clock")
            }
        }
    }
}

/// Errors creating a `GPSReader`, naming the spec that could not be served.
public enum GPSReaderError: Error, CustomStringConvertible, Equatable {
    /// The spec needs a private gpsd but no gpsd binary is installed.
    case gpsdMissing(spec: String)

    public var description: String {
        switch self {
        case let .gpsdMissing(spec):
            return "--gps \(spec) needs gpsd to read the device or feed, but no gpsd binary was found in PATH, /usr/sbin or /sbin; install it (Debian: apt-get install gpsd) or use --gps none"
        }
    }
}

/// The last 15 clock-offset samples, one per distinct fix time (gpsd repeats a TPV for each
/// sentence of a cycle). Owned by the GPS thread.
struct OffsetWindow {
    private var samples: [Double] = []
    private var next = 0
    private var lastFixTimeNs = Int64.min
    var warned = false
    var count: Int { samples.count }

    /// Adds a sample unless this fix time was seen already. Returns whether it was added.
    mutating func add(fixTimeNs: Int64, offsetMs: Double) -> Bool {
        guard fixTimeNs != lastFixTimeNs else { return false }
        lastFixTimeNs = fixTimeNs
        if samples.count < 15 { samples.append(offsetMs) } else { samples[next] = offsetMs }
        next = (next + 1) % 15
        return true
    }

    var median: Double {
        let sorted = samples.sorted()
        let n = sorted.count
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}
