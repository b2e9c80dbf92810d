public import AmbitModel
public import AmbitPolicy
import Synchronization

/// An immutable, fully indexed view of every object the config store holds.
///
/// A new snapshot is built for each change and swapped in whole, so the data path reads one
/// consistent state without locks. Every lookup the data path makes is a dictionary access:
/// workload by IP, service by VIP:port (endpoints precomputed), identity, enrollment, waypoint.
public final class ConfigSnapshot: Sendable {
    /// Increases with every applied change; 0 is the empty snapshot.
    public let version: UInt64
    public let options: ConfigOptions

    public let namespaces: [String: Namespace]
    public let serviceAccounts: [ObjectKey: ServiceAccount]
    public let pods: [ObjectKey: Pod]
    public let services: [ObjectKey: Service]
    public let authorizationPolicies: [ObjectKey: AuthorizationPolicy]
    public let peerAuthentications: [ObjectKey: PeerAuthentication]
    public let gateways: [ObjectKey: Gateway]
    public let httpRoutes: [ObjectKey: HTTPRoute]
    public let virtualServices: [ObjectKey: VirtualService]
    public let endpointSlices: [ObjectKey: EndpointSlice]
    public let gatewayClasses: [String: GatewayClass]

    /// Problems found while indexing (address conflicts, policies not enforceable here, missing
    /// waypoints): the objects are valid on their own but do not fit together.
    public let warnings: [String]

    /// Compiled L4 authorization policies.
    public let authorization: AuthorizationEngine

    let workloadsByIP: [IPAddress: Workload]
    /// Pod keys per node, sorted, for the node agent's view of its own pods.
    let podsByNode: [String: [ObjectKey]]
    let servicesByAddress: [IPEndpoint: ServiceBinding]
    let servicesByHostname: [String: ObjectKey]
    let waypointResolver: WaypointResolver
    let peerAuthenticationIndex: PeerAuthenticationIndex
    /// Built on first use: which waypoints guard a pod's target ports (see ``waypointsGuarding(pod:port:)``).
    let waypointGuards = Mutex<WaypointGuardIndex?>(nil)
    /// Built on first use: the services whose endpoints a pod's target port is (see ``service(of:port:)``).
    let servicesByEndpoint = Mutex<[ObjectKey: [UInt16: ObjectKey]]?>(nil)

    /// The empty snapshot.
    public convenience init(options: ConfigOptions = ConfigOptions()) {
        self.init(objects: [], options: options, version: 0)
    }

