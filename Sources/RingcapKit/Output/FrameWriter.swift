import COpenCV
import Foundation
import Histogram
import Logging
import RingBuffer
import Synchronization

/// What a writer needs to know of each camera, fixed at start.
struct WriterCamera {
    let pool: FramePool
    /// Counters, recording on/off and the taps.
    let channel: CameraChannel
    var counters: CameraCounters { channel.counters }
    /// JPEG quality of the frames ringcap encodes.
    let quality: Int
    /// `{"camera":"NAME","source":"SOURCE","run":"TIME",` as bytes: the sidecar's constant head.
    let sidecarHead: [UInt8]
    /// `OUT/NAME/` as bytes.
    let folder: [UInt8]
    /// The JPEGs' EXIF Model: the camera's name.
    let name: String

    /// The sidecar's head, `{"camera":NAME,"source":SOURCE,"run":RUN,`, escaped and sized from
    /// what goes in (a source URL can be thousands of characters long: a fixed buffer would cut
    /// it). `run` is the recording's start, the same for every frame of one start.
    static func sidecarHead(name: String, source: String, run: String) -> [UInt8] {
        var head = ByteSink(capacity: 48 + 6 * (name.utf8.count + source.utf8.count + run.utf8.count))
        head.append("{\"camera\":")
        head.append(jsonString: name)
        head.append(",\"source\":")
        head.append(jsonString: source)
        head.append(",\"run\":")
        head.append(jsonString: run)
        head.append(",")
        precondition(!head.overflowed, "the sidecar head is sized for the worst case of escaping")
        return Array(head.bytes)
    }
}

/// What writers put in each frame about GPS (issue 4): the sidecar's `gps` object and the EXIF.
struct WriterGPS {
    /// A fix older than this is written with `"stale": true`.
    let maxAgeNs: UInt64
    /// The sidecar's `source`, preformatted.
    let source: GPSSourceJSON
}

/// One writer thread (`rc-wr-<n>`): pop a token → encode the frame to JPEG → write it under a
/// temporary name in its minute folder → rename into place → the same for its JSON sidecar.
/// A reader never sees half a file: `.jpg` and `.json` appear whole, the sidecar after its JPEG.
///
/// Owned by its thread: the encoder, the buffers, the folder cache and the latency histograms are
/// touched by nothing else until `join` returns. Failures are counted per frame and logged at
/// most once every few seconds per kind; they never stop the writer.
final class FrameWriter: @unchecked Sendable {
    let index: Int
    private let cameras: [WriterCamera]
    private let ring: DropOldestRing<FrameToken>
    private let framesReady: Doorbell
    private let spaceReady: Doorbell
    private let producersDone: OnceFlag
    private let fsync: Bool
    private let gps: WriterGPS
    /// Bytes stored and minute folders made, for retention; ENOSPC rings it.
    private let ledger: StoreLedger
    /// "Frame stored" events, for an indexer (nothing is queued while nobody subscribed).
    private let events: FrameEvents?
    private let logger: Logger
    /// This run's temporary suffix (`RecordingLayout.temporarySuffix(runToken:)`), as bytes.
    private let temporarySuffix: [UInt8]
    private let done = MonotonicSemaphore()
    private let abandon = Atomic<Bool>(false)
    /// 1 while a popped frame is not yet counted (written or failed); the recorder, when the
    /// drain deadline passed, claims such a frame by exchanging 1 for 2 and counts it as failed,
    /// and the writer then does not count it again.
    let inFlight = Atomic<Int>(0)
    /// Which camera the in-flight frame belongs to (valid while `inFlight` is 1).
    let inFlightCamera = Atomic<Int>(0)

