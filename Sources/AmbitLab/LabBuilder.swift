import AmbitModel
import FoundationEssentials
import Glibc

/// Where the lab finds its programs and keeps its state (the resolved command-line options).
public struct LabEnvironment: Sendable {
    public var stateDirectory: String
    /// Holds `ambitctl`, `ambit-node`, `ambit-cni`.
    public var binDirectory: String
    public var cniBinDirectory: String
    /// Holds `echo.py`; `nil` when not found (an error only if a pod has an app).
    public var appsDirectory: String?

    public init(stateDirectory: String, binDirectory: String, cniBinDirectory: String, appsDirectory: String?) {
        self.stateDirectory = stateDirectory
        self.binDirectory = binDirectory
        self.cniBinDirectory = cniBinDirectory
        self.appsDirectory = appsDirectory
    }
}

/// `lab up`: builds the lab step by step, saving `lab.json` after each step so `lab down` can always clean up.
struct LabBuilder {
    static let agentReadyTimeout: TimeInterval = 30
    static let appReadyTimeout: TimeInterval = 10

    let spec: LabSpec
    let labFile: String
    let environment: LabEnvironment
    let runner: any CommandRunning
    let say: (String) -> Void

    var layout: LabLayout { LabLayout(stateDirectory: environment.stateDirectory, name: spec.name) }

    func build() throws -> LabRecord {
        let store = LabRecordStore(layout: layout)
        let tools = try preflight()
        let network = LabNetwork(tools: tools, runner: runner)
        try refuseIfUp(store: store, network: network)

        say("Building lab \(spec.name) (mesh: \(spec.mesh ? "on" : "off")) in \(layout.root.path)")
        try createDirectories()
        var record = LabRecord(
            name: spec.name,
            phase: .building,
            spec: spec,
            labFile: labFile,
            binDirectory: environment.binDirectory,
            cniBinDirectory: environment.cniBinDirectory
        )
        try store.save(record)
        do {
            try buildNetwork(&record, network: network, store: store)
            try writeInitialManifests(&record)
            if spec.usesCAService { try startControlPlane(&record, tools: tools, network: network, store: store) }
            if spec.mesh { try startAgents(&record, tools: tools, store: store) }
            try addPods(&record, tools: tools, store: store)
            try startKubelets(&record, tools: tools, store: store)
        } catch {
            record.phase = .failed
            try? store.save(record)
            throw LabError("\(error)\nThe lab is half built; `ambitctl lab down --name \(spec.name)` removes it.")
        }
        record.phase = .up
        try store.save(record)
        return record
    }

    // MARK: - Steps

    private func preflight() throws -> HostTools {
        try HostTools.requireRoot("up")
        let needsApp = spec.pods.contains { !$0.appPorts.isEmpty }
        let tools = try HostTools.locate(python: needsApp, curl: spec.mesh, cniBinDir: environment.cniBinDirectory)
        if needsApp, echoApp == nil {
            throw LabError(
                "cannot find the lab app (lab/apps/echo.py) near \(environment.binDirectory); pass --apps-dir"
            )
        }
        if spec.mesh {
            let binaries =
                ["ambitctl", "ambit-node", "ambit-cni"] + (spec.usesCAService ? ["ambit-ca"] : [])
                + (spec.pods.contains { $0.waypoint != nil } ? ["ambit-waypoint"] : [])
            for binary in binaries {
                let path = "\(environment.binDirectory)/\(binary)"
                guard FileManager.default.isExecutableFile(atPath: path) else {
                    throw LabError(
                        "\(path) not found: build it (`swift build`) or pass --bin-dir; "
                            + "or set `mesh: false` in the lab file for a plain network"
                    )
                }
            }
        }
        return tools
    }

