import AmbitModel
import AmbitYAML
import FoundationEssentials

extension LabSpec {
    /// Linux `IFNAMSIZ` - 1.
    static let maxInterfaceNameLength = 15
    /// The underlay-side veth of a node is `ul-<node>` (the node side is `eth0`).
    static func underlayInterfaceName(node: String) -> String { "ul-\(node)" }

    /// Reads and validates a lab file; extra manifest paths are resolved relative to the file.
    public static func load(path: String) throws -> LabSpec {
        let url = URL(fileURLWithPath: path)
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw LabError("cannot read lab file \(path): \(error.readableDescription)")
        }
        return try parse(yaml: text, file: path, baseDirectory: url.deletingLastPathComponent().path)
    }

    /// Parses and validates lab YAML. `file` names the source in errors; `baseDirectory` resolves `manifests`
    /// entries (and they must exist there).
    public static func parse(yaml: String, file: String, baseDirectory: String? = nil) throws -> LabSpec {
        let reader = LabFileReader(file: file)
        let root: YAMLNode?
        do throws(YAMLError) {
            root = try YAMLReader.singleDocument(yaml: yaml)
        } catch {
            throw LabError("\(file)\(error.mark.map { ":\($0.line)" } ?? ""): not valid YAML: \(error)")
        }
        guard let root else { throw LabError("\(file): the lab file is empty") }
        var parser = LabSpecParser(reader: reader, baseDirectory: baseDirectory)
        return try parser.parse(root)
    }
}

/// One pass over the YAML tree that builds a ``LabSpec`` and validates it; remembers nodes so cross-reference
/// errors can point at the right line.
private struct LabSpecParser {
    let reader: LabFileReader
    let baseDirectory: String?

    static var namePattern: Regex<(Substring, Substring?)> { /[a-z0-9]([a-z0-9-]*[a-z0-9])?/ }
    static var podNamePattern: Regex<(Substring, Substring?)> { /[a-z0-9]([a-z0-9.-]*[a-z0-9])?/ }

    init(reader: LabFileReader, baseDirectory: String?) {
        self.reader = reader
        self.baseDirectory = baseDirectory
    }

    mutating func parse(_ root: YAMLNode) throws -> LabSpec {
        let top = try reader.mapping(
            root,
            "",
            known: [
                "name", "underlay", "mesh", "capture", "ca", "nodes", "namespaces", "pods", "services", "manifests",
                "meshConfig",
            ]
        )
        guard let nameNode = top["name"] else { throw reader.error(root, "name", "is required (e.g. name: demo)") }
        let name = try reader.string(nameNode, "name")
        guard name.count <= 8, name.wholeMatch(of: Self.namePattern) != nil else {
            throw reader.error(
                nameNode,
                "name",
                "\"\(name)\" must be 1-8 characters of [a-z0-9-], starting and ending with a letter or digit "
                    + "(it is part of every netns name)"
            )
        }
        guard let underlayNode = top["underlay"] else {
            throw reader.error(root, "underlay", "is required (e.g. underlay: 172.31.0.0/24)")
        }
        let underlay = try cidr(underlayNode, "underlay")
        let mesh = try top["mesh"].map { try reader.bool($0, "mesh") } ?? true
        var capture: LabSpec.Capture?
        if let node = top["capture"] {
            let text = try reader.string(node, "capture")
            guard let value = LabSpec.Capture(rawValue: text) else {
                throw reader.error(node, "capture", "\"\(text)\" must be nftables or ebpf")
            }
            capture = value
        }
        var ca: LabSpec.CAMode?
        if let node = top["ca"] {
            let text = try reader.string(node, "ca")
            guard let value = LabSpec.CAMode(rawValue: text) else {
                throw reader.error(node, "ca", "\"\(text)\" must be service (ambit-ca, the default) or local")
            }
            ca = value
        }

        guard let nodesNode = top["nodes"] else { throw reader.error(root, "nodes", "at least one node is required") }
        let nodes = try parseNodes(nodesNode, underlay: underlay)
        let namespaces = try top["namespaces"].map(parseNamespaces) ?? []
        let pods = try top["pods"].map { try parsePods($0, nodes: nodes, namespaces: namespaces) } ?? []
        let services =
            try top["services"].map {
                try parseServices($0, namespaces: namespaces, nodes: nodes, underlay: underlay)
            } ?? []
        let manifests = try top["manifests"].map(parseManifests) ?? []
        let meshConfig = try top["meshConfig"].map { try existingFile($0, "meshConfig") }
        var spec = LabSpec(
            name: name,
            underlay: underlay,
            mesh: mesh,
            nodes: nodes,
            namespaces: namespaces,
            pods: pods,
            services: services,
            manifests: manifests,
            capture: capture
        )
        spec.meshConfig = meshConfig
        spec.ca = ca
        return spec
    }

