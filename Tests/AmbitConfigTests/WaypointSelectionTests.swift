import AmbitConfig
import AmbitModel
import AmbitTestSupport
import Testing

/// Waypoint selection as current Istio does it: `istio.io/waypoint-for` from the Gateway or its
/// GatewayClass, the identity of the waypoint's pods, `allowedRoutes`, and names that do not bind.
@Suite struct WaypointSelectionTests {
    static func snapshot(_ documents: [String]) throws -> ConfigSnapshot {
        let objects = try ManifestDecoder().decode(Manifests.join(documents)).objects
        return ConfigSnapshot(objects: objects, options: ConfigOptions(), version: 1)
    }

    static func gateway(
        _ name: String,
        namespace: String = "shop",
        className: String = "istio-waypoint",
        labels: String = "{}",
        address: String = "10.96.9.1",
        allowedRoutes: String? = nil
    ) -> String {
        let listener =
            allowedRoutes.map {
                "\n  listeners: [{name: mesh, port: 15008, protocol: HBONE, allowedRoutes: {namespaces: \($0)}}]"
            } ?? ""
        return """
            apiVersion: gateway.networking.k8s.io/v1
            kind: Gateway
            metadata: {name: \(name), namespace: \(namespace), labels: \(labels)}
            spec:
              gatewayClassName: \(className)\(listener)
            status: {addresses: [{value: \(address)}]}
            """
    }

    static func service(_ name: String, namespace: String = "shop", labels: [String: String]) -> String {
        Manifests.service(
            name,
            namespace: namespace,
            clusterIP: "10.96.0.\(name.count)",
            selector: ["app": name],
            ports: [(80, "80")],
            labels: labels
        )
    }

    static func key(_ kind: ResourceKind, _ namespace: String, _ name: String) -> ObjectKey {
        ObjectKey(kind, namespace: namespace, name: name)
    }

