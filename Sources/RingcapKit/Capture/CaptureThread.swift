import COpenCV
import Dispatch
import Logging
import RingBuffer
import Synchronization

/// One camera's capture loop: grab → stamp → read the GPS snapshot → retrieve into a pooled
/// buffer → push the slot's token into the ring. It never waits on a writer, the disk or GPS
/// (except with `--when-full wait`, which files use). When its source fails it reopens it with
/// backoff; a file that ends finishes the camera.
///
/// Runs on its own thread, `rc-cap-<name>`. All mutable state is owned by that thread;
/// `requestStop` and the counters are the only things other threads touch.
public final class CaptureThread: @unchecked Sendable {
    public let settings: CaptureSettings
    /// Counters, recording on/off and taps, shared with the writers and the engine.
    let channel: CameraChannel
    public var counters: CameraCounters { channel.counters }
    let pool: FramePool
    let allCounters: [CameraCounters]
    let ring: DropOldestRing<FrameToken>
    private let framesReady: Doorbell     // rung after each push: writers sleep on it
    private let spaceReady: Doorbell      // writers ring it after each pop: `wait` mode sleeps on it
    private let gps: GPSSnapshot?
    /// Rung when the camera finished: the engine's supervisor looks at once.
    private let finished: MonotonicSemaphore?
    let logger: Logger
    private let stopRequested = Atomic<Bool>(false)
    private let wake = MonotonicSemaphore()  // interrupts backoff sleeps on stop
    private let done = MonotonicSemaphore()

    /// The open FFmpeg source, for `requestStop` to interrupt a blocking read. Set and cleared by
    /// the capture thread around the source's life; the lock keeps the handle alive while another
    /// thread interrupts it. Taken at open, close and stop only, never per frame.
    private let interruptible = Mutex<AVSource?>(nil)

    // Owned by the capture thread (internal, not private, for the retrieve in CaptureFill.swift;
    // nothing else touches them).
    var seq: UInt64 = 0
    /// A V4L2 webcam, through OpenCV.
    var capture: OpenCVCapture?
    /// A stream or a file, through FFmpeg directly.
    var av: AVSource?
    /// The size of the previous frame, to log a change once.
    var lastSize = (width: 0, height: 0)
    /// When a frame that could not be stored as itself was last logged (rate limit).
    var lastFrameFailureLogNs: UInt64 = 0
    var pattern: TestPattern?
    private var nextDueNs: UInt64 = 0
    private var downSinceNs: UInt64 = 0
    /// No frame for this long (since the open, or the last frame) and a live source is reopened.
    private var stallNs: UInt64 = 0
    private var lastFrameNs: UInt64 = 0

    init(settings: CaptureSettings, channel: CameraChannel, pool: FramePool,
         allCounters: [CameraCounters], ring: DropOldestRing<FrameToken>, framesReady: Doorbell,
         spaceReady: Doorbell, gps: GPSSnapshot?, finished: MonotonicSemaphore? = nil, logger: Logger) {
        self.settings = settings
        self.channel = channel
        self.finished = finished
        seq = settings.firstSeq
        self.pool = pool
        self.allCounters = allCounters
        self.ring = ring
        self.framesReady = framesReady
        self.spaceReady = spaceReady
        self.gps = gps
        var logger = logger
        logger[metadataKey: "camera"] = "\(settings.spec.name)"
        self.logger = logger
    }

    /// Starts the loop on a thread of its own, `rc-cap-<name>` (not a Dispatch queue: an idle
    /// Dispatch worker waits on the wall clock, and FFmpeg's decoders want more than a worker's
    /// stack).
    public func start() {
        startWorkerThread("rc-cap-\(settings.spec.name)", stackSize: 8 << 20, done: done) { [self] in run() }
    }

    /// Asks the loop to stop after the frame in hand. Never blocks.
    public func requestStop() {
        stopRequested.store(true, ordering: .relaxed)
        wake.signal()
        interruptible.withLock { $0?.interrupt() }
    }

    /// Waits up to `timeoutNs` for the loop to end; false if it is still stuck (in a blocking
    /// OpenCV call, say).
    public func join(timeoutNs: UInt64) -> Bool {
        done.wait(timeoutNs: timeoutNs)
    }

    private var stopping: Bool { stopRequested.load(ordering: .relaxed) }

    /// Frames captured in this run (seq goes on from earlier runs).
    private var framesThisRun: UInt64 { seq &- settings.firstSeq }

    private func setState(_ state: CameraState) { counters.state.store(state.rawValue, ordering: .relaxed) }

