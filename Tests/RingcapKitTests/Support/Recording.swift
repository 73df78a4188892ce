import COpenCV
import Foundation
import Testing

/// Where things are when the tests run: the package, the `ringcap` binary `swift test` built
/// beside the test bundle, and a scratch folder per test.
enum TestEnvironment {
    /// The package root, found from this file's path (Tests/RingcapKitTests/Support/…).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `ringcap` executable of the configuration under test (.build/debug or release), or
    /// the one `RINGCAP_BINARY` names (to run the end-to-end tests against a release build, or
    /// a long soak against a copy that a rebuild cannot replace).
    static let ringcapBinary: URL = {
        if let path = ProcessInfo.processInfo.environment["RINGCAP_BINARY"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        var candidates: [URL] = []
        let runner = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = runner.deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(dir.appendingPathComponent("ringcap"))
            dir = dir.deletingLastPathComponent()
        }
        candidates.append(packageRoot.appendingPathComponent(".build/debug/ringcap"))
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates.last!
    }()

    static let schema = packageRoot.appendingPathComponent("Schemas/sidecar.schema.json")
    static let support = packageRoot.appendingPathComponent("Tests/Support")

    /// A new empty folder under /tmp for one test.
    static func scratch(_ name: String) throws -> URL {
        let url = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("ringcap-test-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// The outcome of running a command to its end.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
    var seconds: Double
}

/// A program started by `runCommand`, its output going to files (no pipe can fill up and stall
/// the child). Not thread-safe: owned by one call.
private struct StartedCommand {
    let process = Process()
    let dir: URL, outURL: URL, errURL: URL
    let start = Date()
    let deadline: Date
    let description: String

    init(_ executable: String, _ arguments: [String], timeout: Double, environment: [String: String]?) throws {
        dir = try TestEnvironment.scratch("cmd")
        outURL = dir.appendingPathComponent("out")
        errURL = dir.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        process.standardInput = FileHandle.nullDevice
        deadline = start.addingTimeInterval(timeout)
        description = "\(executable) \(arguments.joined(separator: " ")) did not finish within \(timeout) s; killed"
        try process.run()
    }

    var isDue: Bool { !process.isRunning || Date() >= deadline }

    /// After the wait: kills the child by its PID if it outlived the timeout, and collects.
    func finish() -> CommandResult {
        defer { try? FileManager.default.removeItem(at: dir) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            Issue.record("\(description)")
        }
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus,
                             stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                             stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "",
                             seconds: Date().timeIntervalSince(start))
    }
}

/// Runs `executable` with `arguments`, output captured through files, killing it by PID if it
/// outlives `timeout`.
@discardableResult
func runCommand(_ executable: String, _ arguments: [String], timeout: Double = 120,
                environment: [String: String]? = nil) throws -> CommandResult {
    let command = try StartedCommand(executable, arguments, timeout: timeout, environment: environment)
    while !command.isDue { usleep(20_000) }
    return command.finish()
}

/// `runCommand` for async tests: the same, but it waits with `Task.sleep`, so that a test waiting
/// for a long run does not hold one of the few threads the other tests' async waits run on.
@discardableResult
func runCommandAsync(_ executable: String, _ arguments: [String], timeout: Double = 120,
                     environment: [String: String]? = nil) async throws -> CommandResult {
    let command = try StartedCommand(executable, arguments, timeout: timeout, environment: environment)
    while !command.isDue { try await Task.sleep(for: .milliseconds(20)) }
    return command.finish()
}

/// `runRingcap` for async tests (see `runCommandAsync`).
@discardableResult
func runRingcapAsync(_ arguments: [String], timeout: Double = 120) async throws -> CommandResult {
    try await runCommandAsync(TestEnvironment.ringcapBinary.path, arguments, timeout: timeout)
}

/// Runs the real `ringcap` binary.
@discardableResult
func runRingcap(_ arguments: [String], timeout: Double = 120) throws -> CommandResult {
    try runCommand(TestEnvironment.ringcapBinary.path, arguments, timeout: timeout)
}

/// One frame as found on disk.
struct RecordedFrame {
    var camera: String
    var seq: Int
    var jpg: String
    var json: String
    var sidecar: [String: Any]
}

/// Every frame under `out`, per camera, sorted by seq; also every file that is neither a
/// finished .jpg nor .json (temporaries, strays) in `strays`.
func recordedFrames(in out: URL) throws -> (frames: [String: [RecordedFrame]], strays: [String], jpgWithoutJSON: [String]) {
    var frames: [String: [RecordedFrame]] = [:]
    var strays: [String] = []
    var jpgs = Set<String>()
    var jsons: [String] = []
    let walker = FileManager.default.enumerator(atPath: out.path)
    while let relative = walker?.nextObject() as? String {
        if relative.hasPrefix(".ringcap/") || relative == ".ringcap" { continue }  // ringcap's own (the lock)
        let full = out.appendingPathComponent(relative).path
        var isDir: ObjCBool = false
        FileManager.default.fileExists(atPath: full, isDirectory: &isDir)
        if isDir.boolValue { continue }
        if relative.hasSuffix(".jpg") { jpgs.insert(String(full.dropLast(4))) }
        else if relative.hasSuffix(".json") { jsons.append(full) }
        else { strays.append(relative) }
    }
    for json in jsons {
        let data = try Data(contentsOf: URL(fileURLWithPath: json))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let camera = try #require(object["camera"] as? String)
        let seq = try #require(object["seq"] as? Int)
        let stem = String(json.dropLast(5))
        jpgs.remove(stem)
        frames[camera, default: []].append(RecordedFrame(camera: camera, seq: seq, jpg: stem + ".jpg", json: json, sidecar: object))
    }
    for key in frames.keys { frames[key]!.sort { $0.seq < $1.seq } }
    return (frames, strays, jpgs.sorted())
}

/// Validates sidecars against the repo's JSON Schema with python-jsonschema (an independent
/// validator). Records an issue for every failure.
func expectSidecarsValid(_ paths: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
    guard !paths.isEmpty else { return }
    let dir = try TestEnvironment.scratch("schema")
    defer { try? FileManager.default.removeItem(at: dir) }
    let list = dir.appendingPathComponent("files")
    try paths.joined(separator: "\n").write(to: list, atomically: true, encoding: .utf8)
    let result = try runCommand("/bin/sh", ["-c", "/usr/bin/python3 '\(TestEnvironment.support.path)/validate_sidecars.py' '\(TestEnvironment.schema.path)' - < '\(list.path)'"])
    #expect(result.status == 0, "sidecars do not validate: \(result.stdout.prefix(2000)) \(result.stderr.prefix(500))",
            sourceLocation: sourceLocation)
    #expect(result.stdout.contains("ok \(paths.count)"), sourceLocation: sourceLocation)
}

