//===----------------------------------------------------------------------===//
//
// This source file is part of ringcap.
//
// DropOldestRing: a bounded, lock-free, multi-producer multi-consumer ring
// that makes room for a new element by evicting the oldest one.
//
//===----------------------------------------------------------------------===//

import Synchronization

/// A bounded, lock-free, multi-producer multi-consumer ring buffer that, when
/// full, drops its oldest element to make room for a new one.
///
/// `DropOldestRing` is the queue between the cameras and the writers of
/// ringcap: producers must never wait, and when the consumers fall behind the
/// newest elements win. Any number of threads may call any of its methods at
/// the same time; the type is thread-safe.
///
///     let ring = DropOldestRing<Int>(capacity: 3)  // rounded up to 4
///     ring.push(1)          // nil
///     ring.push(2)          // nil
///     ring.tryPush(3)       // true
///     ring.tryPush(4)       // true
///     ring.tryPush(5)       // false: full, and tryPush never evicts
///     ring.push(5)          // 1: evicted the oldest to make room for 5
///     ring.pop()            // 2
///     ring.count            // 3
///
/// Elements must be `BitwiseCopyable`: the ring copies their bytes in and out
/// without retaining, releasing or destroying anything, so the hot path does
/// no reference counting. To pass something larger than a few words, keep it
/// in a preallocated pool and pass its index.
///
/// ### Promises
///
/// - **Exactly once.** Every element given to `push` or accepted by `tryPush`
///   comes back exactly once: either from `pop`, or as the return value of a
///   `push` call. Nothing is lost and nothing is duplicated.
/// - **Per-producer order.** The elements that one thread pushed come out of
///   `pop` in the order that thread pushed them. (Elements of different
///   producers interleave in the order their pushes took effect.)
/// - **Never blocks.** `pop` and `tryPush` are lock-free. `push` is wait-free:
///   it gives up after a fixed number of attempts (``pushAttemptLimit``).
///   When `push` finds the ring full but cannot evict the oldest element
///   without waiting for another thread (for instance, a consumer was
///   descheduled in the middle of a `pop` of exactly that element), it hands
///   back the element it was given instead: that element was the one dropped.
///   Callers that must tell the two cases apart can compare the returned
///   value with the one they passed.
/// - **No allocation after `init`.** `push`, `tryPush`, `pop` and `count`
///   allocate nothing and touch no reference counts.
///
/// ### Implementation
///
/// The ring is Dmitry Vyukov's bounded MPMC array queue
/// (<https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue>).
/// Two monotonically increasing 64-bit positions, `tail` (next position to
/// write) and `head` (next position to read), index a power-of-two array of
/// cells. Each cell carries a sequence number that says what the cell is ready
/// for, relative to a position `p` that maps to it:
///
/// - `sequence == p`: empty, a producer may claim position `p`;
/// - `sequence == p + 1`: holds the element of position `p`, a consumer may
///   claim it;
/// - `sequence == p + capacity`: consumed, empty for the next lap.
///
/// A producer claims a position by advancing `tail` with a compare-and-swap
/// and then owns the cell until it publishes `p + 1`; a consumer likewise
/// with `head`, until it publishes `p + capacity`.
///
/// **Eviction.** When a producer at position `t` finds the cell full with the
/// element of position `t - capacity`, that element is the oldest one in the
/// ring exactly when `head == t - capacity`. The producer then acts as the
/// consumer of that position: it advances `head` from `t - capacity` with a
/// compare-and-swap, which makes it the owner of the cell. Nobody else can
/// move `tail` past `t` while that cell is not published as empty for `t`, so
/// `tail` is still `t`: the producer takes the old element, writes its own in
/// the same cell, advances `tail` to `t + 1` and publishes the cell as full
/// for position `t`, skipping the empty state. Eviction and insertion are one
/// step, so a producer never holds an evicted element it cannot place, and
/// the new element lands at the tail where per-producer order wants it. If
/// the compare-and-swap on `head` fails, another thread took that element and
/// the producer starts over.
///
/// ### Memory ordering
///
/// As in Vyukov's queue, the positions are only hints and are read and
/// advanced with relaxed ordering; all synchronisation goes through the cell
/// sequence numbers. Publishing a cell (storing its sequence number) is a
/// release that pairs with the acquiring load of the same sequence number by
/// the next owner, so the element bytes written before the store are visible
/// to whoever claims the cell after it. Each atomic operation in the source
/// names the operation it pairs with.
///
/// ### Layout
///
/// `tail`, `head` and the cells live in one allocation of 128-byte aligned
/// blocks: `tail` alone in the first 128 bytes, `head` alone in the next 128,
/// the cells after that. 128 rather than 64 because x86 prefetches cache
/// lines in adjacent pairs. Each cell (sequence number and element) starts
/// on a cache line of its own: when the ring is nearly empty, or full and
/// evicting, a producer and a consumer work on neighbouring cells, and
/// sharing a line between them costs more than the memory it saves (64
/// bytes a cell; a ring of 1024 small elements takes 64 KiB).
///
/// Build with `-Xswiftc -DRINGBUFFER_INTERNAL_CHECKS` to check internal
/// invariants at run time.
public final class DropOldestRing<Element: BitwiseCopyable>: @unchecked Sendable {
  // @unchecked Sendable: every field below is either immutable after init or
  // reached only through atomics and the ownership protocol described above.

