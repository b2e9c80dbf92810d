public import AmbitModel

extension ConfigSnapshot {
    /// The waypoint for traffic addressed to a service (see ``WaypointResolver`` for the rules).
    public func waypoint(forService key: ObjectKey) -> WaypointResolution {
        waypointResolver.forService(key)
    }

    /// The waypoint for traffic addressed to a pod directly (see ``WaypointResolver`` for the rules).
    public func waypoint(forWorkload key: ObjectKey) -> WaypointResolution {
        waypointResolver.forWorkload(key)
    }
}

/// For each pod, the waypoints its traffic must come through: its own (workload) waypoint for
/// every port, and, per target port, the waypoints of the services that select it.
struct WaypointGuardIndex: Sendable {
    var workload: [ObjectKey: WaypointBinding] = [:]
    var ports: [ObjectKey: [UInt16: [WaypointBinding]]] = [:]
}

extension ConfigSnapshot {
    /// The waypoints an inbound connection to `pod` on `port` must come from (no bypass): the
    /// pod's workload waypoint, and the waypoints of services whose target port this is. Empty when
    /// no waypoint is bound (a waypoint that is named but not bound guards nothing, as in Istio).
    public func waypointsGuarding(pod: ObjectKey, port: UInt16) -> [WaypointBinding] {
        let index = waypointGuards.withLock { cached in
            if let cached { return cached }
            let built = buildWaypointGuards()
            cached = built
            return built
        }
        var result = index.ports[pod]?[port] ?? []
        if let workload = index.workload[pod] { result.append(workload) }
        return result
    }

    private func buildWaypointGuards() -> WaypointGuardIndex {
        var index = WaypointGuardIndex()
        for key in pods.keys {
            if let waypoint = waypoint(forWorkload: key).binding { index.workload[key] = waypoint }
        }
        for binding in servicesByAddress.values {
            guard let waypoint = waypoint(forService: binding.service).binding else { continue }
            for endpoint in binding.endpoints {
                guard let pod = endpoint.pod, !(index.ports[pod]?[endpoint.address.port] ?? []).contains(waypoint)
                else { continue }
                index.ports[pod, default: [:]][endpoint.address.port, default: []].append(waypoint)
            }
        }
        return index
    }
}
