public import AmbitIdentity
import AmbitModel
import AmbitRelay
import FoundationEssentials
public import Logging
public import NIOCore
import NIOExtras
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization
public import X509

/// Terminates HBONE: mutual TLS 1.3 with ALPN `h2`, HTTP/2 with the reference settings, one
/// CONNECT per stream handed to an ``HBONEInboundHandler``.
///
/// Keep-alive PINGs, idle handling and graceful shutdown (GOAWAY, then streams may finish
/// until `drainDeadline`) come from NIO's `NIOHTTP2ServerConnectionManagementHandler`.
public final class HBONEServer: Sendable {
    public let configuration: HBONEConfiguration
    public let trustDomain: String
    /// Verifies clients' chains, remembering those it accepted (shared by every server given it).
    public let peerVerifier: CachingPeerVerifier
    private let certificate: @Sendable () throws -> WorkloadCertificate
    private let inbound: any HBONEInboundHandler
    private let contexts: TLSContextCache
    private let logger: Logger
    private let quiescing = Mutex<ServerQuiescingHelper?>(nil)
    /// This server's listeners and their event loops (the last `listen`'s group: every caller uses one), for
    /// ``shutdown(on:)`` to pause them first.
    private let listening = Mutex<(group: (any EventLoopGroup)?, channels: [any Channel])>((nil, []))
    private let limiter: HBONEConnectionLimiter
    private let onLimit: @Sendable (HBONELimit) -> Void

    /// - Parameters:
    ///   - certificate: the certificate to present, asked for each new connection so rotation
    ///     takes effect without a restart; throwing refuses the connection.
    ///   - limiter: the connection budget, shared by every HBONE server of the process (one per
    ///     captured pod in the node agent); by default this server's own.
    ///   - onLimit: told of every limit hit (see ``HBONEServerLimits``).
    ///   - peerVerifier: the verifier of client chains, for the same `roots` and `trustDomain`;
    ///     by default this server's own. The node agent shares one among its pods' servers.
    public init(
        configuration: HBONEConfiguration = HBONEConfiguration(),
        trustDomain: String,
        roots: [Certificate],
        certificate: @escaping @Sendable () throws -> WorkloadCertificate,
        inbound: any HBONEInboundHandler,
        logger: Logger,
        limiter: HBONEConnectionLimiter? = nil,
        onLimit: @escaping @Sendable (HBONELimit) -> Void = { _ in },
        peerVerifier: CachingPeerVerifier? = nil
    ) {
        self.limiter = limiter ?? HBONEConnectionLimiter(limits: configuration.serverLimits)
        self.onLimit = onLimit
        self.configuration = configuration
        self.trustDomain = trustDomain
        if let peerVerifier {
            precondition(
                peerVerifier.roots == roots && peerVerifier.trustDomain == trustDomain,
                "an HBONE server's peer verifier must trust what the server does"
            )
        }
        self.peerVerifier = peerVerifier ?? CachingPeerVerifier(roots: roots, trustDomain: trustDomain)
        self.certificate = certificate
        self.inbound = inbound
        self.contexts = TLSContextCache(roots: roots)
        self.logger = logger
    }

    /// Listens on `host:port` (port 0 picks a free port). The returned channel's `localAddress`
    /// tells where.
    public func listen(host: String, port: Int, group: any EventLoopGroup) -> EventLoopFuture<any Channel> {
        if case .failure(let error) = MeshTLS.sessionTicketControl { return group.next().makeFailedFuture(error) }
        return bootstrap(group: group).bind(host: host, port: port)
    }

    /// Serves on a listening socket created elsewhere (the node agent opens `<pod IP>:15008`
    /// inside a pod's network namespace and hands the descriptor over). Takes ownership of it.
    public func listen(boundSocket descriptor: CInt, group: any EventLoopGroup) -> EventLoopFuture<any Channel> {
        if case .failure(let error) = MeshTLS.sessionTicketControl {
            close(descriptor)
            return group.next().makeFailedFuture(error)
        }
        return bootstrap(group: group).withBoundSocket(descriptor)
    }

