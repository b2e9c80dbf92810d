public import AmbitModel

/// Authorization in a waypoint: at L7 for HTTP requests, at L4 for opaque TCP (see
/// ``AuthorizationLayer``), with the same order as the node agent's engine (dry-run
/// recorded, DENY, no ALLOW → allow, ALLOW, else deny) but over requests and with every
/// attribute checked.
///
/// Which policies apply (Istio's `targetRefs` binding): those whose `targetRefs` name this
/// waypoint's Gateway (in the Gateway's namespace), those naming the Service a request is
/// addressed to (in the Service's namespace), and those in the root namespace naming the
/// GatewayClass `istio-waypoint` (every waypoint). Selector policies are the node agents' business.
public struct WaypointAuthorization: Sendable {
    private let gatewayPolicies: [CompiledPolicy]
    private let servicePolicies: [ObjectKey: [CompiledPolicy]]
    /// CUSTOM policies bound here, which Ambit cannot enforce (no external authorizer yet).
    public let warnings: [String]

    public init(
        policies: some Sequence<AuthorizationPolicy>,
        gateway: ObjectKey,
        rootNamespace: String = WellKnownLabels.defaultRootNamespace,
        layer: AuthorizationLayer = .l7
    ) {
        var gatewayPolicies: [CompiledPolicy] = []
        var servicePolicies: [ObjectKey: [CompiledPolicy]] = [:]
        var warnings: [String] = []
        for policy in policies.sorted(by: { $0.key < $1.key }) {
            let namespace = policy.metadata.namespace
            var bindsGateway = false
            var services: [ObjectKey] = []
            for target in policy.targetRefs {
                let targetNamespace = target.namespace ?? namespace
                guard targetNamespace == namespace else { continue }  // Istio ignores cross-namespace refs
                switch target.kind {
                case "Gateway" where namespace == gateway.namespace && target.name == gateway.name:
                    bindsGateway = true
                case "GatewayClass" where namespace == rootNamespace && target.name == Gateway.waypointClassName:
                    bindsGateway = true
                case "Service":
                    services.append(ObjectKey(.service, namespace: namespace, name: target.name))
                default:
                    continue
                }
            }
            guard bindsGateway || !services.isEmpty else { continue }
            if policy.action == .custom {
                warnings.append("\(policy.key): CUSTOM policies need an external authorizer, which Ambit does not have")
                continue
            }
            let compiled = CompiledPolicy(policy, layer: layer)
            if bindsGateway { gatewayPolicies.append(compiled) }
            for service in services { servicePolicies[service, default: []].append(compiled) }
        }
        self.gatewayPolicies = gatewayPolicies
        self.servicePolicies = servicePolicies
        self.warnings = warnings
    }

    /// The policies a sidecar enforces for its own pod, as Istio's sidecars do: selector-less
    /// policies of the root namespace and of the pod's namespace, and selector policies matching
    /// the pod's labels (not `targetRefs` policies, which belong to waypoints), with every
    /// attribute checked at `layer`.
    public init(
        sidecarFor pod: Pod,
        policies: some Sequence<AuthorizationPolicy>,
        rootNamespace: String = WellKnownLabels.defaultRootNamespace,
        layer: AuthorizationLayer = .l7
    ) {
        var selected: [CompiledPolicy] = []
        var warnings: [String] = []
        for policy in policies.sorted(by: { $0.key < $1.key }) where policy.targetRefs.isEmpty {
            let namespace = policy.metadata.namespace
            guard namespace == pod.metadata.namespace || namespace == rootNamespace else { continue }
            if let selector = policy.selector, !selector.matches(pod.metadata.labels) { continue }
            if policy.action == .custom {
                warnings.append("\(policy.key): CUSTOM policies need an external authorizer, which Ambit does not have")
                continue
            }
            selected.append(CompiledPolicy(policy, layer: layer))
        }
        gatewayPolicies = selected
        servicePolicies = [:]
        self.warnings = warnings
    }

    /// Decides a request addressed to `service` (or to a workload directly when `nil`).
    public func evaluate(_ request: AuthorizationRequest, service: ObjectKey?) -> AuthorizationDecision {
        var policies = gatewayPolicies
        if let service, let bound = servicePolicies[service] {
            policies += bound
        }
        return AuthorizationEngine.decide(request, policies: policies)
    }

    /// Number of policies bound to this waypoint or to services, for status pages.
    public var policyCount: Int {
        Set(gatewayPolicies.map(\.key) + servicePolicies.values.flatMap { $0.map(\.key) }).count
    }
}
