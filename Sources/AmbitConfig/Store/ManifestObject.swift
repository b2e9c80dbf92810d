public import AmbitModel

/// One object read from a manifest, of any kind Ambit understands.
public enum ManifestObject: Hashable, Sendable {
    case namespace(Namespace)
    case serviceAccount(ServiceAccount)
    case pod(Pod)
    case service(Service)
    case authorizationPolicy(AuthorizationPolicy)
    case peerAuthentication(PeerAuthentication)
    case gateway(Gateway)
    case httpRoute(HTTPRoute)
    case virtualService(VirtualService)
    case endpointSlice(EndpointSlice)
    case gatewayClass(GatewayClass)

    public var key: ObjectKey {
        switch self {
        case .namespace(let object): return object.key
        case .serviceAccount(let object): return object.key
        case .pod(let object): return object.key
        case .service(let object): return object.key
        case .authorizationPolicy(let object): return object.key
        case .peerAuthentication(let object): return object.key
        case .gateway(let object): return object.key
        case .httpRoute(let object): return object.key
        case .virtualService(let object): return object.key
        case .endpointSlice(let object): return object.key
        case .gatewayClass(let object): return object.key
        }
    }
}

/// A manifest that could not be read: the file, the line, the object and the field, and why.
/// Printed as `dir/app.yaml:14: Service default/web: spec.ports[0].port: expected an integer, got "http"`.
public struct ManifestError: Error, Hashable, Sendable, CustomStringConvertible {
    public var file: String?
    public var line: Int?
    /// `Kind namespace/name` when known, else `document N` (1-based within the file).
    public var object: String?
    public var field: String?
    public var message: String

    public init(file: String? = nil, line: Int? = nil, object: String? = nil, field: String? = nil, message: String) {
        self.file = file
        self.line = line
        self.object = object
        self.field = field
        self.message = message
    }

    public var description: String {
        var parts: [String] = []
        if let file {
            parts.append(line.map { "\(file):\($0)" } ?? file)
        } else if let line {
            parts.append("line \(line)")
        }
        if let object { parts.append(object) }
        if let field, !field.isEmpty { parts.append(field) }
        parts.append(message)
        return parts.joined(separator: ": ")
    }
}

/// Something skipped on purpose (an object kind Ambit does not use), reported so it is not a surprise.
public struct ManifestWarning: Hashable, Sendable, CustomStringConvertible {
    public var file: String?
    public var line: Int?
    public var message: String

    public var description: String {
        let location = [file, line.map(String.init)].compactMap { $0 }.joined(separator: ":")
        return location.isEmpty ? message : "\(location): \(message)"
    }
}
