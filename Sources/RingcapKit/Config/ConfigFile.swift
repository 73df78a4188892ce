import Foundation
import Yams

/// `ringcap record --config FILE`: a YAML file with the flags' keys (`keep_free` for
/// `--keep-free`) and `cameras`, as a list or a map, each camera with settings of its own; read
/// with Yams' decoder into `RecordConfig` (`RecordConfig: Decodable`), over its defaults. Flags
/// given on the command line override the file. Unknown keys are an error, and every error names
/// the file, the line and the key. A plain value, made on one thread.
public struct ConfigFile: Sendable {
    public let path: String
    /// The file's settings over the defaults (not yet validated: `validate` names file lines).
    public let config: RecordConfig
    /// Top-level keys the file sets.
    public let keys: Set<String>
    /// Line of each key path (`fps`, `cameras`, `cameras.bow`, `cameras.bow.fps`).
    private let lines: [String: Int]

    public static func load(path: String) throws(ConfigError) -> ConfigFile {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            let reason = (error as NSError).localizedFailureReason ?? "cannot read it"
            throw .inFile(path: path, line: nil, key: "", value: "", reason: "cannot read it (\(reason))")
        }
        return try parse(text, path: path)
    }

    /// Reads a config file's text; `path` is for messages.
    public static func parse(_ text: String, path: String) throws(ConfigError) -> ConfigFile {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                return ConfigFile(path: path, config: RecordConfig(cameras: []), keys: [], lines: [:])
            }
            root = node
        } catch let error as YamlError {
            throw .inFile(path: path, line: line(of: error), key: "", value: "", reason: "not valid YAML: \(problem(of: error))")
        } catch {
            throw .inFile(path: path, line: nil, key: "", value: "", reason: "not valid YAML: \(error)")
        }
        var lines = keyLines(root)
        lines[""] = root.mark?.line
        let config: RecordConfig
        do {
            config = try YAMLDecoder().decode(RecordConfig.self, from: root)
        } catch let problem as ConfigFileProblem {
            let key = dotted(problem.codingPath)
            throw .inFile(path: path, line: lines[key] ?? lines[parent(of: key)], key: key, value: problem.value, reason: problem.reason)
        } catch let error as DecodingError {
            let (codingPath, reason): ([CodingKey], String) = switch error {
            case .typeMismatch(_, let c), .valueNotFound(_, let c):
                // What was wanted where: `cameras` a list or a map, a camera's entry its keys (or
                // NAME=SOURCE), any other value a single one.
                (c.codingPath, c.codingPath.count == 1 && c.codingPath[0].stringValue == "cameras" ? "expected a list or a map of cameras"
                    : c.codingPath.count == 2 && c.codingPath[0].stringValue == "cameras" ? "expected a SOURCE or keys such as source: and fps:"
                    : "expected a single value, not a list or keys")
            case .keyNotFound(let key, let c): (c.codingPath + [key], "missing")
            case .dataCorrupted(let c): (c.codingPath, c.debugDescription)
            @unknown default: ([], "\(error)")
            }
            let key = dotted(codingPath)
            throw .inFile(path: path, line: lines[key] ?? lines[parent(of: key)], key: key, value: "", reason: reason)
        } catch {
            throw .inFile(path: path, line: nil, key: "", value: "", reason: "\(error)")
        }
        return ConfigFile(path: path, config: config, keys: Set(root.mapping?.keys.compactMap(\.scalar?.string) ?? []), lines: lines)
    }

    /// Validates a configuration built from this file (and flags) as `RecordConfig.validate`
    /// does, naming the file's key and line for what the file set (`prepare`: also create and
    /// probe the output folder).
    public func validate(_ config: RecordConfig, flagsGiven: Set<String> = [], prepare: Bool = true) throws(ConfigError) {
        do {
            try config.validate(prepareOutput: prepare)
        } catch {
            throw located(error, flagsGiven: flagsGiven)
        }
    }

    /// An error from `RecordConfig.validate` about a value the file set (not a flag given on the
    /// command line), with the file's key and line; others as they are.
    public func located(_ error: ConfigError, flagsGiven: Set<String>) -> ConfigError {
        let camerasFromFile = keys.contains("cameras") && !flagsGiven.contains("--camera")
        switch error {
        case .invalidValue(let flag, let value, let reason):
            if flag.hasPrefix("cameras.") {  // a camera's own setting: only a file sets those
                return .inFile(path: path, line: lines[flag] ?? lines[Self.parent(of: flag)], key: flag, value: value, reason: reason)
            }
            if flag == "--camera" {
                return camerasFromFile ? .inFile(path: path, line: lines["cameras"], key: "cameras", value: value, reason: reason) : error
            }
            let key = String(flag.dropFirst(2)).replacingOccurrences(of: "-", with: "_")
            guard keys.contains(key) && !flagsGiven.contains(flag) else { return error }
            return .inFile(path: path, line: lines[key], key: key, value: value, reason: reason)
        case .duplicateCamera(let name) where camerasFromFile:
            return .inFile(path: path, line: lines["cameras.\(name)"], key: "cameras.\(name)", value: "", reason: "the name is used twice")
        case .camerasDifferOnlyInCase(let a, let b) where camerasFromFile:
            return .inFile(path: path, line: lines["cameras.\(b)"], key: "cameras.\(b)", value: "",
                           reason: "differs from '\(a)' only in case; on FAT and exFAT (SD cards, USB sticks) they would be one folder")
        case .missingFile(let file) where camerasFromFile:
            return .inFile(path: path, line: lines["cameras"], key: "cameras", value: file, reason: "no such video file")
        case .outputNotWritable(let out, let reason) where keys.contains("out") && !flagsGiven.contains("--out"):
            return .inFile(path: path, line: lines["out"], key: "out", value: out, reason: reason)
        default:
            return error
        }
    }

    // MARK: Lines

    /// `cameras.bow.fps` for a coding path; a list's camera by its name when it has one.
    private static func dotted(_ path: [CodingKey]) -> String {
        path.map { $0.intValue.map { "[\($0 + 1)]" } ?? $0.stringValue }.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
    }

    private static func parent(of key: String) -> String {
        key.lastIndex(of: ".").map { String(key[..<$0]) } ?? key
    }

    /// The line of every key in the file, by dotted path; cameras in a list also by position
    /// (`cameras[2]`) and, when they have one, by name.
    private static func keyLines(_ root: Node) -> [String: Int] {
        var lines: [String: Int] = [:]
        func walk(_ node: Node, _ prefix: String) {
            if let mapping = node.mapping {
                for (key, value) in mapping {
                    guard let name = key.scalar?.string else { continue }
                    let path = prefix.isEmpty ? name : prefix + "." + name
                    lines[path] = key.mark?.line
                    walk(value, path)
                }
            } else if let list = node.sequence {
                for (i, item) in list.enumerated() {
                    let path = "\(prefix)[\(i + 1)]"
                    lines[path] = item.mark?.line
                    walk(item, path)
                    if prefix == "cameras", let name = item.mapping?["name"]?.scalar?.string ?? item.scalar?.string.split(separator: "=").first.map(String.init) {
                        lines["cameras.\(name)"] = item.mark?.line
                        if let fields = item.mapping {
                            for (key, _) in fields { if let k = key.scalar?.string { lines["cameras.\(name).\(k)"] = key.mark?.line } }
                        }
                    }
                }
            }
        }
        walk(root, "")
        return lines
    }

    private static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        default: return nil
        }
    }

    private static func problem(of error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _), .composer(_, let problem, _, _): return problem
        default: return "\(error)"
        }
    }
}