    private func bootstrap(group: any EventLoopGroup) -> ServerBootstrap {
        // One quiescing helper for every listener of this server, so shutdown drains them all.
        let helper = quiescing.withLock { current in
            if let current { return current }
            let made = ServerQuiescingHelper(group: group)
            current = made
            return made
        }
        listening.withLock { $0.group = group }
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                self.listening.withLock { $0.channels.append(channel) }
                channel.closeFuture.whenComplete { _ in
                    self.listening.withLock { state in state.channels.removeAll { $0 === channel } }
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(helper.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.recvAllocator, value: SocketTuning.hboneRecvAllocator)
            .childChannelOption(.maxMessagesPerRead, value: SocketTuning.hboneMessagesPerRead)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try self.configureConnection(channel) }
            }
    }

    /// Stops accepting, sends GOAWAY on every connection and lets open streams finish until
    /// the drain deadline. Completes when every connection has closed.
    ///
    /// The listeners stop reading before they close (``RelaySockets/pauseAccepting(_:group:on:)``): a
    /// connection they accepted is served, and one still queued in the kernel moves to another listener
    /// of the port (an upgraded agent's) instead of failing its TLS handshake.
    public func shutdown(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        guard let helper = quiescing.withLock({ $0 }) else { return eventLoop.makeSucceededVoidFuture() }
        let (group, listeners) = listening.withLock { ($0.group, $0.channels) }
        let paused =
            group.map { RelaySockets.pauseAccepting(listeners, group: $0, on: eventLoop) }
            ?? eventLoop.makeSucceededVoidFuture()
        let promise = eventLoop.makePromise(of: Void.self)
        paused.whenComplete { _ in helper.initiateShutdown(promise: promise) }
        // Drop the helper while its event loops still run: its deinit completes a promise on them.
        return promise.futureResult.always { _ in self.quiescing.withLock { $0 = nil } }
    }

    /// Sets up the pipeline of an accepted connection (for listeners created elsewhere, such as
    /// the node agent's in-pod sockets). Must run on the channel's event loop.
    public func configureConnection(_ channel: any Channel) throws {
        let limits = limiter.limits
        let source = channel.remoteAddress.flatMap(IPEndpoint.init(socketAddress:))?.address
        let admission: HBONEConnectionLimiter.Admission
        switch limiter.admit(source) {
        case .success(let admitted):
            admission = admitted
        case .failure(let refused):
            onLimit(refused.limit)
            logger.debug(
                "HBONE connection refused",
                metadata: ["peer": "\(source.map { "\($0)" } ?? "?")", "limit": "\(refused.limit)"]
            )
            channel.close(promise: nil)
            return
        }
        channel.closeFuture.whenComplete { _ in admission.release() }
        let presented = try certificate()
        let context: NIOSSLContext
        do {
            context = try contexts.serverContext(for: presented)
        } catch {
            logger.error(
                "HBONE connection refused: no TLS context",
                metadata: ["peer": "\(source.map { "\($0)" } ?? "?")", "error": "\(error)"]
            )
            throw error
        }
        let logger = self.logger
        let peer = channel.remoteAddress.map { "\($0)" } ?? "?"
        // The client's identity, from the verification of its chain (no stream exists before it).
        let verified = VerifiedPeer()
        let tls = NIOSSLServerHandler(
            context: context,
            customVerificationCallbackWithMetadata: MeshTLS.verifier(
                peerVerifier,
                onAccept: { verified.accepted($0) },
                onReject: { reason in
                    logger.warning(
                        "HBONE client certificate rejected",
                        metadata: ["peer": "\(peer)", "reason": "\(reason)"]
                    )
                }
            )
        )
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(tls)
        // Closing through this context skips the TLS shutdown: the socket closes at once, and the HTTP/2
        // handler stops before the rest of what it has read.
        let belowTLS = NIOLoopBound(try sync.context(handler: tls), eventLoop: channel.eventLoop)
        try sync.addHandler(BoundedFlushHandler())
        let onLimit = self.onLimit
        try sync.addHandler(
            HBONEHandshakeGuard(
                timeout: limits.handshakeTimeout,
                onTimeout: { onLimit(.handshakeTimeout) },
                onWrongProtocol: { alpn in
                    logger.warning("HBONE peer did not negotiate h2", metadata: ["alpn": "\(alpn ?? "none")"])
                },
                onEnded: { admission.handshakeEnded() }
            )
        )

        var connectionConfiguration = NIOHTTP2Handler.ConnectionConfiguration()
        connectionConfiguration.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: configuration.serverMaxConcurrentStreams),
            HTTP2Setting(parameter: .initialWindowSize, value: configuration.streamWindowSize),
            HTTP2Setting(parameter: .maxFrameSize, value: configuration.maxFrameSize),
            HTTP2Setting(parameter: .maxHeaderListSize, value: HPACKDecoderLimits.maxHeaderListSize),
        ]
        connectionConfiguration.targetWindowSize = configuration.connectionWindowSize
        let streamConfiguration = configuration.streamConfiguration

        let manager = NIOHTTP2ServerConnectionManagementHandler(
            eventLoop: channel.eventLoop,
            configuration: .init(
                maxIdleTime: nil,
                maxAge: nil,
                maxGraceTime: configuration.drainDeadline,
                keepalive: .init(pingInterval: configuration.pingInterval, ackTimeout: configuration.pingTimeout)
            )
        )
        let resets = NIOLoopBound(
            PrematureResetCounter(
                limit: limits.maxPrematureResets,
                window: limits.prematureResetWindow,
                perTurn: limits.maxPrematureResetsPerRead,
                eventLoop: channel.eventLoop
            ),
            eventLoop: channel.eventLoop
        )
        let connection = channel
        let inbound = self.inbound
        let closer = HBONEConnectionCloser(
            idle: limits.idleTimeout,
            afterGoAway: limits.closeAfterGoAway,
            drainDeadline: configuration.drainDeadline,
            onLimit: onLimit
        )
        // Every GOAWAY the server writes passes here on its way to TLS.
        try sync.addHandler(SentGoAwayDetector { closer.goAwaySent() })
        _ = try sync.configureHTTP2Pipeline(
            mode: .server,
            connectionConfiguration: connectionConfiguration,
            streamConfiguration: streamConfiguration,
            streamDelegate: StreamCounter(
                next: manager.http2StreamDelegate,
                closer: NIOLoopBound(closer, eventLoop: channel.eventLoop),
                resets: resets,
                onTooManyResets: { last in
                    onLimit(.prematureResets)
                    logger.warning(
                        "HBONE connection closed: too many streams reset before their CONNECT was answered",
                        metadata: ["peer": "\(source.map { "\($0)" } ?? "?")", "lastStream": "\(Int(last))"]
                    )
                    // A peer that does not read would never get the GOAWAY (NIO would hold it back, and go on
                    // opening streams): closed at once.
                    guard connection.isWritable else {
                        belowTLS.value.close(promise: nil)
                        return
                    }
                    // The GOAWAY names the highest stream opened so far, and from here the HTTP/2 handler
                    // ignores HEADERS that would open a stream: the rest of what it has read (a rapid-reset
                    // burst is hundreds of streams in one read) costs no stream channels. The connection
                    // closes once the GOAWAY is out (a close at once would discard it, still buffered in this
                    // read's turn), and at the latest a second later.
                    let goAway = HTTP2Frame(
                        streamID: .rootStream,
                        payload: .goAway(
                            lastStreamID: resets.value.highestStream,
                            errorCode: .enhanceYourCalm,
                            opaqueData: nil
                        )
                    )
                    connection.writeAndFlush(goAway).whenComplete { _ in connection.close(promise: nil) }
                    connection.eventLoop.scheduleTask(in: .seconds(1)) { belowTLS.value.close(promise: nil) }
                }
            )
        ) { stream in
            resets.value.opened(stream)
            return stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(
                    HBONEServerStreamHandler(
                        peerIdentity: { try verified.identity() },
                        inbound: inbound,
                        onResult: { status, reason in
                            resets.value.answered(stream)
                            if status != 200 {
                                logger.info(
                                    "HBONE CONNECT refused",
                                    metadata: ["status": "\(status)", "reason": "\(reason)"]
                                )
                            }
                        }
                    )
                )
            }.flatMap {
                stream.setOption(ChannelOptions.autoRead, value: false)
            }
        }
        try sync.addHandler(manager)
        try sync.addHandler(closer)
    }
}

enum HPACKDecoderLimits {
    /// Header lists beyond this are refused; CONNECT requests are tiny.
    static let maxHeaderListSize = 16 << 10
}

/// The identity a connection's peer was verified as, set by the TLS verification callback.
final class VerifiedPeer: Sendable {
    private let verified = Mutex<SpiffeID?>(nil)

    func accepted(_ identity: SpiffeID) {
        verified.withLock { $0 = identity }
    }

    func identity() throws -> SpiffeID {
        guard let identity = verified.withLock({ $0 }) else {
            throw HBONEError(.noCertificate, "the peer presented no verified certificate")
        }
        return identity
    }
}
