import Foundation
import COpenCV
import Testing
@testable import RingcapKit

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

    /// The same in I420, which capture renders (odd sizes too: chroma rounds up).
    @Test(arguments: [(640, 480), (1280, 720), (320, 240), (33, 17), (641, 479)])
    func i420RenderingOverAnEarlierFrameEqualsRenderingFromScratch(width: Int, height: Int) throws {
        let pattern = try TestPattern(width: width, height: height)
        let count = pattern.i420Bytes
        var over = [UInt8](repeating: 0, count: count)
        var fresh = [UInt8](repeating: 0, count: count)
        let time: Int64 = 1_795_000_000_123_456_789
        for (previous, next) in [(0, 1), (7, 123), (99, 100), (12_345, 3), (5, 5), (1, 1_000_000_007)] as [(UInt64, UInt64)] {
            over.withUnsafeMutableBytes { pattern.renderI420(into: $0.baseAddress!, frame: previous, wallNs: time - 33_000_000) }
            over.withUnsafeMutableBytes { pattern.renderI420(into: $0.baseAddress!, frame: next, wallNs: time, over: previous) }
            fresh.withUnsafeMutableBytes { pattern.renderI420(into: $0.baseAddress!, frame: next, wallNs: time) }
            #expect(over == fresh, "\(width)x\(height): I420 frame \(next) over frame \(previous) differs from a full render")
        }
    }

    /// The I420 rendering is the BGR picture in JFIF's YCbCr: decoded back by an independent
    /// decoder (OpenCV), a stored frame's colours match the BGR rendering's.
    @Test func i420PatternHasTheBGRPatternsColours() throws {
        let (width, height) = (320, 240)
        let pattern = try TestPattern(width: width, height: height)
        var i420 = [UInt8](repeating: 0, count: pattern.i420Bytes)
        var bgr = [UInt8](repeating: 0, count: width * height * 3)
        i420.withUnsafeMutableBytes { pattern.renderI420(into: $0.baseAddress!, frame: 3, wallNs: 0) }
        bgr.withUnsafeMutableBytes { pattern.render(into: $0.baseAddress!, stride: width * 3, frame: 3, wallNs: 0) }
        let encoder = try JPEGEncoder()
        let capacity = JPEGEncoder.maxSize(width: width, height: height)
        var jpeg = [UInt8](repeating: 0, count: capacity)
        let length = try i420.withUnsafeMutableBytes { planes in
            try jpeg.withUnsafeMutableBytes { out in
                try encoder.encodeI420(planes.baseAddress!, width: width, height: height, quality: 95, into: out.baseAddress!, capacity: capacity).get()
            }
        }
        let path = try TestEnvironment.scratch("i420").appendingPathComponent("p.jpg").path
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        try Data(jpeg[0..<length]).write(to: URL(fileURLWithPath: path))
        // Mean colour of a few blocks of the background, decoded, against the BGR rendering.
        for (x, y) in [(20, 40), (150, 200), (280, 60), (100, 150)] {
            var w: Int32 = 0, h: Int32 = 0
            var mean = [Double](repeating: 0, count: 3)
            var message = [CChar](repeating: 0, count: 256)
            #expect(rc_image_probe(path, &w, &h, Int32(x), Int32(y), 8, 8, &mean, &message, message.count) == RC_OK)
            var expected = [0.0, 0.0, 0.0]
            for yy in y..<(y + 8) { for xx in x..<(x + 8) { for c in 0..<3 { expected[c] += Double(bgr[(yy * width + xx) * 3 + c]) / 64 } } }
            for c in 0..<3 { #expect(abs(mean[c] - expected[c]) < 6, "(\(x),\(y)) channel \(c): \(mean[c]) against \(expected[c])") }
        }
    }
}

/// The pool is shared by every camera: a slot a test camera rendered into may since have been
/// filled by another camera, of another size or from a decoded source. Rendering into it again
/// must give a full, correct frame; over a pattern frame of the same size it may redraw in part.
struct SharedPoolPatternTests {
    @Test func aSlotFilledByAnotherCameraIsRenderedCorrectly() throws {
        let pool = FramePool(slotCount: 2)
        let a = try TestPattern(width: 64, height: 48)
        let a2 = try TestPattern(width: 64, height: 48)  // another camera of the same size
        let b = try TestPattern(width: 48, height: 32)
        let time: Int64 = 1_795_000_000_000_000_000
        // Capture renders patterns in I420.
        func pixels(_ slot: Int, _ pattern: TestPattern) -> [UInt8] {
            Array(UnsafeRawBufferPointer(start: pool.pixels(UInt32(slot)), count: pattern.i420Bytes))
        }
        func fresh(_ pattern: TestPattern, frame: UInt64) -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: pattern.i420Bytes)
            bytes.withUnsafeMutableBytes { pattern.renderI420(into: $0.baseAddress!, frame: frame, wallNs: time) }
            return bytes
        }
        // a renders frame 1 into slot 0, b (another size) takes the slot over, then a gets it back.
        CaptureThread.render(a, into: pool, slot: 0, frame: 1, wallNs: time)
        #expect(pixels(0, a) == fresh(a, frame: 1))
        CaptureThread.render(b, into: pool, slot: 0, frame: 5, wallNs: time)
        #expect(pixels(0, b) == fresh(b, frame: 5))
        CaptureThread.render(a, into: pool, slot: 0, frame: 9, wallNs: time)
        #expect(pixels(0, a) == fresh(a, frame: 9), "camera a drew over camera b's frame")
        // Another camera of the same size redraws over a's frame in part, and is still right.
        CaptureThread.render(a2, into: pool, slot: 0, frame: 400, wallNs: time)
        #expect(pool.contents[0] == SlotContent(kind: SlotContent.pattern(width: 64, height: 48), frame: 400))
        #expect(pixels(0, a2) == fresh(a2, frame: 400))
        // A decoded frame (marked as such by the capture path) is drawn over in full.
        UnsafeMutableRawBufferPointer(start: pool.pixels(0), count: a.i420Bytes).initializeMemory(as: UInt8.self, repeating: 7)
        pool.contents[0] = SlotContent(kind: SlotContent.decoded, frame: 0)
        CaptureThread.render(a, into: pool, slot: 0, frame: 11, wallNs: time)
        #expect(pixels(0, a) == fresh(a, frame: 11))
        // A buffer that had to grow holds nothing known.
        CaptureThread.render(b, into: pool, slot: 1, frame: 2, wallNs: time)
        CaptureThread.render(a, into: pool, slot: 1, frame: 3, wallNs: time)
        #expect(pixels(1, a) == fresh(a, frame: 3))
    }
}
