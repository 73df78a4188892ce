import COpenCV
import Foundation
import RingcapKit

/// The frames a limit is measured on: the scenario's own. A plain value.
public enum LimitFrames: Sendable {
    /// The built-in test pattern at this size, as the test cameras render it.
    case pattern(width: Int, height: Int)
    /// These video files, decoded as the file cameras decode them.
    case files([String])
}

/// What this machine can do at most on a scenario's frames: the work no recorder can avoid
/// (decoding a compressed source, encoding the JPEG) at the rate each usable core does it, summed
/// over the cores the process may use.
///
/// How it is measured: one thread per usable CPU, each pinned to its CPU (`sched_setaffinity`), all
/// at once (each step starts when every thread is ready), for a fixed wall-clock time, on the
/// frames the scenario records and at its JPEG quality, with the same `JPEGEncoder` the writers
/// use. All at once because that is how a saturated recording uses the machine: what cores share
/// (two virtual CPUs on one physical core, caches, memory bandwidth, a power budget that lowers
/// the clock when every core is busy) costs them in the recording, and so in the limit. Each core
/// still does one frame after another on its own: its rate is a single core's. Decoding goes
/// through the same `AVSource` (grab + retrieve into a buffer, as capture does), opened after
/// the pin: FFmpeg's decoder threads inherit the pinned thread's mask, so however many it starts
/// they share that one CPU and the rate is a single core's. Rates are wall-clock rates, like the
/// recording's frames/s, so that a machine busy with other work lowers both; the encoder's rate on
/// its thread's own CPU time is kept beside it to show how busy the CPU was (equal on an idle
/// machine).
///
/// Why each core and not one core times the count: cores differ. Boards with big and little cores
/// (RK3588: four Cortex-A76 and four A55) encode at very different rates on each kind, and on a
/// shared virtual machine one virtual CPU can run slower than another for a while (a neighbour on
/// its physical core); CPU 0 times the count is then the limit of a machine that is not there.
///
/// A plain value.
public struct MachineLimit: Sendable {
    /// One usable CPU's rates.
    public struct Core: Sendable {
        /// The CPU's number.
        public var cpu: Int
        /// JPEG encodes a second on this core (wall clock).
        public var encodeFPS: Double
        /// JPEG encodes per second of the measuring thread's own CPU time.
        public var encodeCPUFPS: Double
        /// Decodes (grab + retrieve to BGR) a second on this core, for file sources; nil otherwise.
        public var decodeFPS: Double?
        /// When this core's encode measurement started and ended (monotonic ns): with every core
        /// measured together, these overlap.
        public var encodeFromNs: UInt64 = 0
        public var encodeToNs: UInt64 = 0

        public init(cpu: Int, encodeFPS: Double, encodeCPUFPS: Double, decodeFPS: Double?,
                    encodeFromNs: UInt64 = 0, encodeToNs: UInt64 = 0) {
            self.cpu = cpu
            self.encodeFPS = encodeFPS
            self.encodeCPUFPS = encodeCPUFPS
            self.decodeFPS = decodeFPS
            self.encodeFromNs = encodeFromNs
            self.encodeToNs = encodeToNs
        }

        /// This core's cost of one frame, seconds: encode, plus decode for files.
        public var secondsPerFrame: Double { 1 / encodeFPS + (decodeFPS.map { 1 / $0 } ?? 0) }
        /// Frames a second this core could record at best.
        public var fps: Double { 1 / secondsPerFrame }
    }

    /// Every usable CPU, in increasing order.
    public var perCore: [Core]

    /// CPUs in the process's affinity mask.
    public var cores: Int { perCore.count }

    /// Frames a second the machine could record at best: every core doing the unavoidable work
    /// of one frame after another.
    public var fps: Double { perCore.reduce(0) { $0 + $1.fps } }

    /// The cost of one frame on an average core, seconds (`cores / fps`).
    public var secondsPerFrame: Double { Double(cores) / fps }

