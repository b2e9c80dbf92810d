import AmbitConfig
import AmbitModel
import AmbitTestSupport
import Testing

@Suite struct ConfigSnapshotTests {
    static func snapshot(_ documents: [String], options: ConfigOptions = ConfigOptions()) throws -> ConfigSnapshot {
        let objects = try ManifestDecoder().decode(Manifests.join(documents)).objects
        return ConfigSnapshot(objects: objects, options: options, version: 1)
    }

    @Test func indexesWorkloadsByIPWithIdentity() throws {
        let snapshot = try Self.snapshot([
            Manifests.namespace("shop", labels: ["istio.io/dataplane-mode": "ambient"]),
            Manifests.pod("web-1", namespace: "shop", ip: "10.0.0.5", node: "n1", serviceAccount: "web"),
            Manifests.pod("host", namespace: "shop", ip: "192.168.0.1", hostNetwork: true),
        ])
        let workload = try #require(snapshot.workload(at: try IPAddress(parsing: "10.0.0.5")))
        #expect(workload.key == ObjectKey(.pod, namespace: "shop", name: "web-1"))
        #expect(workload.identity.uri == "spiffe://cluster.local/ns/shop/sa/web")
        #expect(workload.enrollment == .enrolled(.namespaceLabel))
        #expect(snapshot.workload(at: try IPAddress(parsing: "192.168.0.1")) == nil)
        #expect(snapshot.workloads(onNode: "n1").map(\.name) == ["web-1"])
    }

