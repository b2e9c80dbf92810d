import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// The protocol a client speaks inside a tunnel.
enum SniffedProtocol: Equatable {
    case http1
    case http2
    case tcp
    /// Not decided yet: more bytes are needed.
    case undecided

    static let http2Preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// Decides from the first bytes: the HTTP/2 connection preface, an HTTP/1 request line
    /// (an upper-case method token and a space), or anything else (opaque TCP).
    static func detect(_ bytes: some Collection<UInt8>) -> SniffedProtocol {
        let prefix = Array(bytes.prefix(http2Preface.count))
        if prefix.count >= http2Preface.count, prefix == http2Preface { return .http2 }
        if !prefix.isEmpty, http2Preface.starts(with: prefix) { return .undecided }
        var length = 0
        for byte in bytes {
            if byte == UInt8(ascii: " ") { return length > 0 ? .http1 : .tcp }
            guard (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || byte == UInt8(ascii: "-") else {
                return .tcp
            }
            length += 1
            if length > 20 { return .tcp }  // longer than any method
        }
        return .undecided
    }
}

/// Holds the first bytes of a terminated tunnel until the protocol is known, then replaces
/// itself with the matching pipeline and replays them. A client that stays silent (a
/// server-speaks-first protocol) is treated as opaque TCP after `sniffTimeout`.
final class ProtocolSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let tunnel: TunnelContext
    private var buffered: ByteBuffer?
    private var inputClosed = false
    private var timer: Scheduled<Void>?
    private var decided = false

    init(tunnel: TunnelContext) {
        self.tunnel = tunnel
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: tunnel.waypoint.options.sniffTimeout) {
            let (handler, context) = loopBound.value
            handler.decide(.tcp, context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if decided {
            context.fireChannelRead(data)
            return
        }
        if buffered == nil {
            buffered = bytes
        } else {
            buffered!.writeBuffer(&bytes)
        }
        let found = SniffedProtocol.detect(buffered!.readableBytesView)
        if found != .undecided { decide(found, context: context) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event, !decided {
            // The client finished before we could tell: whatever it sent is opaque TCP.
            inputClosed = true
            decide(.tcp, context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func decide(_ found: SniffedProtocol, context: ChannelHandlerContext) {
        guard !decided else { return }
        decided = true
        timer?.cancel()
        let waypoint = tunnel.waypoint
        waypoint.logger.debug(
            "tunnel protocol",
            metadata: [
                "protocol": "\(found)", "buffered": "\(buffered?.readableBytes ?? 0)",
                "authority": "\(tunnel.authority)",
            ]
        )
        do {
            let sync = context.pipeline.syncOperations
            switch found {
            case .http1:
                waypoint.count { $0.http1Tunnels += 1 }
                try sync.configureHTTPServerPipeline(
                    position: .after(self),
                    withPipeliningAssistance: true,
                    withErrorHandling: true
                )
                try sync.addHandler(HTTPProxyHandler(tunnel: tunnel, downstreamProtocol: .http1))
            case .http2:
                waypoint.count { $0.http2Tunnels += 1 }
                let tunnel = self.tunnel
                var settings = NIOHTTP2Handler.ConnectionConfiguration()
                settings.initialSettings = [
                    HTTP2Setting(parameter: .maxConcurrentStreams, value: 1000),
                    HTTP2Setting(parameter: .maxHeaderListSize, value: waypoint.options.maxRequestHeaderBytes),
                ]
                _ = try sync.configureHTTP2Pipeline(
                    mode: .server,
                    connectionConfiguration: settings,
                    streamConfiguration: .init(),
                    streamDelegate: nil,
                    position: .last  // after this handler, which leaves once the bytes are replayed
                ) { stream in
                    stream.eventLoop.makeCompletedFuture {
                        try stream.pipeline.syncOperations.addHandlers([
                            HTTP2FramePayloadToHTTP1ServerCodec(),
                            HTTPProxyHandler(tunnel: tunnel, downstreamProtocol: .http2),
                        ])
                    }
                }
            case .tcp, .undecided:
                waypoint.count { $0.tcpTunnels += 1 }
                try TCPForwarding.start(context.channel, tunnel: tunnel)
            }
        } catch {
            waypoint.logger.warning("cannot set up the tunnel pipeline", metadata: ["error": "\(error)"])
            context.close(promise: nil)
            return
        }
        if let bytes = buffered {
            buffered = nil
            context.fireChannelRead(wrapInboundOut(bytes))
        }
        if inputClosed { context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
    }
}
