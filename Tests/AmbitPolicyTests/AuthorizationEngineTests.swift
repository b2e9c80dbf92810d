import AmbitConfig
import AmbitModel
import AmbitPolicy
import AmbitTelemetry
import AmbitTestSupport
import Logging
import Testing

/// The policy set every case below is evaluated against, written as an operator would.
private let policies = """
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: deny-blocked, namespace: istio-system}
    spec:
      action: DENY
      rules:
        - from: [{source: {ipBlocks: ["203.0.113.0/24", "2001:db8:bad::/48"]}}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: require-mtls, namespace: istio-system}
    spec:
      selector: {matchLabels: {app: locked}}
      rules:
        - from: [{source: {principals: ["*"], notIpBlocks: ["10.66.0.0/16"]}}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: allow-web, namespace: shop}
    spec:
      selector: {matchLabels: {app: web}}
      rules:
        - from: [{source: {principals: ["cluster.local/ns/front/*"]}}]
          to: [{operation: {ports: ["8080"]}}]
        - from: [{source: {namespaces: ["ops"], notPrincipals: ["*/sa/intern"]}}]
        - when:
            - {key: source.ip, values: ["10.9.0.0/16"]}
            - {key: destination.port, values: ["9090"]}
        - from: [{source: {namespaces: ["monitoring"]}}]
          to: [{operation: {ports: ["9100"]}}]
        - to: [{operation: {ports: ["7000"]}}]
          when: [{key: source.namespace, values: ["batch*"]}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: deny-web-metrics, namespace: shop}
    spec:
      selector: {matchLabels: {app: web}}
      action: DENY
      rules:
        - from: [{source: {notNamespaces: ["monitoring"]}}]
          to: [{operation: {ports: ["9100"]}}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: allow-db, namespace: shop}
    spec:
      selector: {matchLabels: {app: db}}
      rules:
        - from: [{source: {serviceAccounts: ["web"]}}]
          to: [{operation: {notPorts: ["22"]}}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: db-l7, namespace: shop}
    spec:
      selector: {matchLabels: {tier: data}}
      rules:
        - to: [{operation: {methods: ["GET"]}}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: deny-db-l7, namespace: shop}
    spec:
      selector: {matchLabels: {app: db}}
      action: DENY
      rules:
        - from: [{source: {namespaces: ["legacy"]}}]
          to: [{operation: {paths: ["/admin"]}}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: audit-all, namespace: shop}
    spec:
      action: AUDIT
      rules: [{}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: dry-deny, namespace: shop, annotations: {istio.io/dry-run: "true"}}
    spec:
      action: DENY
      rules: [{from: [{source: {notIpBlocks: ["10.0.0.0/8"]}}]}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: allow-admin-nothing, namespace: shop}
    spec:
      selector: {matchLabels: {app: admin}}
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: allow-api, namespace: shop}
    spec:
      selector: {matchLabels: {app: api}}
      rules:
        - from: [{source: {principals: ["*/sa/api-client"]}}]
        - from: [{source: {remoteIpBlocks: ["10.0.0.0/8"]}}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: waypoint-only, namespace: open}
    spec:
      targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
      rules: [{to: [{operation: {methods: ["GET"]}}]}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: ext-authz, namespace: external}
    spec:
      action: CUSTOM
      provider: {name: opa}
      rules: [{}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: allow-all, namespace: fenced}
    spec:
      rules: [{}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: deny-ip, namespace: fenced}
    spec:
      action: DENY
      rules: [{when: [{key: destination.ip, values: ["10.50.0.99"]}]}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: deny-notport, namespace: fenced}
    spec:
      action: DENY
      rules: [{when: [{key: destination.port, notValues: ["80", "443"]}]}]
    """

private struct Destination {
    let namespace: String
    let labels: [String: String]
    let address: String
}

private let destinations: [String: Destination] = [
    "web": Destination(namespace: "shop", labels: ["app": "web"], address: "10.20.0.1"),
    "db": Destination(namespace: "shop", labels: ["app": "db", "tier": "data"], address: "10.20.0.2"),
    "admin": Destination(namespace: "shop", labels: ["app": "admin"], address: "10.20.0.3"),
    "api": Destination(namespace: "shop", labels: ["app": "api"], address: "10.20.0.4"),
    "open": Destination(namespace: "open", labels: ["app": "x"], address: "10.30.0.1"),
    "locked": Destination(namespace: "locked", labels: ["app": "locked"], address: "10.40.0.1"),
    "locked-elsewhere": Destination(namespace: "elsewhere", labels: ["app": "locked"], address: "10.41.0.1"),
    "fenced": Destination(namespace: "fenced", labels: ["app": "f"], address: "10.50.0.1"),
    "fenced-99": Destination(namespace: "fenced", labels: ["app": "f"], address: "10.50.0.99"),
]

