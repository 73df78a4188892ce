import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A tmpfs of its own, mounted for one test: a real file system that really fills up.
/// Not thread-safe: owned by one test, which calls `unmount()` in a defer (`deinit` is the
/// safety net).
final class TmpfsMount {
    let path: String
    private var mounted = false

    init(sizeBytes: Int, inodes: Int? = nil) throws {
        path = try TestEnvironment.scratch("tmpfs").path
        guard let mount = TestProcess.which("mount") else { throw TestFailure("no mount command") }
        let options = "size=\(sizeBytes)" + (inodes.map { ",nr_inodes=\($0)" } ?? "")
        let result = try runCommand(mount, ["-t", "tmpfs", "-o", options, "tmpfs", path], timeout: 20)
        guard result.status == 0 else {
            rmdir(path)
            throw TestFailure("mount -t tmpfs failed: \(result.stderr)")
        }
        mounted = true
    }

    deinit { unmount() }

    func unmount() {
        guard mounted else { return }
        if let umount = TestProcess.which("umount") { _ = try? runCommand(umount, [path], timeout: 20) }
        mounted = false
        rmdir(path)
    }

    /// Bytes free (as `df` shows them: available to unprivileged writers) and the total.
    var space: (free: Int, total: Int) {
        var fs = statvfs()
        guard statvfs(path, &fs) == 0 else { return (0, 0) }
        return (Int(fs.f_bavail) * Int(fs.f_frsize), Int(fs.f_blocks) * Int(fs.f_frsize))
    }
}

/// Writes `bytes` of ballast to `path`, as much as fits.
func writeBallast(_ path: String, bytes: Int) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { return }
    defer { close(fd) }
    var chunk = [UInt8](repeating: 0xA5, count: 64 * 1024)
    var left = bytes
    while left > 0 {
        let n = chunk.withUnsafeMutableBytes { write(fd, $0.baseAddress, min(left, $0.count)) }
        if n <= 0 { return }
        left -= n
    }
}

