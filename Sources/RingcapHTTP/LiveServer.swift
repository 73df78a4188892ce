import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOPosix
import RingcapKit
import ServiceLifecycle
import Synchronization

/// The request context: Hummingbird's, the client's address (rate limits, logs) and who logged in.
struct LiveContext: RequestContext, WebSocketRequestContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<LiveContext>
    let remoteAddress: String
    /// The connection: stream.mjpg's parts are written to it from its event loop.
    let channel: any Channel
    var user: String?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        remoteAddress = source.channel.remoteAddress?.ipAddress ?? "unknown"
        channel = source.channel
    }

    /// Bodies are a JSON switch or a login form: a few KiB at most (413 beyond).
    var maxUploadSize: Int { 4096 }
}

/// `ringcap record --http`: the live view, remote control, /metrics and /api/health, over
/// Hummingbird 2 on one event loop thread of its own. A service beside the engine: it reads
/// `status()`, steers `CameraControl`, and takes JPEGs from the `LatestJPEG` taps through pump
/// threads (`Pump`), so that no viewer ever touches a capture or writer thread.
///
/// Thread-safe. `start()` returns once the server listens (or throws why it cannot); `stop()`
/// ends every open stream and WebSocket, then the server, within about a second.
public final class LiveServer: @unchecked Sendable {
    let engine: RecordingEngine
    let config: RecordConfig
    let logger: Logger
    let sessions: Sessions?
    let streams: [String: CameraStreams]
    let metrics: MetricsExporter
    let clockOffsetMs: @Sendable () -> Double?
    /// Requests being served (streams while open); `--http-max-clients` is the cap.
    let clients = Atomic<Int>(0)
    /// Grab-to-socket latency of what viewers were sent.
    public let viewerLatency = ViewerLatency()
    private let group: MultiThreadedEventLoopGroup
    private let state = Mutex<(serviceGroup: ServiceGroup?, address: String?, error: String?)>((nil, nil, nil))
    private let started = MonotonicSemaphore()
    private let finished = MonotonicSemaphore()

