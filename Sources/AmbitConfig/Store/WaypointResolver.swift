public import AmbitModel

/// A waypoint chosen for some traffic: the Gateway, where it listens and who it is.
public struct WaypointBinding: Hashable, Sendable {
    public let gateway: ObjectKey
    /// Addresses to dial on 15008: the Gateway's addresses, else its Service's cluster IPs.
    public let addresses: [IPAddress]
    /// The SPIFFE identity the waypoint presents: the service account its pods run as.
    public let identity: SpiffeID
    /// Which label or annotation chose it, for logs and `ambitctl`.
    public let reason: String
}

/// Why an object that names a waypoint is not bound to it: Istio's reasons for the condition
/// `istio.io/WaypointBound=False`. As in Istio, such traffic goes without a waypoint.
public struct WaypointBindingProblem: Hashable, Sendable, CustomStringConvertible {
    public enum Reason: String, Hashable, Sendable {
        /// No waypoint Gateway of that name, or it has no address (or no valid identity) yet.
        case waypointIsNotReady = "WaypointIsNotReady"
        /// The waypoint's `istio.io/waypoint-for` does not cover this kind of traffic.
        case unsupportedTrafficType = "UnsupportedTrafficType"
        /// The waypoint's HBONE listener does not allow routes from this namespace (`allowedRoutes`).
        case attachmentDenied = "AttachmentDenied"
    }

    public let reason: Reason
    /// Which label asked for the waypoint, and what is wrong with it.
    public let detail: String

    public var description: String { "\(reason.rawValue): \(detail)" }
}

/// The outcome of looking up a waypoint.
public enum WaypointResolution: Hashable, Sendable, CustomStringConvertible {
    case none
    case waypoint(WaypointBinding)
    /// A waypoint is named but cannot be used: the traffic goes without one (Istio's behaviour),
    /// and the configuration says why in a warning.
    case notBound(WaypointBindingProblem)

    public var binding: WaypointBinding? {
        if case .waypoint(let binding) = self { return binding }
        return nil
    }

    public var description: String {
        switch self {
        case .none: return "none"
        case .waypoint(let binding): return "\(binding.gateway.namespacedName) (\(binding.reason))"
        case .notBound(let problem): return "not bound (\(problem))"
        }
    }
}

/// Chooses waypoints as current Istio does:
///
/// - `istio.io/use-waypoint` on the object (a Service or a pod), else on its namespace, names a
///   Gateway (`istio.io/use-waypoint-namespace` on the same object picks its namespace); `none` opts
///   out. A broken name on the object does not fall back to the namespace's waypoint.
/// - The Gateway must be of class `istio-waypoint` and have an address (its own, else its Service's).
/// - `istio.io/waypoint-for` on the Gateway, else on its GatewayClass, else `service`, says which
///   traffic it takes: `service`, `workload`, `all` or `none`. A waypoint inherited from the namespace
///   that does not take workload traffic is simply not used for pods.
/// - The Gateway's HBONE listener (port 15008) limits who may use it with `allowedRoutes`
///   (default: its own namespace).
/// - Its identity is the service account of its pods (labelled `gateway.networking.k8s.io/gateway-name`),
///   else the `gateway.istio.io/service-account` annotation, else the Gateway's name.
///
/// Ambit's extension, kept from Istio before 1.22: a waypoint Gateway annotated
/// `istio.io/for-service-account: <sa>` serves that account's pods in its namespace (and takes all
/// traffic unless `istio.io/waypoint-for` says otherwise).
struct WaypointResolver: Sendable {
    static let gatewayNameLabel = "gateway.networking.k8s.io/gateway-name"
    static let gatewayServiceAccountAnnotation = "gateway.istio.io/service-account"

    enum TrafficKind: String {
        case service
        case workload
    }

    let namespaces: [String: Namespace]
    let services: [ObjectKey: Service]
    let pods: [ObjectKey: Pod]
    let gateways: [ObjectKey: Gateway]
    let gatewayClasses: [String: GatewayClass]
    let trustDomain: String
    /// Ambit's per-service-account waypoints, by `namespace/service account`.
    private(set) var serviceAccountWaypoints: [String: ObjectKey] = [:]
    /// Service accounts of each waypoint's pods, sorted.
    private(set) var podAccounts: [ObjectKey: [String]] = [:]
    private(set) var warnings: [String] = []

