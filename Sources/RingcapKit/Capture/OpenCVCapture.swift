import COpenCV
import Foundation

/// One open V4L2 webcam, through OpenCV's `VideoCapture` (streams and files go through
/// `AVSource`). Owned by one capture thread; `deinit` releases it. A capture that failed is
/// dropped and a new one opened.
package final class OpenCVCapture {
    private let handle: OpaquePointer
    private var message = MessageBuffer()

    /// `/dev/video<index>`, asked for `size` and `fps` when given.
    convenience init(device index: Int, size: FrameSize?, fps: Double?) throws(CaptureError) {
        var params = rc_capture_params()
        params.kind = Int32(RC_SOURCE_DEVICE)
        params.device_index = Int32(index)
        params.fps = fps ?? 0
        params.width = Int32(size?.width ?? 0)
        params.height = Int32(size?.height ?? 0)
        try self.init(params: params, path: "", name: SourceSpec.device(index: index).description)
    }

    /// A video file through OpenCV's own FFmpeg backend: the reference the tests compare
    /// ringcap's decoding (`AVSource`) with. Recordings never read files this way.
    package convenience init(referenceFile path: String) throws(CaptureError) {
        var params = rc_capture_params()
        params.kind = Int32(RC_SOURCE_FILE)
        try self.init(params: params, path: path, name: path)
    }

    private init(params: rc_capture_params, path: String, name: String) throws(CaptureError) {
        var params = params
        var out: OpaquePointer?
        let status = rc_capture_open(path, &params, &out, message.base, message.count)
        guard status == RC_OK, let out else {
            throw CaptureError(source: name, reason: message.text)
        }
        handle = out
    }

    deinit { rc_capture_destroy(handle) }

    package var size: (width: Int, height: Int) {
        var w: Int32 = 0, h: Int32 = 0
        rc_capture_size(handle, &w, &h)
        return (Int(w), Int(h))
    }

    var sourceFPS: Double { rc_capture_source_fps(handle) }

    /// Frames a file's container announces; 0 when unknown (streams, devices).
    var announcedFrameCount: Int { Int(rc_capture_frame_count(handle)) }

    /// `badFrame`: a frame came that cannot be stored (a passthrough JPEG that is not whole); the
    /// source goes on.
    package enum GrabResult { case frame, end, failed(String), badFrame(String) }

    @inline(__always)
    package func grab() -> GrabResult {
        switch rc_capture_grab(handle, message.base, message.count) {
        case Int32(RC_OK): return .frame
        case Int32(RC_END): return .end
        default: return .failed(message.text)
        }
    }

    package enum RetrieveResult { case ok, sizeChanged(width: Int, height: Int), failed(String) }

    @inline(__always)
    package func retrieve(into dst: UnsafeMutableRawPointer, stride: Int) -> RetrieveResult {
        let status = rc_capture_retrieve(handle, dst.assumingMemoryBound(to: UInt8.self), stride,
                                         message.base, message.count)
        switch status {
        case Int32(RC_OK): return .ok
        case Int32(RC_SIZE_CHANGED):
            let s = size
            return .sizeChanged(width: s.width, height: s.height)
        default: return .failed(message.text)
        }
    }

    func copyKeptFrame(into dst: UnsafeMutableRawPointer, stride: Int) -> Bool {
        rc_capture_copy_frame(handle, dst.assumingMemoryBound(to: UInt8.self), stride, message.base, message.count) == RC_OK
    }
}
