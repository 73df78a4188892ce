import COpenCV
import Foundation
import Logging

/// Everything `ringcap record` was asked to do, validated, with the defaults filled in: every
/// default is written here once, the config file (`ConfigFile`, through `Decodable`) and the
/// flags (`set(_:to:)`) only override them. A plain value: built once on the main thread and
/// handed to the `RecordingEngine`.
public struct RecordConfig: Sendable, Equatable {
    public var cameras: [CameraSpec]
    public var outDirectory: String
    /// Cap on each camera's capture rate; nil: the source's own rate (files: as fast as the
    /// pipeline takes them).
    public var fpsCap: Double?
    public var size: FrameSize?
    public var quality: Int = 85
    /// `--quality` was given: the user wants frames at that quality, so none is passed through.
    public var qualityGiven = false
    /// `--passthrough`: store a camera's own JPEGs as they came when nothing needs their pixels.
    public var passthrough: PassthroughMode = .auto

    /// Whether a camera that sends JPEG has its frames stored as they came: `--passthrough auto`,
    /// no size (that needs pixels) and no quality given, for the recording or the camera.
    public func passesJPEGThrough(_ camera: CameraSpec) -> Bool {
        passthrough == .auto && size(for: camera) == nil && !qualityGiven && camera.quality == nil
    }

    /// A camera's own setting, else the recording's.
    public func fps(for camera: CameraSpec) -> Double? { camera.fps ?? fpsCap }
    public func size(for camera: CameraSpec) -> FrameSize? { camera.size ?? size }
    public func quality(for camera: CameraSpec) -> Int { camera.quality ?? quality }
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
    /// `--log-level`.
    public var logLevel: Logger.Level = .info
    /// `--http [ADDR:]PORT`: the live view and control server; nil: none.
    public var http: HTTPListen?
    /// `--http-auth FILE`: an htpasswd file of bcrypt entries; nil: no login.
    public var httpAuthFile: String?
    /// `--http-insecure`: allow a non-loopback address without a login.
    public var httpInsecure = false
    /// `--http-max-clients`: requests served at once; the next gets 503.
    public var httpMaxClients = 64

    /// The timeouts handed to each capture, in the shim's milliseconds.
    public var captureTimeouts: CaptureTimeouts {
        CaptureTimeouts(openMs: Int32((openTimeoutSeconds * 1000).rounded()),
                        readMs: Int32((readTimeoutSeconds * 1000).rounded()))
    }

    /// The default `--out`.
    public static let defaultOut = "captures"

    public init(cameras: [CameraSpec], outDirectory: String = RecordConfig.defaultOut,
                writers: Int = ProcessInfo.processInfo.activeProcessorCount) {
        self.cameras = cameras
        self.outDirectory = outDirectory
        self.writers = writers
    }

    /// The rate each camera is expected to deliver, for sizing the ring: the cap, else the
    /// source's announced rate, else 30 frames/s.
    public func expectedFPS(of camera: CameraSpec) -> Double {
        let nominal = camera.source.nominalFPS ?? 30
        if let cap = fps(for: camera) { return min(cap, nominal) }
        return nominal
    }

    /// The ring capacity actually requested of `DropOldestRing` (which may round it up).
    public var effectiveRingCapacity: Int {
        if let ringCapacity { return ringCapacity }
        let twoSeconds = cameras.reduce(0.0) { $0 + 2 * expectedFPS(of: $1) }
        return max(8, Int(twoSeconds.rounded(.up)))
    }

    /// A camera's frame size when it is known before its first frame: a test pattern's, or
    /// `--size` (every other source is scaled to it; a webcam is asked for it).
    public func knownFrameSize(of camera: CameraSpec) -> FrameSize? {
        if let size = size(for: camera) { return size }
        if case .testPattern(let w, let h, _) = camera.source { return FrameSize(width: w, height: h) }
        return nil
    }

    /// The ring this recording gets on this machine (`RingPlan`); throws when the frame pool
    /// could not fit in memory.
    public func ringPlan(memoryBytes: UInt64 = MachineMemory.limitBytes()) throws(ConfigError) -> RingPlan {
        try RingPlan.plan(self, memoryBytes: memoryBytes)
    }

    public func whenFull(for camera: CameraSpec) -> WhenFull {
        camera.whenFull ?? whenFull ?? (camera.source.isLive ? .dropOldest : .wait)
    }

