public import AmbitModel

/// A connection to be authorized at L4, on the destination side.
public struct AuthorizationRequest: Hashable, Sendable {
    /// Namespace and labels of the destination workload (they select the policies that apply).
    public var destinationNamespace: String
    public var destinationLabels: [String: String]
    /// The peer's identity from its mTLS certificate; `nil` for plaintext.
    public var sourceIdentity: SpiffeID?
    public var sourceAddress: IPAddress
    public var destinationAddress: IPAddress
    /// The real target port of the application, never 15008.
    public var destinationPort: UInt16
    /// The HTTP request, when a waypoint authorizes one (L7); `nil` at L4.
    public var http: HTTPRequestAttributes?

    public init(
        destinationNamespace: String,
        destinationLabels: [String: String],
        sourceIdentity: SpiffeID?,
        sourceAddress: IPAddress,
        destinationAddress: IPAddress,
        destinationPort: UInt16,
        http: HTTPRequestAttributes? = nil
    ) {
        self.destinationNamespace = destinationNamespace
        self.destinationLabels = destinationLabels
        self.sourceIdentity = sourceIdentity
        self.sourceAddress = sourceAddress
        self.destinationAddress = destinationAddress
        self.destinationPort = destinationPort
        self.http = http
    }

    /// A request to `workload` at `port` of its first address.
    public init(to workload: Workload, port: UInt16, from sourceIdentity: SpiffeID?, sourceAddress: IPAddress) {
        self.init(
            destinationNamespace: workload.namespace,
            destinationLabels: workload.pod.metadata.labels,
            sourceIdentity: sourceIdentity,
            sourceAddress: sourceAddress,
            destinationAddress: workload.pod.podIPs.first ?? sourceAddress,
            destinationPort: port
        )
    }
}

/// What L7 authorization looks at in an HTTP request.
public struct HTTPRequestAttributes: Hashable, Sendable {
    public var method: String
    /// The path without its query string.
    public var path: String
    /// The `Host` header or `:authority`, lower-cased.
    public var host: String
    /// Header values by lower-cased name.
    public var headers: [String: [String]]

    public init(method: String, path: String, host: String, headers: [String: [String]]) {
        self.method = method
        self.path = path
        self.host = host.lowercased()
        self.headers = headers
    }

    /// The host without a `:port` suffix (IPv6 literals keep their brackets).
    var hostWithoutPort: String {
        guard let colon = host.lastIndex(of: ":"), !host[colon...].contains("]"),
            host[host.index(after: colon)...].allSatisfy(\.isNumber)
        else { return host }
        return String(host[..<colon])
    }
}

/// The verdict on a connection, naming the policy (and rule) that decided it.
public struct AuthorizationDecision: Hashable, Sendable, CustomStringConvertible {
    public enum Outcome: String, Hashable, Sendable {
        case allow
        case deny
    }

    /// A dry-run policy that matched: what it would have done had it been enforced.
    public struct DryRunMatch: Hashable, Sendable {
        public let policy: ObjectKey
        public let action: AuthorizationPolicy.Action
        public let rule: Int

        public init(policy: ObjectKey, action: AuthorizationPolicy.Action, rule: Int) {
            self.policy = policy
            self.action = action
            self.rule = rule
        }
    }

    /// Why the outcome is what it is; ``reason`` spells it out.
    public enum Basis: Hashable, Sendable {
        /// No ALLOW policy applies to the destination.
        case noAllowPolicy
        case allowedByRule(Int)
        /// A DENY rule matched; `ignoredL7` lists the L7 attributes it could not check (the rule
        /// was widened to every connection matching its L4 part).
        case deniedByRule(Int, ignoredL7: [String])
        /// Nothing allowed it, and the deciding ALLOW policy needs these L7 attributes.
        case needsWaypoint([String])
        /// Nothing allowed it; these ALLOW policies applied.
        case noAllowRuleMatched([ObjectKey])
        /// A rule of a CUSTOM policy matched where its authorizer cannot be called (the node agent):
        /// denied, failing closed.
        case customWithoutAuthorizer(Int, provider: String)
    }

    public let outcome: Outcome
    /// The policy that decided; `nil` when no policy applied (allowed by default).
    public let policy: ObjectKey?
    public let basis: Basis
    /// Dry-run policies that matched: logged, never enforced.
    public let dryRunMatches: [DryRunMatch]
    /// AUDIT policies that matched: logged, never enforced.
    public let auditMatches: [ObjectKey]

    /// Index of the matching rule in `spec.rules`, when a rule matched.
    public var rule: Int? {
        switch basis {
        case .allowedByRule(let rule), .deniedByRule(let rule, _), .customWithoutAuthorizer(let rule, _): return rule
        default: return nil
        }
    }

    /// The decision in words, naming the policy and rule. Built on demand, so the data path
    /// pays for it only when it logs.
    public var reason: String {
        let name = policy?.namespacedName ?? "-"
        switch basis {
        case .noAllowPolicy:
            return "allowed: no ALLOW policy applies"
        case .allowedByRule(let rule):
            return "allowed by ALLOW policy \(name) (rule \(rule))"
        case .deniedByRule(let rule, let ignored):
            var text = "denied by DENY policy \(name) (rule \(rule))"
            if !ignored.isEmpty {
                text +=
                    "; its L7 attributes (\(ignored.joined(separator: ", "))) cannot be checked at L4, "
                    + "so the rule applies to every connection"
            }
            return text
        case .needsWaypoint(let attributes):
            return
                "denied: ALLOW policy \(name) needs L7 attributes (\(attributes.joined(separator: ", "))) that only a "
                + "waypoint can check, and no other ALLOW rule matched"
        case .noAllowRuleMatched(let policies):
            return "denied: no ALLOW policy matched (\(policies.map(\.namespacedName).joined(separator: ", ")))"
        case .customWithoutAuthorizer(let rule, let provider):
            return
                "denied: CUSTOM policy \(name) (rule \(rule)) needs the external authorizer \"\(provider)\", which only a "
                + "waypoint can call (bind the policy to one with targetRefs)"
        }
    }

    public var isAllowed: Bool { outcome == .allow }

    /// Allowed with no policy consulted: traffic a proxy passes on to be authorized where it arrives.
    public static let allowedWithoutPolicy = AuthorizationDecision(
        outcome: .allow,
        policy: nil,
        basis: .noAllowPolicy,
        dryRunMatches: [],
        auditMatches: []
    )

    public var description: String { "\(outcome.rawValue.uppercased()): \(reason)" }
}
