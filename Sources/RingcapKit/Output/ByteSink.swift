import Foundation

/// An append-only byte buffer over memory allocated once, used to format sidecars, paths and
/// log lines on the writer's hot path without allocating.
///
/// Swift's `String` interpolation and `JSONEncoder` allocate on every call; a frame's sidecar is
/// written a few hundred times a second, so it is formatted here instead, byte by byte.
///
/// Not thread-safe: each writer thread owns its own sinks.
public struct ByteSink: ~Copyable {
    /// The bytes written so far start here.
    public let base: UnsafeMutablePointer<UInt8>
    public let capacity: Int
    /// Number of bytes written. Writes past `capacity` are dropped and set `overflowed`.
    public private(set) var count: Int = 0
    /// True once anything did not fit. A sink that overflowed holds a truncated text.
    public private(set) var overflowed = false

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
        base = .allocate(capacity: capacity)
    }

    deinit { base.deallocate() }

    /// Forgets what was written; the memory is kept.
    public mutating func reset() {
        count = 0
        overflowed = false
    }

    /// The bytes written so far. Valid until the next mutation.
    public var bytes: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: count) }

    @inline(__always)
    public mutating func append(byte: UInt8) {
        guard count < capacity else { overflowed = true; return }
        base[count] = byte
        count += 1
    }

    public mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { append(bytes: $0) }
    }

    public mutating func append(bytes: UnsafeBufferPointer<UInt8>) {
        let n = Swift.min(bytes.count, capacity - count)
        if n < bytes.count { overflowed = true }
        guard n > 0, let src = bytes.baseAddress else { return }
        (base + count).update(from: src, count: n)
        count += n
    }

    /// Appends a NUL-terminated C string (not the NUL).
    public mutating func append(cString: UnsafePointer<CChar>) {
        append(bytes: UnsafeBufferPointer(start: UnsafeRawPointer(cString).assumingMemoryBound(to: UInt8.self),
                                          count: strlen(cString)))
    }

    /// Appends a decimal integer, zero-padded to at least `width` digits.
    public mutating func append(int value: Int64, width: Int = 0) {
        if value < 0 { append(byte: UInt8(ascii: "-")) }
        // Work on the magnitude as UInt64 so Int64.min does not trap.
        var magnitude = value.magnitude
        var digits: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)  // 32 bytes of scratch, no heap
        let written = withUnsafeMutableBytes(of: &digits) { raw -> Int in
            var n = 0
            repeat {
                raw[31 - n] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                n += 1
            } while magnitude > 0
            while n < width && n < 32 {
                raw[31 - n] = UInt8(ascii: "0")
                n += 1
            }
            return n
        }
        withUnsafeBytes(of: &digits) { raw in
            append(bytes: UnsafeBufferPointer(start: raw.baseAddress!.assumingMemoryBound(to: UInt8.self) + 32 - written,
                                              count: written))
        }
    }

    public mutating func append(int value: Int, width: Int = 0) { append(int: Int64(value), width: width) }

    /// Appends `value` in fixed-point notation with exactly `decimals` digits after the point
    /// (0...9), rounded half away from zero. Non-finite values are written as JSON `null`.
    public mutating func append(fixed value: Double, decimals: Int) {
        guard value.isFinite else { append("null"); return }
        precondition((0...9).contains(decimals))
        var scale: Double = 1
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (value.magnitude * scale).rounded(.toNearestOrAwayFromZero)
        guard scaled < 9.0e18 else { append("null"); return }
        let units = UInt64(scaled)
        let unitScale = UInt64(scale)
        if value < 0 && units != 0 { append(byte: UInt8(ascii: "-")) }
        append(int: Int64(units / unitScale))
        if decimals > 0 {
            append(byte: UInt8(ascii: "."))
            append(int: Int64(units % unitScale), width: decimals)
        }
    }

    /// Appends `text` as a JSON string literal, quotes included. Used for values fixed at
    /// start-up (camera names, sources), so it may be slow.
    public mutating func append(jsonString text: String) {
        append(byte: UInt8(ascii: "\""))
        for unit in text.utf8 {
            switch unit {
            case UInt8(ascii: "\""): append("\\\"")
            case UInt8(ascii: "\\"): append("\\\\")
            case 0x0A: append("\\n")
            case 0x0D: append("\\r")
            case 0x09: append("\\t")
            case 0..<0x20:
                append("\\u00")
                let hex: StaticString = "0123456789abcdef"
                append(byte: hex.utf8Start[Int(unit >> 4)])
                append(byte: hex.utf8Start[Int(unit & 0xF)])
            default: append(byte: unit)
            }
        }
        append(byte: UInt8(ascii: "\""))
    }

    /// Appends a UTC time as ISO 8601 with microseconds and `Z`: `2026-11-22T04:14:26.123456Z`.
    public mutating func append(isoTimeNs ns: Int64) {
        let fields = UTCFields(unixNs: ns)
        append(int: fields.year, width: 4); append(byte: UInt8(ascii: "-"))
        append(int: fields.month, width: 2); append(byte: UInt8(ascii: "-"))
        append(int: fields.day, width: 2); append(byte: UInt8(ascii: "T"))
        append(int: fields.hour, width: 2); append(byte: UInt8(ascii: ":"))
        append(int: fields.minute, width: 2); append(byte: UInt8(ascii: ":"))
        append(int: fields.second, width: 2); append(byte: UInt8(ascii: "."))
        append(int: fields.microsecond, width: 6); append(byte: UInt8(ascii: "Z"))
    }

    /// Terminates the text with a NUL (not counted), for handing to C calls taking a path.
    /// Returns false when it did not fit.
    public mutating func terminate() -> Bool {
        guard count < capacity else { overflowed = true; return false }
        base[count] = 0
        return true
    }

    /// Truncates to `newCount` bytes (for reusing a common prefix such as a folder path).
    public mutating func truncate(to newCount: Int) {
        precondition(newCount <= count)
        count = newCount
        overflowed = false
    }
}

/// A UTC calendar breakdown of a Unix time in nanoseconds, computed without the C library's
/// time-zone machinery (which takes a lock) and without allocation.
public struct UTCFields: Equatable, Sendable {
    public var year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, microsecond: Int

    public init(unixNs: Int64) {
        // Floor division so times before 1970 still land on the right day.
        let ns = unixNs
        var secs = ns / 1_000_000_000
        var subNs = ns % 1_000_000_000
        if subNs < 0 { subNs += 1_000_000_000; secs -= 1 }
        var days = secs / 86_400
        var rem = secs % 86_400
        if rem < 0 { rem += 86_400; days -= 1 }
        hour = Int(rem / 3600)
        minute = Int(rem % 3600 / 60)
        second = Int(rem % 60)
        microsecond = Int(subNs / 1000)
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        year = Int(yoe + era * 400 + (m <= 2 ? 1 : 0))
        month = Int(m)
        day = Int(d)
    }
}