    func cidr(_ node: YAMLNode, _ path: String) throws -> IPCIDR {
        let text = try reader.string(node, path)
        switch IPCIDR.lab(text) {
        case .success(let cidr): return cidr
        case .failure(.malformed):
            throw reader.error(node, path, "\"\(text)\" is not an IPv4 CIDR like 10.244.1.0/24")
        case .failure(.hostBitsSet(let network)):
            throw reader.error(node, path, "\"\(text)\" has host bits set; did you mean \(network)?")
        }
    }

    func parseNodes(_ node: YAMLNode, underlay: IPCIDR) throws -> [LabSpec.Node] {
        let items = try reader.sequence(node, "nodes")
        guard !items.isEmpty else { throw reader.error(node, "nodes", "at least one node is required") }
        // Node addresses are .11, .12, ...: they and the broadcast address must fit in the underlay.
        let needed = UInt64(LabSpec.firstNodeHostOffset) + UInt64(items.count) + 1
        guard underlay.size >= needed else {
            throw reader.error(
                node,
                "nodes",
                "\(items.count) nodes need host addresses up to .\(needed - 2), "
                    + "which do not fit in underlay \(underlay)"
            )
        }
        var result: [LabSpec.Node] = []
        for (index, item) in items.enumerated() {
            let path = "nodes[\(index)]"
            let fields = try reader.mapping(item, path, known: ["name", "podCIDR"])
            guard let nameNode = fields["name"] else { throw reader.error(item, "\(path).name", "is required") }
            let name = try reader.string(nameNode, "\(path).name")
            guard name.count <= 63, name.wholeMatch(of: Self.namePattern) != nil else {
                throw reader.error(nameNode, "\(path).name", "\"\(name)\" is not a DNS label ([a-z0-9-], ≤ 63)")
            }
            guard name != "ul", name != "cp", !name.hasPrefix("p-") else {
                throw reader.error(
                    nameNode,
                    "\(path).name",
                    "\"\(name)\" is reserved (netns ambit-<lab>-ul, -cp, -p-<pod>)"
                )
            }
            let interface = LabSpec.underlayInterfaceName(node: name)
            guard interface.count <= LabSpec.maxInterfaceNameLength else {
                throw reader.error(
                    nameNode,
                    "\(path).name",
                    "\"\(name)\" makes the underlay interface name \"\(interface)\" longer than "
                        + "\(LabSpec.maxInterfaceNameLength) characters (Linux IFNAMSIZ); use a node name of at most "
                        + "\(LabSpec.maxInterfaceNameLength - 3) characters"
                )
            }
            guard !result.contains(where: { $0.name == name }) else {
                throw reader.error(nameNode, "\(path).name", "duplicate node name \"\(name)\"")
            }
            guard let cidrNode = fields["podCIDR"] else {
                throw reader.error(item, "\(path).podCIDR", "is required (e.g. 10.244.1.0/24)")
            }
            let podCIDR = try cidr(cidrNode, "\(path).podCIDR")
            guard podCIDR.prefixLength <= 28 else {
                throw reader.error(cidrNode, "\(path).podCIDR", "\(podCIDR) is too small; use /28 or larger")
            }
            if podCIDR.overlaps(underlay) {
                throw reader.error(cidrNode, "\(path).podCIDR", "\(podCIDR) overlaps the underlay \(underlay)")
            }
            if let other = result.first(where: { $0.podCIDR.overlaps(podCIDR) }) {
                throw reader.error(
                    cidrNode,
                    "\(path).podCIDR",
                    "\(podCIDR) overlaps node \(other.name)'s podCIDR \(other.podCIDR)"
                )
            }
            result.append(LabSpec.Node(name: name, podCIDR: podCIDR))
        }
        return result
    }

