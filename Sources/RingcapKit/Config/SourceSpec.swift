import Foundation

/// Where a camera's frames come from, as given after `NAME=` in `--camera`.
public enum SourceSpec: Equatable, Sendable, CustomStringConvertible {
    /// A V4L2 webcam: `0`, `/dev/video0`.
    case device(index: Int)
    /// A network stream FFmpeg reads: `rtsp://…`, `http(s)://…` (MJPEG or any other).
    case stream(url: String)
    /// A video file, read frame by frame (nothing live, so nothing should be lost).
    case file(path: String)
    /// The built-in test pattern, live-paced: `test:WxH@FPS`.
    case testPattern(width: Int, height: Int, fps: Double)

    /// V4L2 numbers its devices from 0; the kernel allows at most 1024 minors per driver.
    public static let maxDeviceIndex = 1023
    /// The lowest and highest frame rates anything accepts (`--fps`, `test:WxH@FPS`): one frame in
    /// about 17 minutes to 1000 a second. Below that, the interval between frames stops fitting
    /// the clocks' arithmetic; above it no camera delivers.
    public static let fpsRange: ClosedRange<Double> = 0.001...1000

    static let streamSchemes = ["rtsp", "rtsps", "http", "https", "rtmp", "srt", "udp", "tcp"]

    /// Parses a source. Does not touch the file system; `validate` checks that files exist.
    public init(parsing text: String) throws(ConfigError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw ConfigError.invalidSource(text, "the source is empty") }
        if let index = Int(trimmed) {
            guard index >= 0 && index <= SourceSpec.maxDeviceIndex else {
                throw ConfigError.invalidSource(text, "a device index is 0-\(SourceSpec.maxDeviceIndex)")
            }
            self = .device(index: index)
        } else if trimmed.hasPrefix("/dev/video") {
            guard let index = Int(trimmed.dropFirst("/dev/video".count)), index >= 0, index <= SourceSpec.maxDeviceIndex else {
                throw ConfigError.invalidSource(text, "expected /dev/videoN with N 0-\(SourceSpec.maxDeviceIndex)")
            }
            self = .device(index: index)
        } else if trimmed == "test" || trimmed.hasPrefix("test:") {
            self = try Self.parseTestPattern(trimmed)
        } else if let range = trimmed.range(of: "://") {
            let scheme = trimmed[..<range.lowerBound].lowercased()
            guard Self.streamSchemes.contains(scheme) else {
                throw ConfigError.invalidSource(text, "unknown scheme '\(scheme)' (rtsp, rtsps, http, https, rtmp, srt, udp, tcp)")
            }
            guard trimmed.count > range.upperBound.utf16Offset(in: trimmed) else {
                throw ConfigError.invalidSource(text, "the URL has no host")
            }
            self = .stream(url: trimmed)
        } else {
            self = .file(path: trimmed)
        }
    }

    private static func parseTestPattern(_ text: String) throws(ConfigError) -> SourceSpec {
        // test, test:WxH, test:WxH@FPS
        guard text != "test" else { return .testPattern(width: 640, height: 480, fps: 30) }
        let body = text.dropFirst("test:".count)
        let parts = body.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { throw ConfigError.invalidSource(text, "expected test:WxH@FPS") }
        let size: FrameSize
        do { size = try FrameSize(parsing: String(parts[0])) } catch {
            throw ConfigError.invalidSource(text, "expected test:WxH@FPS with a size such as 1280x720")
        }
        var fps = 30.0
        if parts.count == 2 {
            guard let value = DecimalNumber.parse(parts[1]), Self.fpsRange.contains(value) else {
                throw ConfigError.invalidSource(text, "the rate '\(parts[1])' must be a number of frames/s from 0.001 to 1000")
            }
            fps = value
        }
        return .testPattern(width: size.width, height: size.height, fps: fps)
    }

    /// Read through ringcap's FFmpeg layer (streams and files), with decoder threads of its own.
    public var decodesThroughFFmpeg: Bool {
        switch self {
        case .stream, .file: return true
        case .device, .testPattern: return false
        }
    }

    public var isLive: Bool {
        if case .file = self { return false }
        return true
    }

    /// The rate the source itself announces, when it is known before opening.
    public var nominalFPS: Double? {
        if case .testPattern(_, _, let fps) = self { return fps }
        return nil
    }

    /// `description` with the password of a URL's user info replaced by `***`: for pages, APIs
    /// and logs others may read.
    public var redactedDescription: String {
        guard case .stream(let url) = self, let scheme = url.range(of: "://"),
              let at = url[scheme.upperBound...].firstIndex(of: "@"),
              !url[scheme.upperBound..<at].contains("/") else { return description }
        let userInfo = url[scheme.upperBound..<at]
        guard let colon = userInfo.firstIndex(of: ":") else { return description }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }

    public var description: String {
        switch self {
        case .device(let index): return "/dev/video\(index)"
        case .stream(let url): return url
        case .file(let path): return path
        case .testPattern(let w, let h, let fps):
            let rate = fps == fps.rounded() ? String(Int(fps)) : String(fps)
            return "test:\(w)x\(h)@\(rate)"
        }
    }
}

/// A frame size `WxH`.
public struct FrameSize: Equatable, Sendable, CustomStringConvertible {
    public var width: Int
    public var height: Int

    public static let maxWidth = 7680, maxHeight = 4320

    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }

    public init(parsing text: String) throws(ConfigError) {
        let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false)
        guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]) else {
            throw ConfigError.invalidValue(flag: "--size", value: text, reason: "expected WxH such as 1280x720")
        }
        guard (16...Self.maxWidth).contains(w), (16...Self.maxHeight).contains(h) else {
            throw ConfigError.invalidValue(flag: "--size", value: text,
                                           reason: "width must be 16...\(Self.maxWidth) and height 16...\(Self.maxHeight)")
        }
        width = w
        height = h
    }

    public var description: String { "\(width)x\(height)" }
}