    /// Reads `--http-auth` (errors name the file and line). Starts nothing.
    public init(engine: RecordingEngine, clockOffsetMs: @escaping @Sendable () -> Double? = { nil }, logger: Logger) throws(HTTPSetupError) {
        self.engine = engine
        self.config = engine.config
        self.logger = logger
        self.clockOffsetMs = clockOffsetMs
        if let path = config.httpAuthFile {
            sessions = Sessions(users: try HTPasswd(path: path), logger: logger)
        } else {
            sessions = nil
        }
        var streams: [String: CameraStreams] = [:]
        for camera in config.cameras {
            guard let control = engine.camera(named: camera.name) else { continue }
            streams[camera.name] = CameraStreams(control: control, defaultQuality: config.quality(for: camera), latency: viewerLatency, logger: logger)
        }
        self.streams = streams
        metrics = MetricsExporter(cameraNames: config.cameras.map(\.name), outDirectory: config.outDirectory)
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    /// Seconds a connection may take to send a request head, or stay idle between requests.
    static let idleSeconds: Int64 = 10

    /// Where it listens (`127.0.0.1:8080`), once started.
    public var address: String? { state.withLock { $0.address } }

    /// Binds and serves. Throws when the address cannot be used (in use, not this machine's).
    public func start() throws(HTTPSetupError) {
        guard let listen = config.http else { return }
        var serverLogger = logger
        serverLogger.logLevel = max(logger.logLevel, .warning)  // no line per request
        let router = Router(context: LiveContext.self)
        let wsRouter = Router(context: LiveContext.self)
        for r in [router, wsRouter] {
            r.add(middleware: ClientLimitMiddleware(server: self))
            r.add(middleware: AuthMiddleware(server: self))
        }
        addRoutes(to: router)
        addLiveSocket(to: wsRouter)
        let wsResponder = wsRouter.buildResponder()
        let app = Application(
            router: router,
            server: HTTPServerBuilder { responder in
                // HTTP/1.1 with the WebSocket upgrade, behind a deadline for the first request head.
                HeadDeadlineChannel(inner: HTTP1WebSocketUpgradeChannel(
                    responder: responder, webSocketResponder: wsResponder,
                    configuration: .init(http1: .init(idleTimeout: .seconds(Self.idleSeconds)),
                                         ws: .init(maxFrameSize: 1 << 16, closeTimeout: .milliseconds(500)))),
                                    seconds: Self.idleSeconds)
            },
            configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "ringcap"),
            onServerRunning: { [self] channel in
                let bound = channel.localAddress.map { a -> String in
                    let host = a.ipAddress ?? listen.host
                    return (host.contains(":") ? "[\(host)]" : host) + ":\(a.port ?? listen.port)"
                } ?? listen.description
                state.withLock { $0.address = bound }
                started.signal()
            },
            eventLoopGroupProvider: .shared(group),
            logger: serverLogger)
        let serviceGroup = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: serverLogger))
        state.withLock { $0.serviceGroup = serviceGroup }
        Task.detached { [self] in
            do {
                try await serviceGroup.run()
            } catch {
                state.withLock { $0.error = "\(error)" }
            }
            started.signal()
            finished.signal()
        }
        started.wait()
        let (address, error) = state.withLock { ($0.address, $0.error) }
        guard let address else {
            throw .listen(address: listen.description, reason: Self.explain(error ?? "the server did not start"))
        }
        logger.notice("live view on http://\(address)/\(sessions == nil ? " (no login)" : "")")
    }

    private static func explain(_ error: String) -> String {
        if error.contains("Address already in use") || error.contains("EADDRINUSE") { return "the port is in use (another program listens on it)" }
        if error.contains("Cannot assign requested address") || error.contains("EADDRNOTAVAIL") { return "no such address on this machine" }
        return error
    }

    /// Ends every live stream and socket, then the server; waits up to 2 s for it.
    public func stop() {
        let serviceGroup = state.withLock { $0.serviceGroup }
        guard let serviceGroup else { return }
        for s in streams.values { s.stop() }
        Task.detached { await serviceGroup.triggerGracefulShutdown() }
        if !finished.wait(timeoutNs: 2_000_000_000) {
            logger.warning("HTTP: the server had not stopped 2 s after the streams ended; not waiting for it")
        }
        try? group.syncShutdownGracefully()
    }

    /// A camera's object for the API.
    func cameraJSON(_ c: EngineStatus.Camera) -> [String: Any] {
        var o: [String: Any] = [
            "name": c.name, "source": c.source, "state": c.state, "recording": c.recording,
            "captured": c.captured, "written": c.written, "dropped": c.dropped, "failed": c.failed,
            "paused": c.paused, "reconnects": c.reconnects, "fps": (c.fps * 100).rounded() / 100,
            "width": c.width, "height": c.height,
        ]
        o["last_frame_time"] = c.lastFrameWallNs.map { Self.iso8601(wallNs: $0) } ?? NSNull()
        return o
    }

    static func iso8601(wallNs: Int64) -> String {
        let seconds = wallNs / 1_000_000_000
        let micros = (wallNs % 1_000_000_000) / 1000
        var t = time_t(seconds)
        var tm = tm()
        gmtime_r(&t, &tm)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                      tm.tm_hour, tm.tm_min, tm.tm_sec, Int(micros))
    }
}

/// A served request holds a slot until its response, body included, is gone: `--http-max-clients`
/// of them at once, the next gets 503. The slot is an object the response's body keeps, so it is
/// given back however the response ends (written, cancelled, never sent).
struct ClientLimitMiddleware: RouterMiddleware {
    typealias Context = LiveContext
    let server: LiveServer

    final class Slot: Sendable {
        let server: LiveServer
        init(_ server: LiveServer) { self.server = server }
        deinit { server.clients.subtract(1, ordering: .relaxed) }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let now = server.clients.add(1, ordering: .relaxed).newValue
        let slot = Slot(server)
        guard now <= server.config.httpMaxClients || request.uri.path == "/api/health" else {
            server.logger.warning("HTTP: \(context.remoteAddress) refused: \(server.config.httpMaxClients) clients already (--http-max-clients)")
            return jsonResponse(.serviceUnavailable, ["error": "too many clients: \(server.config.httpMaxClients) are being served (--http-max-clients)"])
        }
        var response = try await next(request, context)
        let body = response.body
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            _ = slot  // held by this closure: given back when the response is gone
            try await body.write(writer)
        }
        return response
    }
}

/// A JSON response; `body` is a dictionary or an array of them.
func jsonResponse(_ status: HTTPResponse.Status, _ body: Any, headers: HTTPFields = [:]) -> Response {
    let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data("{}".utf8)
    var headers = headers
    headers[.contentType] = "application/json"
    headers[.cacheControl] = "no-store"
    var buffer = ByteBufferAllocator().buffer(capacity: data.count + 1)
    buffer.writeBytes(data)
    buffer.writeString("\n")
    return Response(status: status, headers: headers, body: .init(byteBuffer: buffer))
}
