public import AmbitModel
import Foundation

extension KubernetesSource: PodAnnotationWriter {
    public var podAnnotations: (any PodAnnotationWriter)? { self }

    public func setAnnotation(_ name: String, to value: String?, onPod pod: ObjectKey) async throws {
        let patch: [String: Any] = ["metadata": ["annotations": [name: value.map { $0 as Any } ?? NSNull()]]]
        let json = try JSONSerialization.data(withJSONObject: patch, options: [.sortedKeys, .withoutEscapingSlashes])
        let body = String(decoding: json, as: UTF8.self)
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
