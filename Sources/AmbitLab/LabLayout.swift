public import FoundationEssentials

/// Names and paths of everything one lab creates; the single place that spells them.
///
/// State: `<state-dir>/<lab>/{lab.json, control-plane/{ca/, token-key.pem, token-key.pub.pem}, ca-roots.pem,
/// tokens/, manifests/, logs/, ipam/<node>/, run/<node>/}`. `control-plane/` (mode 0700) holds the only private
/// keys of the mesh; agents and waypoints run with it covered by an empty mount.
/// Network namespaces: `ambit-<lab>-ul` (underlay), `ambit-<lab>-cp` (control plane: ambit-ca),
/// `ambit-<lab>-<node>`, `ambit-<lab>-p-<pod>`.
public struct LabLayout: Sendable {
    public let name: String
    public let root: URL

    public init(stateDirectory: String, name: String) {
        self.name = name
        self.root = URL(fileURLWithPath: stateDirectory).appendingPathComponent(name, isDirectory: true)
    }

    public static let netnsPrefix = "ambit-"
    public static let netnsDirectory = "/var/run/netns"

    public var recordFile: String { path("lab.json") }
    /// Only ambit-ca (and ambitctl on the host) read it: the CA's key and the token signing key.
    public var controlPlaneDirectory: String { path("control-plane") }
    public var caDirectory: String { path("control-plane/ca") }
    public var tokenKeyFile: String { path("control-plane/token-key.pem") }
    public var tokenPublicKeyFile: String { path("control-plane/token-key.pub.pem") }
    /// The mesh root(s), public: what agents and waypoints trust (`--ca-roots`).
    public var caRootsFile: String { path("ca-roots.pem") }
    public var tokensDirectory: String { path("tokens") }
    /// A daemon's service-account token (`--ca-token-file`).
    public func tokenFile(_ name: String) -> String { path("tokens/\(name).token") }
    public var caLog: String { path("logs/ambit-ca.log") }
    public var manifestsDirectory: String { path("manifests") }
    public var logsDirectory: String { path("logs") }
    public func ipamDirectory(node: String) -> String { path("ipam/\(node)") }
    public func runDirectory(node: String) -> String { path("run/\(node)") }
    public func cniSocket(node: String) -> String { path("run/\(node)/cni.sock") }
    /// Where a node agent pins its eBPF maps and links (`--capture ebpf`): on the host's bpffs, per lab and node.
    public func bpfPinDirectory(node: String) -> String { "/sys/fs/bpf/ambit/lab-\(name)-\(node)" }
    public func enrollmentFile(node: String) -> String { path("run/\(node)/enrollment.json") }
    /// What the node's lab kubelet found when it last probed its pods.
    public func kubeletStatus(node: String) -> String { path("run/\(node)/kubelet.json") }
    public func kubeletLog(node: String) -> String { path("logs/kubelet-\(node).log") }
    public func agentLog(node: String) -> String { path("logs/\(node).log") }
    public func appLog(pod: String) -> String { path("logs/pod-\(pod).log") }

    public var underlayNetns: String { "\(Self.netnsPrefix)\(name)-ul" }
    public var controlPlaneNetns: String { "\(Self.netnsPrefix)\(name)-cp" }
    public func nodeNetns(_ node: String) -> String { "\(Self.netnsPrefix)\(name)-\(node)" }
    public func podNetns(_ pod: String) -> String { "\(Self.netnsPrefix)\(name)-p-\(pod)" }

    public static func netnsPath(_ netns: String) -> String { "\(netnsDirectory)/\(netns)" }

    private func path(_ relative: String) -> String {
        root.appendingPathComponent(relative).path
    }
}
