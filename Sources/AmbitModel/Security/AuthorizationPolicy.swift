/// An Istio `AuthorizationPolicy` (security.istio.io), with its values already validated:
/// CIDRs parsed, ports numeric, string matches interpreted, condition keys known.
public struct AuthorizationPolicy: KubernetesObject {
    public static let kind = ResourceKind.authorizationPolicy
    public static let dryRunAnnotation = "istio.io/dry-run"

    public enum Action: String, Hashable, Sendable, CaseIterable {
        case allow = "ALLOW"
        case deny = "DENY"
        case audit = "AUDIT"
        case custom = "CUSTOM"
    }

    public var metadata: ObjectMeta
    /// `spec.selector`; `nil` when the policy has none (it then applies namespace-wide, or mesh-wide
    /// in the root namespace).
    public var selector: LabelSelector?
    /// `spec.targetRef` / `spec.targetRefs`: the policy binds to a waypoint (Gateway) or a Service
    /// and is enforced at L7 by the waypoint, not by the node agent.
    public var targetRefs: [PolicyTargetReference]
    public var action: Action
    /// `spec.provider.name` for CUSTOM policies.
    public var provider: String?
    /// Empty when `spec.rules` is absent or empty: such a policy matches nothing (so an ALLOW
    /// policy without rules denies everything it selects), while `rules: [{}]` matches everything.
    public var rules: [Rule]
    /// From the `istio.io/dry-run: "true"` annotation: evaluated and logged, never enforced.
    public var dryRun: Bool

    public init(
        metadata: ObjectMeta,
        selector: LabelSelector? = nil,
        targetRefs: [PolicyTargetReference] = [],
        action: Action = .allow,
        provider: String? = nil,
        rules: [Rule] = [],
        dryRun: Bool = false
    ) {
        self.metadata = metadata
        self.selector = selector
        self.targetRefs = targetRefs
        self.action = action
        self.provider = provider
        self.rules = rules
        self.dryRun = dryRun
    }

    /// One entry of `spec.rules`: all present parts (`from`, `to`, `when`) must match.
    public struct Rule: Hashable, Sendable {
        public var from: [Source]
        public var to: [Operation]
        public var when: [Condition]

        public init(from: [Source] = [], to: [Operation] = [], when: [Condition] = []) {
            self.from = from
            self.to = to
            self.when = when
        }
    }

    /// `from[].source`. Values of one field are ORed; `not*` fields exclude.
    public struct Source: Hashable, Sendable {
        public var principals: [StringMatch] = []
        public var notPrincipals: [StringMatch] = []
        public var requestPrincipals: [StringMatch] = []
        public var notRequestPrincipals: [StringMatch] = []
        public var namespaces: [StringMatch] = []
        public var notNamespaces: [StringMatch] = []
        /// `ns/sa` pairs (a bare `sa` means the policy's namespace).
        public var serviceAccounts: [ServiceAccountRef] = []
        public var notServiceAccounts: [ServiceAccountRef] = []
        public var ipBlocks: [IPCIDR] = []
        public var notIpBlocks: [IPCIDR] = []
        public var remoteIpBlocks: [IPCIDR] = []
        public var notRemoteIpBlocks: [IPCIDR] = []

        public init() {}

        /// Fields that only an HTTP-aware proxy can evaluate (as in Istio).
        public var l7Fields: [String] {
            var fields: [String] = []
            if !requestPrincipals.isEmpty { fields.append("requestPrincipals") }
            if !notRequestPrincipals.isEmpty { fields.append("notRequestPrincipals") }
            // The original client address behind proxies comes from HTTP headers or PROXY protocol.
            if !remoteIpBlocks.isEmpty { fields.append("remoteIpBlocks") }
            if !notRemoteIpBlocks.isEmpty { fields.append("notRemoteIpBlocks") }
            return fields
        }
    }

    /// `to[].operation`. `hosts`, `methods` and `paths` need L7; `ports` is L4.
    public struct Operation: Hashable, Sendable {
        /// Matched case-insensitively against the request's host, with or without its port.
        public var hosts: [StringMatch] = []
        public var notHosts: [StringMatch] = []
        public var ports: [UInt16] = []
        public var notPorts: [UInt16] = []
        public var methods: [StringMatch] = []
        public var notMethods: [StringMatch] = []
        public var paths: [PathPattern] = []
        public var notPaths: [PathPattern] = []

        public init() {}

        public var l7Fields: [String] {
            var fields: [String] = []
            if !hosts.isEmpty { fields.append("hosts") }
            if !notHosts.isEmpty { fields.append("notHosts") }
            if !methods.isEmpty { fields.append("methods") }
            if !notMethods.isEmpty { fields.append("notMethods") }
            if !paths.isEmpty { fields.append("paths") }
            if !notPaths.isEmpty { fields.append("notPaths") }
            return fields
        }
    }

    /// `when[]`: a request attribute and the values it must (or must not) have.
    public struct Condition: Hashable, Sendable {
        public var key: ConditionKey
        public var values: [String]
        public var notValues: [String]

        public init(key: ConditionKey, values: [String] = [], notValues: [String] = []) {
            self.key = key
            self.values = values
            self.notValues = notValues
        }
    }

    /// A `namespace/serviceAccount` pair in `serviceAccounts`.
    public struct ServiceAccountRef: Hashable, Sendable, CustomStringConvertible {
        public var namespace: String
        public var name: String

        public init(namespace: String, name: String) {
            self.namespace = namespace
            self.name = name
        }

        public var description: String { "\(namespace)/\(name)" }
    }
}

/// A `targetRef(s)` entry of a policy.
public struct PolicyTargetReference: Hashable, Sendable, CustomStringConvertible {
    public var group: String
    public var kind: String
    public var name: String
    public var namespace: String?

    public init(group: String, kind: String, name: String, namespace: String? = nil) {
        self.group = group
        self.kind = kind
        self.name = name
        self.namespace = namespace
    }

    public var description: String { "\(kind) \(namespace.map { "\($0)/" } ?? "")\(name)" }
}
