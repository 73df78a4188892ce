import Foundation

/// A snapshot of a `RecordingEngine`, from `status()`. A plain value.
public struct EngineStatus: Codable, Sendable {
    public enum State: String, Codable, Sendable { case idle, running, stopping, stopped }

    public struct Latency: Codable, Sendable, Equatable {
        public var p50: Double, p90: Double, p99: Double
    }

    public struct Camera: Codable, Sendable {
        public var name: String
        /// The source as configured, with any password in a URL replaced by `***`.
        public var source: String
        /// connecting, streaming, backoff, finished or stopped.
        public var state: String
        public var recording: Bool
        public var captured: Int, written: Int, dropped: Int, failed: Int, paused: Int
        /// Times the camera was opened again after a failure, this run.
        public var reconnects: Int
        /// The newest frame's size; 0 before the first.
        public var width: Int, height: Int
        /// Frames captured per second over the last second.
        public var fps: Double
        /// Grab-to-stored latency of the newest stored frames (up to 256), ms; nil before any.
        public var latencyMs: Latency?
        /// Wall-clock time of the newest captured frame; nil before any.
        public var lastFrameWallNs: Int64?

        enum CodingKeys: String, CodingKey {
            case name, source, state, recording, captured, written, dropped, failed, paused, reconnects, fps, width, height
            case latencyMs = "latency_ms"
            case lastFrameWallNs = "last_frame_ns"
        }
    }

    public struct GPS: Codable, Sendable, Equatable {
        /// 0: no fix, 2: 2D, 3: 3D.
        public var mode: Int32
        public var latitude: Double?
        public var longitude: Double?
        /// How long ago the fix was received, s.
        public var ageSeconds: Double?

        enum CodingKeys: String, CodingKey {
            case mode, latitude, longitude
            case ageSeconds = "age_s"
        }
    }

    public var state: State
    /// The current (or last) run's start, wall clock; nil before the first start.
    public var runStartWallNs: Int64?
    public var ringDepth: Int
    public var ringCapacity: Int
    public var cameras: [Camera]
    /// nil when the engine reads no GPS.
    public var gps: GPS?
    /// What retention deleted this run (zeros without retention).
    public var retention: RetentionTotals

    enum CodingKeys: String, CodingKey {
        case state, cameras, gps, retention
        case runStartWallNs = "run_start_ns"
        case ringDepth = "ring_depth"
        case ringCapacity = "ring_capacity"
    }
}

extension RecordingEngine {
    /// Starts, waits for the end, and returns the summary: a whole recording in one call (the
    /// bench). Throws only when nothing could start.
    public func run() throws(CaptureError) -> RecordingSummary {
        try start()
        return waitUntilStopped()!
    }
}
