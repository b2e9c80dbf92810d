import AmbitConfig
import AmbitModel
import AmbitPolicy
import Testing

/// Policies bound to the waypoint `shop/shop-waypoint` and to services behind it, as an
/// operator would write them with `targetRefs`.
private let policies = """
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: deny-admin, namespace: shop}
    spec:
      targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: shop-waypoint}]
      action: DENY
      rules:
        - to: [{operation: {paths: ["/admin/*"]}}]
        - when: [{key: "request.headers[x-debug]", values: ["on"]}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: web-api, namespace: shop}
    spec:
      targetRefs: [{kind: Service, name: web}]
      rules:
        - from: [{source: {principals: ["cluster.local/ns/front/sa/ui"]}}]
          to: [{operation: {methods: ["GET", "HEAD"], paths: ["/api/{*}/items", "/static/{**}"]}}]
        - from: [{source: {namespaces: ["ops"]}}]
          to: [{operation: {hosts: ["web.shop.svc.cluster.local"], ports: ["8080"]}}]
        - to: [{operation: {methods: ["POST"], paths: ["/api/orders"]}}]
          when: [{key: "request.headers[x-user]", values: ["admin*"], notValues: ["admin-readonly"]}]
        - from: [{source: {requestPrincipals: ["*"]}}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: audit-all, namespace: shop}
    spec:
      targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: shop-waypoint}]
      action: AUDIT
      rules: [{to: [{operation: {methods: ["DELETE"]}}]}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: other-waypoint, namespace: shop}
    spec:
      targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: another}]
      action: DENY
      rules: [{}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: selector-policy, namespace: shop}
    spec:
      selector: {matchLabels: {app: web}}
      action: DENY
      rules: [{}]
    """

@Suite struct WaypointAuthorizationTests {
    static let authorization: WaypointAuthorization = {
        do {
            let objects = try ManifestDecoder().decode(policies, file: "policies.yaml").objects
            let decoded = objects.compactMap { object -> AuthorizationPolicy? in
                if case .authorizationPolicy(let policy) = object { return policy }
                return nil
            }
            return WaypointAuthorization(
                policies: decoded,
                gateway: ObjectKey(.gateway, namespace: "shop", name: "shop-waypoint")
            )
        } catch {
            fatalError("test policies do not decode: \(error)")
        }
    }()

    static let web = ObjectKey(.service, namespace: "shop", name: "web")
    static let cart = ObjectKey(.service, namespace: "shop", name: "cart")

    static func request(
        _ method: String,
        _ path: String,
        from source: String? = "front/ui",
        host: String = "web.shop.svc.cluster.local",
        port: UInt16 = 8080,
        headers: [String: [String]] = [:]
    ) throws -> AuthorizationRequest {
        let identity = try source.map { source -> SpiffeID in
            let parts = source.split(separator: "/").map(String.init)
            return try SpiffeID(namespace: parts[0], serviceAccount: parts[1])
        }
        return AuthorizationRequest(
            destinationNamespace: "shop",
            destinationLabels: ["app": "web"],
            sourceIdentity: identity,
            sourceAddress: try IPAddress(parsing: "10.1.0.5"),
            destinationAddress: try IPAddress(parsing: "10.96.0.20"),
            destinationPort: port,
            http: HTTPRequestAttributes(method: method, path: path, host: host, headers: headers)
        )
    }

    static func decide(_ request: AuthorizationRequest, service: ObjectKey? = web) -> AuthorizationDecision {
        authorization.evaluate(request, service: service)
    }

    @Test func pathTemplatesMatchWholeSegments() throws {
        #expect(Self.decide(try Self.request("GET", "/api/v1/items")).isAllowed)
        #expect(!Self.decide(try Self.request("GET", "/api/v1/v2/items")).isAllowed)
        #expect(!Self.decide(try Self.request("GET", "/api//items")).isAllowed)
        #expect(Self.decide(try Self.request("HEAD", "/static/css/site.css")).isAllowed)
        #expect(!Self.decide(try Self.request("GET", "/static/")).isAllowed)
        #expect(!Self.decide(try Self.request("GET", "/static")).isAllowed)
    }

    @Test func methodsAndPrincipalsMustBothMatch() throws {
        let post = Self.decide(try Self.request("POST", "/api/v1/items"))
        #expect(!post.isAllowed)
        #expect(post.policy?.namespacedName == "shop/web-api")
        #expect(post.reason.contains("no ALLOW policy matched"), "\(post)")
        #expect(!Self.decide(try Self.request("GET", "/api/v1/items", from: "front/batch")).isAllowed)
        #expect(!Self.decide(try Self.request("GET", "/api/v1/items", from: nil)).isAllowed)
    }

