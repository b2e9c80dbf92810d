import AmbitModel
import AmbitPolicy
import AmbitRelay
import AmbitTelemetry
import Foundation
import Logging
import NIOCore
import Synchronization

/// One proxied connection the agent is carrying, kept until it ends: for the admin dump, for
/// re-checking policy when it changes, and for the access-log line and metrics at the end.
final class TrackedConnection: Sendable {
    enum Direction: String, Sendable {
        case outbound
        case inbound
    }

    let id: UInt64
    let direction: Direction
    let source: IPEndpoint?
    let destination: IPEndpoint
    let labels: TrafficLabels
    /// The destination-side authorization input (inbound only), re-evaluated on policy changes.
    let authorization: AuthorizationRequest?
    let started = ContinuousClock.now
    let startedAt = Date()
    /// Closes the connection abortively (policy now denies it).
    private let abort: Mutex<(@Sendable () -> Void)?>
    let deniedLater = Atomic<Bool>(false)

    init(
        id: UInt64,
        direction: Direction,
        source: IPEndpoint?,
        destination: IPEndpoint,
        labels: TrafficLabels,
        authorization: AuthorizationRequest?
    ) {
        self.id = id
        self.direction = direction
        self.source = source
        self.destination = destination
        self.labels = labels
        self.authorization = authorization
        self.abort = Mutex(nil)
    }

    func setAbort(_ body: @escaping @Sendable () -> Void) { abort.withLock { $0 = body } }

    func closeDenied() {
        deniedLater.store(true, ordering: .relaxed)
        abort.withLock { $0 }?()
    }
}

/// Live connections of one pod.
final class ConnectionSet: Sendable {
    private let connections = Mutex<[UInt64: TrackedConnection]>([:])

    func insert(_ connection: TrackedConnection) { connections.withLock { $0[connection.id] = connection } }
    /// Whether `id` was still live (so a connection is finished exactly once).
    func removeIfPresent(_ id: UInt64) -> Bool { connections.withLock { $0.removeValue(forKey: id) != nil } }
    var all: [TrackedConnection] { connections.withLock { Array($0.values) } }
    var count: Int { connections.withLock { $0.count } }
}

/// Metrics and the access log for connections, in Istio's names (docs/telemetry.md).
final class ConnectionTelemetry: Sendable {
    let metrics: MeshMetrics
    let logger: Logger
    private let nextID = Atomic<UInt64>(1)

    init(metrics: MeshMetrics, logger: Logger) {
        self.metrics = metrics
        self.logger = logger
    }

    func makeID() -> UInt64 { nextID.wrappingAdd(1, ordering: .relaxed).oldValue }

    /// A connection that was refused before any byte moved (policy, STRICT mTLS, no upstream).
    func rejected(
        direction: TrackedConnection.Direction,
        labels: TrafficLabels,
        source: IPEndpoint?,
        destination: IPEndpoint,
        flag: String,
        reason: String
    ) {
        var labels = labels
        labels.responseFlags = flag
        let counters = metrics.tcp.counters(labels)
        counters.opened.increment()
        counters.closed.increment()
        accessLog(
            direction: direction,
            labels: labels,
            source: source,
            destination: destination,
            sent: 0,
            received: 0,
            duration: .zero,
            error: reason
        )
    }

    func opened(_ connection: TrackedConnection) {
        metrics.tcp.counters(connection.labels).opened.increment()
    }

    func finished(_ connection: TrackedConnection, summary: RelaySummary, responseFlags: String? = nil) {
        var labels = connection.labels
        if let responseFlags { labels.responseFlags = responseFlags }
        if connection.deniedLater.load(ordering: .relaxed) { labels.responseFlags = "DENY" }
        let counters = metrics.tcp.counters(labels)
        counters.closed.increment()
        let base = metrics.tcp.counters(connection.labels)
        base.sent.increment(by: Int64(summary.requestBytes))
        base.received.increment(by: Int64(summary.responseBytes))
        accessLog(
            direction: connection.direction,
            labels: labels,
            source: connection.source,
            destination: connection.destination,
            sent: summary.requestBytes,
            received: summary.responseBytes,
            duration: ContinuousClock.now - connection.started,
            error: connection.deniedLater.load(ordering: .relaxed)
                ? "closed: authorization policy changed and now denies this connection" : summary.error
        )
    }

    /// One line per finished connection (docs/telemetry.md): addresses, workloads, identities,
    /// direction, bytes each way, duration, error.
    private func accessLog(
        direction: TrackedConnection.Direction,
        labels: TrafficLabels,
        source: IPEndpoint?,
        destination: IPEndpoint,
        sent: Int,
        received: Int,
        duration: Duration,
        error: String?
    ) {
        var metadata: Logger.Metadata = [
            "direction": "\(direction.rawValue)",
            "src.addr": "\(source.map { "\($0)" } ?? "-")",
            "src.workload": "\(labels.sourceWorkload)",
            "src.namespace": "\(labels.sourceWorkloadNamespace)",
            "src.identity": "\(labels.sourcePrincipal)",
            "dst.addr": "\(destination)",
            "dst.workload": "\(labels.destinationWorkload)",
            "dst.namespace": "\(labels.destinationWorkloadNamespace)",
            "dst.identity": "\(labels.destinationPrincipal)",
            "dst.service": "\(labels.destinationService)",
            "security": "\(labels.connectionSecurityPolicy.rawValue)",
            "bytes_sent": "\(sent)",
            "bytes_recv": "\(received)",
            "duration_ms": "\(duration.milliseconds)",
            "response_flags": "\(labels.responseFlags)",
        ]
        if let error { metadata["error"] = "\(error)" }
        logger.info("connection complete", metadata: metadata)
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