    init(
        namespaces: [String: Namespace],
        services: [ObjectKey: Service],
        pods: [ObjectKey: Pod],
        gateways: [ObjectKey: Gateway],
        gatewayClasses: [String: GatewayClass],
        trustDomain: String
    ) {
        self.namespaces = namespaces
        self.services = services
        self.pods = pods
        self.gateways = gateways
        self.gatewayClasses = gatewayClasses
        self.trustDomain = trustDomain
        for key in gateways.keys.sorted() {
            let gateway = gateways[key]!
            guard gateway.isWaypoint, let account = gateway.forServiceAccount else { continue }
            let slot = "\(key.namespace)/\(account)"
            if let existing = serviceAccountWaypoints[slot] {
                warnings.append("\(existing) and \(key) both serve service account \(slot); using \(existing)")
            } else {
                serviceAccountWaypoints[slot] = key
            }
        }
        var accounts: [ObjectKey: Set<String>] = [:]
        for pod in pods.values {
            guard let name = pod.metadata.labels[Self.gatewayNameLabel] else { continue }
            accounts[ObjectKey(.gateway, namespace: pod.metadata.namespace, name: name), default: []]
                .insert(pod.serviceAccountName)
        }
        podAccounts = accounts.mapValues { $0.sorted() }
        for (gateway, names) in podAccounts.sorted(by: { $0.key < $1.key }) where names.count > 1 {
            warnings.append(
                "the pods of waypoint \(gateway) run as several service accounts (\(names.joined(separator: ", "))); "
                    + "expecting \(names[0])"
            )
        }
    }

    /// For traffic addressed to a service: the service's label, else its namespace's.
    func forService(_ key: ObjectKey) -> WaypointResolution {
        guard let service = services[key] else { return .none }
        // A waypoint's own service never goes through a waypoint.
        if let gateway = gateways[ObjectKey(.gateway, namespace: key.namespace, name: key.name)], gateway.isWaypoint {
            return .none
        }
        if let resolution = resolveLabel(on: service.metadata, attaching: key.namespace, kind: .service, "Service") {
            return resolution
        }
        if let namespace = namespaces[key.namespace],
            let resolution = resolveLabel(on: namespace.metadata, attaching: key.namespace, kind: .service, "Namespace")
        {
            return resolution
        }
        return .none
    }

    /// For traffic addressed to a pod: the pod's label, else Ambit's per-service-account waypoint,
    /// else the namespace's label (only a waypoint that takes workload traffic).
    func forWorkload(_ key: ObjectKey) -> WaypointResolution {
        guard let pod = pods[key] else { return .none }
        if pod.metadata.labels[Self.gatewayNameLabel] != nil { return .none }  // a waypoint pod itself
        if let resolution = resolveLabel(on: pod.metadata, attaching: key.namespace, kind: .workload, "Pod") {
            return resolution
        }
        if let gateway = serviceAccountWaypoints["\(key.namespace)/\(pod.serviceAccountName)"] {
            let reason = "for-service-account \(pod.serviceAccountName)"
            return binding(gateway, attaching: key.namespace, kind: .workload, reason: reason)
        }
        if let namespace = namespaces[key.namespace],
            let resolution = resolveLabel(
                on: namespace.metadata,
                attaching: key.namespace,
                kind: .workload,
                "Namespace"
            )
        {
            // Inherited by a pod, a waypoint that takes only service traffic means no waypoint, silently.
            if case .notBound(let problem) = resolution, problem.reason == .unsupportedTrafficType { return .none }
            return resolution
        }
        return .none
    }

    /// Every object that names a waypoint it is not bound to, as Istio reports it in the object's status.
    func bindingWarnings() -> [String] {
        var result: [String] = []
        for key in services.keys.sorted() {
            if case .notBound(let problem) = forService(key) { result.append(Self.warning(key, problem)) }
        }
        for key in pods.keys.sorted() where pods[key]!.metadata.labels[WellKnownLabels.useWaypoint] != nil {
            if case .notBound(let problem) = forWorkload(key) { result.append(Self.warning(key, problem)) }
        }
        return result
    }