struct AuthorizationCase: CustomTestStringConvertible, Sendable {
    let name: String
    let destination: String
    /// `namespace/account`, or nil for plaintext.
    let source: String?
    let sourceIP: String
    let port: UInt16
    let allowed: Bool
    /// `namespace/name` of the deciding policy, nil when none applied.
    let policy: String?
    /// Text the reason must contain.
    let reason: String

    var testDescription: String { name }
}

private func allow(
    _ name: String,
    _ destination: String,
    _ source: String?,
    _ ip: String,
    _ port: UInt16,
    _ policy: String?,
    _ reason: String
)
    -> AuthorizationCase
{
    AuthorizationCase(
        name: name,
        destination: destination,
        source: source,
        sourceIP: ip,
        port: port,
        allowed: true,
        policy: policy,
        reason: reason
    )
}

private func deny(
    _ name: String,
    _ destination: String,
    _ source: String?,
    _ ip: String,
    _ port: UInt16,
    _ policy: String?,
    _ reason: String
)
    -> AuthorizationCase
{
    AuthorizationCase(
        name: name,
        destination: destination,
        source: source,
        sourceIP: ip,
        port: port,
        allowed: false,
        policy: policy,
        reason: reason
    )
}

private let cases: [AuthorizationCase] = [
    // Selector ALLOW with principal prefix and port.
    allow("principal prefix on the allowed port", "web", "front/ui", "10.1.0.5", 8080, "shop/allow-web", "(rule 0)"),
    deny(
        "principal prefix on another port",
        "web",
        "front/ui",
        "10.1.0.5",
        8081,
        "shop/allow-web",
        "no ALLOW policy matched"
    ),
    allow("namespace match", "web", "ops/bot", "10.2.0.5", 1234, "shop/allow-web", "(rule 1)"),
    deny(
        "notPrincipals suffix excludes",
        "web",
        "ops/intern",
        "10.2.0.6",
        1234,
        "shop/allow-web",
        "no ALLOW policy matched"
    ),
    allow("when source.ip and destination.port", "web", nil, "10.9.1.1", 9090, "shop/allow-web", "(rule 2)"),
    deny("when destination.port mismatch", "web", nil, "10.9.1.1", 9091, "shop/allow-web", "no ALLOW"),
    deny("when source.ip mismatch", "web", nil, "10.8.1.1", 9090, "shop/allow-web", "no ALLOW"),
    allow("when source.namespace prefix", "web", "batch-jobs/runner", "10.4.0.1", 7000, "shop/allow-web", "(rule 4)"),
    deny("when source.namespace needs an identity", "web", nil, "10.4.0.1", 7000, "shop/allow-web", "no ALLOW"),
    deny("when source.namespace prefix mismatch", "web", "batc/runner", "10.4.0.1", 7000, "shop/allow-web", "no ALLOW"),
    // DENY wins over ALLOW, and its negations.
    deny(
        "global DENY on a source block",
        "web",
        "front/ui",
        "203.0.113.7",
        8080,
        "istio-system/deny-blocked",
        "DENY policy"
    ),
    deny("DENY notNamespaces matches others", "web", "front/ui", "10.1.0.5", 9100, "shop/deny-web-metrics", "(rule 0)"),
    allow(
        "DENY notNamespaces spares the listed one",
        "web",
        "monitoring/prom",
        "10.5.0.1",
        9100,
        "shop/allow-web",
        "(rule 3)"
    ),
    deny("DENY notNamespaces matches plaintext", "web", nil, "10.9.1.1", 9100, "shop/deny-web-metrics", "DENY"),
    deny("DENY port rule on another source", "web", "ops/bot", "10.2.0.5", 9100, "shop/deny-web-metrics", "DENY"),
    // serviceAccounts, notPorts, and an ALLOW policy that needs L7.
    allow("serviceAccounts in policy namespace", "db", "shop/web", "10.3.0.5", 5432, "shop/allow-db", "(rule 0)"),
    deny("notPorts excludes", "db", "shop/web", "10.3.0.5", 22, "shop/db-l7", "needs L7 attributes (methods)"),
    deny("serviceAccounts namespace must match", "db", "other/web", "10.3.0.9", 5432, "shop/db-l7", "only a waypoint"),
    deny("ALLOW with L7 fails closed for others", "db", "front/ui", "10.1.0.5", 5432, "shop/db-l7", "needs L7"),
    deny("ALLOW with L7 fails closed for plaintext", "db", nil, "10.9.1.1", 5432, "shop/db-l7", "needs L7"),
    deny(
        "DENY with L7 is widened",
        "db",
        "legacy/app",
        "10.6.0.1",
        5432,
        "shop/deny-db-l7",
        "applies to every connection"
    ),
    deny("widened DENY still needs its L4 part", "db", "front/ui", "10.1.0.5", 5432, "shop/db-l7", "needs L7"),
    // An ALLOW policy without rules denies everything it selects.
    deny(
        "ALLOW without rules denies identities",
        "admin",
        "shop/web",
        "10.3.0.5",
        80,
        "shop/allow-admin-nothing",
        "no ALLOW policy matched"
    ),
    deny(
        "ALLOW without rules denies plaintext",
        "admin",
        nil,
        "10.9.1.1",
        80,
        "shop/allow-admin-nothing",
        "no ALLOW policy matched"
    ),
    // Principal suffix; an L7-only rule (remoteIpBlocks) never matches at L4.
    allow("principal suffix", "api", "x/api-client", "10.7.0.1", 80, "shop/allow-api", "(rule 0)"),
    deny("principal suffix mismatch", "api", "x/api-clientx", "10.7.0.1", 80, "shop/allow-api", "remoteIpBlocks"),
    deny("remoteIpBlocks is L7", "api", nil, "10.1.1.1", 80, "shop/allow-api", "needs L7"),
    // No ALLOW policy: allowed, unless a global DENY matches. targetRefs and CUSTOM are not L4.
    allow("no policies plaintext", "open", nil, "10.9.1.1", 80, nil, "no ALLOW policy applies"),
    allow("no policies mTLS", "open", "front/ui", "10.1.0.5", 80, nil, "no ALLOW policy applies"),
    deny("global DENY everywhere", "open", "front/ui", "203.0.113.9", 80, "istio-system/deny-blocked", "DENY"),
    deny("global DENY on IPv6 block", "open", "front/ui", "2001:db8:bad::5", 80, "istio-system/deny-blocked", "DENY"),
    allow("IPv6 outside the block", "open", "front/ui", "2001:db8:600d::5", 80, nil, "no ALLOW policy applies"),
    // Root-namespace selector policies apply in every namespace.
    allow("presence principal", "locked", "front/ui", "10.1.0.5", 80, "istio-system/require-mtls", "(rule 0)"),
    deny(
        "presence principal refuses plaintext",
        "locked",
        nil,
        "10.1.0.5",
        80,
        "istio-system/require-mtls",
        "no ALLOW"
    ),
    deny(
        "root selector applies elsewhere",
        "locked-elsewhere",
        nil,
        "10.1.0.5",
        80,
        "istio-system/require-mtls",
        "no ALLOW"
    ),
    allow(
        "root selector allows elsewhere",
        "locked-elsewhere",
        "front/ui",
        "10.1.0.5",
        80,
        "istio-system/require-mtls",
        "ALLOW"
    ),
    deny("notIpBlocks excludes", "locked", "front/ui", "10.66.1.1", 80, "istio-system/require-mtls", "no ALLOW"),
    // rules: [{}] allows all; conditions on destination IP and negated ports.
    allow("empty rule allows", "fenced", nil, "10.9.1.1", 80, "fenced/allow-all", "(rule 0)"),
    allow("empty rule allows mTLS", "fenced", "shop/web", "10.3.0.5", 443, "fenced/allow-all", "(rule 0)"),
    deny("DENY on destination.ip", "fenced-99", nil, "10.9.1.1", 80, "fenced/deny-ip", "DENY"),
    deny("DENY on destination.port notValues", "fenced", nil, "10.9.1.1", 8080, "fenced/deny-notport", "DENY"),
    allow("notValues spares listed ports", "fenced", "shop/web", "10.3.0.5", 80, "fenced/allow-all", "ALLOW"),
]

