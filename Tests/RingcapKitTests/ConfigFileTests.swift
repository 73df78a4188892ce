import Foundation
import Testing
@testable import RingcapKit

/// `--config FILE`: the YAML file, its per-camera settings, its errors, and how flags override it.
@Suite struct ConfigFileTests {
    private func parse(_ text: String) throws(ConfigError) -> ConfigFile { try ConfigFile.parse(text, path: "t.yaml") }

    @Test func fileAndEquivalentFlagsGiveEqualConfigs() throws {
        let file = try parse("""
            cameras:
              - bow=rtsp://192.168.1.20:554/stream1
              - name: mast
                source: test:640x480@15
            out: /data/rec
            fps: 12.5
            size: 800x600
            quality: 90
            passthrough: off
            writers: 3
            ring: 64
            when_full: wait
            duration: 3600
            frames: 500
            gps: fixed:54.3233,10.1228,5
            gps_max_age: 2
            stats_json: /data/stats.json
            keep_free: 2GB
            max_size: 20GiB
            fsync: true
            open_timeout: 4
            read_timeout: 3.5
            rtsp_transport: udp
            drain_timeout: 1
            log_level: debug
            """)
        var flags = RecordConfig(cameras: [try CameraSpec(parsing: "bow=rtsp://192.168.1.20:554/stream1", index: 0),
                                           try CameraSpec(parsing: "mast=test:640x480@15", index: 1)])
        for (key, text) in [("out", "/data/rec"), ("fps", "12.5"), ("size", "800x600"), ("quality", "90"), ("passthrough", "off"),
                            ("writers", "3"), ("ring", "64"), ("when_full", "wait"), ("duration", "3600"), ("frames", "500"),
                            ("gps", "fixed:54.3233,10.1228,5"), ("gps_max_age", "2"), ("stats_json", "/data/stats.json"),
                            ("keep_free", "2GB"), ("max_size", "20GiB"), ("fsync", "true"), ("open_timeout", "4"),
                            ("read_timeout", "3.5"), ("rtsp_transport", "udp"), ("drain_timeout", "1"), ("log_level", "debug")] {
            try flags.set(key, to: text)
        }
        #expect(file.config == flags)
        #expect(file.config.fpsCap == 12.5 && file.config.maxSizeBytes == 20 << 30 && file.config.keepFree == .bytes(2_000_000_000))
        // What `config check` prints reads back to the same configuration.
        #expect(try parse(file.config.yaml).config == file.config)
        #expect(try parse(RecordConfig(cameras: []).yaml).config == RecordConfig(cameras: []))
        // Values YAML would read as something else go out quoted; small percentages without an exponent.
        var odd = RecordConfig(cameras: [CameraSpec(name: "null", source: .file(path: "@clip.mp4")),
                                         CameraSpec(name: "yes", source: .file(path: "%a #b.mp4"))])
        odd.keepFree = .percent(0.00001)
        odd.statsJSONPath = "- stats: x.json"
        #expect(try parse(odd.yaml).config == odd, "\(odd.yaml)")
    }

    @Test func exampleIsAValidFile() throws {
        let example = try parse(RecordConfig.exampleYAML)
        #expect(example.config.cameras.map(\.name) == ["bow", "mast", "deck"])
        #expect(example.config.cameras[1].fps == 5 && example.config.cameras[1].quality == 90)
        #expect(example.config.cameras[2].recording == false)
        try example.validate(example.config, prepare: false)
        #expect(try parse(example.config.yaml).config == example.config)
    }

    @Test func perCameraSettingsOverrideTheRecordings() throws {
        let file = try parse("""
            cameras:
              slow: {source: "test:320x240@30", fps: 2, quality: 40, when_full: wait, size: 160x120}
              fast: test:320x240@30
              off:
                source: test:64x48@5
                recording: false
            fps: 10
            quality: 70
            """)
        let c = file.config
        let slow = c.cameras[0], fast = c.cameras[1], off = c.cameras[2]
        #expect(c.cameras.map(\.name) == ["slow", "fast", "off"])
        #expect(c.fps(for: slow) == 2 && c.fps(for: fast) == 10)
        #expect(c.quality(for: slow) == 40 && c.quality(for: fast) == 70)
        #expect(c.size(for: slow) == FrameSize(width: 160, height: 120) && c.size(for: fast) == nil)
        #expect(c.whenFull(for: slow) == .wait && c.whenFull(for: fast) == .dropOldest)
        #expect(!off.recording && fast.recording)
        #expect(c.expectedFPS(of: slow) == 2 && c.expectedFPS(of: off) == 5)
    }