    func parseNamespaces(_ node: YAMLNode) throws -> [LabSpec.Namespace] {
        var result: [LabSpec.Namespace] = []
        for (index, item) in try reader.sequence(node, "namespaces").enumerated() {
            let path = "namespaces[\(index)]"
            let fields = try reader.mapping(item, path, known: ["name", "labels"])
            guard let nameNode = fields["name"] else { throw reader.error(item, "\(path).name", "is required") }
            let name = try dnsLabel(nameNode, "\(path).name")
            guard !result.contains(where: { $0.name == name }) else {
                throw reader.error(nameNode, "\(path).name", "duplicate namespace \"\(name)\"")
            }
            let labels = try fields["labels"].map { try reader.stringMap($0, "\(path).labels") } ?? [:]
            result.append(LabSpec.Namespace(name: name, labels: labels))
        }
        return result
    }

    func dnsLabel(_ node: YAMLNode, _ path: String) throws -> String {
        let name = try reader.string(node, path)
        guard name.count <= 63, name.wholeMatch(of: Self.namePattern) != nil else {
            throw reader.error(node, path, "\"\(name)\" is not a DNS label ([a-z0-9-], at most 63 characters)")
        }
        return name
    }

    func namespaceReference(_ node: YAMLNode?, _ owner: YAMLNode, _ path: String, _ namespaces: [LabSpec.Namespace])
        throws
        -> String
    {
        guard let node else { throw reader.error(owner, path, "is required") }
        let name = try reader.string(node, path)
        guard namespaces.contains(where: { $0.name == name }) else {
            let known = namespaces.map(\.name).joined(separator: ", ")
            throw reader.error(
                node,
                path,
                "namespace \"\(name)\" is not declared under namespaces (declared: \(known))"
            )
        }
        return name
    }

    func port(_ node: YAMLNode, _ path: String) throws -> Int {
        let value = try reader.int(node, path)
        guard (1...65535).contains(value) else { throw reader.error(node, path, "\(value) is not a port (1-65535)") }
        return value
    }

