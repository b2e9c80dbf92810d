import AmbitHBONE
import AmbitIdentity
import AmbitModel
import AmbitRelay
import AmbitTelemetry
import AmbitTestSupport
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import X509

/// An inbound handler for loopback tests: a fixed set of local destinations, a policy, and a
/// record of every request and finished tunnel.
final class TestInbound: HBONEInboundHandler {
    let destinations: Set<IPEndpoint>
    let allow: @Sendable (HBONEInboundRequest) -> Bool
    /// CONNECTs to this authority stay unanswered until ``releaseHeld()`` (an upstream that never answers).
    let held: IPEndpoint?
    private let state = Mutex<(requests: [HBONEInboundRequest], summaries: [RelaySummary])>(([], []))
    private let heldPromises = Mutex<[EventLoopPromise<HBONEInboundResult>]>([])

    init(
        destinations: Set<IPEndpoint>,
        allow: @escaping @Sendable (HBONEInboundRequest) -> Bool = { _ in true },
        held: IPEndpoint? = nil
    ) {
        self.destinations = destinations
        self.allow = allow
        self.held = held
    }

    /// Answers every held CONNECT (503), so no promise is left behind.
    func releaseHeld() {
        let held = heldPromises.withLock { promises in
            let all = promises
            promises = []
            return all
        }
        for promise in held {
            promise.succeed(.unavailable("released"))
        }
    }

    var requests: [HBONEInboundRequest] { state.withLock { $0.requests } }
    var summaries: [RelaySummary] { state.withLock { $0.summaries } }

    func open(_ request: HBONEInboundRequest, on eventLoop: any EventLoop) -> EventLoopFuture<HBONEInboundResult> {
        state.withLock { $0.requests.append(request) }
        if request.authority == held {
            let promise = eventLoop.makePromise(of: HBONEInboundResult.self)
            heldPromises.withLock { $0.append(promise) }
            return promise.futureResult
        }
        guard destinations.contains(request.authority) else {
            return eventLoop.makeSucceededFuture(.badRequest("\(request.authority) is not a local destination"))
        }
        guard allow(request) else {
            return eventLoop.makeSucceededFuture(.denied("denied by test policy"))
        }
        let finished = eventLoop.makePromise(of: RelaySummary.self)
        finished.futureResult.whenSuccess { summary in self.state.withLock { $0.summaries.append(summary) } }
        return UpstreamConnector.connect(to: request.authority, on: eventLoop)
            .map { HBONEInboundResult.connected($0, finished: finished) }
            .recover { error in
                finished.fail(error)
                return HBONEInboundResult.unavailable("\(error)")
            }
    }
}

/// Everything a loopback HBONE test needs: a CA, certificates valid now, an HBONE server with a
/// ``TestInbound``, a client and forwarders. The client side runs on one event loop, so all its
/// tunnels share one pool.
final class HBONEWorld: Sendable {
    let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let serverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let pki: TestPKI
    let serverCertificate: WorkloadCertificate
    let clientCertificate: WorkloadCertificate
    let inbound: TestInbound
    let server: HBONEServer
    let serverChannel: any Channel
    let client: HBONEClient
    let logger: Logger
    /// Log lines at warning and above (when AMBIT_TEST_LOG is not set).
    let logs: LogSink
    private let forwarders = Mutex<[any Channel]>([])
    let results = Mutex<[Result<Void, any Error>]>([])
    /// The server's connection budget, and every limit it reported hit.
    let limiter: HBONEConnectionLimiter
    let limitHits = LimitRecorder()

    var serverEndpoint: IPEndpoint { IPEndpoint(.v4(0x7F00_0001), UInt16(serverChannel.localAddress!.port!)) }

