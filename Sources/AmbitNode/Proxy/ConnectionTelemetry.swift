import AmbitModel
import AmbitRelay
import AmbitTelemetry
import Logging
import Synchronization

/// Istio's TCP metrics and the access log for the node agent's connections
/// ([docs/telemetry.md](../../../docs/telemetry.md)).
final class ConnectionTelemetry: Sendable {
    let metrics: MeshMetrics
    let accessLog: AccessLog
    private let nextID = Atomic<UInt64>(1)

    init(metrics: MeshMetrics, logger: Logger) {
        self.metrics = metrics
        self.accessLog = AccessLog(logger: logger)
    }

    func makeID() -> UInt64 { nextID.wrappingAdd(1, ordering: .relaxed).oldValue }

    func opened(_ labels: TrafficLabels) {
        metrics.tcp.counters(labels).opened.increment()
    }

    /// A connection ended: closed (under `flag`), its bytes (under the labels it opened with), one log line.
    func closed(_ connection: ProxiedConnection.Ending) {
        var labels = connection.labels
        labels.responseFlags = connection.flag
        metrics.tcp.closed(labels).increment()
        // Under the labels it opened with (`response_flags="-"`), as ztunnel's byte counters; request bytes
        // are received and response bytes sent, at either end.
        let counters = metrics.tcp.counters(connection.labels)
        counters.received.increment(by: Int64(connection.summary.requestBytes))
        counters.sent.increment(by: Int64(connection.summary.responseBytes))
        let mutualTLS = labels.connectionSecurityPolicy == .mutualTLS
        accessLog.record(
            AccessLogEntry(
                direction: labels.reporter,
                source: .init(
                    address: connection.source?.description,
                    workload: connection.description.sourcePod,
                    namespace: labels.source.namespace,
                    identity: mutualTLS ? labels.source.principal : nil
                ),
                destination: .init(
                    address: connection.destination.description,
                    workload: connection.description.destinationPod,
                    namespace: labels.destination.namespace,
                    identity: mutualTLS ? labels.destination.principal : nil
                ),
                hboneAddress: connection.hboneAddress,
                service: labels.service.hostname,
                requestBytes: connection.summary.requestBytes,
                responseBytes: connection.summary.responseBytes,
                duration: connection.duration,
                responseFlags: connection.flag,
                error: connection.error
            )
        )
    }
}
