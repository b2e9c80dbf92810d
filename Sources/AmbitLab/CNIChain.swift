import AmbitModel
import FoundationEssentials

/// Calls the lab's CNI chain (`bridge` + `host-local`, then `ambit-cni` when the mesh is on) the way a container
/// runtime does: CNI_* environment, network config on stdin, `prevResult` threaded through, plugins executed in
/// the node's network namespace.
struct CNIChain: Sendable {
    static let networkName = "ambit-lab"
    static let cniVersion = "1.0.0"
    static let interface = "eth0"
    static let bridgePlugin = "bridge"
    static let ambitPlugin = "ambit-cni"

    let tools: HostTools
    let runner: any CommandRunning
    let layout: LabLayout
    let cniBinDirectory: String
    let binDirectory: String
    let mesh: Bool

    /// The plugins in chain order.
    var plugins: [String] { mesh ? [Self.bridgePlugin, Self.ambitPlugin] : [Self.bridgePlugin] }

    struct Pod: Sendable {
        var name: String
        var namespace: String
        var uid: String
        var containerID: String
        var netns: String
        var node: String
        var nodeNetns: String
        var podCIDR: IPCIDR
    }

    /// Network config of `plugin` (without `prevResult`).
    func config(plugin: String, pod: Pod) -> [String: Any] {
        var config: [String: Any] = ["cniVersion": Self.cniVersion, "name": Self.networkName, "type": plugin]
        if plugin == Self.bridgePlugin {
            config["bridge"] = "cni0"
            config["isGateway"] = true
            config["ipMasq"] = false
            config["hairpinMode"] = true
            config["ipam"] = [
                "type": "host-local",
                "subnet": pod.podCIDR.description,
                "dataDir": layout.ipamDirectory(node: pod.node),
                "routes": [["dst": "0.0.0.0/0"]],
            ]
        } else {
            config["agentSocket"] = layout.cniSocket(node: pod.node)
            config["enrollmentFile"] = layout.enrollmentFile(node: pod.node)
        }
        return config
    }

    func executable(_ plugin: String) -> String {
        plugin == Self.ambitPlugin ? "\(binDirectory)/\(plugin)" : "\(cniBinDirectory)/\(plugin)"
    }

    func environment(command: String, pod: Pod) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["CNI_COMMAND"] = command
        environment["CNI_CONTAINERID"] = pod.containerID
        environment["CNI_NETNS"] = LabLayout.netnsPath(pod.netns)
        environment["CNI_IFNAME"] = Self.interface
        environment["CNI_PATH"] = "\(cniBinDirectory):\(binDirectory)"
        environment["CNI_ARGS"] = [
            "IgnoreUnknown=1",
            "K8S_POD_NAMESPACE=\(pod.namespace)",
            "K8S_POD_NAME=\(pod.name)",
            "K8S_POD_INFRA_CONTAINER_ID=\(pod.containerID)",
            "K8S_POD_UID=\(pod.uid)",
        ].joined(separator: ";")
        return environment
    }

    /// Runs one plugin. Returns its stdout on success; on failure throws with the plugin's CNI error JSON verbatim.
    func invoke(_ command: String, plugin: String, pod: Pod, prevResult: Any?) throws -> String {
        var config = config(plugin: plugin, pod: pod)
        if let prevResult { config["prevResult"] = prevResult }
        let input = Data(JSONValue(config).serialized().utf8)
        let result = try runner.run(
            tools.nsenter,
            ["--net=\(LabLayout.netnsPath(pod.nodeNetns))", executable(plugin)],
            environment: environment(command: command, pod: pod),
            input: input
        )
        guard result.succeeded else {
            let output = result.standardOutput.trimmingWhitespace()
            let stderr = result.standardError.trimmingWhitespace()
            throw LabError(
                "CNI \(command) of \(plugin) for pod \(pod.namespace)/\(pod.name) failed (exit \(result.status)): "
                    + (output.isEmpty ? "(no output)" : output) + (stderr.isEmpty ? "" : "\nstderr: \(stderr)")
            )
        }
        return result.standardOutput
    }

    /// ADD through the chain. `onAdded` is called after each plugin succeeds (so the caller can record it before
    /// the next one runs). Returns the bridge result and the final result.
    func add(pod: Pod, onAdded: (String, String) throws -> Void) throws -> (bridge: String, final: String) {
        var previous: Any?
        var bridgeResult = ""
        var last = ""
        for plugin in plugins {
            let output = try invoke("ADD", plugin: plugin, pod: pod, prevResult: previous)
            guard let parsed = try? JSONValue.parse(Array(output.utf8)) else {
                throw LabError("CNI ADD of \(plugin) printed no JSON result: \(output)")
            }
            if plugin == Self.bridgePlugin { bridgeResult = output }
            previous = parsed
            last = output
            try onAdded(plugin, output)
        }
        return (bridgeResult, last)
    }

    /// DEL of the plugins that were added, in reverse chain order, each with the cached final ADD result.
    /// Never stops early; returns one line per plugin.
    func delete(pod: Pod, added: [String], cachedResult: String?) -> [String] {
        let prevResult = cachedResult.flatMap { try? JSONValue.parse(Array($0.utf8)) }
        var lines: [String] = []
        for plugin in added.reversed() {
            do {
                _ = try invoke("DEL", plugin: plugin, pod: pod, prevResult: prevResult)
                lines.append("CNI DEL \(plugin) for \(pod.namespace)/\(pod.name)")
            } catch {
                lines.append("warning: \(error)")
            }
        }
        return lines
    }

    /// The first IPv4 address in a CNI result (`ips[].address`, without the prefix length).
    static func podIP(fromResult text: String) -> String? {
        guard let ips = (try? JSONValue.parse(Array(text.utf8)))?["ips"]?.arrayValue else { return nil }
        for entry in ips {
            if let address = entry["address"]?.stringValue, let ip = address.split(separator: "/").first,
                IPAddress(ip)?.isIPv4 == true
            {
                return String(ip)
            }
        }
        return nil
    }
}
