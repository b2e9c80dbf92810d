public import Prometheus

/// The metrics registry of one process, injected into every component that owns metrics
/// (never a global), and rendered in Prometheus text format for the 15020 endpoint.
public final class MeshMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let tcp: TCPMetrics
    public let http: HTTPMetrics

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        self.tcp = TCPMetrics(registry: registry)
        self.http = HTTPMetrics(registry: registry)
    }

    private static var limitHits: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "ambit_limit_hits_total",
            helpText: "Times a resource limit turned a connection away or closed it, by limit"
        )
    }

    /// Counts one hit of `limit` in `ambit_limit_hits_total{limit}`.
    public func limitHit(_ limit: String) {
        registry.makeCounter(descriptor: Self.limitHits, labels: [("limit", limit)]).increment()
    }

    /// Shows `limits` at zero before any is hit, so dashboards and alerts find the series.
    public func declareLimits(_ limits: [String]) {
        for limit in limits { _ = registry.makeCounter(descriptor: Self.limitHits, labels: [("limit", limit)]) }
    }

    /// Prometheus text exposition format (version 0.0.4).
    public func render() -> String {
        registry.emitToString()
    }
}
