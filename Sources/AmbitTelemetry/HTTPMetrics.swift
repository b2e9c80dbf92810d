public import Prometheus

/// Istio's HTTP metrics, reported by waypoints (`reporter="waypoint"`): the TCP label set plus
/// `response_code`.
public final class HTTPMetrics: Sendable {
    static var requests: MetricNameDescriptor {
        MetricNameDescriptor(metricName: "istio_requests", unitName: "total", helpText: "HTTP requests")
    }
    static var duration: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "istio_request_duration",
            unitName: "milliseconds",
            helpText: "HTTP request duration, first request byte to last response byte"
        )
    }
    static var requestBytes: MetricNameDescriptor {
        MetricNameDescriptor(metricName: "istio_request_bytes", helpText: "HTTP request sizes (body bytes)")
    }
    static var responseBytes: MetricNameDescriptor {
        MetricNameDescriptor(metricName: "istio_response_bytes", helpText: "HTTP response sizes (body bytes)")
    }

    /// Istio's default buckets for durations (ms) and sizes (bytes).
    static let durationBuckets: [Double] = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000]
    static let sizeBuckets: [Double] = [1, 10, 100, 1000, 10000, 100_000, 1_000_000, 10_000_000]

    private let registry: PrometheusCollectorRegistry
    private let cache = SeriesCache<SeriesKey, Series>()

    private struct SeriesKey: Hashable, Sendable {
        var labels: TrafficLabels
        var responseCode: Int
    }

    private struct Series: Sendable {
        let requests: Counter
        let duration: ValueHistogram
        let requestBytes: ValueHistogram
        let responseBytes: ValueHistogram
    }

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// Records one finished request.
    public func record(
        _ labels: TrafficLabels,
        responseCode: Int,
        milliseconds: Double,
        requestBytes: Int,
        responseBytes: Int
    ) {
        let series = cache.series(for: SeriesKey(labels: labels, responseCode: responseCode)) {
            let pairs = labels.pairs + [("response_code", String(responseCode))]
            return Series(
                requests: registry.makeCounter(descriptor: Self.requests, labels: pairs),
                // A value histogram in milliseconds: Istio's unit (a duration histogram would emit seconds).
                duration: registry.makeValueHistogram(
                    descriptor: Self.duration,
                    labels: pairs,
                    buckets: Self.durationBuckets
                ),
                requestBytes: registry.makeValueHistogram(
                    descriptor: Self.requestBytes,
                    labels: pairs,
                    buckets: Self.sizeBuckets
                ),
                responseBytes: registry.makeValueHistogram(
                    descriptor: Self.responseBytes,
                    labels: pairs,
                    buckets: Self.sizeBuckets
                )
            )
        }
        series.requests.increment()
        series.duration.record(milliseconds)
        series.requestBytes.record(Double(requestBytes))
        series.responseBytes.record(Double(responseBytes))
    }
}
