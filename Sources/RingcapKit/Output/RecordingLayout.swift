import Foundation

/// The one place that knows every name on disk: the camera folders, the minute folders
/// `OUT/<camera>/YYYY/MM/DD/HH/MM`, the frame files `<HHMMSS.ffffff>_<seq>.jpg` and `.json`, the
/// temporaries writers rename them from, and ringcap's own folder `OUT/.ringcap/`. Writers,
/// retention, the start-up clean-up, the bench and the tests format and parse names through it.
/// Stateless.
///
/// Temporaries end in `.rctmp`, which no reader matches. Each run adds a token of its own before
/// that ending (`HHMMSS.ffffff_SEQ.jpg.1a2b3c4d.rctmp`), so that the start-up clean-up, which runs
/// beside the writers, can tell what an earlier run left (any other token) from what this run is
/// writing, without trusting file times to a clock that may have been stepped.
public enum RecordingLayout {
    /// Every temporary ends so.
    public static let temporaryEnding = ".rctmp"
    /// A frame's image and its sidecar.
    public static let imageExtension: StaticString = ".jpg"
    public static let sidecarExtension: StaticString = ".json"

    /// `OUT/.ringcap`: ringcap's own files (the lock). Not a valid camera name, so no camera
    /// folder can collide with it and retention never looks inside.
    public static func ownFolder(out: String) -> String { trimmed(out) + "/.ringcap" }

    /// `OUT/.ringcap/lock`: held (flock) by the recorder writing into OUT.
    public static func lockFile(out: String) -> String { ownFolder(out: out) + "/lock" }

    /// `OUT/<camera>`.
    public static func cameraFolder(out: String, camera: String) -> String { trimmed(out) + "/" + camera }

    /// The suffix of this run's temporaries: `.<8 hex digits>.rctmp`.
    public static func temporarySuffix(runToken: UInt32) -> String {
        let hex = String(runToken, radix: 16)
        return "." + String(repeating: "0", count: 8 - hex.count) + hex + temporaryEnding
    }

    /// A file an earlier run left half-written: a temporary whose suffix is not this run's.
    public static func isLeftoverTemporary(_ name: String, currentSuffix: String) -> Bool {
        name.hasSuffix(temporaryEnding) && !name.hasSuffix(currentSuffix)
    }

    // MARK: Formatting (allocation-free, into a ByteSink: the writers' hot path)

    /// Appends `YYYY/MM/DD/HH/MM` (no leading or trailing slash).
    @inline(__always)
    public static func appendMinuteFolder(_ f: UTCFields, to sink: inout ByteSink) {
        sink.append(int: f.year, width: 4); sink.append(byte: UInt8(ascii: "/"))
        sink.append(int: f.month, width: 2); sink.append(byte: UInt8(ascii: "/"))
        sink.append(int: f.day, width: 2); sink.append(byte: UInt8(ascii: "/"))
        sink.append(int: f.hour, width: 2); sink.append(byte: UInt8(ascii: "/"))
        sink.append(int: f.minute, width: 2)
    }

    /// Appends a frame's stem `HHMMSS.ffffff_SEQ` (no extension).
    @inline(__always)
    public static func appendStem(_ f: UTCFields, seq: UInt64, to sink: inout ByteSink) {
        sink.append(int: f.hour, width: 2)
        sink.append(int: f.minute, width: 2)
        sink.append(int: f.second, width: 2)
        sink.append(byte: UInt8(ascii: "."))
        sink.append(int: f.microsecond, width: 6)
        sink.append(byte: UInt8(ascii: "_"))
        sink.append(int: Int64(bitPattern: seq))
    }

    /// The minute a wall-clock time falls in, in Unix minutes (floor, also before 1970).
    @inline(__always)
    public static func unixMinute(wallNs: Int64) -> Int64 {
        wallNs >= 0 ? wallNs / 60_000_000_000 : (wallNs - 59_999_999_999) / 60_000_000_000
    }

    /// `CAMERA/YYYY/MM/DD/HH/MM/HHMMSS.ffffff_SEQ`, relative to `--out`: a frame's path without
    /// its extension (for readers, tests and events; the writers format the same bytes in place).
    public static func framePath(camera: String, wallNs: Int64, seq: UInt64) -> String {
        var sink = ByteSink(capacity: camera.utf8.count + 64)
        for b in camera.utf8 { sink.append(byte: b) }
        sink.append(byte: UInt8(ascii: "/"))
        let f = UTCFields(unixNs: wallNs)
        appendMinuteFolder(f, to: &sink)
        sink.append(byte: UInt8(ascii: "/"))
        appendStem(f, seq: seq, to: &sink)
        return String(decoding: UnsafeBufferPointer(start: sink.base, count: sink.count), as: UTF8.self)
    }

    /// `CAMERA/YYYY/MM/DD/HH/MM` of a Unix minute, relative to `--out`.
    public static func minuteFolderPath(camera: String, minute: Int64) -> String {
        let f = UTCFields(unixNs: minute &* 60_000_000_000)
        return camera + "/" + String(format: "%04d/%02d/%02d/%02d/%02d", f.year, f.month, f.day, f.hour, f.minute)
    }

    // MARK: Parsing

    /// What a frame file's name says.
    public struct FrameName: Equatable, Sendable {
        /// `HHMMSS.ffffff_SEQ`.
        public var stem: Substring
        public var microsInMinute: Int64
        public var seq: UInt64
        public var isSidecar: Bool
    }