    var isFile: Bool { if case .file = settings.spec.source { return true }; return false }

    /// Open, stream, and on failure release the capture and open a new one after a backoff
    /// (0.5 s doubling to 30 s, ±20 % jitter, back to 0.5 s after a minute of good frames).
    /// A file that fails or ends is finished: reopening it would record its frames again.
    func run() {  // internal: the benchmarks' probes (Bench/PipelineProbes.swift) run it on their own thread
        rc_opencv_set_thread_tag(Int32(settings.index))  // OpenCV's messages from this thread are this camera's
        var backoffNs = settings.backoffStartNs
        var everOpened = false
        var failures = 0      // consecutive failed opens, for quieter logs
        while !stopping {
            setState(.connecting)
            do {
                try open()
            } catch {
                if stopping { break }  // the stop interrupted the open: not the camera's failure
                if !everOpened && isFile && !error.tooManyOpenFiles {
                    // A file that cannot be opened will not open later either.
                    logger.error("\(error); giving up on this camera")
                    break
                }
                failures += 1
                // Every failure is logged the first times, then once in ten: a camera that stays
                // away for a day must not fill the log.
                if failures <= 3 || failures % 10 == 0 {
                    logger.warning("\(error); retrying in \(backoffNs / 1_000_000) ms (attempt \(failures))")
                }
                if downSinceNs == 0 { downSinceNs = Clock.monotonicNs() }
                setState(.backoff)
                sleepInterruptibly(ns: jittered(backoffNs))
                backoffNs = min(backoffNs * 2, settings.backoffMaxNs)
                continue
            }
            if downSinceNs != 0 {
                let down = Clock.monotonicNs() - downSinceNs
                counters.downNs.add(down, ordering: .relaxed)
                downSinceNs = 0
                counters.reconnects.add(1, ordering: .relaxed)
                logger.notice("camera back after \(String(format: "%.1f", Double(down) / 1e9)) s (reconnect \(counters.reconnects.load(ordering: .relaxed)))")
            }
            failures = 0
            everOpened = true
            let openedNs = Clock.monotonicNs()
            setState(.streaming)
            var outcome = stream()
            capture = nil  // a failed capture is never reused
            closeAV()
            // The stop interrupts a read in progress, which then fails: that is the stop, not the
            // camera failing (nor a file that ended early).
            if case .failed = outcome, stopping { outcome = .stopped }
            switch outcome {
            case .stopped:
                break
            case .failed(let reason) where isFile:
                logger.error("the file failed after \(framesThisRun) frames: \(reason); recorded what decoded")
                fallthrough
            case .finished:
                reportEndOfFile()
                counters.finished.store(true, ordering: .relaxed)
                setState(.finished)
                finished?.signal()  // the recording may be over: no need to wait for the next tick
                return
            case .failed(let reason):
                logger.warning("camera failed: \(reason); reconnecting")
                downSinceNs = Clock.monotonicNs()
                // A minute of good frames resets the backoff.
                if downSinceNs - openedNs > 60_000_000_000 { backoffNs = settings.backoffStartNs }
                setState(.backoff)
                sleepInterruptibly(ns: jittered(backoffNs))
                backoffNs = min(backoffNs * 2, settings.backoffMaxNs)
            }
        }
        if downSinceNs != 0 { counters.downNs.add(Clock.monotonicNs() - downSinceNs, ordering: .relaxed) }
        if !everOpened || counters.finished.load(ordering: .relaxed) {
            counters.finished.store(true, ordering: .relaxed)
            finished?.signal()
        }
        setState(.stopped)
    }

    /// A file that ended before the frames its container announced is damaged or truncated:
    /// say how much of it was recorded, so that it does not pass for a complete one.
    private func reportEndOfFile() {
        guard isFile else { return }
        let announced = counters.announcedFrames.load(ordering: .relaxed)
        let frames = framesThisRun
        let limitReached = settings.frameLimit.map { frames >= UInt64($0) } ?? false
        if announced > 0 && frames < UInt64(announced) && !limitReached {
            logger.warning("the file ended after \(frames) of the \(announced) frames it announces: the rest did not decode (damaged or truncated)")
        } else {
            logger.info("the file ended after \(frames) frames")
        }
    }

    /// Why a source did not open. `tooManyOpenFiles`: the process ran out of descriptors, which
    /// passes; even a file is retried then.
    struct OpenError: Error, CustomStringConvertible {
        var description: String
        var tooManyOpenFiles = false
    }

