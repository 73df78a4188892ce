import Foundation
import Synchronization

/// The one bit of retention the writers touch: they add the bytes of each frame they store,
/// say which minute folder they are writing into, and ring when the disk is full.
///
/// Thread-safe, lock-free, allocation-free. `storedBytes` and the newest minutes are relaxed
/// atomics: they are totals and hints, never used to publish other memory (the files
/// themselves are ordered by the file system's system calls). Waking the retention thread goes
/// through `Doorbell`, whose sequentially consistent fence pairs with the retention thread's
/// sleeper registration.
final class StoreLedger: Sendable {
    /// Bytes of ringcap's frames under `--out` (files named as ringcap names them): the start's
    /// scan adds what was there, writers add what they store, retention subtracts what it
    /// deletes. Relaxed: read only to compare with `--max-size`.
    let storedBytes = Atomic<Int64>(0)
    /// Rung when the cap is crossed or a write found the disk full.
    let doorbell = Doorbell()
    /// `--max-size` in bytes; `Int64.max` without one.
    let maxBytes: Int64
    /// Per camera (by index): the newest minute (Unix minutes) whose folder a writer made.
    private let newestMinutes: [NewestMinute]

    /// One atomic per camera; a class because `Atomic` cannot live in an array by value.
    private final class NewestMinute: Sendable {
        let value = Atomic<Int64>(Int64.min)

        /// Keeps the maximum: another writer may still be finishing the previous minute.
        func raise(to minute: Int64) {
            var current = value.load(ordering: .relaxed)
            while minute > current {
                let (exchanged, original) = value.compareExchange(expected: current, desired: minute, ordering: .relaxed)
                if exchanged { return }
                current = original
            }
        }
    }

    init(cameras: Int, maxBytes: UInt64?) {
        self.maxBytes = maxBytes.map { Int64(clamping: $0) } ?? Int64.max
        newestMinutes = (0..<cameras).map { _ in NewestMinute() }
    }

    /// A writer stored a frame of `bytes` (JPEG and sidecar). Rings retention when that took the
    /// total over `--max-size`: one atomic add and a compare otherwise.
    @inline(__always)
    func stored(_ bytes: Int) {
        let (_, total) = storedBytes.add(Int64(bytes), ordering: .relaxed)
        if total > maxBytes { doorbell.ring() }
    }

    /// A writer made (or found) the folder of `minute` for `camera`. Once a minute per writer
    /// and camera, not per frame.
    func noteMinute(_ minute: Int64, camera: Int) {
        newestMinutes[camera].raise(to: minute)
    }

    func newestMinute(camera: Int) -> Int64 { newestMinutes[camera].value.load(ordering: .relaxed) }

    /// A write failed with ENOSPC or EDQUOT: free space now rather than at the next tick.
    func diskFull() { doorbell.ring() }
}
