public import AmbitConfig
public import AmbitHBONE
public import AmbitIdentity
public import AmbitModel
public import AmbitPolicy
public import AmbitRelay
public import AmbitTelemetry
import FoundationEssentials
public import Logging
public import NIOCore
import NIOPosix
import Synchronization

/// Who a waypoint is and how it behaves.
public struct WaypointOptions: Sendable {
    /// The Gateway (class `istio-waypoint`) this process implements.
    public var gateway: ObjectKey
    /// The identity it presents and uses towards endpoints (its service account).
    public var identity: SpiffeID
    /// Largest request body buffered for routing, retries and mirroring; larger bodies get 413.
    public var maxRequestBodyBytes = 4 << 20
    /// Largest request header block (names + values); larger get 431.
    public var maxRequestHeaderBytes = 60 << 10
    /// How long to wait for a client's first bytes before treating the tunnel as opaque TCP.
    public var sniffTimeout: TimeAmount = .seconds(1)
    /// Set when the proxy is one pod's sidecar instead of a waypoint (the benchmark's sidecar
    /// mode, `ambit-sidecar`): it terminates HBONE only for this pod, enforces the policies that
    /// select the pod, forwards inbound requests to the application on 127.0.0.1, and proxies
    /// the pod's captured outbound traffic (routes apply) over HBONE with the pod's identity.
    public var sidecarPod: ObjectKey?
    /// Istio's MeshConfig: the external authorizers CUSTOM policies name.
    public var meshConfig = MeshConfig()

    public init(gateway: ObjectKey, identity: SpiffeID) {
        self.gateway = gateway
        self.identity = identity
    }
}

/// Where a tunnel accepted by the waypoint is addressed.
public enum WaypointTarget: Sendable {
    case service(ServiceBinding)
    case workload(Workload, port: UInt16)

    var serviceKey: ObjectKey? {
        if case .service(let binding) = self { return binding.service }
        return nil
    }
}

/// The per-snapshot state of a waypoint: routes and L7 policies compiled once per config version.
final class WaypointState: Sendable {
    let snapshot: ConfigSnapshot
    let routes: RouteTable
    let authorization: WaypointAuthorization
    /// The same policies compiled for opaque TCP (L4 semantics: L7-only ALLOW rules never match,
    /// DENY rules widen), so non-HTTP traffic fails closed.
    let tcpAuthorization: WaypointAuthorization
    /// What does not fit: routes that cannot apply, CUSTOM policies whose authorizer cannot be asked.
    let warnings: [String]

    init(
        snapshot: ConfigSnapshot,
        gateway: ObjectKey,
        sidecarPod: ObjectKey? = nil,
        authorizerProblem: (String) -> String? = { _ in nil }
    ) {
        self.snapshot = snapshot
        self.routes = RouteTable(snapshot: snapshot)
        if let key = sidecarPod {
            let pod = snapshot.pods[key] ?? Pod(metadata: ObjectMeta(name: key.name, namespace: key.namespace))
            let root = snapshot.options.rootNamespace
            let policies = snapshot.authorizationPolicies.values
            authorization = WaypointAuthorization(sidecarFor: pod, policies: policies, rootNamespace: root)
            tcpAuthorization = WaypointAuthorization(
                sidecarFor: pod,
                policies: policies,
                rootNamespace: root,
                layer: .l4
            )
            warnings = Self.warnings(routes, authorization, authorizerProblem)
            return
        }
        self.authorization = WaypointAuthorization(
            policies: snapshot.authorizationPolicies.values,
            gateway: gateway,
            rootNamespace: snapshot.options.rootNamespace
        )
        self.tcpAuthorization = WaypointAuthorization(
            policies: snapshot.authorizationPolicies.values,
            gateway: gateway,
            rootNamespace: snapshot.options.rootNamespace,
            layer: .l4
        )
        warnings = Self.warnings(routes, authorization, authorizerProblem)
    }

    private static func warnings(
        _ routes: RouteTable,
        _ authorization: WaypointAuthorization,
        _ authorizerProblem: (String) -> String?
    ) -> [String] {
        var warnings = routes.warnings
        let named = authorization.namedAuthorizers
        for name in named.sorted() {
            guard let problem = authorizerProblem(name) else { continue }
            warnings.append(
                "CUSTOM policies name the authorizer \"\(name)\": \(problem); the requests they select are denied (UAEX)"
            )
        }
        if !named.isEmpty {
            warnings.append(
                "CUSTOM policies apply here: opaque TCP they select is refused (ext_authz checks HTTP only)"
            )
        }
        return warnings
    }

