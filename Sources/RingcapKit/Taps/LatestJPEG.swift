import Foundation
import Synchronization

/// The newest JPEG of one camera, for readers that want to see frames without ever slowing the
/// writers down (the live view, snapshots): after a writer has encoded a frame it offers the
/// bytes; readers take the newest. As ustreamer does (`_stream_expose_jpeg`, `_http_refresher`):
/// a few slots, a sequence number, and an atomic count of clients that the writer reads to
/// decide whether to copy at all. With no client, an offer is one relaxed load.
///
/// Thread-safe: any number of writers offer and any number of readers read at once, lock-free.
/// Each slot's state is an atomic: `-1` while one writer fills it, `0` free, `n > 0` while n
/// readers copy from it. A writer never waits: it claims a free slot that is not the published
/// one, or skips the frame (counted in `skipped`). A reader never sees a torn frame: it pins the
/// slot it found published and checks, after pinning, that it is still the published one.
/// Buffers are allocated on first use and grown only for a bigger JPEG than any before: no
/// allocation per frame.
public final class LatestJPEG: @unchecked Sendable {
    /// What a reader gets besides the bytes.
    public struct Frame: Sendable, Equatable {
        public var seq: UInt64
        public var wallNs: Int64
        public var width: Int32
        public var height: Int32
        public var bytes: Int
    }

    public static let slotCount = 4
    private let states: UnsafeMutablePointer<Atomic<Int>>
    /// Per slot; written only by the writer holding the slot (state -1).
    private let buffers: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    private let capacities: UnsafeMutablePointer<Int>
    private let frames: UnsafeMutablePointer<Frame>
    /// The published frame: `seq << 8 | (slot + 1)`; 0 when nothing was offered yet.
    private let latest = Atomic<UInt64>(0)
    private let clients = Atomic<Int>(0)
    /// Rung after each publish, for readers that sleep until a newer frame (`waitForNewer`).
    private let bell = Doorbell()
    /// Frames offered while someone watched and copied in.
    public let published = Atomic<Int>(0)
    /// Frames not copied in: every slot was busy, no memory for a bigger one, or a newer frame
    /// had been published already.
    public let skipped = Atomic<Int>(0)

    public init() {
        states = .allocate(capacity: Self.slotCount)
        buffers = .allocate(capacity: Self.slotCount)
        capacities = .allocate(capacity: Self.slotCount)
        frames = .allocate(capacity: Self.slotCount)
        for i in 0..<Self.slotCount {
            (states + i).initialize(to: Atomic<Int>(0))
            (buffers + i).initialize(to: nil)
            (capacities + i).initialize(to: 0)
            (frames + i).initialize(to: Frame(seq: 0, wallNs: 0, width: 0, height: 0, bytes: 0))
        }
    }

    deinit {
        for i in 0..<Self.slotCount { free(buffers[i]) }
        states.deinitialize(count: Self.slotCount)
        states.deallocate()
        buffers.deallocate()
        capacities.deallocate()
        frames.deallocate()
    }

    // MARK: Readers

    /// A reader says it watches; writers copy frames in only while someone does.
    public func addClient() { clients.add(1, ordering: .relaxed) }
    public func removeClient() { clients.subtract(1, ordering: .relaxed) }
    public var hasClients: Bool { clients.load(ordering: .relaxed) > 0 }

    /// Calls `body` with the newest frame's bytes if it is newer than `seq` (any frame when
    /// nil), the slot pinned for the call: keep it short, a pinned slot is one a writer cannot
    /// use. Returns what `body` returned, or nil when there is no newer frame.
    public func withLatest<R>(newerThan seq: UInt64? = nil, _ body: (UnsafeRawBufferPointer, Frame) throws -> R) rethrows -> R? {
        while true {
            let word = latest.load(ordering: .acquiring)
            guard word != 0 else { return nil }
            let slot = Int(word & 0xFF) - 1
            if let seq, word >> 8 <= seq { return nil }
            let state = states[slot].load(ordering: .relaxed)
            guard state >= 0 else { continue }  // a writer refills it (it is no longer the newest)
            guard states[slot].compareExchange(expected: state, desired: state + 1, ordering: .acquiring).exchanged else { continue }
            defer { states[slot].subtract(1, ordering: .releasing) }
            guard latest.load(ordering: .acquiring) == word else { continue }
            let frame = frames[slot]
            return try body(UnsafeRawBufferPointer(start: buffers[slot], count: frame.bytes), frame)
        }
    }

