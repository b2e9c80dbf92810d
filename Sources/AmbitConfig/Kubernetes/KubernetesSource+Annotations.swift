public import AmbitModel
import FoundationEssentials

extension KubernetesSource: PodAnnotationWriter {
    public var podAnnotations: (any PodAnnotationWriter)? { self }

    public func setAnnotation(_ name: String, to value: String?, onPod pod: ObjectKey) async throws {
        let annotation: JSONValue = value.map(JSONValue.string) ?? .null
        let body = JSONValue.object(["metadata": .object(["annotations": .object([name: annotation])])]).serialized()
        let path = "/api/v1/namespaces/\(pod.namespace)/pods/\(pod.name)/status"
        do {
            _ = try await client.mergePatch(path, body)
        } catch {
            throw KubernetesWriteError(path: path, reason: "\(error)")
        }
    }
}

/// A write to the API server that failed, with the object's path and the server's answer.
public struct KubernetesWriteError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "PATCH \(path): \(reason)" }
}
