// swift-tools-version: 6.1
//
// Benchmarks for ringcap, kept out of the main package so that the main
// package does not depend on the benchmark tooling.
//
//   swift package benchmark                    # ordo-one/benchmark suites
//   ./ring-compare.sh                          # interleaved Swift / C++ / Mutex comparison
import PackageDescription

let package = Package(
    name: "ringcap-benchmarks",
    dependencies: [
        // Named, so that the identity does not depend on the checkout folder name.
        .package(name: "ringcap", path: ".."),
        // MallocInterposer only: the default traits would also pull in the
        // ARC runtime interposer, which is not mirrored here.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // Vyukov's bounded MPMC queue in C++, the yardstick for DropOldestRing.
        // -O3 is what a C++ project would ship it with; SwiftPM's release
        // configuration alone would give -O2.
        .target(
            name: "CVyukovQueue",
            cxxSettings: [.unsafeFlags(["-O3"])]
        ),
        // sched_setaffinity, which needs _GNU_SOURCE.
        .target(name: "CThreadAffinity"),
        // The workloads, generic over the queue under test, shared by the
        // ordo-one suite and the interleaved comparison.
        .target(
            name: "RingWorkloads",
            dependencies: [
                "CVyukovQueue",
                "CThreadAffinity",
                .product(name: "RingBuffer", package: "ringcap"),
            ]
        ),
        .executableTarget(
            name: "ring-compare",
            dependencies: ["RingWorkloads"]
        ),
        .executableTarget(
            name: "RingThroughput",
            dependencies: [
                "RingWorkloads",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/RingThroughput",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark"),
            ]
        ),
        // ringcap's per-frame work, piece by piece and whole, through RingcapKit's
        // public entry points (PatternFrame, SidecarSample, CaptureToRingLoop, FramePathRun).
        .executableTarget(
            name: "Pipeline",
            dependencies: [
                .product(name: "RingcapKit", package: "ringcap"),
                .product(name: "RingBuffer", package: "ringcap"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/Pipeline",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark"),
            ]
        ),
    ],
    cxxLanguageStandard: .cxx17
)
