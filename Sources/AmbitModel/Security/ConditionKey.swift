/// The attribute a `when` condition of an AuthorizationPolicy tests.
///
/// The node agent can evaluate the L4 keys; the others need the HTTP request, so at L4 a rule
/// using them fails closed (see the authorization engine).
public enum ConditionKey: Hashable, Sendable, CustomStringConvertible {
    case sourceIP
    case remoteIP
    case sourceNamespace
    case sourcePrincipal
    case destinationIP
    case destinationPort
    case connectionSNI
    case requestHeader(String)
    case requestAuthPrincipal
    case requestAuthAudiences
    case requestAuthPresenter
    case requestAuthClaims(String)
    case experimental(String)

    /// Parses Istio's key notation, e.g. `source.ip` or `request.headers[x-user]`.
    public init(parsing key: String) throws {
        switch key {
        case "source.ip": self = .sourceIP
        case "remote.ip": self = .remoteIP
        case "source.namespace": self = .sourceNamespace
        case "source.principal": self = .sourcePrincipal
        case "destination.ip": self = .destinationIP
        case "destination.port": self = .destinationPort
        case "connection.sni": self = .connectionSNI
        case "request.auth.principal": self = .requestAuthPrincipal
        case "request.auth.audiences": self = .requestAuthAudiences
        case "request.auth.presenter": self = .requestAuthPresenter
        default:
            if let name = Self.bracketed(key, prefix: "request.headers") {
                self = .requestHeader(name.lowercased())
            } else if let claim = Self.bracketed(key, prefix: "request.auth.claims") {
                self = .requestAuthClaims(claim)
            } else if key.hasPrefix("experimental.envoy.filters.") {
                self = .experimental(key)
            } else {
                throw ConditionKeyError(key: key)
            }
        }
    }

    /// Whether the node agent can evaluate the key without parsing HTTP.
    public var isL4: Bool {
        switch self {
        // `remote.ip` is the client behind proxies (X-Forwarded-For, PROXY protocol): L7, as in Istio.
        case .sourceIP, .sourceNamespace, .sourcePrincipal, .destinationIP, .destinationPort: return true
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .sourceIP: return "source.ip"
        case .remoteIP: return "remote.ip"
        case .sourceNamespace: return "source.namespace"
        case .sourcePrincipal: return "source.principal"
        case .destinationIP: return "destination.ip"
        case .destinationPort: return "destination.port"
        case .connectionSNI: return "connection.sni"
        case .requestHeader(let name): return "request.headers[\(name)]"
        case .requestAuthPrincipal: return "request.auth.principal"
        case .requestAuthAudiences: return "request.auth.audiences"
        case .requestAuthPresenter: return "request.auth.presenter"
        case .requestAuthClaims(let claim): return "request.auth.claims[\(claim)]"
        case .experimental(let key): return key
        }
    }

    private static func bracketed(_ key: String, prefix: String) -> String? {
        guard key.hasPrefix(prefix + "["), key.hasSuffix("]") else { return nil }
        let inner = key.dropFirst(prefix.count + 1).dropLast()
        return inner.isEmpty ? nil : String(inner)
    }
}

/// A `when` key Istio does not define.
public struct ConditionKeyError: Error, Hashable, CustomStringConvertible {
    public let key: String
    public var description: String {
        "unknown condition key \"\(key)\" (L4 keys: source.ip, source.namespace, source.principal, "
            + "destination.ip, destination.port; L7 keys: remote.ip, request.headers[NAME], request.auth.*, connection.sni)"
    }
}
