/// A pod as the data path sees it: identity, enrollment and waypoint resolved.
public struct Workload: Hashable, Sendable {
    public let pod: Pod
    public let identity: SpiffeID
    public let enrollment: Enrollment

    public init(pod: Pod, identity: SpiffeID, enrollment: Enrollment) {
        self.pod = pod
        self.identity = identity
        self.enrollment = enrollment
    }

    public var key: ObjectKey { pod.key }
    public var name: String { pod.metadata.name }
    public var namespace: String { pod.metadata.namespace }
}

/// Whether a pod's traffic is captured, and why.
public enum Enrollment: Hashable, Sendable, CustomStringConvertible {
    case enrolled(Reason)
    case notEnrolled(Reason)

    public enum Reason: String, Hashable, Sendable {
        case podLabel = "pod label istio.io/dataplane-mode=ambient"
        case namespaceLabel = "namespace label istio.io/dataplane-mode=ambient"
        case podOptOut = "pod label istio.io/dataplane-mode=none"
        case namespaceNotEnrolled = "namespace not labelled istio.io/dataplane-mode=ambient"
        case hostNetwork = "pod uses the host network"
        case sidecarInjected = "pod has an injected sidecar"
    }

    public var isEnrolled: Bool {
        if case .enrolled = self { return true }
        return false
    }

    /// Istio ambient's rule: a host-network pod or one with an injected sidecar never; else the pod's
    /// `istio.io/dataplane-mode` label (`ambient` enrolls, `none` opts out); else its namespace's.
    public init(
        podLabels: [String: String],
        podAnnotations: [String: String] = [:],
        hostNetwork: Bool = false,
        namespaceLabels: [String: String]
    ) {
        if hostNetwork {
            self = .notEnrolled(.hostNetwork)
        } else if podAnnotations["sidecar.istio.io/status"] != nil {
            self = .notEnrolled(.sidecarInjected)
        } else if podLabels[WellKnownLabels.dataplaneMode] == WellKnownLabels.dataplaneModeNone {
            self = .notEnrolled(.podOptOut)
        } else if podLabels[WellKnownLabels.dataplaneMode] == WellKnownLabels.dataplaneModeAmbient {
            self = .enrolled(.podLabel)
        } else if namespaceLabels[WellKnownLabels.dataplaneMode] == WellKnownLabels.dataplaneModeAmbient {
            self = .enrolled(.namespaceLabel)
        } else {
            self = .notEnrolled(.namespaceNotEnrolled)
        }
    }

    public var description: String {
        switch self {
        case .enrolled(let reason): return "enrolled (\(reason.rawValue))"
        case .notEnrolled(let reason): return "not enrolled (\(reason.rawValue))"
        }
    }
}

/// A service reachable at one VIP:port, with the pod endpoints behind that port.
public struct ServiceBinding: Hashable, Sendable {
    public let service: ObjectKey
    public let port: ServicePort
    /// Pods selected by the service that expose the target port, healthy or not.
    public let endpoints: [ServiceEndpoint]

    public init(service: ObjectKey, port: ServicePort, endpoints: [ServiceEndpoint]) {
        self.service = service
        self.port = port
        self.endpoints = endpoints
    }

    public var healthyEndpoints: [ServiceEndpoint] { endpoints.filter(\.healthy) }
}

/// One endpoint behind a service port: its address and resolved target port, and the pod it is
/// (`nil` for an EndpointSlice endpoint that is not a pod: a node, an address outside the cluster).
public struct ServiceEndpoint: Hashable, Sendable {
    public let pod: ObjectKey?
    public let address: IPEndpoint
    public let healthy: Bool

    public init(pod: ObjectKey?, address: IPEndpoint, healthy: Bool) {
        self.pod = pod
        self.address = address
        self.healthy = healthy
    }
}
