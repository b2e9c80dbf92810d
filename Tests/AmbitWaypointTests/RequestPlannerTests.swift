import AmbitConfig
import AmbitModel
import AmbitTestSupport
import NIOHTTP1
import Testing

@testable import AmbitWaypoint

/// Routing decisions of the waypoint, without I/O: Gateway API precedence, filters, weights.
@Suite struct RequestPlannerTests {
    static let routes = """
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: web, namespace: shop, creationTimestamp: "2026-01-01T00:00:00Z"}
        spec:
          parentRefs: [{group: "", kind: Service, name: web}]
          rules:
            - matches: [{path: {type: PathPrefix, value: /api}}]
              backendRefs: [{name: web-v1, port: 80}]
            - matches: [{path: {type: PathPrefix, value: /api/v2}}]
              filters:
                - type: URLRewrite
                  urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
              backendRefs: [{name: web-v2, port: 80}]
            - matches: [{path: {type: Exact, value: /api/v2/exact}}]
              filters:
                - type: RequestRedirect
                  requestRedirect: {scheme: https, hostname: shop.example, statusCode: 301}
            - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x-tier, value: gold}], method: POST}]
              filters:
                - type: RequestHeaderModifier
                  requestHeaderModifier: {set: [{name: x-gold, value: "1"}], remove: [x-tier]}
              backendRefs: [{name: web-v2, port: 80}]
            - matches: [{path: {type: RegularExpression, value: "/items/[0-9]+"}}]
              backendRefs: [{name: web-v2, port: 80}]
            - matches: [{queryParams: [{name: canary, value: "yes"}]}]
              backendRefs: [{name: web-v1, port: 80, weight: 0}]
            - backendRefs:
                - {name: web-v1, port: 80, weight: 90}
                - {name: web-v2, port: 80, weight: 10}
        """

    /// Services web (10.96.0.1:80), web-v1 (10.96.0.2:80) and web-v2 (10.96.0.3, `webV2`) in namespace shop.
    static func shopServices(webV2: (port: Int, targetPort: String) = (80, "8080")) -> [String] {
        [
            Manifests.service(
                "web",
                namespace: "shop",
                clusterIP: "10.96.0.1",
                selector: ["app": "web"],
                ports: [(80, "8080")]
            ),
            Manifests.service(
                "web-v1",
                namespace: "shop",
                clusterIP: "10.96.0.2",
                selector: ["v": "1"],
                ports: [(80, "8080")]
            ),
            Manifests.service(
                "web-v2",
                namespace: "shop",
                clusterIP: "10.96.0.3",
                selector: ["v": "2"],
                ports: [webV2]
            ),
        ]
    }

    /// A planner over `documents`, with the routes of the snapshot they make.
    static func planner(_ documents: [String], random: Double = 0.5) throws -> RequestPlanner {
        let objects = try ManifestDecoder().decode(Manifests.join(documents)).objects
        let snapshot = ConfigSnapshot(objects: objects, options: ConfigOptions(), version: 1)
        var planner = RequestPlanner(snapshot: snapshot, routes: RouteTable(snapshot: snapshot))
        planner.random = { random }
        return planner
    }

    static func planner(random: Double = 0.5) throws -> RequestPlanner {
        try planner(shopServices() + [routes], random: random)
    }

