import COpenCV
import Foundation
import Histogram
import Logging
import RingBuffer
import Synchronization

/// The recorder as a long-lived object: cameras → ring → writers → disk, with seams for others
/// to watch and steer it (`status()`, `camera(named:)` with its taps, `frameEvents`).
///
/// Lifecycle as NIOThreadPool's: one state, changed under one lock (`state`). `start()` builds the
/// pipeline and starts its threads and a supervisor thread (`rc-engine`) that ends the run (the
/// duration, the frame limits, every file's end, or `requestStop()`), drains the ring and makes
/// the summary; `waitUntilStopped()` returns it. An engine that stopped may be started again: a
/// new run, into the same folders, seq continuing. The engine knows nothing of signals: whoever
/// owns the process (the CLI) calls `requestStop()`.
///
/// Thread-safe: every public member may be called from any thread.
public final class RecordingEngine: @unchecked Sendable {
    public let config: RecordConfig
    private let logger: Logger
    private let gps: GPSSnapshot?
    /// Per camera, for the engine's life (controls and taps outlive runs).
    private let channels: [CameraChannel]
    /// "Frame stored" and "files deleted" events, for an indexer: subscribe before `start()`.
    public let frameEvents: FrameEvents

    private enum State {
        case idle
        /// `start()` is building the pipeline (outside the lock: it reads the disk).
        case starting
        case running(Run)
        case stopping(Run)
        case stopped(Run)
    }

    /// Protects `state`.
    private let lock = Mutex<State>(.idle)
    /// Called about once a second on the supervisor thread while recording (`ringcap bench`
    /// samples resident memory with it). Keep it short. Set before `start()`.
    public var onTick: (() -> Void)?

    public init(config: RecordConfig, gps: GPSSnapshot? = nil, logger: Logger) {
        self.config = config
        self.gps = gps
        self.logger = logger
        channels = config.cameras.enumerated().map { i, spec in
            CameraChannel(index: i, name: spec.name, recording: spec.recording)
        }
        frameEvents = FrameEvents(cameraNames: config.cameras.map(\.name))
    }

    /// The camera of that name (exactly as configured), or nil.
    public func camera(named name: String) -> CameraControl? {
        channels.first { $0.name == name }.map { CameraControl(channel: $0) }
    }

    public var cameraNames: [String] { channels.map(\.name) }

    /// Builds the pipeline and starts recording. Throws when nothing could start (the ring does
    /// not fit in memory, a writer could not be made) or when the engine is running already.
    public func start() throws(CaptureError) {
        try lock.withLock { state throws(CaptureError) in
            switch state {
            case .running, .stopping, .starting: throw CaptureError(source: "engine", reason: "already running")
            case .idle: break
            case .stopped(let previous):
                // The new run shares the cameras' counters and taps: no thread of the last one
                // may still be about to touch them.
                if let blocked = previous.threadsStillRunning() {
                    throw CaptureError(source: "engine", reason: "\(blocked) of the previous run is still blocked; try again once it has ended")
                }
            }
            state = .starting
        }
        let run: Run
        do {
            run = try Run(engine: self)
        } catch {
            lock.withLock { $0 = .idle }
            throw error
        }
        lock.withLock { $0 = .running(run) }
        run.startThreads()
        startWorkerThread("rc-engine", done: run.supervisorDone) { [self] in
            let summary = run.superviseAndStop()
            run.summary.withLock { $0 = summary }
            lock.withLock { $0 = .stopped(run) }
            run.completed.signal()
        }
    }

    /// Asks the running recording to stop: capture stops, the writers drain the ring (up to
    /// `--drain-timeout`), the summary is made. Returns at once; `waitUntilStopped()` waits.
    public func requestStop(reason: String = "stop requested") {
        lock.withLock { state in
            if case .running(let run) = state {
                state = .stopping(run)
                run.requestStop(reason: reason)
            }
        }
    }

