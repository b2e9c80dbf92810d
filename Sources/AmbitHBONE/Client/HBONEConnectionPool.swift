import AmbitIdentity
import AmbitModel
import AmbitRelay
import Logging
import NIOCore
import NIOHTTP2
import NIOSSL
import Synchronization
import X509

/// The HBONE connections of one event loop. Downstream sockets are served by the pool of their
/// own event loop, so a relay never crosses threads. All methods run on `eventLoop`.
final class HBONEConnectionPool {
    typealias Machine = HBONEPoolStateMachine

    private struct Pending {
        let request: HBONETunnelRequest
        /// The socket to relay; `nil` when the caller takes the stream channel itself.
        let downstream: (any Channel)?
        let promise: EventLoopPromise<any Channel>
        /// With a downstream: completed when the relay has ended (failed when it never started).
        let finished: EventLoopPromise<RelaySummary>?
        /// Sent again once already, after the server refused it unprocessed.
        var resent = false

        func fail(_ error: any Error) {
            promise.fail(error)
            finished?.fail(error)
        }
    }

    private struct Live {
        let channel: any Channel
        var multiplexer: NIOHTTP2Handler.StreamMultiplexer?
    }

    let eventLoop: any EventLoop
    private let configuration: HBONEConfiguration
    private let peerVerifier: CachingPeerVerifier
    private let contexts: TLSContextCache
    private let dialer: any Dialer
    private let logger: Logger
    private var machine: Machine
    private var nextRequest = 0
    private var pending: [Machine.RequestID: Pending] = [:]
    private var live: [Machine.ConnectionID: Live] = [:]
    private var shutdownPromise: EventLoopPromise<Void>?

    init(
        eventLoop: any EventLoop,
        configuration: HBONEConfiguration,
        peerVerifier: CachingPeerVerifier,
        contexts: TLSContextCache,
        dialer: any Dialer,
        logger: Logger
    ) {
        self.eventLoop = eventLoop
        self.configuration = configuration
        self.peerVerifier = peerVerifier
        self.contexts = contexts
        self.dialer = dialer
        self.logger = logger
        self.machine = Machine(
            clientMaxStreams: configuration.clientMaxStreamsPerConnection,
            idleTimeout: configuration.idleTimeout
        )
    }

    /// Carries `downstream` (a socket with `autoRead` off) to `request.authority` (see
    /// ``HBONEClient/tunnel(downstream:request:)``).
    func tunnel(
        _ downstream: any Channel,
        _ request: HBONETunnelRequest,
        established: EventLoopPromise<Void>,
        finished: EventLoopPromise<RelaySummary>
    ) {
        open(request, downstream: downstream, finished: finished).map { _ in }.cascade(to: established)
    }

    /// Opens a stream to `request.authority` and hands over the stream channel once the server
    /// answered 200 (see ``HBONEClient/openStream(_:on:)``).
    func openStream(_ request: HBONETunnelRequest) -> EventLoopFuture<any Channel> {
        open(request, downstream: nil, finished: nil)
    }

    private func open(
        _ request: HBONETunnelRequest,
        downstream: (any Channel)?,
        finished: EventLoopPromise<RelaySummary>?
    ) -> EventLoopFuture<any Channel> {
        eventLoop.preconditionInEventLoop()
        let id = Machine.RequestID(value: nextRequest)
        nextRequest += 1
        let promise = eventLoop.makePromise(of: (any Channel).self)
        pending[id] = Pending(request: request, downstream: downstream, promise: promise, finished: finished)
        run(machine.lease(id, key: request.poolKey))
        return promise.futureResult
    }

    func shutdown() -> EventLoopFuture<Void> {
        eventLoop.preconditionInEventLoop()
        let promise = shutdownPromise ?? eventLoop.makePromise(of: Void.self)
        shutdownPromise = promise
        run(machine.shutdown())
        if machine.connections.isEmpty { promise.succeed(()) }
        return promise.futureResult
    }

    /// Connections per key, for status pages and tests.
    func connectionCounts() -> [HBONEPoolKey: (connections: Int, streams: Int)] {
        var counts: [HBONEPoolKey: (connections: Int, streams: Int)] = [:]
        for connection in machine.connections.values {
            let current = counts[connection.key] ?? (0, 0)
            counts[connection.key] = (current.connections + 1, current.streams + connection.activeStreams)
        }
        return counts
    }

