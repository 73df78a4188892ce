// The three queues under test, behind one protocol so that every workload
// runs the same code on each. The workloads are generic and specialised per
// queue; DropOldestRing is used through the RingBuffer product exactly as
// clients use it (its hot path is @inlinable, so it is specialised here).

import CVyukovQueue
import RingBuffer
import Synchronization

/// A bounded queue of 64-bit values with the three operations of
/// DropOldestRing.
public protocol BenchmarkedQueue: AnyObject, Sendable {
  /// Name in reports.
  static var label: String { get }
  init(capacity: Int)
  /// Adds `value`; when full, evicts and returns the oldest (or `value`).
  func push(_ value: UInt64) -> UInt64?
  func tryPush(_ value: UInt64) -> Bool
  func pop() -> UInt64?
}

extension DropOldestRing: BenchmarkedQueue where Element == UInt64 {
  public static var label: String { "Swift DropOldestRing" }
}

/// The C++ Vyukov queue as Vyukov lays it out (16-byte cells, four to a
/// cache line), owned through its handle.
public final class CppVyukovQueue: BenchmarkedQueue, @unchecked Sendable {
  // @unchecked: the handle is created in init and destroyed in deinit; every
  // call in between is thread-safe on the C++ side.
  public static var label: String { "C++ Vyukov" }

  let handle: OpaquePointer

  public init(capacity: Int) {
    guard let handle = vq_create(Int64(capacity)) else {
      fatalError("vq_create(\(capacity)) failed to allocate")
    }
    self.handle = handle
  }

  deinit { vq_destroy(handle) }

  @inline(__always)
  public func push(_ value: UInt64) -> UInt64? {
    var out: UInt64 = 0
    return vq_push(handle, value, &out) == VQ_ADDED ? nil : out
  }

  @inline(__always)
  public func tryPush(_ value: UInt64) -> Bool { vq_try_push(handle, value) }

  @inline(__always)
  public func pop() -> UInt64? {
    var out: UInt64 = 0
    return vq_pop(handle, &out) ? out : nil
  }
}

/// The C++ Vyukov queue with one cache line per cell, as DropOldestRing
/// lays out its cells: the like-for-like comparison.
public final class CppVyukovPaddedQueue: BenchmarkedQueue, @unchecked Sendable {
  // @unchecked: the handle is created in init and destroyed in deinit; every
  // call in between is thread-safe on the C++ side.
  public static var label: String { "C++ Vyukov padded" }

  let handle: OpaquePointer

  public init(capacity: Int) {
    guard let handle = vqp_create(Int64(capacity)) else {
      fatalError("vqp_create(\(capacity)) failed to allocate")
    }
    self.handle = handle
  }

  deinit { vqp_destroy(handle) }

  @inline(__always)
  public func push(_ value: UInt64) -> UInt64? {
    var out: UInt64 = 0
    return vqp_push(handle, value, &out) == VQ_ADDED ? nil : out
  }

  @inline(__always)
  public func tryPush(_ value: UInt64) -> Bool { vqp_try_push(handle, value) }

  @inline(__always)
  public func pop() -> UInt64? {
    var out: UInt64 = 0
    return vqp_pop(handle, &out) ? out : nil
  }
}

/// The simple alternative: an array ring behind a `Mutex`.
public final class MutexArrayRing: BenchmarkedQueue {
  public static var label: String { "Mutex array ring" }

  struct State {
    var storage: [UInt64]
    var head = 0
    var count = 0
  }

  /// All ring state; every access holds the lock.
  let state: Mutex<State>
  let capacity: Int

  public init(capacity: Int) {
    var rounded = 2
    while rounded < capacity { rounded <<= 1 }
    self.capacity = rounded
    state = Mutex(State(storage: Array(repeating: 0, count: rounded)))
  }

  @inline(__always)
  public func push(_ value: UInt64) -> UInt64? {
    state.withLock { state in
      let mask = state.storage.count - 1
      if state.count == state.storage.count {
        let evicted = state.storage[state.head]
        state.storage[state.head] = value
        state.head = (state.head + 1) & mask
        return evicted
      }
      state.storage[(state.head + state.count) & mask] = value
      state.count += 1
      return nil
    }
  }

  @inline(__always)
  public func tryPush(_ value: UInt64) -> Bool {
    state.withLock { state in
      guard state.count < state.storage.count else { return false }
      state.storage[(state.head + state.count) & (state.storage.count - 1)] = value
      state.count += 1
      return true
    }
  }

  @inline(__always)
  public func pop() -> UInt64? {
    state.withLock { state in
      guard state.count > 0 else { return nil }
      let value = state.storage[state.head]
      state.head = (state.head + 1) & (state.storage.count - 1)
      state.count -= 1
      return value
    }
  }
}
