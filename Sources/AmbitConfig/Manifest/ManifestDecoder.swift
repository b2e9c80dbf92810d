import AmbitModel
import AmbitYAML

/// Reads Kubernetes-style YAML (one or many `---`-separated documents, and `kind: List`) into
/// typed objects, with the upstream field names. Every problem becomes a ``ManifestError`` that
/// names the file, line, object and field; object kinds Ambit does not use become warnings.
public struct ManifestDecoder: Sendable {
    /// The result of decoding one file.
    public struct Result: Sendable {
        public var objects: [ManifestObject] = []
        public var warnings: [ManifestWarning] = []
    }

    public init() {}

    /// Largest manifest file read (Kubernetes stores objects of at most 1.5 MiB).
    public static let maximumFileBytes = 4 << 20
    /// `bytes` as text; refused, naming the line, when it is not valid UTF-8.
    public static func validatedText(_ bytes: [UInt8], file: String?) throws(ManifestError) -> String {
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var offset = 0
        var line = 1
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let scalar):
                if scalar.count == 1, scalar.first == UInt8(ascii: "\n") { line += 1 }
                offset += scalar.count
            case .error:
                throw ManifestError(
                    file: file,
                    line: line,
                    message: "not valid UTF-8 (byte \(offset + 1)); text is never repaired, as a replaced "
                        + "character would change what a name or principal matches"
                )
            case .emptyInput:
                return String(decoding: bytes, as: UTF8.self)
            }
        }
    }

    /// Decodes all documents of `text`. The first error aborts the file: a file is applied whole or not at all.
    public func decode(_ text: String, file: String? = nil) throws(ManifestError) -> Result {
        var result = Result()
        let reader: YAMLReader
        do throws(YAMLError) {
            reader = try YAMLReader(yaml: text)
        } catch {
            throw Self.syntaxError(error, file: file)
        }
        var documentIndex = 0
        var lines: [ObjectKey: Int?] = [:]
        while true {
            let root: YAMLNode?
            do throws(YAMLError) {
                root = try reader.nextDocument()
            } catch {
                throw Self.syntaxError(error, file: file)
            }
            guard let root else { break }
            documentIndex += 1
            let value = YAMLValue(node: root, path: .root)
            if value.isNull { continue }  // an empty document between `---` separators
            let before = result.objects.count
            try decodeDocument(value, label: "document \(documentIndex)", file: file, into: &result)
            // One object, one definition: with two, which one applied would depend on document order.
            for object in result.objects[before...] {
                if let first = lines[object.key] {
                    throw ManifestError(
                        file: file,
                        line: value.line,
                        object: object.key.description,
                        message:
                            "defined twice in this file (also in the document at line \(first.map(String.init) ?? "?"))"
                    )
                }
                lines[object.key] = value.line
            }
        }
        return result
    }

    func decodeDocument(
        _ value: YAMLValue,
        label: String,
        file: String?,
        into result: inout Result
    ) throws(ManifestError) {
        var objectLabel = label
        let items: [YAMLValue]
        do throws(FieldError) {
            let mapping = try value.mapping()
            let kind = try mapping.required("kind").nonEmptyString()
            let apiVersion = try mapping.required("apiVersion").nonEmptyString()
            if kind == "List" || (kind.hasSuffix("List") && apiVersion == "v1") {
                items = try mapping["items"]?.sequence() ?? []
            } else {
                guard let known = ResourceKind(rawValue: kind),
                    Self.group(of: apiVersion) == Self.group(of: known.apiVersions[0])
                else {
                    result.warnings.append(
                        ManifestWarning(
                            file: file,
                            line: value.line,
                            message: "skipping \(kind) (\(apiVersion)): not a kind Ambit uses"
                        )
                    )
                    return
                }
                guard known.apiVersions.contains(apiVersion) else {
                    throw mapping["apiVersion"]!.error(
                        "\"\(apiVersion)\" is not a supported version of \(kind) (supported: \(known.apiVersions.joined(separator: ", ")))"
                    )
                }
                // Name the object in errors as soon as its name can be read.
                if let meta = try? mapping["metadata"]?.mapping(), let name = try? meta["name"]?.string() {
                    let namespace = (try? meta["namespace"]?.string()) ?? "default"
                    objectLabel = ObjectKey(known, namespace: namespace, name: name).description
                }
                // A misplaced top-level field (say `selector:` outside `spec:`) would silently do nothing.
                try mapping.rejectUnknownKeys(
                    known == .endpointSlice
                        ? ["apiVersion", "kind", "metadata", "addressType", "endpoints", "ports"]
                        : ["apiVersion", "kind", "metadata", "spec", "status"]
                )
                let metadata = try decodeMetadata(mapping.required("metadata"), kind: known)
                objectLabel = ObjectKey(known, namespace: metadata.namespace, name: metadata.name).description
                result.objects.append(try decodeObject(known, metadata: metadata, document: mapping))
                return
            }
        } catch {
            throw ManifestError(
                file: file,
                line: error.line ?? value.line,
                object: objectLabel,
                field: error.path.description,
                message: error.message
            )
        }
        for item in items {
            try decodeDocument(item, label: "\(label) \(item.path)", file: file, into: &result)
        }
    }

    private func decodeObject(_ kind: ResourceKind, metadata: ObjectMeta, document: YAMLMapping) throws(FieldError)
        -> ManifestObject
    {
        switch kind {
        case .namespace: return .namespace(Namespace(metadata: metadata))
        case .serviceAccount: return .serviceAccount(ServiceAccount(metadata: metadata))
        case .pod: return .pod(try decodePod(metadata: metadata, document: document))
        case .service: return .service(try decodeService(metadata: metadata, document: document))
        case .authorizationPolicy:
            return .authorizationPolicy(try decodeAuthorizationPolicy(metadata: metadata, document: document))
        case .peerAuthentication:
            return .peerAuthentication(try decodePeerAuthentication(metadata: metadata, document: document))
        case .gateway: return .gateway(try decodeGateway(metadata: metadata, document: document))
        case .httpRoute: return .httpRoute(try decodeHTTPRoute(metadata: metadata, document: document))
        case .virtualService:
            return .virtualService(try decodeVirtualService(metadata: metadata, document: document))
        case .endpointSlice: return .endpointSlice(try decodeEndpointSlice(metadata: metadata, document: document))
        case .gatewayClass: return .gatewayClass(try decodeGatewayClass(metadata: metadata, document: document))
        }
    }

    private func decodeMetadata(_ value: YAMLValue, kind: ResourceKind) throws(FieldError) -> ObjectMeta {
        let mapping = try value.mapping()
        let nameValue = try mapping.required("name")
        let name = try nameValue.nonEmptyString()
        try KubernetesNames.validateObjectName(name, kind: kind, at: nameValue)
        var namespace = ""
        if kind.isNamespaced {
            if let namespaceValue = mapping["namespace"] {
                namespace = try namespaceValue.nonEmptyString()
                try KubernetesNames.validateNamespaceName(namespace, at: namespaceValue)
            } else {
                namespace = "default"
            }
        }
        var labels: [String: String] = [:]
        if let labelsValue = mapping["labels"] {
            labels = try labelsValue.stringMap()
            let labelsMapping = try labelsValue.mapping()
            for key in labelsMapping.keys {
                try KubernetesNames.validateLabel(key: key, value: labels[key]!, at: labelsMapping.values[key]!)
            }
        }
        return ObjectMeta(
            name: name,
            namespace: namespace,
            uid: try mapping["uid"]?.string(),
            resourceVersion: try mapping["resourceVersion"]?.string(),
            labels: labels,
            annotations: try mapping["annotations"]?.stringMap() ?? [:],
            creationTimestamp: try mapping["creationTimestamp"]?.string(),
            deletionTimestamp: try mapping["deletionTimestamp"]?.string(),
            generateName: try mapping["generateName"]?.string(),
            ownerReferences: try mapping["ownerReferences"]?.list { (value) throws(FieldError) in
                let owner = try value.mapping()
                return OwnerReference(
                    apiVersion: try owner.required("apiVersion").nonEmptyString(),
                    kind: try owner.required("kind").nonEmptyString(),
                    name: try owner.required("name").nonEmptyString(),
                    controller: try owner["controller"]?.bool() ?? false
                )
            } ?? []
        )
    }

    static func group(of apiVersion: String) -> String {
        guard let slash = apiVersion.firstIndex(of: "/") else { return "" }
        return String(apiVersion[..<slash])
    }

    static func syntaxError(_ error: YAMLError, file: String?) -> ManifestError {
        ManifestError(file: file, line: error.mark?.line, message: "invalid YAML: \(error)")
    }
}
