// Interleaved comparison of DropOldestRing, the C++ Vyukov queue (packed
// cells as published, and padded like DropOldestRing) and a Mutex array
// ring: every round runs each workload on each queue in turn,
// so that machine noise spreads over all three; the report is the median
// per workload and queue, and the Swift/C++ ratios.
//
//   swift run -c release ring-compare [rounds] [elements-per-producer]

import RingWorkloads

let arguments = CommandLine.arguments
let rounds = arguments.count > 1 ? Int(arguments[1]) ?? 7 : 7
let perProducer = arguments.count > 2 ? Int(arguments[2]) ?? 2_000_000 : 2_000_000

struct Workload {
  let name: String
  let producers: Int
  let consumers: Int
  let mode: PushMode
}

let workloads = [
  Workload(name: "1P1C evicting", producers: 1, consumers: 1, mode: .evicting),
  Workload(name: "1P1C tryPush ", producers: 1, consumers: 1, mode: .waiting),
  Workload(name: "2P2C evicting", producers: 2, consumers: 2, mode: .evicting),
  Workload(name: "2P2C tryPush ", producers: 2, consumers: 2, mode: .waiting),
]

func throughput(_ implementation: Implementation, _ workload: Workload) -> ThroughputResult {
  let run = implementation.prepareThroughput(
    producers: workload.producers, consumers: workload.consumers,
    mode: workload.mode, perProducer: perProducer)
  let result = run.run()
  run.finish()
  return result
}

func pingPong(_ implementation: Implementation) -> Double {
  let run = implementation.preparePingPong(roundTrips: perProducer / 10)
  let result = run.run()
  run.finish()
  return result
}

func median(_ values: [Double]) -> Double {
  let sorted = values.sorted()
  return sorted.count % 2 == 1 ? sorted[sorted.count / 2]
    : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func format(_ value: Double, _ width: Int = 9) -> String {
  let text = value >= 100 ? String(Int(value.rounded())) : String(Double(Int(value * 100)) / 100)
  return String(repeating: " ", count: max(0, width - text.count)) + text
}

var rates: [String: [Implementation: [Double]]] = [:]
var evictedShare: [String: [Implementation: [Double]]] = [:]
var handedBack: [String: [Implementation: Int]] = [:]
var latencies: [Implementation: [Double]] = [:]

print("ring-compare: \(rounds) rounds, \(perProducer) elements per producer, capacity 1024")
for round in 1 ... rounds {
  // Rotate which queue goes first, so no queue always runs on a cold or
  // hot machine.
  let all = Implementation.allCases
  let order = all.indices.map { all[($0 + round) % all.count] }
  for workload in workloads {
    for implementation in order {
      let result = throughput(implementation, workload)
      rates[workload.name, default: [:]][implementation, default: []].append(result.perSecond / 1e6)
      evictedShare[workload.name, default: [:]][implementation, default: []]
        .append(Double(result.evicted) / Double(result.elements))
      handedBack[workload.name, default: [:]][implementation, default: 0] += result.handedBack
    }
  }
  for implementation in order {
    let nanoseconds = pingPong(implementation)
    latencies[implementation, default: []].append(nanoseconds)
  }
  print("round \(round) done")
}

func pairedRatio(_ values: [String: [Implementation: [Double]]], _ name: String, _ over: Implementation) -> Double {
  median(zip(values[name]![.swift]!, values[name]![over]!).map { $0 / $1 })
}

print("")
print("throughput, million elements/s (median of \(rounds)); eviction mode counts pushes")
print("S/C: Swift over C++ Vyukov as published (packed cells); S/Cp: over C++ with padded cells like")
print("the Swift ring. Ratio of medians, and in brackets the median of per-round ratios.")
print("workload          Swift     C++   C++pad   Mutex    S/C          S/Cp         evicted% S/C/Cp/M   handed back S/C/Cp")
for workload in workloads {
  let m = Implementation.allCases.map { median(rates[workload.name]![$0]!) }
  let shares = Implementation.allCases.map { String(Int(median(evictedShare[workload.name]![$0]!) * 100)) }
  let back = [Implementation.swift, .cpp, .cppPadded].map { String(handedBack[workload.name]![$0]!) }
  print("\(workload.name)  \(format(m[0], 7)) \(format(m[1], 7)) \(format(m[2], 7)) \(format(m[3], 7))"
        + "  \(format(m[0] / m[1], 5)) (\(format(pairedRatio(rates, workload.name, .cpp), 4)))"
        + "  \(format(m[0] / m[2], 5)) (\(format(pairedRatio(rates, workload.name, .cppPadded), 4)))"
        + "   \(shares.joined(separator: "/"))   \(back.joined(separator: "/"))")
}
let lat = Implementation.allCases.map { median(latencies[$0]!) }
print("ping-pong round trip, ns (median of \(rounds)): Swift \(format(lat[0], 0))  C++ \(format(lat[1], 0))"
      + "  C++pad \(format(lat[2], 0))  Mutex \(format(lat[3], 0))")
print("")
print("raw rounds (M/s):")
for workload in workloads {
  for implementation in Implementation.allCases {
    let values = rates[workload.name]![implementation]!.map { format($0, 0) }.joined(separator: " ")
    print("  \(workload.name) \(implementation.label): \(values)")
  }
}
for implementation in Implementation.allCases {
  print("  ping-pong \(implementation.label) ns: \(latencies[implementation]!.map { format($0, 0) }.joined(separator: " "))")
}
