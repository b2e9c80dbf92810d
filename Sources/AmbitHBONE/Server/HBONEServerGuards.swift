import AmbitModel
public import NIOCore
import NIOHTTP2
import NIOSSL
import NIOTLS
import Synchronization

/// Counts the HBONE connections open in a process, in total, per source and still in their TLS
/// handshake, so every listener (one per captured pod in the node agent) shares one budget.
public final class HBONEConnectionLimiter: Sendable {
    private struct State {
        var total = 0
        var handshaking = 0
        var bySource: [IPAddress: Int] = [:]
    }

    /// One admitted connection: ends its handshake and its place in the budget once each.
    final class Admission: Sendable {
        private let limiter: HBONEConnectionLimiter
        private let source: IPAddress?
        private let ended = Mutex((handshake: false, connection: false))

        fileprivate init(limiter: HBONEConnectionLimiter, source: IPAddress?) {
            self.limiter = limiter
            self.source = source
        }

        /// The TLS handshake is over (done, failed or abandoned).
        func handshakeEnded() {
            let first = ended.withLock { ended in
                let first = !ended.handshake
                ended.handshake = true
                return first
            }
            guard first else { return }
            limiter.state.withLock { $0.handshaking -= 1 }
        }

        /// The connection closed.
        func release() {
            handshakeEnded()
            let first = ended.withLock { ended in
                let first = !ended.connection
                ended.connection = true
                return first
            }
            guard first else { return }
            limiter.state.withLock { state in
                state.total -= 1
                if let source {
                    let left = state.bySource[source, default: 1] - 1
                    state.bySource[source] = left > 0 ? left : nil
                }
            }
        }
    }

    private let state = Mutex(State())
    public let limits: HBONEServerLimits

    public init(limits: HBONEServerLimits = HBONEServerLimits()) {
        self.limits = limits
    }

    /// Whose budget a source address counts against: itself, or for IPv6 its /64 (one host
    /// commonly has a whole /64); IPv4-mapped IPv6 addresses count as their IPv4 address.
    static func sourceKey(_ address: IPAddress) -> IPAddress {
        guard case .v6(let high, let low) = address, !(high == 0 && low >> 32 == 0xFFFF) else { return address }
        return .v6(high: high, low: 0)
    }

    /// Admits a connection from `source` (its TLS handshake starting), or says which limit refuses it.
    func admit(_ source: IPAddress?) -> Result<Admission, HBONELimitHit> {
        let key = source.map(Self.sourceKey)
        let refused: HBONELimit? = state.withLock { state in
            guard state.total < limits.maxConnections else { return .connections }
            guard state.handshaking < limits.maxHandshakes else { return .handshakes }
            if let key {
                guard state.bySource[key, default: 0] < limits.maxConnectionsPerSource else {
                    return .connectionsPerSource
                }
                state.bySource[key, default: 0] += 1
            }
            state.total += 1
            state.handshaking += 1
            return nil
        }
        if let refused { return .failure(HBONELimitHit(limit: refused)) }
        return .success(Admission(limiter: self, source: key))
    }

    /// Connections open now, and those of them still in their TLS handshake (for status pages and tests).
    public var open: Int { state.withLock { $0.total } }
    public var handshaking: Int { state.withLock { $0.handshaking } }
}

/// A limit that refused a connection.
struct HBONELimitHit: Error {
    let limit: HBONELimit
}

