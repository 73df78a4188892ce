import COpenCV
import Foundation
import Logging

/// Retrieving a grabbed frame into its pool slot: the part of the capture loop that touches pixels.
/// Runs on the capture thread only, as the rest of `CaptureThread`.
extension CaptureThread {
    /// A size change is logged once, with both sizes.
    func noteSize(width: Int, height: Int) {
        if lastSize.width != 0 && (lastSize.width != width || lastSize.height != height) {
            logger.notice("frame size changed from \(lastSize.width)x\(lastSize.height) to \(width)x\(height)")
        }
        if lastSize.width != width || lastSize.height != height {
            counters.width.store(width, ordering: .relaxed)
            counters.height.store(height, ordering: .relaxed)
        }
        lastSize = (width, height)
    }

    /// Renders test-pattern frame `frame` into `slot` of the shared pool, redrawing only what
    /// changed when the slot's buffer holds an earlier frame of a pattern of the same size (of
    /// any camera), and records what the buffer now holds.
    @inline(__always)
    @discardableResult
    static func render(_ pattern: TestPattern, into pool: FramePool, slot: UInt32, frame: UInt64, wallNs: Int64) -> Bool {
        guard let buffer = pool.buffer(slot, atLeast: pattern.i420Bytes) else { return false }
        let held = pool.contents[Int(slot)]
        if held.kind == pattern.content {
            pattern.renderI420(into: buffer, frame: frame, wallNs: wallNs, over: held.frame)
        } else {
            pattern.renderI420(into: buffer, frame: frame, wallNs: wallNs)
        }
        pool.contents[Int(slot)] = SlotContent(kind: pattern.content, frame: frame)
        return true
    }

    enum FillResult {
        case filled
        /// This frame cannot be stored as itself (no memory for its size, a conversion that
        /// failed): counted as failed, the source goes on.
        case frameFailed(String)
        case sourceFailed(StreamOutcome)
    }

    /// Retrieves or renders the frame into the slot and writes its metadata.
    @inline(__always)
    func fill(slot: UInt32, monotonic: UInt64, wall: Int64, fix: GPSFix?, store: Bool) -> FillResult {
        var width: Int, height: Int
        var jpegBytes = 0
        var isI420 = true
        if let av, av.isPassthrough {
            // The camera's own JPEG, copied into the slot as it came: no decode, no encode.
            (width, height) = av.frameSize
            noteSize(width: width, height: height)
            guard let bytes = av.packet, bytes.count > 0 else { return .frameFailed("no passthrough frame") }
            guard let buffer = pool.buffer(slot, atLeast: bytes.count) else {
                return .frameFailed("no memory for a JPEG of \(bytes.count) bytes")
            }
            buffer.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            pool.contents[Int(slot)] = SlotContent(kind: SlotContent.decoded, frame: 0)
            jpegBytes = bytes.count
        } else if let pattern {
            width = pattern.width
            height = pattern.height
            noteSize(width: width, height: height)
            guard Self.render(pattern, into: pool, slot: slot, frame: seq, wallNs: wall) else {
                return .frameFailed("no memory for a \(width)x\(height) frame")
            }
        } else if let av {
            // The grabbed frame's own size (or --size): the slot is sized for this frame, so a
            // stream that changes resolution gives frames of the new size, never a stale copy.
            (width, height) = av.frameSize
            guard width > 0, height > 0 else { return .sourceFailed(.failed("the source reports no frame size")) }
            noteSize(width: width, height: height)
            guard let buffer = pool.buffer(slot, atLeast: rc_i420_size(Int32(width), Int32(height))) else {
                return .frameFailed("no memory for a \(width)x\(height) frame")
            }
            pool.contents[Int(slot)] = SlotContent(kind: SlotContent.decoded, frame: 0)
            if let reason = av.retrieveI420(into: buffer) { return .frameFailed(reason) }
        } else if let capture {
            isI420 = false  // OpenCV gives packed BGR
            (width, height) = capture.size
            guard width > 0, height > 0 else { return .sourceFailed(.failed("the source reports no frame size")) }
            if lastSize.width == 0 { noteSize(width: width, height: height) }
            guard let buffer = pool.buffer(slot, atLeast: width * height * 3) else {
                return .frameFailed("no memory for a \(width)x\(height) frame")
            }
            pool.contents[Int(slot)] = SlotContent(kind: SlotContent.decoded, frame: 0)
            switch capture.retrieve(into: buffer, stride: width * 3) {
            case .ok:
                break
            case .sizeChanged(let w, let h):
                noteSize(width: w, height: h)
                width = w
                height = h
                guard let bigger = pool.buffer(slot, atLeast: w * h * 3) else {
                    return .frameFailed("no memory for a \(w)x\(h) frame")
                }
                guard capture.copyKeptFrame(into: bigger, stride: w * 3) else {
                    return .frameFailed("could not fetch the resized frame")
                }
            case .failed(let reason):
                return .sourceFailed(.failed(reason))
            }
        } else {
            return .sourceFailed(.failed("no open source"))
        }
        let depth = ring.count
        pool.meta[Int(slot)] = FrameMeta(
            seq: seq, wallNs: wall, monotonicNs: monotonic, width: Int32(width), height: Int32(height),
            stride: Int32(width * 3), ringDepth: Int32(depth),
            droppedSoFar: Int64(counters.dropped.load(ordering: .relaxed)), jpegBytes: Int32(jpegBytes), isI420: isI420,
            store: store, hasFix: fix != nil, fix: fix ?? GPSFix(latitude: 0, longitude: 0, mode: 0, receivedMonotonicNs: 0))
        return .filled
    }
}
