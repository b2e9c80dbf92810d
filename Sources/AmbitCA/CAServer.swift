public import AmbitConfig
public import AmbitIdentity
public import AmbitModel
public import AmbitProcess
import AmbitTelemetry
import FoundationEssentials
import GRPCCore
import GRPCNIOTransportHTTP2Posix
public import Logging
import NIOPosix
import Synchronization
import X509

/// How `ambit-ca` runs: where its CA is, whom it trusts and where it listens.
public struct CAServerOptions: Sendable {
    /// Istio's plugged-in CA layout (`cacerts`: ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem) or
    /// its self-signed `istio-ca-secret` (ca-cert.pem, ca-key.pem); ECDSA or RSA keys.
    public var caDirectory: String
    public var trustDomain: String = SpiffeID.defaultTrustDomain
    public var config: ConfigSourceSelection
    public var authentication: Authentication
    /// Token audiences accepted (one must match): Istio's `istio-ca` and Ambit's `ambit-ca`.
    public var audiences: [String] = ["ambit-ca", "istio-ca"]
    /// `namespace/serviceaccount` of the node agents, which may impersonate the pods of their node.
    public var nodeAccounts: Set<String> = ["ambit-system/ambit-node"]
    public var listenHost = "0.0.0.0"
    public var port = 15012
    /// DNS names and IP addresses of the serving certificate (what clients dial and verify).
    public var serverNames: [String] = ["ambit-ca.ambit-system.svc", "ambit-ca.ambit-system.svc.cluster.local"]
    /// Lifetime of the serving certificate, issued by the CA itself at start and anew (fresh key) at two-thirds of
    /// its lifetime while the server runs (``ServingCertificate``); never past the CA certificate's own expiry.
    public var servingLifetime: Duration = .seconds(365 * 24 * 3600)
    /// How often the CA directory is looked at for changed files (``CAMaterial``).
    public var caReloadInterval: Duration = .seconds(10)
    /// How long a token TokenReview confirmed is trusted without asking again (``CachingCallerAuthenticator``);
    /// zero asks for every request.
    public var tokenReviewCacheLifetime: Duration = .seconds(60)
    public var service = CertificateService.Options()
    public var ports = OperationalEndpoints.Ports(metrics: 15014, readiness: 15021, admin: 15000)
    public var drainDeadline: Duration = .seconds(5)
    public var clusterID = ConfigOptions.defaultClusterID

    public enum Authentication: Sendable, CustomStringConvertible {
        /// ES256 tokens verified with the public keys in this PEM file (``ServiceAccountToken``).
        case tokenKeys(path: String)
        /// TokenReview against this cluster's API server.
        case tokenReview(KubernetesClusterConfig)

        public var description: String {
            switch self {
            case .tokenKeys(let path): return "tokens signed by the keys in \(path)"
            case .tokenReview(let cluster): return "TokenReview at \(cluster)"
            }
        }
    }

    public init(caDirectory: String, config: ConfigSourceSelection, authentication: Authentication) {
        self.caDirectory = caDirectory
        self.config = config
        self.authentication = authentication
    }
}

/// `ambit-ca`: Istio's CA API over TLS (port 15012), so that no node holds the CA's private key. Node
/// agents obtain the certificates of their own node's pods, everyone else only its own identity.
public final class CAServer: Sendable {
    /// Largest request message read at all (1 MiB); CSRs are refused past 16 KiB.
    public static let maximumMessageSize = 1 << 20
    public let options: CAServerOptions
    private let logger: Logger
    private let material: CAMaterial
    private let metrics: MeshMetrics
    private let store: ConfigStore
    private let group: MultiThreadedEventLoopGroup
    private let source: any ConfigSource
    private let ready = Atomic<Bool>(false)

    public init(options: CAServerOptions, logger: Logger) throws {
        self.options = options
        self.logger = logger
        let metrics = MeshMetrics()
        self.metrics = metrics
        material = try CAMaterial(
            directory: options.caDirectory,
            trustDomain: options.trustDomain,
            registry: metrics.registry
        )
        store = ConfigStore(options: ConfigOptions(trustDomain: options.trustDomain, clusterID: options.clusterID))
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        source = try options.config.makeSource(store: store, group: group, userAgent: "ambit-ca", logger: logger)
    }

