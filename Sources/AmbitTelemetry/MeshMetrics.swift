public import Prometheus
import Synchronization

/// The metrics registry of one process, injected into every component that owns metrics
/// (never a global), and rendered in Prometheus text format for the 15020 endpoint.
public final class MeshMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let tcp: TCPMetrics
    public let http: HTTPMetrics

    /// `ambit_log_lines_dropped_total`, brought up to date with the process's log at each scrape.
    private let logLinesDropped: Counter
    private let logLinesDroppedSeen = Mutex(0)
    private let droppedLogLines: @Sendable () -> Int

    /// `droppedLogLines`: the lines the process's log has dropped so far (tests: a sink of their own).
    public init(
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        droppedLogLines: @escaping @Sendable () -> Int = { LogSink.standardErrorDroppedLines }
    ) {
        self.registry = registry
        self.droppedLogLines = droppedLogLines
        self.tcp = TCPMetrics(registry: registry)
        self.http = HTTPMetrics(registry: registry)
        logLinesDropped = registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "ambit_log_lines_dropped_total",
                helpText: "Log lines dropped because the reader of the process's JSON log did not keep up"
            )
        )
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
        let dropped = droppedLogLines()
        let newlyDropped = logLinesDroppedSeen.withLock { seen in
            defer { seen = max(seen, dropped) }
            return max(0, dropped - seen)
        }
        if newlyDropped > 0 { logLinesDropped.increment(by: Int64(newlyDropped)) }
        return registry.emitToString()
    }
}
