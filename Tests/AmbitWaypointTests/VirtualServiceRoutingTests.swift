import AmbitModel
import AmbitTestSupport
import NIOHTTP1
import Testing

@testable import AmbitWaypoint

/// VirtualService routes at the waypoint: tried in order (first match wins, however specific a later one is),
/// a plain string prefix, and HTTPRoutes winning where both name one service.
@Suite struct VirtualServiceRoutingTests {
    static let virtualService = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: web, namespace: shop, creationTimestamp: "2026-01-01T00:00:00Z"}
        spec:
          hosts: [web]
          http:
            - match: [{uri: {prefix: /api}}]
              rewrite: {uri: /v2}
              route: [{destination: {host: web-v2}}]
            - match: [{uri: {exact: /api/exact}}]
              route: [{destination: {host: web-v1}}]
            - route: [{destination: {host: web-v1}}]
              retries: {attempts: 4, retryOn: reset}
        """

    /// web-v2 listens on 8081 only: a destination without a port takes it.
    static func planner(with documents: [String]) throws -> RequestPlanner {
        try RequestPlannerTests.planner(RequestPlannerTests.shopServices(webV2: (8081, "8081")) + documents)
    }

    static func forward(_ planner: RequestPlanner, _ uri: String) throws -> ForwardPlan {
        let binding = try #require(planner.snapshot.service(at: try IPEndpoint(parsing: "10.96.0.1:80")))
        guard
            case .forward(let forward) = planner.plan(
                HTTPRequestHead(version: .http1_1, method: .GET, uri: uri),
                to: binding
            )
        else {
            Issue.record("expected a forward for \(uri)")
            throw CancellationError()
        }
        return forward
    }

    static func destination(_ forward: ForwardPlan) -> String {
        guard case .service(let binding) = forward.backend else { return "-" }
        return "\(binding.service.name):\(binding.port.port)"
    }

    @Test func routesAreTriedInOrderWithAPlainStringPrefix() throws {
        let planner = try Self.planner(with: [Self.virtualService])
        // The first route's prefix wins over the later exact match (VirtualService order, not Gateway API's).
        let exact = try Self.forward(planner, "/api/exact")
        #expect(Self.destination(exact) == "web-v2:8081")  // no port given: the destination's only port
        #expect(exact.head.uri == "/v2/exact")
        // A string prefix: /apix matches /api, and exactly the matched characters are rewritten.
        let glued = try Self.forward(planner, "/apixyz?q=1")
        #expect(Self.destination(glued) == "web-v2:8081")
        #expect(glued.head.uri == "/v2xyz?q=1")
        let rest = try Self.forward(planner, "/other")
        #expect(Self.destination(rest) == "web-v1:80")
        #expect(rest.retry?.attempts == 4 && rest.retry?.retryOn == ["reset"])
        #expect(rest.routeName == "shop/web")
        #expect(planner.routes.warnings.isEmpty, "\(planner.routes.warnings)")
    }

    @Test func olderVirtualServicesComeFirstAndRewritesFollowTheMatch() throws {
        // b-older sorts after a-newer by name but is older: its routes come before a-newer's catch-all.
        let older = """
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: b-older, namespace: shop, creationTimestamp: "2025-06-01T00:00:00Z"}
            spec:
              hosts: [web.shop.svc.cluster.local]
              http:
                - match: [{uri: {exact: /exact}}]
                  rewrite: {uri: /whole}
                  route: [{destination: {host: web-v1}}]
                - match: [{headers: {x-h: {exact: "1"}}}]
                  rewrite: {uri: /h}
                  route: [{destination: {host: web-v1}}]
            """
        let newer = """
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: a-newer, namespace: shop, creationTimestamp: "2026-06-01T00:00:00Z"}
            spec:
              hosts: [web]
              http: [{match: [{uri: {prefix: /}}], route: [{destination: {host: web-v2}}]}]
            """
        let planner = try Self.planner(with: [newer, older])
        let exact = try Self.forward(planner, "/exact?x=1")
        #expect(Self.destination(exact) == "web-v1:80" && exact.head.uri == "/whole?x=1")
        // A match without a uri counts as prefix "/": Envoy's prefix rewrite of "/".
        let binding = try #require(planner.snapshot.service(at: try IPEndpoint(parsing: "10.96.0.1:80")))
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/abc")
        head.headers.add(name: "x-h", value: "1")
        guard case .forward(let byHeader) = planner.plan(head, to: binding) else {
            Issue.record("expected a forward")
            return
        }
        #expect(byHeader.head.uri == "/habc")
        #expect(Self.destination(try Self.forward(planner, "/exact/not")) == "web-v2:8081")
    }

    @Test func aVirtualServiceFromAnotherNamespaceIsIgnored() throws {
        let elsewhere = Self.virtualService.replacingOccurrences(of: "namespace: shop", with: "namespace: other")
            .replacingOccurrences(of: "  hosts: [web]", with: "  hosts: [web.shop]")
        let planner = try Self.planner(with: [elsewhere])
        #expect(Self.destination(try Self.forward(planner, "/api/x")) == "web:80")
        #expect(
            planner.routes.warnings == [
                "VirtualService other/web host web.shop: only a VirtualService in the namespace of shop/web routes it; ignored"
            ]
        )
    }

    @Test func anHTTPRouteForTheSameServiceWinsAndTheVirtualServiceIsReported() throws {
        let route = """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: web-route, namespace: shop}
            spec:
              parentRefs: [{group: "", kind: Service, name: web}]
              rules: [{backendRefs: [{name: web-v1, port: 80}]}]
            """
        let planner = try Self.planner(with: [Self.virtualService, route])
        let forward = try Self.forward(planner, "/api/x")
        #expect(Self.destination(forward) == "web-v1:80")
        #expect(forward.routeName == "shop/web-route")
        #expect(
            planner.routes.warnings == ["VirtualService shop/web host web: HTTPRoutes attach to shop/web; they win"]
        )
    }

    @Test func aVirtualServiceOnlyForIngressGatewaysOrForeignHostsIsNotUsed() throws {
        let ingress = Self.virtualService.replacingOccurrences(
            of: "  hosts: [web]",
            with: "  hosts: [web]\n  gateways: [istio-system/ingress]"
        )
        #expect(Self.destination(try Self.forward(try Self.planner(with: [ingress]), "/api/x")) == "web:80")
        let foreign = Self.virtualService.replacingOccurrences(of: "  hosts: [web]", with: "  hosts: [web.example.com]")
        let planner = try Self.planner(with: [foreign])
        #expect(Self.destination(try Self.forward(planner, "/api/x")) == "web:80")
        #expect(
            planner.routes.warnings == [
                "VirtualService shop/web host web.example.com: not a Service of this cluster; ignored"
            ]
        )
    }
}
