public import AmbitCA
public import AmbitConfig
public import AmbitHBONE
public import AmbitIdentity
public import AmbitModel
public import AmbitProcess
public import AmbitRelay
public import AmbitTelemetry
import FoundationEssentials
public import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import X509

/// How `ambit-waypoint` runs: where its configuration and CA are, what it listens on.
public struct WaypointProcessOptions: Sendable {
    public var gateway: ObjectKey
    public var serviceAccount: String
    /// Where the configuration comes from (a manifest directory, the Kubernetes API).
    public var config: ConfigSourceSelection
    /// Where the waypoint's certificate comes from: a CA service or a local CA directory.
    public var certificates: CertificateSourceSelection
    public var listenHost = "0.0.0.0"
    public var hbonePort = Int(MeshPorts.hbone)
    /// Metrics, readiness and admin ports.
    public var ports = OperationalEndpoints.Ports()
    public var drainDeadline: Duration = .seconds(5)
    /// What the HBONE listener admits and for how long.
    public var hboneLimits = HBONEServerLimits()
    /// The cluster's name in telemetry.
    public var clusterID = ConfigOptions.defaultClusterID
    public var eventLoopThreads = System.coreCount
    /// Set to run as one pod's sidecar (`ambit-sidecar`) instead of a waypoint: `gateway` then
    /// names the pod (its namespace gives the identity's namespace) and nothing else is a Gateway.
    public var sidecar: SidecarCapture?
    /// Istio's MeshConfig (its `extensionProviders` are the authorizers CUSTOM policies call).
    public var meshConfig = MeshConfig()

    public init(
        gateway: ObjectKey,
        serviceAccount: String,
        config: ConfigSourceSelection,
        certificates: CertificateSourceSelection
    ) {
        self.gateway = gateway
        self.serviceAccount = serviceAccount
        self.config = config
        self.certificates = certificates
    }
}

/// The `ambit-waypoint` process: configuration from a manifest directory or the Kubernetes API, a certificate for its
/// service account from the local CA, the HBONE listener, and the operational ports.
public final class WaypointProcess: Sendable {
    let options: WaypointProcessOptions
    let logger: Logger
    let store: ConfigStore
    let source: any ConfigSource
    let certificates: CertificateManager
    let cache = CertificateCache()
    let metrics = MeshMetrics()
    let group: MultiThreadedEventLoopGroup
    let waypoint: Waypoint
    let server: HBONEServer
    private let channels = Mutex<[any Channel]>([])
    private let ready = Atomic<Bool>(false)

    public init(options: WaypointProcessOptions, logger: Logger) throws {
        self.options = options
        self.logger = logger
        group = MultiThreadedEventLoopGroup(numberOfThreads: options.eventLoopThreads)
        let (signer, trustDomain) = try options.certificates.makeSigner(group: group)
        let identity = try SpiffeID(
            trustDomain: trustDomain,
            namespace: options.gateway.namespace,
            serviceAccount: options.serviceAccount
        )
        store = ConfigStore(options: ConfigOptions(trustDomain: trustDomain, clusterID: options.clusterID))
        let certificates = CertificateManager(
            signer: signer,
            metrics: CertificateMetrics(registry: metrics.registry),
            logger: logger
        )
        self.certificates = certificates
        source = try options.config.makeSource(
            store: store,
            group: group,
            userAgent: "ambit-waypoint/\(options.gateway.namespacedName)",
            logger: logger
        )
        // A sidecar's own connections are marked, or its pod's capture would take them again.
        let client = HBONEClient(
            trustDomain: trustDomain,
            roots: signer.trustAnchors,
            dialer: DirectDialer(mark: options.sidecar?.mark),
            logger: logger
        )
        let cache = self.cache
        var proxyOptions = WaypointOptions(gateway: options.gateway, identity: identity)
        proxyOptions.sidecarPod = options.sidecar?.pod
        proxyOptions.meshConfig = options.meshConfig
        waypoint = Waypoint(
            options: proxyOptions,
            store: store,
            client: client,
            metrics: metrics,
            certificate: {
                if let current = cache.current(identity) { return current }
                let fresh = try await certificates.certificate(for: identity)
                cache.store(fresh)
                return fresh
            },
            logger: logger,
            group: group
        )
        var configuration = HBONEConfiguration()
        configuration.drainDeadline = .init(options.drainDeadline)
        configuration.serverLimits = options.hboneLimits
        metrics.declareLimits(HBONELimit.allCases.map(\.rawValue))
        server = HBONEServer(
            configuration: configuration,
            trustDomain: trustDomain,
            roots: signer.trustAnchors,
            certificate: {
                guard let current = cache.current(identity) else {
                    throw WaypointProcessError.noCertificate(identity)
                }
                return current
            },
            inbound: waypoint.inbound,
            logger: logger,
            onLimit: { [metrics] in metrics.limitHit($0.rawValue) }
        )
    }