  /// Number of attempts after which `push` gives up and hands back its
  /// argument instead of waiting for another thread.
  ///
  /// An attempt fails only when another thread changed the ring under it, or
  /// when the cell `push` needs is held by a thread in the middle of an
  /// operation. The limit is high enough that contention between running
  /// threads almost never reaches it and low enough that a producer does not
  /// spin long on a descheduled consumer.
  ///
  /// - Complexity: O(1).
  public static var pushAttemptLimit: Int { 128 }

  /// Start of the single allocation: `tail` block, `head` block, cells.
  @usableFromInline
  internal let _memory: UnsafeMutableRawPointer

  /// Next position a producer will claim. Alone in its 128-byte block.
  @usableFromInline
  internal let _tail: UnsafeMutablePointer<Atomic<Int>>

  /// Next position a consumer will claim. Alone in its 128-byte block.
  @usableFromInline
  internal let _head: UnsafeMutablePointer<Atomic<Int>>

  /// First cell. Cell `i` starts at `_cells + i * _cellStride`; its sequence
  /// number is an `Atomic<Int>` at offset 0, its element at `_elementOffset`.
  @usableFromInline
  internal let _cells: UnsafeMutableRawPointer

  @usableFromInline
  internal let _mask: Int

  @usableFromInline
  internal let _capacity: Int

  @usableFromInline
  internal static var _blockSize: Int { 128 }

  @usableFromInline
  internal static var _elementOffset: Int {
    let alignment = MemoryLayout<Element>.alignment
    return (MemoryLayout<Atomic<Int>>.size + alignment - 1) & ~(alignment - 1)
  }

  /// Cache line size on the machines ringcap runs on (x86-64, arm64).
  @usableFromInline
  internal static var _lineSize: Int { 64 }

  /// Distance between cells: a whole number of cache lines, so that a
  /// consumer reading one cell and a producer writing the next never fight
  /// over a line (see "Layout" above).
  @usableFromInline
  internal static var _cellStride: Int {
    let end = _elementOffset + MemoryLayout<Element>.size
    let alignment = Swift.max(_lineSize, MemoryLayout<Element>.alignment)
    return (end + alignment - 1) & ~(alignment - 1)
  }