    private var echoApp: String? {
        guard let directory = environment.appsDirectory else { return nil }
        let path = URL(fileURLWithPath: directory).appendingPathComponent("echo.py").path
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    private func refuseIfUp(store: LabRecordStore, network: LabNetwork) throws {
        let hint = "run `ambitctl lab down --name \(spec.name)` first"
        if store.exists { throw LabError("lab \(spec.name) is already up (\(layout.recordFile)); \(hint)") }
        let planned =
            [layout.underlayNetns] + spec.nodes.map { layout.nodeNetns($0.name) }
            + spec.pods.map { layout.podNetns($0.name) }
        if let existing = planned.first(where: network.netnsExists) {
            throw LabError(
                "network namespace \(existing) already exists but lab \(spec.name) has no state; "
                    + "a crashed lab? `ambitctl lab down --all` removes leftover ambit-* namespaces"
            )
        }
    }

    private func createDirectories() throws {
        var directories = [layout.root.path, layout.manifestsDirectory, layout.logsDirectory]
        for node in spec.nodes {
            directories += [layout.ipamDirectory(node: node.name), layout.runDirectory(node: node.name)]
        }
        for directory in directories {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
    }

    private func buildNetwork(_ record: inout LabRecord, network: LabNetwork, store: LabRecordStore) throws {
        record.netns.append(layout.underlayNetns)
        try store.save(record)
        try network.createUnderlay(netns: layout.underlayNetns)
        say("  underlay  netns \(layout.underlayNetns), bridge br0, \(spec.underlay)")
        for (index, node) in spec.nodes.enumerated() {
            let netns = layout.nodeNetns(node.name)
            let address = spec.underlayAddress(ofNodeAt: index)
            record.netns.append(netns)
            record.nodes.append(
                .init(name: node.name, netns: netns, underlayIP: address.description, podCIDR: node.podCIDR.description)
            )
            try store.save(record)
            let routes = spec.nodes.enumerated().filter { $0.offset != index }.map {
                (cidr: $0.element.podCIDR, via: spec.underlayAddress(ofNodeAt: $0.offset))
            }
            try network.createNode(
                netns: netns,
                underlayNetns: layout.underlayNetns,
                peerName: LabSpec.underlayInterfaceName(node: node.name),
                address: address,
                underlay: spec.underlay,
                routes: routes
            )
            say("  node      \(node.name): netns \(netns), eth0 \(address), pods \(node.podCIDR)")
        }
    }

    private func writeInitialManifests(_ record: inout LabRecord) throws {
        if spec.mesh {
            try FileManager.default.createDirectory(
                atPath: layout.controlPlaneDirectory,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700]
            )
            try runner.check(
                "\(environment.binDirectory)/ambitctl",
                ["ca", "init", "--dir", layout.caDirectory],
                what: "create the mesh CA"
            )
            try FileManager.default.copyItem(
                atPath: "\(layout.caDirectory)/root-cert.pem",
                toPath: layout.caRootsFile
            )
            say("  ca        \(layout.caDirectory) (root \(layout.caRootsFile))")
        }
        let manifests = LabManifests(directory: layout.manifestsDirectory)
        try manifests.writeNamespaces(spec)
        try manifests.writeServices(spec)
        try manifests.writePods([])
        for extra in spec.manifests { try manifests.copy(extra) }
        say("  manifests \(layout.manifestsDirectory) (\(spec.manifests.count) extra)")
    }

    private func startAgents(_ record: inout LabRecord, tools: HostTools, store: LabRecordStore) throws {
        if spec.capture == .ebpf, spec.usesCAService { try ensureHostBPFFilesystem() }
        for index in record.nodes.indices {
            let node = record.nodes[index]
            var command =
                try daemonPrefix(tools: tools, netns: node.netns, token: "ambit-node-\(node.name)") + [
                    "\(environment.binDirectory)/ambit-node",
                    "--node-name", node.name,
                    "--manifests", layout.manifestsDirectory,
                ]
            command += try certificateArguments(
                record,
                token: "ambit-node-\(node.name)",
                namespace: "ambit-system",
                serviceAccount: "ambit-node",
                node: node.name,
                pod: nil
            )
            command += [
                "--state-dir", layout.runDirectory(node: node.name),
                "--cni-socket", layout.cniSocket(node: node.name),
                "--enrollment-file", layout.enrollmentFile(node: node.name),
                // Only this lab's pods: another lab may reuse the same pod addresses.
                "--netns-prefix", layout.podNetns(""),
                "--log-format", "json",
            ]
            if spec.capture == .ebpf {
                command += ["--capture", "ebpf", "--bpf-pin-dir", layout.bpfPinDirectory(node: node.name)]
            }
            let agent = try ProcessHandle.spawnDetached(command, log: layout.agentLog(node: node.name))
            record.nodes[index].agent = agent
            try store.save(record)
            try waitUntilReady(agent, tools: tools, netns: node.netns, what: "ambit-node on \(node.name)")
            say("  agent     \(node.name): ambit-node pid \(agent.pid) ready (log \(agent.log))")
        }
    }

    /// One lab kubelet per node, in the node's namespace (where the kubelet's probes come from).
    private func startKubelets(_ record: inout LabRecord, tools: HostTools, store: LabRecordStore) throws {
        for index in record.nodes.indices {
            let node = record.nodes[index]
            let command = [
                tools.nsenter, "--net=\(LabLayout.netnsPath(node.netns))",
                "\(environment.binDirectory)/ambitctl", "lab", "kubelet", "--name", record.name, "--node", node.name,
                "--state-dir", environment.stateDirectory,
            ]
            let kubelet = try ProcessHandle.spawnDetached(command, log: layout.kubeletLog(node: node.name))
            record.nodes[index].kubelet = kubelet
            try store.save(record)
            say("  kubelet   \(node.name): pid \(kubelet.pid) (log \(kubelet.log))")
        }
    }

    private func addPods(_ record: inout LabRecord, tools: HostTools, store: LabRecordStore) throws {
        let manifests = LabManifests(directory: layout.manifestsDirectory)
        let chain = CNIChain(
            tools: tools,
            runner: runner,
            layout: layout,
            cniBinDirectory: environment.cniBinDirectory,
            binDirectory: environment.binDirectory,
            mesh: spec.mesh
        )
        let network = LabNetwork(tools: tools, runner: runner)
        func writePods() throws {
            let pairs = record.pods.compactMap { pod in
                spec.pods.first { $0.name == pod.name }.map { (spec: $0, record: pod) }
            }
            try manifests.writePods(pairs)
        }
        for pod in spec.pods {
            guard let node = spec.node(named: pod.node) else { continue }
            let index = record.pods.count
            record.pods.append(
                .init(
                    name: pod.name,
                    namespace: pod.namespace,
                    node: pod.node,
                    netns: layout.podNetns(pod.name),
                    containerID: Self.randomContainerID(),
                    uid: UUID().uuidString.lowercased()
                )
            )
            record.netns.append(layout.podNetns(pod.name))
            try store.save(record)
            try network.addNetns(layout.podNetns(pod.name))
            // As in Kubernetes, the Pod object exists (Pending, no IP) before the runtime calls CNI.
            try writePods()
            let cniPod = Self.cniPod(record.pods[index], layout: layout, podCIDR: node.podCIDR)
            _ = try chain.add(pod: cniPod) { plugin, result in
                record.pods[index].addedPlugins.append(plugin)
                record.pods[index].cniResult = result
                if plugin == CNIChain.bridgePlugin { record.pods[index].ip = CNIChain.podIP(fromResult: result) }
                try store.save(record)
            }
            guard let ip = record.pods[index].ip else {
                throw LabError("the bridge plugin returned no IPv4 address for \(pod.qualifiedName)")
            }
            try writePods()
            if !pod.appPorts.isEmpty, let python = tools.python3, let echoApp {
                let command =
                    [tools.nsenter, "--net=\(LabLayout.netnsPath(layout.podNetns(pod.name)))", python, "-u", echoApp]
                    + ["--name", pod.qualifiedName] + pod.appPorts.flatMap { ["--port", String($0)] }
                let app = try ProcessHandle.spawnDetached(command, log: layout.appLog(pod: pod.name))
                record.pods[index].app = app
                try store.save(record)
                try waitForListeners(app, ports: pod.appPorts, pod: pod.qualifiedName)
            }
            if pod.waypoint != nil, spec.mesh {
                let certificates = try certificateArguments(
                    record,
                    token: "waypoint-\(pod.namespace)-\(pod.name)",
                    namespace: pod.namespace,
                    serviceAccount: pod.serviceAccount,
                    node: pod.node,
                    pod: pod.name
                )
                let command =
                    try daemonPrefix(
                        tools: tools,
                        netns: layout.podNetns(pod.name),
                        token: "waypoint-\(pod.namespace)-\(pod.name)"
                    ) + [
                        "\(environment.binDirectory)/ambit-waypoint",
                        "--gateway", "\(pod.namespace)/\(pod.name)",
                        "--service-account", pod.serviceAccount,
                        "--manifests", layout.manifestsDirectory,
                        "--log-format", "json",
                    ] + certificates + (spec.meshConfig.map { ["--mesh-config", $0] } ?? [])
                let waypoint = try ProcessHandle.spawnDetached(command, log: layout.appLog(pod: pod.name))
                record.pods[index].app = waypoint
                try store.save(record)
                try waitForListeners(waypoint, ports: [15008, 15021], pod: pod.qualifiedName)
            }
            let ports = pod.appPorts.map(String.init).joined(separator: ",")
            let what =
                pod.waypoint == nil
                ? "app pid \(record.pods[index].app?.pid ?? 0) on \(ports)"
                : "ambit-waypoint pid \(record.pods[index].app?.pid ?? 0)"
            let app = record.pods[index].app.map { _ in ", \(what)" } ?? ""
            let plugins = record.pods[index].addedPlugins.joined(separator: "+")
            say("  pod       \(pod.qualifiedName) on \(pod.node): \(ip) (cni \(plugins))\(app)")
        }
    }

    static func cniPod(_ pod: LabRecord.PodRecord, layout: LabLayout, podCIDR: IPCIDR) -> CNIChain.Pod {
        CNIChain.Pod(
            name: pod.name,
            namespace: pod.namespace,
            uid: pod.uid,
            containerID: pod.containerID,
            netns: pod.netns,
            node: pod.node,
            nodeNetns: layout.nodeNetns(pod.node),
            podCIDR: podCIDR
        )
    }

    /// 64 lowercase hex digits, like a container runtime's sandbox id.
    static func randomContainerID() -> String {
        (0..<2).map { _ in UUID().uuidString.replacing("-", with: "").lowercased() }.joined()
    }

    /// Waits until the app listens on every port. `/proc/<pid>/net/tcp` shows the sockets of the *process's*
    /// network namespace, so no tool has to enter the pod.
    private func waitForListeners(_ app: ProcessHandle, ports: [Int], pod: String) throws {
        let deadline = Date().addingTimeInterval(Self.appReadyTimeout)
        while true {
            let listening = Self.listeningPorts(pid: app.pid)
            if ports.allSatisfy(listening.contains) { return }
            guard app.isAlive else { throw LabError("the app of \(pod) exited; log tail:\n\(app.logTail())") }
            guard Date() < deadline else {
                throw LabError("the app of \(pod) is not listening on \(ports) after 10 s; log:\n\(app.logTail())")
            }
            usleep(50_000)
        }
    }

    static func listeningPorts(pid: Int32) -> Set<Int> {
        var ports = Set<Int>()
        for table in ["tcp", "tcp6"] {
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/net/\(table)", encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                // fields: sl, local_address (hex ip:port), rem_address, st (0A = LISTEN), ...
                guard fields.count > 3, fields[3] == "0A", let port = fields[1].split(separator: ":").last,
                    let value = Int(port, radix: 16)
                else { continue }
                ports.insert(value)
            }
        }
        return ports
    }
}
