import Foundation

/// Everything `ringcap record` was asked to do, validated, with the defaults filled in.
/// A plain value: built once on the main thread and handed to the `Recorder`.
public struct RecordConfig: Sendable {
    public var cameras: [CameraSpec]
    public var outDirectory: String
    /// Cap on each camera's capture rate; nil: the source's own rate (files: as fast as the
    /// pipeline takes them).
    public var fpsCap: Double?
    public var size: FrameSize?
    public var quality: Int = 85
    public var writers: Int
    /// Requested ring capacity; nil: about two seconds of frames for all cameras.
    public var ringCapacity: Int?
    /// nil: per camera, drop-oldest for live sources and wait for files.
    public var whenFull: WhenFull?
    public var durationSeconds: Double?
    public var framesPerCamera: Int?
    public var statsJSONPath: String?
    public var fsync = false
    /// Where positions come from (`--gps`); the sidecars' `gps.source` says it.
    public var gps: GPSSpec = .none
    /// A fix older than this (`--gps-max-age`) is still written, marked `"stale": true`.
    public var gpsMaxAgeSeconds: Double = 5
    /// Print one progress line a second (set when stderr is a terminal).
    public var progress = false
    /// Network sources: how long an open and a read may block (`--open-timeout`,
    /// `--read-timeout`) before the camera counts as failed and is reopened.
    public var openTimeoutSeconds: Double = 10
    public var readTimeoutSeconds: Double = 5
    /// `--rtsp-transport`.
    public var rtspTransport: RTSPTransport = .tcp
    /// After capture stops, how long the writers may drain the ring (`--drain-timeout`).
    public var drainTimeoutSeconds: Double = 5
    /// Free space to keep on the output's file system (`--keep-free`); oldest recordings go first.
    public var keepFree: FreeSpaceGoal = .standard
    /// Cap on the bytes of recordings kept under `outDirectory` (`--max-size`); nil: no cap.
    public var maxSizeBytes: UInt64?

    /// The timeouts handed to each capture, in the shim's milliseconds.
    public var captureTimeouts: CaptureTimeouts {
        CaptureTimeouts(openMs: Int32((openTimeoutSeconds * 1000).rounded()),
                        readMs: Int32((readTimeoutSeconds * 1000).rounded()))
    }

    public init(cameras: [CameraSpec], outDirectory: String = "captures",
                writers: Int = ProcessInfo.processInfo.activeProcessorCount) {
        self.cameras = cameras
        self.outDirectory = outDirectory
        self.writers = writers
    }

    /// The rate each camera is expected to deliver, for sizing the ring: the cap, else the
    /// source's announced rate, else 30 frames/s.
    public func expectedFPS(of camera: CameraSpec) -> Double {
        let nominal = camera.source.nominalFPS ?? 30
        if let fpsCap { return min(fpsCap, nominal) }
        return nominal
    }

    /// The ring capacity actually requested of `DropOldestRing` (which may round it up).
    public var effectiveRingCapacity: Int {
        if let ringCapacity { return ringCapacity }
        let twoSeconds = cameras.reduce(0.0) { $0 + 2 * expectedFPS(of: $1) }
        return max(8, Int(twoSeconds.rounded(.up)))
    }

    public func whenFull(for camera: CameraSpec) -> WhenFull {
        whenFull ?? (camera.source.isLive ? .dropOldest : .wait)
    }

    /// Checks what can be checked before starting: values in range, names unique, files present,
    /// and the output folder creatable and writable (it is created here).
    public func validate() throws(ConfigError) {
        guard !cameras.isEmpty else {
            throw .invalidValue(flag: "--camera", value: "", reason: "at least one camera is needed")
        }
        var seen = Set<String>()
        for camera in cameras {
            try CameraSpec.validate(name: camera.name)
            guard seen.insert(camera.name).inserted else { throw .duplicateCamera(camera.name) }
            if case .file(let path) = camera.source {
                var isDir: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else {
                    throw .missingFile(path)
                }
            }
        }
        if let fpsCap, !(fpsCap.isFinite && fpsCap > 0 && fpsCap <= 1000) {
            throw .invalidValue(flag: "--fps", value: Self.format(fpsCap), reason: "must be a number of frames/s in 0<N<=1000")
        }
        guard (1...100).contains(quality) else {
            throw .invalidValue(flag: "--quality", value: "\(quality)", reason: "must be 1...100")
        }
        guard (1...256).contains(writers) else {
            throw .invalidValue(flag: "--writers", value: "\(writers)", reason: "must be 1...256")
        }
        if let ringCapacity, !(2...(1 << 20)).contains(ringCapacity) {
            throw .invalidValue(flag: "--ring", value: "\(ringCapacity)", reason: "must be 2...1048576")
        }
        if let durationSeconds, !(durationSeconds.isFinite && durationSeconds > 0) {
            throw .invalidValue(flag: "--duration", value: Self.format(durationSeconds), reason: "must be a positive number of seconds")
        }
        if let framesPerCamera, framesPerCamera <= 0 {
            throw .invalidValue(flag: "--frames", value: "\(framesPerCamera)", reason: "must be a positive number of frames")
        }
        guard gpsMaxAgeSeconds.isFinite && gpsMaxAgeSeconds > 0 && gpsMaxAgeSeconds <= 86_400 else {
            throw .invalidValue(flag: "--gps-max-age", value: Self.format(gpsMaxAgeSeconds), reason: "must be a number of seconds in 0<N<=86400")
        }
        for (flag, value) in [("--open-timeout", openTimeoutSeconds), ("--read-timeout", readTimeoutSeconds)] {
            guard value.isFinite && value >= 0.1 && value <= 3600 else {
                throw .invalidValue(flag: flag, value: Self.format(value), reason: "must be a number of seconds in 0.1...3600")
            }
        }
        guard drainTimeoutSeconds.isFinite && drainTimeoutSeconds >= 0 && drainTimeoutSeconds <= 3600 else {
            throw .invalidValue(flag: "--drain-timeout", value: Self.format(drainTimeoutSeconds),
                                reason: "must be a number of seconds in 0...3600")
        }
        try keepFree.validate()
        if let maxSizeBytes, maxSizeBytes == 0 {
            throw .invalidValue(flag: "--max-size", value: "0", reason: "must be a positive size such as 500MB")
        }
        guard !outDirectory.isEmpty else {
            throw .outputNotWritable(path: outDirectory, reason: "the path is empty")
        }
        try Self.prepareOutput(outDirectory)
    }

    /// A number as the user would have typed it: `5`, not `5.0`.
    static func format(_ value: Double) -> String {
        value.isFinite && value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }

    static func prepareOutput(_ path: String) throws(ConfigError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw .outputNotWritable(path: path, reason: "cannot be created (\(Self.reason(error)))")
        }
        guard access(path, W_OK | X_OK) == 0 else {
            throw .outputNotWritable(path: path, reason: "is not writable (\(String(cString: strerror(errno))))")
        }
    }

    private static func reason(_ error: Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return ns.localizedDescription
    }
}