    // MARK: Performing the state machine's actions.

    private func run(_ actions: [Machine.Action]) {
        for action in actions {
            logger.trace("HBONE pool action", metadata: ["action": "\(action)"])
            switch action {
            case .startConnection(let id, let key):
                startConnection(id, key: key)
            case .useConnection(let request, let connection):
                openStream(request, on: connection)
            case .failRequest(let request, let error):
                fail(request, error)
            case .closeConnection(let id):
                live[id]?.channel.close(promise: nil)
            case .scheduleIdleCheck(let id, let deadline):
                eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
                    run(machine.idleCheck(id, now: .now()))
                }
            case .shutdownComplete:
                shutdownPromise?.succeed(())
            }
        }
    }

    private func fail(_ request: Machine.RequestID, _ error: HBONEError) {
        guard let entry = pending.removeValue(forKey: request) else { return }
        logger.debug("HBONE tunnel failed", metadata: ["authority": "\(entry.request.authority)", "error": "\(error)"])
        entry.fail(error)
    }

    private func startConnection(_ id: Machine.ConnectionID, key: HBONEPoolKey) {
        // The certificate of the request that caused the connection is presented for all its
        // streams: they share the key, hence the identity.
        guard let first = machine.connection(id)?.waiters.first,
            let certificate = pending[first]?.request.sourceCertificate
        else {
            run(machine.connectionFailed(id, error: HBONEError(.connectFailed, "no request waits for the connection")))
            return
        }
        let rejection = ReasonBox()
        let timeout = eventLoop.assumeIsolated().scheduleTask(in: configuration.connectTimeout) { [self] in
            if let channel = live[id]?.channel { channel.close(promise: nil) }
            let error = HBONEError(
                .connectTimeout,
                "HBONE connection to \(key.nextHop) timed out after \(configuration.connectTimeout) — is a NetworkPolicy blocking port 15008?"
            )
            run(machine.connectionFailed(id, error: error))
        }
        dialer.connect(to: key.nextHop, from: key.sourceAddress, on: eventLoop, prepare: nil).hop(to: eventLoop)
            .assumeIsolated().whenComplete { [self] result in
                switch result {
                case .failure(let error):
                    timeout.cancel()
                    run(
                        machine.connectionFailed(
                            id,
                            error: HBONEError(.connectFailed, "cannot connect to \(key.nextHop): \(error)")
                        )
                    )
                case .success(let channel):
                    guard machine.connection(id) != nil else {
                        channel.close(promise: nil)  // timed out meanwhile
                        return
                    }
                    live[id] = Live(channel: channel)
                    channel.closeFuture.assumeIsolated().whenComplete { [self] _ in
                        timeout.cancel()
                        live.removeValue(forKey: id)
                        if machine.connection(id)?.state == .connecting {
                            let reason = rejection.value ?? "the connection closed during the handshake"
                            run(
                                machine.connectionFailed(
                                    id,
                                    error: HBONEError(
                                        .handshakeFailed,
                                        "HBONE handshake with \(key.nextHop) failed: \(reason)"
                                    )
                                )
                            )
                        } else {
                            run(machine.connectionClosed(id))
                        }
                    }
                    do {
                        try configure(
                            channel,
                            id: id,
                            key: key,
                            certificate: certificate,
                            timeout: timeout,
                            rejection: rejection
                        )
                    } catch {
                        rejection.set("\(error)")
                        channel.close(promise: nil)
                    }
                }
            }
    }

    private func configure(
        _ channel: any Channel,
        id: Machine.ConnectionID,
        key: HBONEPoolKey,
        certificate: WorkloadCertificate,
        timeout: Scheduled<Void>,
        rejection: ReasonBox
    ) throws {
        try SocketTuning.tuneHBONEConnection(channel)
        // The peer's end of input ends the connection (a crashed agent's kernel sends FIN without GOAWAY):
        // closed at once, never kept half-open in the pool (CLOSE-WAIT) and handed out to the next tunnel.
        try channel.syncOptions?.setOption(.allowRemoteHalfClosure, value: false)
        let sync = channel.pipeline.syncOperations
        let tls = try NIOSSLClientHandler(
            context: contexts.clientContext(for: certificate),
            serverHostname: nil,
            customVerificationCallbackWithMetadata: MeshTLS.verifier(
                peerVerifier,
                expected: Set(key.destinationIdentities),
                onReject: { reason in rejection.set(reason) }
            )
        )
        try sync.addHandler(tls)
        try sync.addHandler(BoundedFlushHandler())
        try sync.addHandler(
            ClientALPNCheck { negotiated in
                rejection.set("the server did not negotiate ALPN h2 (got \(negotiated ?? "none"))")
            }
        )
        var connectionConfiguration = NIOHTTP2Handler.ConnectionConfiguration()
        connectionConfiguration.initialSettings = [
            HTTP2Setting(parameter: .enablePush, value: 0),
            HTTP2Setting(parameter: .initialWindowSize, value: configuration.streamWindowSize),
            HTTP2Setting(parameter: .maxFrameSize, value: configuration.maxFrameSize),
        ]
        connectionConfiguration.targetWindowSize = configuration.connectionWindowSize
        let streamConfiguration = configuration.streamConfiguration
        let multiplexer = try sync.configureHTTP2Pipeline(
            mode: .client,
            connectionConfiguration: connectionConfiguration,
            streamConfiguration: streamConfiguration
        ) { stream in
            // Servers do not open streams towards HBONE clients.
            stream.close()
        }
        live[id]?.multiplexer = multiplexer
        try sync.addHandler(HBONEKeepalive(interval: configuration.pingInterval, timeout: configuration.pingTimeout))
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        try sync.addHandler(
            HBONEConnectionObserver { event in
                let pool = loopBound.value
                switch event {
                case .ready(let maxStreams):
                    timeout.cancel()
                    pool.run(pool.machine.connectionReady(id, serverMaxStreams: maxStreams, now: .now()))
                case .maxStreamsChanged(let value):
                    pool.machine.serverMaxStreamsChanged(id, to: value)
                case .goAway:
                    pool.run(pool.machine.goAwayReceived(id))
                case .error(let error):
                    rejection.set("\(error)")
                }
            }
        )
        channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in channel.close(promise: nil) }
    }

    private func openStream(_ request: Machine.RequestID, on connection: Machine.ConnectionID) {
        guard let entry = pending[request] else {
            run(machine.streamFailed(on: connection, now: .now()))
            return
        }
        guard let multiplexer = live[connection]?.multiplexer else {
            pending.removeValue(forKey: request)
            run(machine.streamFailed(on: connection, now: .now()))
            entry.fail(HBONEError(.connectionClosed, "the HBONE connection to \(entry.request.nextHop) is gone"))
            return
        }
        let established = eventLoop.makePromise(of: (any Channel).self)
        let responseTimeout = configuration.responseTimeout
        let streamPromise = eventLoop.makePromise(of: (any Channel).self)
        multiplexer.createStreamChannel(promise: streamPromise) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(
                    HBONEClientStreamHandler(
                        request: entry.request,
                        downstream: entry.downstream.map { ($0, entry.finished) },
                        responseTimeout: responseTimeout,
                        established: established
                    )
                )
            }
        }
        streamPromise.futureResult.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let stream):
                stream.closeFuture.assumeIsolated().whenComplete { [self] _ in
                    run(machine.streamClosed(on: connection, now: .now()))
                }
            case .failure(let error):
                established.fail(
                    HBONEError(.connectionClosed, "cannot open a stream to \(entry.request.nextHop): \(error)")
                )
                run(machine.streamFailed(on: connection, now: .now()))
            }
        }
        established.futureResult.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let stream):
                pending.removeValue(forKey: request)
                entry.promise.succeed(stream)
            case .failure(let error as HBONEError) where error.code == .streamRefused && !entry.resent:
                // The server never saw it (it is going away, or refused the stream): once more, on a connection
                // that is not going away. The downstream has not been read yet, so nothing is lost.
                pending[request]?.resent = true
                run(machine.goAwayReceived(connection))
                run(machine.lease(request, key: entry.request.poolKey))
            case .failure(let error):
                pending.removeValue(forKey: request)
                entry.fail(error)
            }
        }
    }
}

/// The first reason a connection attempt failed, written from TLS callbacks on any thread.
final class ReasonBox: Sendable {
    private let storage = Mutex<String?>(nil)

    func set(_ reason: String) {
        storage.withLock { if $0 == nil { $0 = reason } }
    }

    var value: String? { storage.withLock { $0 } }
}
