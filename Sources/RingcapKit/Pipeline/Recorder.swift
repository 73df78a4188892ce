import COpenCV
import Foundation
import Histogram
import Logging
import RingBuffer
import Synchronization

/// Set by the signal handler, read by the recorder's main loop: signals only set a flag.
/// 0: running; 1: stop requested; 2+: stop now.
public let terminationRequests = Atomic<Int>(0)

/// Ends the recorder's sleep between ticks at once (a signal handler calls it after setting
/// `terminationRequests`). Async-signal-safe: one sem_post.
public func wakeRecorder() { rc_recorder_wake() }

/// Runs one recording: cameras → ring → writers → disk, until the duration, the frame limits,
/// the end of every file, or a signal ends it; then drains and reports.
///
/// Used from one thread (the main thread): `run` blocks until the recording is over.
public final class Recorder {
    public let config: RecordConfig
    private let logger: Logger
    private let gps: GPSSnapshot?
    /// How long writers may drain the ring after capture stops (`--drain-timeout`).
    public var drainTimeoutNs: UInt64
    /// Called once a second with the progress line (when `config.progress`).
    public var onProgress: ((String) -> Void)?
    /// Called about once a second on the recorder's thread while recording, whether or not
    /// `config.progress` is set (`ringcap bench` samples resident memory with it). Keep it short:
    /// the stop conditions are checked between calls.
    public var onTick: (() -> Void)?

    public init(config: RecordConfig, gps: GPSSnapshot? = nil, logger: Logger) {
        self.config = config
        self.gps = gps
        self.logger = logger
        drainTimeoutNs = UInt64(config.drainTimeoutSeconds * 1e9)
    }

