import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A TCP connection to a loopback server, driven byte by byte by a test: to be slow, stall,
/// leave mid-part or speak WebSocket. Not thread-safe: owned by one task.
final class RawConnection: @unchecked Sendable {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int, timeout: Double = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else {
            close(fd)
            throw TestFailure("cannot connect to 127.0.0.1:\(port): errno \(errno)")
        }
    }

    deinit { close(fd) }

    /// A small receive buffer: a client that reads nothing stalls the server's writes sooner.
    func shrinkReceiveBuffer() {
        var size: Int32 = 4096
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBufferPointer { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }

    /// Reads more into the buffer; false at EOF, error or timeout.
    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBufferPointer { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return false }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    /// Bytes up to and including `delimiter`; nil if the connection ended first.
    func read(until delimiter: String) -> [UInt8]? {
        let d = Array(delimiter.utf8)
        var searchFrom = 0
        while true {
            if buffer.count >= d.count {
                for i in searchFrom...(buffer.count - d.count) where buffer[i] == d[0] && Array(buffer[i..<(i + d.count)]) == d {
                    let out = Array(buffer[0..<(i + d.count)])
                    buffer.removeFirst(i + d.count)
                    return out
                }
                searchFrom = max(0, buffer.count - d.count + 1)
            }
            guard fill() else { return nil }
        }
    }

    func read(count: Int) -> [UInt8]? {
        while buffer.count < count { guard fill() else { return nil } }
        let out = Array(buffer[0..<count])
        buffer.removeFirst(count)
        return out
    }

    /// Everything until the server closes (or the timeout).
    func readToEnd() -> [UInt8] {
        while fill() {}
        defer { buffer.removeAll() }
        return buffer
    }

    /// Whether the server closed the connection (EOF) within the receive timeout.
    func closedByServer() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBufferPointer { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
        }
    }

    /// The response head: status and headers (names lowercased).
    func readHead() -> (status: Int, headers: [String: String])? {
        guard let head = read(until: "\r\n\r\n"), let text = String(bytes: head, encoding: .utf8) else { return nil }
        let lines = text.components(separatedBy: "\r\n")
        guard let status = lines.first?.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return nil }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return (status, headers)
    }
}

struct HTTPReply {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
    func json() -> Any? { try? JSONSerialization.jsonObject(with: Data(body)) }
}

/// A GET on a new connection.
func http(_ port: Int, _ path: String, headers: [String: String] = [:], timeout: Double = 15) throws -> HTTPReply {
    try http(port, "GET", path, headers: headers, timeout: timeout)
}

/// One request on a new connection (`Connection: close`), the whole reply read.
func http(_ port: Int, _ method: String, _ path: String, headers: [String: String] = [:], body: [UInt8] = [],
          timeout: Double = 15) throws -> HTTPReply {
    let c = try RawConnection(port: port, timeout: timeout)
    var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
    for (k, v) in headers { request += "\(k): \(v)\r\n" }
    if !body.isEmpty || method == "PUT" || method == "POST" { request += "Content-Length: \(body.count)\r\n" }
    c.send(request + "\r\n")
    if !body.isEmpty { c.send(body) }
    guard let head = c.readHead() else { throw TestFailure("\(method) \(path): no response") }
    var data: [UInt8]
    if head.headers["transfer-encoding"] == "chunked" {
        data = []
        while let sizeLine = c.read(until: "\r\n"), let size = Int(String(decoding: sizeLine, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines), radix: 16), size > 0 {
            data += c.read(count: size) ?? []
            _ = c.read(count: 2)
        }
    } else if let length = head.headers["content-length"].flatMap({ Int($0) }) {
        data = c.read(count: length) ?? []
    } else {
        data = c.readToEnd()
    }
    return HTTPReply(status: head.status, headers: head.headers, body: data)
}

/// One part of an MJPEG stream.
struct MJPEGPart {
    var headers: [String: String]
    var jpeg: [UInt8]
    var timestamp: Double? { headers["x-timestamp"].flatMap(Double.init) }
}

/// Reads `multipart/x-mixed-replace` parts from a stream request (chunked transfer undone).
final class MJPEGClient {
    let connection: RawConnection
    private var body: [UInt8] = []
    private var chunked = false
    let status: Int

    init(port: Int, path: String, headers: [String: String] = [:], shrink: Bool = false) throws {
        connection = try RawConnection(port: port)
        if shrink { connection.shrinkReceiveBuffer() }
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (k, v) in headers { request += "\(k): \(v)\r\n" }
        connection.send(request + "\r\n")
        guard let head = connection.readHead() else { throw TestFailure("GET \(path): no response") }
        status = head.status
        chunked = head.headers["transfer-encoding"] == "chunked"
    }

