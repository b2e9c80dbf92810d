/// The kinds of object Ambit reads, with the API groups it accepts for each.
public enum ResourceKind: String, Hashable, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    case namespace = "Namespace"
    case serviceAccount = "ServiceAccount"
    case pod = "Pod"
    case service = "Service"
    case authorizationPolicy = "AuthorizationPolicy"
    case peerAuthentication = "PeerAuthentication"
    case gateway = "Gateway"
    case httpRoute = "HTTPRoute"
    case virtualService = "VirtualService"
    case endpointSlice = "EndpointSlice"
    case gatewayClass = "GatewayClass"

    /// `apiVersion` values accepted for the kind, newest first.
    public var apiVersions: [String] {
        switch self {
        case .namespace, .serviceAccount, .pod, .service: return ["v1"]
        case .authorizationPolicy, .peerAuthentication: return ["security.istio.io/v1", "security.istio.io/v1beta1"]
        case .gateway, .httpRoute, .gatewayClass:
            return ["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"]
        case .endpointSlice: return ["discovery.k8s.io/v1"]
        case .virtualService:
            return ["networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"]
        }
    }

    /// Whether objects of the kind live in a namespace (all but Namespace and GatewayClass).
    public var isNamespaced: Bool { self != .namespace && self != .gatewayClass }

    public var description: String { rawValue }

    public static func < (lhs: ResourceKind, rhs: ResourceKind) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// Identifies one object: kind, namespace (empty for cluster-scoped kinds) and name.
public struct ObjectKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let kind: ResourceKind
    public let namespace: String
    public let name: String

    public init(_ kind: ResourceKind, namespace: String, name: String) {
        self.kind = kind
        self.namespace = kind.isNamespaced ? namespace : ""
        self.name = name
    }

    /// Parses `namespace/name` (as command lines name a namespaced object); `nil` unless it is exactly
    /// two non-empty parts.
    public init?(_ kind: ResourceKind, namespacedName text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
        self.init(kind, namespace: String(parts[0]), name: String(parts[1]))
    }

    /// `namespace/name`, or `name` for cluster-scoped objects.
    public var namespacedName: String { namespace.isEmpty ? name : "\(namespace)/\(name)" }

    /// `Kind namespace/name`, as used in errors and logs.
    public var description: String { "\(kind) \(namespacedName)" }

    public static func < (lhs: ObjectKey, rhs: ObjectKey) -> Bool {
        (lhs.kind, lhs.namespace, lhs.name) < (rhs.kind, rhs.namespace, rhs.name)
    }
}

/// The part of `metadata` Ambit uses.
public struct ObjectMeta: Hashable, Sendable {
    public var name: String
    /// Empty for cluster-scoped objects; `default` when a namespaced manifest omits it.
    public var namespace: String
    public var uid: String?
    public var resourceVersion: String?
    public var labels: [String: String]
    public var annotations: [String: String]
    /// RFC 3339; the oldest of competing policies wins, as in Istio.
    public var creationTimestamp: String?
    /// Set when the object is being deleted (a terminating pod is no longer a healthy endpoint).
    public var deletionTimestamp: String?
    /// The prefix a controller gave the name (`web-7d4b9c-` for a Deployment's pod).
    public var generateName: String?
    public var ownerReferences: [OwnerReference]

    public init(
        name: String,
        namespace: String = "",
        uid: String? = nil,
        resourceVersion: String? = nil,
        labels: [String: String] = [:],
        annotations: [String: String] = [:],
        creationTimestamp: String? = nil,
        deletionTimestamp: String? = nil,
        generateName: String? = nil,
        ownerReferences: [OwnerReference] = []
    ) {
        self.name = name
        self.namespace = namespace
        self.uid = uid
        self.resourceVersion = resourceVersion
        self.labels = labels
        self.annotations = annotations
        self.creationTimestamp = creationTimestamp
        self.deletionTimestamp = deletionTimestamp
        self.generateName = generateName
        self.ownerReferences = ownerReferences
    }
}

/// `metadata.ownerReferences[]`: the object that owns this one (a ReplicaSet owns its pods).
public struct OwnerReference: Hashable, Sendable {
    public var apiVersion: String
    public var kind: String
    public var name: String
    /// The managing controller (at most one owner is).
    public var controller: Bool

    public init(apiVersion: String, kind: String, name: String, controller: Bool = false) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.name = name
        self.controller = controller
    }
}

/// A typed Kubernetes-shaped object.
public protocol KubernetesObject: Hashable, Sendable {
    static var kind: ResourceKind { get }
    var metadata: ObjectMeta { get }
}

extension KubernetesObject {
    public var key: ObjectKey { ObjectKey(Self.kind, namespace: metadata.namespace, name: metadata.name) }
}

/// `matchLabels` of a selector: every listed label must be present with the same value.
/// An empty selector selects everything.
public struct LabelSelector: Hashable, Sendable {
    public var matchLabels: [String: String]

    public init(matchLabels: [String: String] = [:]) {
        self.matchLabels = matchLabels
    }

    public var isEmpty: Bool { matchLabels.isEmpty }

    public func matches(_ labels: [String: String]) -> Bool {
        matchLabels.allSatisfy { labels[$0.key] == $0.value }
    }
}
