import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import RingcapKit
import Synchronization

/// A viewer of one pump: attached while this object lives, so that a response whose body is
/// never written (the client left first) still lets go.
final class Viewer: Sendable {
    let pump: Pump
    init(_ pump: Pump) {
        self.pump = pump
        pump.attach()
    }
    deinit { pump.detach() }
}

extension LiveServer {
    /// `fps`, `width`, `quality` of a stream or snapshot, checked: a bad one is a 400 naming it.
    struct ViewQuery {
        var fps: Double?
        var key: StreamKey
    }

    func viewQuery(_ request: Request, _ streams: CameraStreams, allowFPS: Bool) -> Result<ViewQuery, BadQuery> {
        let q = request.uri.queryParameters
        func bad(_ name: String, _ value: Substring, _ expected: String) -> Result<ViewQuery, BadQuery> {
            .failure(BadQuery(response: jsonResponse(.badRequest, ["error": "query '\(name)' '\(value)': expected \(expected)"])))
        }
        var view = ViewQuery(fps: nil, key: StreamKey())
        if allowFPS, let text = q["fps"] {
            guard let fps = DecimalNumber.parse(String(text)), fps >= 0.1, fps <= 1000 else {
                return bad("fps", text, "a number of frames/s from 0.1 to 1000")
            }
            view.fps = fps
        }
        if let text = q["width"] {
            guard let width = Int(text), (16...7680).contains(width) else { return bad("width", text, "a whole number of pixels from 16 to 7680") }
            view.key.width = width
        }
        if let text = q["quality"] {
            guard let quality = Int(text), (1...100).contains(quality) else { return bad("quality", text, "a whole number from 1 to 100") }
            view.key.quality = quality
        }
        // As wide as the camera or wider: its own frames, unless another quality was asked.
        let cameraWidth = streams.control.frameWidth
        if let width = view.key.width, cameraWidth > 0, width >= cameraWidth { view.key.width = nil }
        return .success(view)
    }

    func pump(_ streams: CameraStreams, _ key: StreamKey) -> Result<Pump, BadQuery> {
        do throws(CameraStreams.VariantError) {
            return .success(try streams.pump(for: key))
        } catch {
            guard case .tooMany(let n) = error else { fatalError() }
            return .failure(BadQuery(response: jsonResponse(.conflict, [
                "error": "camera '\(streams.control.name)' has \(n) variants (width/quality) being watched already, the limit; ask for one of those or the full stream"])))
        }
    }

    /// The newest frame, at most one frame interval old: the feed's newest if it is that fresh,
    /// else the next one (up to a few seconds).
    func snapshot(_ request: Request, _ streams: CameraStreams) async throws -> Response {
        let view: ViewQuery, pump: Pump
        switch viewQuery(request, streams, allowFPS: false).flatMap({ v in self.pump(streams, v.key).map { (v, $0) } }) {
        case .failure(let bad): return bad.response
        case .success(let (v, p)): (view, pump) = (v, p)
        }
        _ = view
        let viewer = Viewer(pump)
        let status = cameraStatus(streams.control.name)
        let fps = max(status?.fps ?? 0, 0.2)
        let intervalNs = Int64(1e9 / fps)
        let timeoutNs = UInt64(max(3e9, 3e9 / fps))
        var frame: LiveFrame?
        if let latest = await Self.latest(of: pump.feed), Clock.wallNs() - latest.wallNs <= intervalNs + 20_000_000 {
            frame = latest
        } else {
            frame = await Self.next(of: pump.feed, after: pump.feed.latestSeq, timeoutNs: timeoutNs)
        }
        withExtendedLifetime(viewer) {}
        guard let frame else {
            return jsonResponse(.serviceUnavailable, [
                "error": "camera '\(streams.control.name)' gave no frame in \(timeoutNs / 1_000_000_000) s (state: \(status?.state ?? "unknown"))"])
        }
        return Response(status: .ok, headers: [
            .contentType: "image/jpeg", .cacheControl: "no-store",
            HTTPField.Name("X-Timestamp")!: LiveFrame.timestamp(frame.wallNs), HTTPField.Name("X-Seq")!: "\(frame.seq)",
        ], body: .init(byteBuffer: frame.jpeg))
    }

    static func latest(of feed: Feed) async -> LiveFrame? {
        guard let seq = feed.latestSeq else { return nil }
        return await next(of: feed, after: seq &- 1, timeoutNs: 1)
    }