    private func more() -> Bool {
        guard chunked else {
            guard let b = connection.read(count: 1) else { return false }
            body += b
            return true
        }
        guard let line = connection.read(until: "\r\n"),
              let size = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines), radix: 16), size > 0,
              let data = connection.read(count: size) else { return false }
        _ = connection.read(count: 2)
        body += data
        return true
    }

    private func take(until d: [UInt8]) -> [UInt8]? {
        while true {
            if body.count >= d.count {
                for i in 0...(body.count - d.count) where body[i] == d[0] && Array(body[i..<(i + d.count)]) == d {
                    let out = Array(body[0..<(i + d.count)])
                    body.removeFirst(i + d.count)
                    return out
                }
            }
            guard more() else { return nil }
        }
    }

    func nextPart() -> MJPEGPart? {
        guard let head = take(until: Array("\r\n\r\n".utf8)) else { return nil }
        var headers: [String: String] = [:]
        for line in String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        guard let length = headers["content-length"].flatMap({ Int($0) }) else { return nil }
        while body.count < length + 2 { guard more() else { return nil } }
        let jpeg = Array(body[0..<length])
        body.removeFirst(length + 2)
        return MJPEGPart(headers: headers, jpeg: jpeg)
    }
}

/// A WebSocket client (RFC 6455), just enough for /api/live and Chromium's DevTools protocol:
/// masked text frames out; text and binary messages in, fragments joined, pings answered.
final class WebSocketClient {
    let connection: RawConnection

    init(port: Int, path: String, headers: [String: String] = [:]) throws {
        connection = try RawConnection(port: port, timeout: 20)
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for (k, v) in headers { request += "\(k): \(v)\r\n" }
        connection.send(request + "\r\n")
        guard let head = connection.readHead(), head.status == 101 else { throw TestFailure("WebSocket \(path): not upgraded") }
    }

    func sendText(_ text: String) {
        let payload = Array(text.utf8)
        var frame: [UInt8] = [0x81]
        if payload.count < 126 {
            frame.append(0x80 | UInt8(payload.count))
        } else if payload.count < 65536 {
            frame.append(0x80 | 126)
            frame += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        } else {
            frame.append(0x80 | 127)
            for s in stride(from: 56, through: 0, by: -8) { frame.append(UInt8((payload.count >> s) & 0xFF)) }
        }
        let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        frame += mask
        for (i, b) in payload.enumerated() { frame.append(b ^ mask[i % 4]) }
        connection.send(frame)
    }

    /// The next whole message (opcode 1 text or 2 binary); nil when the connection closed.
    func nextMessage() -> (opcode: UInt8, data: [UInt8])? {
        var message: [UInt8] = []
        var opcode: UInt8 = 0
        while true {
            guard let h = connection.read(count: 2) else { return nil }
            let fin = h[0] & 0x80 != 0
            let op = h[0] & 0x0F
            var length = Int(h[1] & 0x7F)
            if length == 126 { guard let e = connection.read(count: 2) else { return nil }; length = Int(e[0]) << 8 | Int(e[1]) }
            if length == 127 { guard let e = connection.read(count: 8) else { return nil }; length = e.reduce(0) { $0 << 8 | Int($1) } }
            guard let payload = length == 0 ? [] : connection.read(count: length) else { return nil }
            switch op {
            case 0x8: return nil
            case 0x9:  // ping: pong, masked
                var pong: [UInt8] = [0x8A, 0x80 | UInt8(payload.count)] + [0, 0, 0, 0]
                pong += payload
                connection.send(pong)
                continue
            case 0xA: continue
            case 0x0: message += payload
            default:
                opcode = op
                message = payload
            }
            if fin { return (opcode, message) }
        }
    }
}

/// Width and height from a JPEG's SOF marker; nil when there is none.
func jpegSize(_ bytes: [UInt8]) -> (width: Int, height: Int)? {
    guard bytes.count > 4, bytes[0] == 0xFF, bytes[1] == 0xD8 else { return nil }
    var i = 2
    while i + 9 < bytes.count {
        guard bytes[i] == 0xFF else { return nil }
        let marker = bytes[i + 1]
        let length = Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
        if (0xC0...0xC3).contains(marker) {
            return (Int(bytes[i + 7]) << 8 | Int(bytes[i + 8]), Int(bytes[i + 5]) << 8 | Int(bytes[i + 6]))
        }
        i += 2 + length
    }
    return nil
}