  /// Creates an empty ring that holds at least `capacity` elements.
  ///
  /// The capacity is rounded up to the next power of two, so that a position
  /// maps to its cell with a mask; ``capacity`` tells the result. All memory
  /// the ring will ever use is allocated here.
  ///
  ///     DropOldestRing<Int>(capacity: 2).capacity    // 2
  ///     DropOldestRing<Int>(capacity: 1000).capacity // 1024
  ///
  /// - Parameter capacity: The minimum number of elements the ring holds
  ///   before `push` starts evicting. Must be at least 2 and at most 2^40.
  ///
  /// - Complexity: O(`capacity`).
  public init(capacity: Int) {
    precondition(capacity >= 2, "DropOldestRing capacity must be at least 2, got \(capacity)")
    precondition(capacity <= 1 << 40, "DropOldestRing capacity must be at most 2^40, got \(capacity)")
    let rounded = 1 << (Int.bitWidth - (capacity - 1).leadingZeroBitCount)
    _capacity = rounded
    _mask = rounded - 1

    let block = Self._blockSize
    let cellBytes = rounded * Self._cellStride
    let alignment = Swift.max(block, MemoryLayout<Element>.alignment)
    // The tail end is padded to a whole block too, so that whatever the
    // allocator puts after the ring does not share the last cells' lines.
    let cellBlocks = (cellBytes + block - 1) / block
    _memory = UnsafeMutableRawPointer.allocate(
      byteCount: (2 + cellBlocks) * block, alignment: alignment)
    _tail = _memory.bindMemory(to: Atomic<Int>.self, capacity: 1)
    _tail.initialize(to: Atomic(0))
    _head = (_memory + block).bindMemory(to: Atomic<Int>.self, capacity: 1)
    _head.initialize(to: Atomic(0))
    _cells = _memory + 2 * block
    for index in 0 ..< rounded {
      // Cell `index` starts empty for position `index` of the first lap.
      _sequence(at: index).initialize(to: Atomic(index))
    }
  }

  deinit {
    // Atomic<Int> has no deinitializer to run; the elements are
    // BitwiseCopyable, so nothing else needs destroying.
    _memory.deallocate()
  }

  /// The number of elements the ring holds before `push` starts evicting:
  /// the `capacity` given to `init`, rounded up to a power of two.
  ///
  /// - Complexity: O(1).
  @inlinable
  public var capacity: Int { _capacity }

  /// The number of elements in the ring at some recent moment.
  ///
  /// The value is approximate when other threads are pushing or popping: it
  /// is computed from two separate loads, counts elements whose push or pop
  /// is still in progress, and may be stale by the time it is used. It is
  /// always between 0 and ``capacity``. Use it for statistics, not for
  /// deciding whether `pop` will succeed.
  ///
  /// - Complexity: O(1).
  @inlinable
  public var count: Int {
    // Relaxed: a snapshot of two hints; pairs with no other operation. Head
    // is read first so that a concurrent pop cannot make the difference
    // negative more often than necessary; the clamp handles the rest.
    let head = _head.pointee.load(ordering: .relaxed)
    let tail = _tail.pointee.load(ordering: .relaxed)
    return Swift.min(Swift.max(tail &- head, 0), _capacity)
  }

