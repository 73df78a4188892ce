import COpenCV
import Testing

/// The test pattern's incremental rendering (what capture threads use for a slot they rendered
/// before) gives exactly the frame a full rendering gives, whatever frame the buffer held.
struct TestPatternTests {
    @Test(arguments: [(640, 480), (1280, 720), (320, 240), (33, 17)])
    func renderingOverAnEarlierFrameEqualsRenderingFromScratch(width: Int, height: Int) throws {
        let pattern = try #require(rc_pattern_create(Int32(width), Int32(height)))
        defer { rc_pattern_destroy(pattern) }
        let count = width * height * 3
        var over = [UInt8](repeating: 0, count: count)
        var fresh = [UInt8](repeating: 0, count: count)
        let time: Int64 = 1_795_000_000_123_456_789
        // Frame pairs with the box far apart, numbers of different lengths, and the same frame.
        for (previous, next) in [(0, 1), (7, 123), (99, 100), (12_345, 3), (5, 5), (1, 1_000_000_007)] as [(UInt64, UInt64)] {
            rc_pattern_render(pattern, &over, width * 3, previous, time - 33_000_000)
            rc_pattern_render_over(pattern, &over, width * 3, next, time, previous)
            rc_pattern_render(pattern, &fresh, width * 3, next, time)
            #expect(over == fresh, "\(width)x\(height): frame \(next) over frame \(previous) differs from a full render")
        }
    }
}
