import AmbitConfig
import AmbitModel
import AmbitPolicy
import AmbitWaypoint
import FuzzSupport
import NIOCore
import NIOEmbedded
import NIOHTTP1

/// What the waypoint does with the HTTP/1.1 requests arriving in a tunnel, on arbitrary bytes: NIO's
/// request decoder (as in the waypoint's pipeline), then for each request head the waypoint's own steps:
/// the request target normalized (`RequestTarget`, invariant: normalizing twice changes nothing), the
/// route planned against HTTPRoutes with every match kind and filter (prefix, exact and regex paths,
/// headers, query parameters, methods, rewrites, redirects, weights), and the L7 authorization
/// policies (paths with `*` and `{**}` templates, methods, hosts, header conditions) evaluated.
@_cdecl("LLVMFuzzerTestOneInput")
func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let channel = EmbeddedChannel()
    defer { _ = try? channel.finish() }
    do {
        try channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes))
        )
        try channel.writeInbound(ByteBuffer(bytes: FuzzDriver.bytes(data, size)))
    } catch {
        // Malformed HTTP: the decoder's error is the answer (the waypoint replies 400 and closes).
    }
    while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
        guard case .head(var head) = part else { continue }
        guard let target = try? RequestTarget.normalize(head.uri) else { continue }
        guard (try? RequestTarget.normalize(target)) == target else {
            FuzzDriver.violated("normalizing \"\(target)\" (from \"\(head.uri)\") again changes it")
        }
        head.uri = target
        _ = World.shared.planner.plan(head, to: World.shared.binding)
        var request = AuthorizationRequest(
            destinationNamespace: "shop",
            destinationLabels: ["app": "web"],
            sourceIdentity: try? SpiffeID(namespace: "front", serviceAccount: "ui"),
            sourceAddress: IPAddress("10.244.1.5")!,
            destinationAddress: IPAddress("10.96.0.1")!,
            destinationPort: 80
        )
        var headers: [String: [String]] = [:]
        for header in head.headers { headers[header.name.lowercased(), default: []].append(header.value) }
        request.http = HTTPRequestAttributes(
            method: head.method.rawValue,
            path: String(RequestTarget.split(head.uri).path),
            host: head.headers.first(name: "host") ?? "10.96.0.1:80",
            headers: headers
        )
        _ = World.shared.authorization.evaluate(request, service: World.shared.binding.service)
    }
    return 0
}

/// The services, routes and policies every input is planned and authorized against.
struct World: Sendable {
    let planner: RequestPlanner
    let binding: ServiceBinding
    let authorization: WaypointAuthorization

    static let shared: World = {
        do {
            let objects = try ManifestDecoder().decode(manifests, file: "world.yaml").objects
            let snapshot = ConfigSnapshot(objects: objects, options: ConfigOptions(), version: 1)
            guard let binding = snapshot.service(at: try IPEndpoint(parsing: "10.96.0.1:80")) else {
                fatalError("the fuzz world has no service at 10.96.0.1:80")
            }
            var planner = RequestPlanner(snapshot: snapshot, routes: RouteTable(snapshot: snapshot))
            planner.random = { 0.5 }
            let authorization = WaypointAuthorization(
                policies: snapshot.authorizationPolicies.values,
                gateway: ObjectKey(.gateway, namespace: "shop", name: "shop-waypoint")
            )
            return World(planner: planner, binding: binding, authorization: authorization)
        } catch {
            fatalError("the fuzz world does not decode: \(error)")
        }
    }()

    static let manifests = """
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: shop}
        spec: {clusterIP: 10.96.0.1, selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web-v1, namespace: shop}
        spec: {clusterIP: 10.96.0.2, selector: {v: "1"}, ports: [{port: 80, targetPort: 8080}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web-v2, namespace: shop}
        spec: {clusterIP: 10.96.0.3, selector: {v: "2"}, ports: [{port: 80, targetPort: 8080}]}
        ---
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
                  urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}, hostname: v2.shop}
              backendRefs: [{name: web-v2, port: 80}]
            - matches: [{path: {type: Exact, value: /api/v2/exact}}]
              filters:
                - type: RequestRedirect
                  requestRedirect: {scheme: https, hostname: shop.example, statusCode: 301}
            - matches: [{path: {type: PathPrefix, value: /old}}]
              filters:
                - type: RequestRedirect
                  requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}, port: 8443}
            - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x-tier, value: gold}], method: POST}]
              filters:
                - type: RequestHeaderModifier
                  requestHeaderModifier: {set: [{name: x-gold, value: "1"}], add: [{name: x-via, value: w}], remove: [x-tier]}
              backendRefs: [{name: web-v2, port: 80}]
            - matches: [{path: {type: RegularExpression, value: "/items/[0-9]+(/[a-z]*)?"}}]
              backendRefs: [{name: web-v2, port: 80}]
            - matches: [{headers: [{type: RegularExpression, name: x-user, value: "adm.*"}]}]
              backendRefs: [{name: web-v2, port: 80}]
            - matches: [{queryParams: [{name: canary, value: "yes"}]}]
              backendRefs: [{name: web-v1, port: 80, weight: 0}]
            - backendRefs:
                - {name: web-v1, port: 80, weight: 90}
                - {name: web-v2, port: 80, weight: 10}
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: deny-admin, namespace: shop}
        spec:
          targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: shop-waypoint}]
          action: DENY
          rules:
            - to: [{operation: {paths: ["/admin/*", "*/secret"]}}]
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
            - to: [{operation: {hosts: ["web.shop.svc.cluster.local", "*.shop"], notPaths: ["/private*"]}}]
            - to: [{operation: {methods: ["POST"], paths: ["/api/orders"]}}]
              when: [{key: "request.headers[x-user]", values: ["admin*"], notValues: ["admin-readonly"]}]
        """
}

@_cdecl("FuzzWaypointHTTP_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    FuzzDriver.run(argc, argv, testOneInput)
}
