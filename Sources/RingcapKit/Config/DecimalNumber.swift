/// Numbers as people write them on a command line or in a config file: an optional sign, digits
/// with at most one decimal point, and an optional exponent (`30`, `2.5`, `.5`, `1e3`, `-22.95`).
///
/// Swift's `Double(String)` (and so ArgumentParser's `Double` options) also takes `0x10` (read as
/// 16), `inf`, `nan` and `0x1p4`: a typo or a hexadecimal value would then pass silently as a
/// different number. Everything that reads a number from the user goes through this instead.
/// Stateless.
public enum DecimalNumber {
    /// The value of `text`, or nil when it is not a plain finite decimal number.
    public static func parse<S: StringProtocol>(_ text: S) -> Double? {
        let u = Array(text.utf8)
        var i = 0
        if i < u.count && (u[i] == UInt8(ascii: "+") || u[i] == UInt8(ascii: "-")) { i += 1 }
        var digits = 0
        while i < u.count && isDigit(u[i]) { i += 1; digits += 1 }
        if i < u.count && u[i] == UInt8(ascii: ".") {
            i += 1
            while i < u.count && isDigit(u[i]) { i += 1; digits += 1 }
        }
        guard digits > 0 else { return nil }
        if i < u.count && (u[i] == UInt8(ascii: "e") || u[i] == UInt8(ascii: "E")) {
            i += 1
            if i < u.count && (u[i] == UInt8(ascii: "+") || u[i] == UInt8(ascii: "-")) { i += 1 }
            var exponentDigits = 0
            while i < u.count && isDigit(u[i]) { i += 1; exponentDigits += 1 }
            guard exponentDigits > 0 else { return nil }
        }
        guard i == u.count, let value = Double(String(text)), value.isFinite else { return nil }
        return value
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
}
