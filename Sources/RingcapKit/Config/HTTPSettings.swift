import Foundation

/// Where the HTTP server (`--http [ADDR:]PORT`) listens: parsed from what a user writes, checked
/// before anything starts. A plain value; the server lives in RingcapHTTP.
public struct HTTPListen: Equatable, Sendable, CustomStringConvertible {
    /// A numeric address or a host name; `127.0.0.1` when only a port was given.
    public var host: String
    /// 0: any free port (the log says which).
    public var port: Int

    public init(host: String = "127.0.0.1", port: Int) {
        self.host = host
        self.port = port
    }

    /// `8080`, `0.0.0.0:8080`, `[::]:8080`, `localhost:8080`.
    public init(parsing text: String) throws(ConfigError) {
        func bad(_ reason: String) -> ConfigError { .invalidValue(flag: "--http", value: text, reason: reason) }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        var host = "127.0.0.1"
        var portText = Substring(trimmed)
        if trimmed.hasPrefix("[") {
            guard let close = trimmed.firstIndex(of: "]"), trimmed[trimmed.index(after: close)...].hasPrefix(":") else {
                throw bad("expected [ADDR]:PORT for an IPv6 address, such as [::1]:8080")
            }
            host = String(trimmed[trimmed.index(after: trimmed.startIndex)..<close])
            portText = trimmed[trimmed.index(close, offsetBy: 2)...]
        } else if let colon = trimmed.lastIndex(of: ":") {
            guard trimmed.firstIndex(of: ":") == colon else {
                throw bad("write an IPv6 address in brackets, such as [::1]:8080")
            }
            host = String(trimmed[..<colon])
            portText = trimmed[trimmed.index(after: colon)...]
        }
        guard !host.isEmpty, host.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || ".-:_".unicodeScalars.contains($0) }) else {
            throw bad("expected [ADDR:]PORT, such as 8080 or 0.0.0.0:8080")
        }
        guard let port = Int(portText), (0...65535).contains(port) else {
            throw bad("the port must be a number from 0 to 65535 (0: any free port)")
        }
        self.host = host
        self.port = port
    }

    /// Only this machine can connect: 127.0.0.0/8, ::1, localhost.
    public var isLoopback: Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

extension RecordConfig {
    /// The HTTP settings, checked: a non-loopback address needs `--http-auth` or
    /// `--http-insecure`; the auth file must exist (its entries are read by the server).
    func validateHTTP() throws(ConfigError) {
        guard let http else {
            if let httpAuthFile {
                throw .invalidValue(flag: "--http-auth", value: httpAuthFile, reason: "needs --http [ADDR:]PORT")
            }
            return
        }
        guard (1...10_000).contains(httpMaxClients) else {
            throw .invalidValue(flag: "--http-max-clients", value: "\(httpMaxClients)", reason: "must be 1-10000")
        }
        if let httpAuthFile {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: httpAuthFile, isDirectory: &isDir), !isDir.boolValue else {
                throw .invalidValue(flag: "--http-auth", value: httpAuthFile, reason: "no such file (make one with: htpasswd -B -c FILE USER)")
            }
        } else if !http.isLoopback && !httpInsecure {
            throw .invalidValue(flag: "--http", value: http.description,
                                reason: "listening beyond this machine needs --http-auth FILE (an htpasswd file), or --http-insecure to allow anyone on the network to watch and control the cameras")
        }
    }
}
