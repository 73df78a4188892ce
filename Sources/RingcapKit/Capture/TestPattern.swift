import COpenCV
import Foundation

/// The built-in test pattern renderer. Owned by one capture thread.
///
/// Its background depends on the frame size only, the same in every frame and for every camera
/// of that size, so a buffer that already holds a pattern frame of this size (whichever camera
/// rendered it) needs only the old box and text erased and the new ones drawn
/// (`rc_pattern_render_over`): a test camera costs next to nothing beside the JPEG encode, as a
/// benchmark's source should. The pool's per-slot `SlotContent` says what a buffer holds.
package final class TestPattern {
    private let handle: OpaquePointer
    let width: Int
    let height: Int

    package init(width: Int, height: Int) throws(CaptureError) {
        guard let handle = rc_pattern_create(Int32(width), Int32(height)) else {
            throw CaptureError(source: "test:\(width)x\(height)", reason: "cannot create the test pattern")
        }
        self.handle = handle
        self.width = width
        self.height = height
    }

    deinit { rc_pattern_destroy(handle) }

    /// What a buffer holding frame `frame` of this pattern holds, for the pool's mark.
    var content: UInt64 { SlotContent.pattern(width: width, height: height) }

    /// Bytes of an I420 buffer of this pattern's size.
    package var i420Bytes: Int { rc_i420_size(Int32(width), Int32(height)) }

    /// Renders frame `frame` from scratch in I420 (`rc_i420_layout` over `dst`).
    @inline(__always)
    package func renderI420(into dst: UnsafeMutableRawPointer, frame: UInt64, wallNs: Int64) {
        var planes = rc_i420_layout(dst.assumingMemoryBound(to: UInt8.self), Int32(width), Int32(height))
        rc_pattern_render_i420(handle, &planes, frame, wallNs)
    }

    /// Renders frame `frame` in I420 over a buffer holding frame `previous` of a pattern of this size.
    @inline(__always)
    func renderI420(into dst: UnsafeMutableRawPointer, frame: UInt64, wallNs: Int64, over previous: UInt64) {
        var planes = rc_i420_layout(dst.assumingMemoryBound(to: UInt8.self), Int32(width), Int32(height))
        rc_pattern_render_i420_over(handle, &planes, frame, wallNs, previous)
    }

    /// Renders frame `frame` from scratch.
    @inline(__always)
    func render(into dst: UnsafeMutableRawPointer, stride: Int, frame: UInt64, wallNs: Int64) {
        rc_pattern_render(handle, dst.assumingMemoryBound(to: UInt8.self), stride, frame, wallNs)
    }

    /// Renders frame `frame` into `dst` (`width` × `height`, this stride), which holds frame
    /// `previous` of a pattern of this size: redraws only what differs.
    @inline(__always)
    func render(into dst: UnsafeMutableRawPointer, stride: Int, frame: UInt64, wallNs: Int64, over previous: UInt64) {
        rc_pattern_render_over(handle, dst.assumingMemoryBound(to: UInt8.self), stride, frame, wallNs, previous)
    }
}
