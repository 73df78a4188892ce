import Foundation

/// How much memory the frame pool may take, decided before anything starts.
///
/// The pool holds ring + writers + cameras + 1 frames, each as large as the largest camera's
/// frame; with a large `--ring`, large frames or many cameras it can exceed the machine, and the
/// allocation then failed after recording had begun ("failed to allocate", no summary). So:
/// - an explicit `--ring` whose pool, for the frame sizes known at start (test patterns, `--size`),
///   would take more than half of the memory is refused (exit 64, naming the figure);
/// - the default ring (about two seconds of frames) is lowered, a power of two at a time, until
///   the pool takes at most a quarter of the memory, and the log says so. A source whose size is
///   known only at its first frame counts as 1920x1080 here;
/// - whatever the frames turn out to be, the pool never holds more than half of the memory
///   (`FramePool.byteBudget`): a frame that would take it further is counted as failed.
///
/// "Memory" is the physical memory or the cgroup's limit (a container, a systemd `MemoryMax=`),
/// whichever is lower. A plain value.
public struct RingPlan: Equatable, Sendable {
    /// The ring capacity to ask `DropOldestRing` for (a power of two).
    public var capacity: Int
    /// Why the default was lowered, for the log; nil when it was not.
    public var note: String?

    /// Frames no source is known to exceed before its first frame, for sizing the default ring.
    public static let assumedUnknownSize = FrameSize(width: 1920, height: 1080)

    /// Plans the ring for `config` on a machine with `memoryBytes` to spare for it.
    public static func plan(_ config: RecordConfig, memoryBytes: UInt64) throws(ConfigError) -> RingPlan {
        let known = config.cameras.compactMap { config.knownFrameSize(of: $0) }
        let anyUnknown = known.count < config.cameras.count
        let largestKnown = known.max { $0.width * $0.height < $1.width * $1.height }
        let extraSlots = config.writers + config.cameras.count + 1
        func poolBytes(ring: Int, frame: FrameSize) -> UInt64 {
            UInt64(ring + extraSlots) &* UInt64(frame.width * frame.height * 3)
        }
        let half = memoryBytes / 2, quarter = memoryBytes / 4

        if let explicit = config.ringCapacity {
            let ring = powerOfTwo(atLeast: explicit)
            if let frame = largestKnown, poolBytes(ring: ring, frame: frame) > half {
                throw .invalidValue(flag: "--ring", value: "\(explicit)",
                                    reason: "the frame pool would take \(ByteSize.format(Int64(clamping: poolBytes(ring: ring, frame: frame)))) "
                                        + "(\(ring + extraSlots) frames of \(frame)), more than half of this machine's memory "
                                        + "(\(ByteSize.format(Int64(clamping: memoryBytes)))); lower --ring or the frame size")
            }
            return RingPlan(capacity: ring, note: nil)
        }
        var frame = largestKnown ?? assumedUnknownSize
        if anyUnknown && frame.width * frame.height < assumedUnknownSize.width * assumedUnknownSize.height {
            frame = assumedUnknownSize
        }
        let wanted = powerOfTwo(atLeast: config.effectiveRingCapacity)
        var ring = wanted
        while ring > minimumRing && poolBytes(ring: ring, frame: frame) > quarter { ring /= 2 }
        if let big = largestKnown, poolBytes(ring: ring, frame: big) > half {
            throw .invalidValue(flag: "--camera", value: big.description,
                                reason: "\(config.cameras.count) camera(s) of frames up to \(big) need a frame pool of at least "
                                    + "\(ByteSize.format(Int64(clamping: poolBytes(ring: ring, frame: big)))) (\(ring + extraSlots) frames), "
                                    + "more than half of this machine's memory (\(ByteSize.format(Int64(clamping: memoryBytes)))); lower the size or the number of cameras")
        }
        guard ring < wanted else { return RingPlan(capacity: ring, note: nil) }
        let assumed = anyUnknown ? " (sources whose size is known only at their first frame counted as \(assumedUnknownSize))" : ""
        return RingPlan(capacity: ring, note: "ring lowered from \(wanted) to \(ring) frames so that the frame pool "
            + "(\(ring + extraSlots) frames of \(frame)\(assumed), \(ByteSize.format(Int64(clamping: poolBytes(ring: ring, frame: frame))))) "
            + "takes at most a quarter of this machine's memory (\(ByteSize.format(Int64(clamping: memoryBytes)))); --ring sets it")
    }

    /// The smallest ring the default is lowered to.
    static let minimumRing = 8

    static func powerOfTwo(atLeast n: Int) -> Int {
        var p = 1
        while p < n && p < (1 << 30) { p <<= 1 }
        return p
    }
}

/// The memory this process may use: physical memory, or its cgroup's limit when lower. Stateless.
public enum MachineMemory {
    public static func limitBytes() -> UInt64 {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        var limit = pages > 0 && pageSize > 0 ? UInt64(pages) * UInt64(pageSize) : UInt64(1) << 30
        if let cgroup = cgroupLimitBytes() { limit = min(limit, cgroup) }
        return limit
    }

    /// The lowest `memory.max` (cgroup v2) from this process's cgroup up to the root, or the v1
    /// `memory.limit_in_bytes`; nil when there is none.
    static func cgroupLimitBytes() -> UInt64? {
        var lowest: UInt64?
        func consider(_ file: String) {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8),
                  let value = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { return }  // "max": none
            lowest = min(lowest ?? value, value)
        }
        if let groups = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8),
           let line = groups.split(separator: "\n").first(where: { $0.hasPrefix("0::") }) {
            var path = String(line.dropFirst(3))
            while true {
                consider("/sys/fs/cgroup" + (path == "/" ? "" : path) + "/memory.max")
                guard path != "/", let slash = path.lastIndex(of: "/") else { break }
                path = slash == path.startIndex ? "/" : String(path[..<slash])
            }
        }
        consider("/sys/fs/cgroup/memory/memory.limit_in_bytes")
        return lowest
    }
}