    /// A frame file `HHMMSS.ffffff_SEQ.jpg` or `.json`; with `hour` and `minute`, only one that
    /// belongs in that minute's folder. nil for anything else (temporaries included).
    public static func frameName(_ name: String, hour: Int? = nil, minute: Int? = nil) -> FrameName? {
        let isSidecar: Bool
        let stemEnd: String.Index
        if name.hasSuffix(sidecarExtension.description) { isSidecar = true; stemEnd = name.index(name.endIndex, offsetBy: -5) }
        else if name.hasSuffix(imageExtension.description) { isSidecar = false; stemEnd = name.index(name.endIndex, offsetBy: -4) }
        else { return nil }
        let stem = name[..<stemEnd]
        let u = Array(stem.utf8)
        // HHMMSS . ffffff _ SEQ
        guard u.count >= 15, u.count <= 34, u[6] == UInt8(ascii: "."), u[13] == UInt8(ascii: "_") else { return nil }
        func digits(_ range: Range<Int>) -> Int64? {
            var v: Int64 = 0
            for i in range {
                guard u[i] >= 0x30 && u[i] <= 0x39 else { return nil }
                v = v * 10 + Int64(u[i] - 0x30)
            }
            return v
        }
        guard let hh = digits(0..<2), let mm = digits(2..<4), let ss = digits(4..<6), let us = digits(7..<13),
              hh < 24, mm < 60, ss < 60 else { return nil }
        if let hour, hh != hour { return nil }
        if let minute, mm != minute { return nil }
        var seq: UInt64 = 0
        for i in 14..<u.count {
            guard u[i] >= 0x30 && u[i] <= 0x39 else { return nil }
            let (m, o1) = seq.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(u[i] - 0x30))
            guard !o1 && !o2 else { return nil }
            seq = s
        }
        return FrameName(stem: stem, microsInMinute: ss * 1_000_000 + us, seq: seq, isSidecar: isSidecar)
    }

    /// A folder name of exactly `width` digits whose value is in `range`.
    public static func number(_ name: String, width: Int, in range: ClosedRange<Int>) -> Int? {
        guard name.utf8.count == width, name.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let v = Int(name), range.contains(v) else { return nil }
        return v
    }

    /// The levels below a camera's folder: digits and range of year, month, day, hour, minute.
    static let levels: [(width: Int, range: ClosedRange<Int>)] = [(4, 1970...9999), (2, 1...12), (2, 1...31), (2, 0...23), (2, 0...59)]

    /// Unix minutes of a UTC civil time (Howard Hinnant's days_from_civil).
    public static func unixMinute(year: Int, month: Int, day: Int, hour: Int, minute: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return (days * 24 + Int64(hour)) * 60 + Int64(minute)
    }

    /// The highest seq stored for `camera` under `out`, read from its newest minute folder that
    /// holds a frame (by name, newest first, at most `maxFolders` minute folders looked into), so
    /// that start-up stays fast on a year of recordings. nil when the camera has no frame.
    public static func highestStoredSeq(out: String, camera: String, maxFolders: Int = 64) -> UInt64? {
        guard let root = TreeFolder.open(root: out), let folder = root.folder(camera) else { return nil }
        var visited = 0
        func search(_ folder: TreeFolder, level: Int, hour: Int) -> UInt64? {
            if level == levels.count {
                visited += 1
                var best: UInt64?
                for entry in folder.entries() where entry.kind == .file {
                    if let name = frameName(entry.name) { best = max(best ?? 0, name.seq) }
                }
                return best
            }
            let (width, range) = levels[level]
            for sub in folder.numberedFolders(width: width, in: range).reversed() {
                if visited >= maxFolders { return nil }
                guard let next = folder.folder(sub.name) else { continue }
                if let found = search(next, level: level + 1, hour: level == 3 ? sub.value : hour) { return found }
            }
            return nil
        }
        return search(folder, level: 0, hour: 0)
    }

    /// `OUT/.ringcap/next-seq-<camera>`: the seq a camera's next frame gets, written when a run
    /// stops. Start-up takes the highest of it and what the newest minute folders hold, so that a
    /// clock that went back between two runs (newer frames in older-named folders) cannot make a
    /// seq repeat.
    public static func seqMarkFile(out: String, camera: String) -> String { ownFolder(out: out) + "/next-seq-" + camera }

    public static func readSeqMark(out: String, camera: String) -> UInt64? {
        guard let text = try? String(contentsOfFile: seqMarkFile(out: out, camera: camera), encoding: .utf8) else { return nil }
        return UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Best effort (a full disk keeps the old mark): written under a temporary name and renamed
    /// over the old mark, so that a crash leaves one or the other whole.
    public static func writeSeqMark(_ next: UInt64, out: String, camera: String) {
        let path = seqMarkFile(out: out, camera: camera)
        let temporary = path + temporaryEnding
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        let bytes = Array("\(next)\n".utf8)
        let ok = write(fd, bytes, bytes.count) == bytes.count
        close(fd)
        if ok && rename(temporary, path) == 0 { return }
        unlink(temporary)
    }

    private static func trimmed(_ out: String) -> String {
        out.count > 1 && out.hasSuffix("/") ? String(out.dropLast()) : out
    }
}

/// One minute folder `OUT/<camera>/YYYY/MM/DD/HH/MM`, ordered oldest first (then by camera).
/// A plain value.
struct MinuteFolder: Hashable, Comparable {
    /// Unix minutes (UTC) of the folder's name.
    var minute: Int64
    var camera: String

    static func < (a: MinuteFolder, b: MinuteFolder) -> Bool {
        a.minute != b.minute ? a.minute < b.minute : a.camera < b.camera
    }

    /// `CAMERA/YYYY/MM/DD/HH/MM`, relative to `--out`.
    var relativePath: String { RecordingLayout.minuteFolderPath(camera: camera, minute: minute) }
}
