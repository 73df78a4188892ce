import COpenCV
import Foundation
import RingcapKit
import Synchronization
import Logging

/// What `ringcap bench` was asked for, with the defaults filled in. A plain value.
public struct BenchOptions: Sendable {
    /// Length of each recording (`scale` makes four). `files` stops when its frames are read,
    /// which it sizes from the limit to take about this long.
    public var seconds: Double = 10
    /// Keep the recordings under this folder (one subfolder per recording); nil: a temporary
    /// folder, removed when the bench ends. (Not after each recording: on ext4, files deleted in
    /// the last half minute make every new file's inode allocation scan past them, a cost the
    /// next recording would pay.)
    public var outDirectory: String?
    public var quality = 85
    public var writers = Int(rc_usable_cpus())
    /// Where the `files` scenario's videos are made and kept.
    public var mediaDirectory = BenchMedia.defaultDirectory

    public init() {}

    /// How long the limit is measured before and after each recording (every core at once): a
    /// fifth of it, 1 to 3 s.
    var limitSeconds: Double { min(3, max(1, seconds * 0.2)) }

    public func validate() throws(ConfigError) {
        guard seconds.isFinite && seconds > 0 && seconds <= 3600 else {
            throw .invalidValue(flag: "--seconds", value: "\(seconds)", reason: "must be a number of seconds in 0<N<=3600")
        }
    }
}

/// Runs the bench's scenarios: each a real recording through `RecordingEngine` (test-pattern cameras
/// or video files, real JPEGs and sidecars on disk), with the machine's limit measured on the
/// same frames just before and just after it.
///
/// Used from one thread (the main thread): `run` blocks until its recordings are over;
/// `requestStop` may be called from any thread.
public final class BenchRunner: @unchecked Sendable {
    public let options: BenchOptions
    /// The recording under way, for `requestStop`.
    private let current = Mutex<RecordingEngine?>(nil)
    private let stopRequested = Atomic<Bool>(false)

    /// Stops the recording under way (its figures are still reported) and any still to come.
    public func requestStop() {
        stopRequested.store(true, ordering: .relaxed)
        current.withLock { $0?.requestStop(reason: "signal") }
    }

    public var isStopped: Bool { stopRequested.load(ordering: .relaxed) }
    private let logger: Logger
    private var root = ""
    private var rootIsTemporary = false

    /// Called with each report as soon as its recording is measured.
    public var onReport: ((BenchReport) -> Void)?

    public init(options: BenchOptions, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    /// Checks the options and makes the folder the recordings go into. Throws, before anything
    /// is recorded, for a bad value or an output folder that cannot be used.
    public func prepare() throws(ConfigError) {
        try options.validate()
        if let out = options.outDirectory {
            guard !out.isEmpty else { throw .outputNotWritable(path: out, reason: "the path is empty") }
            try RecordConfig.prepareOutput(out)
            root = out
        } else {
            var template = Array((Self.temporaryParent + "/ringcap-bench-XXXXXX").utf8CString)
            guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
                throw .outputNotWritable(path: Self.temporaryParent, reason: String(cString: strerror(errno)))
            }
            root = String(cString: made)
            rootIsTemporary = true
        }
    }

    /// Where the temporary folder goes: /dev/shm (tmpfs) when it is there, else the temporary
    /// directory. The bench compares ringcap with the CPU's limit, so the disk is left out
    /// unless asked for with `--out`: on ext4, seen here, a folder where other programs had
    /// deleted thousands of files in the last half minute made every new file's inode
    /// allocation scan past them, and that took a fifth of the machine's CPU.
    static var temporaryParent: String {
        access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : NSTemporaryDirectory()
    }

    /// Removes the temporary folder, if the recordings went into one.
    public func finish() {
        if rootIsTemporary { try? FileManager.default.removeItem(atPath: root) }
    }

    /// Runs one scenario; `scale` gives a report per camera count, the others one.
    public func run(_ scenario: BenchScenario) throws(BenchError) -> [BenchReport] {
        let seconds = options.seconds
        func cameras(_ count: Int, _ width: Int, _ height: Int, _ fps: Double) -> [CameraSpec] {
            (0..<count).map { CameraSpec(name: "cam\($0)", source: .testPattern(width: width, height: height, fps: fps)) }
        }
        switch scenario {
        case .sustained:
            return [try record(scenario, folder: "sustained", cameras: cameras(2, 1280, 720, 30),
                               frames: .pattern(width: 1280, height: 720), duration: seconds)]
        case .latency:
            return [try record(scenario, folder: "latency", cameras: cameras(1, 640, 480, 30),
                               frames: .pattern(width: 640, height: 480), duration: seconds)]
        case .scale:
            var reports: [BenchReport] = []
            for count in [1, 2, 4, 8] {
                reports.append(try record(scenario, folder: "scale-\(count)", cameras: cameras(count, 640, 480, 30),
                                          frames: .pattern(width: 640, height: 480), duration: seconds))
            }
            return reports
        case .saturate:
            // Four cameras offering at least 120 frames/s each and together 1.3 times what the
            // machine can encode: the writers cannot keep up, so the ring stays full and drops.
            let frames = LimitFrames.pattern(width: 1280, height: 720)
            let before = try measureLimit(frames)
            let perCamera = min(1000, max(120, (1.3 * before.fps / 4).rounded(.up)))
            // 64 frames: the ring fills within a tenth of a second, so the resident memory of
            // the frames it holds is reached at once and must stay flat afterwards.
            return [try record(scenario, folder: "saturate", cameras: cameras(4, 1280, 720, perCamera), frames: frames,
                               duration: seconds, ring: 64, limitBefore: before, scanAges: true)]
        case .files:
            let paths = try BenchMedia(directory: options.mediaDirectory).files { logger.notice("\($0)") }
            let frames = LimitFrames.files(paths)
            let before = try measureLimit(frames)
            // As many frames as the machine could record in `seconds`, at most the files' length;
            // reading to that count (not stopping at a deadline) is what guarantees no drop.
            let perCamera = min(BenchMedia.frames, max(30, Int(seconds * before.fps / Double(paths.count))))
            let specs = paths.enumerated().map { CameraSpec(name: "file\($0)", source: .file(path: $1)) }
            return [try record(scenario, folder: "files", cameras: specs, frames: frames, duration: nil,
                               framesPerCamera: perCamera, limitBefore: before)]
        case .live:
            return []  // not a recording of this process: LiveBench
        }
    }