    func parsePods(_ node: YAMLNode, nodes: [LabSpec.Node], namespaces: [LabSpec.Namespace]) throws -> [LabSpec.Pod] {
        var result: [LabSpec.Pod] = []
        var perNode: [String: UInt64] = [:]
        for (index, item) in try reader.sequence(node, "pods").enumerated() {
            let path = "pods[\(index)]"
            let fields = try reader.mapping(
                item,
                path,
                known: [
                    "name", "namespace", "node", "serviceAccount", "labels", "app", "waypoint", "readinessProbe",
                    "livenessProbe", "workload",
                ]
            )
            guard let nameNode = fields["name"] else { throw reader.error(item, "\(path).name", "is required") }
            let name = try reader.string(nameNode, "\(path).name")
            guard name.count <= 63, name.wholeMatch(of: Self.podNamePattern) != nil else {
                throw reader.error(nameNode, "\(path).name", "\"\(name)\" is not a valid pod name ([a-z0-9.-])")
            }
            // Pod netns names are ambit-<lab>-p-<pod>, so pod names are unique across namespaces.
            guard !result.contains(where: { $0.name == name }) else {
                throw reader.error(nameNode, "\(path).name", "duplicate pod name \"\(name)\" (unique across the lab)")
            }
            let namespace = try namespaceReference(fields["namespace"], item, "\(path).namespace", namespaces)
            guard let nodeNode = fields["node"] else { throw reader.error(item, "\(path).node", "is required") }
            let nodeName = try reader.string(nodeNode, "\(path).node")
            guard let labNode = nodes.first(where: { $0.name == nodeName }) else {
                let known = nodes.map(\.name).joined(separator: ", ")
                throw reader.error(nodeNode, "\(path).node", "no node named \"\(nodeName)\" (nodes: \(known))")
            }
            perNode[nodeName, default: 0] += 1
            // host-local keeps .0, the gateway .1 and the broadcast address.
            guard perNode[nodeName, default: 0] + 3 <= labNode.podCIDR.size else {
                throw reader.error(nodeNode, "\(path).node", "node \(nodeName)'s podCIDR \(labNode.podCIDR) is full")
            }
            var serviceAccount = try fields["serviceAccount"].map { try dnsLabel($0, "\(path).serviceAccount") }
            var labels = try fields["labels"].map { try reader.stringMap($0, "\(path).labels") } ?? [:]
            var waypoint: LabSpec.Pod.Waypoint?
            if let waypointNode = fields["waypoint"] {
                if fields["app"] != nil {
                    throw reader.error(
                        waypointNode,
                        "\(path).waypoint",
                        "a waypoint pod runs ambit-waypoint, not an app"
                    )
                }
                let waypointFields = try reader.mapping(
                    waypointNode,
                    "\(path).waypoint",
                    known: ["for", "forServiceAccount"]
                )
                let forServiceAccount = try waypointFields["forServiceAccount"].map {
                    try dnsLabel($0, "\(path).waypoint.forServiceAccount")
                }
                var trafficType = forServiceAccount == nil ? "service" : "all"
                if let forNode = waypointFields["for"] {
                    trafficType = try reader.string(forNode, "\(path).waypoint.for")
                    guard ["service", "workload", "all"].contains(trafficType) else {
                        throw reader.error(
                            forNode,
                            "\(path).waypoint.for",
                            "\"\(trafficType)\" is not one of service, workload, all"
                        )
                    }
                }
                waypoint = LabSpec.Pod.Waypoint(trafficType: trafficType, forServiceAccount: forServiceAccount)
                // As istiod does for waypoint pods: named by their Gateway, never captured themselves.
                labels["gateway.networking.k8s.io/gateway-name"] = name
                labels[WellKnownLabels.dataplaneMode] = WellKnownLabels.dataplaneModeNone
                serviceAccount = serviceAccount ?? name
            }
            var ports: [Int] = []
            if let app = fields["app"] {
                let appFields = try reader.mapping(app, "\(path).app", known: ["ports"])
                if let portsNode = appFields["ports"] {
                    for (portIndex, portNode) in try reader.sequence(portsNode, "\(path).app.ports").enumerated() {
                        let value = try port(portNode, "\(path).app.ports[\(portIndex)]")
                        guard !ports.contains(value) else {
                            throw reader.error(portNode, "\(path).app.ports[\(portIndex)]", "duplicate port \(value)")
                        }
                        ports.append(value)
                    }
                }
            }
            var pod = LabSpec.Pod(
                name: name,
                namespace: namespace,
                node: nodeName,
                serviceAccount: serviceAccount ?? "default",
                labels: labels,
                appPorts: ports,
                waypoint: waypoint
            )
            if let workloadNode = fields["workload"] {
                let workloadFields = try reader.mapping(workloadNode, "\(path).workload", known: ["kind", "name"])
                guard let kindNode = workloadFields["kind"], let nameNode = workloadFields["name"] else {
                    throw reader.error(workloadNode, "\(path).workload", "needs kind and name")
                }
                let kind = try reader.string(kindNode, "\(path).workload.kind")
                guard LabSpec.Pod.Controller.kinds.contains(kind) else {
                    throw reader.error(
                        kindNode,
                        "\(path).workload.kind",
                        "\"\(kind)\" is not one of \(LabSpec.Pod.Controller.kinds.joined(separator: ", "))"
                    )
                }
                pod.workload = .init(kind: kind, name: try dnsLabel(nameNode, "\(path).workload.name"))
            }
            pod.readinessProbe = try fields["readinessProbe"].map { try reader.probe($0, "\(path).readinessProbe") }
            pod.livenessProbe = try fields["livenessProbe"].map { try reader.probe($0, "\(path).livenessProbe") }
            result.append(pod)
        }
        return result
    }

