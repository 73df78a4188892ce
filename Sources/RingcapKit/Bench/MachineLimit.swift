import COpenCV
import Foundation

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
/// How it is measured: on a thread of its own pinned to one CPU (`sched_setaffinity`), then to the
/// next, for a fixed wall-clock time on each, on the frames the scenario records and at its JPEG
/// quality, with the same `JPEGEncoder` the writers use. Decoding goes through the same
/// `OpenCVCapture` (grab + retrieve into a buffer, as capture does), opened after the pin:
/// FFmpeg's decoder threads inherit the pinned thread's mask, so however many it starts they share
/// that one CPU and the rate is a single core's. Rates are wall-clock rates, like the recording's
/// frames/s, so that a machine busy with other work lowers both; the encoder's rate on its
/// thread's own CPU time is kept beside it to show how busy the CPU was (equal on an idle machine).
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

    /// Each core's rates at their best of two measurements (before and after a recording): a
    /// core that was taken by another process during one of them is not the machine's limit.
    public static func best(_ a: MachineLimit, _ b: MachineLimit) -> MachineLimit {
        guard a.perCore.map(\.cpu) == b.perCore.map(\.cpu) else { return a.fps >= b.fps ? a : b }
        return MachineLimit(perCore: zip(a.perCore, b.perCore).map { x, y in
            Core(cpu: x.cpu, encodeFPS: max(x.encodeFPS, y.encodeFPS), encodeCPUFPS: max(x.encodeCPUFPS, y.encodeCPUFPS),
                 decodeFPS: x.decodeFPS.flatMap { d in y.decodeFPS.map { max(d, $0) } ?? d })
        })
    }

    /// Measures each usable core for about `seconds` (decoding and encoding get half each for
    /// files), one after the other. Blocks the caller; the work runs on a new thread, pinned to
    /// each core in turn.
    public static func measure(_ frames: LimitFrames, quality: Int, seconds: Double) throws(CaptureError) -> MachineLimit {
        var cpus = [Int32](repeating: 0, count: 1024)
        let count = Int(rc_usable_cpu_list(&cpus, Int32(cpus.count)))
        var perCore: [Core] = []
        for cpu in cpus.prefix(min(count, cpus.count)) {
            let probe = LimitProbe(frames: frames, quality: quality, seconds: seconds, cpu: Int(cpu))
            startWorkerThread("rc-limit", done: probe.done) { probe.run() }
            probe.done.wait()
            if let error = probe.error { throw error }
            perCore.append(Core(cpu: Int(cpu), encodeFPS: probe.encodeFPS, encodeCPUFPS: probe.encodeCPUFPS,
                                decodeFPS: probe.decodeFPS))
        }
        return MachineLimit(perCore: perCore)
    }
}

/// One measurement on its own thread. Its fields are written by that thread and read by the
/// caller only after `done` is signalled (the semaphore orders the two).
private final class LimitProbe: @unchecked Sendable {
    let frames: LimitFrames
    let quality: Int
    let seconds: Double
    let done = DispatchSemaphore(value: 0)
    var encodeFPS = 0.0, encodeCPUFPS = 0.0
    var decodeFPS: Double?
    var error: CaptureError?
    let cpu: Int

    init(frames: LimitFrames, quality: Int, seconds: Double, cpu: Int) {
        self.frames = frames
        self.quality = quality
        self.seconds = seconds
        self.cpu = cpu
    }

    func run() {
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
            case .files(let paths):
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
        _ = encoder.encode(images.buffers[0], width: images.width, height: images.height, stride: images.width * 3,
                           quality: quality, into: output, capacity: capacity)
        let start = Clock.monotonicNs(), cpuStart = ProcessUsage.threadCPUSeconds()
        let end = start + UInt64(seconds * 1e9)
        var count = 0
        repeat {
            let result = encoder.encode(images.buffers[count % images.buffers.count], width: images.width,
                                        height: images.height, stride: images.width * 3, quality: quality,
                                        into: output, capacity: capacity)
            if case .failure(let failure) = result { throw failure }
            count += 1
        } while Clock.monotonicNs() < end
        let wall = Double(Clock.monotonicNs() - start) / 1e9
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
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: width * height * 3, alignment: 64)
            pattern.render(into: buffer, stride: width * 3, frame: UInt64(i), wallNs: now + Int64(i) * 33_333_333)
            return buffer
        }
        return FrameSet(width: width, height: height, buffers: buffers)
    }

    /// Decodes `path` for `seconds` (from the start again when it ends), keeping the first
    /// `keep` frames for the encode measurement. Returns them and the decode rate.
    static func decoding(path: String, seconds: Double, keep: Int) throws(CaptureError) -> (FrameSet, Double) {
        func open() throws(CaptureError) -> OpenCVCapture {
            try OpenCVCapture(source: .file(path: path), size: nil, fps: nil, timeouts: CaptureTimeouts())
        }
        var capture = try open()
        let (width, height) = capture.size
        guard width > 0, height > 0 else { throw CaptureError(source: path, reason: "no frame size") }
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: width * height * 3, alignment: 64)
        defer { scratch.deallocate() }
        var kept: [UnsafeMutableRawPointer] = []
        var count = 0
        var busy: UInt64 = 0  // decoding time, without the reopenings at the end of the file
        let end = Clock.monotonicNs() + UInt64(seconds * 1e9)
        while Clock.monotonicNs() < end || kept.count < keep {
            let t0 = Clock.monotonicNs()
            switch capture.grab() {
            case .frame:
                break
            case .end:
                capture = try open()
                continue
            case .failed(let reason):
                throw CaptureError(source: path, reason: reason)
            }
            let target = kept.count < keep ? UnsafeMutableRawPointer.allocate(byteCount: width * height * 3, alignment: 64) : scratch
            guard case .ok = capture.retrieve(into: target, stride: width * 3) else {
                throw CaptureError(source: path, reason: "retrieve failed")
            }
            busy += Clock.monotonicNs() - t0
            count += 1
            if target != scratch { kept.append(target) }
        }
        return (FrameSet(width: width, height: height, buffers: kept), Double(count) / (Double(busy) / 1e9))
    }
}