    /// Each bad key or value names the file, its line and the key.
    @Test(arguments: [
        ("cameras: [a=test:32x24@10]\nfsp: 3\n", "t.yaml:2: fsp: unknown key"),
        ("cameras: [a=test:32x24@10]\nquality: high\n", "t.yaml:2: quality 'high': expected a whole number"),
        ("cameras: [a=test:32x24@10]\nfps: 0x10\n", "t.yaml:2: fps '0x10': expected a number"),
        ("cameras: [a=test:32x24@10]\nsize: 12x\n", "t.yaml:2: size '12x'"),
        ("cameras: [a=test:32x24@10]\nwhen_full: sometimes\n", "t.yaml:2: when_full 'sometimes': expected drop-oldest or wait"),
        ("cameras: [a=test:32x24@10]\ngps: bogus://x\n", "t.yaml:2: gps 'bogus://x'"),
        ("cameras: [a=test:32x24@10]\nkeep_free: lots\n", "t.yaml:2: keep_free 'lots'"),
        ("cameras: [a=test:32x24@10]\nmax_size: 0\n", "t.yaml:2: max_size '0': must be a positive size"),
        ("cameras: [a=test:32x24@10]\nfsync: maybe\n", "t.yaml:2: fsync 'maybe': expected true or false"),
        ("cameras: [a=test:32x24@10]\nlog_level: loud\n", "t.yaml:2: log_level 'loud'"),
        ("cameras: [a=test:32x24@10]\nrtsp_transport: sctp\n", "t.yaml:2: rtsp_transport 'sctp'"),
        ("cameras: [a=test:32x24@10]\nout: [a, b]\n", "t.yaml:2: out: expected a single value"),
        ("cameras:\n  - name: a\n    source: test:32x24@10\n    speed: 3\n", "t.yaml:4: cameras[1].speed: unknown key for a camera"),
        ("cameras:\n  a:\n    source: test:32x24@10\n    fps: fast\n", "t.yaml:4: cameras.a.fps 'fast': expected a number"),
        ("cameras:\n  a:\n    fps: 3\n", "t.yaml:2: cameras.a: has no source:"),
        ("cameras:\n  ../x: test:32x24@10\n", "t.yaml:2: cameras.../x '../x': a camera name"),
        ("cameras:\n  a: ftp://host/x\n", "t.yaml:2: cameras.a 'ftp://host/x'"),
        ("cameras:\n  a:\n    source: test:32x24@10\n    recording: perhaps\n", "t.yaml:4: cameras.a.recording 'perhaps': expected true or false"),
        ("cameras: [a=test:32x24@10\n", "t.yaml:2: not valid YAML"),
        ("- just\n- a list\n", "t.yaml:1:"),
        ("cameras: 5\n", "t.yaml:1: cameras: expected a list or a map of cameras"),
    ])
    func badKeysAndValuesAreNamed(text: String, expected: String) {
        #expect {
            let file = try parse(text)
            try file.validate(file.config, prepare: false)
        } throws: { error in
            let message = "\(error)"
            #expect(message.hasPrefix(expected), "\(message)")
            return (error as? ConfigError)?.exitCode == 64
        }
    }

    /// Values only validation can judge (ranges) are also named by file line and key, unless a
    /// flag on the command line set them.
    @Test func rangeErrorsNameTheFileUnlessAFlagSetTheValue() throws {
        let file = try parse("cameras:\n  a:\n    source: test:32x24@10\n    quality: 500\nquality: 0\nwriters: 999\n")
        #expect(throws: ConfigError.inFile(path: "t.yaml", line: 4, key: "cameras.a.quality", value: "500", reason: "must be 1-100")) {
            try file.validate(file.config, prepare: false)
        }
        var config = file.config
        config.cameras[0].quality = nil
        #expect(throws: ConfigError.inFile(path: "t.yaml", line: 5, key: "quality", value: "0", reason: "must be 1-100")) {
            try file.validate(config, prepare: false)
        }
        try config.set("quality", to: "50")
        #expect(throws: ConfigError.inFile(path: "t.yaml", line: 6, key: "writers", value: "999", reason: "must be 1-256")) {
            try file.validate(config, flagsGiven: ["--quality"], prepare: false)
        }
        try config.set("writers", to: "1000")
        #expect(throws: ConfigError.invalidValue(flag: "--writers", value: "1000", reason: "must be 1-256")) {
            try file.validate(config, flagsGiven: ["--quality", "--writers"], prepare: false)
        }
    }

    /// The binary: `config check` of a file and of the equivalent flags print the same effective
    /// configuration; a flag overrides the file; a bad file exits 64 naming its line; `record
    /// --config` records what the file says, per-camera settings included.
    @Test func theCommandReadsTheFileAndFlagsOverrideIt() throws {
        let dir = try TestEnvironment.scratch("config-cli")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path
        let path = dir.appendingPathComponent("ringcap.yaml").path
        try """
            cameras:
              - name: bow
                source: test:320x240@20
                quality: 40
              - name: mast
                source: test:320x240@20
                fps: 5
              - name: deck
                source: test:160x120@20
                recording: false
            out: \(out)
            duration: 2
            gps: fixed:54.3233,10.1228,5
            keep_free: 0
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let fromFile = try runRingcap(["config", "check", path])
        #expect(fromFile.status == 0, "\(fromFile.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out), "check creates nothing")
        let flagsOnly = try runRingcap(["config", "check", "--camera", "bow=test:320x240@20", "--camera", "mast=test:320x240@20",
                                        "--camera", "deck=test:160x120@20", "--out", out, "--duration", "2",
                                        "--gps", "fixed:54.3233,10.1228,5", "--keep-free", "0"])
        #expect(flagsOnly.status == 0, "\(flagsOnly.stderr)")
        // The file's per-camera settings are what flags cannot say; without them the two agree.
        let withoutOwn = fromFile.stdout.split(separator: "\n").filter {
            !["quality: 40", "fps: 5", "recording: false"].contains($0.trimmingCharacters(in: .whitespaces))
        }.joined(separator: "\n")
        #expect(withoutOwn == flagsOnly.stdout.trimmingCharacters(in: .newlines))
        let overridden = try runRingcap(["config", "check", path, "--duration", "7", "--fps", "3"])
        #expect(overridden.stdout.contains("\nduration: 7\n") && overridden.stdout.contains("\nfps: 3\n"), "\(overridden.stdout)")
        let bad = try runRingcap(["record", "--config", path, "--quality", "0"])
        #expect(bad.status == 64 && bad.stderr.contains("--quality '0'"), "\(bad.stderr)")

        let stats = dir.appendingPathComponent("stats.json")
        let run = try runRingcap(["record", "--config", path, "--stats-json", stats.path])
        #expect(run.status == 0, "\(run.stderr)")
        let (_, cameras) = try readStats(stats)
        expectEveryFrameAccountedFor(cameras)
        let frames = try recordedFrames(in: URL(fileURLWithPath: out)).frames
        #expect(frames["deck"] == nil, "recording: false stores nothing")
        #expect((cameras["deck"]?["paused"] as? Int ?? 0) >= 20 && cameras["deck"]?["captured"] as? Int == cameras["deck"]?["paused"] as? Int)
        let bow = try #require(frames["bow"]), mast = try #require(frames["mast"])
        #expect(bow.allSatisfy { ($0.sidecar["jpeg"] as? [String: Any])?["quality"] as? Int == 40 })
        #expect(mast.allSatisfy { ($0.sidecar["jpeg"] as? [String: Any])?["quality"] as? Int == 85 })
        // 5 frames/s against 20 over the same two seconds.
        #expect(mast.count <= 12 && bow.count >= 3 * mast.count, "bow \(bow.count), mast \(mast.count)")
        #expect(bow.allSatisfy { ($0.sidecar["gps"] as? [String: Any])?["lat"] != nil })
        try expectSidecarsValid(bow.map(\.json) + mast.map(\.json))

        let broken = dir.appendingPathComponent("broken.yaml").path
        try "cameras: [a=test:32x24@10]\n\nwhen_full: later\n".write(toFile: broken, atomically: true, encoding: .utf8)
        let refused = try runRingcap(["record", "--config", broken])
        #expect(refused.status == 64)
        #expect(refused.stderr.contains("broken.yaml:3: when_full 'later'"), "\(refused.stderr)")
        let example = try runRingcap(["config", "example"])
        #expect(example.status == 0 && example.stdout.contains("cameras:"))
    }
}
