public import AmbitModel

/// A waypoint chosen for some traffic: the Gateway, where it listens and who it is.
public struct WaypointBinding: Hashable, Sendable {
    public let gateway: ObjectKey
    /// Addresses to dial on 15008: the Gateway's addresses, else its Service's cluster IPs.
    public let addresses: [IPAddress]
    /// The SPIFFE identity the waypoint presents (its service account).
    public let identity: SpiffeID
    /// Which label or annotation chose it, for logs and `ambitctl`.
    public let reason: String
}

/// The outcome of looking up a waypoint. `unresolved` means a label asks for a waypoint that
/// cannot be used: callers must fail closed rather than bypass it.
public enum WaypointResolution: Hashable, Sendable, CustomStringConvertible {
    case none
    case waypoint(WaypointBinding)
    case unresolved(String)

    public var binding: WaypointBinding? {
        if case .waypoint(let binding) = self { return binding }
        return nil
    }

    public var description: String {
        switch self {
        case .none: return "none"
        case .waypoint(let binding): return "\(binding.gateway.namespacedName) (\(binding.reason))"
        case .unresolved(let reason): return "unresolved: \(reason)"
        }
    }
}

/// Gateways dedicated to a service account with `istio.io/for-service-account`, by `ns/sa`.
struct ServiceAccountWaypointIndex {
    private var gateways: [String: ObjectKey] = [:]
    private(set) var warnings: [String] = []

    init(gateways all: [ObjectKey: Gateway]) {
        for key in all.keys.sorted() {
            let gateway = all[key]!
            guard gateway.isWaypoint, let account = gateway.forServiceAccount else { continue }
            let slot = "\(key.namespace)/\(account)"
            if let existing = gateways[slot] {
                warnings.append("\(existing) and \(key) both serve service account \(slot); using \(existing)")
            } else {
                gateways[slot] = key
            }
        }
    }

    func gateway(namespace: String, serviceAccount: String) -> ObjectKey? {
        gateways["\(namespace)/\(serviceAccount)"]
    }
}

extension ConfigSnapshot {
    static let gatewayNameLabel = "gateway.networking.k8s.io/gateway-name"
    static let gatewayServiceAccountAnnotation = "gateway.istio.io/service-account"

    private enum TrafficKind: String {
        case service
        case workload
    }

    /// The waypoint for traffic addressed to a service: the service's `istio.io/use-waypoint`
    /// label, else its namespace's. `none` opts out.
    public func waypoint(forService key: ObjectKey) -> WaypointResolution {
        guard let service = services[key] else { return .none }
        // A waypoint's own service never goes through a waypoint.
        if let gateway = gateways[ObjectKey(.gateway, namespace: key.namespace, name: key.name)], gateway.isWaypoint {
            return .none
        }
        if let resolution = resolveLabel(on: service.metadata, kind: .service, origin: "service label", explicit: true)
        {
            return resolution
        }
        if let namespace = namespaces[key.namespace],
            let resolution = resolveLabel(
                on: namespace.metadata,
                kind: .service,
                origin: "namespace label",
                explicit: false
            )
        {
            return resolution
        }
        return .none
    }

    /// The waypoint for traffic addressed to a pod directly: the pod's `istio.io/use-waypoint`
    /// label, else a Gateway annotated `istio.io/for-service-account` with the pod's service
    /// account, else the namespace label.
    public func waypoint(forWorkload key: ObjectKey) -> WaypointResolution {
        guard let pod = pods[key] else { return .none }
        if pod.metadata.labels[Self.gatewayNameLabel] != nil { return .none }  // a waypoint pod itself
        if let resolution = resolveLabel(on: pod.metadata, kind: .workload, origin: "pod label", explicit: true) {
            return resolution
        }
        if let gateway = serviceAccountWaypoints.gateway(
            namespace: key.namespace,
            serviceAccount: pod.serviceAccountName
        ) {
            return binding(
                for: gateway,
                kind: .workload,
                reason: "for-service-account \(pod.serviceAccountName)",
                explicit: true
            )
        }
        if let namespace = namespaces[key.namespace],
            let resolution = resolveLabel(
                on: namespace.metadata,
                kind: .workload,
                origin: "namespace label",
                explicit: false
            )
        {
            return resolution
        }
        return .none
    }

