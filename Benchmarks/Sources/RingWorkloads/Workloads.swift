// The workloads: throughput with producers and consumers on their own
// threads, in eviction mode (push, consumers slower than producers) and in
// waiting mode (tryPush, retried until there is room), and a ping-pong
// round trip between two threads. Each is split into prepare (allocate,
// start threads), run (the measured part: no allocation) and finish (join).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import RingBuffer
import Synchronization

public enum PushMode: String, CaseIterable, Sendable {
  /// `push` as fast as possible; consumers do a little work per element, so
  /// the ring stays full and most pushes evict.
  case evicting
  /// `tryPush`, retried until accepted; consumers pop as fast as they can.
  case waiting
}

/// Lets another thread have the core after spinning for a while in vain.
/// With more spinning threads than cores (2P2C on two cores) a thread that
/// spins waits for a thread that is not running, so it yields soon (after
/// 1 µs); otherwise it spins long (50 µs) before yielding, because a yield
/// is a system call that costs more than the round trip being measured.
///
/// The budget is time, not a count of attempts, so that every queue gets the
/// same: counted attempts would yield sooner for the queue whose failed
/// attempt is cheaper (an inlined Swift call against an out-of-line C++ one)
/// and make it pay more context switches for being faster. The clock is read
/// every 16 failures.
@usableFromInline
struct Backoff {
  @usableFromInline var failures = 0
  @usableFromInline var spinningSince: UInt64 = 0
  @usableFromInline let budgetNs: UInt64

  @inlinable init(threads: Int) {
    budgetNs = threads > Backoff.cores ? 1_000 : 50_000
  }

  @usableFromInline static let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))

  @usableFromInline static func nowNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
  }

  @inlinable @inline(__always)
  mutating func failed() {
    failures &+= 1
    guard failures & 15 == 0 else { return }
    let now = Backoff.nowNs()
    if spinningSince == 0 {
      spinningSince = now
    } else if now &- spinningSince >= budgetNs {
      sched_yield()
      spinningSince = Backoff.nowNs()
    }
  }

  @inlinable @inline(__always)
  mutating func succeeded() {
    failures = 0
    spinningSince = 0
  }
}

/// What a consumer does with each element in eviction mode: a short chain
/// of dependent multiplications (tens of nanoseconds), so that producers
/// outrun consumers as cameras outrun writers.
@inline(never)
func consume(_ value: UInt64, rounds: Int) -> UInt64 {
  var x = value | 1
  for _ in 0 ..< rounds { x = x &* 0x9E37_79B9_7F4A_7C15 ^ (x >> 29) }
  return x
}

/// Counters one thread fills and the caller reads after the threads finish.
final class ThreadTally: @unchecked Sendable {
  // @unchecked: written by one workload thread, read by the caller only
  // after ThreadGang.join (which orders them).
  var popped = 0
  var evicted = 0
  var handedBack = 0
  var sink: UInt64 = 0
  // Keep tallies of different threads off each other's cache lines.
  var padding: (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
}

public struct ThroughputResult: Sendable {
  public var elements: Int
  public var seconds: Double
  public var popped: Int
  public var evicted: Int
  public var handedBack: Int
  /// Elements pushed per second (eviction mode) or moved per second
  /// (waiting mode).
  public var perSecond: Double { Double(elements) / seconds }
}

/// One throughput run, prepared so that only `run()` needs measuring.
public final class ThroughputRun<Queue: BenchmarkedQueue>: @unchecked Sendable {
  // @unchecked: fields are set in init and read after the threads finish.
  public let producers: Int
  public let consumers: Int
  public let mode: PushMode
  public let perProducer: Int
  let queue: Queue
  let tallies: [ThreadTally]
  let producersDone = Atomic<Int>(0)
  var gang: ThreadGang!

  public init(producers: Int, consumers: Int, mode: PushMode, perProducer: Int,
              capacity: Int = 1024, consumerRounds: Int = 24) {
    self.producers = producers
    self.consumers = consumers
    self.mode = mode
    self.perProducer = perProducer
    queue = Queue(capacity: capacity)
    tallies = (0 ..< producers + consumers).map { _ in ThreadTally() }
    var bodies: [@Sendable () -> Void] = []
    for index in 0 ..< producers {
      bodies.append { [self] in produce(id: index, tally: tallies[index]) }
    }
    for index in 0 ..< consumers {
      bodies.append { [self] in consume(tally: tallies[producers + index], rounds: mode == .evicting ? consumerRounds : 0) }
    }
    gang = ThreadGang(bodies)
  }

  func produce(id: Int, tally: ThreadTally) {
    let queue = self.queue
    let base = UInt64(id) << 48
    var evicted = 0, handedBack = 0
    switch mode {
    case .evicting:
      for index in 0 ..< perProducer {
        let value = base | UInt64(index)
        if let back = queue.push(value) {
          if back == value { handedBack &+= 1 } else { evicted &+= 1 }
        }
      }
    case .waiting:
      var backoff = Backoff(threads: producers + consumers)
      for index in 0 ..< perProducer {
        let value = base | UInt64(index)
        while !queue.tryPush(value) { backoff.failed() }
        backoff.succeeded()
      }
    }
    tally.evicted = evicted
    tally.handedBack = handedBack
    // Release: pairs with the acquiring load in consume(), so a consumer
    // that sees every producer done sees all their pushes.
    producersDone.add(1, ordering: .releasing)
  }