    public init(objects: some Sequence<ManifestObject>, options: ConfigOptions, version: UInt64) {
        var namespaces: [String: Namespace] = [:]
        var serviceAccounts: [ObjectKey: ServiceAccount] = [:]
        var pods: [ObjectKey: Pod] = [:]
        var services: [ObjectKey: Service] = [:]
        var authorizationPolicies: [ObjectKey: AuthorizationPolicy] = [:]
        var peerAuthentications: [ObjectKey: PeerAuthentication] = [:]
        var gateways: [ObjectKey: Gateway] = [:]
        var httpRoutes: [ObjectKey: HTTPRoute] = [:]
        var virtualServices: [ObjectKey: VirtualService] = [:]
        var endpointSlices: [ObjectKey: EndpointSlice] = [:]
        var gatewayClasses: [String: GatewayClass] = [:]
        for object in objects {
            switch object {
            case .namespace(let namespace): namespaces[namespace.metadata.name] = namespace
            case .serviceAccount(let account): serviceAccounts[account.key] = account
            case .pod(let pod): pods[pod.key] = pod
            case .service(let service): services[service.key] = service
            case .authorizationPolicy(let policy): authorizationPolicies[policy.key] = policy
            case .peerAuthentication(let policy): peerAuthentications[policy.key] = policy
            case .gateway(let gateway): gateways[gateway.key] = gateway
            case .httpRoute(let route): httpRoutes[route.key] = route
            case .virtualService(let service): virtualServices[service.key] = service
            case .endpointSlice(let slice): endpointSlices[slice.key] = slice
            case .gatewayClass(let gatewayClass): gatewayClasses[gatewayClass.metadata.name] = gatewayClass
            }
        }
        self.version = version
        self.options = options
        self.namespaces = namespaces
        self.serviceAccounts = serviceAccounts
        self.pods = pods
        self.services = services
        self.authorizationPolicies = authorizationPolicies
        self.peerAuthentications = peerAuthentications
        self.gateways = gateways
        self.httpRoutes = httpRoutes
        self.virtualServices = virtualServices
        self.endpointSlices = endpointSlices
        self.gatewayClasses = gatewayClasses

        var warnings: [String] = []
        var workloadsByIP: [IPAddress: Workload] = [:]
        var podsByNode: [String: [ObjectKey]] = [:]
        // Sorted so that conflicts resolve the same way every time.
        for key in pods.keys.sorted() {
            let pod = pods[key]!
            if let node = pod.nodeName { podsByNode[node, default: []].append(key) }
            guard !pod.hostNetwork else { continue }  // host-network pods share the node's address
            let workload = Workload(
                pod: pod,
                identity: Self.identity(of: pod, trustDomain: options.trustDomain),
                enrollment: Self.enrollment(of: pod, namespace: namespaces[pod.metadata.namespace])
            )
            for address in pod.podIPs {
                if let existing = workloadsByIP[address] {
                    // A finished pod's address may be reused by a new one: the live pod wins.
                    let keepNew = pod.isHealthy && !existing.pod.isHealthy
                    let winner = keepNew ? key : existing.key
                    warnings.append("address \(address) is claimed by \(existing.key) and \(key); using \(winner)")
                    if keepNew { workloadsByIP[address] = workload }
                } else {
                    workloadsByIP[address] = workload
                }
            }
        }
        self.workloadsByIP = workloadsByIP
        self.podsByNode = podsByNode

        let podIndex = PodLabelIndex(pods: pods.values)
        var slicesByService: [ObjectKey: [EndpointSlice]] = [:]
        for key in endpointSlices.keys.sorted() {
            let slice = endpointSlices[key]!
            guard let service = slice.service else {
                warnings.append("\(key) has no \(EndpointSlice.serviceNameLabel) label; its endpoints are unused")
                continue
            }
            guard services[service] != nil else {
                warnings.append("\(key) belongs to \(service), which does not exist; its endpoints are unused")
                continue
            }
            slicesByService[service, default: []].append(slice)
        }
        var servicesByAddress: [IPEndpoint: ServiceBinding] = [:]
        var servicesByHostname: [String: ObjectKey] = [:]
        for key in services.keys.sorted() {
            let service = services[key]!
            servicesByHostname[service.hostname(clusterDomain: options.clusterDomain)] = key
            let selected = service.selector.map { podIndex.pods(in: key.namespace, matching: $0) } ?? []
            for port in service.ports where port.transport == .tcp {
                // As Istio's ambient index does: a Service with a selector gets its endpoints from the pods it
                // selects; one without, from its EndpointSlices.
                let endpoints =
                    service.selector == nil
                    ? Self.endpoints(of: slicesByService[key] ?? [], port: port)
                    : Self.endpoints(of: selected, targetPort: port.targetPort)
                let binding = ServiceBinding(service: key, port: port, endpoints: endpoints)
                for address in service.clusterIPs {
                    let endpoint = IPEndpoint(address, port.port)
                    if let existing = servicesByAddress[endpoint] {
                        warnings.append(
                            "\(endpoint) is claimed by \(existing.service) and \(key); using \(existing.service)"
                        )
                    } else {
                        servicesByAddress[endpoint] = binding
                    }
                }
            }
        }
        self.servicesByAddress = servicesByAddress
        self.servicesByHostname = servicesByHostname

        let waypointResolver = WaypointResolver(
            namespaces: namespaces,
            services: services,
            pods: pods,
            gateways: gateways,
            gatewayClasses: gatewayClasses,
            trustDomain: options.trustDomain
        )
        self.waypointResolver = waypointResolver
        warnings += waypointResolver.warnings + waypointResolver.bindingWarnings()
        self.peerAuthenticationIndex = PeerAuthenticationIndex(
            policies: peerAuthentications.values,
            rootNamespace: options.rootNamespace
        )

        let engine = AuthorizationEngine(
            policies: authorizationPolicies.values,
            rootNamespace: options.rootNamespace
        )
        warnings += engine.warnings
        self.authorization = engine
        self.warnings = warnings
    }

    // MARK: Lookups used by the data path.

    /// The workload that owns `address`, if any.
    public func workload(at address: IPAddress) -> Workload? {
        workloadsByIP[address]
    }

    /// The workload for a pod key, if the pod exists and is not on the host network.
    public func workload(for key: ObjectKey) -> Workload? {
        guard let pod = pods[key], !pod.hostNetwork else { return nil }
        return Workload(
            pod: pod,
            identity: Self.identity(of: pod, trustDomain: options.trustDomain),
            enrollment: Self.enrollment(of: pod, namespace: namespaces[pod.metadata.namespace])
        )
    }

    /// The service port reachable at a VIP:port, with its endpoints.
    public func service(at endpoint: IPEndpoint) -> ServiceBinding? {
        servicesByAddress[endpoint]
    }

