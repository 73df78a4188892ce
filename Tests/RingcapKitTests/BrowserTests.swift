import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Headless Chromium driven through its DevTools protocol, over the tests' own WebSocket client.
/// Not thread-safe: owned by one test.
final class Chromium {
    let process: TestProcess
    let socket: WebSocketClient
    private var nextID = 0

    init(in dir: URL) async throws {
        let port = Int(freeLoopbackPort())
        guard let chromium = TestProcess.which("chromium") else { throw TestFailure("chromium is not installed (apt-get install chromium)") }
        process = try TestProcess(chromium, [
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions", "--mute-audio",
            "--remote-debugging-port=\(port)", "--user-data-dir=\(dir.appendingPathComponent("chromium").path)",
            "--window-size=1280,800", "about:blank",
        ], stderr: dir.appendingPathComponent("chromium.stderr").path)
        var target: String?
        _ = try await waitUntil(timeout: 30) {
            guard let reply = try? http(port, "/json/list", timeout: 2),
                  let list = reply.json() as? [[String: Any]],
                  let page = list.first(where: { $0["type"] as? String == "page" }),
                  let url = page["webSocketDebuggerUrl"] as? String,
                  let path = url.split(separator: "/", maxSplits: 3).dropFirst(2).first.map({ _ in url }) else { return false }
            target = String(path[path.range(of: "/devtools/")!.lowerBound...])
            return true
        }
        guard let target else {
            process.stop()
            throw TestFailure("chromium's DevTools did not answer on port \(port)")
        }
        socket = try WebSocketClient(port: port, path: target)
    }

    deinit { process.stop() }

    /// Calls a DevTools method and returns its `result`.
    @discardableResult
    func call(_ method: String, _ params: [String: Any] = [:]) throws -> [String: Any] {
        nextID += 1
        let id = nextID
        let data = try JSONSerialization.data(withJSONObject: ["id": id, "method": method, "params": params])
        socket.sendText(String(decoding: data, as: UTF8.self))
        while let message = socket.nextMessage() {
            guard let object = try? JSONSerialization.jsonObject(with: Data(message.data)) as? [String: Any],
                  object["id"] as? Int == id else { continue }  // events and other replies
            if let error = object["error"] { throw TestFailure("\(method): \(error)") }
            return object["result"] as? [String: Any] ?? [:]
        }
        throw TestFailure("\(method): the DevTools connection closed")
    }

    /// Evaluates a JavaScript expression in the page; its value (strings, numbers, booleans).
    func evaluate(_ expression: String) throws -> Any? {
        let result = try call("Runtime.evaluate", ["expression": expression, "returnByValue": true])
        return (result["result"] as? [String: Any])?["value"]
    }
}

@Suite(.serialized)
struct BrowserTests {
    @Test("headless Chromium logs in through the form and sees all eight cameras of a grid live")
    func gridOfEight() async throws {
        let dir = try TemporaryDirectory()
        let dirURL = URL(fileURLWithPath: dir.path)
        defer { withExtendedLifetime(dir) {} }
        let users = dirURL.appendingPathComponent("htpasswd").path
        let made = try runCommand("/usr/bin/htpasswd", ["-B", "-b", "-c", users, "skipper", "s3cret"])
        try #require(made.status == 0)
        let names = ["bow", "stern", "mast", "deck", "port", "starboard", "engine", "bridge"]
        var arguments = ["--http-auth", users]
        for name in names { arguments += ["--camera", "\(name)=test:320x240@8"] }
        let live = try await LiveViewRecording(arguments, in: dirURL)
        defer { _ = live.recording.terminate() }
        let browser = try await Chromium(in: dirURL)

        // Not logged in: the page sends the browser to the form.
        try browser.call("Page.navigate", ["url": "http://127.0.0.1:\(live.port)/"])
        #expect(try await waitUntil(timeout: 20) { try browser.evaluate("document.getElementById('login') ? location.pathname : ''") as? String == "/login" })
        try browser.evaluate("""
            document.getElementById('user').value = 'skipper';
            document.getElementById('password').value = 's3cret';
            document.getElementById('submit').click(); 'sent'
            """)
        let gridUp = try await waitUntil(timeout: 20) { try browser.evaluate("document.body && document.body.dataset.cameras") as? String == "8" }
        #expect(gridUp, "the grid did not show 8 cameras: \(String(describing: try? browser.evaluate("location.href")))")

        func counts() throws -> [String: Int] {
            let json = try browser.evaluate("JSON.stringify(Object.fromEntries([...document.querySelectorAll('figure.cam')].map(f => [f.dataset.camera, +f.dataset.frames])))") as? String ?? "{}"
            return (try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Int]) ?? [:]
        }
        let allLive = try await waitUntil(timeout: 15) { try counts().values.filter { $0 > 0 }.count == 8 }
        #expect(allLive, "\((try? counts()) ?? [:])")
        let first = try counts()
        try await Task.sleep(nanoseconds: 3_000_000_000)
        let later = try counts()
        #expect(Set(later.keys) == Set(names))
        for name in names {
            #expect((later[name] ?? 0) > (first[name] ?? 0), "\(name): \(first[name] ?? 0) then \(later[name] ?? 0) frames: they stopped arriving")
        }
        // The page's stats came through the API with the cookie: the tiles show the state.
        #expect(try browser.evaluate("document.body.innerText.includes('streaming')") as? Bool == true)

        let shot = try browser.call("Page.captureScreenshot", ["format": "png"])
        let png = try #require((shot["data"] as? String).flatMap { Data(base64Encoded: $0) })
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]))
        let path = ProcessInfo.processInfo.environment["RINGCAP_SCREENSHOT"] ?? dirURL.appendingPathComponent("grid.png").path
        try png.write(to: URL(fileURLWithPath: path))
    }
}