    /// `feed.next(after:)`, or nil after `timeoutNs`.
    static func next(of feed: Feed, after seq: UInt64?, timeoutNs: UInt64) async -> LiveFrame? {
        await withTaskGroup(of: LiveFrame?.self) { group in
            group.addTask { await feed.next(after: seq) }
            group.addTask {
                try? await Task.sleep(nanoseconds: timeoutNs)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// `multipart/x-mixed-replace`: one part per frame, each with Content-Type, Content-Length
    /// and X-Timestamp (as ustreamer and mjpg-streamer send them), the newest frame each time
    /// the socket took the last one; `fps` caps the rate. Ends when the client goes, or the server
    /// stops.
    func mjpegStream(_ request: Request, _ streams: CameraStreams, channel: any Channel) async throws -> Response {
        let view: ViewQuery, pump: Pump
        switch viewQuery(request, streams, allowFPS: true).flatMap({ v in self.pump(streams, v.key).map { (v, $0) } }) {
        case .failure(let bad): return bad.response
        case .success(let (v, p)): (view, pump) = (v, p)
        }
        let viewer = Viewer(pump)
        let direct = DirectViewers.Viewer(channel: channel, intervalNs: view.fps.map { UInt64(1e9 / $0) })
        let body = ResponseBody { writer in
            // The head is written; the parts go straight from the event loop (DirectViewers)
            // until the client goes or the server stops.
            let feed = viewer.pump.feed
            _ = try? await request.body.consumeWithCancellationOnInboundClose { _ in
                feed.direct.add(direct, latest: feed.latest(maxAgeNs: 1_000_000_000))
                await feed.waitUntilClosed()
            }
            await feed.direct.remove(direct)
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [
            .contentType: "multipart/x-mixed-replace; boundary=\(LiveFrame.boundary)", .cacheControl: "no-store",
            .connection: "close",
        ], body: body)
    }

    /// `GET /api/live`: one WebSocket for a page of cameras. Each binary message is one frame:
    /// the camera's name (length as 16-bit big-endian, then UTF-8), then the JPEG. Query
    /// `cameras` (comma-separated; all when absent) and `fps`.
    func addLiveSocket(to router: Router<LiveContext>) {
        router.ws("/api/live", shouldUpgrade: { [self] request, context in
            switch liveQuery(request) {
            case .failure(let error): throw error
            case .success: return .upgrade([:])
            }
        }, onUpgrade: { [self] inbound, outbound, wsContext in
            guard case .success(let (names, fps)) = liveQuery(wsContext.request) else { return }
            clients.add(1, ordering: .relaxed)
            defer { clients.subtract(1, ordering: .relaxed) }
            let viewers = names.compactMap { name in streams[name].map { (Array(name.utf8), Viewer($0.full)) } }
            let intervalNs = fps.map { UInt64(1e9 / $0) }
            let latency = viewerLatency
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    // The client's messages are not used; the loop ends when it closes.
                    var iterator = inbound.makeAsyncIterator()
                    while (try? await iterator.next()) != nil {}
                }
                group.addTask {
                    await withTaskGroup(of: Void.self) { cameras in
                        for (name, viewer) in viewers {
                            cameras.addTask {
                                var last: LiveFrame?
                                var nextDue = DispatchTime.now().uptimeNanoseconds
                                while let frame = await viewer.pump.feed.next(after: last?.seq) {
                                    viewer.pump.feed.noteSent(frame, after: last)
                                    var message = ByteBufferAllocator().buffer(capacity: 2 + name.count + frame.jpeg.readableBytes)
                                    message.writeInteger(UInt16(name.count), endianness: .big)
                                    message.writeBytes(name)
                                    message.writeImmutableBuffer(frame.jpeg)
                                    do { try await outbound.writeBinaryMessage(message) } catch { return }
                                    latency.record(ns: Clock.wallNs() - frame.wallNs)
                                    last = frame
                                    if let intervalNs {
                                        nextDue += intervalNs
                                        let now = DispatchTime.now().uptimeNanoseconds
                                        if nextDue > now { try? await Task.sleep(nanoseconds: nextDue - now) } else { nextDue = now }
                                    }
                                }
                            }
                        }
                    }
                }
                await group.next()
                group.cancelAll()
            }
            withExtendedLifetime(viewers) {}
        })
    }

    func liveQuery(_ request: Request) -> Result<([String], Double?), HTTPError> {
        let q = request.uri.queryParameters
        var names = config.cameras.map(\.name)
        if let list = q["cameras"], !list.isEmpty {
            names = list.split(separator: ",").map(String.init)
            if let unknown = names.first(where: { streams[$0] == nil }) {
                return .failure(HTTPError(.notFound, message: "no camera named '\(unknown)'"))
            }
        }
        var fps: Double?
        if let text = q["fps"] {
            guard let v = DecimalNumber.parse(String(text)), v >= 0.1, v <= 1000 else {
                return .failure(HTTPError(.badRequest, message: "query 'fps' '\(text)': expected a number of frames/s from 0.1 to 1000"))
            }
            fps = v
        }
        return .success((names, fps))
    }
}

/// Grab-to-socket latency of every part and message sent to viewers (the bench reads it).
/// Thread-safe (a lock around a small fixed histogram: 1 ms buckets to 1 s).
public final class ViewerLatency: Sendable {
    private let buckets = Mutex([Int](repeating: 0, count: 1002))

    func record(ns: Int64) {
        let ms = Int(max(0, ns) / 1_000_000)
        buckets.withLock { $0[min(ms, 1001)] += 1 }
    }

    /// Parts sent and the p50/p99 of their latency, ms (upper bucket bounds); then back to zero.
    public func takePercentiles() -> (count: Int, p50: Double, p99: Double) {
        let counts = buckets.withLock { b -> [Int] in
            let c = b
            for i in b.indices { b[i] = 0 }
            return c
        }
        let total = counts.reduce(0, +)
        guard total > 0 else { return (0, 0, 0) }
        func p(_ q: Double) -> Double {
            let rank = Int((q * Double(total)).rounded(.up))
            var seen = 0
            for (i, c) in counts.enumerated() {
                seen += c
                if seen >= rank { return Double(i + 1) }
            }
            return 1001
        }
        return (total, p(0.5), p(0.99))
    }
}