    /// Which destination an HBONE `:authority` names, if this waypoint serves it. A sidecar serves
    /// its own pod only.
    func target(
        for authority: IPEndpoint,
        gateway: ObjectKey,
        sidecarPod: ObjectKey? = nil
    ) -> Result<WaypointTarget, WaypointRefusal> {
        if let sidecarPod {
            guard let workload = snapshot.workload(for: sidecarPod),
                workload.pod.podIPs.contains(authority.address)
            else {
                return .failure(.notServed("\(authority) is not an address of pod \(sidecarPod.namespacedName)"))
            }
            return .success(.workload(workload, port: authority.port))
        }
        if let binding = snapshot.service(at: authority) {
            guard snapshot.waypoint(forService: binding.service).binding?.gateway == gateway else {
                return .failure(
                    .notServed(
                        "service \(binding.service.namespacedName) is not served by waypoint \(gateway.namespacedName)"
                    )
                )
            }
            return .success(.service(binding))
        }
        if let workload = snapshot.workload(at: authority.address) {
            guard snapshot.waypoint(forWorkload: workload.key).binding?.gateway == gateway else {
                return .failure(
                    .notServed(
                        "workload \(workload.key.namespacedName) is not served by waypoint \(gateway.namespacedName)"
                    )
                )
            }
            return .success(.workload(workload, port: authority.port))
        }
        return .failure(.notServed("\(authority) is neither a service nor a workload known to the mesh"))
    }
}

public enum WaypointRefusal: Error, Sendable {
    case notServed(String)
}

/// One waypoint process: terminates HBONE addressed to the services and workloads it serves,
/// applies L7 authorization and HTTPRoutes, and forwards each request over a new HBONE tunnel
/// (with its own identity) to the chosen endpoint.
public final class Waypoint: Sendable {
    public let options: WaypointOptions
    let store: ConfigStore
    let client: HBONEClient
    let metrics: MeshMetrics
    let logger: Logger
    let accessLog: AccessLog
    let certificate: @Sendable () async throws -> WorkloadCertificate
    /// Connects a sidecar to its own application (in the same network namespace).
    let localDialer: any Dialer = DirectDialer(connectTimeout: .seconds(5))
    private let cachedState = Mutex<WaypointState?>(nil)
    /// One upstream pool per event loop (each used only on its loop).
    private let pools = Mutex<[ObjectIdentifier: UpstreamPoolBox]>([:])
    private let counters = Mutex<WaypointCounters>(WaypointCounters())
    /// Clients of the external authorizers (CUSTOM policies).
    let authorizers: ExternalAuthorizers

    /// `group` runs the external authorizers' gRPC connections (a `MultiThreadedEventLoopGroup`).
    public init(
        options: WaypointOptions,
        store: ConfigStore,
        client: HBONEClient,
        metrics: MeshMetrics,
        certificate: @escaping @Sendable () async throws -> WorkloadCertificate,
        logger: Logger,
        group: (any EventLoopGroup)? = nil
    ) {
        self.authorizers = ExternalAuthorizers(
            meshConfig: options.meshConfig,
            group: group ?? MultiThreadedEventLoopGroup.singleton,
            logger: logger
        )
        self.options = options
        self.store = store
        self.client = client
        self.metrics = metrics
        self.certificate = certificate
        self.logger = logger
        self.accessLog = AccessLog(logger: logger)
    }

    /// The pool of idle upstream connections of `eventLoop` (call on that loop).
    func upstreamPool(on eventLoop: any EventLoop) -> UpstreamPool {
        let key = ObjectIdentifier(eventLoop)
        return pools.withLock { pools in
            if let box = pools[key] { return box.pool }
            let box = UpstreamPoolBox(pool: UpstreamPool(eventLoop: eventLoop))
            pools[key] = box
            return box.pool
        }
    }

    /// Closes the idle upstream connections of every loop and the authorizers' clients (at shutdown).
    public func closeIdleUpstreams() {
        for box in pools.withLock({ Array($0.values) }) {
            box.eventLoop.execute { box.pool.closeAll() }
        }
        authorizers.shutdown()
    }

    /// The state for the store's current snapshot (rebuilt when the configuration changed).
    var state: WaypointState {
        let snapshot = store.snapshot
        return cachedState.withLock { cached in
            if let cached, cached.snapshot.version == snapshot.version { return cached }
            let state = WaypointState(
                snapshot: snapshot,
                gateway: options.gateway,
                sidecarPod: options.sidecarPod,
                authorizerProblem: authorizers.problem(with:)
            )
            for warning in state.warnings {
                logger.warning("\(warning)")
            }
            cached = state
            return state
        }
    }

    /// The HBONE server's hook: accept tunnels to what this waypoint serves and terminate them.
    public var inbound: any HBONEInboundHandler { WaypointInbound(waypoint: self) }

    /// Counts for the admin endpoint and tests.
    public var status: WaypointCounters { counters.withLock { $0 } }

    func count(_ update: (inout WaypointCounters) -> Void) {
        counters.withLock { update(&$0) }
    }