    /// Records until done and returns the summary. Throws only when nothing could start.
    public func run() throws(CaptureError) -> RecordingSummary {
        let start = Clock.monotonicNs()
        // This run's temporaries carry a token of their own, so that the clean-up of what earlier
        // runs left can go on beside the writers (in the background: a year of frames takes
        // minutes to walk, and nothing about it needs to precede the first frame).
        let temporarySuffix = RecordingLayout.temporarySuffix(runToken: UInt32.random(in: 0...UInt32.max))

        let plan: RingPlan
        do { plan = try config.ringPlan() } catch {
            throw CaptureError(source: "--ring", reason: error.description)
        }
        if let note = plan.note { logger.notice("\(note)") }
        let ring = DropOldestRing<FrameToken>(capacity: plan.capacity)
        // One pool for every camera, with enough slots for a full ring, one in each writer's
        // hands and one in each capture thread's, plus one spare: a capture thread never waits
        // for a free slot. Shared, so that memory is bounded by the ring and not by the ring
        // times the cameras: with a pool per camera, each camera's pool would in time touch as
        // many buffers as the ring once held of its frames, and resident memory would creep up
        // towards cameras × ring under overload.
        // At most half of the memory, whatever the frames turn out to be (a stream's size is known
        // only at its first frame): past that a frame is failed, not the machine.
        let pool = FramePool(slotCount: ring.capacity + config.writers + config.cameras.count + 1,
                             byteBudget: Int(clamping: MachineMemory.limitBytes() / 2))
        let counters = config.cameras.map { _ in CameraCounters() }
        let cleaner = LeftoverCleaner(out: config.outDirectory, currentSuffix: temporarySuffix, logger: logger,
                                      firstFrameStored: { counters.contains { $0.written.load(ordering: .relaxed) > 0 } })
        let framesReady = Doorbell()
        let spaceReady = Doorbell()
        let producersDone = OnceFlag()
        let ledger = StoreLedger(cameras: config.cameras.count, maxBytes: config.maxSizeBytes)
        let retention: RetentionThread? = config.keepFree == .off && config.maxSizeBytes == nil ? nil
            : RetentionThread(out: config.outDirectory, cameraNames: config.cameras.map(\.name),
                              keepFree: config.keepFree, ledger: ledger, logger: logger)

        let outPrefix = config.outDirectory.hasSuffix("/") ? config.outDirectory : config.outDirectory + "/"
        let writerCameras = config.cameras.enumerated().map { i, spec -> WriterCamera in
            WriterCamera(pool: pool, counters: counters[i],
                         sidecarHead: WriterCamera.sidecarHead(name: spec.name, source: spec.source.description),
                         folder: Array((outPrefix + spec.name + "/").utf8), name: spec.name)
        }
        let writerGPS = WriterGPS(maxAgeNs: UInt64(config.gpsMaxAgeSeconds * 1e9), source: GPSSourceJSON(config.gps.description))
        var writers: [FrameWriter] = []
        for i in 0..<config.writers {
            writers.append(try FrameWriter(index: i, cameras: writerCameras, ring: ring, framesReady: framesReady,
                                           spaceReady: spaceReady, producersDone: producersDone,
                                           quality: config.quality, fsync: config.fsync, gps: writerGPS,
                                           ledger: ledger, temporarySuffix: temporarySuffix, logger: logger))
        }
        // Each FFmpeg camera's share of the cores for its decoder (at least one thread).
        let decoding = config.cameras.filter { if case .stream = $0.source { return true }; if case .file = $0.source { return true }; return false }.count
        let decoderThreads = max(1, Int(rc_usable_cpus()) / max(1, decoding))
        let captures = config.cameras.enumerated().map { i, spec -> CaptureThread in
            var interval: UInt64 = 0
            var rate = config.fpsCap
            if case .testPattern(_, _, let fps) = spec.source { rate = min(rate ?? fps, fps) }
            if let rate { interval = UInt64((1e9 / rate).rounded()) }
            var settings = CaptureSettings(spec: spec, index: UInt32(i), size: config.size, minIntervalNs: interval,
                                           whenFull: config.whenFull(for: spec), frameLimit: config.framesPerCamera)
            settings.timeouts = config.captureTimeouts
            settings.rtspTransport = config.rtspTransport
            settings.decoderThreads = decoderThreads
            settings.passthrough = config.passesJPEGThrough
            return CaptureThread(settings: settings, counters: counters[i], pool: pool,
                                 allCounters: counters, ring: ring, framesReady: framesReady, spaceReady: spaceReady,
                                 gps: gps, logger: logger)
        }

        // FFmpeg's messages through each camera's logger, rate-limited (FFmpegLog).
        FFmpegLog.install(cameraLoggers: config.cameras.map { spec in
            var cameraLogger = logger
            cameraLogger[metadataKey: "camera"] = "\(spec.name)"
            return cameraLogger
        }, fallback: logger)
        logger.info("recording \(config.cameras.count) camera(s) into \(config.outDirectory) with \(config.writers) writer(s), ring \(ring.capacity)")
        writers.forEach { $0.start() }
        captures.forEach { $0.start() }
        retention?.start()
        cleaner.start()

        // Wait for the end: a signal, the duration, or every camera finished.
        let deadline = config.durationSeconds.map { start + UInt64($0 * 1e9) }
        var lastProgress = start
        var lastCaptured = counters.map { _ in 0 }
        var stopReason = "all cameras finished"
        while true {
            if terminationRequests.load(ordering: .relaxed) > 0 { stopReason = "signal"; break }
            let now = Clock.monotonicNs()
            if let deadline, now >= deadline { stopReason = "duration reached"; break }
            if counters.allSatisfy({ $0.finished.load(ordering: .relaxed) }) { break }
            if now - lastProgress >= 1_000_000_000 {
                let seconds = Double(now - lastProgress) / 1e9
                if config.progress, let onProgress {
                    onProgress(progressLine(counters: counters, last: lastCaptured, seconds: seconds, ringDepth: ring.count))
                }
                lastCaptured = counters.map { $0.captured.load(ordering: .relaxed) }
                lastProgress = now
                onTick?()
            }
            // Asleep until the next progress second or the deadline (at most a fifth of a second),
            // or until a camera finishes or a signal comes (both wake it: rc_recorder_wake). Every
            // wake-up costs CPU on an idle recorder: polling every 20 ms cost more than a camera
            // at 1 frame/s.
            var wake = min(lastProgress + 1_000_000_000, Clock.monotonicNs() + 200_000_000)
            if let deadline { wake = min(wake, deadline) }
            rc_recorder_sleep(wake)
        }
        logger.info("stopping: \(stopReason)")

        // Stop capture first, then let the writers drain what is in the ring.
        captures.forEach { $0.requestStop() }
        spaceReady.ringAll()
        let drainDeadline = Clock.monotonicNs() + drainTimeoutNs
        var stuckCameras: [String] = []
        for capture in captures {
            let left = drainDeadline > Clock.monotonicNs() ? drainDeadline - Clock.monotonicNs() : 0
            if !capture.join(timeoutNs: max(left, 100_000_000)) { stuckCameras.append(capture.settings.spec.name) }
        }
        if !stuckCameras.isEmpty {
            logger.warning("camera(s) \(stuckCameras.joined(separator: ", ")) still blocked in their source; not waiting for them")
        }
        producersDone.set()
        framesReady.ringAll()
        var drained = true
        for writer in writers {
            let left = drainDeadline > Clock.monotonicNs() ? drainDeadline - Clock.monotonicNs() : 0
            if !writer.join(timeoutNs: left) {
                drained = false
                writer.abandonDrain()
            }
        }
        if !drained {
            framesReady.ringAll()
            // Frames still in the ring after the deadline are accounted for as dropped.
            var abandoned = 0
            while let token = ring.pop() {
                counters[Int(token.camera)].dropped.add(1, ordering: .relaxed)
                pool.release(token.slot)
                abandoned += 1
            }
            for writer in writers where !writer.join(timeoutNs: 1_000_000_000) {
                // Claim the frame it holds, so that it is counted once: failed, by us.
                if writer.inFlight.compareExchange(expected: 1, desired: 2, ordering: .acquiring).exchanged {
                    counters[writer.inFlightCamera.load(ordering: .relaxed)].failed.add(1, ordering: .relaxed)
                }
            }
            logger.warning("drain deadline passed: \(abandoned) frame(s) left in the ring were not written")
        }
        cleaner.requestStop()
        if !cleaner.join(timeoutNs: 1_000_000_000) { logger.warning("the clean-up of earlier temporaries is still running; not waiting for it") }
        // Last: a final pass once nothing is being written, so --max-size holds exactly at the end.
        // Best effort: it must not hold up a stop that was asked for.
        if let retention {
            retention.requestStop()
            if !retention.join(timeoutNs: 2_000_000_000) {
                logger.warning("retention is still deleting after 2 s; not waiting for it")
            }
        }

        let elapsed = Double(Clock.monotonicNs() - start) / 1e9
        var cameraSummaries: [RecordingSummary.Camera] = []
        var allCameras = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        for (i, spec) in config.cameras.enumerated() {
            var merged = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
            for writer in writers { merged.add(writer.latencyUs[i]) }
            allCameras.add(merged)
            let c = counters[i]
            let announced = c.announcedFrames.load(ordering: .relaxed)
            func ms(_ us: UInt64) -> Double { (Double(us) / 1000 * 1000).rounded() / 1000 }
            cameraSummaries.append(.init(
                name: spec.name, source: spec.source.description,
                captured: c.captured.load(ordering: .relaxed), written: c.written.load(ordering: .relaxed),
                dropped: c.dropped.load(ordering: .relaxed), failed: c.failed.load(ordering: .relaxed),
                reconnects: c.reconnects.load(ordering: .relaxed),
                downSeconds: Double(c.downNs.load(ordering: .relaxed)) / 1e9,
                latencyMs: merged.totalCount == 0 ? nil : .init(
                    p50: ms(merged.valueAtPercentile(50)), p90: ms(merged.valueAtPercentile(90)),
                    p99: ms(merged.valueAtPercentile(99)), p999: ms(merged.valueAtPercentile(99.9)),
                    max: ms(merged.max)),
                announcedFrames: announced > 0 ? announced : nil,
                stuck: stuckCameras.contains(spec.name)))
        }
        var summary = RecordingSummary(elapsedSeconds: elapsed, ringCapacity: ring.capacity, writers: config.writers,
                                       stopReason: stopReason, cameras: cameraSummaries,
                                       pool: .init(slots: pool.slotCount, slotsUsed: pool.allocatedSlots,
                                                   residentMB: (Double(pool.allocatedBytes) / 1e6 * 10).rounded() / 10),
                                       retention: retention?.totals ?? RetentionTotals())
        summary.latencyUs = allCameras
        return summary
    }