    @Test func hostsCompareWithoutCaseAndPort() throws {
        #expect(
            Self.decide(try Self.request("PUT", "/x", from: "ops/admin", host: "Web.Shop.svc.cluster.local")).isAllowed
        )
        #expect(
            Self.decide(try Self.request("PUT", "/x", from: "ops/admin", host: "web.shop.svc.cluster.local:8080"))
                .isAllowed
        )
        #expect(!Self.decide(try Self.request("PUT", "/x", from: "ops/admin", host: "web")).isAllowed)
        #expect(!Self.decide(try Self.request("PUT", "/x", from: "ops/admin", port: 9090)).isAllowed)
    }

    @Test func headerConditionsWithValuesAndNotValues() throws {
        let admin = try Self.request("POST", "/api/orders", from: nil, headers: ["x-user": ["admin-ann"]])
        #expect(Self.decide(admin).isAllowed)
        let readonly = try Self.request("POST", "/api/orders", from: nil, headers: ["x-user": ["admin-readonly"]])
        #expect(!Self.decide(readonly).isAllowed)
        let missing = try Self.request("POST", "/api/orders", from: nil)
        #expect(!Self.decide(missing).isAllowed)
    }

    @Test func gatewayDenyComesFirstAndNamesTheRule() throws {
        let admin = Self.decide(try Self.request("GET", "/admin/users"))
        #expect(!admin.isAllowed)
        #expect(admin.policy?.namespacedName == "shop/deny-admin")
        #expect(admin.rule == 0)
        let debug = Self.decide(try Self.request("GET", "/api/v1/items", headers: ["x-debug": ["on"]]))
        #expect(debug.policy?.namespacedName == "shop/deny-admin")
        #expect(debug.rule == 1)
    }

    @Test func serviceWithoutAllowPolicyIsOnlySubjectToTheGatewayPolicies() throws {
        let cart = Self.decide(try Self.request("POST", "/anything"), service: Self.cart)
        #expect(cart.isAllowed)
        #expect(cart.reason == "allowed: no ALLOW policy applies")
        #expect(!Self.decide(try Self.request("GET", "/admin/x"), service: Self.cart).isAllowed)
    }

    @Test func requestPrincipalsNeverMatchWithoutJWT() throws {
        // Rule 3 of web-api allows any request principal: without RequestAuthentication there is none.
        #expect(!Self.decide(try Self.request("OPTIONS", "/", from: "other/sa")).isAllowed)
    }

    @Test func auditIsRecordedAndOtherBindingsIgnored() throws {
        let delete = Self.decide(try Self.request("DELETE", "/x"), service: Self.cart)
        #expect(delete.isAllowed)
        #expect(delete.auditMatches.map(\.namespacedName) == ["shop/audit-all"])
        #expect(Self.authorization.policyCount == 3)
    }

    @Test func pathPatternsParseStrictly() throws {
        #expect(throws: PathPatternError.self) { try PathPattern(parsing: "/a/{**}/b") }
        #expect(throws: PathPatternError.self) { try PathPattern(parsing: "/a/{x}") }
        #expect(throws: PathPatternError.self) { try PathPattern(parsing: "/a/*/{*}") }
        #expect(throws: PathPatternError.self) { try PathPattern(parsing: "a/{*}") }
        #expect(try PathPattern(parsing: "/users/{*}/orders").description == "/users/{*}/orders")
        #expect(try PathPattern(parsing: "/users/*") == .string(.prefix("/users/")))
    }

    @Test func badTemplateIsRejectedWithFileObjectAndField() throws {
        let bad = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: bad, namespace: shop}
            spec:
              targetRefs: [{kind: Service, name: web}]
              rules: [{to: [{operation: {paths: ["/a/{**}/b"]}}]}]
            """
        let error = try #require(throws: (any Error).self) { try ManifestDecoder().decode(bad, file: "bad.yaml") }
        let text = "\(error)"
        #expect(text.contains("bad.yaml"), "\(text)")
        #expect(text.contains("shop/bad"), "\(text)")
        #expect(text.contains("paths"), "\(text)")
        #expect(text.contains("{**} is only allowed as the last segment"), "\(text)")
    }
}
