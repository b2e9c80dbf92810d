/// An Istio VirtualService (`networking.istio.io`), read for the mesh: its HTTP routes, translated to
/// the HTTPRoute rule model so a waypoint applies them with the same code. Unlike HTTPRoute's
/// precedence by specificity, a VirtualService's routes are tried in order and the first match wins.
public struct VirtualService: KubernetesObject {
    public static let kind = ResourceKind.virtualService

    public var metadata: ObjectMeta
    /// `spec.hosts`: Kubernetes Service names, short (`reviews`, in this namespace) or qualified
    /// (`reviews.demo`, `reviews.demo.svc`, `reviews.demo.svc.cluster.local`).
    public var hosts: [String]
    /// `spec.gateways`: empty or containing `mesh` means the routes apply inside the mesh.
    public var gateways: [String]
    /// `spec.http`, in order.
    public var http: [HTTPRoute.Rule]

    public init(metadata: ObjectMeta, hosts: [String], gateways: [String] = [], http: [HTTPRoute.Rule] = []) {
        self.metadata = metadata
        self.hosts = hosts
        self.gateways = gateways
        self.http = http
    }

    /// Whether the routes apply to traffic inside the mesh (waypoints), not only at ingress gateways.
    public var appliesToMesh: Bool { gateways.isEmpty || gateways.contains("mesh") }

    /// The Service a host names, as (namespace, name); `nil` for anything else (a wildcard, an
    /// external name, another cluster domain).
    public func service(forHost host: String, clusterDomain: String) -> (namespace: String, name: String)? {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !host.contains("*"), parts.allSatisfy({ !$0.isEmpty }) else { return nil }
        switch parts.count {
        case 1: return (metadata.namespace, parts[0])
        case 2: return (parts[1], parts[0])
        case 3 where parts[2] == "svc": return (parts[1], parts[0])
        default:
            guard parts.count > 3, parts[2] == "svc", parts[3...].joined(separator: ".") == clusterDomain else {
                return nil
            }
            return (parts[1], parts[0])
        }
    }
}