/// Makes a video whose frame n shows n as an 8-bit bar code: eight vertical bands, band b
/// white when bit b of n is set. Decoding a stored JPEG's bands gives back which frame it is.
func makeBarcodeVideo(at path: String, frames: Int, codec: String, width: Int = 320, height: Int = 240) throws {
    precondition(frames <= 256)
    let band = width / 8
    let filter = "nullsrc=s=\(width)x\(height):r=25,format=gray,geq=lum='if(mod(floor(N/pow(2\\,floor(X/\(band))))\\,2)\\,235\\,16)'"
    var args = ["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", filter, "-frames:v", "\(frames)"]
    switch codec {
    case "h264": args += ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
    case "mjpeg": args += ["-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p"]
    default: fatalError("unknown codec \(codec)")
    }
    let result = try runCommand("/usr/bin/ffmpeg", args + [path])
    try #require(result.status == 0, "ffmpeg failed: \(result.stderr)")
}

/// Frames of a bar-code video (`makeBarcodeVideo`'s code, frame n showing n + `offset`) as `count`
/// JPEG files `prefix_NNN.jpg` in `dir`, at `width`x`height`.
func makeBarcodeJPEGs(in dir: URL, prefix: String, count: Int, offset: Int, width: Int, height: Int) throws {
    let band = width / 8
    let filter = "nullsrc=s=\(width)x\(height):r=25,format=gray,geq=lum='if(mod(floor((N+\(offset))/pow(2\\,floor(X/\(band))))\\,2)\\,235\\,16)'"
    let result = try runCommand("/usr/bin/ffmpeg", ["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", filter,
                                                    "-frames:v", "\(count)", "-q:v", "3", "-pix_fmt", "yuvj420p",
                                                    dir.appendingPathComponent("\(prefix)_%03d.jpg").path])
    try #require(result.status == 0, "ffmpeg failed: \(result.stderr)")
}

/// A stored image decoded by OpenCV: its size, and the bar code of `makeBarcodeVideo` read
/// from it (nil when a band is neither clearly dark nor clearly light).
func probeImage(_ path: String, bands: Int = 8) -> (width: Int, height: Int, code: Int?)? {
    var width: Int32 = 0, height: Int32 = 0
    var mean = [Double](repeating: 0, count: 3)
    var message = [CChar](repeating: 0, count: 256)
    guard rc_image_probe(path, &width, &height, 0, 0, 0, 0, &mean, &message, message.count) == RC_OK else { return nil }
    let band = Int(width) / bands
    var code = 0
    for b in 0..<bands {
        // The middle of each band, away from the edges that JPEG blurs.
        guard rc_image_probe(path, &width, &height, Int32(b * band + band / 4), Int32(height / 4), Int32(band / 2),
                             Int32(height / 2), &mean, &message, message.count) == RC_OK else { return nil }
        let luma = (mean[0] + mean[1] + mean[2]) / 3
        if luma > 170 { code |= 1 << b } else if luma > 80 { return (Int(width), Int(height), nil) }
    }
    return (Int(width), Int(height), code)
}

/// The recording's stats JSON, per camera by name.
func readStats(_ url: URL) throws -> (root: [String: Any], cameras: [String: [String: Any]]) {
    let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    let list = try #require(object["cameras"] as? [[String: Any]])
    var byName: [String: [String: Any]] = [:]
    for camera in list { byName[camera["name"] as? String ?? "?"] = camera }
    return (object, byName)
}

/// Parses a sidecar's `time` back to Unix seconds (fractional).
func parseSidecarTime(_ text: String) -> Double? {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    // ISO8601DateFormatter keeps milliseconds only; add the remaining microseconds ourselves.
    guard text.count == 27, let date = formatter.date(from: String(text.prefix(23)) + "Z"),
          let micros = Double(text.dropFirst(23).prefix(3)) else { return nil }
    return date.timeIntervalSince1970 + micros / 1e6
}

/// Every camera of a recording's stats accounts for every frame: `captured == written + dropped +
/// failed + paused`.
func expectEveryFrameAccountedFor(_ cameras: [String: [String: Any]], sourceLocation: SourceLocation = #_sourceLocation) {
    for (name, c) in cameras.sorted(by: { $0.key < $1.key }) {
        let captured = c["captured"] as? Int ?? -1
        let sum = (c["written"] as? Int ?? 0) + (c["dropped"] as? Int ?? 0) + (c["failed"] as? Int ?? 0) + (c["paused"] as? Int ?? 0)
        #expect(captured == sum, "\(name): captured \(captured) != written + dropped + failed + paused = \(sum)", sourceLocation: sourceLocation)
    }
}