    /// The newest frame's seq; nil before the first offer seen by a client.
    public var latestSeq: UInt64? {
        let word = latest.load(ordering: .acquiring)
        return word == 0 ? nil : word >> 8
    }

    /// Sleeps until a frame newer than `seq` (any, when nil) is published or `timeoutNs` passed;
    /// true when there is one. For a reader's own thread (it blocks).
    public func waitForNewer(than seq: UInt64?, timeoutNs: UInt64) -> Bool {
        let deadline = Clock.monotonicNs() &+ timeoutNs
        func newer() -> Bool {
            guard let latest = latestSeq else { return false }
            return seq.map { latest > $0 } ?? true
        }
        while true {
            if newer() { return true }
            let now = Clock.monotonicNs()
            guard now < deadline else { return false }
            if bell.wait(timeoutNs: deadline - now, recheck: newer) { return true }
        }
    }

    /// Wakes every reader in `waitForNewer` (a reader that is shutting down).
    public func wakeReaders() { bell.ringAll() }

    /// The newest frame copied into `into` (resized to fit), if newer than `seq`.
    public func copyLatest(newerThan seq: UInt64? = nil, into bytes: inout [UInt8]) -> Frame? {
        withLatest(newerThan: seq) { raw, frame in
            bytes.removeAll(keepingCapacity: true)
            bytes.append(contentsOf: raw)
            return frame
        }
    }

    // MARK: Writers

    /// Offers a stored frame's JPEG, given in up to three parts (SOI, EXIF, the rest) that are
    /// copied in one after the other. Cheap when nobody watches; never blocks.
    @inline(__always)
    func offer(_ parts: UnsafePointer<iovec>, count: Int, frame: Frame) {
        guard hasClients else { return }
        publish(parts, count: count, frame: frame)
    }

    private func publish(_ parts: UnsafePointer<iovec>, count: Int, frame: Frame) {
        let current = latest.load(ordering: .acquiring)
        if current != 0 && current >> 8 >= frame.seq { skipped.add(1, ordering: .relaxed); return }
        // A free slot that is not the published one.
        var claimed = -1
        for i in 0..<Self.slotCount where UInt64(i + 1) != current & 0xFF {
            if states[i].compareExchange(expected: 0, desired: -1, ordering: .acquiring).exchanged {
                // `current` may have been stale: never refill the slot that is published now.
                if latest.load(ordering: .acquiring) & 0xFF == UInt64(i + 1) {
                    states[i].store(0, ordering: .releasing)
                    continue
                }
                claimed = i
                break
            }
        }
        guard claimed >= 0 else { skipped.add(1, ordering: .relaxed); return }
        var total = 0
        for p in 0..<count { total += parts[p].iov_len }
        if total > capacities[claimed] {
            var raw: UnsafeMutableRawPointer?
            guard posix_memalign(&raw, 64, total + total / 4) == 0, let grown = raw else {
                states[claimed].store(0, ordering: .releasing)
                skipped.add(1, ordering: .relaxed)
                return
            }
            free(buffers[claimed])
            buffers[claimed] = grown
            capacities[claimed] = total + total / 4
        }
        var at = buffers[claimed]!
        for p in 0..<count {
            memcpy(at, parts[p].iov_base, parts[p].iov_len)
            at += parts[p].iov_len
        }
        var f = frame
        f.bytes = total
        frames[claimed] = f
        // Publish unless a newer frame got there first (another writer, same camera).
        let word = frame.seq << 8 | UInt64(claimed + 1)
        var seen = latest.load(ordering: .relaxed)
        var done = false
        while seen == 0 || seen >> 8 < frame.seq {
            let (exchanged, original) = latest.compareExchange(expected: seen, desired: word, ordering: .acquiringAndReleasing)
            if exchanged { done = true; break }
            seen = original
        }
        states[claimed].store(0, ordering: .releasing)
        if done {
            published.add(1, ordering: .relaxed)
            bell.ringEverySleeper()
        } else {
            skipped.add(1, ordering: .relaxed)
        }
    }
}
