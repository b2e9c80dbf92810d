public import AmbitTelemetry
public import Logging
public import NIOCore
import Prometheus

/// The operational ports every Ambit daemon serves, the same way: Prometheus metrics on all
/// addresses (`/metrics`, `/stats/prometheus`), readiness on all addresses (`/healthz/ready`), and
/// the admin port on 127.0.0.1 only (`/config_dump`, `/logging`).
public struct OperationalEndpoints: Sendable {
    public struct Ports: Sendable, Equatable {
        public var metrics: Int
        public var readiness: Int
        public var admin: Int
        /// A connection to any of them that sends nothing for this long is closed.
        public var idleTimeout: TimeAmount = OperationalHTTPServer.idleTimeout

        public init(metrics: Int = 15020, readiness: Int = 15021, admin: Int = 15000) {
            self.metrics = metrics
            self.readiness = readiness
            self.admin = admin
        }
    }

    /// Why the process is not ready (`nil`: ready).
    public typealias Readiness = @Sendable () async -> String?
    /// The admin port's `/config_dump`, as JSON.
    public typealias ConfigDump = @Sendable () async -> String
    /// What the configuration source rejects now (files or objects kept at their last good state).
    public typealias ConfigProblems = @Sendable () -> [String]
    /// What a ready process still wants said on its readiness page (certificates the CA will not renew).
    public typealias ReadinessNotes = @Sendable () async -> [String]

    private let channels: [any Channel]

    /// Binds the three ports; `process` names the daemon on the admin port's index page.
    public static func start(
        _ process: String,
        ports: Ports,
        group: any EventLoopGroup,
        metrics: MeshMetrics,
        logger: Logger,
        readiness: @escaping Readiness,
        configDump: @escaping ConfigDump,
        configProblems: @escaping ConfigProblems = { [] },
        readinessNotes: @escaping ReadinessNotes = { [] }
    ) async throws -> OperationalEndpoints {
        var channels: [any Channel] = []
        // `ambit_config_rejected`: how many files or objects the configuration source rejects now (their last
        // good state stays in force), refreshed at each scrape.
        let rejected = metrics.registry.makeGauge(
            descriptor: MetricNameDescriptor(
                metricName: "ambit_config_rejected",
                helpText: "Configuration files or objects rejected now (their last good state stays in force)"
            )
        )
        do {
            channels.append(
                try await OperationalHTTPServer.listenMetrics(
                    port: ports.metrics,
                    group: group,
                    idleTimeout: ports.idleTimeout,
                    metrics: metrics
                ) {
                    rejected.set(Double(configProblems().count))
                }.get()
            )
            channels.append(
                try await OperationalHTTPServer.listen(
                    host: "0.0.0.0",
                    port: ports.readiness,
                    group: group,
                    idleTimeout: ports.idleTimeout
                ) {
                    _,
                    path,
                    _ in
                    guard path == "/healthz/ready" else {
                        return .text("not found; try /healthz/ready\n", status: .notFound)
                    }
                    // Rejected configuration does not make the process unready (its last good state is in
                    // force), but it is shown here so that whoever checks readiness sees it.
                    let notes =
                        configProblems().map { "config rejected: \($0)\n" }.joined()
                        + (await readinessNotes()).map { "\($0)\n" }.joined()
                    guard let reason = await readiness() else { return .text("ready\n" + notes) }
                    return .text("not ready: \(reason)\n" + notes, status: .serviceUnavailable)
                }.get()
            )
            // Admin: localhost only.
            channels.append(
                try await OperationalHTTPServer.listen(
                    host: "127.0.0.1",
                    port: ports.admin,
                    group: group,
                    idleTimeout: ports.idleTimeout
                ) {
                    method,
                    path,
                    query in
                    switch path {
                    case "/config_dump":
                        return .json(await configDump())
                    case "/logging":
                        return LogLevelControl.shared.adminRequest(method: method, query: query, logger: logger)
                    default:
                        return .text(
                            "\(process) admin\n  GET /config_dump\n  GET /logging\n"
                                + "  POST /logging?level=trace|debug|info|notice|warning|error|critical\n",
                            status: path == "/" ? .ok : .notFound
                        )
                    }
                }.get()
            )
        } catch {
            for channel in channels { try? await channel.close() }
            throw error
        }
        return OperationalEndpoints(channels: channels)
    }

    public func close() async {
        for channel in channels { try? await channel.close() }
    }
}
