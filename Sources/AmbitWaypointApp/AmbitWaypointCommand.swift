import AmbitCLI
import AmbitConfig
import AmbitModel
import AmbitWaypoint
import ArgumentParser
import Logging

/// `ambit-waypoint`: the L7 proxy of one service account (or namespace, or service).
struct AmbitWaypointCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ambit-waypoint",
        abstract: "Ambit's waypoint proxy: L7 authorization, HTTPRoute routing and telemetry over HBONE.",
        discussion: """
            Serves the Gateway (class istio-waypoint) named by --gateway: node agents send it the traffic \
            of the services and workloads that use it (istio.io/use-waypoint, istio.io/for-service-account). \
            It terminates HBONE on 15008 with the identity of --service-account, detects HTTP/1.1, HTTP/2 and \
            gRPC inside each tunnel (other TCP is forwarded at L4), applies AuthorizationPolicies with \
            targetRefs (CUSTOM ones through the ext_authz gRPC authorizers of --mesh-config) and HTTPRoutes with a Service parent, and opens a new HBONE tunnel to the chosen \
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

    @OptionGroup(title: "Certificates")
    var ca: CertificateOptions

    @Option(help: "Address the HBONE listener binds.") var listen: String = "0.0.0.0"
    @Option(help: "HBONE port.") var hbonePort = Int(MeshPorts.hbone)

    @OptionGroup(title: "External authorization (CUSTOM AuthorizationPolicies)")
    var mesh: MeshConfigOptions

    @OptionGroup(title: "Operational ports and drain")
    var daemon: DaemonOptions

    @OptionGroup(title: "Limits of the HBONE listener (port 15008)")
    var hboneLimits: HBONELimitOptions

    @OptionGroup(title: "Logging")
    var logging: LoggingOptions

    func validate() throws {
        _ = try gatewayKey()
    }

    private func gatewayKey() throws -> ObjectKey {
        guard let key = ObjectKey(.gateway, namespacedName: gateway) else {
            throw ValidationError("--gateway must be namespace/name, not \"\(gateway)\"")
        }
        return key
    }

    func run() async throws {
        let key = try gatewayKey()
        try await runDaemon("ambit-waypoint", logging: logging, source: source) { logger, config in
            var options = WaypointProcessOptions(
                gateway: key,
                serviceAccount: serviceAccount ?? key.name,
                config: config,
                certificates: ca.selection(impersonate: false, clusterID: daemon.clusterID)
            )
            options.listenHost = listen
            options.hbonePort = hbonePort
            options.ports = daemon.ports
            options.drainDeadline = daemon.drainDeadline
            options.hboneLimits = hboneLimits.limits
            options.clusterID = daemon.clusterID
            options.meshConfig = try mesh.load()
            for warning in options.meshConfig.warnings { logger.warning("\(warning)") }
            try await WaypointProcess(options: options, logger: logger).run()
        }
    }
}