    /// The service a connection to `pod` on `port` most likely came through, when nothing says (ztunnel's
    /// guess for inbound telemetry): the first service, by name, whose endpoints include that pod and port.
    public func service(of pod: ObjectKey, port: UInt16) -> Service? {
        let index = servicesByEndpoint.withLock { cached in
            if let cached { return cached }
            var built: [ObjectKey: [UInt16: ObjectKey]] = [:]
            for binding in servicesByAddress.values.sorted(by: { $0.service < $1.service }) {
                for endpoint in binding.endpoints {
                    guard let owner = endpoint.pod, built[owner]?[endpoint.address.port] == nil else { continue }
                    built[owner, default: [:]][endpoint.address.port] = binding.service
                }
            }
            cached = built
            return built
        }
        return index[pod]?[port].flatMap { services[$0] }
    }

    /// The service with host name `name.namespace.svc.<cluster domain>`.
    public func service(hostname: String) -> Service? {
        servicesByHostname[hostname].flatMap { services[$0] }
    }

    /// All workloads on a node, sorted by key (the node agent's view of its own pods).
    public func pods(onNode node: String) -> [Pod] {
        (podsByNode[node] ?? []).compactMap { pods[$0] }
    }

    public func workloads(onNode node: String) -> [Workload] {
        (podsByNode[node] ?? []).compactMap { workload(for: $0) }
    }

    // MARK: Derived facts.

    /// `spiffe://<trust domain>/ns/<namespace>/sa/<service account>` of a pod.
    public static func identity(of pod: Pod, trustDomain: String) -> SpiffeID {
        // Names were validated when the manifest was read, so they are valid SPIFFE segments;
        // the trust domain was validated when the options were made.
        do {
            return try SpiffeID(
                trustDomain: trustDomain,
                namespace: pod.metadata.namespace,
                serviceAccount: pod.serviceAccountName
            )
        } catch {
            preconditionFailure("validated names do not form a SPIFFE ID: \(error)")
        }
    }

    /// Istio's enrollment rules: host-network and sidecar-injected pods never; otherwise a pod
    /// label `ambient` or `none` decides, else the namespace label.
    public static func enrollment(of pod: Pod, namespace: Namespace?) -> Enrollment {
        Enrollment(
            podLabels: pod.metadata.labels,
            podAnnotations: pod.metadata.annotations,
            hostNetwork: pod.hostNetwork,
            namespaceLabels: namespace?.metadata.labels ?? [:]
        )
    }

    /// A selector-less Service's endpoints for `port`: the slices' addresses on the slice port of the same
    /// name. An endpoint whose `targetRef` is a Pod is that pod; any other is outside the mesh (plain TCP).
    private static func endpoints(of slices: [EndpointSlice], port: ServicePort) -> [ServiceEndpoint] {
        var result: [ServiceEndpoint] = []
        for slice in slices where slice.addressType != .fqdn {
            guard let slicePort = slice.port(for: port), let number = slicePort.port else { continue }
            for endpoint in slice.endpoints {
                for address in endpoint.addresses {
                    result.append(
                        ServiceEndpoint(
                            pod: endpoint.pod,
                            address: IPEndpoint(address, number),
                            healthy: endpoint.isReady
                        )
                    )
                }
            }
        }
        return result.sorted { $0.address < $1.address }
    }

    private static func endpoints(of pods: [Pod], targetPort: TargetPort) -> [ServiceEndpoint] {
        var result: [ServiceEndpoint] = []
        for pod in pods where !pod.hostNetwork {
            let port: UInt16?
            switch targetPort {
            case .number(let number): port = number
            case .name(let name): port = pod.port(named: name)
            }
            guard let port else { continue }  // the pod does not declare the named port
            for address in pod.podIPs {
                result.append(ServiceEndpoint(pod: pod.key, address: IPEndpoint(address, port), healthy: pod.isHealthy))
            }
        }
        return result.sorted { $0.address < $1.address }
    }
}

/// Pods indexed by namespace and by each `label=value`, so a selector only scans the pods that
/// carry the rarest of its labels instead of the whole namespace.
struct PodLabelIndex {
    private var byNamespace: [String: [Pod]] = [:]
    private var byLabel: [LabelKey: [Pod]] = [:]

    private struct LabelKey: Hashable {
        let namespace: String
        let label: String
        let value: String
    }

    init(pods: some Sequence<Pod>) {
        for pod in pods {
            byNamespace[pod.metadata.namespace, default: []].append(pod)
            for (label, value) in pod.metadata.labels {
                byLabel[LabelKey(namespace: pod.metadata.namespace, label: label, value: value), default: []].append(
                    pod
                )
            }
        }
    }

    func pods(in namespace: String, matching selector: LabelSelector) -> [Pod] {
        guard !selector.isEmpty else { return byNamespace[namespace] ?? [] }
        var smallest: [Pod]?
        for (label, value) in selector.matchLabels {
            let candidates = byLabel[LabelKey(namespace: namespace, label: label, value: value)] ?? []
            if smallest == nil || candidates.count < smallest!.count { smallest = candidates }
        }
        return (smallest ?? []).filter { selector.matches($0.metadata.labels) }
    }
}
