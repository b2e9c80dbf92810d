/// A Gateway API `Gateway`. Ambit acts on those of class `istio-waypoint`: waypoint proxies.
public struct Gateway: KubernetesObject {
    public static let kind = ResourceKind.gateway
    public static let waypointClassName = "istio-waypoint"
    /// Annotation that dedicates a waypoint to the workloads of one service account.
    public static let forServiceAccountAnnotation = "istio.io/for-service-account"

    public struct Listener: Hashable, Sendable {
        public var name: String
        public var port: UInt16
        public var protocolName: String
        public var hostname: String?

        public init(name: String, port: UInt16, protocolName: String, hostname: String? = nil) {
            self.name = name
            self.port = port
            self.protocolName = protocolName
            self.hostname = hostname
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
