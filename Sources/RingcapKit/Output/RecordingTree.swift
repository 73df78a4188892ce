import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An open folder under `--out`, reached without following a symbolic link at any step below
/// `--out` itself. Everything that deletes (retention, the start-up clean-up) works through these:
/// names are looked up relative to the folder's descriptor (`openat` with `O_NOFOLLOW`,
/// `fstatat` with `AT_SYMLINK_NOFOLLOW`, `unlinkat`), so a link planted anywhere in the tree
/// (`OUT/ext -> /elsewhere`, `OUT/cam0/2018 -> /`) is never entered, and a folder renamed or
/// swapped for a link between a look and a delete cannot redirect the delete outside `--out`.
/// ringcap often runs as root: this is what keeps it inside the folder it was given.
///
/// Owned by one thread; `deinit` closes the descriptor.
final class TreeFolder {
    let fd: Int32

    private init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    /// `--out` itself: the user's path, which may be a link (to a mounted disk, say).
    static func open(root path: String) -> TreeFolder? {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        return fd >= 0 ? TreeFolder(fd: fd) : nil
    }

    /// A real sub-folder `name`; nil when it is missing, a file, or a symbolic link.
    func folder(_ name: String) -> TreeFolder? {
        let fd = openat(self.fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        return fd >= 0 ? TreeFolder(fd: fd) : nil
    }

    enum Kind { case folder, file, other }

    /// The entries, with what each is (a link is `other`, whatever it points to).
    func entries() -> [(name: String, kind: Kind)] {
        let copy = dup(fd)
        guard copy >= 0, let dir = fdopendir(copy) else {
            if copy >= 0 { close(copy) }
            return []
        }
        defer { closedir(dir) }
        rewinddir(dir)
        var result: [(String, Kind)] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name == "." || name == ".." { continue }
            var kind: Kind
            switch Int32(entry.pointee.d_type) {
            case Int32(DT_DIR): kind = .folder
            case Int32(DT_REG): kind = .file
            case Int32(DT_UNKNOWN): kind = self.kind(of: name)
            default: kind = .other
            }
            result.append((name, kind))
        }
        return result
    }

    /// The real sub-folders whose names are numbers of `width` digits within `range`, in order.
    func numberedFolders(width: Int, in range: ClosedRange<Int>) -> [(name: String, value: Int)] {
        entries().compactMap { entry in
            guard entry.kind == .folder else { return nil }
            return RecordingLayout.number(entry.name, width: width, in: range).map { (entry.name, $0) }
        }.sorted { $0.value < $1.value }
    }

    private func kind(of name: String) -> Kind {
        var st = stat()
        guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return .other }
        switch st.st_mode & S_IFMT {
        case S_IFDIR: return .folder
        case S_IFREG: return .file
        default: return .other
        }
    }

    /// The size of regular file `name`; nil when it is missing or not a regular file.
    func fileSize(_ name: String) -> Int64? {
        var st = stat()
        guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int64(st.st_size)
    }

    /// Removes file `name` (never what a link points to: unlinkat removes the link itself).
    func removeFile(_ name: String) -> Bool { unlinkat(fd, name, 0) == 0 }

    /// Removes the empty sub-folder `name`.
    func removeFolder(_ name: String) -> Bool { unlinkat(fd, name, AT_REMOVEDIR) == 0 }
}

