import Foundation
import Synchronization

/// What the ring carries: which camera the frame is of, and its slot in the shared pool. Eight bytes, no references,
/// so the ring moves frames with no reference counting and no allocation.
public struct FrameToken: BitwiseCopyable, Equatable, Sendable {
    public var camera: UInt32
    public var slot: UInt32

    public init(camera: UInt32, slot: UInt32) {
        self.camera = camera
        self.slot = slot
    }
}

/// What a pool slot's pixel buffer holds: nothing known (`kind` 0), a frame from a source that
/// writes every pixel (`SlotContent.decoded`), or frame `frame` of a test pattern of some size.
/// A plain value, kept per slot in the pool and touched only by the slot's holder.
public struct SlotContent: BitwiseCopyable, Equatable {
    public var kind: UInt64 = 0
    public var frame: UInt64 = 0

    public init() {}
    public init(kind: UInt64, frame: UInt64) {
        self.kind = kind
        self.frame = frame
    }

    /// `kind` of a test-pattern frame of this size (its background depends on the size only), in
    /// I420 as capture renders it.
    public static func pattern(width: Int, height: Int) -> UInt64 { 1 << 63 | UInt64(width) << 32 | UInt64(height) }
    /// `kind` of a decoded frame.
    public static let decoded: UInt64 = 1
}

/// The record of one frame, kept beside its pixels in the pool. Written by the capture thread
/// while it owns the slot, read by the writer that popped the slot's token: the ring's
/// release/acquire hand-over orders the two.
public struct FrameMeta: BitwiseCopyable {
    public var seq: UInt64 = 0
    public var wallNs: Int64 = 0
    public var monotonicNs: UInt64 = 0
    public var width: Int32 = 0
    public var height: Int32 = 0
    public var stride: Int32 = 0
    public var ringDepth: Int32 = 0
    public var droppedSoFar: Int64 = 0
    /// A passthrough frame: the slot's buffer holds the camera's JPEG, this many bytes (0: the
    /// buffer holds packed BGR pixels, `stride` bytes a row).
    public var jpegBytes: Int32 = 0
    /// The buffer holds the frame in I420 (`rc_i420_layout`: test patterns, streams, files);
    /// false: packed BGR, `stride` bytes a row (webcams through OpenCV).
    public var isI420 = false
    /// Stored (true), or only shown to the taps: the camera's recording was off at capture.
    public var store = true
    public var hasFix = false
    public var fix = GPSFix(latitude: 0, longitude: 0, mode: 0, receivedMonotonicNs: 0)
}

/// The preallocated frames of every camera: pixel buffers, their metadata, and a lock-free stack
/// of the free ones. One pool serves all cameras, so that the memory frames take is bounded by
/// the ring, the writers and the cameras, not by the ring once per camera.
///
/// Thread-safe for `acquire`/`release` from any thread. A slot's buffer and metadata belong to
/// whoever holds the slot (the capture thread between acquire and push; the writer between pop
/// and release), so they need no lock.
///
/// The free list is a stack (last released, first acquired) so that a lightly loaded pipeline
/// keeps reusing the same few buffers: the others are never touched and never become resident.
/// Buffers are allocated on first use, sized from the frame, and grown only when a bigger frame
/// than any before lands in the slot (cameras of different sizes: in time every slot that is
/// used holds a buffer of the largest size; after that nothing is allocated).
public final class FramePool: @unchecked Sendable {
    public let slotCount: Int
    /// Pixel buffer of each slot (nil until first used). Owned by the slot's holder.
    private let buffers: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    private let capacities: UnsafeMutablePointer<Int>
    /// Metadata of each slot. Owned by the slot's holder.
    public let meta: UnsafeMutablePointer<FrameMeta>
    /// Per slot: what its buffer holds (`SlotContent`). Owned by the slot's holder. Lets a test
    /// pattern redraw only what changed in a buffer that holds an earlier pattern frame of its
    /// size, in a pool all cameras share.
    public let contents: UnsafeMutablePointer<SlotContent>
    /// `next[i]`: the slot below slot i on the free stack, plus one (0: bottom). Atomic because a
    /// popper may read it while another thread re-pushes the same slot; the tag makes such a
    /// stale read lose its CAS.
    private let next: UnsafeMutablePointer<Atomic<UInt32>>
    /// Top of the free stack: high 32 bits a tag bumped on every change (against ABA), low 32
    /// bits the top slot plus one (0: empty).
    private let head = Atomic<UInt64>(0)

    /// Bytes of pixel buffers the pool may hold at once; a buffer that would take it past this is
    /// not allocated (`buffer` gives nil: that frame is failed). The ring was sized at start for
    /// the frames known then; a stream whose frames turn out larger must not take the machine.
    public let byteBudget: Int
    /// Bytes of pixel buffers allocated now. Changed by slot holders when a buffer grows.
    private let heldBytes = Atomic<Int>(0)

