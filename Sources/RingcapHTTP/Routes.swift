import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RingcapKit

/// Who may do what: with `--http-auth`, everything but /api/health and the login form needs a
/// session cookie (from the form) or HTTP Basic. A browser asking for the page is sent to the
/// form; an API client gets 401 with a Basic challenge (the page's own requests, marked
/// `X-Ringcap: page`, get none, so no browser dialog pops up).
struct AuthMiddleware: RouterMiddleware {
    typealias Context = LiveContext
    let server: LiveServer

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let sessions = server.sessions else {
            var response = try await next(request, context)
            response.headers[HTTPField.Name("X-Ringcap-Auth")!] = "none"
            return response
        }
        let path = request.uri.path
        if path == "/api/health" || path == "/login" { return try await next(request, context) }
        var context = context
        if let token = request.cookies[Sessions.cookieName]?.value, let user = sessions.user(forSession: token) {
            context.user = user
            return try await next(request, context)
        }
        if let header = request.headers[.authorization], header.lowercased().hasPrefix("basic "),
           let decoded = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
           let text = String(data: decoded, encoding: .utf8), let colon = text.firstIndex(of: ":") {
            let user = String(text[..<colon]), password = String(text[text.index(after: colon)...])
            switch await sessions.basic(user: user, password: password, address: context.remoteAddress) {
            case .ok(let user):
                context.user = user
                return try await next(request, context)
            case .rateLimited(let wait):
                return jsonResponse(.tooManyRequests, ["error": "too many failed logins from \(context.remoteAddress); try again in \(wait) s"],
                                    headers: [.retryAfter: "\(wait)"])
            case .wrong:
                break
            }
        }
        if request.method == .get && path == "/" {
            return Response(status: .seeOther, headers: [.location: "/login"])
        }
        var headers: HTTPFields = [:]
        if request.headers[HTTPField.Name("X-Ringcap")!] != "page" { headers[.wwwAuthenticate] = "Basic realm=\"ringcap\", charset=\"UTF-8\"" }
        return jsonResponse(.unauthorized, ["error": "login needed"], headers: headers)
    }
}

extension LiveServer {
    /// A bad query value: 400 naming the parameter and the value.
    struct BadQuery: Error { let response: Response }

    static func pageHeaders() -> HTTPFields {
        [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
         .contentSecurityPolicy: "default-src 'self'; img-src 'self' blob:; connect-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; frame-ancestors 'none'",
         HTTPField.Name("X-Content-Type-Options")!: "nosniff"]
    }

