import Foundation

/// Why a source could not be opened or read. Carries the source and the library's own words.
public struct CaptureError: Error, CustomStringConvertible {
    public var source: String
    public var reason: String
    public var description: String { "camera source '\(source)': \(reason)" }

    public init(source: String, reason: String) {
        self.source = source
        self.reason = reason
    }
}

/// A reusable buffer for the shim's error messages, so that a failing call does not allocate
/// until someone wants the text.
package struct MessageBuffer: ~Copyable {
    package let base: UnsafeMutablePointer<CChar>
    package let count = 512

    package init() {
        base = .allocate(capacity: count)
        base.initialize(repeating: 0, count: count)
    }

    deinit { base.deallocate() }

    package var text: String { String(cString: base) }
}
