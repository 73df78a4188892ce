import Foundation

/// A number of bytes as written on the command line: a bare number (bytes), or a number with
/// `B`, `KB`/`MB`/`GB`/`TB` (powers of 1000) or `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024).
/// Units are case-insensitive; a fraction is allowed before a unit (`1.5GB`) and rounded down
/// to whole bytes. A plain value.
public struct ByteSize: Equatable, Sendable, CustomStringConvertible {
    public var bytes: UInt64

    public init(bytes: UInt64) { self.bytes = bytes }

    private static let units: [(suffix: String, factor: Double)] = [
        ("kib", 1024), ("mib", 1024 * 1024), ("gib", 1024 * 1024 * 1024), ("tib", 1024 * 1024 * 1024 * 1024),
        ("kb", 1e3), ("mb", 1e6), ("gb", 1e9), ("tb", 1e12), ("b", 1),
    ]

    /// Parses `text`; `flag` is named in the error.
    public init(parsing text: String, flag: String) throws(ConfigError) {
        let lower = text.lowercased()
        var number = Substring(lower)
        var factor = 1.0
        // Longest suffixes first ("kib" before "b"), so "1KiB" is not read as "1Ki" bytes.
        for unit in Self.units where lower.hasSuffix(unit.suffix) {
            number = lower.dropLast(unit.suffix.count)
            factor = unit.factor
            break
        }
        // Digits and at most one point only: Double() alone would take "inf", "nan", "1e3", "+5".
        let digitsOnly = !number.isEmpty && number.allSatisfy { $0.isASCII && ($0.isNumber || $0 == ".") }
            && number.filter({ $0 == "." }).count <= 1 && number != "."
        guard digitsOnly, let value = Double(number) else {
            throw ConfigError.invalidValue(flag: flag, value: text,
                                           reason: "expected a size such as 500MB, 2GiB or 1000000 (bytes)")
        }
        let total = (value * factor).rounded(.down)
        guard total < 9.2e18 else {  // stays in Int64 wherever it is compared with file sizes
            throw ConfigError.invalidValue(flag: flag, value: text, reason: "is too large")
        }
        bytes = UInt64(total)
    }

    /// `1.50 GB`-style, in powers of 1000, for logs and the summary.
    public var description: String { Self.format(Int64(bytes)) }

    static func format(_ bytes: Int64) -> String {
        let b = Double(bytes)
        if b >= 1e12 { return String(format: "%.2f TB", b / 1e12) }
        if b >= 1e9 { return String(format: "%.2f GB", b / 1e9) }
        if b >= 1e6 { return String(format: "%.2f MB", b / 1e6) }
        if b >= 1e3 { return String(format: "%.1f KB", b / 1e3) }
        return "\(bytes) B"
    }
}

/// How much of the output's file system to keep free (`--keep-free SIZE|PCT`): a size, a
/// percentage of the file system, or off (`0`). A plain value.
public enum FreeSpaceGoal: Equatable, Sendable, CustomStringConvertible {
    case off
    case bytes(UInt64)
    /// 0 < percent < 100.
    case percent(Double)

    /// The default: keep 5 % of the file system free.
    public static let standard = FreeSpaceGoal.percent(5)

    public init(parsing text: String) throws(ConfigError) {
        if text.hasSuffix("%") {
            let number = text.dropLast()
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
                  let value = Double(number), value > 0, value < 100 else {
                throw ConfigError.invalidValue(flag: "--keep-free", value: text,
                                               reason: "a percentage must be in 0<PCT<100, such as 5%")
            }
            self = .percent(value)
            return
        }
        let size: ByteSize
        do {
            size = try ByteSize(parsing: text, flag: "--keep-free")
        } catch {
            throw ConfigError.invalidValue(flag: "--keep-free", value: text,
                                           reason: "expected a size such as 2GB, a percentage such as 5%, or 0 (off)")
        }
        self = size.bytes == 0 ? .off : .bytes(size.bytes)
    }

    /// Bytes to keep free on a file system of `totalBytes`; 0 when off.
    public func bytesToKeep(ofTotal totalBytes: UInt64) -> UInt64 {
        switch self {
        case .off: return 0
        case .bytes(let n): return n
        case .percent(let p): return UInt64(Double(totalBytes) * p / 100)
        }
    }

    /// Checks a goal built in code rather than parsed.
    func validate() throws(ConfigError) {
        if case .percent(let p) = self, !(p.isFinite && p > 0 && p < 100) {
            throw ConfigError.invalidValue(flag: "--keep-free", value: "\(p)%", reason: "a percentage must be in 0<PCT<100")
        }
    }

    public var description: String {
        switch self {
        case .off: return "0"
        case .bytes(let n): return ByteSize(bytes: n).description
        case .percent(let p): return p == p.rounded() ? "\(Int(p))%" : "\(p)%"
        }
    }
}