    /// JPEG encodes a second on an average core (wall clock, and on the thread's CPU time).
    public var encodeFPS: Double { perCore.reduce(0) { $0 + $1.encodeFPS } / Double(cores) }
    public var encodeCPUFPS: Double { perCore.reduce(0) { $0 + $1.encodeCPUFPS } / Double(cores) }
    /// Decodes a second on an average core, for file sources; nil otherwise.
    public var decodeFPS: Double? {
        let rates = perCore.compactMap(\.decodeFPS)
        return rates.count == cores ? rates.reduce(0, +) / Double(cores) : nil
    }

    /// Each core's rates averaged over two measurements, one just before a recording and one just
    /// after it: the best estimate of what the machine could do while it recorded, when the
    /// machine's speed drifts (a shared host). (The better of the two would be biased upwards by
    /// the measurements' own noise.)
    public static func mean(_ a: MachineLimit, _ b: MachineLimit) -> MachineLimit {
        guard a.perCore.map(\.cpu) == b.perCore.map(\.cpu) else { return a.fps >= b.fps ? a : b }
        func avg(_ x: Double, _ y: Double) -> Double { (x + y) / 2 }
        return MachineLimit(perCore: zip(a.perCore, b.perCore).map { x, y in
            Core(cpu: x.cpu, encodeFPS: avg(x.encodeFPS, y.encodeFPS), encodeCPUFPS: avg(x.encodeCPUFPS, y.encodeCPUFPS),
                 decodeFPS: x.decodeFPS.flatMap { d in y.decodeFPS.map { avg(d, $0) } ?? d },
                 encodeFromNs: min(x.encodeFromNs, y.encodeFromNs), encodeToNs: max(x.encodeToNs, y.encodeToNs))
        })
    }

    /// Measures each usable core for about `seconds` (decoding and encoding get half each for
    /// files). Blocks the caller; the work runs on one new thread per core, each pinned to its
    /// core. `together`: every core at once, each thread starting each step when all are ready (so
    /// that what cores share, a physical core under two virtual ones, caches, memory, the power
    /// budget, is shared as in a recording that keeps every core busy); otherwise one core after
    /// the other, each alone.
    public static func measure(_ frames: LimitFrames, quality: Int, seconds: Double,
                               together: Bool = true) throws(CaptureError) -> MachineLimit {
        var cpus = [Int32](repeating: 0, count: 1024)
        let count = Int(rc_usable_cpu_list(&cpus, Int32(cpus.count)))
        let list = cpus.prefix(min(count, cpus.count)).map(Int.init)
        let barrier = together ? StepBarrier(parties: list.count) : nil
        let probes = list.map { LimitProbe(frames: frames, quality: quality, seconds: seconds, cpu: $0, barrier: barrier) }
        for probe in probes {
            startWorkerThread("rc-limit", done: probe.done) { probe.run() }
            if !together { probe.done.wait() }
        }
        if together { probes.forEach { $0.done.wait() } }
        if let error = probes.lazy.compactMap(\.error).first { throw error }
        return MachineLimit(perCore: probes.map {
            Core(cpu: $0.cpu, encodeFPS: $0.encodeFPS, encodeCPUFPS: $0.encodeCPUFPS, decodeFPS: $0.decodeFPS,
                 encodeFromNs: $0.encodeFromNs, encodeToNs: $0.encodeToNs)
        })
    }
}

/// Lets the limit's threads start each step of the measurement at once: `arrive` returns when
/// every party has arrived (or one gave up). Used a few times per measurement, never per frame.
private final class StepBarrier: @unchecked Sendable {
    private let condition = NSCondition()
    private let parties: Int
    private var arrived = 0
    private var generation = 0

    init(parties: Int) { self.parties = parties }

