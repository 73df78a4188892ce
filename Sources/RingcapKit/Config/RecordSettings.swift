import Foundation
import Logging

/// Reading a setting's text as its flag and its config-file key read it: one table for both, so
/// that `--keep-free 5%` and `keep_free: 5%` cannot mean different things.
extension RecordConfig {
    /// Sets the recording's setting `key` (a config file key: `keep_free`; the flag is
    /// `--keep-free`) from text as a user writes it. Throws naming the flag and the value.
    public mutating func set(_ key: String, to text: String) throws(ConfigError) {
        let flag = "--" + key.replacingOccurrences(of: "_", with: "-")
        func bad(_ reason: String) -> ConfigError { .invalidValue(flag: flag, value: text, reason: reason) }
        do throws(ConfigError) {
            switch key {
            case "out": outDirectory = text
            case "fps": fpsCap = try ConfigValue.number(text)
            case "size": size = try FrameSize(parsing: text)
            case "quality":
                quality = try ConfigValue.integer(text)
                qualityGiven = true
            case "passthrough": passthrough = try ConfigValue.choice(text, PassthroughMode.self)
            case "writers": writers = try ConfigValue.integer(text)
            case "ring": ringCapacity = try ConfigValue.integer(text)
            case "when_full": whenFull = try ConfigValue.choice(text, WhenFull.self)
            case "duration": durationSeconds = try ConfigValue.number(text)
            case "frames": framesPerCamera = try ConfigValue.integer(text)
            case "gps":
                do { gps = try GPSSpec(parsing: text) } catch { throw bad("expected \(error.expected)") }
            case "gps_max_age": gpsMaxAgeSeconds = try ConfigValue.number(text)
            case "stats_json": statsJSONPath = text
            case "keep_free": keepFree = try FreeSpaceGoal(parsing: text)
            case "max_size":
                let size = try ByteSize(parsing: text, flag: flag)
                guard size.bytes > 0 else { throw bad("must be a positive size such as 500MB") }
                maxSizeBytes = size.bytes
            case "fsync": fsync = try ConfigValue.boolean(text)
            case "open_timeout": openTimeoutSeconds = try ConfigValue.number(text)
            case "read_timeout": readTimeoutSeconds = try ConfigValue.number(text)
            case "rtsp_transport": rtspTransport = try ConfigValue.choice(text, RTSPTransport.self)
            case "drain_timeout": drainTimeoutSeconds = try ConfigValue.number(text)
            case "http": http = text.isEmpty ? nil : try HTTPListen(parsing: text)
            case "http_auth": httpAuthFile = text.isEmpty ? nil : text
            case "http_insecure": httpInsecure = try ConfigValue.boolean(text)
            case "http_max_clients": httpMaxClients = try ConfigValue.integer(text)
            case "log_level":
                guard let level = Logger.Level(rawValue: text) else {
                    throw bad("expected trace, debug, info, notice, warning, error or critical")
                }
                logLevel = level
            default: throw bad("no such setting")
            }
        } catch {
            switch error {
            case .invalidValue(_, _, let reason), .invalidSource(_, let reason): throw bad(reason)
            default: throw error
            }
        }
    }

    /// The effective configuration as a config file (every key, defaults included), which
    /// `ConfigFile` reads back to the same `RecordConfig`.
    public var yaml: String {
        func q(_ s: String) -> String {
            // Plain when YAML reads it back as this very string, quoted otherwise.
            // A first character that is a letter, digit or '/', and nothing YAML reads as a
            // mapping, a comment, a boolean or null.
            let plain = !s.isEmpty && s.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "-_./@:%".unicodeScalars.contains($0) }
                && (s.unicodeScalars.first.map { CharacterSet.alphanumerics.contains($0) || $0 == "/" } ?? false)
                && !["true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"].contains(s.lowercased())
                && !s.hasSuffix(":") && !s.contains(": ")
            if plain { return s }
            return "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        func n(_ v: Double) -> String { Self.format(v) }
        var lines: [String] = []
        lines.append("cameras:")
        if cameras.isEmpty { lines[0] = "cameras: []" }
        for camera in cameras {
            lines.append("  - name: \(q(camera.name))")
            lines.append("    source: \(q(camera.source.description))")
            if let fps = camera.fps { lines.append("    fps: \(n(fps))") }
            if let size = camera.size { lines.append("    size: \(size)") }
            if let quality = camera.quality { lines.append("    quality: \(quality)") }
            if let whenFull = camera.whenFull { lines.append("    when_full: \(whenFull.rawValue)") }
            if !camera.recording { lines.append("    recording: false") }
        }
        func opt<T>(_ key: String, _ value: T?, _ text: (T) -> String) {
            lines.append(value.map { "\(key): \(text($0))" } ?? "\(key):")
        }
        lines.append("out: \(q(outDirectory))")
        opt("fps", fpsCap, n)
        opt("size", size) { "\($0)" }
        if qualityGiven { lines.append("quality: \(quality)") } else { lines.append("quality:  # \(quality), and cameras that send JPEG keep theirs") }
        lines.append("passthrough: \(passthrough.rawValue)")
        lines.append("writers: \(writers)")
        opt("ring", ringCapacity) { "\($0)" }
        opt("when_full", whenFull) { $0.rawValue }
        opt("duration", durationSeconds, n)
        opt("frames", framesPerCamera) { "\($0)" }
        lines.append("gps: \(q(gps.description))")
        lines.append("gps_max_age: \(n(gpsMaxAgeSeconds))")
        opt("stats_json", statsJSONPath, q)
        switch keepFree {  // as it reads back: a size in bytes, not rounded for reading; no exponent
        case .bytes(let n): lines.append("keep_free: \(n)")
        case .percent(let p):
            var text = String(format: "%.9f", p)
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
            lines.append("keep_free: \(text)%")
        case .off: lines.append("keep_free: 0")
        }
        opt("max_size", maxSizeBytes) { "\($0)" }
        lines.append("fsync: \(fsync)")
        lines.append("open_timeout: \(n(openTimeoutSeconds))")
        lines.append("read_timeout: \(n(readTimeoutSeconds))")
        lines.append("rtsp_transport: \(rtspTransport.rawValue)")
        lines.append("drain_timeout: \(n(drainTimeoutSeconds))")
        lines.append("log_level: \(logLevel.rawValue)")
        opt("http", http) { q($0.description) }
        opt("http_auth", httpAuthFile, q)
        lines.append("http_insecure: \(httpInsecure)")
        lines.append("http_max_clients: \(httpMaxClients)")
        return lines.joined(separator: "\n") + "\n"
    }

