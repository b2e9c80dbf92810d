/// A `discovery.k8s.io/v1` EndpointSlice: the endpoints of a Service whose controller is not the
/// Service's selector (a Service without a selector: `kubernetes.default`, an external database, a
/// manually managed backend). The slice names its Service with the label `kubernetes.io/service-name`.
public struct EndpointSlice: KubernetesObject {
    public static let kind = ResourceKind.endpointSlice
    public static let serviceNameLabel = "kubernetes.io/service-name"

    public enum AddressType: String, Hashable, Sendable {
        case ipv4 = "IPv4"
        case ipv6 = "IPv6"
        /// Host names: not addresses the data path can dial; read but unused.
        case fqdn = "FQDN"
    }

    public struct Endpoint: Hashable, Sendable {
        public var addresses: [IPAddress]
        /// `conditions.ready`; `nil` (not reported) counts as ready, as Kubernetes says.
        public var ready: Bool?
        public var serving: Bool?
        public var terminating: Bool?
        /// `targetRef` when it is a Pod: the endpoint is that pod (a mesh workload when enrolled).
        public var pod: ObjectKey?
        public var nodeName: String?

        public init(
            addresses: [IPAddress],
            ready: Bool? = nil,
            serving: Bool? = nil,
            terminating: Bool? = nil,
            pod: ObjectKey? = nil,
            nodeName: String? = nil
        ) {
            self.addresses = addresses
            self.ready = ready
            self.serving = serving
            self.terminating = terminating
            self.pod = pod
            self.nodeName = nodeName
        }

        /// Whether traffic may be sent to it (Istio uses `ready` alone).
        public var isReady: Bool { ready ?? true }
    }

    public struct Port: Hashable, Sendable {
        /// Matched against the Service port's name (both empty for a single unnamed port).
        public var name: String?
        public var port: UInt16?
        public var transport: TransportProtocol
        public var appProtocol: String?

        public init(name: String? = nil, port: UInt16?, transport: TransportProtocol = .tcp, appProtocol: String? = nil)
        {
            self.name = name
            self.port = port
            self.transport = transport
            self.appProtocol = appProtocol
        }
    }

    public var metadata: ObjectMeta
    public var addressType: AddressType
    public var endpoints: [Endpoint]
    public var ports: [Port]

    public init(metadata: ObjectMeta, addressType: AddressType, endpoints: [Endpoint] = [], ports: [Port] = []) {
        self.metadata = metadata
        self.addressType = addressType
        self.endpoints = endpoints
        self.ports = ports
    }

    /// The Service (in the slice's namespace) the slice belongs to.
    public var service: ObjectKey? {
        metadata.labels[Self.serviceNameLabel].map { ObjectKey(.service, namespace: metadata.namespace, name: $0) }
    }

    /// The slice's port for a Service port: the one with the same name (`nil` and `""` are the same).
    public func port(for servicePort: ServicePort) -> Port? {
        ports.first { ($0.name ?? "") == (servicePort.name ?? "") && $0.transport == servicePort.transport }
    }
}
