import AmbitConfig
import AmbitModel

/// Where the agent sends a connection captured on a pod's port 15001.
enum OutboundRoute: Equatable {
    /// To a mesh workload over HBONE: dial `nextHop` (`<pod IP>:15008`), CONNECT to `authority`.
    case hbone(nextHop: IPEndpoint, authority: IPEndpoint, destination: Workload, service: String?)
    /// Outside the mesh (or a pod that is not enrolled): plain TCP from the pod's namespace.
    case passthrough(IPEndpoint, destination: Workload?, service: String?)
    /// To the waypoint that serves the destination, over HBONE: dial `nextHop`
    /// (`<waypoint IP>:15008`), CONNECT to the original destination.
    case waypoint(nextHop: IPEndpoint, authority: IPEndpoint, waypoint: WaypointBinding, service: String?)
    /// A service with no healthy endpoint: refused.
    case unavailable(String)
}

/// The outbound decision of docs/protocols.md, free of I/O so it is unit-tested on its own: a
/// destination served by a waypoint goes to the waypoint (keeping the original destination as
/// the authority); a service VIP:port picks a healthy endpoint and maps the service port to the
/// target port, then goes to that endpoint's waypoint if it has one; a pod address of an enrolled
/// pod goes over HBONE to that pod; anything else passes through.
enum OutboundRouter {
    static func route(
        to destination: IPEndpoint,
        in snapshot: ConfigSnapshot,
        pick: ([ServiceEndpoint]) -> ServiceEndpoint? = { endpoints in
            var random = FastRandom()
            return endpoints.randomElement(using: &random)
        }
    ) -> OutboundRoute {
        if let binding = snapshot.service(at: destination) {
            let serviceName =
                "\(binding.service.name).\(binding.service.namespace).svc.\(snapshot.options.clusterDomain)"
            if let route = through(
                snapshot.waypoint(forService: binding.service),
                to: destination,
                service: serviceName
            ) {
                return route
            }
            guard let endpoint = pick(binding.healthyEndpoints) else {
                return .unavailable(
                    "service \(binding.service.namespace)/\(binding.service.name) port \(destination.port)"
                )
            }
            // An EndpointSlice endpoint that is not a pod (a node, an address outside the cluster) is outside
            // the mesh: plain TCP to it, the VIP rewritten, as ztunnel does.
            guard let pod = endpoint.pod else {
                return .passthrough(endpoint.address, destination: nil, service: serviceName)
            }
            // The chosen endpoint's own waypoint (its service account's, or its pod's or namespace's
            // `istio.io/use-waypoint`): the endpoint accepts only that waypoint, so service-addressed
            // traffic goes there too, with the endpoint as the authority.
            if let route = through(
                snapshot.waypoint(forWorkload: pod),
                to: endpoint.address,
                service: serviceName
            ) {
                return route
            }
            let workload = snapshot.workload(for: pod)
            if let workload, workload.enrollment.isEnrolled {
                return .hbone(
                    nextHop: IPEndpoint(endpoint.address.address, MeshPorts.hbone),
                    authority: endpoint.address,
                    destination: workload,
                    service: serviceName
                )
            }
            return .passthrough(endpoint.address, destination: workload, service: serviceName)
        }
        if let workload = snapshot.workload(at: destination.address) {
            if let route = through(
                snapshot.waypoint(forWorkload: workload.key),
                to: destination,
                service: nil
            ) {
                return route
            }
            if workload.enrollment.isEnrolled {
                return .hbone(
                    nextHop: IPEndpoint(destination.address, MeshPorts.hbone),
                    authority: destination,
                    destination: workload,
                    service: nil
                )
            }
            return .passthrough(destination, destination: workload, service: nil)
        }
        return .passthrough(destination, destination: nil, service: nil)
    }

    /// Through `resolution`'s waypoint; `nil` when none is bound (a waypoint that is named but not bound
    /// is not used, as in Istio; the configuration's warnings say why).
    private static func through(
        _ resolution: WaypointResolution,
        to destination: IPEndpoint,
        service: String?
    ) -> OutboundRoute? {
        resolution.binding.map { toWaypoint($0, destination: destination, service: service) }
    }

    private static func toWaypoint(_ waypoint: WaypointBinding, destination: IPEndpoint, service: String?)
        -> OutboundRoute
    {
        // Same address family as the destination when the waypoint has one.
        let address =
            waypoint.addresses.first { $0.isIPv4 == destination.address.isIPv4 } ?? waypoint.addresses[0]
        return .waypoint(
            nextHop: IPEndpoint(address, MeshPorts.hbone),
            authority: destination,
            waypoint: waypoint,
            service: service
        )
    }
}
