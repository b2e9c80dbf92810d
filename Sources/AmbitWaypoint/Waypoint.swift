public import AmbitCore
public import AmbitModel
import Foundation
public import Logging
public import NIOCore
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

    init(snapshot: ConfigSnapshot, gateway: ObjectKey) {
        self.snapshot = snapshot
        self.routes = RouteTable(routes: snapshot.httpRoutes.values.sorted { $0.key < $1.key })
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
    }

    /// Which destination an HBONE `:authority` names, if this waypoint serves it.
    func target(for authority: IPEndpoint, gateway: ObjectKey) -> Result<WaypointTarget, WaypointRefusal> {
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
    let certificate: @Sendable () async throws -> WorkloadCertificate
    private let cachedState = Mutex<WaypointState?>(nil)
    private let counters = Mutex<WaypointCounters>(WaypointCounters())

    public init(
        options: WaypointOptions,
        store: ConfigStore,
        client: HBONEClient,
        metrics: MeshMetrics,
        certificate: @escaping @Sendable () async throws -> WorkloadCertificate,
        logger: Logger
    ) {
        self.options = options
        self.store = store
        self.client = client
        self.metrics = metrics
        self.certificate = certificate
        self.logger = logger
    }

    /// The state for the store's current snapshot (rebuilt when the configuration changed).
    var state: WaypointState {
        let snapshot = store.snapshot
        return cachedState.withLock { cached in
            if let cached, cached.snapshot.version == snapshot.version { return cached }
            let state = WaypointState(snapshot: snapshot, gateway: options.gateway)
            for warning in state.routes.warnings + state.authorization.warnings {
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
        let counters = status
        var dump: [String: Any] = [
            "gateway": options.gateway.namespacedName,
            "identity": options.identity.uri,
            "configVersion": Int(snapshot.version),
            "services": services.map(\.namespacedName),
            "workloads": workloads.map(\.namespacedName),
            "httpRoutes": routes.map(\.key.namespacedName).sorted(),
            "policies": state.authorization.policyCount,
            "warnings": state.routes.warnings + state.authorization.warnings,
            "counters": [
                "tunnels": counters.tunnels, "refusedTunnels": counters.refusedTunnels,
                "http1Tunnels": counters.http1Tunnels, "http2Tunnels": counters.http2Tunnels,
                "tcpTunnels": counters.tcpTunnels, "requests": counters.requests,
                "deniedRequests": counters.deniedRequests,
            ],
        ]
        dump.merge(extra) { current, _ in current }
        let data =
            (try? JSONSerialization.data(withJSONObject: dump, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self) + "\n"
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
        switch state.target(for: request.authority, gateway: waypoint.options.gateway) {
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
                traceparent: request.headers.traceparent
            )
            return eventLoop.makeSucceededFuture(
                .terminate { channel in
                    try channel.pipeline.syncOperations.addHandler(ProtocolSniffer(tunnel: tunnel))
                }
            )
        }
    }
}

/// What every request of one tunnel shares.
struct TunnelContext: Sendable {
    let waypoint: Waypoint
    let target: WaypointTarget
    let authority: IPEndpoint
    let peerIdentity: SpiffeID
    let peerAddress: IPAddress
    let traceparent: String?
}
