import AmbitModel
import FoundationEssentials
import Logging

/// The source's cache: every object of every collection, decoded, with the last good version of
/// one the decoder rejects; published to the store as a whole.
extension KubernetesSource {
    static func key(of object: JSONValue, kind: ResourceKind) -> ObjectKey? {
        guard let name = object["metadata"]?["name"]?.stringValue else { return nil }
        let namespace = kind.isNamespaced ? (object["metadata"]?["namespace"]?.stringValue ?? "default") : ""
        return ObjectKey(kind, namespace: namespace, name: name)
    }

    /// Decodes one object; list items come without `kind` and `apiVersion`, which are filled in.
    func decode(_ object: JSONValue, resource: KubernetesResource) -> Result<ManifestObject, ManifestError> {
        var object = object
        if object["kind"] == nil { object = object.setting("kind", to: .string(resource.kind.rawValue)) }
        if object["apiVersion"] == nil { object = object.setting("apiVersion", to: .string(resource.apiVersion)) }
        var result = ManifestDecoder.Result()
        do throws(ManifestError) {
            try decoder.decodeDocument(
                YAMLValue(node: object.yamlNode, path: .root),
                label: "object",
                file: "kubernetes \(resource.path)",
                into: &result
            )
        } catch {
            return .failure(error)
        }
        guard let decoded = result.objects.first, decoded.key.kind == resource.kind else {
            let warning = result.warnings.first.map(\.description) ?? "not a \(resource.kind.rawValue)"
            return .failure(ManifestError(file: "kubernetes \(resource.path)", message: warning))
        }
        return .success(decoded)
    }

    func replace(
        _ kind: ResourceKind,
        items: [JSONValue],
        resource: KubernetesResource?,
        resourceVersion: String?
    ) {
        var decoded: [(ObjectKey, Result<ManifestObject, ManifestError>)] = []
        decoded.reserveCapacity(items.count)
        if let resource {
            for item in items {
                guard let key = Self.key(of: item, kind: kind) else {
                    logger.error("Kubernetes \(kind.plural) list holds an object without metadata.name; skipped")
                    continue
                }
                decoded.append((key, decode(item, resource: resource)))
            }
        }
        let newErrors = state.withLock { state -> [ManifestError] in
            let keep = Set(decoded.map(\.0))
            for key in (state.entries[kind] ?? [:]).keys where !keep.contains(key) {
                state.entries[kind]?.removeValue(forKey: key)
            }
            var errors: [ManifestError] = []
            for (key, result) in decoded {
                if let error = Self.store(result, at: key, in: &state) { errors.append(error) }
            }
            state.collections[kind]?.synced = true
            if let resource {
                state.collections[kind]?.served = true
                state.collections[kind]?.apiVersion = resource.apiVersion
            }
            state.collections[kind]?.resourceVersion = resourceVersion
            state.collections[kind]?.lastError = nil
            return errors
        }
        for error in newErrors { logRejected(error) }
        if resource != nil {
            logger.info(
                "listed \(kind.plural)",
                metadata: ["objects": "\(decoded.count)", "resourceVersion": "\(resourceVersion ?? "-")"]
            )
        }
        changed()
    }

    func apply(_ resource: KubernetesResource, object: JSONValue) {
        guard let key = Self.key(of: object, kind: resource.kind) else { return }
        let result = decode(object, resource: resource)
        let error = state.withLock { state in Self.store(result, at: key, in: &state) }
        if let error { logRejected(error) }
        changed()
    }

    func remove(_ key: ObjectKey) {
        _ = state.withLock { state in state.entries[key.kind]?.removeValue(forKey: key) }
        changed()
    }

    /// Stores a decoded object, or records why it was rejected (keeping the last good version).
    /// Returns the error when it is new, so it is logged once.
    static func store(
        _ result: Result<ManifestObject, ManifestError>,
        at key: ObjectKey,
        in state: inout State
    ) -> ManifestError? {
        switch result {
        case .success(let object):
            state.entries[key.kind, default: [:]][key] = Entry(object: object, error: nil)
            return nil
        case .failure(let error):
            let previous = state.entries[key.kind]?[key]
            state.entries[key.kind, default: [:]][key] = Entry(object: previous?.object, error: error)
            return previous?.error == error ? nil : error
        }
    }

    func logRejected(_ error: ManifestError) {
        logger.error("rejected Kubernetes object, keeping its last good version (if any): \(error)")
    }

    @discardableResult
    func updateStatus<T>(_ kind: ResourceKind, _ body: (inout CollectionStatus) -> T) -> T {
        state.withLock { state in body(&state.collections[kind]!) }
    }

    /// An error worded for the operator: what failed and what to check.
    func describe(_ error: any Error, kind: ResourceKind, operation: String) -> String {
        switch error {
        case KubernetesAPIError.status(let code, _, _) where code == 401:
            return "\(error) — the API server refused the credentials (\(cluster.origin)); is the token valid?"
        case KubernetesAPIError.status(let code, _, _) where code == 403:
            return
                "\(error) — RBAC must allow get, list and watch on \(kind.plural) for this service account (deploy/rbac.yaml)"
        default:
            return "\(error)"
        }
    }
}
