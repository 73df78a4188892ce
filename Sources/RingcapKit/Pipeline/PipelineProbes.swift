import Foundation
import Logging
import RingBuffer

// Small public entry points into the real pipeline for the micro benchmarks (Benchmarks/), so
// that they measure ringcap's own code paths without its internals being made public.

/// A test-pattern frame in a buffer of its own: what the JPEG benchmarks encode.
///
/// Immutable after init; the pixels may be read from any thread.
public final class PatternFrame: @unchecked Sendable {
    public let width: Int, height: Int
    /// Bytes from one row to the next (packed BGR).
    public var stride: Int { width * 3 }
    public let pixels: UnsafeMutableRawPointer

    /// Frame number `frame` of the pattern a `test:WxH` camera renders.
    public init(width: Int, height: Int, frame: UInt64 = 7) throws(CaptureError) {
        self.width = width
        self.height = height
        pixels = .allocate(byteCount: width * height * 3, alignment: 64)
        try TestPattern(width: width, height: height).render(into: pixels, stride: width * 3, frame: frame,
                                                             wallNs: Clock.wallNs())
    }

    deinit { pixels.deallocate() }
}

/// The capture loop of one test-pattern camera (a real `CaptureThread`, unpaced) pushing into a
/// ring that nobody pops: once the ring is full every push evicts the oldest frame, whose slot
/// goes back to the pool and is counted as dropped. That is the capture → ring path at
/// saturation: render into a pooled buffer, stamp, push, recycle.
///
/// Owned by one thread: `prepare` and `run` are called one after the other.
public final class CaptureToRingLoop {
    private let width: Int, height: Int
    private let ring: DropOldestRing<FrameToken>
    private let pool: FramePool
    private let channel = CameraChannel(index: 0, name: "bench", recording: true)
    private var counters: CameraCounters { channel.counters }
    private let framesReady = Doorbell(), spaceReady = Doorbell()
    private var capture: CaptureThread?
    private let logger = Logger(label: "ringcap-bench")

    public init(width: Int, height: Int, ringCapacity: Int = 64) {
        self.width = width
        self.height = height
        let ring = DropOldestRing<FrameToken>(capacity: ringCapacity)
        self.ring = ring
        pool = FramePool(slotCount: ring.capacity + 2)
    }

    /// Makes the capture loop for the next `run` (which opens its source: about three
    /// allocations per run, none per frame).
    public func prepare(frames: Int) {
        capture = benchCapture(width: width, height: height, frames: frames, whenFull: .dropOldest, pool: pool,
                               channel: channel, ring: ring, framesReady: framesReady, spaceReady: spaceReady, logger: logger)
    }

    /// Captures the prepared number of frames on the calling thread.
    public func run() {
        capture?.run()
        capture = nil
    }

    /// Frames captured and frames evicted so far, over every run.
    public var captured: Int { counters.captured.load(ordering: .relaxed) }
    public var dropped: Int { counters.dropped.load(ordering: .relaxed) }
}

/// One frame all the way: a real `CaptureThread` renders and stamps it and pushes it into the
/// ring, then a real `FrameWriter` pops it, encodes it, writes the JPEG with its EXIF and the
/// sidecar under temporary names and renames them into place under `directory` (made if missing).
///
/// Owned by one thread: `prepare` and `run` are called one after the other.
public final class FramePathRun {
    public let directory: String
    private let width: Int, height: Int
    private let ring: DropOldestRing<FrameToken>
    private let pool: FramePool
    private let channel: CameraChannel
    private var counters: CameraCounters { channel.counters }
    private let framesReady: Doorbell, spaceReady: Doorbell
    private let writer: FrameWriter
    private var capture: CaptureThread?
    private let logger = Logger(label: "ringcap-bench")

