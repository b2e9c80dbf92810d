import AmbitModel
public import NIOCore
import NIOHTTP2
import NIOSSL
import NIOTLS
import Synchronization

/// Counts the HBONE connections open in a process, in total and per source address, so every listener
/// (one per captured pod in the node agent) shares one budget.
public final class HBONEConnectionLimiter: Sendable {
    private struct State {
        var total = 0
        var bySource: [IPAddress: Int] = [:]
    }

    private let state = Mutex(State())
    public let limits: HBONEServerLimits

    public init(limits: HBONEServerLimits = HBONEServerLimits()) {
        self.limits = limits
    }

    /// Admits a connection from `source`, or says which limit refuses it. Call ``release(_:)`` when it closes.
    func admit(_ source: IPAddress?) -> HBONELimit? {
        state.withLock { state in
            guard state.total < limits.maxConnections else { return .connections }
            if let source {
                guard state.bySource[source, default: 0] < limits.maxConnectionsPerSource else {
                    return .connectionsPerSource
                }
                state.bySource[source, default: 0] += 1
            }
            state.total += 1
            return nil
        }
    }

    func release(_ source: IPAddress?) {
        state.withLock { state in
            state.total -= 1
            if let source {
                let left = state.bySource[source, default: 1] - 1
                state.bySource[source] = left > 0 ? left : nil
            }
        }
    }

    /// Connections open now (for status pages and tests).
    public var open: Int { state.withLock { $0.total } }
}

/// Closes a connection whose TLS handshake did not complete with ALPN `h2` within the deadline
/// (HBONE is HTTP/2 only); removes itself once it did.
final class HBONEHandshakeGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let timeout: TimeAmount
    private let onTimeout: () -> Void
    private let onWrongProtocol: (String?) -> Void
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount, onTimeout: @escaping () -> Void, onWrongProtocol: @escaping (String?) -> Void) {
        self.timeout = timeout
        self.onTimeout = onTimeout
        self.onWrongProtocol = onWrongProtocol
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            onTimeout()
            loopBound.value.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event {
            deadline?.cancel()
            if negotiated == MeshTLS.alpn {
                context.pipeline.syncOperations.removeHandler(self, promise: nil)
            } else {
                onWrongProtocol(negotiated)
                context.close(promise: nil)
                return
            }
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// At the end of a server connection's pipeline, the connection's deadlines:
/// - without open streams for `idle`, it is asked to shut down gracefully (GOAWAY, then close);
/// - once a GOAWAY was received or the connection failed (a protocol error: NIO has sent GOAWAY itself),
///   it closes at the latest `afterGoAway` later, whatever its streams are doing.
/// It learns of streams through ``StreamCounter``, the HTTP/2 handler's stream delegate.
final class HBONEConnectionCloser: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    private let idle: TimeAmount
    private let afterGoAway: TimeAmount
    private let onLimit: (HBONELimit) -> Void
    private var openStreams = 0
    private var idleTimer: Scheduled<Void>?
    private var closing: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    init(idle: TimeAmount, afterGoAway: TimeAmount, onLimit: @escaping (HBONELimit) -> Void) {
        self.idle = idle
        self.afterGoAway = afterGoAway
        self.onLimit = onLimit
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { startIdleTimer() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        closing?.cancel()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        startIdleTimer()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .goAway = unwrapInboundIn(data).payload { closeSoon() }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        closeSoon()
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        closing?.cancel()
        context.fireChannelInactive()
    }

    func streamOpened() {
        openStreams += 1
        idleTimer?.cancel()
        idleTimer = nil
    }

    func streamClosed() {
        openStreams -= 1
        if openStreams == 0 { startIdleTimer() }
    }

    private func startIdleTimer() {
        guard let context, idleTimer == nil, closing == nil else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        idleTimer = context.eventLoop.scheduleTask(in: idle) {
            let closer = loopBound.value
            guard let context = closer.context else { return }
            closer.onLimit(.idleTimeout)
            // The connection-management handler answers with GOAWAY and closes once no stream is left.
            context.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
    }

    private func closeSoon() {
        guard let context, closing == nil else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        closing = context.eventLoop.scheduleTask(in: afterGoAway) {
            let closer = loopBound.value
            closer.onLimit(.closeAfterGoAway)
            closer.context?.close(promise: nil)
        }
    }
}

/// The HTTP/2 handler's stream delegate: tells the connection-management handler and the
/// ``HBONEConnectionCloser`` of streams opening and closing.
struct StreamCounter: NIOHTTP2StreamDelegate {
    let next: any NIOHTTP2StreamDelegate
    let closer: NIOLoopBound<HBONEConnectionCloser>

    func streamCreated(_ id: HTTP2StreamID, channel: any Channel) {
        next.streamCreated(id, channel: channel)
        closer.value.streamOpened()
    }

    func streamClosed(_ id: HTTP2StreamID, channel: any Channel) {
        next.streamClosed(id, channel: channel)
        closer.value.streamClosed()
    }
}

/// Per connection: streams reset by the peer before their CONNECT was answered, in a sliding window.
final class PrematureResetCounter {
    private let limit: Int
    private let window: TimeAmount
    private var times: [NIODeadline] = []

    init(limit: Int, window: TimeAmount) {
        self.limit = limit
        self.window = window
    }

    /// Records one; true when the connection has now gone over the limit.
    func record(now: NIODeadline = .now()) -> Bool {
        times.append(now)
        let start = now - window
        if let first = times.firstIndex(where: { $0 >= start }), first > 0 { times.removeFirst(first) }
        return times.count > limit
    }
}
