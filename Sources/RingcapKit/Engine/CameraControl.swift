import Foundation
import Synchronization

/// What one camera's capture thread, the writers, the engine and its `CameraControl` share: the
/// counters, whether its frames are stored, and its taps. Thread-safe (atomics and thread-safe
/// taps); made by the engine at start and kept for the engine's life.
final class CameraChannel: Sendable {
    let index: Int
    let name: String
    let counters = CameraCounters()
    /// Frames are stored (true) or only captured and counted `paused` (false).
    let recording: Atomic<Bool>
    let latest = LatestJPEG()
    let pixels = PixelTap()
    /// The seq the camera's next frame gets: kept by its capture thread, so that a later run of
    /// the same engine goes on from here (paused frames were shown with their seqs).
    let nextSeq = Atomic<UInt64>(0)

    init(index: Int, name: String, recording: Bool) {
        self.index = index
        self.name = name
        self.recording = Atomic(recording)
    }

    /// Whether anything will look at this frame if it is not stored: if not, a paused camera's
    /// frame need not even be retrieved or encoded.
    @inline(__always)
    var watched: Bool { latest.hasClients || pixels.isSubscribed }
}

/// Steers one camera of a running `RecordingEngine` and gives access to its taps. Thread-safe;
/// any number of them may exist for one camera.
public struct CameraControl: Sendable {
    let channel: CameraChannel

    public var name: String { channel.name }

    /// Recording on or off, at once. Off: capture goes on (seq stays continuous, the live view
    /// keeps working) and the writers store nothing for this camera; such frames are counted
    /// `paused`. Frames already in the ring are stored or not as they were when captured.
    public func setRecording(_ on: Bool) { channel.recording.store(on, ordering: .relaxed) }
    public var isRecording: Bool { channel.recording.load(ordering: .relaxed) }

    /// The camera's newest JPEG (live view, snapshots). Add a client to have writers fill it.
    public var latestJPEG: LatestJPEG { channel.latest }
    /// The newest frame's width (0 before the first).
    public var frameWidth: Int { channel.counters.width.load(ordering: .relaxed) }

    /// Stored frames per grab-to-stored latency bucket (`CameraCounters.latencyBucketBoundsUs`,
    /// then one above them) and the sum, µs: for /metrics.
    public func latencyHistogram() -> (counts: [Int], sumUs: Int) { channel.counters.latencyHistogram() }

    /// A shrunk grey copy of its frames (analytics). Subscribe to have writers fill it.
    public var pixelTap: PixelTap { channel.pixels }
}