/// A bad key or value met while decoding a config file: where (the coding path), what was
/// written, and why. `ConfigFile` turns it into a `ConfigError` with the file and line.
struct ConfigFileProblem: Error {
    var codingPath: [CodingKey]
    var value: String
    var reason: String
}

/// Any key, for reading a mapping whose keys are checked by hand (unknown ones are errors).
struct ConfigKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

extension RecordConfig: Decodable {
    /// The recording's keys in a config file, in the order `yaml` writes them.
    public static let fileKeys = ["out", "fps", "size", "quality", "passthrough", "writers", "ring", "when_full",
                                  "duration", "frames", "gps", "gps_max_age", "stats_json", "keep_free", "max_size",
                                  "fsync", "open_timeout", "read_timeout", "rtsp_transport", "drain_timeout", "log_level",
                                  "http", "http_auth", "http_insecure", "http_max_clients"]

    /// The file's keys over the defaults (`RecordConfig(cameras: [])`), each read as the flag of
    /// its name reads its value (`set(_:to:)`).
    public init(from decoder: Decoder) throws {
        self.init(cameras: [])
        let c = try decoder.container(keyedBy: ConfigKey.self)
        for key in c.allKeys {
            let name = key.stringValue
            if name == "cameras" {
                if try c.decodeNil(forKey: key) { continue }
                cameras = try c.decode(CameraList.self, forKey: key).cameras
                continue
            }
            guard Self.fileKeys.contains(name) else {
                throw ConfigFileProblem(codingPath: c.codingPath + [key], value: "",
                                        reason: "unknown key; the keys are cameras, \(Self.fileKeys.joined(separator: ", "))")
            }
            if try c.decodeNil(forKey: key) { continue }  // `key:` alone: the default
            let text = try c.decode(String.self, forKey: key)
            do throws(ConfigError) { try set(name, to: text) } catch {
                throw ConfigFileProblem(codingPath: c.codingPath + [key], value: text, reason: error.reasonOnly)
            }
        }
    }
}