    private func progressLine(counters: [CameraCounters], last: [Int], seconds: Double, ringDepth: Int) -> String {
        var parts: [String] = []
        for (i, spec) in config.cameras.enumerated() {
            let c = counters[i]
            let fps = Double(c.captured.load(ordering: .relaxed) - last[i]) / seconds
            let state = CameraState(rawValue: c.state.load(ordering: .relaxed)) ?? .connecting
            parts.append("\(spec.name) \(state) \(String(format: "%.1f", fps)) fps written \(c.written.load(ordering: .relaxed)) dropped \(c.dropped.load(ordering: .relaxed))")
        }
        return parts.joined(separator: " | ") + " | ring \(ringDepth)"
    }
}

/// What a recording did, per camera. `captured == written + dropped + failed` for each camera
/// once the recording has drained.
public struct RecordingSummary: Codable, Sendable {
    public struct Latency: Codable, Sendable {
        public var p50: Double, p90: Double, p99: Double, p999: Double, max: Double
    }

    public struct Camera: Codable, Sendable {
        public var name: String
        public var source: String
        public var captured: Int, written: Int, dropped: Int, failed: Int
        public var reconnects: Int
        public var downSeconds: Double
        public var latencyMs: Latency?
        /// For a file: the frames its container announces (a damaged or truncated file ends with
        /// fewer captured); nil for live sources or when unknown.
        public var announcedFrames: Int?
        /// The camera's thread was still blocked in its source when the recording ended.
        public var stuck: Bool