    /// `ringcap config example`: a commented config file that `ConfigFile` reads as it stands.
    public static let exampleYAML = """
        # ringcap record --config ringcap.yaml
        # Every key is optional but cameras; a flag given on the command line overrides the file.
        # Numbers are decimals (30, 2.5); sizes are WxH; byte sizes 500MB, 2GiB.

        cameras:                        # a list, or a map of name: SOURCE / name: {source: ...}
          - name: bow                   # letters, digits, '-' and '_'
            source: rtsp://192.168.1.20:554/stream1
          - name: mast
            source: http://192.168.1.21/mjpeg
            fps: 5                      # this camera's own cap on frames/s
            quality: 90                 # and JPEG quality (it is then re-encoded)
          - name: deck
            source: test:640x480@10     # a built-in test pattern
            recording: false            # captured and counted 'paused', not stored

        out: /var/lib/ringcap           # folder of OUT/<camera>/YYYY/MM/DD/HH/MM/
        # fps: 10                       # cap on every camera's frames/s
        # size: 1280x720                # scale every camera to this size
        # quality: 85                   # JPEG quality, 1-100 (given: cameras that send JPEG re-encode)
        passthrough: auto               # auto: store cameras' own JPEGs as they came; off
        # writers: 4                    # writer threads (default: one per core)
        # ring: 128                     # frames between capture and writers
        # when_full: drop-oldest        # or wait (the default for files)
        # duration: 3600                # stop after this many seconds
        # frames: 1000                  # stop each camera after this many frames
        gps: gpsd                       # gpsd, gpsd://HOST:PORT, /dev/ttyUSB0, udp://HOST:PORT, tcp://HOST:PORT, fixed:LAT,LON[,ALT], none
        gps_max_age: 5                  # older fixes are written marked stale
        # stats_json: /var/lib/ringcap/stats.json
        keep_free: 5%                   # free space to keep: 5% or 2GB; 0 turns it off
        # max_size: 200GB               # cap on what is kept under out
        fsync: false                    # make each file durable before it is renamed into place
        open_timeout: 10                # seconds a network camera may take to open
        read_timeout: 5                 # seconds it may go without data
        rtsp_transport: tcp             # or udp
        drain_timeout: 5                # seconds the writers may drain the ring at the end
        log_level: info                 # trace, debug, info, notice, warning, error, critical
        # http: 8080                    # live view and control on 127.0.0.1:8080; 0.0.0.0:8080 for the network
        # http_auth: /etc/ringcap/htpasswd  # login (htpasswd -B); needed beyond this machine
        http_insecure: false            # true: allow the network in without a login
        http_max_clients: 64            # requests served at once; the next gets 503

        """
}

/// A setting's value as people write it. Stateless.
/// Each throws `ConfigError.invalidValue` without a flag: the caller names its flag or key.
enum ConfigValue {
    private static func bad(_ text: String, _ reason: String) -> ConfigError { .invalidValue(flag: "", value: text, reason: reason) }

    /// A decimal number (`DecimalNumber`): 30, 2.5, 1e3; not 0x10, inf or nan.
    static func number(_ text: String) throws(ConfigError) -> Double {
        guard let v = DecimalNumber.parse(text) else { throw bad(text, "expected a number such as 30 or 2.5") }
        return v
    }

    static func integer(_ text: String) throws(ConfigError) -> Int {
        guard let v = Int(text.trimmingCharacters(in: .whitespaces)) else { throw bad(text, "expected a whole number") }
        return v
    }

    static func boolean(_ text: String) throws(ConfigError) -> Bool {
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw bad(text, "expected true or false")
        }
    }

    static func choice<T: RawRepresentable & CaseIterable>(_ text: String, _: T.Type) throws(ConfigError) -> T where T.RawValue == String {
        guard let v = T(rawValue: text) else {
            throw bad(text, "expected \(T.allCases.map(\.rawValue).joined(separator: " or "))")
        }
        return v
    }
}
