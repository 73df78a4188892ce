// swift-tools-version: 6.1
//
// ringcap: a multi-camera frame recorder. See README.md and ../shared/design.md.
//
// Module graph (one direction only):
//   ringcap (CLI) -> RingcapHTTP, RingcapBench -> RingcapKit -> RingBuffer, COpenCV, CGPS
import PackageDescription

/// OpenCV 4 from Debian puts its headers under /usr/include/opencv4; the lean -dev packages
/// (core, imgproc, imgcodecs, videoio) ship no opencv4.pc, so the path and the libraries are
/// named here instead of through pkg-config. Only the modules the shim uses are linked.
let openCVInclude = "/usr/include/opencv4"

let package = Package(
    name: "ringcap",
    products: [
        .library(name: "RingBuffer", targets: ["RingBuffer"]),
        .library(name: "RingcapKit", targets: ["RingcapKit"]),
        .library(name: "RingcapBench", targets: ["RingcapBench"]),
        .library(name: "RingcapHTTP", targets: ["RingcapHTTP"]),
        .executable(name: "ringcap", targets: ["ringcap"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // `ringcap record --config FILE`: YAML, as Frigate's and go2rtc's users write it.
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // `ringcap record --http`: the live view, control, metrics and login.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
    ],
    targets: [
        .target(
            name: "RingBuffer",
            swiftSettings: [.enableExperimentalFeature("StrictConcurrency")]
        ),
        .target(
            name: "COpenCV",
            cxxSettings: [.unsafeFlags(["-I\(openCVInclude)", "-O3"])],
            linkerSettings: [
                .linkedLibrary("opencv_core"),
                .linkedLibrary("opencv_imgproc"),
                .linkedLibrary("opencv_imgcodecs"),
                .linkedLibrary("opencv_videoio"),
                .linkedLibrary("jpeg"),  // libjpeg-turbo, through its libjpeg API
                // Streams and files are read through FFmpeg directly (av_source.cpp).
                .linkedLibrary("avformat"),
                .linkedLibrary("avcodec"),
                .linkedLibrary("avutil"),
                .linkedLibrary("swscale"),
            ]
        ),
        .systemLibrary(
            name: "CGPS",
            pkgConfig: "libgps",
            providers: [.apt(["libgps-dev"])]
        ),
        .target(
            name: "RingcapKit",
            dependencies: [
                "RingBuffer", "COpenCV", "CGPS",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // `ringcap bench`: scenarios, the machine's limit, reports. Beside the engine, not in it.
        .target(
            name: "RingcapBench",
            dependencies: [
                "RingcapKit", "COpenCV",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        // The HTTP server: a service beside the engine, using its taps and controls.
        .target(
            name: "RingcapHTTP",
            dependencies: [
                "RingcapKit", "COpenCV",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ]
        ),
        .executableTarget(
            name: "ringcap",
            dependencies: [
                "RingcapKit", "RingcapBench", "RingcapHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "RingBufferTests", dependencies: ["RingBuffer"]),
        // Depends on the executable so that `swift test` builds it: the end-to-end tests run the real
        // `ringcap` binary found beside the test bundle.
        .testTarget(name: "RingcapKitTests", dependencies: [
            "RingcapKit", "RingcapBench", "RingBuffer", "COpenCV", "ringcap", "RingcapHTTP",
        ]),
    ],
    cxxLanguageStandard: .cxx17
)