        enum CodingKeys: String, CodingKey {
            case name, source, captured, written, dropped, failed, reconnects
            case downSeconds = "down_s"
            case latencyMs = "latency_ms"
            case announcedFrames = "announced_frames"
            case stuck
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(source, forKey: .source)
            try c.encode(captured, forKey: .captured)
            try c.encode(written, forKey: .written)
            try c.encode(dropped, forKey: .dropped)
            try c.encode(failed, forKey: .failed)
            try c.encode(reconnects, forKey: .reconnects)
            try c.encode((downSeconds * 1000).rounded() / 1000, forKey: .downSeconds)
            try c.encode(latencyMs, forKey: .latencyMs)
            try c.encode(announcedFrames, forKey: .announcedFrames)  // null when unknown
            try c.encode(stuck, forKey: .stuck)
        }
    }

    public var elapsedSeconds: Double
    public var ringCapacity: Int
    public var writers: Int
    public var stopReason: String
    public var cameras: [Camera]

    /// The frame pool all cameras share: its slots, how many ever held a frame, and the bytes of
    /// pixel buffers they hold (what the pool made resident).
    public struct Pool: Codable, Sendable {
        public var slots: Int
        public var slotsUsed: Int
        public var residentMB: Double
        enum CodingKeys: String, CodingKey {
            case slots
            case slotsUsed = "slots_used"
            case residentMB = "resident_mb"
        }
    }
    public var pool: Pool
    /// What `--keep-free` and `--max-size` deleted (zeros when nothing was).
    public var retention = RetentionTotals()
    /// GPS time minus the system clock, ms, when fixes carried time (`GPSReader.clockOffsetMs`);
    /// set by the command after the recording. Encoded as null when unknown.
    public var clockOffsetMs: Double?
    /// Grab-to-rename latency of every camera's frames in one histogram, µs (`ringcap bench`
    /// reports its percentiles). Not part of the JSON summary.
    public var latencyUs: Histogram<UInt64>? = nil