@Suite struct AuthorizationEngineTests {
    static let engine: AuthorizationEngine = {
        do {
            let objects = try ManifestDecoder().decode(policies, file: "policies.yaml").objects
            let decoded = objects.compactMap { object -> AuthorizationPolicy? in
                if case .authorizationPolicy(let policy) = object { return policy }
                return nil
            }
            return AuthorizationEngine(policies: decoded)
        } catch {
            fatalError("test policies do not decode: \(error)")
        }
    }()

    static func request(_ testCase: AuthorizationCase) throws -> AuthorizationRequest {
        let destination = try #require(destinations[testCase.destination])
        let identity = try testCase.source.map { source -> SpiffeID in
            let parts = source.split(separator: "/").map(String.init)
            return try SpiffeID(namespace: parts[0], serviceAccount: parts[1])
        }
        return AuthorizationRequest(
            destinationNamespace: destination.namespace,
            destinationLabels: destination.labels,
            sourceIdentity: identity,
            sourceAddress: try IPAddress(parsing: testCase.sourceIP),
            destinationAddress: try IPAddress(parsing: destination.address),
            destinationPort: testCase.port
        )
    }

    @Test func tableHasEnoughCases() {
        #expect(cases.count >= 40)
        #expect(Set(cases.map(\.name)).count == cases.count)
    }