/// `cameras:` as a list (`- front=test:640x480@30`, `- {name: front, source: …}`) or a map
/// (`front: test:640x480@30`, `front: {source: …, fps: 5}`).
struct CameraList: Decodable {
    var cameras: [CameraSpec] = []

    static let keys = ["name", "source", "fps", "size", "quality", "when_full", "recording"]

    init(from decoder: Decoder) throws {
        if var list = try? decoder.unkeyedContainer() {
            while !list.isAtEnd {
                let index = list.currentIndex
                let itemPath = list.codingPath + [IndexKey(index)]
                if let text = try? list.decode(String.self) {
                    do throws(ConfigError) { cameras.append(try CameraSpec(parsing: text, index: index)) } catch {
                        throw ConfigFileProblem(codingPath: itemPath, value: text, reason: error.reasonOnly)
                    }
                } else {
                    let fields = try list.decode(CameraFields.self)
                    cameras.append(try fields.spec(name: nil, index: index, path: itemPath))
                }
            }
            return
        }
        let map = try decoder.container(keyedBy: ConfigKey.self)
        for (index, key) in map.allKeys.enumerated() {
            let name = key.stringValue
            do throws(ConfigError) { try CameraSpec.validate(name: name) } catch {
                throw ConfigFileProblem(codingPath: map.codingPath + [key], value: name, reason: error.reasonOnly)
            }
            if let text = try? map.decode(String.self, forKey: key) {
                do throws(ConfigError) { cameras.append(CameraSpec(name: name, source: try SourceSpec(parsing: text))) } catch {
                    throw ConfigFileProblem(codingPath: map.codingPath + [key], value: text, reason: error.reasonOnly)
                }
            } else {
                let fields = try map.decode(CameraFields.self, forKey: key)
                cameras.append(try fields.spec(name: name, index: index, path: map.codingPath + [key]))
            }
        }
    }

    struct IndexKey: CodingKey {
        var intValue: Int?
        var stringValue: String { "\(intValue!)" }
        init(_ i: Int) { intValue = i }
        init?(stringValue: String) { return nil }
        init?(intValue: Int) { self.intValue = intValue }
    }

    /// One camera's keys, as written.
    struct CameraFields: Decodable {
        var values: [(key: String, value: String)] = []

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: ConfigKey.self)
            for key in c.allKeys {
                guard CameraList.keys.contains(key.stringValue) else {
                    throw ConfigFileProblem(codingPath: c.codingPath + [key], value: "",
                                            reason: "unknown key for a camera; its keys are \(CameraList.keys.joined(separator: ", "))")
                }
                if try c.decodeNil(forKey: key) { continue }
                values.append((key.stringValue, try c.decode(String.self, forKey: key)))
            }
        }

        func spec(name given: String?, index: Int, path: [CodingKey]) throws -> CameraSpec {
            func value(_ key: String) -> String? { values.first { $0.key == key }?.value }
            func problem(_ key: String, _ reason: String) -> ConfigFileProblem {
                ConfigFileProblem(codingPath: path + [ConfigKey(key)], value: value(key) ?? "", reason: reason)
            }
            if given != nil, value("name") != nil { throw problem("name", "a camera of the map is named by its key") }
            let name = given ?? value("name") ?? "cam\(index)"
            if given == nil {
                do throws(ConfigError) { try CameraSpec.validate(name: name) } catch { throw problem("name", error.reasonOnly) }
            }
            guard let sourceText = value("source") else {
                throw ConfigFileProblem(codingPath: path, value: "", reason: "has no source:")
            }
            var spec: CameraSpec
            do throws(ConfigError) { spec = CameraSpec(name: name, source: try SourceSpec(parsing: sourceText)) } catch {
                throw problem("source", error.reasonOnly)
            }
            for (key, text) in values {
                do throws(ConfigError) {
                    switch key {
                    case "fps": spec.fps = try ConfigValue.number(text)
                    case "size": spec.size = try FrameSize(parsing: text)
                    case "quality": spec.quality = try ConfigValue.integer(text)
                    case "when_full": spec.whenFull = try ConfigValue.choice(text, WhenFull.self)
                    case "recording": spec.recording = try ConfigValue.boolean(text)
                    default: break
                    }
                } catch {
                    throw problem(key, error.reasonOnly)
                }
            }
            return spec
        }
    }
}

extension ConfigError {
    /// The words of the error without the flag it names (a file names its key instead).
    var reasonOnly: String {
        switch self {
        case .invalidValue(_, _, let reason), .invalidSource(_, let reason): return reason
        default: return description
        }
    }
}