    @Test func usesTheConfiguredTrustDomain() throws {
        let snapshot = try Self.snapshot(
            [Manifests.pod("a", ip: "10.0.0.1")],
            options: ConfigOptions(trustDomain: "example.org")
        )
        #expect(
            snapshot.workload(at: try IPAddress(parsing: "10.0.0.1"))?.identity.uri
                == "spiffe://example.org/ns/default/sa/default"
        )
    }

    @Test func livePodWinsAnAddressConflict() throws {
        let snapshot = try Self.snapshot([
            Manifests.pod("old", ip: "10.0.0.7", phase: "Succeeded"),
            Manifests.pod("new", ip: "10.0.0.7"),
        ])
        #expect(snapshot.workload(at: try IPAddress(parsing: "10.0.0.7"))?.name == "new")
        #expect(
            snapshot.warnings == [
                "address 10.0.0.7 is claimed by Pod default/new and Pod default/old; using Pod default/new"
            ]
        )
    }

    @Test func resolvesServiceEndpointsAndTargetPorts() throws {
        let snapshot = try Self.snapshot([
            Manifests.pod("web-1", ip: "10.0.0.1", labels: ["app": "web"], ports: [("http", 8080)]),
            Manifests.pod(
                "web-2",
                ip: "10.0.0.2",
                labels: ["app": "web", "v": "2"],
                ports: [("http", 9090)],
                ready: false
            ),
            Manifests.pod("web-3", ip: "10.0.0.3", labels: ["app": "web"]),  // does not declare "http"
            Manifests.pod("other", ip: "10.0.0.4", labels: ["app": "db"], ports: [("http", 8080)]),
            Manifests.service(
                "web",
                clusterIP: "10.96.0.1",
                selector: ["app": "web"],
                ports: [(80, "http"), (81, "7000")]
            ),
        ])
        let named = try #require(snapshot.service(at: IPEndpoint(try IPAddress(parsing: "10.96.0.1"), 80)))
        #expect(named.service == ObjectKey(.service, namespace: "default", name: "web"))
        #expect(named.endpoints.map(\.address.description) == ["10.0.0.1:8080", "10.0.0.2:9090"])
        #expect(named.healthyEndpoints.map(\.address.description) == ["10.0.0.1:8080"])
        let numeric = try #require(snapshot.service(at: IPEndpoint(try IPAddress(parsing: "10.96.0.1"), 81)))
        #expect(numeric.endpoints.map(\.address.description) == ["10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"])
        #expect(snapshot.service(at: IPEndpoint(try IPAddress(parsing: "10.96.0.1"), 82)) == nil)
        #expect(snapshot.service(hostname: "web.default.svc.cluster.local")?.metadata.name == "web")
    }

    @Test(arguments: [
        ([:], [:], "not enrolled (namespace not labelled istio.io/dataplane-mode=ambient)"),
        (["istio.io/dataplane-mode": "ambient"], [:], "enrolled (namespace label istio.io/dataplane-mode=ambient)"),
        (
            ["istio.io/dataplane-mode": "ambient"], ["istio.io/dataplane-mode": "none"],
            "not enrolled (pod label istio.io/dataplane-mode=none)"
        ),
        ([:], ["istio.io/dataplane-mode": "ambient"], "enrolled (pod label istio.io/dataplane-mode=ambient)"),
        (
            ["istio.io/dataplane-mode": "sidecar"], [:],
            "not enrolled (namespace not labelled istio.io/dataplane-mode=ambient)"
        ),
    ])
    func decidesEnrollment(namespaceLabels: [String: String], podLabels: [String: String], expected: String) throws {
        let snapshot = try Self.snapshot([
            Manifests.namespace("ns", labels: namespaceLabels),
            Manifests.pod("p", namespace: "ns", ip: "10.0.0.1", labels: podLabels),
        ])
        #expect(snapshot.workload(for: ObjectKey(.pod, namespace: "ns", name: "p"))?.enrollment.description == expected)
    }

    @Test func excludesHostNetworkAndSidecarPods() {
        let namespace = Namespace(metadata: ObjectMeta(name: "ns", labels: ["istio.io/dataplane-mode": "ambient"]))
        let host = Pod(metadata: ObjectMeta(name: "h", namespace: "ns"), hostNetwork: true)
        let sidecar = Pod(
            metadata: ObjectMeta(name: "s", namespace: "ns", annotations: ["sidecar.istio.io/status": "{}"])
        )
        #expect(ConfigSnapshot.enrollment(of: host, namespace: namespace) == .notEnrolled(.hostNetwork))
        #expect(ConfigSnapshot.enrollment(of: sidecar, namespace: namespace) == .notEnrolled(.sidecarInjected))
    }

    static let waypointWorld: [String] = [
        Manifests.namespace("shop", labels: ["istio.io/use-waypoint": "ns-waypoint"]),
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: ns-waypoint, namespace: shop}
        spec: {gatewayClassName: istio-waypoint}
        status: {addresses: [{value: 10.96.9.1}]}
        """,
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: all-waypoint, namespace: shop, labels: {istio.io/waypoint-for: all}}
        spec: {gatewayClassName: istio-waypoint}
        """,
        Manifests.service(
            "all-waypoint",
            namespace: "shop",
            clusterIP: "10.96.9.2",
            selector: ["gw": "all"],
            ports: [(15008, "15008")]
        ),
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata:
          name: payments-waypoint
          namespace: shop
          annotations: {istio.io/for-service-account: payments, gateway.istio.io/service-account: wp-payments}
        spec: {gatewayClassName: istio-waypoint}
        status: {addresses: [{value: 10.96.9.3}]}
        """,
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: ingress, namespace: shop}
        spec: {gatewayClassName: istio}
        status: {addresses: [{value: 10.96.9.4}]}
        """,
        Manifests.service(
            "cart",
            namespace: "shop",
            clusterIP: "10.96.0.1",
            selector: ["app": "cart"],
            ports: [(80, "80")]
        ),
        Manifests.service(
            "search",
            namespace: "shop",
            clusterIP: "10.96.0.2",
            selector: ["app": "s"],
            ports: [(80, "80")],
            labels: ["istio.io/use-waypoint": "none"]
        ),
        Manifests.service(
            "orders",
            namespace: "shop",
            clusterIP: "10.96.0.3",
            selector: ["app": "o"],
            ports: [(80, "80")],
            labels: ["istio.io/use-waypoint": "all-waypoint"]
        ),
        Manifests.service(
            "broken",
            namespace: "shop",
            clusterIP: "10.96.0.4",
            selector: ["app": "b"],
            ports: [(80, "80")],
            labels: ["istio.io/use-waypoint": "missing"]
        ),
        Manifests.service(
            "wrongclass",
            namespace: "shop",
            clusterIP: "10.96.0.5",
            selector: ["app": "w"],
            ports: [(80, "80")],
            labels: ["istio.io/use-waypoint": "ingress"]
        ),
        Manifests.pod("cart-1", namespace: "shop", ip: "10.0.0.1", serviceAccount: "cart"),
        Manifests.pod("pay-1", namespace: "shop", ip: "10.0.0.2", serviceAccount: "payments"),
        Manifests.pod("pinned", namespace: "shop", ip: "10.0.0.3", labels: ["istio.io/use-waypoint": "all-waypoint"]),
        Manifests.pod(
            "explicit-service-only",
            namespace: "shop",
            ip: "10.0.0.4",
            labels: ["istio.io/use-waypoint": "ns-waypoint"]
        ),
        Manifests.pod(
            "opted-out",
            namespace: "shop",
            ip: "10.0.0.5",
            serviceAccount: "payments",
            labels: ["istio.io/use-waypoint": "none"]
        ),
    ]

    @Test(arguments: [
        (
            "cart",
            "shop/ns-waypoint via namespace label istio.io/use-waypoint=ns-waypoint @ 10.96.9.1 as spiffe://cluster.local/ns/shop/sa/ns-waypoint"
        ),
        ("search", "none"),
        (
            "orders",
            "shop/all-waypoint via service label istio.io/use-waypoint=all-waypoint @ 10.96.9.2 as spiffe://cluster.local/ns/shop/sa/all-waypoint"
        ),
        (
            "broken",
            "not bound: WaypointIsNotReady: service label istio.io/use-waypoint=missing: waypoint shop/missing does not exist"
        ),
        (
            "wrongclass",
            "not bound: WaypointIsNotReady: service label istio.io/use-waypoint=ingress: Gateway shop/ingress has class \"istio\", not istio-waypoint"
        ),
        ("all-waypoint", "none"),
    ])
    func resolvesServiceWaypoints(service: String, expected: String) throws {
        let snapshot = try Self.snapshot(Self.waypointWorld)
        #expect(
            Self.describe(snapshot.waypoint(forService: ObjectKey(.service, namespace: "shop", name: service)))
                == expected
        )
    }

    @Test(arguments: [
        // Namespace waypoint is for services only (the default): inherited by a pod it means no waypoint.
        ("cart-1", "none"),
        (
            "pay-1",
            "shop/payments-waypoint via for-service-account payments @ 10.96.9.3 as spiffe://cluster.local/ns/shop/sa/wp-payments"
        ),
        (
            "pinned",
            "shop/all-waypoint via pod label istio.io/use-waypoint=all-waypoint @ 10.96.9.2 as spiffe://cluster.local/ns/shop/sa/all-waypoint"
        ),
        (
            "explicit-service-only",
            "not bound: UnsupportedTrafficType: pod label istio.io/use-waypoint=ns-waypoint: waypoint shop/ns-waypoint takes service traffic (istio.io/waypoint-for), not workload"
        ),
        ("opted-out", "none"),
    ])
    func resolvesWorkloadWaypoints(pod: String, expected: String) throws {
        let snapshot = try Self.snapshot(Self.waypointWorld)
        #expect(
            Self.describe(snapshot.waypoint(forWorkload: ObjectKey(.pod, namespace: "shop", name: pod))) == expected
        )
    }

    static func describe(_ resolution: WaypointResolution) -> String {
        switch resolution {
        case .none: return "none"
        case .notBound(let problem): return "not bound: \(problem)"
        case .waypoint(let binding):
            let addresses = binding.addresses.map(\.description).joined(separator: ",")
            return "\(binding.gateway.namespacedName) via \(binding.reason) @ \(addresses) as \(binding.identity)"
        }
    }

    @Test func resolvesPeerAuthenticationByLevel() throws {
        func peer(
            _ name: String,
            _ namespace: String,
            selector: String? = nil,
            mode: String,
            ports: String = "",
            created: String = "2026-01-01T00:00:00Z"
        ) -> String {
            """
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: \(name), namespace: \(namespace), creationTimestamp: "\(created)"}
            spec:
              \(selector.map { "selector: {matchLabels: {app: \($0)}}" } ?? "")
              mtls: {mode: \(mode)}
              \(ports.isEmpty ? "" : "portLevelMtls: {\(ports)}")
            """
        }
        let snapshot = try Self.snapshot([
            peer("mesh", "istio-system", mode: "STRICT"),
            peer("ns-permissive", "relaxed", mode: "PERMISSIVE"),
            peer("ns-newer", "relaxed", mode: "STRICT", created: "2026-06-01T00:00:00Z"),
            peer("web", "relaxed", selector: "web", mode: "UNSET", ports: "\"8080\": {mode: STRICT}"),
            peer("api", "shop", selector: "api", mode: "STRICT", ports: "\"9000\": {mode: DISABLE}"),
            peer("root-selector", "istio-system", selector: "anything", mode: "DISABLE"),
        ])
        func mode(_ namespace: String, _ app: String, _ port: UInt16) -> PeerAuthentication.Mode {
            snapshot.peerAuthenticationMode(
                for: Pod(metadata: ObjectMeta(name: "p", namespace: namespace, labels: ["app": app])),
                port: port
            )
        }
        #expect(mode("shop", "other", 80) == .strict)  // mesh-wide
        #expect(mode("relaxed", "other", 80) == .permissive)  // oldest namespace policy wins
        #expect(mode("relaxed", "web", 80) == .permissive)  // UNSET inherits
        #expect(mode("relaxed", "web", 8080) == .strict)  // port level
        #expect(mode("shop", "api", 80) == .strict)
        #expect(mode("shop", "api", 9000) == .disable)
        #expect(mode("shop", "anything", 80) == .strict)  // root-namespace selector policies are ignored
        let bare = ConfigSnapshot()
        #expect(
            bare.peerAuthenticationMode(for: Pod(metadata: ObjectMeta(name: "p", namespace: "x")), port: 80)
                == .permissive
        )
    }
}