    private func open() throws(OpenError) {
        switch settings.spec.source {
        case .testPattern(let w, let h, _):
            let size = settings.size ?? FrameSize(width: w, height: h)
            do { pattern = try TestPattern(width: size.width, height: size.height) } catch {
                throw OpenError(description: error.description)
            }
        case .stream(let url), .file(let url):
            let opened: AVSource
            do {
                opened = try AVSource(live: !isFile, size: settings.size, timeouts: settings.timeouts,
                                      rtspTransport: settings.rtspTransport, tag: Int32(settings.index),
                                      decoderThreads: settings.decoderThreads, passthrough: settings.passthrough)
                // Within reach of requestStop before the open blocks: a stop must not wait for a
                // hung camera's open timeout. (A stop that came before finds `stopping` set.)
                interruptible.withLock { $0 = opened }
                if stopping { opened.interrupt() }
                try opened.open(url: url)
            } catch {
                closeAV()
                throw OpenError(description: "camera source '\(settings.spec.source)': \(error.reason)",
                                tooManyOpenFiles: error.tooManyOpenFiles)
            }
            if isFile { counters.announcedFrames.store(opened.announcedFrameCount, ordering: .relaxed) }
            setStallLimit(sourceFPS: opened.sourceFPS)
            av = opened
        case .device:
            let fps = settings.minIntervalNs > 0 ? 1e9 / Double(settings.minIntervalNs) : nil
            let opened: OpenCVCapture
            do {
                guard case .device(let index) = settings.spec.source else { preconditionFailure("a device") }
                opened = try OpenCVCapture(device: index, size: settings.size, fps: fps)
            } catch {
                throw OpenError(description: error.description)
            }
            setStallLimit(sourceFPS: opened.sourceFPS)
            capture = opened
        }
        nextDueNs = 0
        lastFrameNs = Clock.monotonicNs()
    }

    /// A stream that stays connected but stops delivering frames is as dead as one that drops:
    /// no frame for longer than the read timeout or ten frame intervals, whichever is longer, and
    /// it is reopened.
    private func setStallLimit(sourceFPS: Double) {
        // A rate below 0.001 frames/s (a file may announce anything) counts as unknown.
        let intervalNs = settings.minIntervalNs > 0 ? settings.minIntervalNs
            : (sourceFPS >= 0.001 && sourceFPS.isFinite ? UInt64(1e9 / sourceFPS) : 0)
        let (tenIntervals, overflow) = intervalNs.multipliedReportingOverflow(by: 10)
        stallNs = max(UInt64(settings.timeouts.readMs) * 1_000_000, overflow ? UInt64.max / 2 : tenIntervals)
    }

    /// Releases the FFmpeg source (after taking it out of `requestStop`'s reach).
    private func closeAV() {
        // Taken out under the lock, released after it: destroying a live source may take up to
        // half a second (RTSP's TEARDOWN), and requestStop must not wait on the lock for that.
        let source = interruptible.withLock { held -> AVSource? in
            let taken = held
            held = nil
            return taken
        }
        av = nil
        withExtendedLifetime(source) {}
    }

    enum StreamOutcome { case stopped, finished, failed(String) }

