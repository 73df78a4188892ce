import HummingbirdCore
import Logging
import NIOCore

/// A connection must send its first request head within `seconds`, or it is closed: a client
/// sending its request a byte a second holds no slot for ever. (Hummingbird's idle timeout
/// counts from decoded request parts, which such a client never completes; this handler sits in
/// front of the HTTP decoder and looks at raw bytes for the blank line that ends a head. Later
/// requests on the connection are Hummingbird's idle timeout's.)
final class RequestHeadDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let seconds: Int64
    private var timer: Scheduled<Void>?
    private var armed = true
    /// The last bytes seen (up to 3), for a "\r\n\r\n" split across reads.
    private var tail: [UInt8] = []

    init(seconds: Int64) { self.seconds = seconds }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: .seconds(seconds)) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) { timer?.cancel() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if armed {
            let buffer = unwrapInboundIn(data)
            var window = tail
            window.append(contentsOf: buffer.readableBytesView)
            let end: [UInt8] = [13, 10, 13, 10]
            if window.count >= 4, (0...(window.count - 4)).contains(where: { window[$0] == 13 && Array(window[$0..<($0 + 4)]) == end }) {
                armed = false
                timer?.cancel()
                timer = nil
                tail = []
            } else {
                tail = Array(window.suffix(3))
            }
        }
        context.fireChannelRead(data)
    }
}

/// A server child channel with `RequestHeadDeadline` in front of what `inner` sets up.
struct HeadDeadlineChannel<Inner: ServerChildChannel>: ServerChildChannel {
    typealias Value = Inner.Value
    let inner: Inner
    let seconds: Int64

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(RequestHeadDeadline(seconds: seconds))
        }.flatMap { inner.setup(channel: channel, logger: logger) }
    }

    func handle(value: Value, logger: Logger) async { await inner.handle(value: value, logger: logger) }
}