/// Walks the frames' part of `--out`: `OUT/<camera>/YYYY/MM/DD/HH/MM`, through real folders only
/// (see `TreeFolder`), camera folders being those with a valid camera name (so `.ringcap` and
/// anything else a user keeps there are never looked into). Stateless.
enum RecordingTree {
    /// Calls `body` for every minute folder, oldest first per camera, with the folder and its
    /// Unix minute. `body` returns false to stop the walk; so does `shouldStop`, asked between
    /// folders. Returns false when the walk was stopped.
    @discardableResult
    static func forEachMinute(out: String, shouldStop: () -> Bool = { false },
                              _ body: (_ camera: String, _ minute: Int64, _ folder: TreeFolder) -> Bool) -> Bool {
        guard let root = TreeFolder.open(root: out) else { return true }
        let cameras = root.entries().filter { $0.kind == .folder && (try? CameraSpec.validate(name: $0.name)) != nil }
            .map(\.name).sorted()
        for camera in cameras {
            guard let c = root.folder(camera) else { continue }
            for y in c.numberedFolders(width: 4, in: 1970...9999) {
                guard let yf = c.folder(y.name) else { continue }
                for mo in yf.numberedFolders(width: 2, in: 1...12) {
                    guard let mof = yf.folder(mo.name) else { continue }
                    for d in mof.numberedFolders(width: 2, in: 1...31) {
                        guard let df = mof.folder(d.name) else { continue }
                        for h in df.numberedFolders(width: 2, in: 0...23) {
                            guard let hf = df.folder(h.name) else { continue }
                            for mi in hf.numberedFolders(width: 2, in: 0...59) {
                                if shouldStop() { return false }
                                guard let mf = hf.folder(mi.name) else { continue }
                                let minute = RecordingLayout.unixMinute(year: y.value, month: mo.value, day: d.value,
                                                                       hour: h.value, minute: mi.value)
                                if !body(camera, minute, mf) { return false }
                            }
                        }
                    }
                }
            }
        }
        return true
    }

    /// The folders from the camera's down to a minute's, opened one level at a time without
    /// following links: `[camera, YYYY, MM, DD, HH, MM]`, or nil when any level is missing or a
    /// link. `names[i]` is the name of `folders[i]` inside `folders[i - 1]` (the first inside OUT).
    static func openMinute(out: String, camera: String, minute: Int64) -> (folders: [TreeFolder], names: [String])? {
        guard let root = TreeFolder.open(root: out) else { return nil }
        let names = RecordingLayout.minuteFolderPath(camera: camera, minute: minute).split(separator: "/").map(String.init)
        var folders: [TreeFolder] = []
        var parent = root
        for name in names {
            guard let next = parent.folder(name) else { return nil }
            folders.append(next)
            parent = next
        }
        return (folders, names)
    }
}

/// Removes the temporaries an earlier run left in the minute folders when it was killed or lost
/// power, in the background, while this run already records: a year of frames on an SD card takes
/// minutes to walk, and nothing about them needs to precede the first frame. This run's own
/// temporaries carry its token (`RecordingLayout`) and are never touched.
///
/// Owned by its thread (`rc-clean`); `removed` is read after `join`.
final class LeftoverCleaner: @unchecked Sendable {
    private let out: String
    private let currentSuffix: String
    private let logger: Logger
    private let stopRequested = OnceFlag()
    private let done = MonotonicSemaphore()
    /// Temporaries removed. Relaxed: a total read after `join`.
    let removed = Atomic<Int>(0)

    /// True once the recording stored its first frame: the walk waits for it (at most 5 s),
    /// so that nothing of the clean-up comes before a frame.
    private let firstFrameStored: @Sendable () -> Bool

    init(out: String, currentSuffix: String, logger: Logger, firstFrameStored: @escaping @Sendable () -> Bool) {
        self.out = out
        self.currentSuffix = currentSuffix
        self.logger = logger
        self.firstFrameStored = firstFrameStored
    }

    func start() {
        startWorkerThread("rc-clean", done: done) { [self] in
            // Below the cameras and writers: it is housekeeping. (On Linux the nice value is the
            // thread's own, and `who` 0 is the calling thread.)
            setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
            run()
        }
    }

    func requestStop() { stopRequested.set() }

    func join(timeoutNs: UInt64) -> Bool { done.wait(timeoutNs: timeoutNs) }

    private func run() {
        let waitUntil = Clock.monotonicNs() + 5_000_000_000
        while !firstFrameStored() && !stopRequested.isSet && Clock.monotonicNs() < waitUntil {
            Clock.sleep(untilMonotonicNs: Clock.monotonicNs() + 20_000_000)
        }
        RecordingTree.forEachMinute(out: out, shouldStop: { stopRequested.isSet }) { _, _, folder in
            for entry in folder.entries() where entry.kind == .file
                && RecordingLayout.isLeftoverTemporary(entry.name, currentSuffix: currentSuffix) {
                if folder.removeFile(entry.name) { removed.add(1, ordering: .relaxed) }
            }
            return true
        }
        let n = removed.load(ordering: .relaxed)
        if n > 0 { logger.notice("removed \(n) temporary file(s) left by an earlier run") }
    }
}
