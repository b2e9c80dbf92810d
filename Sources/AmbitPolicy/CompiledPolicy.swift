import AmbitModel

/// Where a policy is evaluated: on connections (the node agent, a waypoint's opaque TCP) or on
/// HTTP requests (a waypoint).
public enum AuthorizationLayer: Sendable {
    case l4
    case l7
}

/// An AuthorizationPolicy compiled for one layer.
///
/// At L4 it is reduced to what can be checked on a connection, with the L7 parts handled so
/// that the result fails closed: an ALLOW rule that needs L7 attributes never matches (so it
/// cannot let anything through), and a DENY rule drops its L7 parts (so it denies more, not less).
/// At L7 (a waypoint) every attribute is checked against the HTTP request.
///
/// This is stricter than Istio for DENY rules: istiod turns a DENY match with only L7 fields
/// into an empty match that never fires; Ambit denies instead, as a policy the node agent
/// cannot check fully must never let traffic through.
///
/// A class so that gathering the policies that apply to a connection copies references only.
final class CompiledPolicy: Sendable {
    let key: ObjectKey
    let action: AuthorizationPolicy.Action
    /// The external authorizer a CUSTOM policy names.
    let provider: String?
    let dryRun: Bool
    let layer: AuthorizationLayer
    let rules: [CompiledRule]
    /// The L7 attributes the policy uses, e.g. `["methods", "request.headers[x-user]"]`.
    let l7Attributes: [String]

    init(_ policy: AuthorizationPolicy, layer: AuthorizationLayer = .l4) {
        self.key = policy.key
        self.layer = layer
        self.action = policy.action
        self.provider = policy.provider
        self.dryRun = policy.dryRun
        var l7: [String] = []
        var rules: [CompiledRule] = []
        for (index, rule) in policy.rules.enumerated() {
            let ruleL7 =
                rule.from.flatMap(\.l7Fields) + rule.to.flatMap(\.l7Fields)
                + rule.when.filter { !$0.key.isL4 }.map { $0.key.description }
            for attribute in ruleL7 where !l7.contains(attribute) { l7.append(attribute) }
            rules.append(
                CompiledRule(index: index, rule: rule, needsL7: !ruleL7.isEmpty, action: policy.action, layer: layer)
            )
        }
        self.rules = rules
        self.l7Attributes = l7
    }

    /// The first rule that matches, if any.
    func firstMatch(_ request: AuthorizationRequest) -> CompiledRule? {
        for rule in rules where rule.matches(request) { return rule }
        return nil
    }
}

/// One rule: `from` entries ORed, `to` entries ORed, `when` conditions ANDed, the three ANDed.
/// Rules and matchers are immutable classes: evaluation walks them without copying (and
/// retaining) every array they hold, which profiling showed to dominate evaluation.
final class CompiledRule: Sendable {
    let index: Int
    /// False for an ALLOW rule that needs L7 attributes: it can never match at L4.
    let matchable: Bool
    /// True when L7 parts were dropped (DENY): the rule matches more than it says.
    let widened: Bool
    let sources: [SourceMatcher]
    let operations: [OperationMatcher]
    let conditions: [ConditionMatcher]

    init(
        index: Int,
        rule: AuthorizationPolicy.Rule,
        needsL7: Bool,
        action: AuthorizationPolicy.Action,
        layer: AuthorizationLayer
    ) {
        self.index = index
        let partial = needsL7 && layer == .l4
        self.matchable = !(partial && action == .allow)
        self.widened = partial && action != .allow
        self.sources = rule.from.map { SourceMatcher($0, layer: layer) }
        self.operations = rule.to.map { OperationMatcher($0, layer: layer) }
        self.conditions = rule.when.compactMap { ConditionMatcher($0, layer: layer) }
    }

    func matches(_ request: AuthorizationRequest) -> Bool {
        guard matchable else { return false }
        if !sources.isEmpty && !sources.contains(where: { $0.matches(request) }) { return false }
        if !operations.isEmpty && !operations.contains(where: { $0.matches(request) }) { return false }
        return conditions.allSatisfy { $0.matches(request) }
    }
}

