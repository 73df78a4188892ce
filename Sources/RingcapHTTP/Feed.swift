import Foundation
import NIOCore
import RingcapKit
import Synchronization

/// One JPEG as the live side hands it to viewers: the bytes in a `ByteBuffer` that every viewer
/// of the feed writes to its socket as it is (no copy per viewer), and its stamps.
struct LiveFrame: Sendable {
    var jpeg: ByteBuffer
    var seq: UInt64
    var wallNs: Int64
    var width: Int32
    var height: Int32
    /// The feed's count of frames published before this one (set by `Feed.publish`).
    var index = 0
    /// The whole part of stream.mjpg: boundary and headers (Content-Type, Content-Length,
    /// X-Timestamp), the JPEG, CRLF; `jpeg` is a view of its middle. Made once per frame, sent to
    /// every viewer as it is, in one write.
    var part = ByteBuffer()

    static let boundary = "ringcapframe"

    /// A frame from the tap's bytes: one buffer, the part around the JPEG.
    static func make(_ bytes: UnsafeRawBufferPointer, seq: UInt64, wallNs: Int64, width: Int32, height: Int32) -> LiveFrame {
        let head = "--\(boundary)\r\nContent-Type: image/jpeg\r\nContent-Length: \(bytes.count)\r\nX-Timestamp: \(timestamp(wallNs))\r\n\r\n"
        var part = ByteBufferAllocator().buffer(capacity: head.utf8.count + bytes.count + 2)
        let headLength = part.writeString(head)
        part.writeBytes(bytes)
        part.writeString("\r\n")
        let jpeg = part.getSlice(at: part.readerIndex + headLength, length: bytes.count)!
        return LiveFrame(jpeg: jpeg, seq: seq, wallNs: wallNs, width: width, height: height, part: part)
    }

    static func timestamp(_ wallNs: Int64) -> String {
        let micros = String(wallNs % 1_000_000_000 / 1000)
        return "\(wallNs / 1_000_000_000)." + String(repeating: "0", count: 6 - micros.count) + micros
    }
}

/// The newest frame of one stream (a camera at full quality, or one of its variants) and the
/// viewers waiting for a newer one: newest wins, nothing queues, so a viewer holds at most the
/// frame it is sending and a slow one skips.
///
/// Thread-safe: one lock around a few words; `publish` resumes the waiters outside it.
final class Feed: Sendable {
    private struct State {
        var latest: LiveFrame?
        var waiters: [Int: CheckedContinuation<LiveFrame?, Never>] = [:]
        var closeWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextID = 0
        var count = 0
        var closed = false
        /// Viewers subscribed (`subscribe`/`unsubscribe`), waiting or not.
        var viewers = 0
        /// When the last viewer left (monotonic ns); 0 while someone watches.
        var idleSinceNs: UInt64 = 0
    }

    private let state = Mutex(State())

    /// Frames viewers did not get because a newer one came before they asked (they were still
    /// sending, or asked for a lower rate): see `noteSent`.
    let skipped = Atomic<Int>(0)
    /// Frames published.
    let published = Atomic<Int>(0)

    /// stream.mjpg's viewers, written to from the event loop (`DirectViewers`).
    let direct: DirectViewers

    init(latency: ViewerLatency) { direct = DirectViewers(latency: latency) }

    /// The newest frame if it is at most `maxAgeNs` old (wall clock).
    func latest(maxAgeNs: Int64) -> LiveFrame? {
        state.withLock { state in
            guard let latest = state.latest, Clock.wallNs() - latest.wallNs <= maxAgeNs else { return nil }
            return latest
        }
    }

    /// Returns when the feed closes or the task is cancelled.
    func waitUntilClosed() async {
        let id: Int = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now: Bool = state.withLock { state in
                    if state.closed || Task.isCancelled { return true }
                    state.closeWaiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.closeWaiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }

    func subscribe() { state.withLock { $0.viewers += 1; $0.idleSinceNs = 0 } }

    func unsubscribe() {
        state.withLock {
            $0.viewers -= 1
            if $0.viewers == 0 { $0.idleSinceNs = DispatchTime.now().uptimeNanoseconds }
        }
    }

    var viewers: Int { state.withLock { $0.viewers } }

    /// How long nobody has watched, ns (0 while someone does).
    func idleNs(now: UInt64) -> UInt64 {
        state.withLock { $0.viewers > 0 || $0.idleSinceNs == 0 ? 0 : now &- $0.idleSinceNs }
    }

    var latestSeq: UInt64? { state.withLock { $0.latest?.seq } }

    /// Forgets the newest frame (a pump starting again: what it had is old).
    func clearLatest() { state.withLock { $0.latest = nil } }

    func publish(_ frame: LiveFrame) {
        var frame = frame
        let waiting: [CheckedContinuation<LiveFrame?, Never>] = state.withLock { state in
            guard !state.closed else { return [] }
            frame.index = state.count
            state.count += 1
            state.latest = frame
            let waiting = Array(state.waiters.values)
            state.waiters.removeAll(keepingCapacity: true)
            return waiting
        }
        published.add(1, ordering: .relaxed)
        for w in waiting { w.resume(returning: frame) }
        direct.publish(frame, feed: self)
    }

    /// The newest frame if newer than `seq` (any when nil), else waits for one. nil when the feed
    /// closed or the task was cancelled.
    func next(after seq: UInt64?) async -> LiveFrame? {
        let id: Int = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        let frame: LiveFrame? = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<LiveFrame?, Never>) in
                let now: LiveFrame?? = state.withLock { state in
                    if state.closed || Task.isCancelled { return .some(nil) }
                    if let latest = state.latest, seq.map({ latest.seq > $0 }) ?? true { return .some(latest) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(returning: nil)
        }
        return frame
    }

    /// A viewer sent `frame` after `previous` (nil: its first): the frames of this feed between
    /// the two are counted skipped.
    func noteSent(_ frame: LiveFrame, after previous: LiveFrame?) {
        guard let previous, frame.index > previous.index + 1 else { return }
        skipped.add(frame.index - previous.index - 1, ordering: .relaxed)
    }

    /// Ends every wait, now and later (the server stops).
    func close() {
        let (waiting, closing) = state.withLock { state in
            state.closed = true
            defer { state.waiters.removeAll(); state.closeWaiters.removeAll() }
            return (Array(state.waiters.values), Array(state.closeWaiters.values))
        }
        for w in waiting { w.resume(returning: nil) }
        for w in closing { w.resume() }
    }

    var isClosed: Bool { state.withLock { $0.closed } }
}
