import Foundation

/// Objects as a real cluster's API server returns them (`Tests/Fixtures/kubernetes`), and the
/// collections they belong to, for seeding a ``FakeKubernetesAPIServer``.
public enum KubernetesFixtures {
    public static let namespaces = "/api/v1/namespaces"
    public static let pods = "/api/v1/pods"
    public static let services = "/api/v1/services"
    public static let serviceAccounts = "/api/v1/serviceaccounts"
    public static let authorizationPolicies = "/apis/security.istio.io/v1/authorizationpolicies"
    public static let peerAuthentications = "/apis/security.istio.io/v1/peerauthentications"
    public static let gateways = "/apis/gateway.networking.k8s.io/v1/gateways"
    public static let httpRoutes = "/apis/gateway.networking.k8s.io/v1/httproutes"
    public static let virtualServices = "/apis/networking.istio.io/v1/virtualservices"

    /// The name of the recorded client pod (namespace `demo`, node `node-1`, IP 10.244.1.7).
    public static let clientPod = "client-7d9c8b6f4-x2vkq"

    /// The text of `Tests/Fixtures/kubernetes/<name>.json`.
    public static func json(_ name: String) -> String {
        let url = TestBinaries.packageRoot.appendingPathComponent("Tests/Fixtures/kubernetes/\(name).json")
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            preconditionFailure("missing fixture \(url.path)")
        }
        return text
    }

    /// A pod like the recorded one, with another name and IP.
    public static func pod(_ name: String, ip: String, nodeName: String = "node-1") -> String {
        json("pod-client")
            .replacingOccurrences(of: clientPod, with: name)
            .replacingOccurrences(of: "10.244.1.7", with: ip)
            .replacingOccurrences(of: "5e7c9a10-6b2f-4c1e-8f0a-2d4b6c8e0f12", with: UUID().uuidString.lowercased())
            .replacingOccurrences(of: "\"nodeName\": \"node-1\"", with: "\"nodeName\": \"\(nodeName)\"")
    }

    /// Namespace `demo` (enrolled) and `istio-system`, the client pod and its service account, service
    /// `server`, an ALLOW policy, a waypoint Gateway, an HTTPRoute and a VirtualService.
    public static func seed(_ server: FakeKubernetesAPIServer) {
        server.put(namespaces, json("namespace-demo"))
        server.put(
            namespaces,
            #"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"istio-system"},"spec":{"finalizers":["kubernetes"]},"status":{"phase":"Active"}}"#
        )
        server.put(
            serviceAccounts,
            #"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"client","namespace":"demo"}}"#
        )
        server.put(pods, json("pod-client"))
        server.put(services, json("service-server"))
        server.put(authorizationPolicies, json("authorizationpolicy-allow-client"))
        server.put(gateways, json("gateway-waypoint"))
        server.put(httpRoutes, json("httproute-server"))
        server.put(virtualServices, json("virtualservice-server"))
    }
}
