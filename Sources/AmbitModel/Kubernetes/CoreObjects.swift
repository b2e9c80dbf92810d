/// A Kubernetes Namespace; its labels decide enrollment and the default waypoint.
public struct Namespace: KubernetesObject {
    public static let kind = ResourceKind.namespace
    public var metadata: ObjectMeta

    public init(metadata: ObjectMeta) {
        self.metadata = metadata
    }
}

/// A Kubernetes ServiceAccount: the `sa` part of a workload's SPIFFE identity.
public struct ServiceAccount: KubernetesObject {
    public static let kind = ResourceKind.serviceAccount
    public var metadata: ObjectMeta

    public init(metadata: ObjectMeta) {
        self.metadata = metadata
    }
}

/// Transport protocol of a port. Ambit captures TCP only.
public enum TransportProtocol: String, Hashable, Sendable {
    case tcp = "TCP"
    case udp = "UDP"
    case sctp = "SCTP"
}

/// A port a container declares (`spec.containers[].ports[]`); named ports resolve service target ports.
public struct ContainerPort: Hashable, Sendable {
    public var name: String?
    public var containerPort: UInt16
    public var transport: TransportProtocol

    public init(name: String? = nil, containerPort: UInt16, transport: TransportProtocol = .tcp) {
        self.name = name
        self.containerPort = containerPort
        self.transport = transport
    }
}

/// `status.phase` of a pod.
public enum PodPhase: String, Hashable, Sendable {
    case pending = "Pending"
    case running = "Running"
    case succeeded = "Succeeded"
    case failed = "Failed"
    case unknown = "Unknown"
}

/// A Kubernetes Pod: a workload with an IP, a node and a service account.
public struct Pod: KubernetesObject {
    public static let kind = ResourceKind.pod
    public var metadata: ObjectMeta
    public var nodeName: String?
    /// `spec.serviceAccountName`; Kubernetes uses `default` when it is not set.
    public var serviceAccountName: String
    public var hostNetwork: Bool
    public var containerPorts: [ContainerPort]
    /// `status.podIP` followed by any other `status.podIPs`, without duplicates.
    public var podIPs: [IPAddress]
    public var phase: PodPhase?
    /// The `Ready` condition: `nil` when the manifest does not report it.
    public var ready: Bool?

    public init(
        metadata: ObjectMeta,
        nodeName: String? = nil,
        serviceAccountName: String = "default",
        hostNetwork: Bool = false,
        containerPorts: [ContainerPort] = [],
        podIPs: [IPAddress] = [],
        phase: PodPhase? = nil,
        ready: Bool? = nil
    ) {
        self.metadata = metadata
        self.nodeName = nodeName
        self.serviceAccountName = serviceAccountName
        self.hostNetwork = hostNetwork
        self.containerPorts = containerPorts
        self.podIPs = podIPs
        self.phase = phase
        self.ready = ready
    }

    /// Whether traffic may be sent to the pod: it has an address, is not terminating or finished,
    /// and is not reported unready. A manifest that says nothing about readiness counts as ready.
    public var isHealthy: Bool {
        guard !podIPs.isEmpty, metadata.deletionTimestamp == nil else { return false }
        if phase == .failed || phase == .succeeded { return false }
        return ready ?? true
    }

    /// The port number a service's named target port refers to, if a container declares it.
    public func port(named name: String) -> UInt16? {
        containerPorts.first { $0.name == name && $0.transport == .tcp }?.containerPort
    }
}

/// `targetPort` of a service port: a number or the name of a container port.
public enum TargetPort: Hashable, Sendable, CustomStringConvertible {
    case number(UInt16)
    case name(String)

    public var description: String {
        switch self {
        case .number(let number): return String(number)
        case .name(let name): return name
        }
    }
}

/// One entry of `spec.ports` of a Service.
public struct ServicePort: Hashable, Sendable {
    public var name: String?
    public var port: UInt16
    public var targetPort: TargetPort
    public var transport: TransportProtocol
    public var appProtocol: String?

    public init(
        name: String? = nil,
        port: UInt16,
        targetPort: TargetPort? = nil,
        transport: TransportProtocol = .tcp,
        appProtocol: String? = nil
    ) {
        self.name = name
        self.port = port
        self.targetPort = targetPort ?? .number(port)
        self.transport = transport
        self.appProtocol = appProtocol
    }
}

/// A Kubernetes Service: virtual IPs and ports in front of the pods its selector picks.
public struct Service: KubernetesObject {
    public static let kind = ResourceKind.service
    public var metadata: ObjectMeta
    /// `spec.clusterIP` and `spec.clusterIPs`; empty for headless services.
    public var clusterIPs: [IPAddress]
    public var headless: Bool
    /// `spec.selector`; `nil` for a service without a selector (its endpoints are managed elsewhere).
    public var selector: LabelSelector?
    public var ports: [ServicePort]

    public init(
        metadata: ObjectMeta,
        clusterIPs: [IPAddress] = [],
        headless: Bool = false,
        selector: LabelSelector? = nil,
        ports: [ServicePort] = []
    ) {
        self.metadata = metadata
        self.clusterIPs = clusterIPs
        self.headless = headless
        self.selector = selector
        self.ports = ports
    }

    /// `<name>.<namespace>.svc.<domain>`, the host name used in `forwarded` and metrics.
    public func hostname(clusterDomain: String = "cluster.local") -> String {
        "\(metadata.name).\(metadata.namespace).svc.\(clusterDomain)"
    }
}
