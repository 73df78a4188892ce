// Concurrent tests: producers push elements that encode who pushed them and
// in which order; consumers pop. Afterwards every element must have come
// back exactly once (popped, or returned by push), and every thread that
// took elements from the head must have seen each producer's elements in
// increasing order.
//
// Element counts are sized for a debug build on two cores. Set
// RINGCAP_STRESS=1 for a run twenty times longer; RINGCAP_TSAN=1 (set by
// CI with --sanitize=thread) cuts the counts so the sanitizer run stays short.

import Synchronization
import Testing
@testable import RingBuffer

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

enum Workload {
  static func environment(_ name: String) -> Bool {
    guard let value = getenv(name) else { return false }
    return String(cString: value) == "1"
  }

  static let stress = environment("RINGCAP_STRESS")
  /// Under ThreadSanitizer: RINGCAP_TSAN=1, or the sanitizer's runtime is
  /// linked in (so that `swift test --sanitize=thread` alone is also short).
  static let sanitized = environment("RINGCAP_TSAN") || dlsym(nil, "__tsan_init") != nil

  /// Elements each producer pushes in one configuration, scaled for the run.
  static func perProducer(_ base: Int) -> Int {
    if stress { return base * 20 }
    if sanitized { return Swift.max(base / 10, 500) }
    return base
  }
}

enum PushMode: String, CustomTestStringConvertible, Sendable {
  /// `push`: producers never wait; full rings evict.
  case evicting
  /// `tryPush`: producers retry until the ring has room; nothing is evicted.
  case waiting

  var testDescription: String { rawValue }
}

/// An element: producer id in the top 16 bits, sequence number below.
typealias Tagged = UInt64

@inline(__always) func tag(producer: Int, sequence: Int) -> Tagged {
  UInt64(producer) << 48 | UInt64(sequence)
}
@inline(__always) func producer(of element: Tagged) -> Int { Int(element >> 48) }
@inline(__always) func sequence(of element: Tagged) -> Int { Int(element & 0xFFFF_FFFF_FFFF) }

/// What one thread got back from the ring, filled by that thread only and
/// read after it was joined.
final class Received: @unchecked Sendable {
  /// Elements taken from the head, in the order this thread took them: pops,
  /// and for producers the elements their pushes evicted.
  var fromHead: [Tagged] = []
  /// Elements a push handed back instead of evicting (its own argument).
  var handedBack: [Tagged] = []
}

struct RunResult {
  var popped = 0
  var evicted = 0
  var handedBack = 0
}

