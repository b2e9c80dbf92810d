import AmbitModel
import FoundationEssentials

/// What `lab status` shows, computed from `lab.json`, the manifest directory (enrollment) and the agents'
/// admin API (capture, tunnels).
public struct LabStatusReport: Codable, Sendable {
    public var name: String
    public var phase: String
    public var mesh: Bool
    public var stateDirectory: String
    public var nodes: [Node]
    public var pods: [Pod]
    /// ambit-ca, when the lab runs one (`ca: service`).
    public var ca: CA?

    public struct CA: Codable, Sendable {
        public var netns: String
        public var address: String
        public var pid: Int32?
        public var alive: Bool?
        /// Whether its readiness port answers 200.
        public var ready: Bool?
    }

    public struct Node: Codable, Sendable {
        public var name: String
        public var netns: String
        public var underlayIP: String
        public var podCIDR: String
        public var agentPid: Int32?
        public var agentAlive: Bool?
        /// `connections.active` from the agent's config dump; `nil` when unknown.
        public var tunnels: Int?

        // Unknown values are written as explicit nulls, so JSON readers see every key.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(name, forKey: .name)
            try container.encode(netns, forKey: .netns)
            try container.encode(underlayIP, forKey: .underlayIP)
            try container.encode(podCIDR, forKey: .podCIDR)
            try container.encode(agentPid, forKey: .agentPid)
            try container.encode(agentAlive, forKey: .agentAlive)
            try container.encode(tunnels, forKey: .tunnels)
        }
    }

    public struct Pod: Codable, Sendable {
        public var name: String
        public var namespace: String
        public var node: String
        public var ip: String?
        public var uid: String
        public var enrolled: Bool
        /// Whether the node's agent reports the pod captured; `nil` when the agent is not reachable.
        public var captured: Bool?
        public var appPid: Int32?
        public var appAlive: Bool?
        /// Ready per the lab kubelet (its readiness probe, or its app running); `nil` before the kubelet reported.
        public var ready: Bool?
        /// The kubelet's last probe result for the pod.
        public var probe: String?

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(name, forKey: .name)
            try container.encode(namespace, forKey: .namespace)
            try container.encode(node, forKey: .node)
            try container.encode(ip, forKey: .ip)
            try container.encode(uid, forKey: .uid)
            try container.encode(enrolled, forKey: .enrolled)
            try container.encode(captured, forKey: .captured)
            try container.encode(appPid, forKey: .appPid)
            try container.encode(appAlive, forKey: .appAlive)
            try container.encode(ready, forKey: .ready)
            try container.encode(probe, forKey: .probe)
        }
    }

    static func make(record: LabRecord, layout: LabLayout, probe: AgentProbe?) -> LabStatusReport {
        let labels = ManifestLabels.read(directory: layout.manifestsDirectory)
        var snapshots: [String: AgentProbe.Snapshot] = [:]
        let nodes = record.nodes.map { node -> Node in
            let alive = node.agent?.isAlive
            if alive == true, let snapshot = probe?.snapshot(netns: node.netns) { snapshots[node.name] = snapshot }
            return Node(
                name: node.name,
                netns: node.netns,
                underlayIP: node.underlayIP,
                podCIDR: node.podCIDR,
                agentPid: node.agent?.pid,
                agentAlive: alive,
                tunnels: snapshots[node.name]?.activeConnections
            )
        }
        let kubelets = Dictionary(
            uniqueKeysWithValues: record.nodes.map { ($0.name, LabKubelet.report(layout: layout, node: $0.name)) }
        )
        let pods = record.pods.map { pod in
            let probed = kubelets[pod.node]??.pods[pod.name]
            return Pod(
                name: pod.name,
                namespace: pod.namespace,
                node: pod.node,
                ip: pod.ip,
                uid: pod.uid,
                enrolled: labels.isEnrolled(namespace: pod.namespace, pod: pod.name),
                captured: snapshots[pod.node].map { $0.capturedUIDs.contains(pod.uid) },
                appPid: pod.app?.pid,
                appAlive: pod.app?.isAlive,
                ready: probed?.ready,
                probe: probed?.message
            )
        }
        let ca = record.controlPlane.map { plane in
            let alive = plane.ca?.isAlive
            return CA(
                netns: plane.netns,
                address: plane.caAddress,
                pid: plane.ca?.pid,
                alive: alive,
                ready: alive == true ? probe.map { $0.isReady(netns: plane.netns) } : false
            )
        }
        return LabStatusReport(
            name: record.name,
            phase: record.phase.rawValue,
            mesh: record.spec.mesh,
            stateDirectory: layout.root.path,
            nodes: nodes,
            pods: pods,
            ca: ca
        )
    }

    /// The human-readable tables.
    public var table: String {
        func yesNo(_ value: Bool?) -> String { value.map { $0 ? "yes" : "no" } ?? "-" }
        var text = "Lab \(name) (\(phase), mesh \(mesh ? "on" : "off")), state \(stateDirectory)\n\n"
        if let ca {
            let process = ca.pid.map { "\($0) \(ca.alive == true ? "alive" : "dead")" } ?? "-"
            text += Self.format(
                [
                    ["CA", "NETNS", "ADDRESS", "PROCESS", "READY"],
                    ["ambit-ca", ca.netns, ca.address, process, yesNo(ca.ready)],
                ]
            )
            text += "\n"
        }
        text += Self.format(
            [["NODE", "NETNS", "UNDERLAY", "POD CIDR", "AGENT", "TUNNELS"]]
                + nodes.map { node in
                    let agent = node.agentPid.map { "\($0) \(node.agentAlive == true ? "alive" : "dead")" } ?? "-"
                    return [
                        node.name, node.netns, node.underlayIP, node.podCIDR, agent,
                        node.tunnels.map(String.init) ?? "-",
                    ]
                }
        )
        text += "\n"
        text += Self.format(
            [["POD", "NAMESPACE", "NODE", "IP", "ENROLLED", "CAPTURED", "READY", "APP"]]
                + pods.map { pod in
                    let app = pod.appPid.map { "\($0) \(pod.appAlive == true ? "alive" : "dead")" } ?? "-"
                    return [
                        pod.name, pod.namespace, pod.node, pod.ip ?? "-", yesNo(pod.enrolled), yesNo(pod.captured),
                        yesNo(pod.ready), app,
                    ]
                }
        )
        return text
    }

    static func format(_ rows: [[String]]) -> String {
        guard let columns = rows.map(\.count).max() else { return "" }
        let widths = (0..<columns).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padded(to: widths[index] + 2)
            }.joined()
        }.joined(separator: "\n") + "\n"
    }

    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).flatMap { String(data: $0, encoding: .utf8) } ?? "{}"
    }
}
