import AmbitModel
import AmbitYAML
import FoundationEssentials

/// Namespace and Pod labels as the manifest directory says now (after `lab label` and `lab apply`), read the way an
/// agent would: every `*.yaml`/`*.yml` file, every document, later files overriding earlier ones.
struct ManifestLabels: Sendable {
    var namespaces: [String: [String: String]] = [:]
    /// Keyed by `namespace/name`.
    var pods: [String: [String: String]] = [:]

    static func read(directory: String) -> ManifestLabels {
        var result = ManifestLabels()
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { !$0.hasPrefix(".") && ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) }.sorted()
        for file in files {
            let path = URL(fileURLWithPath: directory).appendingPathComponent(file).path
            guard let text = try? String(contentsOfFile: path, encoding: .utf8),
                let documents = try? YAMLReader.allDocuments(yaml: text).map(\.value)
            else { continue }
            for case let object as [String: Any] in documents {
                guard let kind = object["kind"] as? String, let metadata = object["metadata"] as? [String: Any],
                    let name = metadata["name"] as? String
                else { continue }
                let labels = (metadata["labels"] as? [String: Any] ?? [:]).compactMapValues { "\($0)" }
                switch kind {
                case "Namespace": result.namespaces[name] = labels
                case "Pod": result.pods["\(metadata["namespace"] as? String ?? "default")/\(name)"] = labels
                default: break
                }
            }
        }
        return result
    }

    func isEnrolled(namespace: String, pod: String) -> Bool {
        Enrollment(
            podLabels: pods["\(namespace)/\(pod)"] ?? [:],
            namespaceLabels: namespaces[namespace] ?? [:]
        ).isEnrolled
    }
}
