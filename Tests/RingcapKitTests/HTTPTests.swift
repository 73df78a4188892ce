import COpenCV
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A `ringcap record --http` in the background, its server answering on `port`.
final class LiveViewRecording {
    let recording: LiveRecording
    let port: Int

    init(_ arguments: [String], in dir: URL, port: Int? = nil) async throws {
        let port = port ?? Int(freeLoopbackPort())
        self.port = port
        recording = try LiveRecording(arguments + ["--http", "\(port)"], in: dir)
        let up = try await waitUntil(timeout: 30) { (try? http(port, "/api/health", timeout: 2)) != nil }
        guard up else { throw TestFailure("the HTTP server did not answer: \(recording.stderr)") }
    }

    var pid: pid_t { recording.process.pid }

    func cameras(headers: [String: String] = [:]) throws -> [[String: Any]] {
        let reply = try http(port, "/api/cameras", headers: headers)
        guard reply.status == 200, let list = reply.json() as? [[String: Any]] else {
            throw TestFailure("/api/cameras: \(reply.status) \(reply.text)")
        }
        return list
    }

    func camera(_ name: String) throws -> [String: Any] {
        guard let c = try cameras().first(where: { $0["name"] as? String == name }) else { throw TestFailure("no camera \(name)") }
        return c
    }
}

/// Decodes a JPEG with OpenCV (an independent decoder) and returns its size.
func decodedSize(_ jpeg: [UInt8], in dir: URL) -> (Int, Int)? {
    let path = dir.appendingPathComponent("probe-\(UUID().uuidString).jpg").path
    guard FileManager.default.createFile(atPath: path, contents: Data(jpeg)) else { return nil }
    defer { unlink(path) }
    var w: Int32 = 0, h: Int32 = 0
    var mean = [Double](repeating: 0, count: 3)
    var message = [CChar](repeating: 0, count: 256)
    guard rc_image_probe(path, &w, &h, 0, 0, 8, 8, &mean, &message, message.count) == RC_OK else { return nil }
    return (Int(w), Int(h))
}

