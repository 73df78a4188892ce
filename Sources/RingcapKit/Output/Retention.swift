import Foundation
import Logging
import Synchronization

/// What retention deleted during a recording. A plain value. Encoded in the summary as
/// `"retention": {"deleted_files", "deleted_bytes", "deleted_folders"}`.
public struct RetentionTotals: Codable, Sendable, Equatable {
    /// `.jpg` and `.json` files removed (a frame is two files).
    public var deletedFiles = 0
    /// Their size in bytes.
    public var deletedBytes: Int64 = 0
    /// Minute folders removed whole.
    public var deletedFolders = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case deletedFiles = "deleted_files"
        case deletedBytes = "deleted_bytes"
        case deletedFolders = "deleted_folders"
    }
}

/// The retention thread (`rc-ret`): keeps `--keep-free` free on the output's file system and
/// what ringcap keeps under `--out` within `--max-size`, deleting the oldest recordings first:
/// whole minute folders, oldest minute first across all cameras, then single frames (sidecar
/// first, then its JPEG) from minutes that may still be written.
///
/// Owned by its thread: the index of minute folders and the logging state are touched by
/// nothing else until `join` returns. Thread-safe members: `requestStop`, `join` and `totals`
/// (relaxed atomic counters). Writers reach it only through `StoreLedger`.
///
/// It scans `--out` once at start (so earlier recordings count toward `--max-size`), then
/// learns new minute folders from the ledger; it rescans only when it finds nothing left to
/// delete (at most once a minute), which also corrects the byte count after deletions by hand.
final class RetentionThread: @unchecked Sendable {
    /// A minute this long past its end is closed: no frame still in the pipeline can belong to
    /// it (the ring holds about two seconds), so its folder can go whole.
    static let closedAfterNs: Int64 = 10_000_000_000
    /// Frames younger than this are left alone while recording: a disk full of other data must
    /// not make us delete each frame as it lands, and a frame still in a writer's hands must not
    /// be overtaken (what is left stays a gap-free newest run).
    static let youngNs: Int64 = 2_000_000_000
    static let tickNs: UInt64 = 200_000_000

    private let out: String
    private let cameraNames: [String]
    private let keepFree: FreeSpaceGoal
    private let ledger: StoreLedger
    private let logger: Logger
    private let stopRequested = OnceFlag()
    private let done = MonotonicSemaphore()

    // Totals: written by the thread, read by the recorder. Relaxed: plain counters; the
    // recorder reads them after `join`, whose semaphore orders them, or, if the join timed out,
    // as a snapshot that may lag by the deletions still going on.
    private let deletedFiles = Atomic<Int>(0)
    private let deletedBytes = Atomic<Int64>(0)
    private let deletedFolders = Atomic<Int>(0)

    // Owned by the thread.
    private var index: [MinuteFolder] = []          // sorted, oldest first
    private var indexed = Set<MinuteFolder>()
    private var seenNewest: [Int64]                 // per camera, the newest minute taken from the ledger
    private var scanned = false
    private var lastRescanNs: UInt64 = 0
    private var warnedUnmet = false
    private var lastUnmetWarningNs: UInt64?
    private var framesSinceLog = 0
    private var bytesSinceLog: Int64 = 0
    private var lastFrameLogNs: UInt64 = 0

    /// "Files deleted" events for an indexer; nil: none.
    private let events: FrameEvents?

    init(out: String, cameraNames: [String], keepFree: FreeSpaceGoal, ledger: StoreLedger, events: FrameEvents? = nil, logger: Logger) {
        self.events = events
        self.out = out.hasSuffix("/") ? String(out.dropLast()) : out
        self.cameraNames = cameraNames
        self.keepFree = keepFree
        self.ledger = ledger
        var logger = logger
        logger[metadataKey: "retention"] = "rc-ret"
        self.logger = logger
        seenNewest = Array(repeating: Int64.min, count: cameraNames.count)
    }

    var totals: RetentionTotals {
        var t = RetentionTotals()
        t.deletedFiles = deletedFiles.load(ordering: .relaxed)
        t.deletedBytes = deletedBytes.load(ordering: .relaxed)
        t.deletedFolders = deletedFolders.load(ordering: .relaxed)
        return t
    }

    func start() {
        startWorkerThread("rc-ret", done: done) { [self] in run() }
    }

    /// Asks for a last pass and the end. Call after the writers are done: the last pass may then
    /// delete frames of any age to meet `--max-size` exactly.
    func requestStop() {
        stopRequested.set()
        ledger.doorbell.ringAll()
    }

    func join(timeoutNs: UInt64) -> Bool {
        done.wait(timeoutNs: timeoutNs)
    }