    @Test(arguments: cases)
    func decides(_ testCase: AuthorizationCase) throws {
        let decision = Self.engine.evaluate(try Self.request(testCase))
        #expect(decision.isAllowed == testCase.allowed, "\(decision)")
        #expect(decision.policy?.namespacedName == testCase.policy, "\(decision)")
        #expect(decision.reason.contains(testCase.reason), "\(decision)")
    }

    @Test func recordsDryRunAndAuditWithoutEnforcing() throws {
        let outside = try Self.request(allow("dry", "web", "front/ui", "172.16.0.1", 8080, nil, ""))
        let decision = Self.engine.evaluate(outside)
        #expect(decision.isAllowed)
        #expect(
            decision.dryRunMatches == [
                .init(
                    policy: ObjectKey(.authorizationPolicy, namespace: "shop", name: "dry-deny"),
                    action: .deny,
                    rule: 0
                )
            ]
        )
        #expect(decision.auditMatches == [ObjectKey(.authorizationPolicy, namespace: "shop", name: "audit-all")])

        let inside = Self.engine.evaluate(try Self.request(allow("dry", "web", "front/ui", "10.1.0.5", 8080, nil, "")))
        #expect(inside.dryRunMatches.isEmpty)

        // What the data path logs for them: one line per match, naming the policy and the decision.
        let sink = LogSink()
        let logger = Logger(label: "test") { JSONLogHandler(label: $0, level: .info, sink: sink) }
        decision.logObservations(to: logger, ["pod": "shop/web"])
        let lines = sink.lines
        #expect(lines.count == 2, "\(lines)")
        #expect(lines.contains { $0.contains("AUDIT policy matched") && $0.contains(#""policy":"shop/audit-all""#) })
        #expect(
            lines.contains {
                $0.contains("would have matched (not enforced)") && $0.contains(#""policy":"shop/dry-deny""#)
                    && $0.contains(#""dry_run_action":"DENY""#) && $0.contains(#""decision":"allow""#)
                    && $0.contains(#""pod":"shop/web""#)
            },
            "\(lines)"
        )
        // Nothing matched: nothing logged.
        let quiet = LogSink()
        AuthorizationDecision.allowedWithoutPolicy.logObservations(
            to: Logger(label: "test") { JSONLogHandler(label: $0, level: .info, sink: quiet) },
            ["pod": "shop/web"]
        )
        #expect(quiet.lines.isEmpty)
    }

    @Test func explainsPoliciesNotEnforcedAtL4() {
        let warnings = Self.engine.warnings
        #expect(
            warnings.contains {
                $0.hasPrefix("AuthorizationPolicy external/ext-authz: a CUSTOM policy selecting workloads")
            }
        )
        #expect(warnings.contains { $0.hasPrefix("AuthorizationPolicy shop/db-l7 uses L7 attributes (methods)") })
        #expect(
            warnings.contains {
                $0.hasPrefix("AuthorizationPolicy shop/deny-db-l7 uses L7 attributes (paths)")
                    && $0.hasSuffix("deny more broadly")
            }
        )
        #expect(!warnings.contains { $0.contains("waypoint-only") })
    }

    @Test func evaluatesTenThousandSelectorPoliciesByLabel() throws {
        var generated: [AuthorizationPolicy] = []
        for index in 0..<10_000 {
            var policy = AuthorizationPolicy(
                metadata: ObjectMeta(name: "p\(index)", namespace: "bulk"),
                selector: LabelSelector(matchLabels: ["app": "app\(index)"])
            )
            policy.rules = [
                AuthorizationPolicy.Rule(from: [
                    {
                        var source = AuthorizationPolicy.Source()
                        source.principals = [.exact("cluster.local/ns/bulk/sa/client\(index)")]
                        return source
                    }()
                ])
            ]
            generated.append(policy)
        }
        let engine = AuthorizationEngine(policies: generated)
        #expect(engine.policyCount == 10_000)
        let request = AuthorizationRequest(
            destinationNamespace: "bulk",
            destinationLabels: ["app": "app4321"],
            sourceIdentity: try SpiffeID(namespace: "bulk", serviceAccount: "client4321"),
            sourceAddress: try IPAddress(parsing: "10.0.0.1"),
            destinationAddress: try IPAddress(parsing: "10.0.0.2"),
            destinationPort: 80
        )
        let decision = engine.evaluate(request)
        #expect(decision.isAllowed)
        #expect(decision.policy == ObjectKey(.authorizationPolicy, namespace: "bulk", name: "p4321"))
        var other = request
        other.sourceIdentity = try SpiffeID(namespace: "bulk", serviceAccount: "client1")
        #expect(engine.evaluate(other).policy?.name == "p4321")
        #expect(!engine.evaluate(other).isAllowed)
    }
}
