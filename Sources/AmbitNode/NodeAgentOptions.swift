public import AmbitCA
public import AmbitConfig
public import AmbitHBONE
import AmbitModel
public import AmbitProcess

/// Settings of `ambit-node`.
public struct NodeAgentOptions: Sendable {
    public var nodeName: String
    /// Where the configuration comes from (a manifest directory, the Kubernetes API).
    public var config: ConfigSourceSelection
    /// Where workload certificates come from: a CA service (no CA key on the node) or a local CA directory.
    public var certificates: CertificateSourceSelection
    public var stateDirectory: String
    public var cniSocket: String
    public var enrollmentFile: String
    /// Where the container runtime keeps pod network namespaces (scanned to find running pods
    /// that become enrolled after they started).
    public var netnsDirectory: String = "/var/run/netns"
    /// Only namespaces whose file name starts with this (empty: all).
    public var netnsPrefix: String = ""
    /// Metrics, readiness and admin ports.
    public var ports = OperationalEndpoints.Ports()
    public var drainDeadline: Duration = .seconds(5)
    /// The cluster's name in telemetry.
    public var clusterID = ConfigOptions.defaultClusterID

    /// What the pods' HBONE listeners (port 15008) admit, together (one budget for the node).
    public var hboneLimits = HBONEServerLimits()

    /// HBONE settings for the pods' servers and the agent's client: defaults, with the drain
    /// deadline (GOAWAY grace on shutdown) taken from `drainDeadline` and the servers' limits.
    var hboneConfiguration: HBONEConfiguration {
        var configuration = HBONEConfiguration()
        configuration.drainDeadline = .init(drainDeadline)
        configuration.serverLimits = hboneLimits
        return configuration
    }
    public var eventLoopThreads = 2
    /// How pods are captured.
    public var capture: CaptureMode = .nftables
    /// With `capture == .ebpf`: use nftables instead when the host cannot run the eBPF capture.
    public var fallbackToNFTables = false
    /// With eBPF: where maps and links are pinned (default `/sys/fs/bpf/ambit/<node name>`).
    public var bpfPinDirectory: String?
    /// With eBPF: the cgroup-v2 directory the outbound programs attach to (default: the cgroup2 mount).
    public var cgroupPath: String?

    public init(
        nodeName: String,
        config: ConfigSourceSelection,
        certificates: CertificateSourceSelection,
        stateDirectory: String,
        cniSocket: String? = nil,
        enrollmentFile: String? = nil
    ) {
        self.nodeName = nodeName
        self.config = config
        self.certificates = certificates
        self.stateDirectory = stateDirectory
        self.cniSocket = cniSocket ?? "\(stateDirectory)/cni.sock"
        self.enrollmentFile = enrollmentFile ?? "\(stateDirectory)/enrollment.json"
    }
}