    public init(slotCount: Int, byteBudget: Int = Int.max) {
        precondition(slotCount > 0 && slotCount < Int(UInt32.max))
        self.slotCount = slotCount
        self.byteBudget = byteBudget
        buffers = .allocate(capacity: slotCount)
        buffers.initialize(repeating: nil, count: slotCount)
        capacities = .allocate(capacity: slotCount)
        capacities.initialize(repeating: 0, count: slotCount)
        meta = .allocate(capacity: slotCount)
        meta.initialize(repeating: FrameMeta(), count: slotCount)
        contents = .allocate(capacity: slotCount)
        contents.initialize(repeating: SlotContent(), count: slotCount)
        next = .allocate(capacity: slotCount)
        // Slot 0 on top: next[i] = i + 1 (the slot below is i + 1, stored plus one).
        for i in 0..<slotCount {
            (next + i).initialize(to: Atomic<UInt32>(i + 1 < slotCount ? UInt32(i + 2) : 0))
        }
        head.store(1, ordering: .relaxed)
    }

    deinit {
        for i in 0..<slotCount { free(buffers[i]) }
        buffers.deallocate()
        capacities.deallocate()
        meta.deallocate()
        contents.deallocate()
        next.deinitialize(count: slotCount)
        next.deallocate()
    }

    /// Takes a free slot, or nil when every slot is in use (the pool is sized so that this does
    /// not happen; a caller that sees nil counts the frame as dropped).
    /// - Complexity: O(1), lock-free.
    @inline(__always)
    public func acquire() -> UInt32? {
        // Acquiring: pairs with the releasing CAS in `release`, so the slot's last holder's
        // writes (and `next[top]`) are visible here.
        var old = head.load(ordering: .acquiring)
        while true {
            let top = UInt32(truncatingIfNeeded: old)
            if top == 0 { return nil }
            let below = next[Int(top - 1)].load(ordering: .relaxed)
            let new = ((old >> 32) &+ 1) << 32 | UInt64(below)
            // Acquiring on both outcomes: on failure we read next[] of the new top.
            let (exchanged, current) = head.compareExchange(expected: old, desired: new,
                                                            successOrdering: .acquiring, failureOrdering: .acquiring)
            if exchanged { return top - 1 }
            old = current
        }
    }

    /// Returns a slot to the free stack.
    /// - Complexity: O(1), lock-free.
    @inline(__always)
    public func release(_ slot: UInt32) {
        var old = head.load(ordering: .relaxed)
        while true {
            next[Int(slot)].store(UInt32(truncatingIfNeeded: old), ordering: .relaxed)
            let new = ((old >> 32) &+ 1) << 32 | UInt64(slot + 1)
            // Releasing: publishes next[slot] and everything the holder did with the slot;
            // pairs with the acquiring loads in `acquire`.
            let (exchanged, current) = head.compareExchange(expected: old, desired: new,
                                                            successOrdering: .releasing, failureOrdering: .relaxed)
            if exchanged { return }
            old = current
        }
    }

    /// The pixel buffer of `slot`, at least `bytes` long. Allocates only the first time a slot
    /// is used and when the frame size grows; nil when the memory cannot be had (a camera whose
    /// frames grew past what the machine holds): the caller counts that frame as failed instead
    /// of the process aborting. Call only while holding the slot.
    @inline(__always)
    public func buffer(_ slot: UInt32, atLeast bytes: Int) -> UnsafeMutableRawPointer? {
        let i = Int(slot)
        if let buffer = buffers[i], capacities[i] >= bytes { return buffer }
        // Reserve the growth first; relaxed: a total, compared with the budget only.
        let growth = bytes - capacities[i]
        let (_, total) = heldBytes.add(growth, ordering: .relaxed)
        guard total <= byteBudget else {
            heldBytes.subtract(growth, ordering: .relaxed)
            return nil
        }
        free(buffers[i])
        buffers[i] = nil
        heldBytes.subtract(capacities[i] + growth, ordering: .relaxed)  // given back below if allocated
        capacities[i] = 0
        contents[i] = SlotContent()  // a new buffer holds nothing
        // 64-byte alignment suits the SIMD loads of the JPEG encoder and colour conversion.
        // posix_memalign, not UnsafeMutableRawPointer.allocate, which aborts when memory runs out.
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, max(bytes, 64)) == 0, let buffer = raw else { return nil }
        heldBytes.add(bytes, ordering: .relaxed)
        buffers[i] = buffer
        capacities[i] = bytes
        return buffer
    }

    /// The pixel buffer of a slot that holds a frame. Call only while holding the slot.
    @inline(__always)
    public func pixels(_ slot: UInt32) -> UnsafeMutableRawPointer? { buffers[Int(slot)] }

    /// Number of slots whose buffer was ever allocated (how much of the pool became resident).
    /// Read it when no other thread uses the pool.
    public var allocatedSlots: Int {
        (0..<slotCount).reduce(0) { $0 + (buffers[$1] == nil ? 0 : 1) }
    }

    /// Bytes of pixel buffers allocated. Read it when no other thread uses the pool.
    public var allocatedBytes: Int {
        (0..<slotCount).reduce(0) { $0 + (buffers[$1] == nil ? 0 : capacities[$1]) }
    }
}
