import Foundation
import Testing
@testable import RingcapKit

struct ByteSinkTests {
    private func text(_ build: (inout ByteSink) -> Void) -> String {
        var sink = ByteSink(capacity: 256)
        build(&sink)
        return String(decoding: sink.bytes, as: UTF8.self)
    }

    @Test func integers() {
        #expect(text { $0.append(int: 0) } == "0")
        #expect(text { $0.append(int: -42) } == "-42")
        #expect(text { $0.append(int: 7, width: 3) } == "007")
        #expect(text { $0.append(int: Int64.min) } == "-9223372036854775808")
        #expect(text { $0.append(int: Int64.max) } == "9223372036854775807")
    }

    @Test func fixedPoint() {
        #expect(text { $0.append(fixed: 59.3293371, decimals: 7) } == "59.3293371")
        #expect(text { $0.append(fixed: -18.0686, decimals: 3) } == "-18.069")
        #expect(text { $0.append(fixed: -0.0004, decimals: 3) } == "0.000")
        #expect(text { $0.append(fixed: 2.5, decimals: 0) } == "3")
        #expect(text { $0.append(fixed: .nan, decimals: 2) } == "null")
        #expect(text { $0.append(fixed: .infinity, decimals: 2) } == "null")
    }

    @Test func jsonStringsAreEscaped() throws {
        let raw = "a\"b\\c\nd\u{1}é"
        let encoded = text { $0.append(jsonString: raw) }
        let decoded = try JSONSerialization.jsonObject(with: Data("[\(encoded)]".utf8)) as? [String]
        #expect(decoded == [raw])
    }

    @Test func overflowIsFlaggedNotWritten() {
        var sink = ByteSink(capacity: 4)
        sink.append("abcdef")
        let overflowed = sink.overflowed, count = sink.count
        #expect(overflowed)
        #expect(count == 4)
        sink.reset()
        let clean = !sink.overflowed && sink.count == 0
        #expect(clean)
    }

    /// UTCFields against the C library's gmtime_r over random times, both sides of 1970.
    @Test func utcFieldsMatchGmtime() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5000 {
            let ns = Int64.random(in: -2_000_000_000_000_000_000...4_000_000_000_000_000_000, using: &generator)
            let fields = UTCFields(unixNs: ns)
            var secs = time_t(ns / 1_000_000_000)
            if ns % 1_000_000_000 < 0 { secs -= 1 }
            var tm = tm()
            gmtime_r(&secs, &tm)
            #expect(fields.year == Int(tm.tm_year) + 1900 && fields.month == Int(tm.tm_mon) + 1 && fields.day == Int(tm.tm_mday))
            #expect(fields.hour == Int(tm.tm_hour) && fields.minute == Int(tm.tm_min) && fields.second == Int(tm.tm_sec))
            #expect(fields.microsecond >= 0 && fields.microsecond < 1_000_000)
        }
    }

    @Test func isoTime() {
        #expect(text { $0.append(isoTimeNs: 1_795_321_466_123_456_789) } == "2026-11-22T04:24:26.123456Z")
        #expect(text { $0.append(isoTimeNs: 0) } == "1970-01-01T00:00:00.000000Z")
    }
}