    func parseServices(
        _ node: YAMLNode,
        namespaces: [LabSpec.Namespace],
        nodes: [LabSpec.Node],
        underlay: IPCIDR
    ) throws -> [LabSpec.Service] {
        var result: [LabSpec.Service] = []
        for (index, item) in try reader.sequence(node, "services").enumerated() {
            let path = "services[\(index)]"
            let fields = try reader.mapping(
                item,
                path,
                known: ["name", "namespace", "labels", "clusterIP", "selector", "ports"]
            )
            guard let nameNode = fields["name"] else { throw reader.error(item, "\(path).name", "is required") }
            let name = try dnsLabel(nameNode, "\(path).name")
            let namespace = try namespaceReference(fields["namespace"], item, "\(path).namespace", namespaces)
            guard !result.contains(where: { $0.name == name && $0.namespace == namespace }) else {
                throw reader.error(nameNode, "\(path).name", "duplicate service \(namespace)/\(name)")
            }
            var clusterIP: IPAddress?
            if let ipNode = fields["clusterIP"] {
                let text = try reader.string(ipNode, "\(path).clusterIP")
                guard let address = IPAddress(text), address.isIPv4 else {
                    throw reader.error(ipNode, "\(path).clusterIP", "\"\(text)\" is not an IPv4 address")
                }
                if underlay.contains(address) || nodes.contains(where: { $0.podCIDR.contains(address) }) {
                    throw reader.error(ipNode, "\(path).clusterIP", "\(text) lies in the underlay or a podCIDR")
                }
                if let other = result.first(where: { $0.clusterIP == address }) {
                    throw reader.error(ipNode, "\(path).clusterIP", "\(text) is already used by \(other.name)")
                }
                clusterIP = address
            }
            let selector = try fields["selector"].map { try reader.stringMap($0, "\(path).selector") } ?? [:]
            var ports: [LabSpec.Service.Port] = []
            let portItems = try fields["ports"].map { try reader.sequence($0, "\(path).ports") } ?? []
            for (portIndex, portItem) in portItems.enumerated() {
                let portPath = "\(path).ports[\(portIndex)]"
                let portFields = try reader.mapping(
                    portItem,
                    portPath,
                    known: ["name", "port", "targetPort", "protocol"]
                )
                guard let portNode = portFields["port"] else {
                    throw reader.error(portItem, "\(portPath).port", "is required")
                }
                let number = try port(portNode, "\(portPath).port")
                let target = try portFields["targetPort"].map { try port($0, "\(portPath).targetPort") } ?? number
                let proto = try portFields["protocol"].map { try reader.string($0, "\(portPath).protocol") } ?? "TCP"
                guard ["TCP", "UDP"].contains(proto) else {
                    throw reader.error(portFields["protocol"], "\(portPath).protocol", "must be TCP or UDP")
                }
                let portName = try portFields["name"].map { try reader.string($0, "\(portPath).name") }
                ports.append(.init(name: portName, port: number, targetPort: target, protocol: proto))
            }
            result.append(
                LabSpec.Service(
                    name: name,
                    namespace: namespace,
                    labels: try fields["labels"].map { try reader.stringMap($0, "\(path).labels") } ?? [:],
                    clusterIP: clusterIP,
                    selector: selector,
                    ports: ports
                )
            )
        }
        return result
    }

    /// A file named in the lab file, relative to it (or absolute); it must exist.
    func existingFile(_ item: YAMLNode, _ path: String) throws -> String {
        let entry = try reader.string(item, path)
        let resolved: String
        if entry.hasPrefix("/") {
            resolved = entry
        } else if let baseDirectory {
            resolved = URL(fileURLWithPath: baseDirectory).appendingPathComponent(entry).standardized.path
        } else {
            throw reader.error(item, path, "a relative path needs a lab file on disk; use an absolute path")
        }
        var isDirectory = false
        guard FileManager.default.fileExists(atPath: resolved, isDirectory: &isDirectory), !isDirectory
        else { throw reader.error(item, path, "no such file: \(resolved)") }
        return resolved
    }

    func parseManifests(_ node: YAMLNode) throws -> [String] {
        var result: [String] = []
        for (index, item) in try reader.sequence(node, "manifests").enumerated() {
            let path = "manifests[\(index)]"
            let resolved = try existingFile(item, path)
            let base = URL(fileURLWithPath: resolved).lastPathComponent
            guard !LabManifests.generatedFiles.contains(base),
                !result.contains(where: { URL(fileURLWithPath: $0).lastPathComponent == base })
            else { throw reader.error(item, path, "another manifest is already named \(base)") }
            result.append(resolved)
        }
        return result
    }
}
