import Synchronization

/// One position fix as ringcap records it: where, when (by the fix's own clock), and when it
/// was received (by this machine's monotonic clock, so a frame can say how old its fix was).
///
/// A plain value: copied freely between threads.
public struct GPSFix: Sendable, Equatable, BitwiseCopyable {
    /// Degrees, WGS-84.
    public var latitude: Double
    public var longitude: Double
    /// Metres above mean sea level; NaN when unknown (2D fix).
    public var altitudeM: Double
    /// Metres per second over ground; NaN when unknown.
    public var speedMps: Double
    /// Degrees true; NaN when unknown.
    public var trackDeg: Double
    /// Horizontal error estimate in metres; NaN when unknown.
    public var ephM: Double
    /// 2 (2D) or 3 (3D).
    public var mode: Int32
    /// The fix's own UTC time in ns since the Unix epoch; `GPSFix.noTime` when unknown.
    public var timeNs: Int64
    /// `CLOCK_MONOTONIC` ns at which this machine received the fix.
    public var receivedMonotonicNs: UInt64

    public static let noTime = Int64.min

    public init(latitude: Double, longitude: Double, altitudeM: Double = .nan, speedMps: Double = .nan,
                trackDeg: Double = .nan, ephM: Double = .nan, mode: Int32, timeNs: Int64 = GPSFix.noTime,
                receivedMonotonicNs: UInt64) {
        self.latitude = latitude
        self.longitude = longitude
        self.altitudeM = altitudeM
        self.speedMps = speedMps
        self.trackDeg = trackDeg
        self.ephM = ephM
        self.mode = mode
        self.timeNs = timeNs
        self.receivedMonotonicNs = receivedMonotonicNs
    }

    public static func == (a: GPSFix, b: GPSFix) -> Bool {
        func same(_ x: Double, _ y: Double) -> Bool { x == y || (x.isNaN && y.isNaN) }
        return same(a.latitude, b.latitude) && same(a.longitude, b.longitude) && same(a.altitudeM, b.altitudeM)
            && same(a.speedMps, b.speedMps) && same(a.trackDeg, b.trackDeg) && same(a.ephM, b.ephM)
            && a.mode == b.mode && a.timeNs == b.timeNs && a.receivedMonotonicNs == b.receivedMonotonicNs
    }
}

/// The newest fix, published by one GPS thread and read by any number of capture threads.
///
/// Thread-safe. A sequence lock: the writer makes the sequence odd, stores the fields, makes it
/// even again; a reader retries while the sequence is odd or changed under it. Readers never
/// wait on the writer (they only retry, and the writer publishes about once a second), so a slow
/// or hung gpsd can never hold up a capture thread. Every field is an atomic so the racy read
/// that a sequence lock relies on is well defined (and ThreadSanitizer-clean).
public final class GPSSnapshot: Sendable {
    // Even: stable; odd: a publish is in progress. 0 means nothing was ever published.
    private let sequence = Atomic<UInt64>(0)
    // The fix's fields as bit patterns. Atomic is ~Copyable, so one stored property each.
    private let latitude = Atomic<UInt64>(0), longitude = Atomic<UInt64>(0), altitude = Atomic<UInt64>(0)
    private let speed = Atomic<UInt64>(0), track = Atomic<UInt64>(0), eph = Atomic<UInt64>(0)
    private let mode = Atomic<UInt64>(0), time = Atomic<UInt64>(0), received = Atomic<UInt64>(0)

    public init() {}

    /// Publishes `fix`, or withdraws the fix with `nil` (gpsd lost the fix or went away).
    /// Only one thread may publish (the GPS thread that owns the connection).
    public func publish(_ fix: GPSFix?) {
        // Single writer: the sequence is even here. Making it odd tells readers to retry.
        let start = sequence.load(ordering: .relaxed)
        sequence.store(start &+ 1, ordering: .relaxed)
        // Keeps the field stores below after the odd mark; pairs with the reader's acquiring
        // fence before its second sequence load (Boehm, "Can seqlocks get along with PL?").
        atomicMemoryFence(ordering: .releasing)
        if let fix {
            latitude.store(fix.latitude.bitPattern, ordering: .relaxed)
            longitude.store(fix.longitude.bitPattern, ordering: .relaxed)
            altitude.store(fix.altitudeM.bitPattern, ordering: .relaxed)
            speed.store(fix.speedMps.bitPattern, ordering: .relaxed)
            track.store(fix.trackDeg.bitPattern, ordering: .relaxed)
            eph.store(fix.ephM.bitPattern, ordering: .relaxed)
            mode.store(UInt64(UInt32(bitPattern: fix.mode)), ordering: .relaxed)
            time.store(UInt64(bitPattern: fix.timeNs), ordering: .relaxed)
            received.store(fix.receivedMonotonicNs, ordering: .relaxed)
        } else {
            mode.store(0, ordering: .relaxed)  // mode 0: no fix
        }
        // Even again: pairs with the reader's acquiring first load.
        sequence.store(start &+ 2, ordering: .releasing)
    }

    /// The newest fix, or nil when there is none. Never waits; retries at most a few times
    /// and gives nil if a publish keeps racing it (that cannot happen at GPS rates).
    public func read() -> GPSFix? {
        for _ in 0..<64 {
            let before = sequence.load(ordering: .acquiring)  // pairs with publish's releasing store
            if before == 0 { return nil }
            if before & 1 == 1 { continue }
            let fixMode = Int32(bitPattern: UInt32(truncatingIfNeeded: mode.load(ordering: .relaxed)))
            let fix = GPSFix(
                latitude: Double(bitPattern: latitude.load(ordering: .relaxed)),
                longitude: Double(bitPattern: longitude.load(ordering: .relaxed)),
                altitudeM: Double(bitPattern: altitude.load(ordering: .relaxed)),
                speedMps: Double(bitPattern: speed.load(ordering: .relaxed)),
                trackDeg: Double(bitPattern: track.load(ordering: .relaxed)),
                ephM: Double(bitPattern: eph.load(ordering: .relaxed)),
                mode: fixMode,
                timeNs: Int64(bitPattern: time.load(ordering: .relaxed)),
                receivedMonotonicNs: received.load(ordering: .relaxed))
            // Keeps the field loads above before the second sequence load; pairs with the
            // releasing fence in publish.
            atomicMemoryFence(ordering: .acquiring)
            if sequence.load(ordering: .relaxed) == before {
                return fixMode >= 2 ? fix : nil
            }
        }
        return nil
    }
}