  /// Adds an element at the tail of the ring; if the ring is full, removes
  /// the oldest element to make room and returns it.
  ///
  ///     let ring = DropOldestRing<Int>(capacity: 2)
  ///     ring.push(1)  // nil
  ///     ring.push(2)  // nil
  ///     ring.push(3)  // 1
  ///
  /// `push` never waits for another thread. In the rare case where the ring
  /// is full and the oldest element cannot be taken without waiting (another
  /// thread is in the middle of popping or pushing the cell that `push`
  /// needs), or after ``pushAttemptLimit`` attempts spoiled by other threads,
  /// it returns `element` itself, which was then not added.
  ///
  /// - Parameter element: The element to add.
  /// - Returns: `nil` if `element` was added without evicting anything; the
  ///   evicted oldest element if `element` was added in its place; `element`
  ///   itself if it could not be added without waiting.
  ///
  /// - Complexity: O(1), at most ``pushAttemptLimit`` attempts.
  @inlinable
  @discardableResult
  public func push(_ element: Element) -> Element? {
    var attempts = Self.pushAttemptLimit
    // The oldest position this push already lost to another thread; see
    // below. Positions are never negative.
    var lostOldest = -1
    // Relaxed: a hint; the acquiring sequence load below decides.
    var position = _tail.pointee.load(ordering: .relaxed)
    while true {
      let cell = _cell(for: position)
      // Acquire: pairs with the releasing sequence store of the consumer that
      // emptied this cell (pop, or push's eviction) or of the producer that
      // filled it (push, tryPush), so the cell's element is ours to
      // overwrite or read.
      let sequence = _sequence(of: cell).pointee.load(ordering: .acquiring)
      let lag = sequence &- position
      if lag == 0 {
        // Empty for `position`: claim it. Relaxed on success: ownership of
        // the cell comes from the sequence number, not from `tail`. On
        // failure, another producer claimed it; retry at the position it
        // left.
        let (exchanged, current) = _tail.pointee.compareExchange(
          expected: position, desired: position &+ 1,
          successOrdering: .relaxed, failureOrdering: .relaxed)
        if exchanged {
          _store(element, in: cell)
          // Release: pairs with the acquiring sequence load in pop (or in a
          // push that evicts) at `position`, publishing the element.
          _sequence(of: cell).pointee.store(position &+ 1, ordering: .releasing)
          return nil
        }
        position = current
      } else if lag == 1 &- _capacity && position &- _capacity != lostOldest {
        // Full, holding position `position - capacity`. If that is the
        // head, take it over as its consumer and put `element` in its place.
        let oldest = position &- _capacity
        // Relaxed: as in pop, the cell's sequence number (already acquired
        // above) carries the synchronisation. Pairs with the head
        // compare-exchange in pop and in other evicting pushes: exactly one
        // of them wins position `oldest`.
        let (exchanged, _) = _head.pointee.compareExchange(
          expected: oldest, desired: oldest &+ 1,
          successOrdering: .relaxed, failureOrdering: .relaxed)
        if exchanged {
          // We own the cell; while it is not published as empty for
          // `position`, no producer can claim `position`, so `tail` is
          // still `position` and nobody else may move it.
          let evicted = _load(from: cell)
          _store(element, in: cell)
          #if RINGBUFFER_INTERNAL_CHECKS
          precondition(_tail.pointee.load(ordering: .relaxed) == position,
                       "tail moved while its cell was owned by an evicting push")
          #endif
          // Relaxed: `tail` is a hint; pairs with the relaxed tail loads
          // and compare-exchanges of other producers, which fail or retry
          // until they see it.
          _tail.pointee.store(position &+ 1, ordering: .relaxed)
          // Release: pairs with the acquiring sequence load in pop (or in a
          // push that evicts) at `position`, publishing `element`.
          _sequence(of: cell).pointee.store(position &+ 1, ordering: .releasing)
          return evicted
        }
        // Another thread took position `oldest`. If it was a consumer that
        // has not finished, the cell is not ours to wait for: retry, and
        // fall back below once the attempts run out. Do not compare-exchange
        // for `oldest` again: it cannot succeed, and it would pull the head's
        // cache line away from the consumer that is finishing that pop.
        lostOldest = oldest
        position = _tail.pointee.load(ordering: .relaxed)
      } else if lag < 0 {
        // The cell is held by a producer that claimed `position - capacity`
        // and has not published it yet, or by a consumer in the middle of
        // popping it (the `oldest` we lost). Taking it would mean waiting
        // for that thread.
        position = _tail.pointee.load(ordering: .relaxed)
      } else {
        // Our `position` is stale: other producers already moved past it.
        position = _tail.pointee.load(ordering: .relaxed)
      }
      attempts &-= 1
      if attempts == 0 {
        return element
      }
    }
  }

