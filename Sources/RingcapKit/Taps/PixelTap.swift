import COpenCV
import Foundation
import RingBuffer
import Synchronization

/// A shrunk grey copy of one camera's frames, for analytics: while something subscribed, a writer
/// copies each frame's luma, shrunk by a whole factor to at most `maxWidth` pixels wide, into one
/// of the tap's own few buffers before the frame's pool slot goes back. The consumer takes the
/// newest copies; when it falls behind, the oldest are replaced and counted in `dropped`. With
/// no subscriber an offer is one relaxed load.
///
/// Frames stored as the camera sent them (JPEG passthrough) have no pixels here: they are counted
/// in `skipped`.
///
/// Thread-safe: writers offer, one consumer takes and releases. Lock-free; buffers are allocated
/// on first use at the largest size seen, never per frame.
public final class PixelTap: @unchecked Sendable {
    /// One copy, as the consumer gets it; give it back with `release`.
    public struct Frame: BitwiseCopyable, Sendable {
        public var seq: UInt64
        public var wallNs: Int64
        public var monotonicNs: UInt64
        /// The copy's size, and the factor it was shrunk by from the frame's.
        public var width: Int32
        public var height: Int32
        public var factor: Int32
        var slot: UInt32
    }

    public let maxWidth: Int
    public let slotCount: Int
    private let subscribed = Atomic<Bool>(false)
    private let ready: DropOldestRing<Frame>
    private let free: DropOldestRing<UInt32>
    private let buffers: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    private let capacities: UnsafeMutablePointer<Int>
    /// Copies made.
    public let offered = Atomic<Int>(0)
    /// Copies replaced by newer ones before the consumer took them, or not made because the
    /// consumer held every buffer.
    public let dropped = Atomic<Int>(0)
    /// Frames that had no pixels to copy (passthrough JPEGs).
    public let skipped = Atomic<Int>(0)

    public init(maxWidth: Int = 320, slots: Int = 4) {
        precondition(maxWidth > 0 && slots > 1)
        self.maxWidth = maxWidth
        slotCount = slots
        ready = DropOldestRing(capacity: slots)
        free = DropOldestRing(capacity: slots)
        buffers = .allocate(capacity: slots)
        buffers.initialize(repeating: nil, count: slots)
        capacities = .allocate(capacity: slots)
        capacities.initialize(repeating: 0, count: slots)
        for i in 0..<slots { _ = free.push(UInt32(i)) }
    }

    deinit {
        for i in 0..<slotCount { Foundation.free(buffers[i]) }
        buffers.deallocate()
        capacities.deallocate()
    }

    public func subscribe() { subscribed.store(true, ordering: .relaxed) }
    public func unsubscribe() { subscribed.store(false, ordering: .relaxed) }
    public var isSubscribed: Bool { subscribed.load(ordering: .relaxed) }

    /// The newest copy not yet taken, or nil.
    public func next() -> Frame? { ready.pop() }

    /// The copy's pixels, `width × height` bytes, rows packed; valid until `release`.
    public func pixels(of frame: Frame) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: buffers[Int(frame.slot)], count: Int(frame.width) * Int(frame.height))
    }

    public func release(_ frame: Frame) { _ = free.push(frame.slot) }

    /// The factor a frame `width` wide is shrunk by.
    func factor(forWidth width: Int) -> Int { max(1, (width + maxWidth - 1) / maxWidth) }

    /// Called by a writer with the frame's pixels while it holds the pool slot.
    @inline(__always)
    func offer(meta: FrameMeta, pixels: UnsafeRawPointer) {
        guard isSubscribed else { return }
        copy(meta: meta, pixels: pixels)
    }

    private func copy(meta: FrameMeta, pixels: UnsafeRawPointer) {
        if meta.jpegBytes > 0 { skipped.add(1, ordering: .relaxed); return }
        // A free buffer, else the oldest copy not yet taken (replaced: the newest win).
        var slot = free.pop()
        if slot == nil, let oldest = ready.pop() {
            slot = oldest.slot
            dropped.add(1, ordering: .relaxed)
        }
        guard let slot else { dropped.add(1, ordering: .relaxed); return }  // the consumer holds them all
        let width = Int(meta.width), height = Int(meta.height)
        let f = factor(forWidth: width)
        let ow = max(1, width / f), oh = max(1, height / f)
        let i = Int(slot)
        if ow * oh > capacities[i] {
            var raw: UnsafeMutableRawPointer?
            guard posix_memalign(&raw, 64, ow * oh) == 0, let grown = raw else {
                _ = free.push(slot)
                dropped.add(1, ordering: .relaxed)
                return
            }
            Foundation.free(buffers[i])
            buffers[i] = grown
            capacities[i] = ow * oh
        }
        let dst = buffers[i]!.assumingMemoryBound(to: UInt8.self)
        let src = pixels.assumingMemoryBound(to: UInt8.self)
        if meta.isI420 {
            let layout = rc_i420_layout(UnsafeMutablePointer(mutating: src), meta.width, meta.height)
            rc_grey_shrink(layout.y!, layout.y_stride, meta.width, meta.height, Int32(f), dst)
        } else {
            rc_bgr_grey_shrink(src, Int(meta.stride), meta.width, meta.height, Int32(f), dst)
        }
        offered.add(1, ordering: .relaxed)
        let frame = Frame(seq: meta.seq, wallNs: meta.wallNs, monotonicNs: meta.monotonicNs,
                          width: Int32(ow), height: Int32(oh), factor: Int32(f), slot: slot)
        if let evicted = ready.push(frame) {
            _ = free.push(evicted.slot)
            dropped.add(1, ordering: .relaxed)
        }
    }
}
