public import AmbitConfig
import AmbitModel
public import AmbitProcess
public import ArgumentParser
public import Logging

/// The operational ports and the drain deadline, as every Ambit daemon takes them.
public struct DaemonOptions: ParsableArguments {
    @Option(help: "Prometheus metrics port (/metrics, all addresses).")
    public var metricsPort = 15020

    @Option(help: "Readiness port (/healthz/ready, all addresses).")
    public var readinessPort = 15021

    @Option(help: "Admin port (/config_dump, /logging), bound to 127.0.0.1.")
    public var adminPort = 15000

    @Option(help: "Seconds to let connections and requests finish on SIGTERM.")
    public var drainSeconds = 5

    @Option(help: "Seconds after which an idle connection to the metrics, readiness or admin port is closed.")
    public var operationalIdleSeconds = 30

    @Option(
        name: .customLong("cluster-id"),
        help: "This cluster's name in telemetry (source_cluster, destination_cluster), as Istio's CLUSTER_ID."
    )
    public var clusterID = ConfigOptions.defaultClusterID

    public init() {}

    public func validate() throws {
        guard drainSeconds >= 0 else { throw ValidationError("--drain-seconds must not be negative") }
        guard operationalIdleSeconds > 0 else { throw ValidationError("--operational-idle-seconds must be positive") }
        for (name, port) in [
            ("--metrics-port", metricsPort), ("--readiness-port", readinessPort), ("--admin-port", adminPort),
        ]
        where !(1...65535).contains(port) {
            throw ValidationError("\(name) must be a port between 1 and 65535, not \(port)")
        }
        guard !clusterID.isEmpty, clusterID.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw ValidationError("--cluster-id must be printable ASCII without spaces, not \"\(clusterID)\"")
        }
    }

    public var ports: OperationalEndpoints.Ports {
        var ports = OperationalEndpoints.Ports(metrics: metricsPort, readiness: readinessPort, admin: adminPort)
        ports.idleTimeout = .seconds(Int64(operationalIdleSeconds))
        return ports
    }

    public var drainDeadline: Duration { .seconds(drainSeconds) }
}

/// Runs a daemon: logging set up, the configuration source read, and every failure logged as
/// critical before the process exits 1 (so the reason is in the log a supervisor collects).
public func runDaemon(
    _ name: String,
    logging: LoggingOptions,
    source: ConfigSourceOptions,
    _ body: (Logger, ConfigSourceSelection) async throws -> Void
) async throws {
    let logger = logging.bootstrap(label: "ambit.\(name.replacing("ambit-", with: ""))")
    let config: ConfigSourceSelection
    do {
        config = try source.selection()
    } catch {
        logger.critical("cannot read the configuration source", metadata: ["error": "\(error)"])
        throw ExitCode.failure
    }
    do {
        try await body(logger, config)
    } catch {
        logger.critical("\(name) failed", metadata: ["error": "\(error)"])
        throw ExitCode.failure
    }
}