    private func run() {
        scanned = scan()
        while true {
            let last = stopRequested.isSet
            var met = true
            if scanned {
                learnNewMinutes()
                met = enforce(lastPass: last)
            }
            if last { break }
            // Not "over the cap" in the re-check: when only young frames are left that would
            // spin. A ring that comes while we are deleting waits for the next tick at worst.
            // After a round that could not meet a guard, writers' rings (one a frame while over
            // the cap) are let pass until the tick: nothing new could go sooner than that.
            let deadline = Clock.monotonicNs() + Self.tickNs
            repeat {
                let now = Clock.monotonicNs()
                _ = ledger.doorbell.wait(timeoutNs: deadline > now ? deadline - now : 0) { stopRequested.isSet }
            } while !met && !stopRequested.isSet && Clock.monotonicNs() < deadline
        }
        flushFrameLog()
    }

    // MARK: - What is there

    /// Walks `OUT/<camera>/YYYY/MM/DD/HH/MM` and rebuilds the index; adds what it found to the
    /// ledger. Returns false when a stop interrupted it.
    private func scan() -> Bool {
        lastRescanNs = Clock.monotonicNs()
        // Writers keep storing while we walk. Files they stored before we started are in the
        // counter and will be found again: take the counter's value now and replace it with what
        // we find. Files stored while we walk may be counted twice, never missed: an overestimate
        // by at most what was written during the scan.
        let before = ledger.storedBytes.load(ordering: .relaxed)
        var found: [MinuteFolder] = []
        var bytes: Int64 = 0
        let countBytes = ledger.maxBytes != Int64.max
        // Through real folders only: a link under --out is never followed (RecordingTree).
        let complete = RecordingTree.forEachMinute(out: out, shouldStop: { stopRequested.isSet }) { camera, minute, folder in
            // Sizes matter only for --max-size; months of frames on an SD card take long to
            // stat, folders alone do not.
            if countBytes {
                let f = UTCFields(unixNs: minute &* 60_000_000_000)
                for entry in folder.entries() where entry.kind == .file
                    && RecordingLayout.frameName(entry.name, hour: Int(f.hour), minute: Int(f.minute)) != nil {
                    bytes += folder.fileSize(entry.name) ?? 0
                }
            }
            found.append(MinuteFolder(minute: minute, camera: camera))
            return true
        }
        if !complete { return false }
        if countBytes { ledger.storedBytes.add(bytes - before, ordering: .relaxed) }
        found.sort()
        index = found
        indexed = Set(found)
        for i in seenNewest.indices where seenNewest[i] != Int64.min {
            insert(MinuteFolder(minute: seenNewest[i], camera: cameraNames[i]))
        }
        logger.debug("retention: \(found.count) minute folder(s), \(ByteSize.format(bytes)) of recordings under \(out)")
        return true
    }

    /// Minute folders the writers made since the last look.
    private func learnNewMinutes() {
        for i in cameraNames.indices {
            let minute = ledger.newestMinute(camera: i)
            if minute != seenNewest[i] && minute != Int64.min {
                seenNewest[i] = minute
                insert(MinuteFolder(minute: minute, camera: cameraNames[i]))
            }
        }
    }