    /// Waits for the current run (the last one, if none is running) to end, of itself or after
    /// `requestStop`, and returns its summary; nil when the engine was never started. Any number
    /// of threads may wait: each gets the summary of the run that was current when it asked.
    @discardableResult
    public func waitUntilStopped() -> RecordingSummary? {
        let run: Run? = lock.withLock { state in
            switch state {
            case .idle, .starting: return nil
            case .running(let run), .stopping(let run), .stopped(let run): return run
            }
        }
        guard let run else { return nil }
        run.completed.wait()
        run.completed.signal()  // for the next waiter: the run's own bell, rung once for good
        return run.summary.withLock { $0 }
    }

    /// What every camera is doing now.
    public func status() -> EngineStatus {
        let (stateName, run): (EngineStatus.State, Run?) = lock.withLock { state in
            switch state {
            case .idle, .starting: return (.idle, nil)
            case .running(let run): return (.running, run)
            case .stopping(let run): return (.stopping, run)
            case .stopped(let run): return (.stopped, run)
            }
        }
        let fps = run?.recentFPS.withLock { $0 } ?? []
        let cameras = channels.map { channel -> EngineStatus.Camera in
            let c = channel.counters
            let latencies = c.recentLatencies().sorted()
            func ms(_ p: Double) -> Double {
                let i = min(latencies.count - 1, Int((p / 100 * Double(latencies.count)).rounded(.up)) - 1)
                return Double(latencies[max(0, i)]) / 1000
            }
            let last = c.lastFrameWallNs.load(ordering: .relaxed)
            return EngineStatus.Camera(
                name: channel.name, source: config.cameras[channel.index].source.redactedDescription,
                state: (CameraState(rawValue: c.state.load(ordering: .relaxed)) ?? .connecting).description,
                recording: channel.recording.load(ordering: .relaxed),
                captured: c.captured.load(ordering: .relaxed), written: c.written.load(ordering: .relaxed),
                dropped: c.dropped.load(ordering: .relaxed), failed: c.failed.load(ordering: .relaxed),
                paused: c.paused.load(ordering: .relaxed), reconnects: c.reconnects.load(ordering: .relaxed),
                width: c.width.load(ordering: .relaxed), height: c.height.load(ordering: .relaxed),
                fps: channel.index < fps.count ? fps[channel.index] : 0,
                latencyMs: latencies.isEmpty ? nil : .init(p50: ms(50), p90: ms(90), p99: ms(99)),
                lastFrameWallNs: last == 0 ? nil : last)
        }
        var gpsStatus: EngineStatus.GPS?
        if let gps {
            if let fix = gps.read() {
                gpsStatus = .init(mode: fix.mode, latitude: fix.latitude, longitude: fix.longitude,
                                  ageSeconds: Double(Clock.monotonicNs() &- fix.receivedMonotonicNs) / 1e9)
            } else {
                gpsStatus = .init(mode: 0)
            }
        }
        return EngineStatus(state: stateName, runStartWallNs: run?.startWallNs,
                            ringDepth: run?.ring.count ?? 0, ringCapacity: run?.ring.capacity ?? 0,
                            cameras: cameras, gps: gpsStatus, retention: run?.retention?.totals ?? RetentionTotals())
    }

    /// One run: everything `start()` builds, owned by the supervisor thread once started.
    private final class Run: @unchecked Sendable {
        unowned let engine: RecordingEngine
        let config: RecordConfig
        let logger: Logger
        let startNs = Clock.monotonicNs()
        let startWallNs = Clock.wallNs()
        let ring: DropOldestRing<FrameToken>
        let pool: FramePool
        let writers: [FrameWriter]
        let captures: [CaptureThread]
        let cleaner: LeftoverCleaner
        let retention: RetentionThread?
        let producersDone = OnceFlag()
        let framesReady = Doorbell()
        let spaceReady = Doorbell()
        /// Rung by `requestStop` and by a camera that finished: the supervisor looks again.
        let wake = MonotonicSemaphore()
        let supervisorDone = MonotonicSemaphore()
        /// Rung (and rung again by each waiter) once `summary` is set.
        let completed = MonotonicSemaphore()
        let summary = Mutex<RecordingSummary?>(nil)
        /// Threads that had not ended when the run was summed up (a camera blocked in its source,
        /// a writer past the drain deadline). Touched by the supervisor, then under the engine's
        /// lock by `start`.
        private var unjoinedCaptures: [CaptureThread] = []
        private var unjoinedWriters: [FrameWriter] = []
        let stopReason = Mutex<String?>(nil)
        /// Captured frames/s per camera over the last second (for `status()`).
        let recentFPS: Mutex<[Double]>

