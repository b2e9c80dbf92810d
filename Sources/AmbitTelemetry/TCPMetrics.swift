public import AmbitModel
public import Prometheus

/// Who talked to whom, in Istio's label set, so Istio dashboards and alerts work unchanged.
public struct TrafficLabels: Hashable, Sendable {
    public enum Reporter: String, Sendable {
        case source
        case destination
        case waypoint
    }

    public enum SecurityPolicy: String, Sendable {
        case mutualTLS = "mutual_tls"
        case none = "none"
    }

    public var reporter: Reporter
    public var sourceWorkload: String
    public var sourceWorkloadNamespace: String
    /// The peer's identity from its certificate (`nil`: plaintext, or not known).
    public var sourcePrincipal: SpiffeID?
    public var destinationWorkload: String
    public var destinationWorkloadNamespace: String
    public var destinationPrincipal: SpiffeID?
    public var destinationService: String
    public var requestProtocol: String
    public var responseFlags: ResponseFlag
    public var connectionSecurityPolicy: SecurityPolicy

    /// Istio writes `unknown` for labels it cannot fill; so do we.
    public static let unknown = "unknown"

    public init(
        reporter: Reporter,
        sourceWorkload: String = TrafficLabels.unknown,
        sourceWorkloadNamespace: String = TrafficLabels.unknown,
        sourcePrincipal: SpiffeID? = nil,
        destinationWorkload: String = TrafficLabels.unknown,
        destinationWorkloadNamespace: String = TrafficLabels.unknown,
        destinationPrincipal: SpiffeID? = nil,
        destinationService: String = TrafficLabels.unknown,
        requestProtocol: String = "tcp",
        responseFlags: ResponseFlag = .none,
        connectionSecurityPolicy: SecurityPolicy = .none
    ) {
        self.reporter = reporter
        self.sourceWorkload = sourceWorkload
        self.sourceWorkloadNamespace = sourceWorkloadNamespace
        self.sourcePrincipal = sourcePrincipal
        self.destinationWorkload = destinationWorkload
        self.destinationWorkloadNamespace = destinationWorkloadNamespace
        self.destinationPrincipal = destinationPrincipal
        self.destinationService = destinationService
        self.requestProtocol = requestProtocol
        self.responseFlags = responseFlags
        self.connectionSecurityPolicy = connectionSecurityPolicy
    }

    /// The labels in a fixed order, with Istio's names.
    public var pairs: [(String, String)] {
        [
            ("reporter", reporter.rawValue),
            ("source_workload", sourceWorkload),
            ("source_workload_namespace", sourceWorkloadNamespace),
            ("source_principal", sourcePrincipal?.uri ?? Self.unknown),
            ("destination_workload", destinationWorkload),
            ("destination_workload_namespace", destinationWorkloadNamespace),
            ("destination_principal", destinationPrincipal?.uri ?? Self.unknown),
            ("destination_service", destinationService),
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
            helpText: "Bytes sent during TCP connections (request direction)"
        )
    }
    static var received: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "istio_tcp_received_bytes",
            unitName: "total",
            helpText: "Bytes received during TCP connections (response direction)"
        )
    }

    private let registry: PrometheusCollectorRegistry
    private let cache = SeriesCache<TrafficLabels, TCPConnectionCounters>()

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// The counters for one label set (created on first use, shared afterwards).
    public func counters(_ labels: TrafficLabels) -> TCPConnectionCounters {
        cache.series(for: labels) {
            let pairs = labels.pairs
            return TCPConnectionCounters(
                opened: registry.makeCounter(descriptor: Self.opened, labels: pairs),
                closed: registry.makeCounter(descriptor: Self.closed, labels: pairs),
                sent: registry.makeCounter(descriptor: Self.sent, labels: pairs),
                received: registry.makeCounter(descriptor: Self.received, labels: pairs)
            )
        }
    }
}

/// The four counters of one connection's label set.
public struct TCPConnectionCounters: Sendable {
    public let opened: Counter
    public let closed: Counter
    /// Bytes from the client towards the server.
    public let sent: Counter
    /// Bytes from the server back to the client.
    public let received: Counter
}
