public import AmbitIdentity
public import AmbitRelay
public import Logging
public import NIOCore
import Synchronization
public import X509

/// Opens HBONE tunnels: pooled mutual-TLS HTTP/2 connections keyed as in docs/protocols.md, one
/// CONNECT stream per proxied TCP connection, a new connection at 100 concurrent streams (or
/// the server's limit), idle connections released after `idleTimeout`.
///
/// Each event loop has its own pool, used for downstream sockets on that loop, so relays never
/// cross threads.
public final class HBONEClient: Sendable {
    public let configuration: HBONEConfiguration
    /// Verifies servers' chains, remembering those it accepted (shared by the per-loop pools).
    public let peerVerifier: CachingPeerVerifier
    private let dialer: any Dialer
    private let logger: Logger
    private let contexts: TLSContextCache
    private let pools = Mutex<[ObjectIdentifier: NIOLoopBound<HBONEConnectionPool>]>([:])

    public init(
        configuration: HBONEConfiguration = HBONEConfiguration(),
        trustDomain: String,
        roots: [Certificate],
        dialer: (any Dialer)? = nil,
        logger: Logger
    ) {
        self.configuration = configuration
        self.peerVerifier = CachingPeerVerifier(roots: roots, trustDomain: trustDomain)
        self.dialer = dialer ?? DirectDialer(connectTimeout: configuration.connectTimeout)
        self.logger = logger
        self.contexts = TLSContextCache(roots: roots)
    }

    /// Carries `downstream` to `request.authority` through HBONE. `downstream` must have
    /// `autoRead` off and remote half-closure allowed; the relay turns reading on. On failure the
    /// downstream is left as it is: its owner decides how it ends (a proxy resets it, so the
    /// application sees a refused connection rather than an empty reply).
    public func tunnel(downstream: any Channel, request: HBONETunnelRequest) -> HBONETunnel {
        let eventLoop = downstream.eventLoop
        let established = eventLoop.makePromise(of: Void.self)
        let finished = eventLoop.makePromise(of: RelaySummary.self)
        if eventLoop.inEventLoop {
            pool(for: eventLoop).value.tunnel(downstream, request, established: established, finished: finished)
        } else {
            eventLoop.execute {
                self.pool(for: eventLoop).value.tunnel(
                    downstream,
                    request,
                    established: established,
                    finished: finished
                )
            }
        }
        return HBONETunnel(established: established.futureResult, finished: finished.futureResult)
    }

    /// Opens one CONNECT stream to `request.authority` on a pooled connection of `eventLoop` and,
    /// once the server answered 200, returns the stream channel for the caller's own handlers:
    /// it reads and writes `ByteBuffer`, delivers the server's END_STREAM as
    /// `ChannelEvent.inputClosed`, and `close(mode: .output)` sends END_STREAM. A waypoint uses it
    /// to speak HTTP to the endpoint inside the tunnel.
    public func openStream(_ request: HBONETunnelRequest, on eventLoop: any EventLoop) -> EventLoopFuture<any Channel> {
        if eventLoop.inEventLoop {
            return pool(for: eventLoop).value.openStream(request)
        }
        return eventLoop.flatSubmit { self.pool(for: eventLoop).value.openStream(request) }
    }

    /// Stops opening connections, closes idle ones and waits for busy ones to drain (up to the
    /// drain deadline, after which they are closed).
    public func shutdown() async {
        let all = pools.withLock { Array($0.values) }
        let deadline = configuration.drainDeadline
        for bound in all {
            let eventLoop = bound.eventLoop
            let drained = eventLoop.flatSubmit { bound.value.shutdown() }
            let timer = eventLoop.scheduleTask(in: deadline) {}
            let closing = eventLoop.any(drained, timer.futureResult)
            _ = try? await closing.get()
            timer.cancel()
        }
    }

    /// Open connections and streams per pool key, summed over event loops.
    public func status() async -> [HBONEPoolKey: (connections: Int, streams: Int)] {
        let all = pools.withLock { Array($0.values) }
        var total: [HBONEPoolKey: (connections: Int, streams: Int)] = [:]
        for bound in all {
            let counts = try? await bound.eventLoop.submit { bound.value.connectionCounts() }.get()
            for (key, value) in counts ?? [:] {
                let current = total[key] ?? (0, 0)
                total[key] = (current.connections + value.connections, current.streams + value.streams)
            }
        }
        return total
    }

    private func pool(for eventLoop: any EventLoop) -> NIOLoopBound<HBONEConnectionPool> {
        pools.withLock { pools in
            if let existing = pools[ObjectIdentifier(eventLoop)] { return existing }
            let pool = NIOLoopBound(
                HBONEConnectionPool(
                    eventLoop: eventLoop,
                    configuration: configuration,
                    peerVerifier: peerVerifier,
                    contexts: contexts,
                    dialer: dialer,
                    logger: logger
                ),
                eventLoop: eventLoop
            )
            pools[ObjectIdentifier(eventLoop)] = pool
            return pool
        }
    }
}

extension EventLoop {
    /// Succeeds with the first of two futures to complete.
    fileprivate func any(_ first: EventLoopFuture<Void>, _ second: EventLoopFuture<Void>) -> EventLoopFuture<Void> {
        let promise = makePromise(of: Void.self)
        first.whenComplete { promise.completeWith($0) }
        second.whenComplete { promise.completeWith($0) }
        return promise.futureResult
    }
}