    /// Waits for the others. A party that fails calls `arrive` for every step it skips, so that
    /// the others are not left waiting.
    func arrive() {
        condition.lock()
        defer { condition.unlock() }
        let mine = generation
        arrived += 1
        if arrived == parties {
            arrived = 0
            generation += 1
            condition.broadcast()
            return
        }
        while generation == mine { condition.wait() }
    }
}

/// One measurement on its own thread. Its fields are written by that thread and read by the
/// caller only after `done` is signalled (the semaphore orders the two).
private final class LimitProbe: @unchecked Sendable {
    let frames: LimitFrames
    let quality: Int
    let seconds: Double
    let done = MonotonicSemaphore()
    var encodeFPS = 0.0, encodeCPUFPS = 0.0
    var encodeFromNs: UInt64 = 0, encodeToNs: UInt64 = 0
    var decodeFPS: Double?
    var error: CaptureError?
    let cpu: Int
    private let barrier: StepBarrier?
    /// Steps taken at the barrier so far (a probe that fails takes the rest at once).
    private var steps = 0

    init(frames: LimitFrames, quality: Int, seconds: Double, cpu: Int, barrier: StepBarrier?) {
        self.frames = frames
        self.quality = quality
        self.seconds = seconds
        self.cpu = cpu
        self.barrier = barrier
    }

    /// Steps taken together: for the test pattern one, before the encode (pinned, frames rendered);
    /// for files two, before the decode (pinned) and before the encode.
    private var stepCount: Int { frames.isFiles ? 2 : 1 }

    private func step() {
        barrier?.arrive()
        steps += 1
    }

    func run() {
        defer { while barrier != nil && steps < stepCount { step() } }
        let message = MessageBuffer()
        guard rc_thread_pin_to_cpu(Int32(cpu), message.base, message.count) == RC_OK else {
            error = CaptureError(source: "limit", reason: "cannot pin the measuring thread to CPU \(cpu): \(message.text)")
            return
        }
        do {
            let images: FrameSet
            switch frames {
            case .pattern(let width, let height):
                images = try FrameSet.pattern(width: width, height: height, count: 16)
                step()
            case .files(let paths):
                step()
                let decodeSeconds = seconds / 2 / Double(paths.count)
                var decoded: [FrameSet] = []
                var rate = 0.0
                for path in paths {
                    let (set, fps) = try FrameSet.decoding(path: path, seconds: decodeSeconds, keep: 16 / paths.count)
                    decoded.append(set)
                    rate += fps
                }
                decodeFPS = rate / Double(paths.count)
                images = FrameSet(joining: decoded)
                step()
            }
            try encode(images, seconds: frames.isFiles ? seconds / 2 : seconds)
        } catch let failure {
            error = failure
        }
    }

    private func encode(_ images: FrameSet, seconds: Double) throws(CaptureError) {
        let encoder = try JPEGEncoder()
        let capacity = JPEGEncoder.maxSize(width: images.width, height: images.height)
        let output = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
        defer { output.deallocate() }
        // One encode first, so that the encoder's arena is sized before the clock starts.
        _ = encoder.encodeI420(images.buffers[0], width: images.width, height: images.height,
                           quality: quality, into: output, capacity: capacity)
        let start = Clock.monotonicNs(), cpuStart = ProcessUsage.threadCPUSeconds()
        let end = start + UInt64(seconds * 1e9)
        var count = 0
        repeat {
            let result = encoder.encodeI420(images.buffers[count % images.buffers.count], width: images.width,
                                            height: images.height, quality: quality,
                                        into: output, capacity: capacity)
            if case .failure(let failure) = result { throw failure }
            count += 1
        } while Clock.monotonicNs() < end
        let stop = Clock.monotonicNs()
        let wall = Double(stop - start) / 1e9
        encodeFromNs = start
        encodeToNs = stop
        encodeFPS = Double(count) / wall
        encodeCPUFPS = Double(count) / max(ProcessUsage.threadCPUSeconds() - cpuStart, 1e-9)
    }
}

