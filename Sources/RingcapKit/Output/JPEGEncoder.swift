import COpenCV
import Foundation

/// Encodes frames (packed BGR, or I420 planes) to JPEG with libjpeg-turbo through its libjpeg
/// API (`rc_jpeg_encode`, `rc_jpeg_encode_i420`). Owned by one writer thread.
public final class JPEGEncoder {
    private let handle: OpaquePointer
    private var message = MessageBuffer()

    public init() throws(CaptureError) {
        let message = MessageBuffer()
        guard let handle = rc_jpeg_encoder_create(message.base, message.count) else {
            throw CaptureError(source: "jpeg", reason: message.text)
        }
        self.handle = handle
    }

    deinit { rc_jpeg_encoder_destroy(handle) }

    public static func maxSize(width: Int, height: Int) -> Int { rc_jpeg_max_size(Int32(width), Int32(height)) }

    /// Encodes an I420 frame (`rc_i420_layout` over `planes`) into `dst`: no colour conversion.
    @inline(__always)
    public func encodeI420(_ planes: UnsafeMutableRawPointer, width: Int, height: Int, quality: Int,
                           into dst: UnsafeMutableRawPointer, capacity: Int) -> Result<Int, CaptureError> {
        var frame = rc_i420_layout(planes.assumingMemoryBound(to: UInt8.self), Int32(width), Int32(height))
        var length = 0
        let status = rc_jpeg_encode_i420(handle, &frame, Int32(quality), dst.assumingMemoryBound(to: UInt8.self), capacity,
                                         &length, message.base, message.count)
        guard status == RC_OK else { return .failure(CaptureError(source: "jpeg", reason: message.text)) }
        return .success(length)
    }

    /// Encodes into `dst`; returns the JPEG's length, or the encoder's reason for failing.
    @inline(__always)
    public func encode(_ pixels: UnsafeRawPointer, width: Int, height: Int, stride: Int, quality: Int,
                       into dst: UnsafeMutableRawPointer, capacity: Int) -> Result<Int, CaptureError> {
        var length = 0
        let status = rc_jpeg_encode(handle, pixels.assumingMemoryBound(to: UInt8.self), Int32(width), Int32(height),
                                    stride, Int32(quality), dst.assumingMemoryBound(to: UInt8.self), capacity,
                                    &length, message.base, message.count)
        guard status == RC_OK else { return .failure(CaptureError(source: "jpeg", reason: message.text)) }
        return .success(length)
    }
}
