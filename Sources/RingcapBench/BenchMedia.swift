import COpenCV
import Foundation
import RingcapKit

/// The video files of the `files` scenario: two 1280x720 H.264 files of `frames` frames, made
/// on first use into `directory` and kept there for later runs. With the ffmpeg program they are
/// ffmpeg's moving `testsrc2` pattern (the second one mirrored, so the two differ); without it,
/// ringcap's own test pattern through OpenCV's VideoWriter.
///
/// Used from one thread.
public struct BenchMedia {
    public static let width = 1280, height = 720, frames = 1800, fps = 30

    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    /// The default place: `$XDG_CACHE_HOME/ringcap-bench`, else `~/.cache/ringcap-bench`.
    public static var defaultDirectory: String {
        let env = ProcessInfo.processInfo.environment
        if let cache = env["XDG_CACHE_HOME"], !cache.isEmpty { return cache + "/ringcap-bench" }
        return (env["HOME"] ?? NSTemporaryDirectory()) + "/.cache/ringcap-bench"
    }

    /// The two files, made now if missing. Each is written under a temporary name and renamed,
    /// so an interrupted run leaves no half file to be found next time.
    public func files(log: (String) -> Void) throws(BenchError) -> [String] {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw .media("cannot create \(directory): \(error.localizedDescription)")
        }
        var paths: [String] = []
        for (index, mirrored) in [false, true].enumerated() {
            let path = "\(directory)/h264-\(Self.width)x\(Self.height)-\(Self.frames)f-\(index == 0 ? "a" : "b").mp4"
            paths.append(path)
            if FileManager.default.fileExists(atPath: path) { continue }
            let temporary = path + ".part.mp4"
            unlink(temporary)
            if let ffmpeg = Self.ffmpegPath {
                log("making \(path) with \(ffmpeg)")
                try Self.runFFmpeg(ffmpeg, output: temporary, mirrored: mirrored)
            } else {
                log("making \(path) with OpenCV's VideoWriter (no ffmpeg program found)")
                let message = MessageBuffer()
                guard rc_video_make(temporary, Int32(Self.width), Int32(Self.height), Int32(Self.frames), Double(Self.fps),
                                    message.base, message.count) == RC_OK else {
                    throw .media("cannot make \(path): \(message.text)")
                }
            }
            guard rename(temporary, path) == 0 else {
                throw .media("cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))")
            }
        }
        return paths
    }

    static var ffmpegPath: String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") + ["/usr/bin", "/usr/local/bin"] {
            let candidate = "\(dir)/ffmpeg"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    private static func runFFmpeg(_ ffmpeg: String, output: String, mirrored: Bool) throws(BenchError) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ffmpeg)
        // veryfast x264 with a keyframe every 2 s: what an IP camera's main profile stream looks like.
        process.arguments = ["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
                             "-i", "testsrc2=size=\(width)x\(height):rate=\(fps)" + (mirrored ? ",hflip" : ""),
                             "-frames:v", "\(frames)", "-c:v", "libx264", "-preset", "veryfast", "-g", "\(2 * fps)",
                             "-pix_fmt", "yuv420p", "-f", "mp4", output]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        do {
            try process.run()
        } catch {
            throw .media("cannot run \(ffmpeg): \(error.localizedDescription)")
        }
        let text = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            unlink(output)
            let reason = String(decoding: text, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? "exit \(process.terminationStatus)"
            throw .media("ffmpeg could not make \(output): \(reason)")
        }
    }
}

/// Why the bench could not run. Carries what was wrong. A plain value.
public enum BenchError: Error, CustomStringConvertible {
    case media(String)
    case capture(CaptureError)
    case config(ConfigError)
    case nothingWritten(scenario: String)
    case live(String)

    public var description: String {
        switch self {
        case .media(let reason): return "bench media: \(reason)"
        case .capture(let error): return "\(error)"
        case .config(let error): return "\(error)"
        case .nothingWritten(let scenario): return "scenario \(scenario): nothing was written"
        case .live(let reason): return "scenario live: \(reason)"
        }
    }
}