    init(
        destinations: Set<IPEndpoint>,
        allow: @escaping @Sendable (HBONEInboundRequest) -> Bool = { _ in true },
        serverIdentity: SpiffeID = .test("demo", "server"),
        extraRoots: [Certificate] = [],
        configuration: HBONEConfiguration = HBONEConfiguration(),
        held: IPEndpoint? = nil
    ) async throws {
        // Warnings are kept for assertions; AMBIT_TEST_LOG=trace (or debug, ...) prints everything.
        let sink = LogSink()
        self.logs = sink
        var logger: Logger
        if let level = ProcessInfo.processInfo.environment["AMBIT_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) {
            logger = Logger(label: "hbone-test") { StreamLogHandler.standardError(label: $0) }
            logger.logLevel = level
        } else {
            logger = Logger(label: "hbone-test") { JSONLogHandler(label: $0, level: .warning, sink: sink) }
        }
        self.logger = logger
        let now = Date()
        pki = try TestPKI(now: now - 3600)
        serverCertificate = try pki.issue(serverIdentity, now: now - 60)
        clientCertificate = try pki.issue(.test("demo", "client"), now: now - 60)
        inbound = TestInbound(destinations: destinations, allow: allow, held: held)
        limiter = HBONEConnectionLimiter(limits: configuration.serverLimits)
        let limitHits = self.limitHits
        let serverCertificate = self.serverCertificate
        server = HBONEServer(
            configuration: configuration,
            trustDomain: "cluster.local",
            roots: [pki.authority.root] + extraRoots,
            certificate: { serverCertificate },
            inbound: inbound,
            logger: logger,
            limiter: limiter,
            onLimit: { limitHits.record($0) }
        )
        serverChannel = try await server.listen(host: "127.0.0.1", port: 0, group: serverGroup).get()
        client = HBONEClient(
            configuration: configuration,
            trustDomain: "cluster.local",
            roots: [pki.authority.root],
            logger: logger
        )
    }

    /// A forwarder listening on 127.0.0.1 that tunnels to `authority` through `nextHop` (by default this
    /// world's server), returning its port. It is closed by ``shutdown()``.
    func forwarder(
        to authority: IPEndpoint,
        via nextHop: IPEndpoint? = nil,
        expecting identities: Set<SpiffeID> = [.test("demo", "server")],
        certificate: WorkloadCertificate? = nil
    )
        async throws -> Int
    {
        let request = HBONETunnelRequest(
            sourceCertificate: certificate ?? clientCertificate,
            destinationIdentities: identities,
            nextHop: nextHop ?? serverEndpoint,
            authority: authority,
            sourceAddress: nil,
            headers: HBONEHeaders(baggage: "k8s.namespace.name=demo")
        )
        let channel = try await HBONEForwarder.listen(
            host: "127.0.0.1",
            port: 0,
            group: clientGroup,
            client: client,
            request: { channel in
                var request = request
                request.headers.forwardedFor = channel.remoteAddress.flatMap(IPEndpoint.init(socketAddress:))
                return request
            },
            onResult: { [weak self] result in self?.results.withLock { $0.append(result) } }
        ).get()
        forwarders.withLock { $0.append(channel) }
        return channel.localAddress!.port!
    }

    /// Errors of failed tunnels so far.
    var tunnelErrors: [HBONEError] {
        results.withLock { results in
            results.compactMap { result in
                if case .failure(let error) = result { return error as? HBONEError }
                return nil
            }
        }
    }

    func shutdown() async {
        inbound.releaseHeld()
        for channel in forwarders.withLock({ $0 }) { try? await channel.close() }
        await client.shutdown()
        try? await server.shutdown(on: serverGroup.next()).get()
        try? await clientGroup.shutdownGracefully()
        try? await serverGroup.shutdownGracefully()
    }
}

/// The limits an HBONE server reported hit, in order.
final class LimitRecorder: Sendable {
    private let hits = Mutex<[HBONELimit]>([])

    func record(_ limit: HBONELimit) { hits.withLock { $0.append(limit) } }
    var all: [HBONELimit] { hits.withLock { $0 } }
}
