import Synchronization

/// One camera's running totals. Thread-safe: atomics, relaxed (they are counters, read for
/// progress and totals, never used to order other memory).
///
/// Invariant once the pipeline has drained: `captured == written + dropped + failed`. While
/// running, `captured` is counted first, so the right side never exceeds it.
public final class CameraCounters: Sendable {
    /// Frames handed to the pipeline (stamped, given a seq).
    public let captured = Atomic<Int>(0)
    /// Frames whose JPEG and sidecar are in place.
    public let written = Atomic<Int>(0)
    /// Frames evicted from a full ring (or refused by it) before a writer got them.
    public let dropped = Atomic<Int>(0)
    /// Frames a writer could not store (encode or file-system error).
    public let failed = Atomic<Int>(0)
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

    public init() {}

    public var snapshot: (captured: Int, written: Int, dropped: Int, failed: Int) {
        (captured.load(ordering: .relaxed), written.load(ordering: .relaxed),
         dropped.load(ordering: .relaxed), failed.load(ordering: .relaxed))
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