    /// What the waypoint works from, as JSON: who it is, the services and workloads it serves,
    /// how many policies bind to it, routes and warnings, and its counters; `extra` adds the
    /// process's own sections (its configuration source).
    public func configDump(adding extra: [String: Any] = [:]) -> String {
        let state = self.state
        let snapshot = state.snapshot
        let services = snapshot.services.keys.sorted().filter {
            snapshot.waypoint(forService: $0).binding?.gateway == options.gateway
        }
        let workloads = snapshot.pods.keys.sorted().filter {
            snapshot.waypoint(forWorkload: $0).binding?.gateway == options.gateway
        }
        let routes = snapshot.httpRoutes.values.filter { route in
            route.parentRefs.contains { parent in
                parent.isService
                    && services.contains(
                        ObjectKey(.service, namespace: parent.namespace ?? route.metadata.namespace, name: parent.name)
                    )
            }
        }
        let virtualServices = snapshot.virtualServices.values.filter { virtualService in
            virtualService.hosts.contains { host in
                virtualService.service(forHost: host, clusterDomain: snapshot.options.clusterDomain).map {
                    services.contains(ObjectKey(.service, namespace: $0.namespace, name: $0.name))
                } ?? false
            }
        }
        let counters = status
        var dump: [String: Any] = [
            "gateway": options.gateway.namespacedName,
            "identity": options.identity.uri,
            "configVersion": Int(snapshot.version),
            "services": services.map(\.namespacedName),
            "workloads": workloads.map(\.namespacedName),
            "httpRoutes": routes.map(\.key.namespacedName).sorted(),
            "virtualServices": virtualServices.map(\.key.namespacedName).sorted(),
            "policies": state.authorization.policyCount,
            "warnings": state.warnings,
            "counters": [
                "tunnels": counters.tunnels, "refusedTunnels": counters.refusedTunnels,
                "http1Tunnels": counters.http1Tunnels, "http2Tunnels": counters.http2Tunnels,
                "tcpTunnels": counters.tcpTunnels, "requests": counters.requests,
                "deniedRequests": counters.deniedRequests,
            ],
        ]
        dump.merge(extra) { current, _ in current }
        return JSONValue(dump).serialized(indented: true) + "\n"
    }
}

/// Tunnels and requests handled, by outcome.
public struct WaypointCounters: Sendable, Equatable {
    public var tunnels = 0
    public var refusedTunnels = 0
    public var http1Tunnels = 0
    public var http2Tunnels = 0
    public var tcpTunnels = 0
    public var requests = 0
    public var deniedRequests = 0
}

/// Accepts an HBONE CONNECT when the waypoint serves its `:authority` and hands the stream to
/// the protocol sniffer.
struct WaypointInbound: HBONEInboundHandler {
    let waypoint: Waypoint

    func open(_ request: HBONEInboundRequest, on eventLoop: any EventLoop) -> EventLoopFuture<HBONEInboundResult> {
        let state = waypoint.state
        let options = waypoint.options
        switch state.target(for: request.authority, gateway: options.gateway, sidecarPod: options.sidecarPod) {
        case .failure(.notServed(let reason)):
            waypoint.count { $0.refusedTunnels += 1 }
            return eventLoop.makeSucceededFuture(.badRequest(reason))
        case .success(let target):
            waypoint.count { $0.tunnels += 1 }
            let tunnel = TunnelContext(
                waypoint: waypoint,
                target: target,
                authority: request.authority,
                peerIdentity: request.peerIdentity,
                peerAddress: request.sourceAddress ?? request.authority.address,
                traceparent: request.headers.traceparent,
                direction: .inbound
            )
            return eventLoop.makeSucceededFuture(
                .terminate(
                    configure: { channel in
                        try channel.pipeline.syncOperations.addHandler(ProtocolSniffer(tunnel: tunnel))
                    },
                    finished: nil
                )
            )
        }
    }
}

/// What every request of one tunnel shares.
struct TunnelContext: Sendable {
    /// Which way the traffic goes through the proxy.
    enum Direction: Sendable {
        /// Arrived over HBONE: authorized here. A waypoint forwards it over HBONE to an endpoint; a
        /// sidecar to its own application.
        case inbound
        /// A sidecar's own pod calling out (captured): routed here, authorized at the destination.
        case outbound
    }

    let waypoint: Waypoint
    let target: WaypointTarget
    let authority: IPEndpoint
    let peerIdentity: SpiffeID
    let peerAddress: IPAddress
    let traceparent: String?
    let direction: Direction

    /// A sidecar's inbound traffic goes to the application in the same pod, not over HBONE.
    var toLocalApplication: Bool { direction == .inbound && waypoint.options.sidecarPod != nil }

    /// Istio's `reporter` label: a waypoint reports as such; a sidecar as the source (its pod
    /// calling out) or the destination (its pod called).
    var reporter: TrafficLabels.Reporter {
        guard waypoint.options.sidecarPod != nil else { return .waypoint }
        return direction == .outbound ? .source : .destination
    }
}

/// Carries a pool across threads to its event loop. Safe: the pool is only ever used on that
/// loop (``UpstreamPool`` checks), the box only hands it over.
final class UpstreamPoolBox: @unchecked Sendable {
    let pool: UpstreamPool
    var eventLoop: any EventLoop { pool.eventLoopForBox }

    init(pool: UpstreamPool) {
        self.pool = pool
    }
}