  func consume(tally: ThreadTally, rounds: Int) {
    let queue = self.queue
    var popped = 0
    var sink: UInt64 = 0
    var backoff = Backoff(threads: producers + consumers)
    while true {
      if let value = queue.pop() {
        popped &+= 1
        if rounds > 0 { sink ^= RingWorkloads.consume(value, rounds: rounds) } else { sink ^= value }
        backoff.succeeded()
        continue
      }
      // Acquire: pairs with the producers' releasing increment. Eviction
      // mode stops as soon as the producers stop (what is left in the
      // ring does not count); waiting mode drains.
      if producersDone.load(ordering: .acquiring) == producers {
        if mode == .evicting || queue.pop() == nil { break }
        popped &+= 1
      }
      backoff.failed()
    }
    tally.popped = popped
    tally.sink = sink
  }

  /// Releases the threads and waits for them. Allocates nothing.
  public func run() -> ThroughputResult {
    let clock = ContinuousClock()
    let start = clock.now
    gang.release()
    gang.join()
    let elapsed = start.duration(to: clock.now)
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    var result = ThroughputResult(elements: producers * perProducer, seconds: seconds,
                                  popped: 0, evicted: 0, handedBack: 0)
    for tally in tallies {
      result.popped += tally.popped
      result.evicted += tally.evicted
      result.handedBack += tally.handedBack
    }
    return result
  }

  /// Releases what the run holds; call after the measurement.
  public func finish() { gang = nil }
}

/// Ping-pong between two threads over two queues: one round trip is a
/// tryPush and a pop on each side.
public final class PingPongRun<Queue: BenchmarkedQueue>: @unchecked Sendable {
  public let roundTrips: Int
  let there: Queue
  let back: Queue
  var gang: ThreadGang!

  public init(roundTrips: Int) {
    self.roundTrips = roundTrips
    there = Queue(capacity: 64)
    back = Queue(capacity: 64)
    gang = ThreadGang([
      { [self] in
        var backoff = Backoff(threads: 2)
        for index in 0 ..< UInt64(roundTrips) {
          while !there.tryPush(index) { backoff.failed() }
          while back.pop() == nil { backoff.failed() }
        }
      },
      { [self] in
        var backoff = Backoff(threads: 2)
        for _ in 0 ..< roundTrips {
          var value: UInt64? = nil
          while value == nil { value = there.pop(); if value == nil { backoff.failed() } }
          while !back.tryPush(value!) { backoff.failed() }
        }
      },
    ])
  }

  /// Nanoseconds per round trip.
  public func run() -> Double {
    let clock = ContinuousClock()
    let start = clock.now
    gang.release()
    gang.join()
    let elapsed = start.duration(to: clock.now)
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    return seconds * 1e9 / Double(roundTrips)
  }

  public func finish() { gang = nil }
}

/// The queues under test, by name, so that callers in other modules get
/// runs specialised for each queue here, where the generic workloads live
/// (a generic class instantiated from another module would run unspecialised
/// and reach every queue through its protocol witnesses).
public enum Implementation: CaseIterable, Sendable {
  case swift, cpp, cppPadded, mutex

  public var label: String {
    switch self {
    case .swift: DropOldestRing<UInt64>.label
    case .cpp: CppVyukovQueue.label
    case .cppPadded: CppVyukovPaddedQueue.label
    case .mutex: MutexArrayRing.label
    }
  }

  /// A prepared throughput run: threads started and parked.
  public func prepareThroughput(
    producers: Int, consumers: Int, mode: PushMode, perProducer: Int, capacity: Int = 1024
  ) -> any PreparedThroughput {
    switch self {
    case .swift:
      ThroughputRun<DropOldestRing<UInt64>>(
        producers: producers, consumers: consumers, mode: mode, perProducer: perProducer, capacity: capacity)
    case .cpp:
      ThroughputRun<CppVyukovQueue>(
        producers: producers, consumers: consumers, mode: mode, perProducer: perProducer, capacity: capacity)
    case .cppPadded:
      ThroughputRun<CppVyukovPaddedQueue>(
        producers: producers, consumers: consumers, mode: mode, perProducer: perProducer, capacity: capacity)
    case .mutex:
      ThroughputRun<MutexArrayRing>(
        producers: producers, consumers: consumers, mode: mode, perProducer: perProducer, capacity: capacity)
    }
  }

  /// A prepared ping-pong run: threads started and parked.
  public func preparePingPong(roundTrips: Int) -> any PreparedPingPong {
    switch self {
    case .swift: PingPongRun<DropOldestRing<UInt64>>(roundTrips: roundTrips)
    case .cpp: PingPongRun<CppVyukovQueue>(roundTrips: roundTrips)
    case .cppPadded: PingPongRun<CppVyukovPaddedQueue>(roundTrips: roundTrips)
    case .mutex: PingPongRun<MutexArrayRing>(roundTrips: roundTrips)
    }
  }
}

public protocol PreparedThroughput: AnyObject {
  func run() -> ThroughputResult
  func finish()
}

public protocol PreparedPingPong: AnyObject {
  func run() -> Double
  func finish()
}

extension ThroughputRun: PreparedThroughput {}
extension PingPongRun: PreparedPingPong {}