/// Every regular file under `root` and its size, relative paths.
func filesUnder(_ root: String) -> [String: Int] {
    var files: [String: Int] = [:]
    let walker = FileManager.default.enumerator(atPath: root)
    while let relative = walker?.nextObject() as? String {
        var st = stat()
        if lstat(root + "/" + relative, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG { files[relative] = Int(st.st_size) }
    }
    return files
}

private let runningAsRoot = getuid() == 0

/// A full disk and retention (`--keep-free`, `--max-size`), on real file systems: tmpfs mounts
/// that really run out of space (root only), and plain folders.
@Suite(.serialized)
struct FullDiskTests {
    /// ENOSPC: frames fail, are counted, are logged a few times (not once per frame), leave no
    /// temporary or partial file; once space is freed mid-run, frames are written again.
    @Test(.enabled(if: runningAsRoot, "mounting a tmpfs needs root"))
    func fullDiskFailsFramesThenRecovers() async throws {
        let disk = try TmpfsMount(sizeBytes: 8 << 20)
        defer { disk.unmount() }
        let ballast = disk.path + "/ballast"
        // Leave about 150 KB: a handful of 320x240 frames, then ENOSPC.
        writeBallast(ballast, bytes: disk.space.free - 150_000)
        let out = disk.path + "/out"
        let dir = try TestEnvironment.scratch("fulldisk")
        defer { try? FileManager.default.removeItem(at: dir) }
        let recording = try LiveRecording(["--camera", "test:320x240@30", "--keep-free", "0", "--writers", "2",
                                           "--duration", "60"], in: dir, out: URL(fileURLWithPath: out))
        let ringcap = recording.process, stats = recording.stats.path
        defer { ringcap.stop() }
        func logText() -> String { recording.stderr }
        func jsonCount() -> Int { filesUnder(out).keys.filter { $0.hasSuffix(".json") }.count }

        let full = try await waitUntil(timeout: 20) { logText().contains("No space left on device") }
        try #require(full, "no ENOSPC within 20 s; stderr: \(logText())")
        // Stay full long enough for many frames to fail (30 frames/s).
        try await Task.sleep(for: .seconds(3))
        let beforeFree = jsonCount()
        unlink(ballast)
        let recovered = try await waitUntil(timeout: 20) { jsonCount() >= beforeFree + 20 }
        #expect(recovered, "frames were not written again after space was freed: \(beforeFree) then \(jsonCount())")
        ringcap.signalGroup(SIGTERM)
        let status = ringcap.wait(timeout: 30)
        #expect(status == 0, "exit \(String(describing: status)): \(logText())")

        let (frames, strays, orphans) = try recordedFrames(in: URL(fileURLWithPath: out))
        #expect(strays.isEmpty, "temporaries or strays left: \(strays)")
        #expect(orphans.isEmpty, "JPEGs without sidecars: \(orphans)")
        let list = frames["cam0"] ?? []
        for frame in list {
            let probe = probeImage(frame.jpg)
            #expect(probe?.width == 320 && probe?.height == 240, "\(frame.jpg) does not decode")
        }
        let c = try #require(try readStats(URL(fileURLWithPath: stats)).cameras["cam0"])
        let captured = try #require(c["captured"] as? Int), written = try #require(c["written"] as? Int)
        let dropped = try #require(c["dropped"] as? Int), failed = try #require(c["failed"] as? Int)
        #expect(captured == written + dropped + failed, "\(captured) != \(written) + \(dropped) + \(failed)")
        #expect(failed >= 30, "a full disk for 3 s at 30 frames/s fails many frames; failed \(failed)")
        #expect(written == list.count, "written \(written), on disk \(list.count)")
        #expect(written > beforeFree, "written \(written), before the free \(beforeFree)")
        // Logged at most once every 5 s per writer and kind (folder, JPEG, sidecar), not once per frame.
        let elapsed = try #require(try readStats(URL(fileURLWithPath: stats)).root["elapsed_s"] as? Double)
        let lines = logText().split(separator: "\n").filter { $0.contains("No space left on device") }.count
        #expect(lines >= 1 && lines <= 2 * 3 * (Int(elapsed / 5) + 1) && lines < failed / 3,
                "\(lines) ENOSPC log lines for \(failed) failed frames in \(elapsed) s")
    }

    /// Out of inodes with exactly one left: each JPEG is written, then its sidecar cannot be
    /// created. The JPEG is taken back (no .jpg without its .json), the frame counted as failed;
    /// once inodes are freed, frames are whole again.
    @Test(.enabled(if: runningAsRoot, "mounting a tmpfs needs root"))
    func sidecarFailingAfterItsJPEGTakesTheJPEGBack() async throws {
        let disk = try TmpfsMount(sizeBytes: 8 << 20, inodes: 64)
        defer { disk.unmount() }
        let out = disk.path + "/out"
        // The minute folders of now and the next two minutes exist, so that no folder needs an
        // inode while the test runs.
        let now = Int(Date().timeIntervalSince1970)
        for m in 0..<3 {
            var t = time_t(now + 60 * m)
            var f = tm()
            gmtime_r(&t, &f)
            let folder = String(format: "%@/cam0/%04d/%02d/%02d/%02d/%02d", out, f.tm_year + 1900, f.tm_mon + 1, f.tm_mday, f.tm_hour, f.tm_min)
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
        // So do ringcap's own folder and the lock's PID file, made at every start.
        try FileManager.default.createDirectory(atPath: out + "/.ringcap", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: out + "/.ringcap/lock", contents: nil)
        // Use up every inode, then give one back: room for a JPEG, none for its sidecar.
        let ballast = disk.path + "/ballast"
        try FileManager.default.createDirectory(atPath: ballast, withIntermediateDirectories: false)
        var made = 0
        var stoppedBy: Int32 = 0
        while made < 10_000 {
            let fd = open(ballast + "/\(made)", O_WRONLY | O_CREAT | O_EXCL, 0o644)
            if fd < 0 { stoppedBy = errno; break }
            close(fd)
            made += 1
        }
        try #require(made > 0 && stoppedBy == ENOSPC, "filling inodes stopped with errno \(stoppedBy) after \(made)")
        unlink(ballast + "/\(made - 1)")

        let dir = try TestEnvironment.scratch("inodes")
        defer { try? FileManager.default.removeItem(at: dir) }
        let recording = try LiveRecording(["--camera", "test:320x240@30", "--keep-free", "0", "--writers", "1",
                                           "--duration", "60"], in: dir, out: URL(fileURLWithPath: out))
        let ringcap = recording.process, stats = recording.stats.path
        defer { ringcap.stop() }
        func logText() -> String { recording.stderr }
        let sidecarsFail = try await waitUntil(timeout: 20) { logText().contains("writing sidecar") }
        try #require(sidecarsFail, "no sidecar failure within 20 s: \(logText())")
        // Long enough for many frames to go the same way. Had a JPEG been left behind, the
        // next frames would fail at their JPEG instead, and it would show as an orphan below.
        try await Task.sleep(for: .seconds(1))
        try FileManager.default.removeItem(atPath: ballast)
        let recovered = try await waitUntil(timeout: 20) { filesUnder(out).keys.filter { $0.hasSuffix(".json") }.count >= 10 }
        #expect(recovered, "frames were not written again after inodes were freed")
        ringcap.signalGroup(SIGTERM)
        #expect(ringcap.wait(timeout: 30) == 0, "\(logText())")

        let (frames, strays, orphans) = try recordedFrames(in: URL(fileURLWithPath: out))
        #expect(strays.isEmpty && orphans.isEmpty, "strays \(strays), orphans \(orphans)")
        let c = try #require(try readStats(URL(fileURLWithPath: stats)).cameras["cam0"])
        let captured = try #require(c["captured"] as? Int), written = try #require(c["written"] as? Int)
        let dropped = try #require(c["dropped"] as? Int), failed = try #require(c["failed"] as? Int)
        #expect(captured == written + dropped + failed, "\(captured) != \(written) + \(dropped) + \(failed)")
        #expect(failed >= 20 && written == (frames["cam0"] ?? []).count, "failed \(failed), written \(written)")
        // One writer: a line every 5 s at most for this kind, not one per frame.
        let elapsed = try #require(try readStats(URL(fileURLWithPath: stats)).root["elapsed_s"] as? Double)
        let lines = logText().components(separatedBy: "writing sidecar").count - 1
        #expect(lines >= 1 && lines <= Int(elapsed / 5) + 1 && lines < failed / 3,
                "\(lines) sidecar failure lines for \(failed) failed frames in \(elapsed) s")
    }

    /// A folder that cannot be created (a file is in the way of the camera's folder): frames
    /// fail and are counted; once it is out of the way, folders are made and frames written.
    @Test func folderCreationFailsThenRecovers() async throws {
        let dir = try TestEnvironment.scratch("nofolder")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try Data("in the way".utf8).write(to: URL(fileURLWithPath: out + "/cam0"))
        let recording = try LiveRecording(["--camera", "test:320x240@30", "--writers", "2", "--duration", "60"],
                                          in: dir, out: URL(fileURLWithPath: out))
        let ringcap = recording.process, stats = recording.stats.path
        defer { ringcap.stop() }
        func logText() -> String { recording.stderr }
        let failing = try await waitUntil(timeout: 20) { logText().contains("creating folder") }
        try #require(failing, "no folder failure within 20 s: \(logText())")
        try await Task.sleep(for: .seconds(1))
        unlink(out + "/cam0")
        let recovered = try await waitUntil(timeout: 20) { filesUnder(out).keys.filter { $0.hasSuffix(".json") }.count >= 10 }
        #expect(recovered, "frames were not written once the folder could be made")
        ringcap.signalGroup(SIGTERM)
        #expect(ringcap.wait(timeout: 30) == 0, "\(logText())")
        let c = try #require(try readStats(URL(fileURLWithPath: stats)).cameras["cam0"])
        let captured = try #require(c["captured"] as? Int), written = try #require(c["written"] as? Int)
        let dropped = try #require(c["dropped"] as? Int), failed = try #require(c["failed"] as? Int)
        #expect(captured == written + dropped + failed)
        #expect(failed >= 10 && written >= 10, "failed \(failed), written \(written)")
        let (frames, strays, orphans) = try recordedFrames(in: URL(fileURLWithPath: out))
        #expect(strays.isEmpty && orphans.isEmpty && (frames["cam0"] ?? []).count == written)
        #expect(logText().contains("Not a directory"), "the reason is logged: \(logText())")
    }

    /// `--max-size`: a recording several times the cap stays under it; the newest frames stay,
    /// what is left is a gap-free newest run per camera, deleted oldest first across cameras,
    /// and the deletions are counted.
    @Test func maxSizeKeepsTheNewestUnderTheCap() async throws {
        let dir = try TestEnvironment.scratch("maxsize")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path
        let stats = dir.appendingPathComponent("stats.json").path
        let cap = 9_000_000
        // --when-full wait: no drops, so what is left must be exactly seq k..<captured.
        let ringcap = try TestProcess(TestEnvironment.ringcapBinary.path,
                                      ["record", "--camera", "big=test:1280x720@30", "--camera", "small=test:640x360@30", "--out", out,
                                       "--quality", "95", "--when-full", "wait", "--writers", "2", "--keep-free", "0",
                                       "--max-size", "9MB", "--duration", "8", "--stats-json", stats],
                                      stderr: dir.appendingPathComponent("stderr").path)
        defer { ringcap.stop() }
        // Sample the total while recording: the cap may be overrun only by the newest 2 s that
        // are never deleted while recording (and what lands before the retention thread runs).
        var largest = 0
        while ringcap.isRunning {
            largest = max(largest, filesUnder(out).values.reduce(0, +))
            try await Task.sleep(for: .milliseconds(100))
        }
        let stderr = (try? String(contentsOfFile: dir.appendingPathComponent("stderr").path, encoding: .utf8)) ?? ""
        #expect(ringcap.exitStatus == 0, "\(stderr)")

        let (root, cameras) = try readStats(URL(fileURLWithPath: stats))
        let retention = try #require(root["retention"] as? [String: Any])
        let deletedFiles = try #require(retention["deleted_files"] as? Int)
        let deletedBytes = try #require(retention["deleted_bytes"] as? Int)
        let onDisk = filesUnder(out)
        let total = onDisk.values.reduce(0, +)
        let largestFrame = onDisk.values.max() ?? 0
        #expect(total <= cap + largestFrame, "\(total) bytes under --out, cap \(cap)")
        // About 3.7 MB/s (1280x720 at quality 95 is ~95 KB a frame) for 8 s: 3 × the cap; a
        // loaded machine may capture less, hence 2 ×.
        #expect(total + deletedBytes > 2 * cap, "the recording (\(total + deletedBytes) bytes) should exceed the cap several times")
        #expect(deletedFiles > 0 && deletedFiles % 2 == 0, "deleted \(deletedFiles) files: frames go as pairs")

        let (frames, strays, orphans) = try recordedFrames(in: URL(fileURLWithPath: out))
        #expect(strays.isEmpty && orphans.isEmpty, "strays \(strays), orphans \(orphans)")
        var oldestKept: [Double] = []
        for name in ["big", "small"] {
            let c = try #require(cameras[name])
            let captured = try #require(c["captured"] as? Int), written = try #require(c["written"] as? Int)
            #expect(c["failed"] as? Int == 0 && c["dropped"] as? Int == 0)
            #expect(captured == written)
            let seqs = (frames[name] ?? []).map(\.seq)
            let first = try #require(seqs.first, "\(name): nothing left")
            #expect(seqs == Array(first..<captured), "\(name): not the newest gap-free run: \(seqs.prefix(5))… of \(captured)")
            #expect(first > 0, "\(name): nothing of it was deleted")
            if let frame = frames[name]?.first, let t = parseSidecarTime(frame.sidecar["time"] as? String ?? "") {
                oldestKept.append(t)
            }
        }
        // Oldest first across cameras: both cameras lost frames up to about the same time.
        if oldestKept.count == 2 {
            #expect(abs(oldestKept[0] - oldestKept[1]) < 0.5, "oldest kept: big \(oldestKept[0]), small \(oldestKept[1])")
        }
        // While recording the cap holds but for the newest 2 s (never deleted then), with
        // room for a retention thread that ran late on a loaded machine.
        let elapsed = try #require(root["elapsed_s"] as? Double)
        let rate = Double(total + deletedBytes) / elapsed
        #expect(Double(largest) <= Double(cap) + 4 * rate, "largest total seen \(largest), cap \(cap), \(Int(rate)) bytes/s")
    }

    /// `--keep-free 50%` on an 8 MB tmpfs: free space never falls far below 4 MB, the oldest
    /// frames go, the newest stay, nothing fails.
    @Test(.enabled(if: runningAsRoot, "mounting a tmpfs needs root"))
    func keepFreeHoldsFreeSpace() async throws {
        let disk = try TmpfsMount(sizeBytes: 8 << 20)
        defer { disk.unmount() }
        let out = disk.path + "/out"
        let dir = try TestEnvironment.scratch("keepfree")
        defer { try? FileManager.default.removeItem(at: dir) }
        let stats = dir.appendingPathComponent("stats.json").path
        let ringcap = try TestProcess(TestEnvironment.ringcapBinary.path,
                                      ["record", "--camera", "test:640x480@30", "--out", out, "--quality", "90", "--when-full", "wait",
                                       "--keep-free", "50%", "--writers", "2", "--duration", "8", "--stats-json", stats],
                                      stderr: dir.appendingPathComponent("stderr").path)
        defer { ringcap.stop() }
        var leastFree = Int.max
        while ringcap.isRunning {
            leastFree = min(leastFree, disk.space.free)
            try await Task.sleep(for: .milliseconds(50))
        }
        let stderr = (try? String(contentsOfFile: dir.appendingPathComponent("stderr").path, encoding: .utf8)) ?? ""
        #expect(ringcap.exitStatus == 0, "\(stderr)")
        let total = disk.space.total
        #expect(leastFree >= total / 2 - 1_500_000, "free fell to \(leastFree) of \(total) (goal \(total / 2))")
        #expect(disk.space.free >= total / 2, "at the end \(disk.space.free) free of \(total)")

        let (root, cameras) = try readStats(URL(fileURLWithPath: stats))
        let retention = try #require(root["retention"] as? [String: Any])
        let deletedBytes = try #require(retention["deleted_bytes"] as? Int)
        // 640x480 at quality 90 is ~25 KB a frame: 8 s at 30 frames/s is ~6 MB, more than the 4 MB allowed.
        #expect(deletedBytes > 500_000, "something must have been deleted (\(deletedBytes) bytes)")
        let c = try #require(cameras["cam0"])
        let captured = try #require(c["captured"] as? Int)
        #expect(c["failed"] as? Int == 0, "nothing fails while there is room")
        let (frames, strays, orphans) = try recordedFrames(in: URL(fileURLWithPath: out))
        #expect(strays.isEmpty && orphans.isEmpty)
        let seqs = (frames["cam0"] ?? []).map(\.seq)
        let first = try #require(seqs.first)
        #expect(first > 0 && seqs == Array(first..<captured), "not the newest gap-free run: \(seqs.prefix(3))… of \(captured)")
        #expect(stderr.contains("retention: deleted"), "deletions are logged")
    }

    /// A disk full of someone else's data: --keep-free cannot be met. ringcap says so once,
    /// deletes its own older frames, keeps the newest 2 s rather than deleting each frame as
    /// it lands, and keeps recording.
    @Test(.enabled(if: runningAsRoot, "mounting a tmpfs needs root"))
    func keepFreeThatCannotBeMetWarnsOnceAndKeepsTheNewest() async throws {
        let disk = try TmpfsMount(sizeBytes: 8 << 20)
        defer { disk.unmount() }
        writeBallast(disk.path + "/not-ours", bytes: disk.space.total - 1_500_000)
        let out = disk.path + "/out"
        let dir = try TestEnvironment.scratch("othersdata")
        defer { try? FileManager.default.removeItem(at: dir) }
        let stats = dir.appendingPathComponent("stats.json").path
        let result = try runRingcap(["record", "--camera", "test:320x240@30", "--out", out, "--when-full", "wait",
                                     "--keep-free", "50%", "--duration", "5", "--stats-json", stats])
        #expect(result.status == 0, "\(result.stderr)")
        let warnings = result.stderr.components(separatedBy: "retention: cannot delete enough").count - 1
        #expect(warnings == 1, "warned \(warnings) times: \(result.stderr)")
        #expect(FileManager.default.fileExists(atPath: disk.path + "/not-ours"), "what is not ours stays")
        let (root, cameras) = try readStats(URL(fileURLWithPath: stats))
        let c = try #require(cameras["cam0"])
        let captured = try #require(c["captured"] as? Int)
        #expect(c["failed"] as? Int == 0, "2 s of 320x240 frames fit in what is left")
        let deleted = try #require((root["retention"] as? [String: Any])?["deleted_files"] as? Int)
        #expect(deleted > 0, "frames older than 2 s go")
        let seqs = (try recordedFrames(in: URL(fileURLWithPath: out)).frames["cam0"] ?? []).map(\.seq)
        let first = try #require(seqs.first)
        #expect(seqs == Array(first..<captured), "the newest gap-free run: \(seqs.prefix(3))… of \(captured)")
        // About 2 s of 30 frames/s stay (young frames are never deleted while recording).
        #expect(seqs.count >= 30, "only \(seqs.count) frames left: frames were deleted as they landed")
    }

    /// An earlier recording in --out counts toward --max-size and goes first, whole minute
    /// folders oldest first with their emptied parents; files that are not ringcap's stay.
    @Test func earlierRecordingsCountTowardMaxSize() throws {
        let dir = try TestEnvironment.scratch("earlier")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path
        let stats = dir.appendingPathComponent("stats.json").path
        // Earlier recordings, named as ringcap names them: 20 frames of 100 KB a minute.
        func minute(_ camera: String, _ folder: String, hhmm: String) throws {
            let path = out + "/" + camera + "/" + folder
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            for i in 0..<20 {
                let stem = path + "/" + hhmm + String(format: "%02d.000000_%d", i, i)
                try Data(repeating: 0xFF, count: 99_800).write(to: URL(fileURLWithPath: stem + ".jpg"))
                let json = "{\"camera\":\"\(camera)\",\"seq\":\(i)}".padding(toLength: 200, withPad: " ", startingAt: 0)
                try Data(json.utf8).write(to: URL(fileURLWithPath: stem + ".json"))
            }
        }
        try minute("older", "2019/12/31/23/59", hhmm: "2359")
        try minute("old", "2020/01/01/00/00", hhmm: "0000")
        try minute("old", "2020/01/01/00/01", hhmm: "0001")
        try minute("old", "2020/01/01/00/02", hhmm: "0002")
        try Data("not ours".utf8).write(to: URL(fileURLWithPath: out + "/old/2020/01/01/00/00/notes.txt"))
        try Data("not ours".utf8).write(to: URL(fileURLWithPath: out + "/README.txt"))
        try Data("not ours".utf8).write(to: URL(fileURLWithPath: out + "/old/2020/01/01/00/01/000000.000000_1.png"))
        let before = filesUnder(out).values.reduce(0, +)  // about 8 MB

        let result = try runRingcap(["record", "--camera", "new=test:320x240@30", "--frames", "40", "--out", out,
                                     "--keep-free", "0", "--max-size", "6MB", "--stats-json", stats])
        #expect(result.status == 0, "\(result.stderr)")
        let fm = FileManager.default
        #expect(!fm.fileExists(atPath: out + "/older/2019"), "the oldest minute and its emptied parents go first")
        #expect(fm.fileExists(atPath: out + "/older"), "the camera's folder stays")
        let minute0 = (try? fm.contentsOfDirectory(atPath: out + "/old/2020/01/01/00/00")) ?? []
        #expect(minute0 == ["notes.txt"], "next oldest minute: only what is not ours stays: \(minute0)")
        #expect(fm.fileExists(atPath: out + "/README.txt"))
        #expect(fm.fileExists(atPath: out + "/old/2020/01/01/00/01/000000.000000_1.png"))
        let minute2 = (try? fm.contentsOfDirectory(atPath: out + "/old/2020/01/01/00/02")) ?? []
        #expect(minute2.count == 40, "the newest earlier minute is kept whole: \(minute2.count) files")

        let (frames, _, orphans) = try recordedFrames(in: URL(fileURLWithPath: out))
        #expect(orphans.isEmpty)
        #expect((frames["new"] ?? []).map(\.seq) == Array(0..<40), "every new frame is kept")
        let total = filesUnder(out).values.reduce(0, +)
        #expect(total <= 6_000_000, "\(total) bytes left, cap 6 MB (before: \(before))")
        let (root, _) = try readStats(URL(fileURLWithPath: stats))
        let retention = try #require(root["retention"] as? [String: Any])
        #expect(retention["deleted_folders"] as? Int ?? 0 >= 1)
        #expect(retention["deleted_files"] as? Int ?? 0 >= 80, "two minutes of 20 frames, two files each")
        #expect(result.stderr.contains("retention: deleted older/2019/12/31/23/59"), "\(result.stderr)")
    }
}
