import AmbitConfig
import AmbitModel
import AmbitTelemetry
import FoundationEssentials

extension NodeAgent {
    /// Everything the agent works from, as JSON: its pods, the workloads and services it knows,
    /// policies, certificates with expiry, live connections and HBONE pools.
    func configDump() async -> String {
        let snapshot = inputs.store.snapshot
        let captured: [[String: Any]] = inputs.registry.all.map { pod in
            [
                "uid": pod.record.uid, "namespace": pod.record.namespace, "name": pod.record.name,
                "ips": pod.record.ips, "netns": pod.record.netnsPath,
                "connections": inputs.connections.of(pod: pod.record.uid).count,
            ]
        }
        let workloads: [[String: Any]] = snapshot.pods.values.sorted { $0.key < $1.key }.compactMap { pod in
            guard let workload = snapshot.workload(for: pod.key) else { return nil }
            return [
                "namespace": workload.namespace, "name": workload.name,
                "ips": pod.podIPs.map { "\($0)" }, "node": pod.nodeName ?? "",
                "identity": workload.identity.uri, "enrollment": "\(workload.enrollment)",
            ]
        }
        let services: [[String: Any]] = snapshot.services.values.sorted { $0.key < $1.key }.map { service in
            [
                "namespace": service.metadata.namespace, "name": service.metadata.name,
                "clusterIPs": service.clusterIPs.map { "\($0)" },
                "ports": service.ports.map { Int($0.port) },
            ]
        }
        let policies = snapshot.authorizationPolicies.keys.sorted().map { "\($0.namespace)/\($0.name)" }
        let certificates: [[String: Any]] = await inputs.certificates.status().map { status in
            var entry: [String: Any] = [
                "identity": status.identity.uri, "consecutiveFailures": status.consecutiveFailures,
            ]
            if let expiry = status.expiry { entry["expiry"] = expiry.formatted(.iso8601) }
            if let renewal = status.renewalTime { entry["renewal"] = renewal.formatted(.iso8601) }
            if let error = status.lastError { entry["lastError"] = error }
            return entry
        }
        let pools = await inputs.client.status()
        let activeConnections = inputs.connections.count
        let state = capturer.readiness
        let dump: [String: Any] = [
            "node": options.nodeName,
            "configVersion": Int(snapshot.version),
            "ready": state.isReady,
            "active": capturer.isActive,
            "notReady": state.missing,
            "capturedPods": captured,
            "workloads": workloads,
            "services": services,
            "authorizationPolicies": policies,
            "certificates": certificates,
            "connections": ["active": activeConnections],
            "hbonePools": pools.map { key, value in
                ["key": "\(key)", "connections": value.connections, "streams": value.streams] as [String: Any]
            },
            "logLevel": "\(LogLevelControl.shared.level)",
            "configSource": source.statusDump(),
        ]
        return JSONValue(dump).serialized(indented: true) + "\n"
    }
}
