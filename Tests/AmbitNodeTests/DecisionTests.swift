import AmbitConfig
import AmbitModel
import AmbitTestSupport
import Testing

@testable import AmbitNode

/// The agent's per-connection decisions, without sockets.
@Suite struct DecisionTests {
    static func snapshot(_ documents: [String]) throws -> ConfigSnapshot {
        let objects = try ManifestDecoder().decode(Manifests.join(documents)).objects
        return ConfigSnapshot(objects: objects, options: ConfigOptions(), version: 1)
    }

    static let mesh: [String] = [
        Manifests.namespace("demo", labels: ["istio.io/dataplane-mode": "ambient"]),
        Manifests.namespace("legacy"),
        Manifests.pod("client", namespace: "demo", ip: "10.244.1.2", node: "n1", serviceAccount: "client"),
        Manifests.pod(
            "server",
            namespace: "demo",
            ip: "10.244.2.2",
            node: "n2",
            serviceAccount: "server",
            labels: ["app": "server"],
            ports: [("http", 8080)]
        ),
        Manifests.pod("old", namespace: "legacy", ip: "10.244.1.9", node: "n1", labels: ["app": "old"]),
        Manifests.service(
            "server",
            namespace: "demo",
            clusterIP: "10.96.0.10",
            selector: ["app": "server"],
            ports: [(80, "http")]
        ),
        Manifests.service(
            "old",
            namespace: "legacy",
            clusterIP: "10.96.0.20",
            selector: ["app": "old"],
            ports: [(80, "80")]
        ),
    ]

    static func ep(_ text: String) throws -> IPEndpoint { try IPEndpoint(parsing: text) }

    @Test func serviceVIPGoesOverHBONEToTheEndpointsTargetPort() throws {
        let snapshot = try Self.snapshot(Self.mesh)
        let route = OutboundRouter.route(to: try Self.ep("10.96.0.10:80"), in: snapshot)
        guard case .hbone(let nextHop, let authority, let workload, let service) = route else {
            Issue.record("expected HBONE, got \(route)")
            return
        }
        #expect(nextHop == (try Self.ep("10.244.2.2:15008")))
        #expect(authority == (try Self.ep("10.244.2.2:8080")))
        #expect(workload.identity.uri == "spiffe://cluster.local/ns/demo/sa/server")
        #expect(service == "server.demo.svc.cluster.local")
    }

    @Test func enrolledPodAddressGoesOverHBONEKeepingThePort() throws {
        let snapshot = try Self.snapshot(Self.mesh)
        let route = OutboundRouter.route(to: try Self.ep("10.244.2.2:9000"), in: snapshot)
        guard case .hbone(let nextHop, let authority, _, nil) = route else {
            Issue.record("expected HBONE, got \(route)")
            return
        }
        #expect(nextHop == (try Self.ep("10.244.2.2:15008")))
        #expect(authority == (try Self.ep("10.244.2.2:9000")))
    }