        init(engine: RecordingEngine) throws(CaptureError) {
            self.engine = engine
            let config = engine.config
            let logger = engine.logger
            self.config = config
            self.logger = logger
            let startWallNs = self.startWallNs
            let channels = engine.channels
            for channel in channels { channel.counters.reset() }
            recentFPS = Mutex(Array(repeating: 0, count: channels.count))
            // This run's temporaries carry a token of their own, so that the clean-up of what
            // earlier runs left can go on beside the writers (in the background: a year of frames
            // takes minutes to walk, and nothing about it needs to precede the first frame).
            let temporarySuffix = RecordingLayout.temporarySuffix(runToken: UInt32.random(in: 0...UInt32.max))
            let plan: RingPlan
            do { plan = try config.ringPlan() } catch {
                throw CaptureError(source: "--ring", reason: error.description)
            }
            if let note = plan.note { logger.notice("\(note)") }
            let ring = DropOldestRing<FrameToken>(capacity: plan.capacity)
            self.ring = ring
            let framesReady = self.framesReady, spaceReady = self.spaceReady, producersDone = self.producersDone
            // One pool for every camera, with enough slots for a full ring, one in each writer's
            // hands and one in each capture thread's, plus one spare: a capture thread never waits
            // for a free slot. Shared, so that memory is bounded by the ring and not by the ring
            // times the cameras. At most half of the memory, whatever the frames turn out to be
            // (a stream's size is known only at its first frame): past that a frame is failed.
            let pool = FramePool(slotCount: ring.capacity + config.writers + config.cameras.count + 1,
                                 byteBudget: Int(clamping: MachineMemory.limitBytes() / 2))
            self.pool = pool
            let counters = channels.map(\.counters)
            cleaner = LeftoverCleaner(out: config.outDirectory, currentSuffix: temporarySuffix, logger: logger,
                                      firstFrameStored: { counters.contains { $0.written.load(ordering: .relaxed) > 0 } })
            let ledger = StoreLedger(cameras: config.cameras.count, maxBytes: config.maxSizeBytes)
            retention = config.keepFree == .off && config.maxSizeBytes == nil ? nil
                : RetentionThread(out: config.outDirectory, cameraNames: config.cameras.map(\.name),
                                  keepFree: config.keepFree, ledger: ledger, events: engine.frameEvents, logger: logger)

            let runField = Self.isoTime(startWallNs)
            let outPrefix = config.outDirectory.hasSuffix("/") ? config.outDirectory : config.outDirectory + "/"
            let writerCameras = config.cameras.enumerated().map { i, spec -> WriterCamera in
                WriterCamera(pool: pool, channel: channels[i], quality: config.quality(for: spec),
                             sidecarHead: WriterCamera.sidecarHead(name: spec.name, source: spec.source.description, run: runField),
                             folder: Array((outPrefix + spec.name + "/").utf8), name: spec.name)
            }
            let writerGPS = WriterGPS(maxAgeNs: UInt64(config.gpsMaxAgeSeconds * 1e9), source: GPSSourceJSON(config.gps.description))
            var writers: [FrameWriter] = []
            for i in 0..<config.writers {
                writers.append(try FrameWriter(index: i, cameras: writerCameras, ring: ring, framesReady: framesReady,
                                               spaceReady: spaceReady, producersDone: producersDone,
                                               fsync: config.fsync, gps: writerGPS, ledger: ledger,
                                               events: engine.frameEvents, temporarySuffix: temporarySuffix, logger: logger))
            }
            self.writers = writers
            // Each FFmpeg camera's share of the cores for its decoder (at least one thread).
            let decoding = config.cameras.filter { $0.source.decodesThroughFFmpeg }.count
            let decoderThreads = max(1, Int(rc_usable_cpus()) / max(1, decoding))
            let wake = self.wake
            captures = config.cameras.enumerated().map { i, spec -> CaptureThread in
                var interval: UInt64 = 0
                var rate = config.fps(for: spec)
                if case .testPattern(_, _, let fps) = spec.source { rate = min(rate ?? fps, fps) }
                if let rate { interval = UInt64((1e9 / rate).rounded()) }
                // seq never repeats in a camera's folder: on from the highest stored.
                // (or from where this engine's last run got to, if that is higher: frames paused or
                // lost there were seen by viewers with their seqs; or from the mark the last stop
                // left, should the newest minute folders not say: a clock that went back).
                let stored = RecordingLayout.highestStoredSeq(out: config.outDirectory, camera: spec.name).map { $0 &+ 1 } ?? 0
                let firstSeq = max(stored, channels[i].nextSeq.load(ordering: .relaxed),
                                   RecordingLayout.readSeqMark(out: config.outDirectory, camera: spec.name) ?? 0)
                var settings = CaptureSettings(spec: spec, index: UInt32(i), size: config.size(for: spec), minIntervalNs: interval,
                                               whenFull: config.whenFull(for: spec), frameLimit: config.framesPerCamera)
                settings.firstSeq = firstSeq
                settings.timeouts = config.captureTimeouts
                settings.rtspTransport = config.rtspTransport
                settings.decoderThreads = decoderThreads
                settings.passthrough = config.passesJPEGThrough(spec)
                return CaptureThread(settings: settings, channel: channels[i], pool: pool,
                                     allCounters: counters, ring: ring, framesReady: framesReady, spaceReady: spaceReady,
                                     gps: engine.gps, finished: wake, logger: logger)
            }
        }