    private func insert(_ folder: MinuteFolder) {
        guard indexed.insert(folder).inserted else { return }
        // Nearly always the newest: append; a clock step back inserts in the middle.
        if let last = index.last, folder < last {
            var lo = 0, hi = index.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if index[mid] < folder { lo = mid + 1 } else { hi = mid }
            }
            index.insert(folder, at: lo)
        } else {
            index.append(folder)
        }
    }

    // MARK: - Deleting

    private enum Shortfall {
        case maxSize(stored: Int64)
        case keepFree(free: UInt64, wanted: UInt64)
    }

    /// Which guard is crossed now, if any. `statvfs` is one system call.
    private func shortfall() -> Shortfall? {
        let stored = ledger.storedBytes.load(ordering: .relaxed)
        if stored > ledger.maxBytes { return .maxSize(stored: stored) }
        if keepFree != .off {
            var fs = statvfs()
            if statvfs(out, &fs) == 0 {
                let unit = UInt64(fs.f_frsize)
                let free = UInt64(fs.f_bavail) * unit
                let wanted = keepFree.bytesToKeep(ofTotal: UInt64(fs.f_blocks) * unit)
                if free < wanted { return .keepFree(free: free, wanted: wanted) }
            }
        }
        return nil
    }

    private func describe(_ s: Shortfall) -> String {
        switch s {
        case .maxSize(let stored):
            return "to stay within --max-size \(ByteSize.format(ledger.maxBytes)) (recordings: \(ByteSize.format(stored)))"
        case .keepFree(let free, let wanted):
            return "to keep --keep-free \(keepFree) free (\(ByteSize.format(Int64(free))) free, \(ByteSize.format(Int64(wanted))) wanted)"
        }
    }

    /// Deletes oldest first until no guard is crossed or nothing more may go. Returns whether
    /// the guards are met.
    private func enforce(lastPass: Bool) -> Bool {
        while let short = shortfall() {
            // Only --max-size may take young frames, and only once the writers are done.
            var allowYoung = false
            if lastPass, case .maxSize = short { allowYoung = true }
            if deleteOldest(short, allowYoung: allowYoung) { continue }
            if !lastPass && Clock.monotonicNs() - lastRescanNs > 60_000_000_000 {
                // Nothing left that we know of: look again (folders recreated by a late frame,
                // files deleted by hand that the counter still holds).
                _ = scan()
                if deleteOldest(short, allowYoung: false) { continue }
            }
            // Once per shortfall, and at most once a minute when it comes and goes.
            let now = Clock.monotonicNs()
            if !warnedUnmet && (lastUnmetWarningNs.map { now - $0 >= 60_000_000_000 } ?? true) {
                warnedUnmet = true
                lastUnmetWarningNs = now
                let outcome: String
                if case .maxSize = short { outcome = "the cap is overrun by frames until they are \(Self.youngNs / 1_000_000_000) s old" }
                else { outcome = "frames that do not fit on the disk are counted as failed" }
                logger.warning("retention: cannot delete enough \(describe(short)): nothing of ours is left but the newest \(Self.youngNs / 1_000_000_000) s of frames; \(outcome)")
            }
            return false
        }
        warnedUnmet = false
        return true
    }

    /// Deletes the oldest thing that may go: a closed minute folder whole, else single frames
    /// from the oldest open minute. Returns false when nothing could be deleted.
    private func deleteOldest(_ short: Shortfall, allowYoung: Bool) -> Bool {
        let now = Clock.wallNs()
        var i = 0
        while i < index.count {
            let folder = index[i]
            if (folder.minute + 1) &* 60_000_000_000 &+ Self.closedAfterNs <= now {
                deleteFolder(folder, because: short)
                index.remove(at: i)
                indexed.remove(folder)
                return true
            }
            // Open: every camera's folder of this minute together, frames merged by time.
            var group = [folder]
            var j = i + 1
            while j < index.count && index[j].minute == folder.minute { group.append(index[j]); j += 1 }
            if deleteFrames(in: group, now: now, allowYoung: allowYoung) > 0 { return true }
            i = j
        }
        return false
    }

    private struct FrameFiles {
        var camera: String
        var folder: TreeFolder
        var stem: Substring
        var timeNs: Int64
        var seq: UInt64
        var hasJPG = false
        var hasJSON = false
    }

    /// Deletes frames from the open minute folders of `group`, oldest first, while a guard is
    /// crossed. Per camera it stops at the first frame without its sidecar (a writer is between
    /// the two renames, or an earlier frame is still in the pipeline): what is left stays a
    /// gap-free run of the newest frames.
    private func deleteFrames(in group: [MinuteFolder], now: Int64, allowYoung: Bool) -> Int {
        var frames: [FrameFiles] = []
        for folder in group {
            guard let opened = RecordingTree.openMinute(out: out, camera: folder.camera, minute: folder.minute) else { continue }
            let directory = opened.folders.last!
            let f = UTCFields(unixNs: folder.minute &* 60_000_000_000)
            var byStem: [Substring: Int] = [:]
            for entry in directory.entries() where entry.kind == .file {
                guard let parsed = RecordingLayout.frameName(entry.name, hour: Int(f.hour), minute: Int(f.minute)) else { continue }
                let k: Int
                if let existing = byStem[parsed.stem] { k = existing } else {
                    k = frames.count
                    byStem[parsed.stem] = k
                    frames.append(FrameFiles(camera: folder.camera, folder: directory, stem: parsed.stem,
                                             timeNs: folder.minute &* 60_000_000_000 &+ parsed.microsInMinute &* 1000,
                                             seq: parsed.seq))
                }
                if parsed.isSidecar { frames[k].hasJSON = true } else { frames[k].hasJPG = true }
            }
        }
        frames.sort { $0.timeNs != $1.timeNs ? $0.timeNs < $1.timeNs : $0.seq < $1.seq }
        var blocked = Set<String>()
        var deleted = 0
        for frame in frames {
            if !allowYoung && now - frame.timeNs < Self.youngNs { break }  // the rest are younger still
            if blocked.contains(frame.camera) { continue }
            if frame.hasJPG && !frame.hasJSON && now - frame.timeNs < Self.closedAfterNs {
                blocked.insert(frame.camera)  // in progress
                continue
            }
            guard shortfall() != nil else { break }
            // The sidecar first: a reader that sees a .json must find its .jpg.
            var bytes: Int64 = 0
            if frame.hasJSON { bytes += max(0, remove(frame.stem + RecordingLayout.sidecarExtension.description, in: frame.folder)) }
            if frame.hasJPG { bytes += max(0, remove(frame.stem + RecordingLayout.imageExtension.description, in: frame.folder)) }
            deleted += 1
            if let events, events.isSubscribed {
                events.publish(FrameEvent(kind: .frameDeleted, camera: events.cameraID(for: frame.camera), seq: frame.seq,
                                          wallNs: frame.timeNs, bytes: bytes, width: 0, height: 0, hasFix: false,
                                          fix: GPSFix(latitude: 0, longitude: 0, mode: 0, receivedMonotonicNs: 0)))
            }
            framesSinceLog += 1
            bytesSinceLog += bytes
        }
        if deleted > 0 { logFramesIfDue() }
        return deleted
    }

    /// Deletes a closed minute folder's frame files (each sidecar before its JPEG), then the
    /// folder and the parents it leaves empty, up to the camera's folder. Anything else in it
    /// stays, and so does the folder then.
    private func deleteFolder(_ folder: MinuteFolder, because short: Shortfall) {
        let relative = folder.relativePath
        // Opened level by level without following links: a link in the way means the folder is
        // not ours, and nothing in it is deleted.
        guard let opened = RecordingTree.openMinute(out: out, camera: folder.camera, minute: folder.minute) else { return }
        let directory = opened.folders.last!
        let f = UTCFields(unixNs: folder.minute &* 60_000_000_000)
        var jsons: [String] = [], jpgs: [String] = []
        for entry in directory.entries() where entry.kind == .file {
            guard let parsed = RecordingLayout.frameName(entry.name, hour: Int(f.hour), minute: Int(f.minute)) else { continue }
            if parsed.isSidecar { jsons.append(entry.name) } else { jpgs.append(entry.name) }
        }
        var files = 0
        var bytes: Int64 = 0
        // All sidecars, then all JPEGs: never a .json without its .jpg, even for a moment.
        for name in jsons.sorted() + jpgs.sorted() {
            let n = remove(name, in: directory)
            if n >= 0 { files += 1; bytes += n }
        }
        var removedFolder = false
        // MM, then HH, DD, MM, YYYY while empty, each from its parent's descriptor; the camera's
        // folder stays.
        if opened.folders[4].removeFolder(opened.names[5]) {
            removedFolder = true
            deletedFolders.add(1, ordering: .relaxed)
            for level in stride(from: 4, through: 1, by: -1) {
                if !opened.folders[level - 1].removeFolder(opened.names[level]) { break }
            }
        }
        if files > 0, let events, events.isSubscribed {
            events.publish(FrameEvent(kind: .minuteDeleted, camera: events.cameraID(for: folder.camera), seq: 0,
                                      wallNs: folder.minute &* 60_000_000_000, bytes: bytes, width: 0, height: 0, hasFix: false,
                                      fix: GPSFix(latitude: 0, longitude: 0, mode: 0, receivedMonotonicNs: 0)))
        }
        if files > 0 || removedFolder {
            logger.notice("retention: deleted \(relative) (\(files) file(s), \(ByteSize.format(bytes))) \(describe(short))")
        }
    }

    /// Unlinks one of our files and takes its size off the ledger. Returns its size, or -1 when
    /// it was already gone.
    private func remove(_ name: String, in folder: TreeFolder) -> Int64 {
        guard let size = folder.fileSize(name) else { return -1 }
        guard folder.removeFile(name) else { return -1 }
        ledger.storedBytes.subtract(size, ordering: .relaxed)
        deletedFiles.add(1, ordering: .relaxed)
        deletedBytes.add(size, ordering: .relaxed)
        return size
    }

    /// Single-frame deletions are logged at most once every 5 s, as a count.
    private func logFramesIfDue() {
        let now = Clock.monotonicNs()
        guard now - lastFrameLogNs >= 5_000_000_000 else { return }
        flushFrameLog()
        lastFrameLogNs = now
    }

    private func flushFrameLog() {
        guard framesSinceLog > 0 else { return }
        logger.notice("retention: deleted \(framesSinceLog) single frame(s) (\(ByteSize.format(bytesSinceLog))) from minutes still being recorded")
        framesSinceLog = 0
        bytesSinceLog = 0
    }
}
