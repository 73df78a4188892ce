/// Where positions come from, as given to `--gps`.
///
/// | text | meaning |
/// |---|---|
/// | `none` | no positions; sidecars carry `"gps": null` |
/// | `gpsd` | a running gpsd on `127.0.0.1:2947` (the default) |
/// | `gpsd://HOST:PORT` | a running gpsd elsewhere |
/// | `/dev/ttyUSB0`, `/dev/serial0`, any absolute path | a serial GPS, read by a private gpsd ringcap starts |
/// | `udp://HOST:PORT` | NMEA 0183 datagrams (chartplotters, AIS gateways on 10110), private gpsd |
/// | `tcp://HOST:PORT` | an NMEA stream over TCP, private gpsd |
/// | `fixed:LAT,LON[,ALT]` | a camera that does not move; degrees WGS-84, metres above sea level |
///
/// `description` gives back text that parses to the same value.
///
/// A plain value: thread-safe.
public enum GPSSpec: Equatable, Sendable, CustomStringConvertible {
    case none
    case gpsd(host: String, port: UInt16)
    /// A serial device path such as `/dev/ttyUSB0`.
    case device(path: String)
    case udp(host: String, port: UInt16)
    case tcp(host: String, port: UInt16)
    /// Altitude is NaN when not given. Compared as values, NaN equal to NaN.
    case fixed(latitude: Double, longitude: Double, altitudeM: Double)

    public static let defaultGPSDHost = "127.0.0.1"
    public static let defaultGPSDPort: UInt16 = 2947

    /// The default: a gpsd on this machine.
    public static let `default` = GPSSpec.gpsd(host: defaultGPSDHost, port: defaultGPSDPort)

    /// Parses `--gps`. Throws an error naming the bad value and what was expected.
    public init(parsing text: String) throws(GPSSpecError) {
        let trimmed = text.trimmingWhitespace()
        let lower = trimmed.lowercased()
        if lower == "none" { self = .none; return }
        if lower == "gpsd" { self = .default; return }
        // Any absolute path is a device: besides /dev/ttyUSB0 and /dev/serial0 there are udev's
        // /dev/serial/by-id/… links and links elsewhere (a pty a test made with socat).
        if trimmed.hasPrefix("/") {
            guard trimmed.count > 1, !trimmed.hasSuffix("/") else { throw GPSSpecError(text, "a device path such as /dev/ttyUSB0") }
            self = .device(path: trimmed)
            return
        }
        if lower.hasPrefix("fixed:") {
            self = try Self.parseFixed(text, body: String(trimmed.dropFirst("fixed:".count)))
            return
        }
        guard let schemeEnd = trimmed.range(of: "://") else {
            throw GPSSpecError(text, "none, gpsd, gpsd://HOST:PORT, udp://HOST:PORT, tcp://HOST:PORT, /dev/DEVICE or fixed:LAT,LON[,ALT]")
        }
        let scheme = trimmed[..<schemeEnd.lowerBound].lowercased()
        let rest = String(trimmed[schemeEnd.upperBound...])
        switch scheme {
        case "gpsd":
            let (host, port) = try Self.parseHostPort(text, rest, defaultPort: Self.defaultGPSDPort)
            self = .gpsd(host: host, port: port)
        case "udp":
            let (host, port) = try Self.parseHostPort(text, rest, defaultPort: nil)
            self = .udp(host: host, port: port)
        case "tcp":
            let (host, port) = try Self.parseHostPort(text, rest, defaultPort: nil)
            self = .tcp(host: host, port: port)
        default:
            throw GPSSpecError(text, "a known scheme (gpsd://, udp://, tcp://), not \(scheme)://")
        }
    }

    public var description: String {
        switch self {
        case .none: return "none"
        case let .gpsd(host, port): return "gpsd://\(Self.hostText(host)):\(port)"
        case let .device(path): return path
        case let .udp(host, port): return "udp://\(Self.hostText(host)):\(port)"
        case let .tcp(host, port): return "tcp://\(Self.hostText(host)):\(port)"
        case let .fixed(lat, lon, alt):
            // Swift's shortest round-trip formatting, so the text parses back to the same Doubles.
            return alt.isNaN ? "fixed:\(lat),\(lon)" : "fixed:\(lat),\(lon),\(alt)"
        }
    }