        func startThreads() {
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
        }

        /// A description of a thread of this run that has not ended yet, or nil when all have.
        func threadsStillRunning() -> String? {
            unjoinedCaptures.removeAll { $0.join(timeoutNs: 0) }
            unjoinedWriters.removeAll { $0.join(timeoutNs: 0) }
            if let capture = unjoinedCaptures.first { return "camera \(capture.settings.spec.name)" }
            if let writer = unjoinedWriters.first { return "writer \(writer.index)" }
            return nil
        }

        func requestStop(reason: String) {
            stopReason.withLock { if $0 == nil { $0 = reason } }
            wake.signal()
        }

        /// The supervisor: waits for the end, then stops capture, drains, and sums up.
        func superviseAndStop() -> RecordingSummary {
            let counters = engine.channels.map(\.counters)
            let deadline = config.durationSeconds.map { startNs + UInt64($0 * 1e9) }
            var lastProgress = startNs
            var lastCaptured = counters.map { _ in 0 }
            var reason = "all cameras finished"
            while true {
                if let asked = stopReason.withLock({ $0 }) { reason = asked; break }
                let now = Clock.monotonicNs()
                if let deadline, now >= deadline { reason = "duration reached"; break }
                if counters.allSatisfy({ $0.finished.load(ordering: .relaxed) }) { break }
                if now - lastProgress >= 1_000_000_000 {
                    let seconds = Double(now - lastProgress) / 1e9
                    let captured = counters.map { $0.captured.load(ordering: .relaxed) }
                    let fps = zip(captured, lastCaptured).map { Double($0 - $1) / seconds }
                    recentFPS.withLock { $0 = fps }
                    lastCaptured = captured
                    lastProgress = now
                    engine.onTick?()
                }
                // Asleep until the next progress second or the deadline (at most a fifth of a
                // second), or until a camera finishes or a stop is asked (both ring `wake`). Every
                // wake-up costs CPU on an idle recorder: polling every 20 ms cost more than a
                // camera at 1 frame/s.
                var wakeAt = min(lastProgress + 1_000_000_000, Clock.monotonicNs() + 200_000_000)
                if let deadline { wakeAt = min(wakeAt, deadline) }
                let now2 = Clock.monotonicNs()
                if wakeAt > now2 { wake.wait(timeoutNs: wakeAt - now2) }
            }
            logger.info("stopping: \(reason)")
            return stopAndSum(reason: reason, counters: counters)
        }