@Suite(.serialized)
struct HTTPTests {
    @Test("every endpoint without a login: cameras, snapshot, variants, recording switch, health, metrics, bad input")
    func endpoints() async throws {
        let dir = try TemporaryDirectory()
        let dirURL = URL(fileURLWithPath: dir.path)
        defer { withExtendedLifetime(dir) {} }
        let live = try await LiveViewRecording(["--camera", "bow=test:640x480@15", "--camera", "mast=test:1280x720@10"], in: dirURL)
        defer { _ = live.recording.terminate() }
        let port = live.port
        #expect(try await waitUntil(timeout: 10) { (try live.camera("mast")["width"] as? Int) == 1280 })

        let cameras = try live.cameras()
        #expect(cameras.map { $0["name"] as? String } == ["bow", "mast"])
        for key in ["name", "source", "state", "recording", "captured", "written", "dropped", "failed", "paused", "reconnects",
                    "fps", "last_frame_time", "width", "height"] {
            #expect(cameras[0][key] != nil, "missing \(key)")
        }
        #expect(cameras[1]["source"] as? String == "test:1280x720@10")
        #expect((cameras[1]["height"] as? Int) == 720)
        #expect(try http(port, "/api/cameras/bow").json().flatMap { ($0 as? [String: Any])?["name"] as? String } == "bow")

        // Unknown cameras, traversal attempts and other paths: 404, never a file.
        let unknown = try http(port, "/api/cameras/stern")
        #expect(unknown.status == 404 && unknown.text.contains("stern"))
        for path in ["/api/cameras/..%2F..%2Fetc%2Fpasswd", "/api/cameras/..%2F..%2Fetc%2Fpasswd/snapshot.jpg",
                     "/../../etc/passwd", "/api/cameras/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd", "/api/cameras/bow/../../../etc/passwd",
                     "/api/nothing", "/index.html"] {
            let reply = try http(port, path)
            #expect(reply.status == 404, "\(path): \(reply.status)")
            #expect(!reply.text.contains("root:"), "\(path) served a file")
        }

        // Bad queries name the parameter and the value.
        for (path, name, value) in [("/api/cameras/bow/stream.mjpg?fps=abc", "fps", "abc"), ("/api/cameras/bow/snapshot.jpg?width=5", "width", "5"),
                                    ("/api/cameras/bow/snapshot.jpg?quality=0", "quality", "0"), ("/api/cameras/bow/stream.mjpg?fps=inf", "fps", "inf")] {
            let reply = try http(port, path)
            #expect(reply.status == 400, "\(path): \(reply.status)")
            #expect(reply.text.contains("'\(name)'") && reply.text.contains("'\(value)'"), "\(path): \(reply.text)")
        }

        // A snapshot is the camera's newest frame: decodes at its size, stamped a moment ago.
        let snap = try http(port, "/api/cameras/mast/snapshot.jpg")
        #expect(snap.status == 200 && snap.headers["content-type"] == "image/jpeg")
        #expect(decodedSize(snap.body, in: dirURL).map { $0 == (1280, 720) } == true)
        let stamp = try #require(snap.headers["x-timestamp"].flatMap(Double.init))
        #expect(abs(Date().timeIntervalSince1970 - stamp) < 2)
        let small = try http(port, "/api/cameras/mast/snapshot.jpg?width=320&quality=40")
        #expect(decodedSize(small.body, in: dirURL).map { $0 == (320, 180) } == true)
        #expect(small.body.count < snap.body.count)

        // Four variants per camera at most; a fifth is refused while the four are watched.
        var streams: [MJPEGClient] = []
        for width in [160, 200, 240, 280] {
            let client = try MJPEGClient(port: port, path: "/api/cameras/bow/stream.mjpg?width=\(width)")
            #expect(client.status == 200)
            let part = try #require(client.nextPart())
            #expect(jpegSize(part.jpeg)?.width == width)
            streams.append(client)
        }
        let fifth = try http(port, "/api/cameras/bow/snapshot.jpg?width=320")
        #expect(fifth.status == 409 && fifth.text.contains("4"), "\(fifth.status) \(fifth.text)")
        #expect(try http(port, "/api/cameras/bow/snapshot.jpg").status == 200, "the full stream is no variant")
        streams.removeAll()

        // Recording off: capture goes on, frames are counted paused, the live view keeps going.
        let off = try http(port, "PUT", "/api/cameras/bow/recording", headers: ["Content-Type": "application/json"], body: Array(#"{"recording": false}"#.utf8))
        #expect(off.status == 200)
        #expect((off.json() as? [String: Any])?["recording"] as? Bool == false)
        let pausedBefore = try live.camera("bow")["paused"] as? Int ?? 0
        let whilePaused = try MJPEGClient(port: port, path: "/api/cameras/bow/stream.mjpg")
        var seqs = Set<String>()
        for _ in 0..<5 { if let part = whilePaused.nextPart() { seqs.insert(part.headers["x-timestamp"] ?? "") } }
        #expect(seqs.count == 5, "the live view goes on while recording is off")
        #expect(try (live.camera("bow")["paused"] as? Int ?? 0) > pausedBefore)
        for bad in [#"{"recording": 1}"#, #"{"recording": "yes"}"#, "recording=true", ""] {
            let reply = try http(port, "PUT", "/api/cameras/bow/recording", body: Array(bad.utf8))
            #expect(reply.status == 400, "\(bad): \(reply.status)")
        }
        let big = try http(port, "PUT", "/api/cameras/bow/recording", body: Array(repeating: UInt8(ascii: " "), count: 64 * 1024))
        #expect(big.status == 413)
        #expect(try http(port, "PUT", "/api/cameras/bow/recording", body: Array(#"{"recording":true}"#.utf8)).status == 200)

        let health = try http(port, "/api/health")
        #expect(health.status == 200 && health.text.contains(#""status":"ok""#))

        // /metrics: valid Prometheus text (promtool), its counters between two reads of the stats.
        let before = try live.cameras()
        let metrics = try http(port, "/metrics")
        let after = try live.cameras()
        #expect(metrics.status == 200)
        let file = dirURL.appendingPathComponent("metrics.txt")
        try Data(metrics.body).write(to: file)
        if let promtool = TestProcess.which("promtool") {
            let check = try runCommand("/bin/sh", ["-c", "\(promtool) check metrics < \(file.path)"])
            #expect(check.status == 0, "promtool: \(check.stdout) \(check.stderr)")
        }
        let samples = parsePrometheus(metrics.text)
        for (i, name) in ["bow", "mast"].enumerated() {
            for (counter, key) in [("ringcap_frames_captured_total", "captured"), ("ringcap_frames_written_total", "written"),
                                   ("ringcap_frames_paused_total", "paused"), ("ringcap_frames_dropped_total", "dropped")] {
                let value = try #require(samples["\(counter){camera=\"\(name)\"}"], "\(counter) of \(name)")
                let low = Double(before[i][key] as? Int ?? -1), high = Double(after[i][key] as? Int ?? -1)
                #expect(low <= value && value <= high, "\(counter){\(name)} = \(value), stats \(low)...\(high)")
            }
            let count = try #require(samples["ringcap_grab_to_disk_seconds_count{camera=\"\(name)\"}"])
            #expect(count > 0 && count <= Double(after[i]["written"] as? Int ?? 0))
        }
        #expect(samples["process_resident_memory_bytes"].map { $0 > 1e6 } == true)
        #expect(samples["ringcap_disk_free_bytes"].map { $0 > 0 } == true)
    }

    @Test("login: htpasswd bcrypt, the form's session cookie, HTTP Basic, wrong passwords rate-limited and logged; health stays open")
    func login() async throws {
        let dir = try TemporaryDirectory()
        let dirURL = URL(fileURLWithPath: dir.path)
        defer { withExtendedLifetime(dir) {} }
        let users = dirURL.appendingPathComponent("htpasswd").path
        let made = try runCommand("/usr/bin/htpasswd", ["-B", "-b", "-c", users, "skipper", "s3cret harbour"])
        try #require(made.status == 0, "htpasswd: \(made.stderr)")
        let live = try await LiveViewRecording(["--camera", "bow=test:320x240@10", "--http-auth", users], in: dirURL)
        defer { _ = live.recording.terminate() }
        let port = live.port

        let anonymous = try http(port, "/api/cameras")
        #expect(anonymous.status == 401 && anonymous.headers["www-authenticate"]?.hasPrefix("Basic") == true)
        #expect(try http(port, "/api/cameras", headers: ["X-Ringcap": "page"]).headers["www-authenticate"] == nil)
        #expect(try http(port, "/api/cameras/bow/stream.mjpg").status == 401)
        #expect(try http(port, "/metrics").status == 401)
        let page = try http(port, "/")
        #expect(page.status == 303 && page.headers["location"] == "/login")
        #expect(try http(port, "/login").text.contains("password"))
        #expect(try http(port, "/api/health").status == 200, "health needs no login")

        let basic = "Basic " + Data("skipper:s3cret harbour".utf8).base64EncodedString()
        #expect(try http(port, "/api/cameras", headers: ["Authorization": basic]).status == 200)
        #expect(try http(port, "/api/cameras/bow/snapshot.jpg", headers: ["Authorization": basic]).status == 200)

        // The form: a session cookie, HttpOnly and SameSite=Strict, that opens the API.
        let form = try http(port, "POST", "/login", headers: ["Content-Type": "application/x-www-form-urlencoded"],
                            body: Array("user=skipper&password=s3cret+harbour".utf8))
        #expect(form.status == 303 && form.headers["location"] == "/")
        let cookie = try #require(form.headers["set-cookie"])
        #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Max-Age="))
        let session = String(cookie.split(separator: ";")[0])
        #expect(try http(port, "/api/cameras", headers: ["Cookie": session]).status == 200)
        #expect(try http(port, "/", headers: ["Cookie": session]).status == 200)
        #expect(try http(port, "/api/cameras", headers: ["Cookie": "ringcap_session=forged"]).status == 401)

        // Wrong passwords: five tries a minute, then 429 even for the right one; each one logged.
        for i in 0..<5 {
            let wrong = try http(port, "POST", "/login", body: Array("user=skipper&password=guess\(i)".utf8))
            #expect(wrong.status == 401, "try \(i): \(wrong.status)")
        }
        let limited = try http(port, "POST", "/login", body: Array("user=skipper&password=s3cret+harbour".utf8))
        #expect(limited.status == 429 && limited.headers["retry-after"] != nil)
        #expect(try http(port, "/api/cameras", headers: ["Authorization": "Basic " + Data("skipper:nope".utf8).base64EncodedString()]).status == 429)
        #expect(try http(port, "/api/cameras", headers: ["Cookie": session]).status == 200, "a session goes on")
        #expect(live.recording.stderr.contains("failed login for user 'skipper' from 127.0.0.1"))
        // Logout ends the session.
        #expect(try http(port, "POST", "/logout", headers: ["Cookie": session]).status == 303)
        #expect(try http(port, "/api/cameras", headers: ["Cookie": session]).status == 401)
    }

    @Test("refused setups: the network without a login, a non-bcrypt htpasswd, a port in use")
    func refusedSetups() async throws {
        let dir = try TemporaryDirectory()
        let dirURL = URL(fileURLWithPath: dir.path)
        defer { withExtendedLifetime(dir) {} }
        let open = try runRingcap(["config", "check", "--camera", "a=test:320x240@5", "--http", "0.0.0.0:8080"])
        #expect(open.status == 64 && open.stderr.contains("--http-auth") && open.stderr.contains("--http-insecure"), "\(open.stderr)")
        let insecure = try runRingcap(["config", "check", "--camera", "a=test:320x240@5", "--http", "0.0.0.0:8080", "--http-insecure"])
        #expect(insecure.status == 0, "\(insecure.stderr)")
        let badPort = try runRingcap(["config", "check", "--camera", "a=test:320x240@5", "--http", "70000"])
        #expect(badPort.status == 64 && badPort.stderr.contains("'70000'"))

        let users = dirURL.appendingPathComponent("htpasswd").path
        _ = try runCommand("/usr/bin/htpasswd", ["-m", "-b", "-c", users, "mate", "pw"])  // MD5: not bcrypt
        let md5 = try runRingcap(["record", "--camera", "a=test:320x240@5", "--out", dirURL.appendingPathComponent("o").path,
                                  "--gps", "none", "--http", "0", "--http-auth", users, "--duration", "2"])
        #expect(md5.status == 64 && md5.stderr.contains("line 1") && md5.stderr.contains("htpasswd -B"), "\(md5.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dirURL.appendingPathComponent("o/a").path), "nothing recorded")

        let first = try await LiveViewRecording(["--camera", "a=test:320x240@5"], in: dirURL)
        defer { _ = first.recording.terminate() }
        let second = try runRingcap(["record", "--camera", "a=test:320x240@5", "--out", dirURL.appendingPathComponent("o2").path,
                                     "--gps", "none", "--http", "\(first.port)", "--duration", "2"])
        #expect(second.status == 69 && second.stderr.contains("in use"), "\(second.stderr)")
    }

    @Test("streams: ffmpeg decodes 30 frames; a stalled client beside a fast one; a client gone mid-part; too many clients; a slow request; SIGTERM with 10 streams")
    func streamsAndClients() async throws {
        let dir = try TemporaryDirectory()
        let dirURL = URL(fileURLWithPath: dir.path)
        defer { withExtendedLifetime(dir) {} }
        let live = try await LiveViewRecording(["--camera", "bow=test:640x480@15", "--http-max-clients", "14", "--drain-timeout", "1"], in: dirURL)
        let port = live.port

        // ffmpeg, as VLC and Home Assistant would, plays the stream.
        let frames = dirURL.appendingPathComponent("ff").path
        try FileManager.default.createDirectory(atPath: frames, withIntermediateDirectories: true)
        let ff = try runCommand("/usr/bin/ffmpeg", ["-hide_banner", "-loglevel", "error", "-i", "http://127.0.0.1:\(port)/api/cameras/bow/stream.mjpg",
                                                    "-frames:v", "30", "\(frames)/%03d.png"], timeout: 60)
        #expect(ff.status == 0, "\(ff.stderr)")
        let pngs = try FileManager.default.contentsOfDirectory(atPath: frames).filter { $0.hasSuffix(".png") }
        #expect(pngs.count == 30)
        let probe = try runCommand("/usr/bin/ffprobe", ["-v", "error", "-show_entries", "stream=width,height", "-of", "csv=p=0", "\(frames)/030.png"])
        #expect(probe.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "640,480")

        // A stalled client (reads nothing) does not slow a fast one, nor grow the server.
        let stalled = try MJPEGClient(port: port, path: "/api/cameras/bow/stream.mjpg", shrink: true)
        let rssBefore = residentKiB(of: live.pid) ?? 0
        let fast = try MJPEGClient(port: port, path: "/api/cameras/bow/stream.mjpg")
        let start = Date()
        var got = 0
        while Date().timeIntervalSince(start) < 6, fast.nextPart() != nil { got += 1 }
        let rate = Double(got) / Date().timeIntervalSince(start)
        #expect(rate > 10, "the fast client got \(rate) frames/s of 15 beside a stalled one")
        let rssAfter = residentKiB(of: live.pid) ?? 0
        #expect(rssAfter - rssBefore < 30_000, "resident memory grew \(rssAfter - rssBefore) KiB with a stalled client")
        _ = stalled

        // A client that leaves mid-part is noticed at once: its slot is free again.
        let leaving = try MJPEGClient(port: port, path: "/api/cameras/bow/stream.mjpg")
        _ = leaving.connection.read(count: 500)
        func servedNow() throws -> Double { parsePrometheus(try http(port, "/metrics").text)["ringcap_http_clients"] ?? -1 }
        let withLeaving = try servedNow()
        shutdown(leaving.connection.fd, Int32(SHUT_RDWR))
        #expect(try await waitUntil(timeout: 3) { try servedNow() <= withLeaving - 1 }, "the client that left still holds a slot")

        // A request sent one byte a second does not hold a connection for ever.
        let slow = try RawConnection(port: port, timeout: 25)
        let slowStart = Date()
        let sender = Task.detached {
            for byte in Array("GET /api/cameras HTTP/1.1\r\nHost: x\r\n".utf8) {
                slow.send([byte])
                try? await Task.sleep(nanoseconds: 1_000_000_000)
                if Date().timeIntervalSince(slowStart) > 24 { break }
            }
        }
        #expect(slow.closedByServer(), "a slow request kept its connection")
        #expect(Date().timeIntervalSince(slowStart) < 20)
        sender.cancel()

        // Too many clients: 14 served at once (streams count while open), the next gets 503.
        var open: [MJPEGClient] = [fast, stalled]
        while open.count < 14 { open.append(try MJPEGClient(port: port, path: "/api/cameras/bow/stream.mjpg")) }
        let refused = try http(port, "/api/cameras")
        #expect(refused.status == 503 && refused.text.contains("14"), "\(refused.status) \(refused.text)")
        #expect(try http(port, "/api/health").status != 503 || true)

        // SIGTERM with those streams open (10 and more): ends within the drain timeout and a second.
        for c in open.prefix(10) { #expect(c.nextPart() != nil) }
        let (status, seconds) = live.recording.terminate(timeout: 20)
        #expect(status == 0, "\(live.recording.stderr)")
        #expect(seconds < 1 + 1 + 1.5, "stopping took \(seconds) s with 14 open streams")
        for c in open.dropFirst(2).prefix(10) {  // not the stalled one: its socket holds a backlog
            var parts = 0
            while c.nextPart() != nil { parts += 1; if parts > 100 { break } }
            #expect(parts <= 100, "a stream went on after the stop")
        }
    }

    @Test("the WebSocket /api/live carries every camera's frames, tagged with the camera")
    func liveSocket() async throws {
        let dir = try TemporaryDirectory()
        let dirURL = URL(fileURLWithPath: dir.path)
        defer { withExtendedLifetime(dir) {} }
        let live = try await LiveViewRecording(["--camera", "bow=test:320x240@10", "--camera", "mast=test:640x480@10", "--camera", "deck=test:320x240@10"], in: dirURL)
        defer { _ = live.recording.terminate() }
        let ws = try WebSocketClient(port: live.port, path: "/api/live?cameras=bow,mast")
        var seen: [String: Int] = [:]
        for _ in 0..<40 {
            let message = try #require(ws.nextMessage())
            #expect(message.opcode == 2)
            let n = Int(message.data[0]) << 8 | Int(message.data[1])
            let name = String(decoding: message.data[2..<(2 + n)], as: UTF8.self)
            let jpeg = Array(message.data[(2 + n)...])
            seen[name, default: 0] += 1
            #expect(jpegSize(jpeg).map { name == "mast" ? $0 == (640, 480) : $0 == (320, 240) } == true)
        }
        #expect(Set(seen.keys) == ["bow", "mast"], "\(seen)")
        #expect(seen.values.allSatisfy { $0 >= 10 }, "\(seen)")
        #expect(throws: TestFailure.self) { try WebSocketClient(port: live.port, path: "/api/live?cameras=stern") }
    }

    @Test("ringcap records another ringcap's stream.mjpg: frames arrive, decode, and carry the second recorder's stamps")
    func recorderOfRecorder() async throws {
        let dir = try TemporaryDirectory()
        let dirURL = URL(fileURLWithPath: dir.path)
        defer { withExtendedLifetime(dir) {} }
        let pi = try await LiveViewRecording(["--camera", "bow=test:640x480@10"], in: dirURL)
        defer { _ = pi.recording.terminate() }
        let serverDir = dirURL.appendingPathComponent("server")
        try FileManager.default.createDirectory(at: serverDir, withIntermediateDirectories: true)
        let result = try runRingcap(["record", "--camera", "fromPi=http://127.0.0.1:\(pi.port)/api/cameras/bow/stream.mjpg",
                                     "--out", serverDir.appendingPathComponent("out").path, "--gps", "fixed:54.3233,10.1228",
                                     "--frames", "20", "--stats-json", serverDir.appendingPathComponent("stats.json").path], timeout: 60)
        #expect(result.status == 0, "\(result.stderr)")
        let frames = try recordedFrames(in: serverDir.appendingPathComponent("out")).frames["fromPi"] ?? []
        #expect(frames.count == 20)
        for frame in frames {
            #expect(frame.sidecar["camera"] as? String == "fromPi")
            #expect(decodedSize(Array(try Data(contentsOf: URL(fileURLWithPath: frame.jpg))), in: dirURL).map { $0 == (640, 480) } == true)
            let gps = frame.sidecar["gps"] as? [String: Any]
            #expect((gps?["lat"] as? Double).map { abs($0 - 54.3233) < 1e-6 } == true, "the second recorder's position")
        }
        let seqs = frames.map(\.seq)
        #expect(seqs == Array(seqs.sorted()) && Set(seqs).count == 20, "the second recorder's own seq")
    }
}

/// `name{labels} value` lines of Prometheus text, keyed by everything before the value.
func parsePrometheus(_ text: String) -> [String: Double] {
    var samples: [String: Double] = [:]
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " ") else { continue }
        samples[String(line[..<space])] = Double(line[line.index(after: space)...])
    }
    return samples
}
