/// Builders for Kubernetes-style YAML, so tests state only what matters to them.
public enum Manifests {
    public static func namespace(_ name: String, labels: [String: String] = [:]) -> String {
        """
        apiVersion: v1
        kind: Namespace
        metadata:
          name: \(name)
        \(block("labels", labels, indent: 2))
        """
    }

    public static func pod(
        _ name: String,
        namespace: String = "default",
        ip: String? = nil,
        node: String? = nil,
        serviceAccount: String? = nil,
        labels: [String: String] = [:],
        annotations: [String: String] = [:],
        ports: [(name: String, port: Int)] = [],
        ready: Bool? = nil,
        phase: String = "Running",
        hostNetwork: Bool = false
    ) -> String {
        var lines = [
            "apiVersion: v1",
            "kind: Pod",
            "metadata:",
            "  name: \(name)",
            "  namespace: \(namespace)",
        ]
        if !labels.isEmpty { lines.append(block("labels", labels, indent: 2)) }
        if !annotations.isEmpty { lines.append(block("annotations", annotations, indent: 2)) }
        lines.append("spec:")
        if let node { lines.append("  nodeName: \(node)") }
        if let serviceAccount { lines.append("  serviceAccountName: \(serviceAccount)") }
        if hostNetwork { lines.append("  hostNetwork: true") }
        lines.append("  containers:")
        lines.append("    - name: app")
        lines.append("      image: app")
        if !ports.isEmpty {
            lines.append("      ports:")
            for port in ports {
                lines.append("        - name: \(port.name)")
                lines.append("          containerPort: \(port.port)")
            }
        }
        lines.append("status:")
        lines.append("  phase: \(phase)")
        if let ip { lines.append("  podIP: \(ip)") }
        if let ready {
            lines.append("  conditions:")
            lines.append("    - type: Ready")
            lines.append("      status: \"\(ready ? "True" : "False")\"")
        }
        return lines.joined(separator: "\n")
    }

    public static func service(
        _ name: String,
        namespace: String = "default",
        clusterIP: String,
        selector: [String: String],
        ports: [(port: Int, targetPort: String)],
        labels: [String: String] = [:]
    ) -> String {
        var lines = [
            "apiVersion: v1",
            "kind: Service",
            "metadata:",
            "  name: \(name)",
            "  namespace: \(namespace)",
        ]
        if !labels.isEmpty { lines.append(block("labels", labels, indent: 2)) }
        lines += ["spec:", "  clusterIP: \(clusterIP)", block("selector", selector, indent: 2), "  ports:"]
        for port in ports {
            lines.append("    - port: \(port.port)")
            lines.append("      targetPort: \(port.targetPort)")
        }
        return lines.joined(separator: "\n")
    }

    /// `documents` joined with `---` separators.
    public static func join(_ documents: [String]) -> String {
        documents.joined(separator: "\n---\n") + "\n"
    }

    private static func block(_ key: String, _ values: [String: String], indent: Int) -> String {
        let pad = String(repeating: " ", count: indent)
        guard !values.isEmpty else { return "" }
        let entries = values.keys.sorted().map { "\(pad)  \($0): \"\(values[$0]!)\"" }
        return (["\(pad)\(key):"] + entries).joined(separator: "\n")
    }
}