        private func stopAndSum(reason: String, counters: [CameraCounters]) -> RecordingSummary {
            // Stop capture first, then let the writers drain what is in the ring.
            captures.forEach { $0.requestStop() }
            spaceReady.ringAll()
            let drainDeadline = Clock.monotonicNs() + UInt64(config.drainTimeoutSeconds * 1e9)
            func left() -> UInt64 { drainDeadline > Clock.monotonicNs() ? drainDeadline - Clock.monotonicNs() : 0 }
            var stuckCameras: [String] = []
            for capture in captures where !capture.join(timeoutNs: max(left(), 100_000_000)) {
                stuckCameras.append(capture.settings.spec.name)
                unjoinedCaptures.append(capture)
            }
            if !stuckCameras.isEmpty {
                logger.warning("camera(s) \(stuckCameras.joined(separator: ", ")) still blocked in their source; not waiting for them")
            }
            producersDone.set()
            framesReady.ringAll()
            var late: [FrameWriter] = []
            for writer in writers where !writer.join(timeoutNs: left()) {
                late.append(writer)
                writer.abandonDrain()
            }
            if !late.isEmpty {
                framesReady.ringAll()
                // Frames still in the ring after the deadline are accounted for as dropped.
                var abandoned = 0
                while let token = ring.pop() {
                    counters[Int(token.camera)].dropped.add(1, ordering: .relaxed)
                    pool.release(token.slot)
                    abandoned += 1
                }
                for writer in late where !writer.join(timeoutNs: 1_000_000_000) {
                    unjoinedWriters.append(writer)
                    // Claim the frame it holds, so that it is counted once: failed, by us.
                    if writer.inFlight.compareExchange(expected: 1, desired: 2, ordering: .acquiring).exchanged {
                        counters[writer.inFlightCamera.load(ordering: .relaxed)].failed.add(1, ordering: .relaxed)
                    }
                }
                logger.warning("drain deadline passed: \(abandoned) frame(s) left in the ring were not written")
            }
            cleaner.requestStop()
            if !cleaner.join(timeoutNs: 1_000_000_000) { logger.warning("the clean-up of earlier temporaries is still running; not waiting for it") }
            // Last: a final pass once nothing is being written, so --max-size holds exactly at the
            // end. Best effort: it must not hold up a stop that was asked for.
            if let retention {
                retention.requestStop()
                if !retention.join(timeoutNs: 2_000_000_000) {
                    logger.warning("retention is still deleting after 2 s; not waiting for it")
                }
            }
            for channel in engine.channels {
                RecordingLayout.writeSeqMark(channel.nextSeq.load(ordering: .relaxed), out: config.outDirectory, camera: channel.name)
            }
            return summary(reason: reason, counters: counters, stuck: stuckCameras, retention: retention?.totals ?? RetentionTotals())
        }

        private func summary(reason: String, counters: [CameraCounters], stuck: [String], retention: RetentionTotals) -> RecordingSummary {
            let elapsed = Double(Clock.monotonicNs() - startNs) / 1e9
            var cameraSummaries: [RecordingSummary.Camera] = []
            var allCameras = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
            for (i, spec) in config.cameras.enumerated() {
                var merged = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
                for writer in writers { merged.add(writer.latencyUs[i]) }
                allCameras.add(merged)
                let c = counters[i]
                let announced = c.announcedFrames.load(ordering: .relaxed)
                func ms(_ us: UInt64) -> Double { (Double(us) / 1000 * 1000).rounded() / 1000 }
                var camera = RecordingSummary.Camera(
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
                    stuck: stuck.contains(spec.name))
                camera.paused = c.paused.load(ordering: .relaxed)
                cameraSummaries.append(camera)
            }
            var summary = RecordingSummary(elapsedSeconds: elapsed, ringCapacity: ring.capacity, writers: config.writers,
                                           stopReason: reason, cameras: cameraSummaries,
                                           pool: .init(slots: pool.slotCount, slotsUsed: pool.allocatedSlots,
                                                       residentMB: (Double(pool.allocatedBytes) / 1e6 * 10).rounded() / 10),
                                           retention: retention)
            summary.latencyUs = allCameras
            return summary
        }

        static func isoTime(_ ns: Int64) -> String {
            var sink = ByteSink(capacity: 40)
            sink.append(isoTimeNs: ns)
            return String(decoding: UnsafeBufferPointer(start: sink.base, count: sink.count), as: UTF8.self)
        }
    }
}
