import Foundation

/// Settings of one camera's capture loop, fixed at start.
public struct CaptureSettings: Sendable {
    public var spec: CameraSpec
    public var index: UInt32
    public var size: FrameSize?
    /// Minimum spacing between kept frames; 0: no cap.
    public var minIntervalNs: UInt64
    public var whenFull: WhenFull
    public var frameLimit: Int?
    /// The seq of this run's first frame: one past the highest stored in the camera's folder.
    public var firstSeq: UInt64 = 0
    public var timeouts = CaptureTimeouts()
    public var rtspTransport: RTSPTransport = .tcp
    /// Decoder threads for a stream or file (0: FFmpeg's own count): the camera's share of the
    /// cores, since every camera decodes at once beside the writers.
    public var decoderThreads = 0
    /// An MJPEG source's frames are stored as the camera sent them (`--passthrough auto`, and
    /// nothing needs the pixels: no `--size`, no `--quality` given).
    public var passthrough = false
    /// Backoff after a failure: first delay and cap.
    public var backoffStartNs: UInt64 = 500_000_000
    public var backoffMaxNs: UInt64 = 30_000_000_000
}