    // Owned by the writer thread.
    private let encoder: JPEGEncoder
    private var jpeg: UnsafeMutableRawPointer
    private var jpegCapacity: Int
    private var path = ByteSink(capacity: 4096)
    private var tempPath = ByteSink(capacity: 4096)
    /// Sized at start from the longest constant parts (camera and source, GPS source) plus what
    /// a frame's own fields can take; a sidecar that still does not fit fails its frame.
    private var sidecar: ByteSink
    private var lastMinute: [Int64]                 // per camera: minute folder known to exist
    /// What failed (the step and its errno) -> when last logged; touched only on failure.
    private var lastLogNs: [FailureKind: UInt64] = [:]
    /// Grab-to-rename latency per camera, in microseconds.
    private(set) var latencyUs: [Histogram<UInt64>]
    private var iov = UnsafeMutablePointer<iovec>.allocate(capacity: 4)
    /// One EXIF segment per camera (Model differs); noncopyable, hence a raw array.
    private let exif: UnsafeMutablePointer<EXIFSegment>

    init(index: Int, cameras: [WriterCamera], ring: DropOldestRing<FrameToken>, framesReady: Doorbell,
         spaceReady: Doorbell, producersDone: OnceFlag, fsync: Bool, gps: WriterGPS,
         ledger: StoreLedger, events: FrameEvents? = nil, temporarySuffix: String, logger: Logger) throws(CaptureError) {
        self.index = index
        self.cameras = cameras
        self.ring = ring
        self.framesReady = framesReady
        self.spaceReady = spaceReady
        self.producersDone = producersDone
        self.fsync = fsync
        self.gps = gps
        self.ledger = ledger
        self.events = events
        self.temporarySuffix = Array(temporarySuffix.utf8)
        let longestHead = cameras.map(\.sidecarHead.count).max() ?? 0
        sidecar = ByteSink(capacity: longestHead + gps.source.bytes.count + 2048)
        var logger = logger
        logger[metadataKey: "writer"] = "\(index)"
        self.logger = logger
        encoder = try JPEGEncoder()
        jpegCapacity = JPEGEncoder.maxSize(width: 1920, height: 1080)
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, jpegCapacity) == 0, let buffer = raw else {
            throw CaptureError(source: "jpeg", reason: "no memory for the JPEG buffer")
        }
        jpeg = buffer
        lastMinute = Array(repeating: Int64.min, count: cameras.count)
        latencyUs = Array(repeating: Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three),
                          count: cameras.count)
        exif = .allocate(capacity: cameras.count)
        for (i, camera) in cameras.enumerated() {
            (exif + i).initialize(to: EXIFSegment(make: "ringcap", model: camera.name,
                                                  software: "ringcap \(RingcapVersion.string)"))
        }
    }

    deinit {
        free(jpeg)
        iov.deallocate()
        exif.deinitialize(count: cameras.count)
        exif.deallocate()
    }

    func start() {
        startWorkerThread("rc-wr-\(index)", done: done) { [self] in run() }
    }

    func join(timeoutNs: UInt64) -> Bool {
        done.wait(timeoutNs: timeoutNs)
    }

    /// Stop after the frame in hand even if the ring is not empty (the drain deadline passed).
    func abandonDrain() { abandon.store(true, ordering: .relaxed) }

    func run() {  // internal: the benchmarks' probes (Bench/PipelineProbes.swift) run it on their own thread
        while !abandon.load(ordering: .relaxed) {
            guard let token = ring.pop() else {
                // Producers finish before the writers are told to: once they are done and the
                // ring is empty, nothing more will come.
                if producersDone.isSet && ring.count == 0 { return }
                // The doorbell wakes us for every frame and at the end; the timeout is only a net.
                _ = framesReady.wait(timeoutNs: 1_000_000_000) { ring.count > 0 || producersDone.isSet }
                continue
            }
            spaceReady.ring()
            inFlightCamera.store(Int(token.camera), ordering: .relaxed)
            // Releasing: the recorder's acquiring claim that sees 1 sees this frame's camera.
            inFlight.store(1, ordering: .releasing)
            let outcome = write(token)
            // Counted here, once: unless the recorder gave up waiting for this frame at the drain
            // deadline and claimed it (1 -> 2), counting it failed itself.
            if inFlight.compareExchange(expected: 1, desired: 0, ordering: .relaxed).exchanged {
                let counters = cameras[Int(token.camera)].counters
                switch outcome {
                case .written: counters.written.add(1, ordering: .relaxed)
                case .failed: counters.failed.add(1, ordering: .relaxed)
                case .paused: counters.paused.add(1, ordering: .relaxed)
                }
            }
        }
    }

    enum Outcome { case written, failed, paused }

    /// Stores one frame (or, for a camera whose recording is off, only offers it to the taps).
    /// Returns what became of it; the caller counts it.
    @inline(__always)
    private func write(_ token: FrameToken) -> Outcome {
        let camera = cameras[Int(token.camera)]
        let slot = token.slot
        let meta = camera.pool.meta[Int(slot)]
        let width = Int(meta.width), height = Int(meta.height)

        // Encode, then give the pixels back at once: the pool slot is free while we wait on disk.
        let passthrough = meta.jpegBytes > 0
        guard let pixels = camera.pool.pixels(slot) else {
            camera.pool.release(slot)
            fail(camera, errno: -1, what: "frame without pixels")
            return meta.store ? .failed : .paused
        }
        // Analytics get their shrunk grey copy while the pixels are still here.
        camera.channel.pixels.offer(meta: meta, pixels: pixels)
        // Recording off: nothing is stored; encoded only when a viewer watches.
        if !meta.store && !camera.channel.latest.hasClients {
            camera.pool.release(slot)
            return .paused
        }
        let needed = passthrough ? Int(meta.jpegBytes) : JPEGEncoder.maxSize(width: width, height: height)
        if needed > jpegCapacity {  // a bigger camera than any before: grow once
            // posix_memalign, not allocate (which aborts): without memory for it, this frame fails.
            var raw: UnsafeMutableRawPointer?
            guard posix_memalign(&raw, 64, needed) == 0, let grown = raw else {
                camera.pool.release(slot)
                fail(camera, errno: ENOMEM, what: "no memory for the JPEG of a \(width)x\(height) frame")
                return meta.store ? .failed : .paused
            }
            free(jpeg)
            jpeg = grown
            jpegCapacity = needed
        }
        let encoded: Result<Int, CaptureError>
        if passthrough {
            // The camera's JPEG as it came, less its own EXIF (ours goes in after SOI below).
            let n = rc_jpeg_copy_without_exif(pixels.assumingMemoryBound(to: UInt8.self), Int(meta.jpegBytes),
                                              jpeg.assumingMemoryBound(to: UInt8.self), jpegCapacity)
            encoded = n > 0 ? .success(n) : .failure(CaptureError(source: "jpeg", reason: "the camera's JPEG headers are broken"))
        } else if meta.isI420 {
            encoded = encoder.encodeI420(pixels, width: width, height: height, quality: camera.quality, into: jpeg, capacity: jpegCapacity)
        } else {
            encoded = encoder.encode(pixels, width: width, height: height, stride: Int(meta.stride),
                                     quality: camera.quality, into: jpeg, capacity: jpegCapacity)
        }
        camera.pool.release(slot)
        guard case .success(let jpegBytes) = encoded else {
            if case .failure(let error) = encoded { fail(camera, errno: -2, what: "JPEG encode: \(error.reason)") }
            return meta.store ? .failed : .paused
        }
        let fix: GPSFix? = meta.hasFix ? meta.fix : nil
        let app1 = exif[Int(token.camera)].build(wallTimeNs: meta.wallNs, fix: fix)
        let shown = LatestJPEG.Frame(seq: meta.seq, wallNs: meta.wallNs, width: meta.width, height: meta.height, bytes: 0)
        if !meta.store {
            setJPEGParts(jpegBytes: jpegBytes, app1: app1)
            camera.channel.latest.offer(iov, count: 3, frame: shown)
            return .paused
        }

        // OUT/NAME/YYYY/MM/DD/HH/MM/HHMMSS.ffffff_SEQ
        let fields = UTCFields(unixNs: meta.wallNs)
        path.reset()
        camera.folder.withUnsafeBufferPointer { path.append(bytes: $0) }
        RecordingLayout.appendMinuteFolder(fields, to: &path)
        let folderLength = path.count
        let minute = RecordingLayout.unixMinute(wallNs: meta.wallNs)
        if lastMinute[Int(token.camera)] != minute {
            guard makeFolders(upTo: folderLength, camera: camera) else { return .failed }
            lastMinute[Int(token.camera)] = minute
            ledger.noteMinute(minute, camera: Int(token.camera))
        }
        path.append(byte: UInt8(ascii: "/"))
        RecordingLayout.appendStem(fields, seq: meta.seq, to: &path)
        let stemLength = path.count

        // The JPEG: the encoder's SOI, the EXIF APP1 (time, camera, position), then the rest of
        // the encoder's output. writev puts them together without copying.
        let fileBytes = jpegBytes + app1.count
        path.append(RecordingLayout.imageExtension)
        setJPEGParts(jpegBytes: jpegBytes, app1: app1)
        var error = storeFile(parts: 3, folderLength: folderLength)
        if error == ENOENT {
            // The minute folder went away under us (deleted by hand or by retention): once more.
            lastMinute[Int(token.camera)] = Int64.min
            path.truncate(to: folderLength)
            guard makeFolders(upTo: folderLength, camera: camera) else { return .failed }
            lastMinute[Int(token.camera)] = minute
            path.truncate(to: folderLength)
            path.append(byte: UInt8(ascii: "/"))
            RecordingLayout.appendStem(fields, seq: meta.seq, to: &path)
            path.append(RecordingLayout.imageExtension)
            setJPEGParts(jpegBytes: jpegBytes, app1: app1)
            error = storeFile(parts: 3, folderLength: folderLength)
        }
        guard error == 0 else {
            fail(camera, errno: error, what: error == EEXIST ? "not replacing the stored frame" : "writing JPEG")
            return .failed
        }
        // The viewers' copy, while the parts are at hand (storeFile only advances a copy of a
        // part it wrote in pieces, and only in a short write; set them again).
        if camera.channel.latest.hasClients {
            setJPEGParts(jpegBytes: jpegBytes, app1: app1)
            camera.channel.latest.offer(iov, count: 3, frame: shown)
        }

        // The sidecar, after its JPEG: a reader that sees the .json finds the .jpg.
        formatSidecar(into: &sidecar, head: camera.sidecarHead, meta: meta, quality: passthrough ? nil : camera.quality, fileBytes: fileBytes,
                      fix: fix, gps: gps)
        path.truncate(to: stemLength)
        path.append(RecordingLayout.sidecarExtension)
        iov[0] = iovec(iov_base: UnsafeMutableRawPointer(sidecar.base), iov_len: sidecar.count)
        error = sidecar.overflowed ? EOVERFLOW : storeFile(parts: 1, folderLength: folderLength)
        guard error == 0 else {
            // The JPEG without its record is not a frame: take it back.
            path.truncate(to: stemLength)
            path.append(RecordingLayout.imageExtension)
            if path.terminate() { unlink(UnsafeRawPointer(path.base).assumingMemoryBound(to: CChar.self)) }
            fail(camera, errno: error, what: error == EEXIST ? "not replacing the stored sidecar" : "writing sidecar")
            return .failed
        }
        let latencyNs = Clock.monotonicNs() &- meta.monotonicNs
        _ = latencyUs[Int(token.camera)].record(latencyNs / 1000)
        camera.counters.noteLatency(us: latencyNs / 1000)
        ledger.stored(fileBytes + sidecar.count)
        events?.publish(FrameEvent(kind: .stored, camera: token.camera, seq: meta.seq, wallNs: meta.wallNs,
                                   bytes: Int64(fileBytes + sidecar.count), width: meta.width, height: meta.height,
                                   hasFix: meta.hasFix, fix: meta.fix))
        return .written
    }

    /// iov[0...2]: SOI, APP1, the encoded JPEG after its SOI (every JPEG starts with one).
    @inline(__always)
    private func setJPEGParts(jpegBytes: Int, app1: UnsafeRawBufferPointer) {
        iov[0] = iovec(iov_base: jpeg, iov_len: 2)
        iov[1] = iovec(iov_base: UnsafeMutableRawPointer(mutating: app1.baseAddress), iov_len: app1.count)
        iov[2] = iovec(iov_base: jpeg + 2, iov_len: jpegBytes - 2)
    }

    /// Writes `iov[0..<parts]` to `path` + this run's temporary suffix, optionally fsyncs, and
    /// renames it to `path` (never onto an existing file).
    /// Returns 0 or the errno that stopped it; on failure no temporary file is left behind.
    private func storeFile(parts: Int, folderLength: Int) -> Int32 {
        let finalLength = path.count
        guard path.terminate() else { return ENAMETOOLONG }
        tempPath.reset()
        tempPath.append(bytes: UnsafeBufferPointer(start: path.base, count: finalLength))
        temporarySuffix.withUnsafeBufferPointer { tempPath.append(bytes: $0) }
        guard tempPath.terminate() else { return ENAMETOOLONG }
        let finalName = UnsafeRawPointer(path.base).assumingMemoryBound(to: CChar.self)
        let tempName = UnsafeRawPointer(tempPath.base).assumingMemoryBound(to: CChar.self)

        let fd = open(tempName, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return errno }
        var failure: Int32 = 0
        var remaining = 0
        for i in 0..<parts { remaining += iov[i].iov_len }
        var first = 0
        while remaining > 0 {
            let n = writev(fd, iov + first, Int32(parts - first))
            if n < 0 {
                if errno == EINTR { continue }
                failure = errno
                break
            }
            remaining -= n
            // Skip what was written; a short write leaves the rest of one part.
            var consumed = n
            while consumed > 0 && first < parts {
                if consumed >= iov[first].iov_len {
                    consumed -= iov[first].iov_len
                    first += 1
                } else {
                    iov[first].iov_base += consumed
                    iov[first].iov_len -= consumed
                    consumed = 0
                }
            }
        }
        if failure == 0 && fsync && Glibc.fsync(fd) != 0 { failure = errno }
        if close(fd) != 0 && failure == 0 { failure = errno }
        // Never onto an existing name: a wall clock that stood still or went back, or a second
        // run whose seq started where another's did, must not replace a stored frame.
        if failure == 0 { failure = rc_rename_noreplace(tempName, finalName) }
        if failure != 0 { unlink(tempName) }
        return failure
    }

    /// Creates OUT/NAME/YYYY/MM/DD/HH/MM one level at a time; `path` holds it in its first
    /// `length` bytes. Counts the frame as failed when it cannot.
    private func makeFolders(upTo length: Int, camera: WriterCamera) -> Bool {
        // Only the folders below OUT/NAME can be missing on a later minute, but creating from the
        // camera's folder down covers a tree deleted by hand as well.
        let start = camera.folder.count - 1
        var i = start
        var restarts = 0
        while i <= length {
            if i == length || path.base[i] == UInt8(ascii: "/") {
                let saved = i < path.capacity ? path.base[i] : 0
                path.base[i] = 0
                let rc = mkdir(UnsafeRawPointer(path.base).assumingMemoryBound(to: CChar.self), 0o755)
                let err = errno
                path.base[i] = saved
                if rc != 0 && err == ENOENT && restarts < 3 {
                    // A parent we just found was removed under us (retention removes emptied
                    // hour and day folders): from the top once more.
                    restarts += 1
                    i = start
                    continue
                }
                if rc != 0 && err != EEXIST {
                    fail(camera, errno: err, what: "creating folder")
                    return false
                }
            }
            i += 1
        }
        return true
    }

    /// Logs why a frame could not be stored (the caller counts it failed).
    private func fail(_ camera: WriterCamera, errno err: Int32, what: String) {
        if err == ENOSPC || err == EDQUOT { ledger.diskFull() }
        let now = Clock.monotonicNs()
        // Per step and errno: a full disk that fails sidecars after JPEGs says so too.
        let kind = FailureKind(step: what, errno: err)
        if let last = lastLogNs[kind], now - last < 5_000_000_000 { return }
        lastLogNs[kind] = now
        let reason = err == EEXIST ? "a file of that name is already stored (did the wall clock stand still or go back?)"
            : err > 0 ? String(cString: strerror(err)) : "error"
        let file = String(decoding: UnsafeBufferPointer(start: path.base, count: path.count), as: UTF8.self)
        logger.error("\(what) \(file): \(reason) (frames keep being counted as failed; further errors of this kind are not logged for 5 s)")
    }
}

/// One kind of write failure, for rate-limiting its log line. A plain value.
private struct FailureKind: Hashable {
    var step: String
    var errno: Int32
}
