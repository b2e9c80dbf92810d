public import AmbitModel

/// L4 authorization with Istio's semantics, evaluated on the destination side.
///
/// Which policies apply to a workload: selector-less policies in the root namespace (mesh-wide),
/// selector-less policies in the workload's namespace, and selector policies in either namespace
/// whose labels match. Policies with `targetRefs` belong to waypoints and CUSTOM policies to an
/// external authorizer; neither is enforced here.
///
/// Order: dry-run policies are only recorded; any matching DENY denies; with no ALLOW policy the
/// connection is allowed; any matching ALLOW allows; otherwise it is denied. AUDIT policies are
/// recorded when they match and never change the outcome.
public struct AuthorizationEngine: Sendable {
    private let rootNamespace: String
    private let global: [CompiledPolicy]
    private let namespaceWide: [String: [CompiledPolicy]]
    /// Selector policies filed under one of their `label=value` pairs (the smallest), so that a
    /// workload only looks at policies sharing at least one of its labels.
    private let bySelectorLabel: [SelectorSlot: [(LabelSelector, CompiledPolicy)]]
    /// Why some policies are not, or not fully, enforced at L4.
    public let warnings: [String]
    public let policyCount: Int

    private struct SelectorSlot: Hashable {
        let namespace: String
        let label: String
        let value: String
    }

    public init(
        policies: some Sequence<AuthorizationPolicy>,
        rootNamespace: String = WellKnownLabels.defaultRootNamespace
    ) {
        self.rootNamespace = rootNamespace
        var global: [CompiledPolicy] = []
        var namespaceWide: [String: [CompiledPolicy]] = [:]
        var bySelectorLabel: [SelectorSlot: [(LabelSelector, CompiledPolicy)]] = [:]
        var warnings: [String] = []
        var count = 0
        for policy in policies.sorted(by: { $0.key < $1.key }) {
            if !policy.targetRefs.isEmpty { continue }  // enforced by the waypoint it targets
            if policy.action == .custom {
                // Istio's ztunnel skips CUSTOM policies (fails open); Ambit refuses what they select.
                warnings.append(
                    "\(policy.key): a CUSTOM policy selecting workloads is enforced by the node agent, which cannot "
                        + "call the authorizer \"\(policy.provider ?? "-")\"; the connections its rules match are refused "
                        + "(response_flags UAEX). Bind it to a waypoint with targetRefs to have it checked"
                )
            }
            let compiled = CompiledPolicy(policy)
            if !compiled.l7Attributes.isEmpty, policy.action != .custom {
                let attributes = compiled.l7Attributes.joined(separator: ", ")
                let effect =
                    policy.action == .allow
                    ? "its rules using them never match at L4, so they allow nothing"
                    : "they are ignored at L4, so its rules deny more broadly"
                warnings.append(
                    "\(policy.key) uses L7 attributes (\(attributes)) that need a waypoint; \(effect)"
                )
            }
            count += 1
            let namespace = policy.metadata.namespace
            if let selector = policy.selector,
                let slot = selector.matchLabels.min(by: { ($0.key, $0.value) < ($1.key, $1.value) })
            {
                bySelectorLabel[SelectorSlot(namespace: namespace, label: slot.key, value: slot.value), default: []]
                    .append((selector, compiled))
            } else if namespace == rootNamespace {
                global.append(compiled)
            } else {
                namespaceWide[namespace, default: []].append(compiled)
            }
        }
        self.global = global
        self.namespaceWide = namespaceWide
        self.bySelectorLabel = bySelectorLabel
        self.warnings = warnings
        self.policyCount = count
    }

    /// The policies that apply to a destination, in a stable order.
    func applicablePolicies(namespace: String, labels: [String: String]) -> [CompiledPolicy] {
        var selected: [CompiledPolicy] = []
        for (label, value) in labels {
            for scope in namespace == rootNamespace ? [namespace] : [namespace, rootNamespace] {
                guard let candidates = bySelectorLabel[SelectorSlot(namespace: scope, label: label, value: value)]
                else { continue }
                for (selector, policy) in candidates where selector.matches(labels) {
                    selected.append(policy)
                }
            }
        }
        // Label order is arbitrary; sort so the same policy decides every time.
        selected.sort { $0.key < $1.key }
        return global + (namespaceWide[namespace] ?? []) + selected
    }

    /// Decides whether a connection may proceed.
    public func evaluate(_ request: AuthorizationRequest) -> AuthorizationDecision {
        Self.decide(
            request,
            policies: applicablePolicies(namespace: request.destinationNamespace, labels: request.destinationLabels)
        )
    }

    /// Istio's order over the policies that apply, shared by the node agent and waypoints: CUSTOM,
    /// DENY, then ALLOW. Where CUSTOM policies are checked with their authorizer (a waypoint), they are
    /// left out of `policies`; a CUSTOM policy here is one nobody can check, and what it matches is denied.
    static func decide(_ request: AuthorizationRequest, policies: [CompiledPolicy]) -> AuthorizationDecision {
        var dryRunMatches: [AuthorizationDecision.DryRunMatch] = []
        var auditMatches: [ObjectKey] = []
        var customMatch: (CompiledPolicy, CompiledRule)?
        var denyMatch: (CompiledPolicy, CompiledRule)?
        var allowMatch: (CompiledPolicy, CompiledRule)?
        var allowPolicies: [CompiledPolicy] = []

        for policy in policies {
            let match = policy.firstMatch(request)
            if policy.dryRun {
                if let match {
                    dryRunMatches.append(.init(policy: policy.key, action: policy.action, rule: match.index))
                }
                continue
            }
            switch policy.action {
            case .audit:
                if match != nil { auditMatches.append(policy.key) }
            case .deny:
                if denyMatch == nil, let match { denyMatch = (policy, match) }
            case .allow:
                allowPolicies.append(policy)
                if allowMatch == nil, let match { allowMatch = (policy, match) }
            case .custom:
                if customMatch == nil, let match { customMatch = (policy, match) }
            }
        }

        func decision(
            _ outcome: AuthorizationDecision.Outcome,
            _ policy: ObjectKey?,
            _ basis: AuthorizationDecision.Basis
        )
            -> AuthorizationDecision
        {
            AuthorizationDecision(
                outcome: outcome,
                policy: policy,
                basis: basis,
                dryRunMatches: dryRunMatches,
                auditMatches: auditMatches
            )
        }

        if let (policy, rule) = customMatch {
            return decision(.deny, policy.key, .customWithoutAuthorizer(rule.index, provider: policy.provider ?? "-"))
        }
        if let (policy, rule) = denyMatch {
            return decision(
                .deny,
                policy.key,
                .deniedByRule(rule.index, ignoredL7: rule.widened ? policy.l7Attributes : [])
            )
        }
        if allowPolicies.isEmpty {
            return decision(.allow, nil, .noAllowPolicy)
        }
        if let (policy, rule) = allowMatch {
            return decision(.allow, policy.key, .allowedByRule(rule.index))
        }
        // Nothing allowed it. If an ALLOW policy could not be checked because it needs L7
        // attributes, it is the one to blame: that is what the operator has to fix.
        if let blocked = allowPolicies.first(where: { $0.layer == .l4 && !$0.l7Attributes.isEmpty }) {
            return decision(.deny, blocked.key, .needsWaypoint(blocked.l7Attributes))
        }
        return decision(.deny, allowPolicies[0].key, .noAllowRuleMatched(allowPolicies.map(\.key)))
    }
}