    /// Reads `istio.io/use-waypoint` (and `-namespace`) from one object; `nil` when absent.
    private func resolveLabel(on metadata: ObjectMeta, kind: TrafficKind, origin: String, explicit: Bool)
        -> WaypointResolution?
    {
        guard let name = metadata.labels[WellKnownLabels.useWaypoint] else { return nil }
        if name == WellKnownLabels.useWaypointNone { return WaypointResolution.none }
        let namespace =
            metadata.labels[WellKnownLabels.useWaypointNamespace]
            ?? (metadata.namespace.isEmpty ? metadata.name : metadata.namespace)
        return binding(
            for: ObjectKey(.gateway, namespace: namespace, name: name),
            kind: kind,
            reason: "\(origin) \(WellKnownLabels.useWaypoint)=\(name)",
            explicit: explicit
        )
    }

    /// Turns a Gateway into a binding. A waypoint that does not serve this kind of traffic is
    /// an error when the object asked for it by name, and silently skipped when inherited.
    private func binding(for key: ObjectKey, kind: TrafficKind, reason: String, explicit: Bool) -> WaypointResolution {
        guard let gateway = gateways[key] else {
            return .unresolved("\(reason): waypoint \(key.namespacedName) does not exist")
        }
        guard gateway.isWaypoint else {
            return .unresolved(
                "\(reason): \(key) has class \"\(gateway.gatewayClassName)\", not \(Gateway.waypointClassName)"
            )
        }
        let defaultScope = gateway.forServiceAccount == nil ? "service" : "all"
        let scope = gateway.metadata.labels[WellKnownLabels.waypointFor] ?? defaultScope
        guard scope == "all" || scope == kind.rawValue else {
            return explicit
                ? .unresolved("\(reason): waypoint \(key.namespacedName) is for \(scope) traffic, not \(kind.rawValue)")
                : .none
        }
        var addresses = gateway.addresses
        if addresses.isEmpty, let service = services[ObjectKey(.service, namespace: key.namespace, name: key.name)] {
            addresses = service.clusterIPs
        }
        guard !addresses.isEmpty else {
            return .unresolved("\(reason): waypoint \(key.namespacedName) has no address yet")
        }
        let account = gateway.metadata.annotations[Self.gatewayServiceAccountAnnotation] ?? key.name
        guard
            let identity = try? SpiffeID(
                trustDomain: options.trustDomain,
                namespace: key.namespace,
                serviceAccount: account
            )
        else {
            return .unresolved(
                "\(reason): waypoint \(key.namespacedName) has an invalid service account \"\(account)\""
            )
        }
        return .waypoint(WaypointBinding(gateway: key, addresses: addresses, identity: identity, reason: reason))
    }
}

/// For each pod, the waypoints its traffic must come through: its own (workload) waypoint for
/// every port, and, per target port, the waypoints of the services that select it.
struct WaypointGuardIndex: Sendable {
    var workload: [ObjectKey: WaypointResolution] = [:]
    var ports: [ObjectKey: [UInt16: [WaypointResolution]]] = [:]
}

extension ConfigSnapshot {
    /// The waypoints an inbound connection to `pod` on `port` must come from (no bypass): the
    /// pod's workload waypoint, and the waypoints of services whose target port this is. An
    /// `unresolved` entry means a waypoint is asked for but unusable, so the connection must be
    /// refused. Empty when no waypoint is involved.
    public func waypointsGuarding(pod: ObjectKey, port: UInt16) -> [WaypointResolution] {
        let index = waypointGuards.withLock { cached in
            if let cached { return cached }
            let built = buildWaypointGuards()
            cached = built
            return built
        }
        var result = index.ports[pod]?[port] ?? []
        if let workload = index.workload[pod] { result.append(workload) }
        return result
    }

    private func buildWaypointGuards() -> WaypointGuardIndex {
        var index = WaypointGuardIndex()
        for key in pods.keys {
            let resolution = waypoint(forWorkload: key)
            if resolution != .none { index.workload[key] = resolution }
        }
        var seen = Set<ObjectKey>()
        for binding in servicesByAddress.values {
            let resolution = waypoint(forService: binding.service)
            guard resolution != .none else { continue }
            seen.insert(binding.service)
            for endpoint in binding.endpoints {
                guard let pod = endpoint.pod, !(index.ports[pod]?[endpoint.address.port] ?? []).contains(resolution)
                else { continue }
                index.ports[pod, default: [:]][endpoint.address.port, default: []].append(resolution)
            }
        }
        return index
    }
}
