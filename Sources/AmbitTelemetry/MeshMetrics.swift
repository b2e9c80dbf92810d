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

    /// Prometheus text exposition format (version 0.0.4).
    public func render() -> String {
        registry.emitToString()
    }
}
