import AmbitConfig
import AmbitModel
import AmbitTestSupport
import Testing

/// Services without a selector get their endpoints from EndpointSlices, as Istio's ambient index does.
@Suite struct EndpointSliceTests {
    static let kubernetesService = """
        apiVersion: v1
        kind: Service
        metadata: {name: kubernetes, namespace: default}
        spec:
          clusterIP: 10.96.0.1
          ports: [{name: https, port: 443, targetPort: 6443}]
        """

    static func slice(_ name: String, service: String = "kubernetes", body: String) -> String {
        """
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: \(name)
          namespace: default
          labels: {kubernetes.io/service-name: \(service)}
        \(body)
        """
    }

    @Test func aServiceWithoutASelectorUsesItsSlicesMatchingPortsByName() throws {
        let snapshot = try ConfigSnapshotTests.snapshot([
            Manifests.namespace("default"),
            Manifests.pod("api-proxy", namespace: "default", ip: "10.244.1.9", node: "node1"),
            Self.kubernetesService,
            Self.slice(
                "kubernetes-a",
                body: """
                    addressType: IPv4
                    endpoints:
                      - addresses: [172.31.0.11]
                        conditions: {ready: true}
                      - addresses: [172.31.0.12]
                        conditions: {ready: false}
                      - addresses: [10.244.1.9]
                        targetRef: {kind: Pod, name: api-proxy}
                    ports: [{name: https, port: 6443, protocol: TCP}, {name: other, port: 9}]
                    """
            ),
        ])
        let binding = try #require(snapshot.service(at: try IPEndpoint(parsing: "10.96.0.1:443")))
        #expect(
            binding.endpoints == [
                ServiceEndpoint(
                    pod: ObjectKey(.pod, namespace: "default", name: "api-proxy"),
                    address: try IPEndpoint(parsing: "10.244.1.9:6443"),
                    healthy: true
                ),
                ServiceEndpoint(pod: nil, address: try IPEndpoint(parsing: "172.31.0.11:6443"), healthy: true),
                ServiceEndpoint(pod: nil, address: try IPEndpoint(parsing: "172.31.0.12:6443"), healthy: false),
            ]
        )
        #expect(binding.healthyEndpoints.count == 2, "an endpoint that is not ready gets no traffic")
        #expect(snapshot.warnings.isEmpty, "\(snapshot.warnings)")
    }

    @Test func aServiceWithASelectorKeepsItsPodsAndASliceForAnUnknownServiceIsReported() throws {
        let snapshot = try ConfigSnapshotTests.snapshot([
            Manifests.pod(
                "web",
                namespace: "default",
                ip: "10.244.1.5",
                labels: ["app": "web"],
                ports: [("http", 8080)]
            ),
            Manifests.service(
                "web",
                namespace: "default",
                clusterIP: "10.96.0.5",
                selector: ["app": "web"],
                ports: [(80, "http")]
            ),
            Self.slice(
                "web-x",
                service: "web",
                body: "addressType: IPv4\nendpoints: [{addresses: [192.0.2.1]}]\nports: [{port: 8080}]"
            ),
            Self.slice("ghost-x", service: "ghost", body: "addressType: IPv4\nendpoints: [{addresses: [192.0.2.2]}]"),
        ])
        let binding = try #require(snapshot.service(at: try IPEndpoint(parsing: "10.96.0.5:80")))
        #expect(binding.endpoints.map(\.address) == [try IPEndpoint(parsing: "10.244.1.5:8080")])
        #expect(
            snapshot.warnings.contains(
                "EndpointSlice default/ghost-x belongs to Service default/ghost, which does not exist; its endpoints are unused"
            ),
            "\(snapshot.warnings)"
        )
    }

    @Test(arguments: [
        ("addressType: IPX", "is not an address type (IPv4, IPv6, FQDN)"),
        ("addressType: IPv4\nendpoints: [{addresses: [fd00::1]}]", "fd00::1 is not an IPv4 address"),
        ("addressType: IPv4\nendpoints: [{addresses: [300.1.1.1]}]", "not a valid IPv4 or IPv6 address"),
        ("endpoints: []", "addressType"),
    ])
    func malformedSlicesAreRejectedNamingTheField(body: String, message: String) {
        #expect {
            _ = try ManifestDecoder().decode(Self.slice("bad", body: body))
        } throws: { error in
            guard let error = error as? ManifestError else { return false }
            return error.object == "EndpointSlice default/bad" && error.description.contains(message)
        }
    }
}