    /// Checks what can be checked before starting: values in range, names unique, files present,
    /// and the output folder creatable and writable (it is created here).
    public func validate(prepareOutput prepare: Bool = true) throws(ConfigError) {
        guard !cameras.isEmpty else {
            throw .invalidValue(flag: "--camera", value: "", reason: "at least one camera is needed")
        }
        var seen: [String: String] = [:]  // lowercased -> as given
        for camera in cameras {
            try CameraSpec.validate(name: camera.name)
            if let other = seen[camera.name.lowercased()] {
                if other == camera.name { throw .duplicateCamera(camera.name) }
                throw .camerasDifferOnlyInCase(other, camera.name)
            }
            seen[camera.name.lowercased()] = camera.name
            try validateOwnSettings(of: camera)
            if case .file(let path) = camera.source {
                var isDir: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else {
                    throw .missingFile(path)
                }
            }
        }
        if let fpsCap, !(fpsCap.isFinite && SourceSpec.fpsRange.contains(fpsCap)) {
            throw .invalidValue(flag: "--fps", value: Self.format(fpsCap), reason: "must be a number of frames/s from 0.001 to 1000")
        }
        guard (1...100).contains(quality) else {
            throw .invalidValue(flag: "--quality", value: "\(quality)", reason: "must be 1-100")
        }
        guard (1...256).contains(writers) else {
            throw .invalidValue(flag: "--writers", value: "\(writers)", reason: "must be 1-256")
        }
        if let ringCapacity, !(2...(1 << 20)).contains(ringCapacity) {
            throw .invalidValue(flag: "--ring", value: "\(ringCapacity)", reason: "must be 2-1048576")
        }
        if let durationSeconds, !(durationSeconds.isFinite && durationSeconds > 0 && durationSeconds <= Self.maxDurationSeconds) {
            throw .invalidValue(flag: "--duration", value: Self.format(durationSeconds),
                                reason: "must be a number of seconds from more than 0 up to \(Int(Self.maxDurationSeconds)) (10 years)")
        }
        if let framesPerCamera, framesPerCamera <= 0 {
            throw .invalidValue(flag: "--frames", value: "\(framesPerCamera)", reason: "must be a positive number of frames")
        }
        guard gpsMaxAgeSeconds.isFinite && gpsMaxAgeSeconds > 0 && gpsMaxAgeSeconds <= 86_400 else {
            throw .invalidValue(flag: "--gps-max-age", value: Self.format(gpsMaxAgeSeconds), reason: "must be a number of seconds, more than 0 and at most 86400")
        }
        for (flag, value) in [("--open-timeout", openTimeoutSeconds), ("--read-timeout", readTimeoutSeconds)] {
            guard value.isFinite && value >= 0.1 && value <= 3600 else {
                throw .invalidValue(flag: flag, value: Self.format(value), reason: "must be a number of seconds from 0.1 to 3600")
            }
        }
        guard drainTimeoutSeconds.isFinite && drainTimeoutSeconds >= 0 && drainTimeoutSeconds <= 3600 else {
            throw .invalidValue(flag: "--drain-timeout", value: Self.format(drainTimeoutSeconds),
                                reason: "must be a number of seconds from 0 to 3600")
        }
        _ = try ringPlan()
        try keepFree.validate()
        if let maxSizeBytes, maxSizeBytes == 0 {
            throw .invalidValue(flag: "--max-size", value: "0", reason: "must be a positive size such as 500MB")
        }
        try Self.validateGPSDevice(gps)
        try validateHTTP()
        guard !outDirectory.isEmpty else {
            throw .outputNotWritable(path: outDirectory, reason: "the path is empty")
        }
        guard prepare else { return }
        try Self.prepareOutput(outDirectory)
        // After --out exists: the summary may go inside it (the Quick start puts it there).
        if let statsJSONPath { try Self.validateStatsPath(statsJSONPath) }
    }

    /// A camera's own `fps` and `quality` (a config file's), in the ranges of the flags.
    private func validateOwnSettings(of camera: CameraSpec) throws(ConfigError) {
        if let fps = camera.fps, !(fps.isFinite && SourceSpec.fpsRange.contains(fps)) {
            throw .invalidValue(flag: "cameras.\(camera.name).fps", value: Self.format(fps), reason: "must be a number of frames/s from 0.001 to 1000")
        }
        if let quality = camera.quality, !(1...100).contains(quality) {
            throw .invalidValue(flag: "cameras.\(camera.name).quality", value: "\(quality)", reason: "must be 1-100")
        }
    }

    /// `--duration` at most ten years: longer is a typo, and beyond about 584 years the
    /// deadline in nanoseconds would not fit the monotonic clock's 64 bits.
    public static let maxDurationSeconds: Double = 10 * 365.25 * 86_400

