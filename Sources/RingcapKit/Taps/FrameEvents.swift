import Foundation
import RingBuffer
import Synchronization

/// One thing that happened to the recordings under `--out`: a frame stored, or frames deleted by
/// retention. A plain value (the queue moves its bytes).
public struct FrameEvent: BitwiseCopyable, Sendable {
    public enum Kind: UInt8, Sendable, BitwiseCopyable {
        /// A frame's JPEG and sidecar are in place.
        case stored
        /// One frame's files were deleted (`seq` and `wallNs` name it).
        case frameDeleted
        /// A whole minute folder went (`wallNs` is the minute's start).
        case minuteDeleted
    }

    public var kind: Kind
    /// An id from `FrameEvents.cameraName(_:)`: this run's cameras first, in their order.
    public var camera: UInt32
    public var seq: UInt64
    public var wallNs: Int64
    /// Bytes of the JPEG and the sidecar (stored), or of what was deleted.
    public var bytes: Int64
    public var width: Int32
    public var height: Int32
    public var hasFix: Bool
    public var fix: GPSFix
}

/// A bounded drop-oldest queue of `FrameEvent`s, for the indexer: writers and retention publish,
/// one consumer takes. Publishing never blocks: when the consumer falls behind, the oldest
/// events are lost and counted in `overflowed`, so that the consumer knows it must rescan. Nothing
/// is queued until someone subscribed.
///
/// Thread-safe. `publish` is lock-free and allocates nothing; `cameraID(for:)`, for a camera of
/// an earlier recording that retention deletes, takes a lock (never on the writers' path).
public final class FrameEvents: @unchecked Sendable {
    private let ring: DropOldestRing<FrameEvent>
    private let subscribed = Atomic<Bool>(false)
    /// Events lost because the queue was full.
    public let overflowed = Atomic<Int>(0)
    private let names: Mutex<[String]>

    public init(capacity: Int = 4096, cameraNames: [String]) {
        ring = DropOldestRing(capacity: capacity)
        names = Mutex(cameraNames)
    }

    /// From now on events are queued.
    public func subscribe() { subscribed.store(true, ordering: .relaxed) }
    public var isSubscribed: Bool { subscribed.load(ordering: .relaxed) }

    @inline(__always)
    func publish(_ event: FrameEvent) {
        guard subscribed.load(ordering: .relaxed) else { return }
        if ring.push(event) != nil { overflowed.add(1, ordering: .relaxed) }
    }

    /// The oldest queued event, or nil.
    public func next() -> FrameEvent? { ring.pop() }

    /// The camera an event's id stands for.
    public func cameraName(_ id: UInt32) -> String { names.withLock { Int(id) < $0.count ? $0[Int(id)] : "?" } }

    /// The id of a camera by name, registering one of an earlier recording on first use.
    func cameraID(for name: String) -> UInt32 {
        names.withLock { names in
            if let i = names.firstIndex(of: name) { return UInt32(i) }
            names.append(name)
            return UInt32(names.count - 1)
        }
    }

    /// The frame's path without extension, relative to `--out` (stored and frameDeleted), or the
    /// minute folder's (minuteDeleted).
    public func relativePath(of event: FrameEvent) -> String {
        let camera = cameraName(event.camera)
        if event.kind == .minuteDeleted {
            return RecordingLayout.minuteFolderPath(camera: camera, minute: RecordingLayout.unixMinute(wallNs: event.wallNs))
        }
        return RecordingLayout.framePath(camera: camera, wallNs: event.wallNs, seq: event.seq)
    }
}
