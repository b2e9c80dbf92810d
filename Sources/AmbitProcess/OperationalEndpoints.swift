public import AmbitTelemetry
public import Logging
public import NIOCore

/// The operational ports every Ambit daemon serves, the same way: Prometheus metrics on all
/// addresses (`/metrics`, `/stats/prometheus`), readiness on all addresses (`/healthz/ready`), and
/// the admin port on 127.0.0.1 only (`/config_dump`, `/logging`).
public struct OperationalEndpoints: Sendable {
    public struct Ports: Sendable, Equatable {
        public var metrics: Int
        public var readiness: Int
        public var admin: Int

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

    private let channels: [any Channel]

    /// Binds the three ports; `process` names the daemon on the admin port's index page.
    public static func start(
        _ process: String,
        ports: Ports,
        group: any EventLoopGroup,
        metrics: MeshMetrics,
        logger: Logger,
        readiness: @escaping Readiness,
        configDump: @escaping ConfigDump
    ) async throws -> OperationalEndpoints {
        var channels: [any Channel] = []
        do {
            channels.append(
                try await OperationalHTTPServer.listenMetrics(port: ports.metrics, group: group, metrics: metrics).get()
            )
            channels.append(
                try await OperationalHTTPServer.listen(host: "0.0.0.0", port: ports.readiness, group: group) {
                    _,
                    path,
                    _ in
                    guard path == "/healthz/ready" else {
                        return .text("not found; try /healthz/ready\n", status: .notFound)
                    }
                    guard let reason = await readiness() else { return .text("ready\n") }
                    return .text("not ready: \(reason)\n", status: .serviceUnavailable)
                }.get()
            )
            // Admin: localhost only.
            channels.append(
                try await OperationalHTTPServer.listen(host: "127.0.0.1", port: ports.admin, group: group) {
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
