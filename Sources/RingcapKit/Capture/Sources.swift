import COpenCV
import Foundation

/// Why a source could not be opened or read. Carries the source and OpenCV's own words.
public struct CaptureError: Error, CustomStringConvertible {
    public var source: String
    public var reason: String
    public var description: String { "camera source '\(source)': \(reason)" }
}

/// A reusable buffer for the shim's error messages, so that a failing call does not allocate
/// until someone wants the text.
struct MessageBuffer: ~Copyable {
    let base: UnsafeMutablePointer<CChar>
    let count = 512

    init() {
        base = .allocate(capacity: count)
        base.initialize(repeating: 0, count: count)
    }

    deinit { base.deallocate() }

    var text: String { String(cString: base) }
}

/// How long the shim may block in network opens and reads.
public struct CaptureTimeouts: Sendable, Equatable {
    public var openMs: Int32 = 10_000
    public var readMs: Int32 = 5_000
    public init(openMs: Int32 = 10_000, readMs: Int32 = 5_000) {
        self.openMs = openMs
        self.readMs = readMs
    }
}

/// How RTSP streams are carried (`--rtsp-transport`). TCP by default: interleaved RTP over the
/// RTSP connection crosses NAT and firewalls and loses nothing to a full socket buffer; UDP
/// has less delay on a clean LAN.
public enum RTSPTransport: String, Sendable, CaseIterable {
    case tcp, udp
}

/// OpenCV's FFmpeg backend takes demuxer options only from the environment variable
/// `OPENCV_FFMPEG_CAPTURE_OPTIONS` (`key;value|key;value`), read at every open. Without the
/// variable it asks for `rtsp_flags=prefer_tcp`; once the variable is set, that default is gone
/// and a missing `rtsp_transport` silently means UDP, so ours always names it.
public enum FFmpegCaptureOptions {
    public static let variable = "OPENCV_FFMPEG_CAPTURE_OPTIONS"

    /// The variable's value: `existing` (options the user set) with `rtsp_transport` replaced.
    public static func merged(existing: String?, rtspTransport: RTSPTransport) -> String {
        var entries = (existing ?? "").split(separator: "|").map(String.init).filter {
            !$0.isEmpty && !$0.hasPrefix("rtsp_transport;")
        }
        entries.insert("rtsp_transport;\(rtspTransport.rawValue)", at: 0)
        return entries.joined(separator: "|")
    }

    /// Sets the variable for this process. Call once on the main thread before any capture
    /// opens: `setenv` is not safe while other threads read the environment.
    public static func apply(rtspTransport: RTSPTransport) {
        let existing = getenv(variable).map { String(cString: $0) }
        setenv(variable, merged(existing: existing, rtspTransport: rtspTransport), 1)
    }
}

/// One open OpenCV `VideoCapture`. Owned by one capture thread; `deinit` releases it. A capture
/// that failed is dropped and a new one opened: OpenCV's FFmpeg backend never recovers.
final class OpenCVCapture {
    private let handle: OpaquePointer
    private var message = MessageBuffer()
    let sourceText: String

    init(source: SourceSpec, size: FrameSize?, fps: Double?, timeouts: CaptureTimeouts) throws(CaptureError) {
        var params = rc_capture_params()
        var path = ""
        switch source {
        case .device(let index):
            params.kind = Int32(RC_SOURCE_DEVICE)
            params.device_index = Int32(index)
            params.fps = fps ?? 0
        case .stream(let url):
            params.kind = Int32(RC_SOURCE_STREAM)
            params.open_timeout_ms = timeouts.openMs
            params.read_timeout_ms = timeouts.readMs
            path = url
        case .file(let filePath):
            params.kind = Int32(RC_SOURCE_FILE)
            path = filePath
        case .testPattern:
            preconditionFailure("test patterns are not OpenCV captures")
        }
        params.width = Int32(size?.width ?? 0)
        params.height = Int32(size?.height ?? 0)
        sourceText = source.description
        var out: OpaquePointer?
        let status = rc_capture_open(path, &params, &out, message.base, message.count)
        guard status == RC_OK, let out else {
            throw CaptureError(source: source.description, reason: message.text)
        }
        handle = out
    }

    deinit { rc_capture_destroy(handle) }

    var size: (width: Int, height: Int) {
        var w: Int32 = 0, h: Int32 = 0
        rc_capture_size(handle, &w, &h)
        return (Int(w), Int(h))
    }

    var sourceFPS: Double { rc_capture_source_fps(handle) }

    /// Frames a file's container announces; 0 when unknown (streams, devices).
    var announcedFrameCount: Int { Int(rc_capture_frame_count(handle)) }

    /// `badFrame`: a frame came that cannot be stored (a passthrough JPEG that is not whole); the
    /// source goes on.
    enum GrabResult { case frame, end, failed(String), badFrame(String) }

    @inline(__always)
    func grab() -> GrabResult {
        switch rc_capture_grab(handle, message.base, message.count) {
        case Int32(RC_OK): return .frame
        case Int32(RC_END): return .end
        default: return .failed(message.text)
        }
    }

    enum RetrieveResult { case ok, sizeChanged(width: Int, height: Int), failed(String) }

    @inline(__always)
    func retrieve(into dst: UnsafeMutableRawPointer, stride: Int) -> RetrieveResult {
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

/// The built-in test pattern renderer. Owned by one capture thread.
///
/// Its background depends on the frame size only, the same in every frame and for every camera
/// of that size, so a buffer that already holds a pattern frame of this size (whichever camera
/// rendered it) needs only the old box and text erased and the new ones drawn
/// (`rc_pattern_render_over`): a test camera costs next to nothing beside the JPEG encode, as a
/// benchmark's source should. The pool's per-slot `SlotContent` says what a buffer holds.
final class TestPattern {
    private let handle: OpaquePointer
    let width: Int
    let height: Int

    init(width: Int, height: Int) throws(CaptureError) {
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
    var i420Bytes: Int { rc_i420_size(Int32(width), Int32(height)) }

    /// Renders frame `frame` from scratch in I420 (`rc_i420_layout` over `dst`).
    @inline(__always)
    func renderI420(into dst: UnsafeMutableRawPointer, frame: UInt64, wallNs: Int64) {
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

/// Encodes packed BGR frames to JPEG with TurboJPEG. Owned by one writer thread.
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