/// Runs producers × consumers over one ring and checks both promises.
@discardableResult
func runAndCheck(
  producers: Int, consumers: Int, capacity: Int, mode: PushMode, perProducer: Int
) -> RunResult {
  let ring = DropOldestRing<Tagged>(capacity: capacity)
  let producersDone = SharedCounter()
  let started = SharedCounter()
  let threads = producers + consumers
  let received = (0 ..< threads).map { _ in Received() }

  var bodies: [@Sendable () -> Void] = []
  for id in 0 ..< producers {
    let out = received[id]
    bodies.append {
      // Relaxed: a start line only, so that threads overlap; pairs with
      // the other threads' increments. Orders nothing.
      started.value.add(1, ordering: .relaxed)
      while started.value.load(ordering: .relaxed) < threads { yieldProcessor() }
      out.fromHead.reserveCapacity(mode == .evicting ? perProducer : 0)
      for index in 0 ..< perProducer {
        let element = tag(producer: id, sequence: index)
        switch mode {
        case .evicting:
          if let back = ring.push(element) {
            if back == element { out.handedBack.append(back) } else { out.fromHead.append(back) }
          }
        case .waiting:
          while !ring.tryPush(element) { yieldProcessor() }
        }
        // Let consumers in now and then, so that on two cores the ring
        // goes through empty, full and in-between states.
        if index & 255 == 255 { yieldProcessor() }
      }
      // Release: pairs with the acquiring load in the consumers, so that a
      // consumer that sees all producers done sees all their pushes.
      producersDone.value.add(1, ordering: .releasing)
    }
  }
  for id in 0 ..< consumers {
    let out = received[producers + id]
    bodies.append {
      // Relaxed: start line only, as for the producers.
      started.value.add(1, ordering: .relaxed)
      while started.value.load(ordering: .relaxed) < threads { yieldProcessor() }
      out.fromHead.reserveCapacity(perProducer * producers / consumers + 1024)
      var idle = 0
      while true {
        // Acquire: pairs with the producers' releasing increment; read
        // before pop, so that an empty pop after it means truly empty.
        let allDone = producersDone.value.load(ordering: .acquiring) == producers
        if let element = ring.pop() {
          out.fromHead.append(element)
          idle = 0
        } else if allDone {
          break
        } else {
          idle += 1
          if idle > 16 { yieldProcessor() }
        }
      }
    }
  }
  runOnThreads(bodies)

  // Exactly once: one mark per element across every thread's haul.
  var seen = (0 ..< producers).map { _ in [Bool](repeating: false, count: perProducer) }
  var duplicates = 0
  var result = RunResult()
  for (index, out) in received.enumerated() {
    var last = [Int](repeating: -1, count: producers)
    for element in out.fromHead {
      let p = producer(of: element), s = sequence(of: element)
      guard p < producers, s < perProducer else {
        Issue.record("foreign element \(element) from thread \(index)")
        return result
      }
      if seen[p][s] { duplicates += 1 }
      seen[p][s] = true
      // Per-producer order, as seen by one thread taking from the head.
      if s <= last[p] {
        Issue.record("thread \(index) took element \(s) of producer \(p) after \(last[p])")
        return result
      }
      last[p] = s
    }
    for element in out.handedBack {
      let p = producer(of: element), s = sequence(of: element)
      if seen[p][s] { duplicates += 1 }
      seen[p][s] = true
    }
    if index < producers {
      result.evicted += out.fromHead.count
      result.handedBack += out.handedBack.count
    } else {
      result.popped += out.fromHead.count
    }
  }
  let missing = seen.reduce(0) { $0 + $1.lazy.filter { !$0 }.count }
  #expect(duplicates == 0, "elements came back more than once")
  #expect(missing == 0, "elements never came back")
  #expect(result.popped + result.evicted + result.handedBack == producers * perProducer)
  if mode == .waiting {
    #expect(result.evicted == 0 && result.handedBack == 0)
  }
  #expect(ring.count == 0)
  return result
}

/// An atomic counter that closures can share.
final class SharedCounter: Sendable {
  let value = Atomic<Int>(0)
}

@Suite("DropOldestRing, many threads", .serialized)
struct ConcurrentTests {
  @Test("one producer, one consumer, long run", arguments: [PushMode.evicting, .waiting])
  func oneByOne(mode: PushMode) {
    runAndCheck(producers: 1, consumers: 1, capacity: 4, mode: mode,
                perProducer: Workload.perProducer(1_000_000))
  }

  @Test("producers × consumers × capacity",
        arguments: [PushMode.evicting, .waiting], [2, 4, 64])
  func matrix(mode: PushMode, capacity: Int) {
    for producers in 1 ... 4 {
      for consumers in 1 ... 4 {
        let result = runAndCheck(
          producers: producers, consumers: consumers, capacity: capacity, mode: mode,
          perProducer: Workload.perProducer(50_000))
        // Pushes that handed back their own element (the cell they needed
        // was held by a descheduled thread) are allowed; they are counted
        // here so that a change in how often they happen shows in the log.
        if result.handedBack > 0 {
          print("""
            \(mode) \(producers)P×\(consumers)C capacity \(capacity): \
            \(result.popped) popped, \(result.evicted) evicted, \(result.handedBack) handed back
            """)
        }
      }
    }
  }
}
