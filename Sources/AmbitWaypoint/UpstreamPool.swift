import AmbitModel
import NIOCore
import NIOHTTP1

/// Idle HTTP/1.1 upstream connections, kept after a keep-alive response and reused for the next
/// request to the same endpoint (an HBONE stream to the endpoint's node agent, or a sidecar's
/// connection to its application), as Envoy's and HAProxy's connection pools do.
///
/// Invariants: one pool per event loop, touched only on it (the connections live there too); a
/// connection is either in use by exactly one exchange or idle in the pool, never both; an idle
/// connection that closes, or stays idle past `idleTimeout`, leaves the pool.
final class UpstreamPool {
    struct Key: Hashable {
        /// `<pod IP>:<target port>` of the endpoint.
        let address: IPEndpoint
        /// A sidecar's own application rather than an HBONE stream.
        let local: Bool
    }

    private let eventLoop: any EventLoop
    private var idle: [Key: [PooledUpstream]] = [:]
    let idleTimeout: TimeAmount
    let maximumIdlePerKey: Int

    init(eventLoop: any EventLoop, idleTimeout: TimeAmount = .seconds(60), maximumIdlePerKey: Int = 128) {
        self.eventLoop = eventLoop
        self.idleTimeout = idleTimeout
        self.maximumIdlePerKey = maximumIdlePerKey
    }

    /// An idle connection to `key`, now in use, or `nil`.
    func take(_ key: Key) -> PooledUpstream? {
        eventLoop.preconditionInEventLoop()
        while var list = idle[key], let upstream = list.popLast() {
            idle[key] = list.isEmpty ? nil : list
            upstream.idleTimer?.cancel()
            upstream.idleTimer = nil
            if upstream.channel.isActive { return upstream }
        }
        return nil
    }

    /// Returns a connection whose response ended and that may be reused; closes it otherwise.
    func release(_ upstream: PooledUpstream) {
        eventLoop.preconditionInEventLoop()
        guard upstream.reusable, upstream.channel.isActive, (idle[upstream.key]?.count ?? 0) < maximumIdlePerKey else {
            upstream.channel.close(promise: nil)
            return
        }
        upstream.handler.detach()
        idle[upstream.key, default: []].append(upstream)
        upstream.idleTimer = eventLoop.assumeIsolated().scheduleTask(in: idleTimeout) { [self] in
            remove(upstream)
            upstream.channel.close(promise: nil)
        }
    }

    /// Forgets a connection that closed while idle.
    func remove(_ upstream: PooledUpstream) {
        eventLoop.preconditionInEventLoop()
        guard var list = idle[upstream.key] else { return }
        list.removeAll { $0 === upstream }
        idle[upstream.key] = list.isEmpty ? nil : list
        upstream.idleTimer?.cancel()
        upstream.idleTimer = nil
    }

    /// Closes every idle connection (shutdown).
    func closeAll() {
        for upstream in idle.values.joined() {
            upstream.idleTimer?.cancel()
            upstream.channel.close(promise: nil)
        }
        idle = [:]
    }

    var idleCount: Int { idle.values.reduce(0) { $0 + $1.count } }

    var eventLoopForBox: any EventLoop { eventLoop }
}

/// One upstream HTTP/1.1 connection that may carry several requests in turn.
final class PooledUpstream {
    let channel: any Channel
    let key: UpstreamPool.Key
    let handler: PooledResponseHandler
    fileprivate var idleTimer: Scheduled<Void>?
    /// Whether it has already carried a request (a reset before the response then means the
    /// endpoint closed an idle connection, and the request may be sent again on a fresh one).
    var used = false

    init(channel: any Channel, key: UpstreamPool.Key, handler: PooledResponseHandler) {
        self.channel = channel
        self.key = key
        self.handler = handler
    }

    /// The last response ended cleanly with keep-alive, and nothing is in flight.
    var reusable: Bool { handler.reusable }

    /// Sets up HTTP/1.1 on a new upstream channel (on its event loop).
    static func configure(_ channel: any Channel, key: UpstreamPool.Key, pool: UpstreamPool) throws -> PooledUpstream {
        let handler = PooledResponseHandler()
        let sync = channel.pipeline.syncOperations
        try sync.addHTTPClientHandlers()
        try sync.addHandler(handler)
        let upstream = PooledUpstream(channel: channel, key: key, handler: handler)
        handler.onIdleClose = { [weak pool, weak upstream] in
            if let pool, let upstream { pool.remove(upstream) }
        }
        return upstream
    }

    /// Sends one request whose response goes to `delegate` (tagged with `attempt`).
    func send(
        head: HTTPRequestHead,
        body: ByteBuffer,
        trailers: HTTPHeaders?,
        delegate: any UpstreamResponseDelegate,
        attempt: Int
    ) {
        used = true
        handler.attach(delegate, attempt: attempt)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if body.readableBytes > 0 { channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil) }
        channel.writeAndFlush(HTTPClientRequestPart.end(trailers), promise: nil)
    }
}

/// Routes the responses of a pooled connection to the exchange currently using it, and tells
/// whether the connection may be reused (HTTP/1.1, no `connection: close`, response complete).
final class PooledResponseHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private weak var delegate: (any UpstreamResponseDelegate)?
    private var attempt = 0
    private var inFlight = false
    private var keepAlive = true
    var onIdleClose: (() -> Void)?

    var reusable: Bool { !inFlight && keepAlive }

    func attach(_ delegate: any UpstreamResponseDelegate, attempt: Int) {
        self.delegate = delegate
        self.attempt = attempt
        inFlight = true
    }

    func detach() {
        delegate = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard inFlight else { return }  // nothing should arrive between requests
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.status.code >= 100 && head.status.code < 200 { return }
            keepAlive = head.isKeepAlive
            delegate?.upstreamHead(head, attempt: attempt)
        case .body(let body):
            delegate?.upstreamBody(body, attempt: attempt)
        case .end(let trailers):
            inFlight = false
            delegate?.upstreamEnd(trailers, attempt: attempt)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(UpstreamExchangeError.reset("\(error)"))
        keepAlive = false
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        keepAlive = false
        if inFlight {
            fail(UpstreamExchangeError.reset("the upstream closed before the response ended"))
        } else {
            onIdleClose?()
        }
        context.fireChannelInactive()
    }

    private func fail(_ error: any Error) {
        guard inFlight else { return }
        inFlight = false
        delegate?.upstreamFailed(error, attempt: attempt)
    }
}