    @Test func waypointForComesFromTheGatewayThenItsClassThenDefaultsToService() throws {
        let snapshot = try Self.snapshot([
            Manifests.namespace("shop"),
            """
            apiVersion: gateway.networking.k8s.io/v1
            kind: GatewayClass
            metadata: {name: istio-waypoint, labels: {istio.io/waypoint-for: workload}}
            spec: {controllerName: istio.io/waypoint-controller}
            """,
            Self.gateway("inherits"),
            Self.gateway("own", labels: "{istio.io/waypoint-for: all}", address: "10.96.9.2"),
            Self.service("svc-a", labels: ["istio.io/use-waypoint": "inherits"]),
            Self.service("svc-b", labels: ["istio.io/use-waypoint": "own"]),
            Manifests.pod("p", namespace: "shop", ip: "10.0.0.1", labels: ["istio.io/use-waypoint": "inherits"]),
        ])
        // The class says workload: a service may not use it, a pod may.
        guard case .notBound(let problem) = snapshot.waypoint(forService: Self.key(.service, "shop", "svc-a")) else {
            Issue.record("expected no binding")
            return
        }
        #expect(problem.reason == .unsupportedTrafficType)
        #expect(snapshot.waypoint(forService: Self.key(.service, "shop", "svc-b")).binding?.gateway.name == "own")
        #expect(snapshot.waypoint(forWorkload: Self.key(.pod, "shop", "p")).binding?.gateway.name == "inherits")
        #expect(
            snapshot.warnings.contains(
                "Service shop/svc-a: istio.io/WaypointBound=False, UnsupportedTrafficType: service label "
                    + "istio.io/use-waypoint=inherits: waypoint shop/inherits takes workload traffic "
                    + "(istio.io/waypoint-for), not service; its traffic goes without a waypoint (as in Istio)"
            ),
            "\(snapshot.warnings)"
        )
    }

    @Test func theIdentityIsTheServiceAccountOfTheWaypointsPods() throws {
        let world = [
            Manifests.namespace("shop"),
            Self.gateway("wp"),
            Self.service("svc", labels: ["istio.io/use-waypoint": "wp"]),
        ]
        func identity(_ extra: [String]) throws -> String? {
            let snapshot = try Self.snapshot(world + extra)
            return snapshot.waypoint(forService: Self.key(.service, "shop", "svc")).binding?.identity.description
        }
        // No pods yet: the Gateway's name (Istio names the waypoint's service account after it).
        #expect(try identity([]) == "spiffe://cluster.local/ns/shop/sa/wp")
        let pod = Manifests.pod(
            "wp-5d8f7-abcde",
            namespace: "shop",
            ip: "10.0.0.9",
            serviceAccount: "waypoint-runner",
            labels: ["gateway.networking.k8s.io/gateway-name": "wp"]
        )
        #expect(try identity([pod]) == "spiffe://cluster.local/ns/shop/sa/waypoint-runner")
    }

    @Test func allowedRoutesLimitsWhichNamespacesMayUseAWaypoint() throws {
        let snapshot = try Self.snapshot([
            Manifests.namespace("infra"),
            Manifests.namespace("shop"),
            Manifests.namespace("team", labels: ["waypoints": "shared"]),
            Self.gateway("same", namespace: "infra"),
            Self.gateway("any", namespace: "infra", address: "10.96.9.2", allowedRoutes: "{from: All}"),
            Self.gateway(
                "picky",
                namespace: "infra",
                address: "10.96.9.3",
                allowedRoutes: "{from: Selector, selector: {matchLabels: {waypoints: shared}}}"
            ),
            Self.service(
                "to-same",
                labels: ["istio.io/use-waypoint": "same", "istio.io/use-waypoint-namespace": "infra"]
            ),
            Self.service(
                "to-any",
                labels: ["istio.io/use-waypoint": "any", "istio.io/use-waypoint-namespace": "infra"]
            ),
            Self.service(
                "to-picky",
                labels: ["istio.io/use-waypoint": "picky", "istio.io/use-waypoint-namespace": "infra"]
            ),
            Self.service(
                "team-picky",
                namespace: "team",
                labels: ["istio.io/use-waypoint": "picky", "istio.io/use-waypoint-namespace": "infra"]
            ),
        ])
        func resolved(_ namespace: String, _ name: String) -> WaypointResolution {
            snapshot.waypoint(forService: Self.key(.service, namespace, name))
        }
        guard case .notBound(let denied) = resolved("shop", "to-same") else {
            Issue.record("a waypoint in another namespace with the default allowedRoutes must not bind")
            return
        }
        #expect(denied.reason == .attachmentDenied)
        #expect(resolved("shop", "to-any").binding?.gateway == Self.key(.gateway, "infra", "any"))
        guard case .notBound(let unmatched) = resolved("shop", "to-picky") else {
            Issue.record("a namespace without the selected labels must not bind")
            return
        }
        #expect(unmatched.reason == .attachmentDenied)
        #expect(resolved("team", "team-picky").binding?.gateway == Self.key(.gateway, "infra", "picky"))
    }

    @Test func aNamedWaypointThatIsMissingMeansNoWaypointAndAWarning() throws {
        let snapshot = try Self.snapshot([
            Manifests.namespace("shop", labels: ["istio.io/use-waypoint": "ns-wp"]),
            Self.gateway("ns-wp"),
            Self.service("svc", labels: ["istio.io/use-waypoint": "gone"]),
        ])
        // A broken name on the Service does not fall back to the namespace's waypoint.
        guard case .notBound(let problem) = snapshot.waypoint(forService: Self.key(.service, "shop", "svc")) else {
            Issue.record("expected no binding")
            return
        }
        #expect(problem.reason == .waypointIsNotReady)
        #expect(
            snapshot.warnings.contains(
                "Service shop/svc: istio.io/WaypointBound=False, WaypointIsNotReady: service label "
                    + "istio.io/use-waypoint=gone: waypoint shop/gone does not exist; its traffic goes without a "
                    + "waypoint (as in Istio)"
            ),
            "\(snapshot.warnings)"
        )
    }
}
