import COpenCV
import Foundation
import Logging
import Synchronization

/// A network stream or a video file read through libavformat/libavcodec directly (the shim's
/// `rc_av_*`), not through OpenCV's FFmpeg backend, which holds one process-wide lock around every
/// open (a hung camera blocked every other camera's open) and, when a stream changed resolution,
/// kept converting at the first size and returned stale copies of the last good frame.
///
/// Grab reads and decodes one frame and stamps nothing; the frame's size is known right after it
/// (`frameSize`), so the capture loop sizes the pool slot for the frame it holds, then retrieves
/// (converts to packed BGR, scaled to `--size` when one is set). Timeouts go through FFmpeg's
/// interrupt callback on the monotonic clock; `interrupt()` ends a blocking call from another
/// thread.
///
/// Owned by one capture thread; `interrupt` is the only member other threads may call (through
/// `CaptureThread`'s lock, which keeps the handle alive while they do). `deinit` releases it.
package final class AVSource: @unchecked Sendable {
    let handle: OpaquePointer
    private var message = MessageBuffer()

    /// Makes the handle, without any I/O yet: hand it to whoever may need to interrupt the open
    /// (`interrupt`), then `open(url:)`.
    init(live: Bool, size: FrameSize?, timeouts: CaptureTimeouts, rtspTransport: RTSPTransport,
         tag: Int32, decoderThreads: Int = 0, passthrough: Bool = false) throws(AVSourceError) {
        var params = rc_av_params()
        params.is_live = live ? 1 : 0
        params.open_timeout_ms = live ? timeouts.openMs : 0
        params.read_timeout_ms = live ? timeouts.readMs : 0
        params.rtsp_tcp = rtspTransport == .tcp ? 1 : 0
        params.width = Int32(size?.width ?? 0)
        params.height = Int32(size?.height ?? 0)
        params.tag = tag
        params.threads = Int32(decoderThreads)
        params.packets = passthrough ? 1 : 0
        var out: OpaquePointer?
        guard rc_av_create(&params, &out, message.base, message.count) == 0, let out else {
            throw AVSourceError(reason: message.text, tooManyOpenFiles: false)
        }
        handle = out
    }

    /// Opens `url`: blocks up to the open timeout (live sources), or until `interrupt()`. Throws
    /// with FFmpeg's reason; `tooManyOpenFiles` tells EMFILE/ENFILE apart (the process ran out of
    /// descriptors: a condition that passes, unlike a missing file). Once per handle.
    func open(url: String) throws(AVSourceError) {
        var avError: Int32 = 0
        guard rc_av_open_input(handle, url, &avError, message.base, message.count) != 0 else { return }
        let emfile = avError == -EMFILE || avError == -ENFILE
        var reason = message.text
        if emfile {
            var limit = rlimit()
            getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            reason = "too many open files (this process may have \(limit.rlim_cur) open at once: raise it with ulimit -n or LimitNOFILE=); FFmpeg said: \(reason)"
        }
        throw AVSourceError(reason: reason, tooManyOpenFiles: emfile)
    }

    /// A file, opened (for the bench's limit, which interrupts nothing).
    package convenience init(file path: String) throws(AVSourceError) {
        try self.init(live: false, size: nil, timeouts: CaptureTimeouts(), rtspTransport: .tcp, tag: -1)
        try open(url: path)
    }

    deinit { rc_av_destroy(handle) }

    /// Ends the blocking call in progress, and every later one, with a failure.
    func interrupt() { rc_av_interrupt(handle) }

    var sourceFPS: Double { rc_av_source_fps(handle) }
    var announcedFrameCount: Int { Int(rc_av_frame_count(handle)) }
    var undecodablePackets: Int64 { rc_av_undecodable_packets(handle) }

    /// The size `retrieve` writes for the frame just grabbed.
    package var frameSize: (width: Int, height: Int) {
        var w: Int32 = 0, h: Int32 = 0
        rc_av_frame_size(handle, &w, &h)
        return (Int(w), Int(h))
    }

    @inline(__always)
    package func grab() -> OpenCVCapture.GrabResult {
        switch rc_av_grab(handle, message.base, message.count) {
        case 0: return .frame
        case 1: return .end
        case Int32(RC_AV_BAD_FRAME): return .badFrame(message.text)
        default: return .failed(message.text)
        }
    }

    /// The frame just grabbed is the camera's own JPEG, handed over undecoded (`packet`).
    var isPassthrough: Bool { rc_av_is_passthrough(handle) == 1 }

    /// The passthrough frame's bytes, valid until the next grab.
    @inline(__always)
    var packet: UnsafeRawBufferPointer? {
        var data: UnsafePointer<UInt8>?
        var size = 0
        guard rc_av_packet(handle, &data, &size) == 0, let data else { return nil }
        return UnsafeRawBufferPointer(start: data, count: size)
    }

    /// Converts the grabbed frame into the I420 buffer `dst` (`frameSize`). nil or the reason.
    @inline(__always)
    package func retrieveI420(into dst: UnsafeMutableRawPointer) -> String? {
        let (w, h) = frameSize
        var planes = rc_i420_layout(dst.assumingMemoryBound(to: UInt8.self), Int32(w), Int32(h))
        return rc_av_retrieve_i420(handle, &planes, message.base, message.count) == 0 ? nil : message.text
    }

    /// Converts the grabbed frame into `dst` (`frameSize`, rows `stride` apart). nil or the reason.
    @inline(__always)
    func retrieve(into dst: UnsafeMutableRawPointer, stride: Int) -> String? {
        rc_av_retrieve(handle, dst.assumingMemoryBound(to: UInt8.self), stride, message.base, message.count) == 0
            ? nil : message.text
    }
}