    /// The hot loop. Allocates nothing per frame.
    private func stream() -> StreamOutcome {
        defer { channel.nextSeq.store(seq, ordering: .relaxed) }
        let isFile = self.isFile
        while !stopping {
            channel.nextSeq.store(seq, ordering: .relaxed)  // where a later run goes on from
            if let limit = settings.frameLimit, framesThisRun >= UInt64(limit) { return .finished }
            // Pace: test patterns at their rate, other sources at the --fps cap.
            if settings.minIntervalNs > 0 {
                let now = Clock.monotonicNs()
                if nextDueNs == 0 || now > nextDueNs + settings.minIntervalNs {
                    nextDueNs = now  // first frame, or fell behind by more than a frame: do not burst
                } else if now < nextDueNs {
                    if (capture == nil && av == nil) || isFile {
                        Clock.sleep(untilMonotonicNs: nextDueNs)
                    } else {
                        // A live stream must keep being read, or its buffers fill with stale
                        // frames: grab and discard until the next kept frame is due.
                        switch grabFromSource() {
                        case .frame:
                            lastFrameNs = Clock.monotonicNs()
                            continue
                        case .end: return .failed("the stream ended")
                        case .failed(let reason): return .failed(reason)
                        case .badFrame: continue  // discarded anyway
                        }
                    }
                }
                nextDueNs += settings.minIntervalNs
            }
            if capture != nil || av != nil {
                switch grabFromSource() {
                case .frame: break
                case .end: return isFile ? .finished : .failed("no frame from the source")
                case .failed(let reason): return .failed(reason)
                case .badFrame(let reason):
                    // A frame came and cannot be stored: captured and failed, never stored broken.
                    counters.captured.add(1, ordering: .relaxed)
                    counters.failed.add(1, ordering: .relaxed)
                    seq += 1
                    logFrameFailure(reason)
                    // A live camera that sends nothing storable is as dead as a silent one.
                    if !isFile && Clock.monotonicNs() - lastFrameNs > stallNs {
                        return .failed("no whole JPEG for \(String(format: "%.1f", Double(Clock.monotonicNs() - lastFrameNs) / 1e9)) s")
                    }
                    continue
                }
            }
            // Stamp at grab time.
            let monotonic = Clock.monotonicNs()
            let wall = Clock.wallNs()
            if (capture != nil || av != nil) && !isFile {
                // A grab that took longer than the stall limit (a trickling stream) fails the camera.
                if monotonic - lastFrameNs > stallNs {
                    return .failed("no frame for \(String(format: "%.1f", Double(monotonic - lastFrameNs) / 1e9)) s")
                }
                lastFrameNs = monotonic
            }
            channel.counters.lastFrameWallNs.store(wall, ordering: .relaxed)
            // Recording off and nobody watching: counted, not even retrieved.
            let store = channel.recording.load(ordering: .relaxed)
            if !store && !channel.watched {
                counters.captured.add(1, ordering: .relaxed)
                counters.paused.add(1, ordering: .relaxed)
                seq += 1
                continue
            }
            let fix = gps?.read()
            guard let slot = pool.acquire() else {
                // Cannot happen with the pool sized for ring + writers + capture; if it does, the
                // frame is accounted for as dropped rather than waited for.
                counters.captured.add(1, ordering: .relaxed)
                counters.dropped.add(1, ordering: .relaxed)
                seq += 1
                continue
            }
            switch fill(slot: slot, monotonic: monotonic, wall: wall, fix: fix, store: store) {
            case .filled:
                counters.captured.add(1, ordering: .relaxed)
                seq += 1
                hand(FrameToken(camera: settings.index, slot: slot))
            case .frameFailed(let reason):
                // Captured, and accounted for: never replaced by a copy of another frame.
                pool.release(slot)
                counters.captured.add(1, ordering: .relaxed)
                counters.failed.add(1, ordering: .relaxed)
                seq += 1
                logFrameFailure(reason)
            case .sourceFailed(let outcome):
                pool.release(slot)
                return outcome
            }
        }
        return .stopped
    }

    @inline(__always)
    private func grabFromSource() -> OpenCVCapture.GrabResult {
        if let av { return av.grab() }
        return capture!.grab()
    }

    /// A frame that could not be stored as itself: logged at most once every 5 s.
    func logFrameFailure(_ reason: String) {
        let now = Clock.monotonicNs()
        guard now - lastFrameFailureLogNs >= 5_000_000_000 || lastFrameFailureLogNs == 0 else { return }
        lastFrameFailureLogNs = now
        logger.error("frame \(seq - 1) counted as failed: \(reason) (further such failures are not logged for 5 s)")
    }

    /// Pushes a filled slot. Drop-oldest: an evicted frame (of any camera) goes straight back to
    /// its pool and is counted as dropped for its camera. Wait: sleep until a writer makes room.
    @inline(__always)
    private func hand(_ token: FrameToken) {
        switch settings.whenFull {
        case .dropOldest:
            if let evicted = ring.push(token) {
                pool.release(evicted.slot)  // one pool serves every camera
                allCounters[Int(evicted.camera)].dropped.add(1, ordering: .relaxed)
            }
        case .wait:
            while !ring.tryPush(token) {
                if stopping {
                    // Shutting down with the ring full: this frame will not be written.
                    pool.release(token.slot)
                    counters.dropped.add(1, ordering: .relaxed)
                    return
                }
                _ = spaceReady.wait(timeoutNs: 50_000_000) { ring.count < ring.capacity }
            }
        }
        framesReady.ring()
    }

    private func sleepInterruptibly(ns: UInt64) {
        guard !stopping else { return }
        wake.wait(timeoutNs: ns)
    }

    /// ±20 % jitter, so cameras behind one failed switch do not all reconnect in step.
    private func jittered(_ ns: UInt64) -> UInt64 {
        let factor = Double.random(in: 0.8...1.2)
        return UInt64(Double(ns) * factor)
    }
}
