import Foundation
import NIOCore
import NIOHTTPTypes
import RingcapKit
import Synchronization

/// The viewers of one feed's stream.mjpg, sent to straight from their connections' event loop:
/// when a frame is published, one task on the event loop writes the frame's part (one buffer,
/// shared) to every viewer whose connection can take it, as ustreamer's refresher does. A viewer
/// whose socket is full (`isWritable` false: about two frames queued) skips the frame, counted;
/// one with `fps` gets a frame when it is due. No task per viewer per frame.
///
/// Thread-safe: the list under a lock; each viewer's fields are touched on its event loop only.
final class DirectViewers: Sendable {
    final class Viewer: @unchecked Sendable {
        let channel: any Channel
        let intervalNs: UInt64?
        // On the channel's event loop only.
        var nextDueNs: UInt64 = 0
        var lastIndex: Int?
        init(channel: any Channel, intervalNs: UInt64?) {
            self.channel = channel
            self.intervalNs = intervalNs
        }
    }

    private let viewers = Mutex<[ObjectIdentifier: Viewer]>([:])
    let latency: ViewerLatency

    init(latency: ViewerLatency) { self.latency = latency }

    var isEmpty: Bool { viewers.withLock { $0.isEmpty } }

    /// Starts sending to `viewer`, with `latest` at once if there is one. Call after the
    /// response head was written (its write is queued on the event loop before this).
    func add(_ viewer: Viewer, latest: LiveFrame?) {
        viewers.withLock { $0[ObjectIdentifier(viewer)] = viewer }
        if let latest { viewer.channel.eventLoop.execute { self.send(latest, to: viewer, feed: nil) } }
    }

    /// Stops sending; returns once no write to it is queued any more (so the response's end
    /// comes after the last part).
    func remove(_ viewer: Viewer) async {
        viewers.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(viewer)) }
        try? await viewer.channel.eventLoop.submit {}.get()
    }

    /// A new frame: one task per event loop sends it to that loop's viewers.
    func publish(_ frame: LiveFrame, feed: Feed) {
        let all = viewers.withLock { Array($0.values) }
        guard let first = all.first else { return }
        let loop = first.channel.eventLoop
        loop.execute {
            for viewer in all {
                if viewer.channel.eventLoop === loop {
                    self.send(frame, to: viewer, feed: feed)
                } else {
                    viewer.channel.eventLoop.execute { self.send(frame, to: viewer, feed: feed) }
                }
            }
        }
    }

    /// On the viewer's event loop.
    private func send(_ frame: LiveFrame, to viewer: Viewer, feed: Feed?) {
        let channel = viewer.channel
        guard channel.isActive else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        if viewer.intervalNs != nil, now < viewer.nextDueNs { return }  // not due: counted at the next send
        guard channel.isWritable else { return }  // a full socket: this frame is skipped
        if let last = viewer.lastIndex, frame.index > last + 1 { feed?.skipped.add(frame.index - last - 1, ordering: .relaxed) }
        if let last = viewer.lastIndex, frame.index <= last { return }
        viewer.lastIndex = frame.index
        if let interval = viewer.intervalNs { viewer.nextDueNs = max(now, viewer.nextDueNs &+ interval) }
        let wallNs = frame.wallNs
        let latency = self.latency
        channel.writeAndFlush(HTTPResponsePart.body(frame.part)).whenSuccess { latency.record(ns: Clock.wallNs() - wallNs) }
    }
}
