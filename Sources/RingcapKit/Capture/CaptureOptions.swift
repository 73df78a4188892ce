import Foundation

/// How long the shim may block in network opens and reads.
public struct CaptureTimeouts: Sendable, Equatable {
    public var openMs: Int32 = 10_000
    public var readMs: Int32 = 5_000
    public init(openMs: Int32 = 10_000, readMs: Int32 = 5_000) {
        self.openMs = openMs
        self.readMs = readMs
    }
}

/// How RTSP streams are carried (`--rtsp-transport`). TCP by default: interleaved RTP over the
/// RTSP connection crosses NAT and firewalls and loses nothing to a full socket buffer; UDP
/// has less delay on a clean LAN.
public enum RTSPTransport: String, Sendable, CaseIterable {
    case tcp, udp
}
