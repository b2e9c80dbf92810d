import NIOCore
import NIOHTTP2

/// Keeps a client HBONE connection honest, as ztunnel's client does: a PING every `interval`, and a
/// connection whose PING is not answered within `timeout` is closed (the peer's node lost power, a
/// middlebox dropped the flow: nothing else would tell). The pool then never hands out the dead
/// connection. Sits after the HTTP/2 handler, which passes PING frames on.
final class HBONEKeepalive: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame
    typealias OutboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private let interval: TimeAmount
    private let timeout: TimeAmount
    private var next: Scheduled<Void>?
    private var deadline: Scheduled<Void>?
    private var sequence: UInt64 = 0

    init(interval: TimeAmount, timeout: TimeAmount) {
        self.interval = interval
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { schedule(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        schedule(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        next?.cancel()
        deadline?.cancel()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        next?.cancel()
        deadline?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if case .ping(let ping, ack: true) = frame.payload, ping == HTTP2PingData(withInteger: sequence) {
            deadline?.cancel()
            deadline = nil
        }
        context.fireChannelRead(data)
    }

    private func schedule(_ context: ChannelHandlerContext) {
        guard next == nil else { return }
        let loop = context.eventLoop.assumeIsolated()
        next = loop.scheduleTask(in: interval) { [self] in
            next = nil
            ping(context)
        }
    }

    private func ping(_ context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        sequence &+= 1
        if deadline == nil {
            deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
                // No answer: the connection is dead, whatever the socket says.
                context.close(promise: nil)
            }
        }
        context.writeAndFlush(
            wrapOutboundOut(
                HTTP2Frame(streamID: .rootStream, payload: .ping(HTTP2PingData(withInteger: sequence), ack: false))
            ),
            promise: nil
        )
        schedule(context)
    }
}