/// Closes a connection whose TLS handshake did not complete with ALPN `h2` within the deadline
/// (HBONE is HTTP/2 only); removes itself once it did.
final class HBONEHandshakeGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let timeout: TimeAmount
    private let onTimeout: () -> Void
    private let onWrongProtocol: (String?) -> Void
    private let onEnded: () -> Void
    private var deadline: Scheduled<Void>?

    /// `onEnded` is called once the handshake is over, whichever way (done, failed, timed out, closed).
    init(
        timeout: TimeAmount,
        onTimeout: @escaping () -> Void,
        onWrongProtocol: @escaping (String?) -> Void,
        onEnded: @escaping () -> Void = {}
    ) {
        self.timeout = timeout
        self.onTimeout = onTimeout
        self.onWrongProtocol = onWrongProtocol
        self.onEnded = onEnded
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
        onEnded()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event {
            deadline?.cancel()
            onEnded()
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
/// - without open streams for `idle`, it is asked to shut down gracefully (NIO's connection-management
///   handler sends GOAWAY, then closes once its PING is answered and no stream is left);
/// - once any GOAWAY was sent (for idleness, a missed PING, a protocol error or a drain: see
///   ``SentGoAwayDetector``), it is closed at the latest `afterGoAway` later (`drainDeadline` if longer),
///   whatever its streams are doing and whether or not the peer answers.
/// It learns of streams through ``StreamCounter``, the HTTP/2 handler's stream delegate.
final class HBONEConnectionCloser: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    private let idle: TimeAmount
    private let afterGoAway: TimeAmount
    private let onLimit: (HBONELimit) -> Void
    private var openStreams = 0
    /// When the last stream closed (or the connection opened), by the event loop's clock; nil while
    /// streams are open.
    private var idleSince: NIODeadline?
    /// At most one idle timer per connection: a stream opening does not cancel it, and when it fires
    /// early (streams came and went meanwhile) it is set again for the rest, so a connection whose
    /// streams come and go schedules no timer per stream.
    private var idleTimer: Scheduled<Void>?
    private var closing: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    init(
        idle: TimeAmount,
        afterGoAway: TimeAmount,
        drainDeadline: TimeAmount = .zero,
        onLimit: @escaping (HBONELimit) -> Void
    ) {
        self.idle = idle
        self.afterGoAway = max(afterGoAway, drainDeadline)
        self.onLimit = onLimit
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        idleSince = context.eventLoop.now
        if context.channel.isActive { startIdleTimer() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        closing?.cancel()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if openStreams == 0 { idleSince = context.eventLoop.now }
        startIdleTimer()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        closing?.cancel()
        context.fireChannelInactive()
    }

    func streamOpened() {
        openStreams += 1
        idleSince = nil
    }

    func streamClosed() {
        openStreams -= 1
        if openStreams == 0, let context {
            idleSince = context.eventLoop.now
            startIdleTimer()
        }
    }

    /// A GOAWAY left for the peer: the connection is closed at the deadline.
    func goAwaySent() {
        guard let context, closing == nil else { return }
        idleTimer?.cancel()
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        closing = context.eventLoop.scheduleTask(in: afterGoAway) {
            let closer = loopBound.value
            closer.onLimit(.closeAfterGoAway)
            closer.context?.close(promise: nil)
        }
    }

    private func startIdleTimer() {
        guard let context, idleTimer == nil, closing == nil, let idleSince else { return }
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: idleSince + idle) { [self] in
            idleTimer = nil
            guard let context = self.context, closing == nil, openStreams == 0, let since = self.idleSince else {
                return
            }
            guard context.eventLoop.now >= since + idle else {
                startIdleTimer()
                return
            }
            onLimit(.idleTimeout)
            context.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
    }
}

/// Between TLS and the HTTP/2 handler: reads the headers of the frames the server writes (skipping
/// their payloads) and reports the first GOAWAY, whoever wrote it: NIO's HTTP/2 handler on a
/// connection error, or its connection-management handler when idle, on a missed PING or when draining.
final class SentGoAwayDetector: ChannelOutboundHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData
    private static let goAwayType: UInt8 = 0x7
    private let onGoAway: () -> Void
    /// Payload bytes of the current frame still to skip.
    private var skip = 0
    private var header: [UInt8] = []
    /// Once a GOAWAY was seen, nothing more is scanned.
    private var found = false

    init(onGoAway: @escaping () -> Void) {
        self.onGoAway = onGoAway
        header.reserveCapacity(9)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if !found, case .byteBuffer(let buffer) = unwrapOutboundIn(data), scan(buffer) {
            found = true
            onGoAway()
        }
        context.write(data, promise: promise)
    }

    /// Whether `buffer` holds the header of a GOAWAY frame.
    private func scan(_ buffer: ByteBuffer) -> Bool {
        let bytes = buffer.readableBytesView
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if skip > 0 {
                let skipped = min(skip, bytes.endIndex - index)
                index += skipped
                skip -= skipped
                continue
            }
            header.append(bytes[index])
            index += 1
            guard header.count == 9 else { continue }
            skip = Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2])
            let type = header[3]
            header.removeAll(keepingCapacity: true)
            if type == Self.goAwayType { return true }
        }
        return false
    }
}

