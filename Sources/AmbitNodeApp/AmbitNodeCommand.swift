import AmbitCLI
import AmbitConfig
import AmbitModel
import AmbitNode
import ArgumentParser
import Logging

/// `ambit-node`: the per-node agent. `ambit-node [run]` captures the enrolled pods of this node, carries
/// their TCP traffic in HBONE tunnels and enforces L4 policy; `ambit-node uninstall` removes what a stopped
/// agent left in place.
struct AmbitNodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ambit-node",
        abstract: "Ambit's node agent.",
        subcommands: [RunCommand.self, UninstallCommand.self],
        defaultSubcommand: RunCommand.self
    )
}

/// `ambit-node run` (the default): the agent itself.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Ambit's node agent: captures enrolled pods and tunnels their traffic over HBONE.",
        discussion: """
            Run one per node, as root or with NET_ADMIN, NET_RAW and SYS_ADMIN. Configuration comes from \
            --manifests DIR (the local lab), or from the Kubernetes API: --kubernetes inside a pod (its \
            service account; deploy/), --kubeconfig FILE outside. Ports: 15020 metrics \
            (/metrics), 15021 readiness (/healthz/ready), 15000 admin on 127.0.0.1 (/config_dump, /logging). \
            Inside each captured pod: 15001 outbound, 15006 inbound plaintext, 15008 HBONE. \
            SIGTERM drains (stop accepting, GOAWAY, wait up to --drain-seconds); capture rules stay so \
            enrolled pods fail closed until the agent is back (`ambit-node uninstall` removes them for good). \
            "run" is the default: `ambit-node --node-name N ...` runs the agent.
            """
    )

    @Option(help: "This node's name (Pod spec.nodeName of the pods it serves).")
    var nodeName: String

    @OptionGroup(title: "Configuration source")
    var source: ConfigSourceOptions

    @OptionGroup(title: "Certificates")
    var ca: CertificateOptions

    @Option(help: "Directory for the agent's state (captured pods, enrollment, CNI socket).")
    var stateDir: String = "/var/run/ambit"

    @Option(help: "Unix socket the CNI plugin talks to (default: <state-dir>/cni.sock).")
    var cniSocket: String?

    @Option(help: "Where the CNI plugin reads enrollment (default: <state-dir>/enrollment.json).")
    var enrollmentFile: String?

    @Option(help: "Directory of pod network namespaces, scanned to enroll running pods.")
    var netnsDir: String = "/var/run/netns"

    @Option(help: "Only namespaces in --netns-dir whose name starts with this are considered.")
    var netnsPrefix: String = ""

    @Option(help: "How pods are captured: nftables (in-pod rules) or ebpf (socket-level programs, bpf/).")
    var capture: String = "nftables"

    @Flag(help: "With --capture ebpf: use nftables when this host cannot run the eBPF capture, instead of exiting.")
    var captureFallback = false

    @Option(help: "With --capture ebpf: where maps and links are pinned (default /sys/fs/bpf/ambit/<node name>).")
    var bpfPinDir: String?

    @Option(help: "With --capture ebpf: cgroup-v2 directory for the outbound programs (default: the cgroup2 mount).")
    var cgroupPath: String?

    @OptionGroup(title: "Operational ports and drain")
    var daemon: DaemonOptions

    @OptionGroup(title: "Limits of the HBONE listener (port 15008)")
    var hboneLimits: HBONELimitOptions

    @OptionGroup(title: "Logging")
    var logging: LoggingOptions

    func validate() throws {
        guard CaptureMode(rawValue: capture) != nil else {
            throw ValidationError("--capture must be nftables or ebpf, not \(capture)")
        }
    }

    func run() async throws {
        try await runDaemon("ambit-node", logging: logging, source: source) { logger, config in
            var options = NodeAgentOptions(
                nodeName: nodeName,
                config: config,
                certificates: ca.selection(impersonate: true, clusterID: daemon.clusterID),
                stateDirectory: stateDir,
                cniSocket: cniSocket,
                enrollmentFile: enrollmentFile
            )
            options.netnsDirectory = netnsDir
            options.netnsPrefix = netnsPrefix
            options.drainDeadline = daemon.drainDeadline
            options.hboneLimits = hboneLimits.limits
            options.clusterID = daemon.clusterID
            options.capture = CaptureMode(rawValue: capture) ?? .nftables
            options.fallbackToNFTables = captureFallback
            options.bpfPinDirectory = bpfPinDir
            options.cgroupPath = cgroupPath
            options.ports = daemon.ports
            try await NodeAgent(options: options, logger: logger).run()
        }
    }
}
