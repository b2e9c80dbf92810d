import AmbitCA
import AmbitCLI
import AmbitCapture
import AmbitConfig
import AmbitModel
import AmbitWaypoint
import ArgumentParser
import Logging

/// `ambit-sidecar`: Ambit's L7 proxy run as one pod's sidecar, the way conventional sidecar meshes
/// work. It exists to measure ambient mode against sidecar mode with the same code on both sides
/// (Benchmarks/mesh): the waypoint's HTTP engine, inside the pod's own network namespace.
@main
struct AmbitSidecarCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ambit-sidecar",
        abstract: "Ambit's L7 proxy as one pod's sidecar (for the ambient-versus-sidecar benchmark).",
        discussion: """
            Run inside the pod's network namespace (as root: it installs the pod's nftables capture, \
            the same rules as ambit-node's, and removes them on exit). Outbound: the pod's TCP is \
            redirected to 127.0.0.1:15001; HTTP is proxied per request (HTTPRoutes apply) and sent over \
            HBONE with the pod's identity to the destination pod's 15008; other TCP at L4; destinations \
            outside the mesh as plain TCP. Inbound: HBONE on 15008, the AuthorizationPolicies that \
            select the pod checked per request, then HTTP to the application on 127.0.0.1. Plaintext \
            inbound (15006) is refused, as with PeerAuthentication STRICT. Ports 15020 metrics, 15021 \
            readiness, 15000 admin (127.0.0.1) in the pod.
            """
    )

    @Option(help: "The pod as namespace/name.")
    var pod: String

    @Option(help: "The pod's service account (its identity).")
    var serviceAccount: String

    @OptionGroup(title: "Configuration source")
    var source: ConfigSourceOptions

    @Option(help: "Local CA directory (ambitctl ca init) that issues the pod's certificate.")
    var caDir: String

    @Option(help: "Event loop threads (a sidecar is usually given one or two cores).") var threads = 1
    @Option(help: "Seconds to let requests finish on SIGTERM.") var drainSeconds: Int = 2

    @OptionGroup(title: "External authorization (CUSTOM AuthorizationPolicies)")
    var mesh: MeshConfigOptions

    @OptionGroup(title: "Limits of the HBONE listener (port 15008)")
    var hboneLimits: HBONELimitOptions

    @OptionGroup(title: "Logging")
    var logging: LoggingOptions

    func validate() throws {
        _ = try podKey()
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    private func podKey() throws -> ObjectKey {
        guard let key = ObjectKey(.pod, namespacedName: pod) else {
            throw ValidationError("--pod must be namespace/name, not \"\(pod)\"")
        }
        return key
    }

    func run() async throws {
        let key = try podKey()
        try await runDaemon("ambit-sidecar", logging: logging, source: source) { logger, config in
            var options = WaypointProcessOptions(
                gateway: ObjectKey(.gateway, namespace: key.namespace, name: "sidecar-\(key.name)"),
                serviceAccount: serviceAccount,
                config: config,
                certificates: .localCA(directory: caDir, trustDomain: nil)
            )
            options.eventLoopThreads = threads
            options.drainDeadline = .seconds(drainSeconds)
            options.hboneLimits = hboneLimits.limits
            options.meshConfig = try mesh.load()
            for warning in options.meshConfig.warnings { logger.warning("\(warning)") }
            options.sidecar = SidecarCapture(
                pod: key,
                install: { try InPodRules.apply() },
                remove: { try? InPodRules.remove() },
                outboundListener: {
                    try CaptureSockets.listener(
                        address: IPEndpoint(.v4(0x7F00_0001), MeshPorts.outbound),
                        mark: MeshMarks.agentSocket,
                        reusePort: true,
                        transparent: false
                    )
                },
                originalDestination: { OriginalDestination.read($0) },
                mark: MeshMarks.agentSocket
            )
            try await WaypointProcess(options: options, logger: logger).run()
        }
    }
}