/// The HTTP/2 handler's stream delegate: tells the connection-management handler and the
/// ``HBONEConnectionCloser`` of streams opening and closing, and counts premature resets. It is
/// called while the HTTP/2 handler works through what it has read, so a connection over the
/// rapid-reset limit stops there, not after the rest of a read that may hold hundreds of streams.
struct StreamCounter: NIOHTTP2StreamDelegate {
    let next: any NIOHTTP2StreamDelegate
    let closer: NIOLoopBound<HBONEConnectionCloser>
    let resets: NIOLoopBound<PrematureResetCounter>
    /// Called once, with the stream that took the connection over the rapid-reset limit.
    let onTooManyResets: @Sendable (HTTP2StreamID) -> Void

    func streamCreated(_ id: HTTP2StreamID, channel: any Channel) {
        next.streamCreated(id, channel: channel)
        closer.value.streamOpened()
        resets.value.created(id)
    }

    func streamClosed(_ id: HTTP2StreamID, channel: any Channel) {
        next.streamClosed(id, channel: channel)
        closer.value.streamClosed()
        // Streams that end with their connection were not reset by the peer.
        guard let parent = channel.parent, parent.isActive else {
            resets.value.forget(channel)
            return
        }
        if resets.value.closed(channel) { onTooManyResets(id) }
    }
}

/// Per connection: streams the peer reset (or abandoned) within their first second, before their CONNECT
/// was answered, in a sliding window. Counting only young streams leaves out a client that gave up on a
/// slow answer (its timeout is 10 s), as Envoy counts only streams reset within a second. Resets are also
/// counted per turn of the connection's event loop (what the server reads at once): an application's
/// connections end one by one, a rapid-reset burst brings hundreds of HEADERS and RST_STREAM in one read,
/// and each stream it opens costs the event loop the other connections share (as the h2 library under
/// ztunnel bounds the reset streams still waiting to be accepted).
final class PrematureResetCounter {
    static let youngStream: TimeAmount = .seconds(1)
    private let limit: Int
    private let window: TimeAmount
    private let perTurn: Int
    private let eventLoop: any EventLoop
    private var times: [NIODeadline] = []
    private var thisTurn = 0
    /// Streams not answered yet, by their channel, and when they opened.
    private var unanswered: [ObjectIdentifier: NIODeadline] = [:]
    private(set) var tripped = false

    init(limit: Int, window: TimeAmount, perTurn: Int, eventLoop: any EventLoop) {
        self.limit = limit
        self.window = window
        self.perTurn = perTurn
        self.eventLoop = eventLoop
    }

    /// The highest stream the peer has opened: what a GOAWAY names, so no stream that was served is
    /// said to have been left alone.
    private(set) var highestStream = HTTP2StreamID(0)

    /// A new stream, before any of its frames reached its handlers (the stream initializer calls it).
    func opened(_ stream: any Channel, now: NIODeadline = .now()) {
        unanswered[ObjectIdentifier(stream)] = now
    }

    /// The HTTP/2 handler created stream `id`.
    func created(_ id: HTTP2StreamID) {
        if id > highestStream { highestStream = id }
    }

    /// The stream's CONNECT was answered (with any status): its end is not premature.
    func answered(_ stream: any Channel) {
        unanswered[ObjectIdentifier(stream)] = nil
    }

    func forget(_ stream: any Channel) {
        unanswered[ObjectIdentifier(stream)] = nil
    }

    /// The stream ended while its connection lives on; true exactly once, when that takes the
    /// connection over a limit.
    func closed(_ stream: any Channel, now: NIODeadline = .now()) -> Bool {
        guard let opened = unanswered.removeValue(forKey: ObjectIdentifier(stream)) else { return false }
        return record(lifetime: now - opened, now: now)
    }

    /// Records a stream that ended unanswered after `lifetime`; true exactly once, when the
    /// connection goes over a limit.
    func record(lifetime: TimeAmount, now: NIODeadline = .now()) -> Bool {
        guard !tripped, lifetime < Self.youngStream else { return false }
        times.append(now)
        let start = now - window
        if let first = times.firstIndex(where: { $0 >= start }), first > 0 { times.removeFirst(first) }
        if thisTurn == 0 {
            // Tasks run once the event loop has handled the I/O of this turn.
            eventLoop.assumeIsolated().execute { [self] in thisTurn = 0 }
        }
        thisTurn += 1
        tripped = times.count > limit || thisTurn > perTurn
        return tripped
    }
}
