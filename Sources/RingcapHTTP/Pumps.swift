import COpenCV
import Foundation
import Logging
import NIOCore
import RingcapKit
import Synchronization

/// What a viewer asked to see of a camera: its own JPEGs, or a variant re-encoded at a width
/// and quality. A plain value.
struct StreamKey: Hashable, Sendable, CustomStringConvertible {
    /// nil: the camera's width.
    var width: Int?
    /// nil: the camera's quality.
    var quality: Int?
    var isFull: Bool { width == nil && quality == nil }
    var description: String { "width \(width.map(String.init) ?? "as recorded"), quality \(quality.map(String.init) ?? "as recorded")" }
}

/// A thread that, while its feed has viewers, takes the camera's newest JPEG from the engine's
/// `LatestJPEG` tap (which the writers fill only while someone watches) and publishes it to the
/// feed: as it is (full quality, no encode) or re-encoded once per frame for every viewer of
/// the variant. It stops two seconds after the last viewer left, and the tap's client with it.
/// The writers never wait for it: the tap skips, and counts.
///
/// Thread-safe: `attach`/`detach` from any thread; the thread owns the buffers.
final class Pump: @unchecked Sendable {
    let feed: Feed
    let key: StreamKey
    private let tap: LatestJPEG
    private let camera: String
    private let defaultQuality: Int
    private let logger: Logger
    private let running = Mutex(false)
    private let stopping = Atomic<Bool>(false)
    /// Rung each time the thread ends.
    private let done = MonotonicSemaphore()
    /// Re-encodes of this variant (one per frame while watched at most).
    let encodes = Atomic<Int>(0)
    let encodeFailures = Atomic<Int>(0)
    static let lingerNs: UInt64 = 2_000_000_000

    init(camera: String, tap: LatestJPEG, key: StreamKey, defaultQuality: Int, latency: ViewerLatency, logger: Logger) {
        feed = Feed(latency: latency)
        self.camera = camera
        self.tap = tap
        self.key = key
        self.defaultQuality = defaultQuality
        self.logger = logger
    }

    /// A viewer comes: the thread runs from now on (started if it was not).
    func attach() {
        running.withLock { running in
            feed.subscribe()
            guard !running, !stopping.load(ordering: .relaxed) else { return }
            running = true
            let name = key.isFull ? "rc-live" : "rc-variant"
            startWorkerThread(name, done: done) { [self] in loop() }
        }
    }

    func detach() { feed.unsubscribe() }

    /// Whether nobody watches and its thread is gone (a variant that may be forgotten).
    var isIdle: Bool { running.withLock { !$0 } && feed.viewers == 0 }

    /// Ends the thread and every viewer's wait (the server stops), waiting up to a second for
    /// the thread.
    func stop() {
        stopping.store(true, ordering: .relaxed)
        feed.close()
        let wasRunning = running.withLock { $0 }
        tap.wakeReaders()
        if wasRunning { _ = done.wait(timeoutNs: 1_000_000_000) }
    }

    private func loop() {
        tap.addClient()
        defer { tap.removeClient() }
        // Frames the tap holds from before are old: a viewer wants what comes from now on.
        var last = tap.latestSeq
        feed.clearLatest()
        var scratch = [UInt8]()
        var out = [UInt8]()
        var scaler: OpaquePointer?
        var message = [CChar](repeating: 0, count: 256)
        defer { rc_jpeg_scaler_destroy(scaler) }
        while !stopping.load(ordering: .relaxed) {
            let shouldExit = running.withLock { running -> Bool in
                guard feed.idleNs(now: DispatchTime.now().uptimeNanoseconds) > Self.lingerNs else { return false }
                running = false
                return true
            }
            if shouldExit { return }
            guard tap.waitForNewer(than: last, timeoutNs: 250_000_000) else { continue }
            if key.isFull {
                let frame: LiveFrame? = tap.withLatest(newerThan: last) { raw, f in
                    LiveFrame.make(raw, seq: f.seq, wallNs: f.wallNs, width: f.width, height: f.height)
                }
                guard let frame else { continue }
                last = frame.seq
                feed.publish(frame)
                continue
            }
            guard let f = tap.copyLatest(newerThan: last, into: &scratch) else { continue }
            last = f.seq
            if scaler == nil {
                scaler = rc_jpeg_scaler_create(&message, message.count)
                if scaler == nil {
                    logger.error("live view of \(camera): cannot make a \(key) variant: \(String(cString: message))")
                    encodeFailures.add(1, ordering: .relaxed)
                    continue
                }
            }
            let capacity = rc_jpeg_max_size(f.width, f.height)
            if out.count < capacity { out = [UInt8](repeating: 0, count: capacity) }
            var length = 0
            var w: Int32 = 0, h: Int32 = 0
            let status = scratch.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    rc_jpeg_rescale(scaler!, src.baseAddress!, src.count, Int32(key.width ?? 0), Int32(key.quality ?? defaultQuality),
                                    dst.baseAddress!, dst.count, &length, &w, &h, &message, message.count)
                }
            }
            guard status == RC_OK else {
                if encodeFailures.wrappingAdd(1, ordering: .relaxed).oldValue == 0 {
                    logger.warning("live view of \(camera): a \(key) frame could not be made: \(String(cString: message))")
                }
                continue
            }
            encodes.add(1, ordering: .relaxed)
            let frame = out.withUnsafeBytes { LiveFrame.make(UnsafeRawBufferPointer(rebasing: $0[0..<length]), seq: f.seq, wallNs: f.wallNs, width: w, height: h) }
            feed.publish(frame)
        }
        running.withLock { $0 = false }
    }
}

/// One camera's streams: the full-quality pump and at most `maxVariants` variants. Thread-safe.
final class CameraStreams: Sendable {
    static let maxVariants = 4
    let control: CameraControl
    let full: Pump
    private let variants = Mutex<[StreamKey: Pump]>([:])
    private let defaultQuality: Int
    private let latency: ViewerLatency
    private let logger: Logger

    init(control: CameraControl, defaultQuality: Int, latency: ViewerLatency, logger: Logger) {
        self.control = control
        self.defaultQuality = defaultQuality
        self.latency = latency
        self.logger = logger
        full = Pump(camera: control.name, tap: control.latestJPEG, key: StreamKey(), defaultQuality: defaultQuality, latency: latency, logger: logger)
    }

    enum VariantError: Error { case tooMany(Int) }

    /// The pump for `key`, made if needed; a fifth variant while four are watched is refused.
    /// The caller attaches to it.
    func pump(for key: StreamKey) throws(VariantError) -> Pump {
        if key.isFull { return full }
        return try variants.withLock { (variants: inout [StreamKey: Pump]) throws(VariantError) -> Pump in
            if let pump = variants[key] { return pump }
            for (k, pump) in variants where pump.isIdle { variants[k] = nil }
            guard variants.count < Self.maxVariants else { throw .tooMany(Self.maxVariants) }
            let pump = Pump(camera: control.name, tap: control.latestJPEG, key: key, defaultQuality: defaultQuality, latency: latency, logger: logger)
            variants[key] = pump
            return pump
        }
    }

    var allPumps: [Pump] { [full] + variants.withLock { Array($0.values) } }

    func stop() { for pump in allPumps { pump.stop() } }
}
