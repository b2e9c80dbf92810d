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
///
/// CUSTOM policies come first, as in Istio: ``externalAuthorizers(for:service:)`` names the
/// authorizers a request must pass (those of the CUSTOM policies whose rules match it), which the
/// waypoint asks before ``evaluate(_:service:)`` applies DENY and ALLOW.
public struct WaypointAuthorization: Sendable {
    private let gatewayPolicies: [CompiledPolicy]
    private let servicePolicies: [ObjectKey: [CompiledPolicy]]
    private let gatewayCustom: [CompiledPolicy]
    private let serviceCustom: [ObjectKey: [CompiledPolicy]]

    public init(
        policies: some Sequence<AuthorizationPolicy>,
        gateway: ObjectKey,
        rootNamespace: String = WellKnownLabels.defaultRootNamespace,
        layer: AuthorizationLayer = .l7
    ) {
        var gatewayPolicies: [CompiledPolicy] = []
        var servicePolicies: [ObjectKey: [CompiledPolicy]] = [:]
        var gatewayCustom: [CompiledPolicy] = []
        var serviceCustom: [ObjectKey: [CompiledPolicy]] = [:]
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
            let compiled = CompiledPolicy(policy, layer: layer)
            if policy.action == .custom {
                if bindsGateway { gatewayCustom.append(compiled) }
                for service in services { serviceCustom[service, default: []].append(compiled) }
                continue
            }
            if bindsGateway { gatewayPolicies.append(compiled) }
            for service in services { servicePolicies[service, default: []].append(compiled) }
        }
        self.gatewayPolicies = gatewayPolicies
        self.servicePolicies = servicePolicies
        self.gatewayCustom = gatewayCustom
        self.serviceCustom = serviceCustom
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
        var custom: [CompiledPolicy] = []
        for policy in policies.sorted(by: { $0.key < $1.key }) where policy.targetRefs.isEmpty {
            let namespace = policy.metadata.namespace
            guard namespace == pod.metadata.namespace || namespace == rootNamespace else { continue }
            if let selector = policy.selector, !selector.matches(pod.metadata.labels) { continue }
            if policy.action == .custom {
                custom.append(CompiledPolicy(policy, layer: layer))
            } else {
                selected.append(CompiledPolicy(policy, layer: layer))
            }
        }
        gatewayPolicies = selected
        servicePolicies = [:]
        gatewayCustom = custom
        serviceCustom = [:]
    }

    /// The authorizers (`spec.provider.name`) a request must pass first: those of the CUSTOM policies
    /// whose rules match it, in policy order, each once. Dry-run CUSTOM policies are not enforced.
    public func externalAuthorizers(for request: AuthorizationRequest, service: ObjectKey?) -> [String] {
        var policies = gatewayCustom
        if let service, let bound = serviceCustom[service] { policies += bound }
        var providers: [String] = []
        for policy in policies where !policy.dryRun && policy.firstMatch(request) != nil {
            let provider = policy.provider ?? ""
            if !providers.contains(provider) { providers.append(provider) }
        }
        return providers
    }

    /// Every authorizer a CUSTOM policy here names, for checking the mesh configuration at start.
    public var namedAuthorizers: Set<String> {
        Set((gatewayCustom + serviceCustom.values.flatMap { $0 }).map { $0.provider ?? "" })
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
        let all =
            gatewayPolicies + gatewayCustom
            + (servicePolicies.values.flatMap { $0 } + serviceCustom.values.flatMap { $0 })
        return Set(all.map(\.key)).count
    }
}