    /// Serves until SIGTERM/SIGINT; calls in progress may finish within the drain deadline.
    public func run() async throws {
        let authenticator: any CallerAuthenticator
        switch options.authentication {
        case .tokenKeys(let path):
            authenticator = LocalTokenAuthenticator(
                keys: try LocalTokenAuthenticator.keys(inFile: path),
                audiences: options.audiences
            )
        case .tokenReview(let cluster):
            let reviews = TokenReviewAuthenticator(
                reviewer: try KubernetesTokenReviewer(cluster: cluster, group: group, userAgent: "ambit-ca"),
                audiences: options.audiences
            )
            if options.tokenReviewCacheLifetime > .zero {
                let counted = CAMetrics.tokenReviews(registry: metrics.registry)
                authenticator = CachingCallerAuthenticator(
                    reviews,
                    lifetime: options.tokenReviewCacheLifetime,
                    onReview: { cached in (cached ? counted.cache : counted.apiServer).increment() }
                )
            } else {
                authenticator = reviews
            }
        }
        logger.info("loading configuration", metadata: ["source": "\(options.config)"])
        try await source.start()
        let sourceTask = Task { try await source.run() }
        let store = self.store
        // A pod scheduled a moment ago: a manifest directory is read again at once; the API's watch brings it
        // within a couple of seconds.
        let catchUp: @Sendable () async -> Void
        let settle: Duration
        switch options.config {
        case .manifests:
            catchUp = { [source] in await source.catchUp(awaiting: ObjectKey(.pod, namespace: "", name: "")) }
            settle = .zero
        case .kubernetes:
            catchUp = {}
            settle = .seconds(2)
        }
        let material = self.material
        let service = CertificateService(
            authority: { material.authority },
            authenticator: authenticator,
            authorizer: CertificateRequestAuthorizer(
                trustDomain: options.trustDomain,
                nodeAccounts: options.nodeAccounts,
                snapshot: { store.snapshot },
                catchUp: catchUp,
                settle: settle
            ),
            options: options.service,
            registry: metrics.registry,
            logger: logger
        )
        let serving = try ServingCertificate(
            authority: { material.authority },
            names: options.serverNames,
            lifetime: options.servingLifetime,
            registry: metrics.registry
        )
        let address: GRPCNIOTransportCore.SocketAddress =
            options.listenHost.contains(":")
            ? .ipv6(host: options.listenHost, port: options.port) : .ipv4(host: options.listenHost, port: options.port)
        let transport = HTTP2ServerTransport.Posix(
            address: address,
            transportSecurity: try .tls(certificateReloader: serving),
            config: .defaults { config in
                // The service refuses CSRs past CertificateService.maximumCSRLength (RESOURCE_EXHAUSTED, logged);
                // a message past this bound is not even buffered: gRPC resets its stream (CANCEL).
                config.rpc.maxRequestPayloadSize = CAServer.maximumMessageSize
            },
            eventLoopGroup: group
        )
        let server = GRPCServer(transport: transport, services: [service])
        let serverTask = Task { try await server.serve() }
        let listening = try await transport.listeningAddress
        let endpoints = try await OperationalEndpoints.start(
            "ambit-ca",
            ports: options.ports,
            group: group,
            metrics: metrics,
            logger: logger,
            readiness: { self.ready.load(ordering: .relaxed) ? nil : "starting or draining" },
            configDump: { [options, material, source, serving] in
                let authority = material.authority  // once: a reload between two reads would mix two CAs
                let validity = serving.validity
                let dump: [String: Any] = [
                    "trustDomain": options.trustDomain,
                    "rootExpiry": "\(authority.root.notValidAfter)",
                    "caExpiry": "\(authority.certificate.notValidAfter)",
                    "authentication": "\(options.authentication)",
                    "nodeAccounts": options.nodeAccounts.sorted(),
                    "serverNames": options.serverNames,
                    "servingCertificate": [
                        "expiry": "\(validity.notAfter)", "serial": validity.serial,
                        "renewal": serving.renewalTime.map { "\($0)" } ?? "none: the CA certificate's expiry caps it",
                    ],
                    "configSource": source.statusDump(),
                ]
                return JSONValue(dump).serialized(indented: true)
            },
            configProblems: { [source] in source.problems }
        )
        let renewalTask = Task { [logger] in await serving.renewPeriodically(logger: logger) }
        let reloadTask = Task { [logger, options] in
            await material.watch(every: max(options.caReloadInterval, .seconds(1)), logger: logger) {
                do {
                    try serving.renew(logger: logger, reason: "issued a TLS serving certificate from the reloaded CA")
                } catch {
                    logger.error(
                        "cannot issue a TLS serving certificate from the reloaded CA; the current one serves on",
                        metadata: ["error": "\(error)"]
                    )
                }
            }
        }
        // SIGTERM drains from before the CA says it is ready (a signal right after would end it otherwise).
        let termination = ProcessSignals.termination()
        ready.store(true, ordering: .relaxed)
        logger.info(
            "ambit-ca started",
            metadata: [
                "listen": "\(listening)", "trust_domain": "\(options.trustDomain)",
                "authentication": "\(options.authentication)", "server_names": "\(options.serverNames)",
                "serving_cert_expiry": "\(serving.validity.notAfter)",
            ]
        )
        // Until SIGTERM, or until the gRPC server fails (then the process exits with its error). Neither wait can be
        // cancelled, so they race in unstructured tasks and the first to report wins.
        let (stops, stop) = AsyncStream.makeStream(of: (any Error)?.self)
        let signalTask = Task {
            await termination.wait()
            stop.yield(nil)
        }
        let failureTask = Task {
            do {
                try await serverTask.value
                stop.yield(CAServerError("the gRPC server stopped"))
            } catch {
                stop.yield(error)
            }
        }
        var first = stops.makeAsyncIterator()
        let served: (any Error)? = await first.next() ?? nil
        stop.finish()
        signalTask.cancel()
        failureTask.cancel()
        if let served { logger.critical("the gRPC server failed", metadata: ["error": "\(served)"]) }
        ready.store(false, ordering: .relaxed)
        logger.info("draining", metadata: ["deadline": "\(options.drainDeadline)"])
        server.beginGracefulShutdown()
        let drained = Task {
            try? await Task.sleep(for: options.drainDeadline)
            serverTask.cancel()
        }
        _ = try? await serverTask.value
        drained.cancel()
        renewalTask.cancel()
        reloadTask.cancel()
        sourceTask.cancel()
        store.finish()
        await endpoints.close()
        try? await group.shutdownGracefully()
        if let served { throw served }
        logger.info("ambit-ca stopped")
    }
}

struct CAServerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
