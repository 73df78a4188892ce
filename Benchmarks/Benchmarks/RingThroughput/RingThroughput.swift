// ordo-one/benchmark suite for DropOldestRing and its two yardsticks.
// Each iteration pushes a million elements in all; threads are
// created before startMeasurement() and joined after stopMeasurement(), so
// the malloc counts are those of push and pop alone (expected: 0).
//
//   swift package --disable-sandbox benchmark --target RingThroughput

import Benchmark
import RingWorkloads

/// Elements pushed per iteration, across all producers (scaling factor .mega).
let elementsPerIteration = 1_000_000

let benchmarks: @Sendable () -> Void = {
  Benchmark.defaultConfiguration = .init(
    metrics: [.throughput, .wallClock, .cpuTotal, .mallocCountTotal, .peakMemoryResident],
    // Scaled per element: nanoseconds per push (or per round trip).
    timeUnits: .nanoseconds,
    warmupIterations: 1,
    scalingFactor: .mega,
    maxDuration: .seconds(3),
    maxIterations: 15
  )

  for (producers, consumers) in [(1, 1), (2, 2)] {
    for mode in PushMode.allCases {
      for implementation in Implementation.allCases {
        Benchmark("\(producers)P\(consumers)C \(mode.rawValue) \(implementation.label)") { benchmark in
          let run = implementation.prepareThroughput(
            producers: producers, consumers: consumers, mode: mode,
            perProducer: elementsPerIteration / producers)
          benchmark.startMeasurement()
          blackHole(run.run())
          benchmark.stopMeasurement()
          run.finish()
        }
      }
    }
  }

  // One iteration is 1 000 round trips (scaling factor .kilo): the
  // throughput metric is round trips per second, and the wall clock of an
  // iteration in microseconds is the latency of one round trip in ns.
  for implementation in Implementation.allCases {
    Benchmark("ping-pong \(implementation.label)",
              configuration: .init(scalingFactor: .kilo)) { benchmark in
      let run = implementation.preparePingPong(roundTrips: 1_000)
      benchmark.startMeasurement()
      blackHole(run.run())
      benchmark.stopMeasurement()
      run.finish()
    }
  }
}