    enum CodingKeys: String, CodingKey {
        case clockOffsetMs = "clock_offset_ms"
        case elapsedSeconds = "elapsed_s"
        case ringCapacity = "ring_capacity"
        case writers
        case stopReason = "stop_reason"
        case cameras
        case pool
        case retention
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(elapsedSeconds, forKey: .elapsedSeconds)
        try c.encode(ringCapacity, forKey: .ringCapacity)
        try c.encode(writers, forKey: .writers)
        try c.encode(stopReason, forKey: .stopReason)
        try c.encode(cameras, forKey: .cameras)
        try c.encode(pool, forKey: .pool)
        try c.encode(retention, forKey: .retention)
        try c.encode(clockOffsetMs.map { ($0 * 10).rounded() / 10 }, forKey: .clockOffsetMs)  // null when unknown
    }

    public var totalWritten: Int { cameras.reduce(0) { $0 + $1.written } }
    public var totalCaptured: Int { cameras.reduce(0) { $0 + $1.captured } }

    /// Writes the JSON summary to `path` (replacing it: it is the user's own file). Returns nil,
    /// or what failed in ringcap's words with the system's reason.
    public func writeJSON(to path: String) -> String? {
        guard let data = try? jsonData() else { return "the summary could not be encoded" }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return "cannot create it (\(String(cString: strerror(errno))))" }
        var failure: String?
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { failure = "cannot write it (\(String(cString: strerror(errno))))"; return }
                offset += n
            }
        }
        if close(fd) != 0 && failure == nil { failure = "cannot write it (\(String(cString: strerror(errno))))" }
        return failure
    }

    /// Some camera's thread is still inside a blocking source call: the process must leave
    /// without running exit handlers under it.
    public var anyCameraStuck: Bool { cameras.contains { $0.stuck } }

    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// The table printed at the end of a recording.
    public var table: String {
        var rows = [["camera", "source", "captured", "written", "dropped", "failed", "reconnects", "fps written",
                     "p50 ms", "p99 ms", "max ms"]]
        for c in cameras {
            rows.append([c.name, c.source, "\(c.captured)", "\(c.written)", "\(c.dropped)", "\(c.failed)",
                         "\(c.reconnects)", String(format: "%.1f", Double(c.written) / max(elapsedSeconds, 1e-9)),
                         c.latencyMs.map { String(format: "%.1f", $0.p50) } ?? "-",
                         c.latencyMs.map { String(format: "%.1f", $0.p99) } ?? "-",
                         c.latencyMs.map { String(format: "%.1f", $0.max) } ?? "-"])
        }
        let widths = rows[0].indices.map { col in rows.map { $0[col].count }.max() ?? 0 }
        var text = ""
        for (r, row) in rows.enumerated() {
            let cells = row.enumerated().map { col, cell in
                col < 2 ? cell.padding(toLength: widths[col], withPad: " ", startingAt: 0)
                        : String(repeating: " ", count: widths[col] - cell.count) + cell
            }
            text += cells.joined(separator: "  ") + "\n"
            if r == 0 { text += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n" }
        }
        text += String(format: "%.2f s, %d writer(s), ring %d, ", elapsedSeconds, writers, ringCapacity) + "stopped: \(stopReason)\n"
        if retention.deletedFiles > 0 {
            text += "retention deleted \(retention.deletedFiles) file(s), \(ByteSize.format(retention.deletedBytes)), "
                + "\(retention.deletedFolders) minute folder(s) whole\n"
        }
        return text
    }
}