  /// Adds an element at the tail of the ring if there is room.
  ///
  ///     let ring = DropOldestRing<Int>(capacity: 2)
  ///     ring.tryPush(1)  // true
  ///     ring.tryPush(2)  // true
  ///     ring.tryPush(3)  // false
  ///
  /// `tryPush` never evicts. It also reports `false` when the cell it needs
  /// is still being emptied by a consumer in the middle of a `pop`.
  ///
  /// - Parameter element: The element to add.
  /// - Returns: `true` if `element` was added; `false` if the ring was full,
  ///   in which case the ring is unchanged.
  ///
  /// - Complexity: O(1); lock-free (a retry means another producer
  ///   succeeded).
  @inlinable
  public func tryPush(_ element: Element) -> Bool {
    // Relaxed: a hint; the acquiring sequence load below decides.
    var position = _tail.pointee.load(ordering: .relaxed)
    while true {
      let cell = _cell(for: position)
      // Acquire: pairs with the releasing sequence store of the consumer
      // that emptied this cell (pop, or push's eviction).
      let sequence = _sequence(of: cell).pointee.load(ordering: .acquiring)
      let lag = sequence &- position
      if lag == 0 {
        // Relaxed: see push; pairs with the tail compare-exchange in other
        // pushes and tryPushes.
        let (exchanged, current) = _tail.pointee.compareExchange(
          expected: position, desired: position &+ 1,
          successOrdering: .relaxed, failureOrdering: .relaxed)
        if exchanged {
          _store(element, in: cell)
          // Release: pairs with the acquiring sequence load in pop (or in a
          // push that evicts) at `position`.
          _sequence(of: cell).pointee.store(position &+ 1, ordering: .releasing)
          return true
        }
        position = current
      } else if lag < 0 {
        // Full, or the previous lap's consumer has not finished.
        return false
      } else {
        position = _tail.pointee.load(ordering: .relaxed)
      }
    }
  }

  /// Removes and returns the oldest element of the ring.
  ///
  ///     let ring = DropOldestRing<Int>(capacity: 2)
  ///     ring.push(7)
  ///     ring.pop()  // 7
  ///     ring.pop()  // nil
  ///
  /// `pop` never waits. It also returns `nil` when the oldest position has
  /// been claimed by a producer that has not finished writing it, even if
  /// later positions are already filled.
  ///
  /// - Returns: The oldest element, or `nil` if the ring is empty.
  ///
  /// - Complexity: O(1); lock-free (a retry means another thread
  ///   succeeded).
  @inlinable
  public func pop() -> Element? {
    // Relaxed: a hint; the acquiring sequence load below decides.
    var position = _head.pointee.load(ordering: .relaxed)
    while true {
      let cell = _cell(for: position)
      // Acquire: pairs with the releasing sequence store in push or tryPush
      // that published the element of `position`.
      let sequence = _sequence(of: cell).pointee.load(ordering: .acquiring)
      let lag = sequence &- (position &+ 1)
      if lag == 0 {
        // Relaxed: ownership comes from the sequence number. Pairs with the
        // head compare-exchange in other pops and in evicting pushes:
        // exactly one of them wins `position`.
        let (exchanged, current) = _head.pointee.compareExchange(
          expected: position, desired: position &+ 1,
          successOrdering: .relaxed, failureOrdering: .relaxed)
        if exchanged {
          let element = _load(from: cell)
          // Release: pairs with the acquiring sequence load in the push or
          // tryPush that will claim `position + capacity`, so our read of
          // the element happens before it is overwritten.
          _sequence(of: cell).pointee.store(position &+ _capacity, ordering: .releasing)
          return element
        }
        position = current
      } else if lag < 0 {
        // Empty, or the producer of `position` has not finished.
        return nil
      } else {
        position = _head.pointee.load(ordering: .relaxed)
      }
    }
  }
}

// MARK: - Cell access

extension DropOldestRing {
  @inlinable
  @inline(__always)
  internal func _cell(for position: Int) -> UnsafeMutableRawPointer {
    _cells + (position & _mask) &* Self._cellStride
  }

  @inlinable
  @inline(__always)
  internal func _sequence(at index: Int) -> UnsafeMutablePointer<Atomic<Int>> {
    (_cells + index &* Self._cellStride).assumingMemoryBound(to: Atomic<Int>.self)
  }

  @inlinable
  @inline(__always)
  internal func _sequence(of cell: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Atomic<Int>> {
    cell.assumingMemoryBound(to: Atomic<Int>.self)
  }

  @inlinable
  @inline(__always)
  internal func _store(_ element: Element, in cell: UnsafeMutableRawPointer) {
    // The element bytes are plain memory, ordered by the sequence number.
    cell.storeBytes(of: element, toByteOffset: Self._elementOffset, as: Element.self)
  }

  @inlinable
  @inline(__always)
  internal func _load(from cell: UnsafeMutableRawPointer) -> Element {
    cell.load(fromByteOffset: Self._elementOffset, as: Element.self)
  }
}