    /// A `--gps` device must be something gpsd can read positions from: a terminal device (a
    /// serial port, a USB receiver, a pseudo-terminal). A path that does not exist yet is taken
    /// (a receiver may be plugged in later; the reader waits for it), but a folder, a regular
    /// file or a device such as /dev/null would start a gpsd that never gets a sentence.
    static func validateGPSDevice(_ gps: GPSSpec) throws(ConfigError) {
        guard case .device(let path) = gps else { return }
        var st = stat()
        guard stat(path, &st) == 0 else { return }
        let kind = st.st_mode & S_IFMT
        if kind == S_IFDIR {
            throw .invalidValue(flag: "--gps", value: path, reason: "is a folder, not a serial device such as /dev/ttyUSB0")
        }
        guard kind == S_IFCHR else {
            throw .invalidValue(flag: "--gps", value: path, reason: "is not a device; a serial GPS is a terminal device such as /dev/ttyUSB0 or /dev/ttyACM0")
        }
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        if fd >= 0 {
            defer { close(fd) }
            guard isatty(fd) == 1 else {
                throw .invalidValue(flag: "--gps", value: path, reason: "is not a serial device (not a terminal); a serial GPS is a device such as /dev/ttyUSB0 or /dev/ttyACM0")
            }
        }
    }

    /// `--stats-json` is written at the end: find out now, before anything is recorded, that it
    /// can be (its folder exists and takes files, and it is not a folder itself).
    static func validateStatsPath(_ path: String) throws(ConfigError) {
        guard !path.isEmpty else { throw .invalidValue(flag: "--stats-json", value: path, reason: "the path is empty") }
        var st = stat()
        if stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
            throw .invalidValue(flag: "--stats-json", value: path, reason: "is a folder; give a file name such as stats.json")
        }
        let folder = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let dir = folder.isEmpty ? "/" : folder
        guard stat(dir, &st) == 0 else {
            throw .invalidValue(flag: "--stats-json", value: path, reason: "its folder '\(dir)' cannot be used (\(String(cString: strerror(errno))))")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw .invalidValue(flag: "--stats-json", value: path, reason: "'\(dir)' is not a folder")
        }
        guard access(dir, W_OK | X_OK) == 0 else {
            throw .invalidValue(flag: "--stats-json", value: path, reason: "its folder '\(dir)' is not writable (\(String(cString: strerror(errno))))")
        }
    }

    /// A number as the user would have typed it: `5`, not `5.0`.
    public static func format(_ value: Double) -> String {
        value.isFinite && value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }

    /// Creates the output folder (and its parents) and proves that ringcap can work there: that
    /// its `.ringcap` folder can be made, and a file created, renamed without replacing anything
    /// and removed, as every frame will be. Anything else (a dangling symbolic link, a file in the
    /// way, /proc, a read-only mount) is refused now, naming what is wrong in ringcap's words.
    package static func prepareOutput(_ path: String) throws(ConfigError) {
        var st = stat()
        if lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK && stat(path, &st) != 0 {
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "?"
            throw .outputNotWritable(path: path, reason: "is a symbolic link to '\(target)', which does not exist (\(String(cString: strerror(errno))))")
        }
        // One level at a time, so that the error names the level that failed.
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw .outputNotWritable(path: path, reason: "cannot create '\(prefix)' (\(String(cString: strerror(errno))))")
            }
            guard stat(prefix, &st) == 0 else {
                throw .outputNotWritable(path: path, reason: "cannot use '\(prefix)' (\(String(cString: strerror(errno))))")
            }
            guard (st.st_mode & S_IFMT) == S_IFDIR else {
                throw .outputNotWritable(path: path, reason: "'\(prefix)' is a file, not a folder")
            }
            prefix += "/"
        }
        guard access(path, W_OK | X_OK) == 0 else {
            throw .outputNotWritable(path: path, reason: "is not writable (\(String(cString: strerror(errno))))")
        }
        // A full disk is no reason to refuse: it is a state that passes (retention makes room,
        // frames that do not fit are counted failed). Anything else is.
        func passes(_ err: Int32) -> Bool { err == ENOSPC || err == EDQUOT }
        let own = RecordingLayout.ownFolder(out: path)
        if mkdir(own, 0o755) != 0 && errno != EEXIST {
            if passes(errno) { return }
            throw .outputNotWritable(path: path, reason: "cannot create files there: creating '\(own)' failed (\(String(cString: strerror(errno))))")
        }
        // ringcap often runs as root: its own folder must be a real folder, not a link to
        // somewhere a file of ours would land in (or truncate).
        guard lstat(own, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw .outputNotWritable(path: path, reason: "'\(own)' is not a folder (a symbolic link?); ringcap keeps its lock there")
        }
        let probe = own + "/probe-\(getpid())"
        unlink(probe + RecordingLayout.temporaryEnding)  // a probe of an earlier process of this PID
        let fd = open(probe + RecordingLayout.temporaryEnding, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            if passes(errno) { return }
            throw .outputNotWritable(path: path, reason: "cannot create files there (\(String(cString: strerror(errno))))")
        }
        close(fd)
        let renamed = rc_rename_noreplace(probe + RecordingLayout.temporaryEnding, probe)
        unlink(probe + RecordingLayout.temporaryEnding)
        unlink(probe)
        guard renamed == 0 || passes(renamed) else {
            throw .outputNotWritable(path: path, reason: "cannot rename files there (\(String(cString: strerror(renamed))))")
        }
    }
}
