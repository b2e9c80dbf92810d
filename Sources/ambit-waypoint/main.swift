import AmbitCLI
import AmbitConfig
import AmbitModel
import AmbitWaypoint
import ArgumentParser
import Logging

/// `ambit-waypoint`: the L7 proxy of one service account (or namespace, or service).
@main
struct AmbitWaypointCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ambit-waypoint",
        abstract: "Ambit's waypoint proxy: L7 authorization, HTTPRoute routing and telemetry over HBONE.",
        discussion: """
            Serves the Gateway (class istio-waypoint) named by --gateway: node agents send it the traffic \
            of the services and workloads that use it (istio.io/use-waypoint, istio.io/for-service-account). \
            It terminates HBONE on 15008 with the identity of --service-account, detects HTTP/1.1, HTTP/2 and \
            gRPC inside each tunnel (other TCP is forwarded at L4), applies AuthorizationPolicies with \
            targetRefs and HTTPRoutes with a Service parent, and opens a new HBONE tunnel to the chosen \
            endpoint. Ports: 15020 metrics (/metrics), 15021 readiness (/healthz/ready), 15000 admin on \
            127.0.0.1 (/config_dump, /logging). SIGTERM drains: GOAWAY, then open requests may finish \
            until --drain-seconds.
            """
    )

    @Option(help: "The waypoint's Gateway as namespace/name.")
    var gateway: String

    @Option(help: "Service account whose identity the waypoint presents (default: the Gateway's name).")
    var serviceAccount: String?

    @OptionGroup(title: "Configuration source")
    var source: ConfigSourceOptions

    @Option(help: "Local CA directory (ambitctl ca init) that issues the waypoint's certificate.")
    var caDir: String

    @Option(help: "Address the HBONE listener binds.") var listen: String = "0.0.0.0"
    @Option(help: "HBONE port.") var hbonePort = Int(MeshPorts.hbone)
    @Option(help: "Metrics port.") var metricsPort = Int(MeshPorts.metrics)
    @Option(help: "Readiness port.") var readinessPort = Int(MeshPorts.readiness)
    @Option(help: "Admin port (bound to 127.0.0.1).") var adminPort = Int(MeshPorts.admin)
    @Option(help: "Seconds to let requests finish on SIGTERM.") var drainSeconds: Int = 5

    @OptionGroup(title: "Logging")
    var logging: LoggingOptions

    func validate() throws {
        guard drainSeconds >= 0 else { throw ValidationError("--drain-seconds must not be negative") }
        _ = try gatewayKey()
    }

    private func gatewayKey() throws -> ObjectKey {
        let parts = gateway.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw ValidationError("--gateway must be namespace/name, not \"\(gateway)\"")
        }
        return ObjectKey(.gateway, namespace: String(parts[0]), name: String(parts[1]))
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "ambit.waypoint")
        let key = try gatewayKey()
        let config: ConfigSourceSelection
        do {
            config = try source.selection()
        } catch {
            logger.critical("cannot read the configuration source", metadata: ["error": "\(error)"])
            throw ExitCode.failure
        }
        var options = WaypointProcessOptions(
            gateway: key,
            serviceAccount: serviceAccount ?? key.name,
            config: config,
            caDirectory: caDir
        )
        options.listenHost = listen
        options.hbonePort = hbonePort
        options.metricsPort = metricsPort
        options.readinessPort = readinessPort
        options.adminPort = adminPort
        options.drainDeadline = .seconds(drainSeconds)
        do {
            try await WaypointProcess(options: options, logger: logger).run()
        } catch {
            logger.critical("ambit-waypoint failed", metadata: ["error": "\(error)"])
            throw ExitCode.failure
        }
    }
}
