// Single-threaded tests: random sequences of push, tryPush and pop, checked
// step by step against a plain array model, at every small capacity.

import Testing
@testable import RingBuffer

/// SplitMix64: a tiny deterministic generator, so a failure names its seed
/// and can be replayed.
struct SplitMix64: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// What a drop-oldest ring of a given capacity should do with one thread.
struct ReferenceRing {
  let capacity: Int
  var elements: [Int] = []

  mutating func push(_ element: Int) -> Int? {
    elements.append(element)
    return elements.count > capacity ? elements.removeFirst() : nil
  }

  mutating func tryPush(_ element: Int) -> Bool {
    guard elements.count < capacity else { return false }
    elements.append(element)
    return true
  }

  mutating func pop() -> Int? {
    elements.isEmpty ? nil : elements.removeFirst()
  }
}

@Suite("DropOldestRing, one thread")
struct ReferenceModelTests {
  @Test("capacity is rounded up to a power of two", arguments: [
    (2, 2), (3, 4), (4, 4), (5, 8), (16, 16), (17, 32), (1000, 1024), (1 << 20, 1 << 20),
  ])
  func capacityRounding(requested: Int, expected: Int) {
    #expect(DropOldestRing<Int>(capacity: requested).capacity == expected)
  }

  @Test("the documented example")
  func documentedExample() {
    let ring = DropOldestRing<Int>(capacity: 3)
    #expect(ring.capacity == 4)
    #expect(ring.push(1) == nil)
    #expect(ring.push(2) == nil)
    #expect(ring.tryPush(3))
    #expect(ring.tryPush(4))
    #expect(!ring.tryPush(5))
    #expect(ring.push(5) == 1)
    #expect(ring.pop() == 2)
    #expect(ring.count == 3)
  }

  @Test("random operations match the reference model",
        arguments: Array(2 ... 16) + [31, 64, 100, 1000])
  func randomOperations(requestedCapacity: Int) {
    for seed in 0 ..< 20 as Range<UInt64> {
      var rng = SplitMix64(seed: seed &* 1_000_003 &+ UInt64(requestedCapacity))
      let ring = DropOldestRing<Int>(capacity: requestedCapacity)
      var model = ReferenceRing(capacity: ring.capacity)
      var next = 0
      // Bias the mix per seed so that runs spend time both near empty and
      // near full, and long enough to wrap the positions many laps.
      let pushWeight = Int.random(in: 1 ... 9, using: &rng)
      let steps = 40 * ring.capacity + 200
      for step in 0 ..< steps {
        let roll = Int.random(in: 0 ..< 10, using: &rng)
        if roll < pushWeight {
          next += 1
          if Bool.random(using: &rng) {
            let got = ring.push(next)
            let want = model.push(next)
            #expect(got == want, "push(\(next)) at step \(step), seed \(seed)")
          } else {
            let got = ring.tryPush(next)
            let want = model.tryPush(next)
            #expect(got == want, "tryPush(\(next)) at step \(step), seed \(seed)")
          }
        } else {
          let got = ring.pop()
          let want = model.pop()
          #expect(got == want, "pop() at step \(step), seed \(seed)")
        }
        #expect(ring.count == model.elements.count, "count at step \(step), seed \(seed)")
        if ring.count != model.elements.count { return }
      }
      // Drain, checking what is left.
      while let want = model.pop() {
        #expect(ring.pop() == want)
      }
      #expect(ring.pop() == nil)
      #expect(ring.count == 0)
    }
  }

  @Test("elements wider and more aligned than a word survive the trip")
  func wideElements() {
    struct Frame: BitwiseCopyable, Equatable {
      var slot: Int32
      var camera: UInt8
      var stamp: SIMD4<Double>
    }
    let ring = DropOldestRing<Frame>(capacity: 4)
    let frames = (0 ..< 6).map { Frame(slot: Int32($0), camera: UInt8($0), stamp: SIMD4(repeating: Double($0))) }
    for frame in frames.prefix(4) { #expect(ring.push(frame) == nil) }
    #expect(ring.push(frames[4]) == frames[0])
    #expect(ring.push(frames[5]) == frames[1])
    for frame in frames.suffix(4) { #expect(ring.pop() == frame) }
    #expect(ring.pop() == nil)
  }

  // A consumer descheduled in the middle of pop: it has won `head` for
  // position 0 but not yet published the cell as empty. A push into the full
  // ring needs exactly that cell; it must not wait, and hands back its own
  // element.
  @Test("push does not wait for a consumer stalled in the middle of pop")
  func pushWithStalledConsumer() {
    let ring = DropOldestRing<Int>(capacity: 4)
    for value in 1 ... 4 { #expect(ring.push(value) == nil) }
    // The stalled consumer's first half of pop.
    let (won, _) = ring._head.pointee.compareExchange(
      expected: 0, desired: 1, ordering: .relaxed)
    #expect(won)
    let stalled = ring._load(from: ring._cell(for: 0))
    #expect(stalled == 1)

    #expect(ring.push(5) == 5, "push must hand back its own element")
    #expect(!ring.tryPush(5))

    // The consumer resumes and finishes its pop.
    ring._sequence(of: ring._cell(for: 0)).pointee.store(0 + ring.capacity, ordering: .releasing)
    #expect(ring.push(5) == nil)
    #expect(ring.push(6) == 2)
    #expect((0 ..< 4).map { _ in ring.pop() } == [3, 4, 5, 6])
    #expect(ring.pop() == nil)
  }

  // A producer descheduled in the middle of push: it has won `tail` for
  // position 0 but not yet published its element.
  @Test("push and pop do not wait for a producer stalled in the middle of push")
  func stalledProducer() {
    let ring = DropOldestRing<Int>(capacity: 4)
    let (won, _) = ring._tail.pointee.compareExchange(
      expected: 0, desired: 1, ordering: .relaxed)
    #expect(won)
    for value in 2 ... 4 { #expect(ring.push(value) == nil) }
    #expect(ring.pop() == nil, "position 0 is not published yet")
    #expect(ring.push(5) == 5, "the oldest cell is held by the stalled producer")

    // The producer resumes and publishes position 0.
    ring._store(1, in: ring._cell(for: 0))
    ring._sequence(of: ring._cell(for: 0)).pointee.store(1, ordering: .releasing)
    #expect(ring.push(5) == 1)
    #expect((0 ..< 4).map { _ in ring.pop() } == [2, 3, 4, 5])
  }
}
