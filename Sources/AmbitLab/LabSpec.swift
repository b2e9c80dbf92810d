public import AmbitModel

/// What a lab file describes: the lab's nodes, namespaces, pods and services.
///
/// Parse it with ``LabSpec/parse(yaml:file:baseDirectory:)`` or ``LabSpec/load(path:)``; both validate everything
/// that `lab up` relies on (names usable as netns and interface names, non-overlapping CIDRs, references between
/// objects), so a spec value is always buildable.
public struct LabSpec: Codable, Sendable, Equatable {
    /// Short lab name, `[a-z0-9-]{1,8}`; part of every netns name (`ambit-<name>-…`).
    public var name: String
    /// The underlay network; node `i` (0-based) gets host address `.11 + i`.
    public var underlay: IPCIDR
    /// `false` builds a plain network: no CA, no `ambit-node` agents, no `ambit-cni` in the chain.
    public var mesh: Bool
    public var nodes: [Node]
    public var namespaces: [Namespace]
    public var pods: [Pod]
    public var services: [Service]
    /// Extra manifest files, as absolute paths (the lab file lists them relative to itself).
    public var manifests: [String]
    /// How the agents capture pods (`ambit-node --capture`); `nil` means nftables.
    public var capture: Capture? = nil
    /// Where agents and waypoints get certificates; `nil` means `.service`.
    public var ca: CAMode? = nil
    /// Istio MeshConfig for the lab's waypoints (`ambit-waypoint --mesh-config`), as an absolute path.
    public var meshConfig: String? = nil

    /// `service`: ambit-ca runs in the control-plane netns and no agent or waypoint can read a CA key.
    /// `local`: every agent and waypoint signs with the lab's CA directory (`--ca-dir`), as before ambit-ca.
    public enum CAMode: String, Codable, Sendable, CaseIterable {
        case service
        case local
    }

    public var usesCAService: Bool { mesh && ca != .local }

    /// The control plane's underlay address, `.10` (nodes start at `.11`).
    public var controlPlaneAddress: IPAddress { underlay.address(at: Self.firstNodeHostOffset - 1) }

    public enum Capture: String, Codable, Sendable, CaseIterable {
        case nftables
        case ebpf
    }

    public struct Node: Codable, Sendable, Equatable {
        public var name: String
        public var podCIDR: IPCIDR
    }

    public struct Namespace: Codable, Sendable, Equatable {
        public var name: String
        public var labels: [String: String]
    }

    public struct Pod: Codable, Sendable, Equatable {
        public var name: String
        public var namespace: String
        public var node: String
        public var serviceAccount: String
        public var labels: [String: String]
        /// Ports the lab echo app listens on; empty means no app process.
        public var appPorts: [Int]
        /// Set for a waypoint pod: the lab runs `ambit-waypoint` in it and writes its Gateway.
        public var waypoint: Waypoint? = nil
        /// The controller that "made" the pod (`workload: {kind: Deployment, name: web}`): the lab writes the
        /// pod with the `generateName`, `ownerReferences` and labels that controller would give it.
        public var workload: Controller? = nil
        /// The Pod spec's probes, run by the lab's kubelet (``LabKubelet``) from the pod's node.
        public var readinessProbe: Probe? = nil
        public var livenessProbe: Probe? = nil

        /// A waypoint pod (`waypoint:` in the lab file): a Gateway of class `istio-waypoint` named
        /// like the pod, served by `ambit-waypoint` with the pod's service account.
        public struct Waypoint: Codable, Sendable, Equatable {
            /// `istio.io/waypoint-for`: `service`, `workload` or `all`.
            public var trafficType: String
            /// `istio.io/for-service-account`: the waypoint serves that account's workloads.
            public var forServiceAccount: String?
        }

        /// `namespace/name`.
        public var qualifiedName: String { "\(namespace)/\(name)" }

        public struct Controller: Codable, Sendable, Equatable {
            public static let kinds = ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob"]
            public var kind: String
            public var name: String

            /// The pod's direct owner and the labels its controller adds: a Deployment's pods belong to a
            /// ReplicaSet `<name>-<pod-template-hash>`, a CronJob's to a Job `<name>-<scheduled minute>`.
            public var owner: (apiVersion: String, kind: String, name: String, labels: [String: String]) {
                // A stable stand-in for the hash Kubernetes derives from the pod template.
                let hash = String(
                    name.utf8.reduce(UInt32(2_166_136_261)) { ($0 ^ UInt32($1)) &* 16_777_619 },
                    radix: 16
                )
                switch kind {
                case "Deployment":
                    return ("apps/v1", "ReplicaSet", "\(name)-\(hash)", ["pod-template-hash": hash])
                case "CronJob": return ("batch/v1", "Job", "\(name)-29410560", [:])
                case "Job": return ("batch/v1", "Job", name, [:])
                default: return ("apps/v1", kind, name, [:])
                }
            }
        }
    }

    public struct Service: Codable, Sendable, Equatable {
        public var name: String
        public var namespace: String
        /// e.g. `istio.io/use-waypoint`.
        public var labels: [String: String] = [:]
        public var clusterIP: IPAddress?
        public var selector: [String: String]
        public var ports: [Port]

        public struct Port: Codable, Sendable, Equatable {
            public var name: String?
            public var port: Int
            public var targetPort: Int
            public var `protocol`: String
        }
    }

    /// The first node address is the underlay's host `.11`.
    public static let firstNodeHostOffset: UInt32 = 11

    /// Underlay address of the node at `index`.
    public func underlayAddress(ofNodeAt index: Int) -> IPAddress {
        underlay.address(at: Self.firstNodeHostOffset + UInt32(index))
    }

    public func node(named name: String) -> Node? {
        nodes.first { $0.name == name }
    }
}