    /// Runs until SIGTERM/SIGINT, then drains.
    public func run() async throws {
        OpenFileLimit.raiseToHardLimit(logger: logger)
        logger.info("loading configuration", metadata: ["source": "\(options.config)"])
        try await source.start()
        let identity = waypoint.options.identity
        cache.store(try await certificates.certificate(for: identity))
        let certificateTask = Task {
            // Renewals replace the cached certificate; new connections present the new one.
            while !Task.isCancelled {
                await certificates.renewDue()
                if let current = await certificates.currentCertificate(for: identity) { cache.store(current) }
                try? await Task.sleep(for: .seconds(1))
            }
        }
        let sourceTask = Task { try await source.run() }
        let trimTask = Task { [logger] in await HeapTrimmer.run(logger: logger) }
        let listener = try await server.listen(host: options.listenHost, port: options.hbonePort, group: group).get()
        if let sidecar = options.sidecar {
            try sidecar.install()
            let outbound = try await outboundListener(sidecar)
            channels.withLock { $0.append(outbound) }
        }
        let endpoints = try await OperationalEndpoints.start(
            options.sidecar == nil ? "ambit-waypoint" : "ambit-sidecar",
            ports: options.ports,
            group: group,
            metrics: metrics,
            logger: logger,
            readiness: { self.ready.load(ordering: .relaxed) ? nil : "starting or draining" },
            configDump: { [waypoint, source] in waypoint.configDump(adding: ["configSource": source.statusDump()]) },
            configProblems: { [source] in source.problems },
            readinessNotes: { [certificates] in await certificates.problems() }
        )
        channels.withLock { $0.insert(listener, at: 0) }
        // SIGTERM drains from before the waypoint says it is ready (a signal right after would end it otherwise).
        let termination = ProcessSignals.termination()
        ready.store(true, ordering: .relaxed)
        logger.info(
            options.sidecar == nil ? "ambit-waypoint started" : "ambit-sidecar started",
            metadata: [
                "proxy":
                    "\(options.sidecar.map { "sidecar of pod \($0.pod.namespacedName)" } ?? "waypoint \(options.gateway.namespacedName)")",
                "identity": "\(identity)", "hbone": "\(options.listenHost):\(options.hbonePort)",
            ]
        )
        await termination.wait()
        ready.store(false, ordering: .relaxed)
        logger.info("draining", metadata: ["deadline": "\(options.drainDeadline)"])
        // The shutdown stops the listener reading, lets the sockets it accepted reach their pipelines, then
        // closes it (closing it first would end those sockets with a bare FIN).
        try? await server.shutdown(on: group.next()).get()
        waypoint.closeIdleUpstreams()
        await waypoint.client.shutdown()
        sourceTask.cancel()
        certificateTask.cancel()
        await certificates.close()
        trimTask.cancel()
        store.finish()
        for channel in channels.withLock({ $0 }) { try? await channel.close() }
        await endpoints.close()
        try? await group.shutdownGracefully()
        options.sidecar?.remove()
        logger.info(options.sidecar == nil ? "ambit-waypoint stopped" : "ambit-sidecar stopped; capture removed")
    }

    /// The sidecar's listener for its pod's captured outbound connections.
    private func outboundListener(_ sidecar: SidecarCapture) async throws -> any Channel {
        let fd = try sidecar.outboundListener()
        let waypoint = self.waypoint
        let passthrough = DirectDialer(mark: sidecar.mark)
        let logger = self.logger
        return try await ServerBootstrap(group: group)
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                sidecar.originalDestination(channel).whenComplete { result in
                    switch result {
                    case .success(let destination):
                        waypoint.acceptOutbound(channel, destination: destination, passthrough: passthrough)
                    case .failure(let error):
                        logger.warning("outbound connection dropped", metadata: ["error": "\(error)"])
                        channel.close(promise: nil)
                    }
                }
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            .withBoundSocket(fd).get()
    }
}

enum WaypointProcessError: Error, CustomStringConvertible {
    case noCertificate(SpiffeID)

    var description: String {
        switch self {
        case .noCertificate(let identity): return "no valid certificate for \(identity) yet"
        }
    }
}
