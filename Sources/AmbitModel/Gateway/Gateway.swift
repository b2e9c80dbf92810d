/// A Gateway API `Gateway`. Ambit acts on those of class `istio-waypoint`: waypoint proxies.
public struct Gateway: KubernetesObject {
    public static let kind = ResourceKind.gateway
    public static let waypointClassName = "istio-waypoint"
    /// Annotation that dedicates a waypoint to the workloads of one service account.
    public static let forServiceAccountAnnotation = "istio.io/for-service-account"

    public struct Listener: Hashable, Sendable {
        /// `allowedRoutes.namespaces.from`: which namespaces may attach (for a waypoint: use it).
        public enum AllowedNamespaces: Hashable, Sendable {
            /// The Gateway's own namespace (the default).
            case same
            case all
            /// Namespaces whose labels match.
            case selector(LabelSelector)
        }

        public var name: String
        public var port: UInt16
        public var protocolName: String
        public var hostname: String?
        public var allowedNamespaces: AllowedNamespaces

        public init(
            name: String,
            port: UInt16,
            protocolName: String,
            hostname: String? = nil,
            allowedNamespaces: AllowedNamespaces = .same
        ) {
            self.name = name
            self.port = port
            self.protocolName = protocolName
            self.hostname = hostname
            self.allowedNamespaces = allowedNamespaces
        }
    }

    public var metadata: ObjectMeta
    public var gatewayClassName: String
    public var listeners: [Listener]
    /// IP addresses from `spec.addresses` and then `status.addresses` (type IPAddress only).
    public var addresses: [IPAddress]

    public init(metadata: ObjectMeta, gatewayClassName: String, listeners: [Listener] = [], addresses: [IPAddress] = [])
    {
        self.metadata = metadata
        self.gatewayClassName = gatewayClassName
        self.listeners = listeners
        self.addresses = addresses
    }

    public var isWaypoint: Bool { gatewayClassName == Self.waypointClassName }

    /// The service account named by `istio.io/for-service-account`, if any.
    public var forServiceAccount: String? { metadata.annotations[Self.forServiceAccountAnnotation] }
}

/// A Gateway API `GatewayClass` (cluster-scoped). For waypoints Istio reads one thing from it: the
/// `istio.io/waypoint-for` label, the default of the Gateways of that class.
public struct GatewayClass: KubernetesObject {
    public static let kind = ResourceKind.gatewayClass
    public var metadata: ObjectMeta
    public var controllerName: String

    public init(metadata: ObjectMeta, controllerName: String) {
        self.metadata = metadata
        self.controllerName = controllerName
    }
}