/// Positive values ORed, then none of the negative values: Istio's rule for one field.
/// An empty list places no constraint.
@inline(__always)
private func check<T>(_ positive: [T], _ negative: [T], _ predicate: (T) -> Bool) -> Bool {
    (positive.isEmpty || positive.contains(where: predicate)) && !negative.contains(where: predicate)
}

/// The fields of `from[].source`. At L4 the L7 fields (request principals, remote IP blocks) are
/// not kept: for DENY rules that means "any", and ALLOW rules using them never match at all.
/// At L7 the remote IP is the tunnel's source address (Ambit does not trust X-Forwarded-For) and
/// the request principal is always empty (no JWT authentication yet), as for a request without
/// a token in Istio.
final class SourceMatcher: Sendable {
    let principals: [StringMatch]
    let notPrincipals: [StringMatch]
    let namespaces: [StringMatch]
    let notNamespaces: [StringMatch]
    let serviceAccounts: [AuthorizationPolicy.ServiceAccountRef]
    let notServiceAccounts: [AuthorizationPolicy.ServiceAccountRef]
    let ipBlocks: [IPCIDR]
    let notIpBlocks: [IPCIDR]
    let remoteIpBlocks: [IPCIDR]
    let notRemoteIpBlocks: [IPCIDR]
    let requestPrincipals: [StringMatch]
    let notRequestPrincipals: [StringMatch]

    init(_ source: AuthorizationPolicy.Source, layer: AuthorizationLayer) {
        let l7 = layer == .l7
        remoteIpBlocks = l7 ? source.remoteIpBlocks : []
        notRemoteIpBlocks = l7 ? source.notRemoteIpBlocks : []
        requestPrincipals = l7 ? source.requestPrincipals : []
        notRequestPrincipals = l7 ? source.notRequestPrincipals : []
        principals = source.principals
        notPrincipals = source.notPrincipals
        namespaces = source.namespaces
        notNamespaces = source.notNamespaces
        serviceAccounts = source.serviceAccounts
        notServiceAccounts = source.notServiceAccounts
        ipBlocks = source.ipBlocks
        notIpBlocks = source.notIpBlocks
    }

    func matches(_ request: AuthorizationRequest) -> Bool {
        // A plaintext peer has no principal or namespace: positive lists cannot match it,
        // negative lists do not exclude it (as in Istio).
        let principal = request.sourceIdentity?.principal ?? ""
        let namespace = request.sourceIdentity?.namespace ?? ""
        return check(ipBlocks, notIpBlocks) { $0.contains(request.sourceAddress) }
            && check(remoteIpBlocks, notRemoteIpBlocks) { $0.contains(request.sourceAddress) }
            && check(requestPrincipals, notRequestPrincipals) { _ in false }
            && check(principals, notPrincipals) { !principal.isEmpty && $0.matches(principal) }
            && check(namespaces, notNamespaces) { !namespace.isEmpty && $0.matches(namespace) }
            && check(serviceAccounts, notServiceAccounts) { account in
                guard let identity = request.sourceIdentity else { return false }
                return identity.namespace == account.namespace && identity.serviceAccount == account.name
            }
    }
}

/// The fields of `to[].operation`: destination ports, and at L7 hosts, methods and paths.
/// A request without HTTP attributes matches no positive L7 list.
final class OperationMatcher: Sendable {
    let ports: [UInt16]
    let notPorts: [UInt16]
    let hosts: [StringMatch]
    let notHosts: [StringMatch]
    let methods: [StringMatch]
    let notMethods: [StringMatch]
    let paths: [PathPattern]
    let notPaths: [PathPattern]

    init(_ operation: AuthorizationPolicy.Operation, layer: AuthorizationLayer) {
        let l7 = layer == .l7
        ports = operation.ports
        notPorts = operation.notPorts
        // Hosts compare case-insensitively: patterns are lower-cased like the request's host.
        hosts = l7 ? operation.hosts.map(\.lowercased) : []
        notHosts = l7 ? operation.notHosts.map(\.lowercased) : []
        methods = l7 ? operation.methods : []
        notMethods = l7 ? operation.notMethods : []
        paths = l7 ? operation.paths : []
        notPaths = l7 ? operation.notPaths : []
    }