    private func measureLimit(_ frames: LimitFrames) throws(BenchError) -> MachineLimit {
        do {
            return try MachineLimit.measure(frames, quality: options.quality, seconds: options.limitSeconds)
        } catch {
            throw .capture(error)
        }
    }

    private func record(_ scenario: BenchScenario, folder: String, cameras: [CameraSpec], frames: LimitFrames,
                        duration: Double?, framesPerCamera: Int? = nil, ring: Int? = nil,
                        limitBefore: MachineLimit? = nil, scanAges: Bool = false) throws(BenchError) -> BenchReport {
        let before: MachineLimit
        if let limitBefore { before = limitBefore } else { before = try measureLimit(frames) }
        let out = root + "/" + folder
        var config = RecordConfig(cameras: cameras, outDirectory: out, writers: options.writers)
        config.quality = options.quality
        config.gps = .none
        config.durationSeconds = duration
        config.framesPerCamera = framesPerCamera
        config.ringCapacity = ring
        do {
            try config.validate()
        } catch {
            throw .config(error)
        }

        // Give back what earlier recordings freed, so that this one's resident memory is its own.
        rc_release_free_memory()
        let recorder = RecordingEngine(config: config, gps: nil, logger: logger)
        var samples: [Double] = []
        samples.reserveCapacity(Int(options.seconds) + 8)
        recorder.onTick = { samples.append(ProcessUsage.residentMB()) }
        let cpuStart = ProcessUsage.cpuSeconds()
        let startNs = Clock.monotonicNs()
        let summary: RecordingSummary
        do {
            current.withLock { $0 = recorder }
            defer { current.withLock { $0 = nil } }
            try recorder.start()
            if isStopped { recorder.requestStop(reason: "signal") }
            summary = recorder.waitUntilStopped()!
        } catch {
            throw .capture(error)
        }
        let cpu = ProcessUsage.cpuSeconds() - cpuStart
        let limit = MachineLimit.mean(before, try measureLimit(frames))

        let captured = summary.cameras.reduce(0) { $0 + $1.captured }
        let written = summary.totalWritten
        guard written > 0 else { throw .nothingWritten(scenario: scenario.rawValue) }
        let elapsed = summary.elapsedSeconds
        let latency = summary.latencyUs.flatMap { h -> BenchReport.Latency? in
            guard h.totalCount > 0 else { return nil }
            func ms(_ us: UInt64) -> Double { Double(us) / 1000 }
            return .init(p50: ms(h.valueAtPercentile(50)), p90: ms(h.valueAtPercentile(90)),
                         p99: ms(h.valueAtPercentile(99)), p999: ms(h.valueAtPercentile(99.9)), max: ms(h.max))
        }
        let writtenFPS = Double(written) / elapsed
        var report = BenchReport(
            scenario: scenario.rawValue, cameras: cameras.count, seconds: elapsed,
            offeredFPS: Double(captured) / elapsed, writtenFPS: writtenFPS,
            dropped: summary.cameras.reduce(0) { $0 + $1.dropped }, failed: summary.cameras.reduce(0) { $0 + $1.failed },
            latencyMs: latency, cpuMsPerFrame: cpu * 1000 / Double(written), peakRSSMB: samples.max() ?? ProcessUsage.residentMB(),
            limitFPS: limit.fps, efficiency: writtenFPS / limit.fps)
        report.details.limit = limit
        report.details.writers = summary.writers
        report.details.ringCapacity = summary.ringCapacity
        report.details.ringSpanMs = Double(summary.ringCapacity) / report.offeredFPS * 1000
        report.details.residentSamplesMB = samples
        report.details.captured = captured
        report.details.written = written
        report.details.outDirectory = out
        if scanAges, let duration {
            report.details.ages = FrameAges.scan(out, stopMonotonicNs: startNs + UInt64(duration * 1e9),
                                                   ringCapacity: summary.ringCapacity)
        }
        onReport?(report)
        return report
    }
}