extension LimitFrames {
    var isFiles: Bool { if case .files = self { return true }; return false }
}

/// Packed BGR frames of one size, owned by the measuring thread.
private final class FrameSet {
    let width: Int, height: Int
    let buffers: [UnsafeMutableRawPointer]
    private let owned: Bool

    init(width: Int, height: Int, buffers: [UnsafeMutableRawPointer], owned: Bool = true) {
        self.width = width
        self.height = height
        self.buffers = buffers
        self.owned = owned
    }

    /// Several sets of one size as one (the parts keep owning their buffers).
    convenience init(joining parts: [FrameSet]) {
        self.init(width: parts[0].width, height: parts[0].height, buffers: parts.flatMap(\.buffers), owned: false)
        self.parts = parts
    }
    private var parts: [FrameSet] = []

    deinit { if owned { buffers.forEach { $0.deallocate() } } }

    /// Frames 0..<count of the test pattern, stamped a thirtieth of a second apart, as a test
    /// camera at 30 frames/s renders them.
    static func pattern(width: Int, height: Int, count: Int) throws(CaptureError) -> FrameSet {
        let pattern = try TestPattern(width: width, height: height)
        let now = Clock.wallNs()
        let buffers = (0..<count).map { i -> UnsafeMutableRawPointer in
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: pattern.i420Bytes, alignment: 64)
            pattern.renderI420(into: buffer, frame: UInt64(i), wallNs: now + Int64(i) * 33_333_333)
            return buffer
        }
        return FrameSet(width: width, height: height, buffers: buffers)
    }

    /// Decodes `path` for `seconds` (from the start again when it ends), keeping the first
    /// `keep` frames for the encode measurement. Returns them and the decode rate.
    static func decoding(path: String, seconds: Double, keep: Int) throws(CaptureError) -> (FrameSet, Double) {
        // The recording's own path: FFmpeg directly (AVSource), decoded and converted as a
        // file camera's frames are.
        func open() throws(CaptureError) -> AVSource {
            do {
                return try AVSource(file: path)
            } catch {
                throw CaptureError(source: path, reason: error.reason)
            }
        }
        var capture = try open()
        guard case .frame = capture.grab() else { throw CaptureError(source: path, reason: "no first frame") }
        let (width, height) = capture.frameSize
        guard width > 0, height > 0 else { throw CaptureError(source: path, reason: "no frame size") }
        let frameBytes = rc_i420_size(Int32(width), Int32(height))
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: frameBytes, alignment: 64)
        defer { scratch.deallocate() }
        var kept: [UnsafeMutableRawPointer] = []
        var count = 0
        var busy: UInt64 = 0  // decoding time, without the reopenings at the end of the file
        var grabbed = true    // the first frame, grabbed above to learn the size
        let end = Clock.monotonicNs() + UInt64(seconds * 1e9)
        while Clock.monotonicNs() < end || kept.count < keep {
            let t0 = Clock.monotonicNs()
            if !grabbed {
                switch capture.grab() {
                case .frame:
                    break
                case .end:
                    capture = try open()
                    continue
                case .failed(let reason), .badFrame(let reason):
                    throw CaptureError(source: path, reason: reason)
                }
            }
            grabbed = false
            guard capture.frameSize == (width, height) else {
                throw CaptureError(source: path, reason: "the frame size changed; the limit needs frames of one size")
            }
            let target = kept.count < keep ? UnsafeMutableRawPointer.allocate(byteCount: frameBytes, alignment: 64) : scratch
            if let reason = capture.retrieveI420(into: target) {
                throw CaptureError(source: path, reason: "retrieve failed: \(reason)")
            }
            busy += Clock.monotonicNs() - t0
            count += 1
            if target != scratch { kept.append(target) }
        }
        return (FrameSet(width: width, height: height, buffers: kept), Double(count) / (Double(busy) / 1e9))
    }
}