    private static func warning(_ key: ObjectKey, _ problem: WaypointBindingProblem) -> String {
        "\(key): istio.io/WaypointBound=False, \(problem); its traffic goes without a waypoint (as in Istio)"
    }

    /// Reads `istio.io/use-waypoint` (and `-namespace`) from one object; `nil` when absent.
    private func resolveLabel(on metadata: ObjectMeta, attaching namespace: String, kind: TrafficKind, _ what: String)
        -> WaypointResolution?
    {
        guard let name = metadata.labels[WellKnownLabels.useWaypoint] else { return nil }
        if name == WellKnownLabels.useWaypointNone { return WaypointResolution.none }
        let gatewayNamespace = metadata.labels[WellKnownLabels.useWaypointNamespace] ?? namespace
        return binding(
            ObjectKey(.gateway, namespace: gatewayNamespace, name: name),
            attaching: namespace,
            kind: kind,
            reason: "\(what.lowercased()) label \(WellKnownLabels.useWaypoint)=\(name)"
        )
    }

    /// `istio.io/waypoint-for` of a Gateway: its own label, its class's, else the default.
    func trafficType(of gateway: Gateway) -> String {
        if let own = gateway.metadata.labels[WellKnownLabels.waypointFor] { return own }
        if let inherited = gatewayClasses[gateway.gatewayClassName]?.metadata.labels[WellKnownLabels.waypointFor] {
            return inherited
        }
        return gateway.forServiceAccount == nil ? TrafficKind.service.rawValue : "all"
    }

    /// Whether the Gateway's HBONE listener admits objects of `namespace` (`allowedRoutes`; default Same).
    private func admits(_ gateway: Gateway, key: ObjectKey, namespace: String) -> Bool {
        let listener = gateway.listeners.first { $0.port == MeshPorts.hbone && $0.protocolName == "HBONE" }
        switch listener?.allowedNamespaces ?? .same {
        case .same: return namespace == key.namespace
        case .all: return true
        case .selector(let selector): return selector.matches(namespaces[namespace]?.metadata.labels ?? [:])
        }
    }

    private func binding(_ key: ObjectKey, attaching namespace: String, kind: TrafficKind, reason: String)
        -> WaypointResolution
    {
        func problem(_ why: WaypointBindingProblem.Reason, _ detail: String) -> WaypointResolution {
            .notBound(WaypointBindingProblem(reason: why, detail: "\(reason): \(detail)"))
        }
        guard let gateway = gateways[key] else {
            return problem(.waypointIsNotReady, "waypoint \(key.namespacedName) does not exist")
        }
        guard gateway.isWaypoint else {
            return problem(
                .waypointIsNotReady,
                "Gateway \(key.namespacedName) has class \"\(gateway.gatewayClassName)\", not \(Gateway.waypointClassName)"
            )
        }
        let scope = trafficType(of: gateway)
        guard scope == "all" || scope == kind.rawValue else {
            return problem(
                .unsupportedTrafficType,
                "waypoint \(key.namespacedName) takes \(scope) traffic (istio.io/waypoint-for), not \(kind.rawValue)"
            )
        }
        guard admits(gateway, key: key, namespace: namespace) else {
            return problem(
                .attachmentDenied,
                "waypoint \(key.namespacedName) does not allow namespace \(namespace) (allowedRoutes of its HBONE listener)"
            )
        }
        var addresses = gateway.addresses
        if addresses.isEmpty, let service = services[ObjectKey(.service, namespace: key.namespace, name: key.name)] {
            addresses = service.clusterIPs
        }
        guard !addresses.isEmpty else {
            return problem(.waypointIsNotReady, "waypoint \(key.namespacedName) has no address yet")
        }
        let account =
            podAccounts[key]?.first ?? gateway.metadata.annotations[Self.gatewayServiceAccountAnnotation] ?? key.name
        guard let identity = try? SpiffeID(trustDomain: trustDomain, namespace: key.namespace, serviceAccount: account)
        else {
            return problem(
                .waypointIsNotReady,
                "waypoint \(key.namespacedName) has an invalid service account \"\(account)\""
            )
        }
        return .waypoint(WaypointBinding(gateway: key, addresses: addresses, identity: identity, reason: reason))
    }
}