    /// `viewer`: a live viewer watches the camera (a `LatestJPEG` client), so that each frame is
    /// also copied to it.
    public init(width: Int, height: Int, directory: String, quality: Int = 85, viewer: Bool = false) throws(CaptureError) {
        self.width = width
        self.height = height
        self.directory = directory
        // The writer makes the folders below it, as the recorder's writers do below --out.
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let ring = DropOldestRing<FrameToken>(capacity: 8)
        let pool = FramePool(slotCount: ring.capacity + 3)
        let channel = CameraChannel(index: 0, name: "bench", recording: true)
        if viewer { channel.latest.addClient() }
        let framesReady = Doorbell(), spaceReady = Doorbell()
        self.ring = ring
        self.pool = pool
        self.channel = channel
        self.framesReady = framesReady
        self.spaceReady = spaceReady
        let camera = WriterCamera(pool: pool, channel: channel, quality: quality,
                                  sidecarHead: WriterCamera.sidecarHead(name: "bench", source: "test:\(width)x\(height)@30",
                                                                        run: "2026-12-04T00:00:00.000000Z"),
                                  folder: Array((directory + "/bench/").utf8), name: "bench")
        let producersDone = OnceFlag()
        producersDone.set()  // the writer's run() returns once the ring is empty
        writer = try FrameWriter(index: 0, cameras: [camera], ring: ring, framesReady: framesReady, spaceReady: spaceReady,
                                 producersDone: producersDone, fsync: false,
                                 gps: WriterGPS(maxAgeNs: 5_000_000_000, source: GPSSourceJSON("none")),
                                 ledger: StoreLedger(cameras: 1, maxBytes: nil),
                                 temporarySuffix: RecordingLayout.temporarySuffix(runToken: 0), logger: Logger(label: "ringcap-bench"))
    }

    /// Makes the capture loop for the next `run`, its seq going on from the last run's, as a
    /// camera's does.
    public func prepare(frames: Int = 1) {
        capture = benchCapture(width: width, height: height, frames: frames, whenFull: .wait, pool: pool,
                               channel: channel, ring: ring, framesReady: framesReady, spaceReady: spaceReady, logger: logger,
                               firstSeq: UInt64(counters.captured.load(ordering: .relaxed)))
    }

    /// Captures the prepared frames, then writes them, on the calling thread.
    public func run() {
        capture?.run()
        capture = nil
        writer.run()
    }

    /// Frames written and failed so far, over every run.
    public var written: Int { counters.written.load(ordering: .relaxed) }
    public var failed: Int { counters.failed.load(ordering: .relaxed) }
    /// Frames copied to the viewer (`viewer: true`).
    public var shownToViewer: Int { channel.latest.published.load(ordering: .relaxed) }
}

/// A full sidecar (with a 3D GPS fix) formatted the way the writers format every frame's.
///
/// Owned by one thread.
public final class SidecarSample {
    private var sink = ByteSink(capacity: 8192)
    private let head: [UInt8]
    private let meta: FrameMeta
    private let gps = WriterGPS(maxAgeNs: 5_000_000_000, source: GPSSourceJSON("gpsd://127.0.0.1:2947"))

    public init() {
        var head = ByteSink(capacity: 256)
        head.append("{\"camera\":\"bow\",\"source\":\"rtsp://192.168.1.20:554/stream1\",\"run\":\"2026-12-04T07:31:12.004500Z\",")
        self.head = Array(head.bytes)
        let now = Clock.wallNs()
        let fix = GPSFix(latitude: -22.9498453, longitude: -43.0984627, altitudeM: 3.5, speedMps: 2.572, trackDeg: 45,
                         ephM: 17.1, mode: 3, timeNs: now - 400_000_000, receivedMonotonicNs: Clock.monotonicNs() - 143_600_000)
        meta = FrameMeta(seq: 123_456, wallNs: now, monotonicNs: Clock.monotonicNs(), width: 1280, height: 720,
                         stride: 3840, ringDepth: 3, droppedSoFar: 17, hasFix: true, fix: fix)
    }

    /// Formats it once; returns its length in bytes.
    @inline(never)
    public func format() -> Int {
        formatSidecar(into: &sink, head: head, meta: meta, quality: 85, fileBytes: 48_518, fix: meta.fix, gps: gps)
        return sink.count
    }

    /// The last sidecar formatted, as text (for checking it, not for the hot path).
    public var text: String { String(decoding: sink.bytes, as: UTF8.self) }
}

/// One test-pattern camera's capture loop over `pool` and `ring`, as the probes run it on their
/// own thread.
private func benchCapture(width: Int, height: Int, frames: Int, whenFull: WhenFull, pool: FramePool,
                          channel: CameraChannel, ring: DropOldestRing<FrameToken>, framesReady: Doorbell,
                          spaceReady: Doorbell, logger: Logger, firstSeq: UInt64 = 0) -> CaptureThread {
    let spec = CameraSpec(name: "bench", source: .testPattern(width: width, height: height, fps: 1000))
    var settings = CaptureSettings(spec: spec, index: 0, size: nil, minIntervalNs: 0, whenFull: whenFull, frameLimit: frames)
    settings.firstSeq = firstSeq
    return CaptureThread(settings: settings, channel: channel, pool: pool, allCounters: [channel.counters],
                         ring: ring, framesReady: framesReady, spaceReady: spaceReady, gps: nil, logger: logger)
}