/// One camera: `--camera [NAME=]SOURCE`, or an entry of the config file's `cameras` with
/// settings of its own. A setting left nil takes the recording's (`RecordConfig`).
public struct CameraSpec: Equatable, Sendable {
    public var name: String
    public var source: SourceSpec
    /// Per-camera overrides of `fps`, `size`, `quality` and `when_full` (config file only).
    public var fps: Double?
    public var size: FrameSize?
    public var quality: Int?
    public var whenFull: WhenFull?
    /// Whether its frames are stored from the start (`recording: false`: captured and counted
    /// `paused` until switched on through `CameraControl`).
    public var recording = true

    /// Parses `[NAME=]SOURCE`. Text before the first `=` is a name unless it contains `://`
    /// (then the `=` belongs to a URL's query). Unnamed cameras get `cam<index>`.
    public init(parsing text: String, index: Int) throws(ConfigError) {
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ConfigError.invalidValue(flag: "--camera", value: text, reason: "the camera spec is empty")
        }
        var name = "cam\(index)"
        var sourceText = text
        if let eq = text.firstIndex(of: "="), !text[..<eq].contains("://") {
            name = String(text[..<eq])
            sourceText = String(text[text.index(after: eq)...])
            try Self.validate(name: name)
        }
        self.name = name
        do {
            self.source = try SourceSpec(parsing: sourceText)
        } catch .invalidSource(let value, let reason) where value != text {
            // Name the whole spec the user typed, not just the part after NAME=.
            throw .invalidValue(flag: "--camera", value: text, reason: reason)
        }
    }

    public init(name: String, source: SourceSpec) {
        self.name = name
        self.source = source
    }

    /// Camera names become folder names under `--out`: letters, digits, `-` and `_` only, so a
    /// name can never climb out of the output folder or hide as a dot-file; and never `-` first,
    /// so that `rm *` or `ls *` in the output folder cannot read a camera's folder as an option.
    public static func validate(name: String) throws(ConfigError) {
        let allowed = name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x5F
        }
        guard !name.isEmpty, name.utf8.count <= 64, allowed else {
            throw ConfigError.invalidValue(flag: "--camera", value: name,
                                           reason: "a camera name is 1-64 letters, digits, '-' or '_'")
        }
        guard !name.hasPrefix("-") else {
            throw ConfigError.invalidValue(flag: "--camera", value: name,
                                           reason: "a camera name must not begin with '-' (commands run in the output folder would read its folder as an option)")
        }
    }
}

/// `--passthrough`: what becomes of frames a camera sends as JPEG (MJPEG webcams, IP cameras, files).
public enum PassthroughMode: String, Sendable, CaseIterable {
    /// Stored as they came, with ringcap's EXIF, when nothing needs their pixels.
    case auto
    /// Decoded and encoded again at `--quality`.
    case off
}

/// What the recorder does when a frame arrives and the ring is full.
public enum WhenFull: String, Sendable, CaseIterable {
    /// Evict the oldest frame: the newest always win (the default for live sources).
    case dropOldest = "drop-oldest"
    /// Wait for a writer to make room (the default for files: nothing is live, nothing is lost).
    case wait
}

/// A configuration problem, found before anything starts. Carries the bad value.
public enum ConfigError: Error, Equatable, CustomStringConvertible {
    case invalidValue(flag: String, value: String, reason: String)
    case invalidSource(String, String)
    case duplicateCamera(String)
    case camerasDifferOnlyInCase(String, String)
    /// `OUT/.ringcap/lock` is held by another process (its PID when it could be read).
    case outputLocked(path: String, pid: Int32?)
    case missingFile(String)
    case outputNotWritable(path: String, reason: String)
    /// A bad key or value in a config file (`key` as written there: `fps`, `cameras.bow.fps`).
    /// An empty `value` is not shown (an unknown key, a file that cannot be read).
    case inFile(path: String, line: Int?, key: String, value: String, reason: String)

    public var description: String {
        switch self {
        case .inFile(let path, let line, let key, let value, let reason):
            let place = line.map { "\(path):\($0)" } ?? path
            let what = key.isEmpty ? "" : value.isEmpty ? " \(key):" : " \(key) '\(value)':"
            return "\(place):\(what) \(reason)"
        case .invalidValue(let flag, let value, let reason): return "\(flag) '\(value)': \(reason)"
        case .invalidSource(let value, let reason): return "--camera source '\(value)': \(reason)"
        case .duplicateCamera(let name): return "--camera: the name '\(name)' is used twice"
        case .camerasDifferOnlyInCase(let a, let b):
            return "--camera: the names '\(a)' and '\(b)' differ only in case; on FAT and exFAT (SD cards, USB sticks) they would be one folder"
        case .outputLocked(let path, let pid):
            return "--out '\(path)': another ringcap is recording into it\(pid.map { " (PID \($0))" } ?? ""); two recorders in one folder would delete each other's frames"
        case .missingFile(let path): return "--camera: no such video file '\(path)'"
        case .outputNotWritable(let path, let reason): return "--out '\(path)': \(reason)"
        }
    }

    /// sysexits(3): EX_USAGE for bad flags, EX_CANTCREAT for an output folder that cannot be used,
    /// EX_TEMPFAIL for one another recorder holds (try again once it has stopped).
    public var exitCode: Int32 {
        switch self {
        case .outputNotWritable: return 73
        case .outputLocked: return 75
        default: return 64
        }
    }
}
