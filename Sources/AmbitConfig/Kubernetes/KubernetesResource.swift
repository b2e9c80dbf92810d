public import AmbitModel

/// A collection the Kubernetes config source lists and watches: `/api/v1/pods`,
/// `/apis/security.istio.io/v1/authorizationpolicies`, ... (all namespaces).
public struct KubernetesResource: Hashable, Sendable, CustomStringConvertible {
    public let kind: ResourceKind
    /// `""` for the core group.
    public let group: String
    public let version: String
    public let plural: String

    public init(kind: ResourceKind, group: String, version: String, plural: String) {
        self.kind = kind
        self.group = group
        self.version = version
        self.plural = plural
    }

    public var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }

    /// The cluster-wide collection path.
    public var path: String { group.isEmpty ? "/api/\(version)/\(plural)" : "/apis/\(group)/\(version)/\(plural)" }

    public var description: String { group.isEmpty ? plural : "\(plural).\(group)" }

    /// Every collection Ambit reads, in the order they are synced: namespaces first, as
    /// enrollment depends on them. Each kind lists its versions from newest; an older one is
    /// used only when the cluster does not serve the newer (an older Istio or Gateway API).
    public static let all: [[KubernetesResource]] = ResourceKind.syncOrder.map { kind in
        kind.apiVersions.map { apiVersion in
            let slash = apiVersion.firstIndex(of: "/")
            let group = slash.map { String(apiVersion[..<$0]) } ?? ""
            let version = slash.map { String(apiVersion[apiVersion.index(after: $0)...]) } ?? apiVersion
            return KubernetesResource(kind: kind, group: group, version: version, plural: kind.plural)
        }
    }
}

extension ResourceKind {
    /// The resource name in API paths (and RBAC rules).
    public var plural: String {
        switch self {
        case .namespace: return "namespaces"
        case .serviceAccount: return "serviceaccounts"
        case .pod: return "pods"
        case .service: return "services"
        case .authorizationPolicy: return "authorizationpolicies"
        case .peerAuthentication: return "peerauthentications"
        case .gateway: return "gateways"
        case .httpRoute: return "httproutes"
        case .virtualService: return "virtualservices"
        case .endpointSlice: return "endpointslices"
        case .gatewayClass: return "gatewayclasses"
        }
    }

    static let syncOrder: [ResourceKind] = [
        .namespace, .serviceAccount, .pod, .service, .endpointSlice, .authorizationPolicy, .peerAuthentication,
        .gatewayClass, .gateway, .httpRoute, .virtualService,
    ]
}