    static func html(_ status: HTTPResponse.Status, _ text: String, headers extra: HTTPFields = [:]) -> Response {
        var headers = pageHeaders()
        for field in extra { headers.append(field) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func escapeHTML(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    func loginPage(_ status: HTTPResponse.Status, message: String, headers: HTTPFields = [:]) -> Response {
        Self.html(status, WebPage.login.replacingOccurrences(of: "{{message}}", with: Self.escapeHTML(message)), headers: headers)
    }

    /// The camera named in the path, or a 404 naming it.
    func camera(_ context: LiveContext) -> Result<CameraStreams, BadQuery> {
        let name = context.parameters.get("name") ?? ""
        guard let streams = streams[name] else {
            return .failure(BadQuery(response: jsonResponse(.notFound, ["error": "no camera named '\(name)'"])))
        }
        return .success(streams)
    }

    func cameraStatus(_ name: String) -> EngineStatus.Camera? { engine.status().cameras.first { $0.name == name } }

    func addRoutes(to router: Router<LiveContext>) {
        router.get("/") { _, _ in Self.html(.ok, WebPage.index) }

        router.get("/login") { [self] _, _ in
            sessions == nil ? Response(status: .seeOther, headers: [.location: "/"]) : loginPage(.ok, message: "")
        }
        router.post("/login") { [self] request, context in
            guard let sessions else { return Response(status: .seeOther, headers: [.location: "/"]) }
            let body = try await request.body.collect(upTo: context.maxUploadSize)
            let form = Self.formFields(String(buffer: body))
            switch await sessions.login(user: form["user"] ?? "", password: form["password"] ?? "",
                                        address: context.remoteAddress, how: "login") {
            case .ok(let user):
                let token = sessions.startSession(user: user)
                logger.info("HTTP: '\(user)' logged in from \(context.remoteAddress)")
                return Response(status: .seeOther, headers: [
                    .location: "/",
                    .setCookie: "\(Sessions.cookieName)=\(token); Path=/; Max-Age=\(Sessions.lifetimeSeconds); HttpOnly; SameSite=Strict",
                ])
            case .wrong:
                return loginPage(.unauthorized, message: "Wrong user or password.")
            case .rateLimited(let wait):
                return loginPage(.tooManyRequests, message: "Too many failed logins from your address: try again in \(wait) s.",
                                 headers: [.retryAfter: "\(wait)"])
            }
        }
        router.post("/logout") { [self] request, _ in
            if let token = request.cookies[Sessions.cookieName]?.value { sessions?.endSession(token) }
            return Response(status: .seeOther, headers: [
                .location: "/login", .setCookie: "\(Sessions.cookieName)=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
            ])
        }

        router.get("/api/health") { [self] _, _ in
            let cameras = engine.status().cameras
            let ok = !cameras.isEmpty && cameras.allSatisfy { $0.state == "streaming" }
            return jsonResponse(ok ? .ok : .serviceUnavailable, ["status": ok ? "ok" : "degraded"])
        }

        router.get("/api/cameras") { [self] _, _ in
            jsonResponse(.ok, engine.status().cameras.map(cameraJSON))
        }
        router.get("/api/cameras/{name}") { [self] _, context in
            switch camera(context) {
            case .failure(let bad): return bad.response
            case .success(let streams): return jsonResponse(.ok, cameraJSON(cameraStatus(streams.control.name)!))
            }
        }
        router.put("/api/cameras/{name}/recording") { [self] request, context in
            let streams: CameraStreams
            switch camera(context) {
            case .failure(let bad): return bad.response
            case .success(let s): streams = s
            }
            let body = try await request.body.collect(upTo: context.maxUploadSize)
            struct Switch: Decodable { let recording: Bool }
            guard let on = (try? JSONDecoder().decode(Switch.self, from: Data(buffer: body)))?.recording else {
                return jsonResponse(.badRequest, ["error": "expected a body {\"recording\": true} or {\"recording\": false}, got '\(String(buffer: body).prefix(200))'"])
            }
            streams.control.setRecording(on)
            logger.notice("camera \(streams.control.name): recording \(on ? "on" : "off") (HTTP, \(context.user.map { "user '\($0)', " } ?? "")\(context.remoteAddress))")
            return jsonResponse(.ok, cameraJSON(cameraStatus(streams.control.name)!))
        }
        router.get("/api/cameras/{name}/snapshot.jpg") { [self] request, context in
            switch camera(context) {
            case .failure(let bad): return bad.response
            case .success(let streams): return try await snapshot(request, streams)
            }
        }
        router.get("/api/cameras/{name}/stream.mjpg") { [self] request, context in
            switch camera(context) {
            case .failure(let bad): return bad.response
            case .success(let streams): return try await mjpegStream(request, streams, channel: context.channel)
            }
        }
        router.get("/metrics") { [self] _, _ in
            let status = engine.status()
            var histograms: [String: (counts: [Int], sumUs: Int)] = [:]
            for (name, s) in streams { histograms[name] = s.control.latencyHistogram() }
            let text = metrics.render(status, histograms: histograms, extras: .init(
                clockOffsetMs: clockOffsetMs(), clients: clients.load(ordering: .relaxed),
                failedLogins: sessions?.failedLogins.load(ordering: .relaxed) ?? 0, streams: streams))
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }
    }

    /// `a=1&b=x+y%21` as a dictionary (the login form).
    static func formFields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String { s.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s) }
            fields[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }
}

extension Data {
    init(buffer: ByteBuffer) { self = Data(buffer.readableBytesView) }
}