    @Test func nonMeshDestinationsPassThrough() throws {
        let snapshot = try Self.snapshot(Self.mesh)
        #expect(
            OutboundRouter.route(to: try Self.ep("192.0.2.7:443"), in: snapshot)
                == .passthrough(try Self.ep("192.0.2.7:443"), destination: nil, service: nil)
        )
        // A pod that is not enrolled, reached directly or through its service: plaintext.
        guard
            case .passthrough(let target, let workload?, _) = OutboundRouter.route(
                to: try Self.ep("10.96.0.20:80"),
                in: snapshot
            )
        else {
            Issue.record("expected passthrough to the legacy pod")
            return
        }
        #expect(target == (try Self.ep("10.244.1.9:80")))
        #expect(workload.name == "old")
    }

    @Test func serviceWithoutHealthyEndpointsIsUnavailable() throws {
        let snapshot = try Self.snapshot(
            Self.mesh + [
                Manifests.service(
                    "empty",
                    namespace: "demo",
                    clusterIP: "10.96.0.30",
                    selector: ["app": "none"],
                    ports: [(80, "80")]
                )
            ]
        )
        #expect(
            OutboundRouter.route(to: try Self.ep("10.96.0.30:80"), in: snapshot)
                == .unavailable("service demo/empty port 80")
        )
    }

    static let serverRecord = PodRecord(
        uid: "u1",
        namespace: "demo",
        name: "server",
        ips: ["10.244.2.2"],
        netnsPath: "/var/run/netns/x",
        containerID: nil
    )
    static let client = try! SpiffeID(parsing: "spiffe://cluster.local/ns/demo/sa/client")

    @Test func inboundChecksAuthorityThenPolicy() throws {
        let deny = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata:
              name: deny-client
              namespace: demo
            spec:
              action: DENY
              rules:
                - from:
                    - source:
                        principals: ["cluster.local/ns/demo/sa/client"]
            """
        let open = try Self.snapshot(Self.mesh)
        let closed = try Self.snapshot(Self.mesh + [deny])
        let source = try IPAddress(parsing: "10.244.1.2")
        func decide(_ target: String, _ snapshot: ConfigSnapshot, plaintext: Bool = false) throws -> InboundDecision {
            InboundDecision.decide(
                target: try Self.ep(target),
                pod: Self.serverRecord,
                peerIdentity: plaintext ? nil : Self.client,
                sourceAddress: source,
                plaintext: plaintext,
                snapshot: snapshot
            )
        }
        guard case .allow = try decide("10.244.2.2:8080", open) else {
            Issue.record("expected allow")
            return
        }
        #expect(
            try decide("10.244.2.3:8080", open)
                == .badRequest("authority 10.244.2.3:8080 is not an address of pod demo/server")
        )
        #expect(try decide("10.244.2.2:15008", open) == .badRequest("port 15008 is reserved for the mesh"))
        #expect(try decide("10.244.2.2:8080", closed) == .denied("denied by DENY policy demo/deny-client (rule 0)"))
    }

    @Test func strictPeerAuthenticationRejectsPlaintextOnly() throws {
        let strict = """
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata:
              name: strict
              namespace: demo
            spec:
              mtls:
                mode: STRICT
            """
        let snapshot = try Self.snapshot(Self.mesh + [strict])
        let source = try IPAddress(parsing: "10.244.1.9")
        let plaintext = InboundDecision.decide(
            target: try Self.ep("10.244.2.2:8080"),
            pod: Self.serverRecord,
            peerIdentity: nil,
            sourceAddress: source,
            plaintext: true,
            snapshot: snapshot
        )
        #expect(plaintext == .denied("PeerAuthentication STRICT: plaintext connection to demo/server rejected"))
        let tunnelled = InboundDecision.decide(
            target: try Self.ep("10.244.2.2:8080"),
            pod: Self.serverRecord,
            peerIdentity: Self.client,
            sourceAddress: source,
            plaintext: false,
            snapshot: snapshot
        )
        guard case .allow = tunnelled else {
            Issue.record("HBONE under STRICT must be allowed, got \(tunnelled)")
            return
        }
    }

    // MARK: Waypoints

    static let waypointGateway = """
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata:
          name: server-waypoint
          namespace: demo
          annotations: {istio.io/for-service-account: server}
        spec:
          gatewayClassName: istio-waypoint
          listeners: [{name: mesh, port: 15008, protocol: HBONE}]
        status:
          addresses: [{type: IPAddress, value: 10.244.1.50}]
        """

    static func labelled(_ service: String) -> String {
        service.replacingOccurrences(
            of: "metadata:\n",
            with: "metadata:\n  labels: {istio.io/use-waypoint: server-waypoint}\n"
        )
    }

    static let waypointIdentity = try! SpiffeID(parsing: "spiffe://cluster.local/ns/demo/sa/server-waypoint")

    @Test func servicesAndWorkloadsWithAWaypointGoThroughIt() throws {
        let snapshot = try Self.snapshot(Self.mesh + [Self.waypointGateway])
        // The pod's service account has a waypoint: pod-addressed traffic goes there.
        guard
            case .waypoint(let nextHop, let authority, let waypoint, nil) = OutboundRouter.route(
                to: try Self.ep("10.244.2.2:8080"),
                in: snapshot
            )
        else {
            Issue.record("expected the waypoint")
            return
        }
        #expect(nextHop == (try Self.ep("10.244.1.50:15008")))
        #expect(authority == (try Self.ep("10.244.2.2:8080")))
        #expect(waypoint.identity == Self.waypointIdentity)
        // A service labelled for the waypoint: the VIP stays the authority.
        let labelled = try Self.snapshot(
            Self.mesh.map { $0.contains("kind: Service") && $0.contains("name: server") ? Self.labelled($0) : $0 }
                + [Self.waypointGateway]
        )
        guard
            case .waypoint(_, let vip, _, let service?) = OutboundRouter.route(
                to: try Self.ep("10.96.0.10:80"),
                in: labelled
            )
        else {
            Issue.record("expected the waypoint for the service")
            return
        }
        #expect(vip == (try Self.ep("10.96.0.10:80")))
        #expect(service == "server.demo.svc.cluster.local")
    }

    /// A per-service-account waypoint guards its pods on every port, so traffic to a Service VIP
    /// that picks one of them goes through that waypoint too, addressed to the chosen endpoint.
    @Test func aServiceEndpointBehindItsServiceAccountsWaypointIsReachedThroughIt() throws {
        let snapshot = try Self.snapshot(Self.mesh + [Self.waypointGateway])
        let route = OutboundRouter.route(to: try Self.ep("10.96.0.10:80"), in: snapshot)
        guard case .waypoint(let nextHop, let authority, let waypoint, let service) = route else {
            Issue.record("expected the endpoint's waypoint, got \(route)")
            return
        }
        #expect(nextHop == (try Self.ep("10.244.1.50:15008")))
        #expect(authority == (try Self.ep("10.244.2.2:8080")))
        #expect(waypoint.identity == Self.waypointIdentity)
        #expect(service == "server.demo.svc.cluster.local")
        // The service of another namespace, without a waypoint, still goes straight to its endpoint.
        guard case .passthrough(let direct, _, _) = OutboundRouter.route(to: try Self.ep("10.96.0.20:80"), in: snapshot)
        else {
            Issue.record("expected the legacy service to pass through")
            return
        }
        #expect(direct == (try Self.ep("10.244.1.9:80")))
    }

    @Test func aMissingWaypointIsNotUsedAsInIstioAndSaysSo() throws {
        let labelled = try Self.snapshot(
            Self.mesh.map { $0.contains("kind: Service") && $0.contains("name: server") ? Self.labelled($0) : $0 }
        )
        // Istio sends the service's traffic directly when its waypoint does not exist (L7 policies that
        // needed it fail closed at the destination); the snapshot's warnings say why.
        guard case .hbone(_, let authority, _, _) = OutboundRouter.route(to: try Self.ep("10.96.0.10:80"), in: labelled)
        else {
            Issue.record("expected the service's traffic to go directly to its endpoint")
            return
        }
        #expect(authority == (try Self.ep("10.244.2.2:8080")))
        #expect(
            labelled.warnings.contains {
                $0.hasPrefix("Service demo/server: istio.io/WaypointBound=False, WaypointIsNotReady")
            }
        )
        let direct = InboundDecision.decide(
            target: try Self.ep("10.244.2.2:8080"),
            pod: Self.serverRecord,
            peerIdentity: Self.client,
            sourceAddress: try IPAddress(parsing: "10.244.1.2"),
            plaintext: false,
            snapshot: labelled
        )
        guard case .allow = direct else {
            Issue.record("a waypoint that is not bound guards nothing: \(direct)")
            return
        }
    }

    @Test func aDestinationBehindAWaypointOnlyAcceptsTheWaypoint() throws {
        let snapshot = try Self.snapshot(Self.mesh + [Self.waypointGateway])
        let source = try IPAddress(parsing: "10.244.1.2")
        func decide(_ peer: SpiffeID?) throws -> InboundDecision {
            InboundDecision.decide(
                target: try Self.ep("10.244.2.2:8080"),
                pod: Self.serverRecord,
                peerIdentity: peer,
                sourceAddress: source,
                plaintext: peer == nil,
                snapshot: snapshot
            )
        }
        #expect(
            try decide(Self.client)
                == .denied(
                    "pod demo/server port 8080 is served by waypoint demo/server-waypoint: only its identity may connect, "
                        + "not spiffe://cluster.local/ns/demo/sa/client"
                )
        )
        guard case .denied = try decide(nil) else {
            Issue.record("plaintext must be refused")
            return
        }
        guard case .allow = try decide(Self.waypointIdentity) else {
            Issue.record("the waypoint must be allowed")
            return
        }
    }

    @Test func aSelectorlessServiceWhoseEndpointIsOutsideTheMeshIsReachedAsPlainTCPToTheEndpoint() throws {
        let snapshot = try Self.snapshot(
            Self.mesh + [
                """
                apiVersion: v1
                kind: Service
                metadata: {name: kubernetes, namespace: default}
                spec: {clusterIP: 10.96.0.1, ports: [{name: https, port: 443, targetPort: 6443}]}
                """,
                """
                apiVersion: discovery.k8s.io/v1
                kind: EndpointSlice
                metadata: {name: kubernetes, namespace: default, labels: {kubernetes.io/service-name: kubernetes}}
                addressType: IPv4
                endpoints: [{addresses: [172.31.0.11]}]
                ports: [{name: https, port: 6443}]
                """,
            ]
        )
        let route = OutboundRouter.route(to: try Self.ep("10.96.0.1:443"), in: snapshot)
        #expect(
            route
                == .passthrough(
                    try Self.ep("172.31.0.11:6443"),
                    destination: nil,
                    service: "kubernetes.default.svc.cluster.local"
                )
        )
    }

    // MARK: Re-checks

    /// A policy change re-runs the decision that admitted each live connection, all of it: a new
    /// STRICT PeerAuthentication ends plaintext connections, a new waypoint ends direct ones.
    @Test func liveConnectionsAreRecheckedWithTheWholeInboundDecision() throws {
        let fixture = try ProxiedConnectionTests.Fixture()
        func admitted(peer: SpiffeID?, from source: String) throws -> ProxiedConnection {
            let connection = try fixture.connection()
            connection.admit(
                ProxiedConnectionTests.Fixture.description,
                admission: .init(
                    target: try Self.ep("10.244.2.2:8080"),
                    peerIdentity: peer,
                    sourceAddress: try IPAddress(parsing: source),
                    plaintext: peer == nil
                )
            )
            return connection
        }
        let plaintext = try admitted(peer: nil, from: "10.244.1.9")
        let tunnelled = try admitted(peer: Self.client, from: "10.244.1.2")
        let strict = """
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: strict, namespace: demo}
            spec: {mtls: {mode: STRICT}}
            """
        #expect(InboundProxy.refused(fixture.tracker.all, by: try Self.snapshot(Self.mesh)).isEmpty)
        let underStrict = InboundProxy.refused(fixture.tracker.all, by: try Self.snapshot(Self.mesh + [strict]))
        #expect(underStrict.map(\.0.id) == [plaintext.id])
        #expect(underStrict.first?.1 == "PeerAuthentication STRICT: plaintext connection to demo/server rejected")
        let withWaypoint = InboundProxy.refused(
            fixture.tracker.all,
            by: try Self.snapshot(Self.mesh + [Self.waypointGateway])
        )
        #expect(Set(withWaypoint.map(\.0.id)) == [plaintext.id, tunnelled.id])
    }
}