/// Why an `AVSource` did not open.
package struct AVSourceError: Error, CustomStringConvertible {
    package var reason: String
    var tooManyOpenFiles: Bool
    package var description: String { reason }
}

/// FFmpeg's own messages (`[h264 @ 0x…] …`, `[tcp @ 0x…] …`) go through ringcap's logger, per
/// camera and rate-limited, instead of raw to stderr: a camera sending broken JPEGs made FFmpeg
/// print 150 lines in 8 s. Each camera may log `burst` messages per `windowNs`; the rest of the
/// window is counted, and the count is logged with the next message after it.
///
/// Thread-safe: FFmpeg calls the sink from any thread (capture threads, decoder workers); the
/// state is behind one mutex, taken only when FFmpeg has something to say.
public enum FFmpegLog {
    static let burst = 5
    static let windowNs: UInt64 = 10_000_000_000

    private struct CameraState {
        var windowStartNs: UInt64 = 0
        var inWindow = 0
        var suppressed = 0
    }

    private struct State: ~Copyable {
        var loggers: [Logger] = []
        var fallback = Logger(label: "ringcap")
        var cameras: [CameraState] = []
        var other = CameraState()
    }

    private static let state = Mutex(State())

    /// Routes FFmpeg's messages to `loggers[tag]` (one per camera, by index) and `fallback`.
    public static func install(cameraLoggers: [Logger], fallback: Logger) {
        state.withLock { s in
            s.loggers = cameraLoggers
            s.fallback = fallback
            s.cameras = Array(repeating: CameraState(), count: cameraLoggers.count)
        }
        rc_av_set_log_sink { tag, level, line in
            FFmpegLog.emit(tag: Int(tag), level: level, text: String(cString: line))
        }
        rc_opencv_set_log_sink { tag, level, line in
            FFmpegLog.emit(tag: Int(tag), level: level, text: String(cString: line), library: "OpenCV")
        }
    }

    static func emit(tag: Int, level: Int32, text: String, library: String = "FFmpeg") {
        state.withLock { s in
            // Read under the lock: another thread may have opened a newer window just before.
            let now = Clock.monotonicNs()
            let known = tag >= 0 && tag < s.cameras.count
            var c = known ? s.cameras[tag] : s.other
            if c.windowStartNs == 0 || now >= c.windowStartNs &+ windowNs {
                c.windowStartNs = now
                c.inWindow = 0
            }
            c.inWindow += 1
            let logger = known ? s.loggers[tag] : s.fallback
            if c.inWindow <= burst {
                var message = "\(library): \(text)"
                if c.suppressed > 0 {
                    message += " (\(c.suppressed) more FFmpeg or OpenCV message(s) not logged)"
                    c.suppressed = 0
                }
                // AV_LOG_ERROR is 16, AV_LOG_WARNING 24; anything more severe is an error.
                logger.log(level: level <= 16 ? .error : level <= 24 ? .warning : .info, "\(message)")
                if c.inWindow == burst {
                    logger.log(level: .warning, "\(library): further messages from this camera are counted, not logged, for \(windowNs / 1_000_000_000) s")
                }
            } else {
                c.suppressed += 1
            }
            if known { s.cameras[tag] = c } else { s.other = c }
        }
    }
}