    /// What gpsd itself is given for the private-gpsd specs (device path or gpsd's own URL form),
    /// nil for the others.
    public var gpsdSource: String? {
        switch self {
        case let .device(path): return path
        case let .udp(host, port): return "udp://\(Self.hostText(host)):\(port)"
        case let .tcp(host, port): return "tcp://\(Self.hostText(host)):\(port)"
        case .none, .gpsd, .fixed: return nil
        }
    }

    public static func == (a: GPSSpec, b: GPSSpec) -> Bool {
        switch (a, b) {
        case (.none, .none): return true
        case let (.gpsd(h1, p1), .gpsd(h2, p2)), let (.udp(h1, p1), .udp(h2, p2)), let (.tcp(h1, p1), .tcp(h2, p2)):
            return h1 == h2 && p1 == p2
        case let (.device(p1), .device(p2)): return p1 == p2
        case let (.fixed(a1, o1, h1), .fixed(a2, o2, h2)):
            return a1 == a2 && o1 == o2 && (h1 == h2 || (h1.isNaN && h2.isNaN))
        default: return false
        }
    }

    // MARK: - Parsing pieces

    private static func parseFixed(_ text: String, body: String) throws(GPSSpecError) -> GPSSpec {
        let parts = body.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingWhitespace() }
        guard parts.count == 2 || parts.count == 3 else {
            throw GPSSpecError(text, "fixed:LAT,LON or fixed:LAT,LON,ALT (degrees, degrees, metres)")
        }
        func number(_ s: String, _ what: String) throws(GPSSpecError) -> Double {
            guard let v = DecimalNumber.parse(s) else { throw GPSSpecError(text, "a decimal number for \(what), not \"\(s)\"") }
            return v
        }
        let lat = try number(parts[0], "the latitude")
        let lon = try number(parts[1], "the longitude")
        guard (-90.0...90.0).contains(lat) else { throw GPSSpecError(text, "a latitude within -90...90, not \(parts[0])") }
        guard (-180.0...180.0).contains(lon) else { throw GPSSpecError(text, "a longitude within -180...180, not \(parts[1])") }
        var alt = Double.nan
        if parts.count == 3 {
            alt = try number(parts[2], "the altitude")
            // Below the Dead Sea shore to well above airliners: anything outside is a typo.
            guard (-11_000.0...100_000.0).contains(alt) else {
                throw GPSSpecError(text, "an altitude within -11000...100000 m, not \(parts[2])")
            }
        }
        return .fixed(latitude: lat, longitude: lon, altitudeM: alt)
    }

    /// `HOST:PORT`, `[IPv6]:PORT`, or `HOST` alone when there is a default port.
    private static func parseHostPort(_ text: String, _ rest: String, defaultPort: UInt16?) throws(GPSSpecError) -> (String, UInt16) {
        var host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw GPSSpecError(text, "a closing ] after the IPv6 address") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty {
                throw GPSSpecError(text, "HOST:PORT")
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        } else {
            host = rest[...]
        }
        guard !host.isEmpty, !host.contains("/"), !host.contains(" ") else {
            throw GPSSpecError(text, "a host name or address before the port")
        }
        let port: UInt16
        if let portText {
            guard let p = UInt16(portText), p > 0 else { throw GPSSpecError(text, "a port within 1...65535, not \"\(portText)\"") }
            port = p
        } else if let defaultPort {
            port = defaultPort
        } else {
            throw GPSSpecError(text, "a port: HOST:PORT")
        }
        return (String(host), port)
    }

    private static func hostText(_ host: String) -> String { host.contains(":") ? "[\(host)]" : host }
}

/// A `--gps` value that does not parse. Names the value and what was expected.
public struct GPSSpecError: Error, CustomStringConvertible, Equatable {
    public let value: String
    public let expected: String

    init(_ value: String, _ expected: String) {
        self.value = value
        self.expected = expected
    }

    public var description: String { "invalid --gps value \"\(value)\": expected \(expected)" }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