    static func plan(
        _ uri: String,
        method: HTTPMethod = .GET,
        headers: [(String, String)] = [],
        random: Double = 0.5
    ) throws -> RequestPlan {
        let planner = try planner(random: random)
        let binding = try #require(planner.snapshot.service(at: try IPEndpoint(parsing: "10.96.0.1:80")))
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: uri)
        head.headers.add(name: "host", value: "web.shop:80")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        return planner.plan(head, to: binding)
    }

    static func backend(_ plan: RequestPlan) -> String? {
        guard case .forward(let forward) = plan, case .service(let binding) = forward.backend else { return nil }
        return binding.service.name
    }

    @Test func longerPrefixesExactPathsAndMoreConditionsWin() throws {
        #expect(Self.backend(try Self.plan("/api/x")) == "web-v1")
        #expect(Self.backend(try Self.plan("/api/v2/x")) == "web-v2")
        // Prefixes match whole segments only.
        #expect(Self.backend(try Self.plan("/api/v2x", random: 0.0)) == "web-v1")
        guard case .respond(let redirect) = try Self.plan("/api/v2/exact?a=1") else {
            Issue.record("expected the redirect")
            return
        }
        #expect(redirect.status == .movedPermanently)
        #expect(redirect.headers.first?.1 == "https://shop.example/api/v2/exact?a=1")
        // Same prefix length: a method + header match beats a plain prefix.
        let gold = try Self.plan("/api/orders", method: .POST, headers: [("X-Tier", "gold")])
        guard case .forward(let forward) = gold else {
            Issue.record("expected a forward")
            return
        }
        #expect(Self.backend(gold) == "web-v2")
        #expect(forward.head.headers["x-gold"] == ["1"])
        #expect(forward.head.headers["x-tier"].isEmpty)
        #expect(Self.backend(try Self.plan("/api/orders", method: .GET, headers: [("x-tier", "gold")])) == "web-v1")
    }

    @Test func rewritesReplaceTheMatchedPrefixAndKeepTheQuery() throws {
        guard case .forward(let forward) = try Self.plan("/api/v2/users/7?full=1") else {
            Issue.record("expected a forward")
            return
        }
        #expect(forward.head.uri == "/users/7?full=1")
        #expect(RequestPlanner.replacePrefix(path: "/api/v2", matched: "/api/v2", with: "/") == "/")
        #expect(RequestPlanner.replacePrefix(path: "/old/a/b", matched: "/old/", with: "/new") == "/new/a/b")
    }

    @Test func regularExpressionsMatchTheWholePath() throws {
        #expect(Self.backend(try Self.plan("/items/42", random: 0.0)) == "web-v2")
        #expect(Self.backend(try Self.plan("/items/42x", random: 0.0)) == "web-v1")
    }

    @Test func weightsSplitAndZeroWeightsMeanNoBackend() throws {
        #expect(Self.backend(try Self.plan("/", random: 0.0)) == "web-v1")
        #expect(Self.backend(try Self.plan("/", random: 0.899)) == "web-v1")
        #expect(Self.backend(try Self.plan("/", random: 0.9)) == "web-v2")
        guard case .respond(let none) = try Self.plan("/?canary=yes") else {
            Issue.record("expected 500")
            return
        }
        #expect(none.status == .internalServerError)
        #expect(none.body == "every backend has weight 0\n")
    }

    @Test func sniffingTellsHTTP1HTTP2AndOpaqueTCPApart() {
        #expect(SniffedProtocol.detect(Array("GET / HTTP/1.1\r\n".utf8)) == .http1)
        #expect(SniffedProtocol.detect(Array("GE".utf8)) == .undecided)
        #expect(SniffedProtocol.detect(SniffedProtocol.http2Preface) == .http2)
        #expect(SniffedProtocol.detect(Array("PRI * HT".utf8)) == .undecided)
        #expect(SniffedProtocol.detect([0x16, 0x03, 0x01]) == .tcp)
        #expect(SniffedProtocol.detect(Array("hello world".utf8)) == .tcp)
    }

    @Test func retriesAndFaultsReadIstioFields() throws {
        let yaml = """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: r, namespace: shop}
            spec:
              parentRefs: [{kind: Service, group: "", name: web}]
              rules:
                - retries: {attempts: 3, perTryTimeout: 2s, retryOn: "gateway-error,reset"}
                  fault: {delay: {fixedDelay: 100ms, percentage: {value: 50}}, abort: {httpStatus: 503}}
                  backendRefs: [{name: web, port: 80}]
                - retry: {attempts: 1, codes: [502], backoff: 10ms}
                  backendRefs: [{name: web, port: 80}]
            """
        let objects = try ManifestDecoder().decode(yaml).objects
        guard case .httpRoute(let route) = try #require(objects.first) else {
            Issue.record("expected a route")
            return
        }
        let retries = try #require(route.rules[0].retry)
        #expect(retries.attempts == 3)
        #expect(retries.perTryTimeout == .seconds(2))
        #expect(retries.retries(status: 504) && !retries.retries(status: 500))
        #expect(route.rules[0].fault == HTTPRoute.Fault(delay: .milliseconds(100), delayPercent: 50, abortStatus: 503))
        let gateway = try #require(route.rules[1].retry)
        #expect(gateway.retries(status: 502) && !gateway.retries(status: 503) && gateway.retries(failure: "reset"))
        #expect(gateway.backoff == .milliseconds(10))
        let bad = yaml.replacingOccurrences(of: "gateway-error,reset", with: "gateway-error,sometimes")
        let error = try #require(throws: (any Error).self) { try ManifestDecoder().decode(bad, file: "r.yaml") }
        #expect("\(error)".contains("unknown retry condition \"sometimes\""), "\(error)")
    }
}
