import NIOCore
import NIOHTTP2
import NIOTLS

/// Watches a client HBONE connection for what the pool needs to know: the TLS handshake's
/// ALPN result, the server's SETTINGS (readiness and its stream limit) and GOAWAY.
/// Sits after the HTTP/2 handler, which passes connection-level frames on.
final class HBONEConnectionObserver: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame

    enum Event {
        /// The first SETTINGS from the server arrived; `maxStreams` is its stream limit, if any.
        case ready(maxStreams: Int?)
        case maxStreamsChanged(Int)
        case goAway
        /// The connection failed (a TLS alert from the server, a reset).
        case error(any Error)
    }

    private var sawSettings = false
    private let onEvent: (Event) -> Void

    init(onEvent: @escaping (Event) -> Void) {
        self.onEvent = onEvent
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.payload {
        case .settings(.settings(let settings)):
            let limit = settings.last { $0.parameter == .maxConcurrentStreams }?.value
            if !sawSettings {
                sawSettings = true
                onEvent(.ready(maxStreams: limit))
            } else if let limit {
                onEvent(.maxStreamsChanged(limit))
            }
        case .goAway:
            onEvent(.goAway)
        default:
            break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        onEvent(.error(error))
        context.fireErrorCaught(error)
    }
}

/// Checks ALPN once the client handshake completes; anything but `h2` fails the connection.
final class ClientALPNCheck: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let onMismatch: (String?) -> Void

    init(onMismatch: @escaping (String?) -> Void) {
        self.onMismatch = onMismatch
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event {
            guard negotiated == MeshTLS.alpn else {
                onMismatch(negotiated)
                context.close(promise: nil)
                return
            }
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }
}
