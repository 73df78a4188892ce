import Synchronization

/// One camera's running totals. Thread-safe: atomics, relaxed (they are counters, read for
/// progress and totals, never used to order other memory).
///
/// Invariant once the pipeline has drained: `captured == written + dropped + failed + paused`.
/// While running, `captured` is counted first, so the right side never exceeds it.
public final class CameraCounters: @unchecked Sendable {
    /// Frames handed to the pipeline (stamped, given a seq).
    public let captured = Atomic<Int>(0)
    /// Frames whose JPEG and sidecar are in place.
    public let written = Atomic<Int>(0)
    /// Frames evicted from a full ring (or refused by it) before a writer got them.
    public let dropped = Atomic<Int>(0)
    /// Frames a writer could not store (encode or file-system error).
    public let failed = Atomic<Int>(0)
    /// Frames not stored because the camera's recording was off (`CameraControl.setRecording`).
    public let paused = Atomic<Int>(0)
    /// Times the camera was opened again after a failure.
    public let reconnects = Atomic<Int>(0)
    /// Nanoseconds spent without a working capture after the first open.
    public let downNs = Atomic<UInt64>(0)
    /// `CameraState` raw value, for the progress line.
    public let state = Atomic<Int>(CameraState.connecting.rawValue)
    /// Frames a file's container announced at open (0: unknown or live).
    public let announcedFrames = Atomic<Int>(0)
    /// Set once the source has ended (files) or the camera reached `--frames`.
    public let finished = Atomic<Bool>(false)

    /// Wall-clock time of the newest captured frame (0: none yet).
    public let lastFrameWallNs = Atomic<Int64>(0)
    /// The size of the newest retrieved frame (0 before the first).
    public let width = Atomic<Int>(0)
    public let height = Atomic<Int>(0)
    /// Grab-to-stored latency of every stored frame, counted per bucket (upper bounds
    /// `latencyBucketBoundsUs`, then one for larger), and their sum: a histogram Prometheus can
    /// read (`/metrics`), kept by the writers with one relaxed add each.
    let latencyBuckets: UnsafeMutablePointer<Atomic<Int>>
    let latencySumUs = Atomic<Int>(0)
    public static let latencyBucketBoundsUs: [Int] = [1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000,
                                                      500_000, 1_000_000, 2_000_000, 5_000_000]
    /// Grab-to-stored latency of the newest frames, µs, in a small window the writers fill round
    /// robin (`recentLatencyNext` counts); read for `RecordingEngine.status()`.
    let recentLatencyUs: UnsafeMutablePointer<Atomic<UInt32>>
    let recentLatencyNext = Atomic<Int>(0)
    static let recentLatencyCount = 256

    public init() {
        recentLatencyUs = .allocate(capacity: Self.recentLatencyCount)
        for i in 0..<Self.recentLatencyCount { (recentLatencyUs + i).initialize(to: Atomic<UInt32>(0)) }
        latencyBuckets = .allocate(capacity: Self.latencyBucketBoundsUs.count + 1)
        for i in 0...Self.latencyBucketBoundsUs.count { (latencyBuckets + i).initialize(to: Atomic<Int>(0)) }
    }

    deinit {
        recentLatencyUs.deinitialize(count: Self.recentLatencyCount)
        recentLatencyUs.deallocate()
        latencyBuckets.deinitialize(count: Self.latencyBucketBoundsUs.count + 1)
        latencyBuckets.deallocate()
    }

    /// Back to zero before a new run (while no pipeline thread runs).
    func reset() {
        captured.store(0, ordering: .relaxed); written.store(0, ordering: .relaxed)
        dropped.store(0, ordering: .relaxed); failed.store(0, ordering: .relaxed)
        paused.store(0, ordering: .relaxed); reconnects.store(0, ordering: .relaxed)
        downNs.store(0, ordering: .relaxed); announcedFrames.store(0, ordering: .relaxed)
        finished.store(false, ordering: .relaxed); lastFrameWallNs.store(0, ordering: .relaxed)
        state.store(CameraState.connecting.rawValue, ordering: .relaxed)
        recentLatencyNext.store(0, ordering: .relaxed)
        width.store(0, ordering: .relaxed); height.store(0, ordering: .relaxed)
        for i in 0...Self.latencyBucketBoundsUs.count { latencyBuckets[i].store(0, ordering: .relaxed) }
        latencySumUs.store(0, ordering: .relaxed)
    }

    /// A writer notes a stored frame's latency. Lock-free, no allocation.
    @inline(__always)
    func noteLatency(us: UInt64) {
        let i = recentLatencyNext.wrappingAdd(1, ordering: .relaxed).oldValue & (Self.recentLatencyCount - 1)
        recentLatencyUs[i].store(UInt32(min(us, UInt64(UInt32.max))), ordering: .relaxed)
        let value = Int(min(us, UInt64(Int.max / 2)))
        var bucket = 0
        while bucket < Self.latencyBucketBoundsUs.count && value > Self.latencyBucketBoundsUs[bucket] { bucket += 1 }
        latencyBuckets[bucket].add(1, ordering: .relaxed)
        latencySumUs.add(value, ordering: .relaxed)
    }

    /// Stored frames per latency bucket (not cumulative; the last is above every bound) and the
    /// sum of their latencies, µs.
    public func latencyHistogram() -> (counts: [Int], sumUs: Int) {
        ((0...Self.latencyBucketBoundsUs.count).map { latencyBuckets[$0].load(ordering: .relaxed) },
         latencySumUs.load(ordering: .relaxed))
    }

    /// The window's latencies, µs (at most `recentLatencyCount`, the newest).
    func recentLatencies() -> [UInt32] {
        let n = min(recentLatencyNext.load(ordering: .relaxed), Self.recentLatencyCount)
        return (0..<n).map { recentLatencyUs[$0].load(ordering: .relaxed) }
    }
}

public enum CameraState: Int, Sendable, CustomStringConvertible {
    case connecting = 0, streaming, backoff, finished, stopped

    public var description: String {
        switch self {
        case .connecting: return "connecting"
        case .streaming: return "streaming"
        case .backoff: return "backoff"
        case .finished: return "finished"
        case .stopped: return "stopped"
        }
    }
}
