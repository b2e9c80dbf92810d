public import AmbitModel
public import Prometheus

/// Who talked to whom, in Istio's label set (ztunnel's, in its order), so Istio dashboards and alerts
/// work unchanged. A value that is not known is `unknown`, as in Istio.
public struct TrafficLabels: Hashable, Sendable {
    public enum Reporter: String, Sendable {
        case source
        case destination
        case waypoint
    }

    /// ztunnel's two values: mutual TLS (an HBONE tunnel), or `unknown` (plain TCP).
    public enum SecurityPolicy: String, Sendable {
        case mutualTLS = "mutual_tls"
        case unknown = "unknown"
    }

    /// One end of the traffic.
    public struct Peer: Hashable, Sendable {
        /// The workload (its controller's name: a Deployment, not its pod; see `Pod.workloadMeta`).
        public var workload: String
        public var canonicalService: String
        public var canonicalRevision: String
        public var namespace: String
        /// The identity verified by mutual TLS (`nil`: plaintext, or not known).
        public var principal: SpiffeID?
        public var app: String
        public var version: String
        public var cluster: String

        public init(
            workload: String = TrafficLabels.unknown,
            canonicalService: String = TrafficLabels.unknown,
            canonicalRevision: String = TrafficLabels.unknown,
            namespace: String = TrafficLabels.unknown,
            principal: SpiffeID? = nil,
            app: String = TrafficLabels.unknown,
            version: String = TrafficLabels.unknown,
            cluster: String = TrafficLabels.unknown
        ) {
            self.workload = workload
            self.canonicalService = canonicalService
            self.canonicalRevision = canonicalRevision
            self.namespace = namespace
            self.principal = principal
            self.app = app
            self.version = version
            self.cluster = cluster
        }

        /// A known pod, as istiod describes it to ztunnel: `app` and `version` are the canonical
        /// service and revision.
        public init(_ pod: Pod, principal: SpiffeID?, cluster: String) {
            let service = pod.canonicalService
            let revision = pod.canonicalRevision
            self.init(
                workload: pod.workloadName,
                canonicalService: service,
                canonicalRevision: revision,
                namespace: pod.metadata.namespace,
                principal: principal,
                app: service,
                version: revision,
                cluster: cluster
            )
        }

        public static let unknown = Peer()
    }

    /// The service the traffic was addressed to.
    public struct Service: Hashable, Sendable {
        /// `name.namespace.svc.<domain>`.
        public var hostname: String
        public var name: String
        public var namespace: String

        public init(hostname: String, name: String, namespace: String) {
            self.hostname = hostname
            self.name = name
            self.namespace = namespace
        }

        public static let unknown = Service(
            hostname: TrafficLabels.unknown,
            name: TrafficLabels.unknown,
            namespace: TrafficLabels.unknown
        )
    }

    public var reporter: Reporter
    public var source: Peer
    public var destination: Peer
    public var service: Service
    public var requestProtocol: String
    public var responseFlags: ResponseFlag
    public var connectionSecurityPolicy: SecurityPolicy

    public static let unknown = "unknown"

    public init(
        reporter: Reporter,
        source: Peer = .unknown,
        destination: Peer = .unknown,
        service: Service = .unknown,
        requestProtocol: String = "tcp",
        responseFlags: ResponseFlag = .none,
        connectionSecurityPolicy: SecurityPolicy = .unknown
    ) {
        self.reporter = reporter
        self.source = source
        self.destination = destination
        self.service = service
        self.requestProtocol = requestProtocol
        self.responseFlags = responseFlags
        self.connectionSecurityPolicy = connectionSecurityPolicy
    }

    /// The labels with Istio's names, in ztunnel's order.
    public var pairs: [(String, String)] {
        [
            ("reporter", reporter.rawValue),
            ("source_workload", source.workload),
            ("source_canonical_service", source.canonicalService),
            ("source_canonical_revision", source.canonicalRevision),
            ("source_workload_namespace", source.namespace),
            ("source_principal", source.principal?.uri ?? Self.unknown),
            ("source_app", source.app),
            ("source_version", source.version),
            ("source_cluster", source.cluster),
            ("destination_service", service.hostname),
            ("destination_service_namespace", service.namespace),
            ("destination_service_name", service.name),
            ("destination_workload", destination.workload),
            ("destination_canonical_service", destination.canonicalService),
            ("destination_canonical_revision", destination.canonicalRevision),
            ("destination_workload_namespace", destination.namespace),
            ("destination_principal", destination.principal?.uri ?? Self.unknown),
            ("destination_app", destination.app),
            ("destination_version", destination.version),
            ("destination_cluster", destination.cluster),
            ("request_protocol", requestProtocol),
            ("response_flags", responseFlags.rawValue),
            ("connection_security_policy", connectionSecurityPolicy.rawValue),
        ]
    }
}

/// Istio's TCP metrics. A connection asks for its ``TCPConnectionCounters`` once, when it knows
/// its labels, and then updates them without further lookups.
public final class TCPMetrics: Sendable {
    static var opened: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "istio_tcp_connections_opened",
            unitName: "total",
            helpText: "TCP connections opened"
        )
    }
    static var closed: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "istio_tcp_connections_closed",
            unitName: "total",
            helpText: "TCP connections closed"
        )
    }
    static var sent: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "istio_tcp_sent_bytes",
            unitName: "total",
            helpText: "Bytes sent during response"
        )
    }
    static var received: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "istio_tcp_received_bytes",
            unitName: "total",
            helpText: "Bytes received during request"
        )
    }

    private let registry: PrometheusCollectorRegistry
    private let cache = SeriesCache<TrafficLabels, TCPConnectionCounters>()
    private let closedCache = SeriesCache<TrafficLabels, Counter>()

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// The opened and byte counters for one label set (created on first use, shared afterwards). A
    /// connection updates them under the labels it opened with (`response_flags="-"`), as ztunnel does.
    public func counters(_ labels: TrafficLabels) -> TCPConnectionCounters {
        cache.series(for: labels) {
            let pairs = labels.pairs
            return TCPConnectionCounters(
                opened: registry.makeCounter(descriptor: Self.opened, labels: pairs),
                sent: registry.makeCounter(descriptor: Self.sent, labels: pairs),
                received: registry.makeCounter(descriptor: Self.received, labels: pairs)
            )
        }
    }

    /// The closed counter for one label set: the only series that carries how the connection ended.
    public func closed(_ labels: TrafficLabels) -> Counter {
        closedCache.series(for: labels) { registry.makeCounter(descriptor: Self.closed, labels: labels.pairs) }
    }
}

/// The counters a connection updates while it runs.
public struct TCPConnectionCounters: Sendable {
    public let opened: Counter
    /// Response bytes: from the server back to the client (at every reporter, as ztunnel counts).
    public let sent: Counter
    /// Request bytes: from the client towards the server.
    public let received: Counter
}
