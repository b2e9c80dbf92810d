import AmbitModel
import FoundationEssentials

/// Talks to a node's `ambit-node` over its loopback-only ports from inside the node's netns
/// (`nsenter --net=<node netns> curl`): readiness on 15021, the admin API on 15000.
struct AgentProbe: Sendable {
    static let readinessURL = "http://127.0.0.1:15021/healthz/ready"
    static let configDumpURL = "http://127.0.0.1:15000/config_dump"

    let tools: HostTools
    let runner: any CommandRunning

    /// The body of a GET, or `nil` when the agent does not answer 2xx within `timeout` seconds.
    func get(_ url: String, netns: String, timeout: Int = 2) -> String? {
        guard let curl = tools.curl else { return nil }
        let result = try? runner.run(
            tools.nsenter,
            ["--net=\(LabLayout.netnsPath(netns))", curl, "-fsS", "-m", String(timeout), url]
        )
        guard let result, result.succeeded else { return nil }
        return result.standardOutput
    }

    func isReady(netns: String) -> Bool {
        get(Self.readinessURL, netns: netns, timeout: 1) != nil
    }

    /// What the status table shows for a node: captured pod uids and the number of active tunnels.
    struct Snapshot: Sendable {
        var capturedUIDs: Set<String>
        var activeConnections: Int?
    }

    func snapshot(netns: String) -> Snapshot? {
        guard let body = get(Self.configDumpURL, netns: netns) else { return nil }
        return Self.parse(configDump: body)
    }

    /// Reads `capturedPods[].uid` and `connections.active` from a config dump; `nil` if it is not a JSON object.
    static func parse(configDump body: String) -> Snapshot? {
        guard let object = try? JSONValue.parse(Array(body.utf8)), object.objectValue != nil else { return nil }
        let captured = (object["capturedPods"]?.arrayValue ?? []).compactMap { $0["uid"]?.stringValue }
        let active = object["connections"]?["active"]?.doubleValue.flatMap { Int(exactly: $0) }
        return Snapshot(capturedUIDs: Set(captured), activeConnections: active)
    }
}