    func matches(_ request: AuthorizationRequest) -> Bool {
        guard check(ports, notPorts, { $0 == request.destinationPort }) else { return false }
        let http = request.http
        return check(methods, notMethods) { http != nil && $0.matches(http!.method) }
            && check(paths, notPaths) { http != nil && $0.matches(http!.path) }
            && check(hosts, notHosts) { match in
                guard let http else { return false }
                return match.matches(http.host) || match.matches(http.hostWithoutPort)
            }
    }
}

/// A `when` condition. At L4, conditions on L7 keys are not kept (see ``CompiledRule``); at L7,
/// `request.headers[...]` is checked and keys Ambit cannot evaluate (JWT claims, SNI) have no
/// value, so their positive values never match. Values were validated when the manifest was read.
enum ConditionMatcher: Sendable {
    case requestHeader(String, [StringMatch], not: [StringMatch])
    case remoteIP([IPCIDR], not: [IPCIDR])
    case unavailable([String], not: [String])
    case sourceIP([IPCIDR], not: [IPCIDR])
    case destinationIP([IPCIDR], not: [IPCIDR])
    case destinationPort([UInt16], not: [UInt16])
    case sourceNamespace([StringMatch], not: [StringMatch])
    case sourcePrincipal([StringMatch], not: [StringMatch])

    init?(_ condition: AuthorizationPolicy.Condition, layer: AuthorizationLayer) {
        let cidrs = { (values: [String]) in values.compactMap { try? IPCIDR(parsing: $0) } }
        let strings = { (values: [String]) in values.compactMap { try? StringMatch(parsing: $0) } }
        switch condition.key {
        case .sourceIP: self = .sourceIP(cidrs(condition.values), not: cidrs(condition.notValues))
        case .destinationIP: self = .destinationIP(cidrs(condition.values), not: cidrs(condition.notValues))
        case .destinationPort:
            self = .destinationPort(
                condition.values.compactMap { UInt16($0) },
                not: condition.notValues.compactMap { UInt16($0) }
            )
        case .sourceNamespace: self = .sourceNamespace(strings(condition.values), not: strings(condition.notValues))
        case .sourcePrincipal: self = .sourcePrincipal(strings(condition.values), not: strings(condition.notValues))
        case .requestHeader(let name) where layer == .l7:
            self = .requestHeader(name, strings(condition.values), not: strings(condition.notValues))
        case .remoteIP where layer == .l7:
            self = .remoteIP(cidrs(condition.values), not: cidrs(condition.notValues))
        default:
            guard layer == .l7 else { return nil }
            self = .unavailable(condition.values, not: condition.notValues)
        }
    }

    func matches(_ request: AuthorizationRequest) -> Bool {
        switch self {
        case .requestHeader(let name, let values, let notValues):
            let present = request.http?.headers[name] ?? []
            return check(values, notValues) { match in present.contains { match.matches($0) } }
        case .remoteIP(let values, let notValues), .sourceIP(let values, let notValues):
            return check(values, notValues) { $0.contains(request.sourceAddress) }
        case .unavailable(let values, let notValues):
            return check(values, notValues) { _ in false }
        case .destinationIP(let values, let notValues):
            return check(values, notValues) { $0.contains(request.destinationAddress) }
        case .destinationPort(let values, let notValues):
            return check(values, notValues) { $0 == request.destinationPort }
        case .sourceNamespace(let values, let notValues):
            let namespace = request.sourceIdentity?.namespace ?? ""
            return check(values, notValues) { !namespace.isEmpty && $0.matches(namespace) }
        case .sourcePrincipal(let values, let notValues):
            let principal = request.sourceIdentity?.principal ?? ""
            return check(values, notValues) { !principal.isEmpty && $0.matches(principal) }
        }
    }
}
