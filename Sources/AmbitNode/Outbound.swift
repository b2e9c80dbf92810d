import AmbitCapture
import AmbitConfig
import AmbitHBONE
import AmbitIdentity
import AmbitModel
import AmbitPolicy
import AmbitRelay
import AmbitTelemetry
import Foundation
import Logging
import NIOCore

/// Where the agent sends a connection captured on a pod's port 15001.
enum OutboundRoute: Equatable {
    /// To a mesh workload over HBONE: dial `nextHop` (`<pod IP>:15008`), CONNECT to `authority`.
    case hbone(nextHop: IPEndpoint, authority: IPEndpoint, destination: Workload, service: String?)
    /// Outside the mesh (or a pod that is not enrolled): plain TCP from the pod's namespace.
    case passthrough(IPEndpoint, destination: Workload?, service: String?)
    /// To the waypoint that serves the destination, over HBONE: dial `nextHop`
    /// (`<waypoint IP>:15008`), CONNECT to the original destination.
    case waypoint(nextHop: IPEndpoint, authority: IPEndpoint, waypoint: WaypointBinding, service: String?)
    /// A service with no healthy endpoint, or a waypoint that is asked for but unusable: refused
    /// (never sent around the waypoint).
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
        pick: ([ServiceEndpoint]) -> ServiceEndpoint? = { $0.randomElement() }
    ) -> OutboundRoute {
        if let binding = snapshot.service(at: destination) {
            let serviceName =
                "\(binding.service.name).\(binding.service.namespace).svc.\(snapshot.options.clusterDomain)"
            if let route = through(
                snapshot.waypoint(forService: binding.service),
                to: destination,
                service: serviceName,
                refusing: "service \(binding.service.namespacedName)"
            ) {
                return route
            }
            guard let endpoint = pick(binding.healthyEndpoints) else {
                return .unavailable(
                    "service \(binding.service.namespace)/\(binding.service.name) port \(destination.port)"
                )
            }
            // The chosen endpoint's own waypoint (its service account's, or its pod's or namespace's
            // `istio.io/use-waypoint`): the endpoint accepts only that waypoint, so service-addressed
            // traffic goes there too, with the endpoint as the authority.
            if let route = through(
                snapshot.waypoint(forWorkload: endpoint.pod),
                to: endpoint.address,
                service: serviceName,
                refusing: "pod \(endpoint.pod.namespacedName) behind service \(binding.service.namespacedName)"
            ) {
                return route
            }
            let workload = snapshot.workload(for: endpoint.pod)
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
                service: nil,
                refusing: "pod \(workload.key.namespacedName)"
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

    /// Through `resolution`'s waypoint; refused (naming `subject`) when the waypoint is asked for
    /// but unusable; `nil` when there is none.
    private static func through(
        _ resolution: WaypointResolution,
        to destination: IPEndpoint,
        service: String?,
        refusing subject: @autoclosure () -> String
    ) -> OutboundRoute? {
        switch resolution {
        case .waypoint(let waypoint): return toWaypoint(waypoint, destination: destination, service: service)
        case .unresolved(let reason): return .unavailable("\(subject()): \(reason)")
        case .none: return nil
        }
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

extension NodeAgent {
    /// A connection accepted on `pod`'s outbound listener (15001).
    func handleOutbound(_ channel: any Channel, from pod: CapturedPod) {
        OriginalDestination.read(channel).whenComplete { result in
            switch result {
            case .failure(let error):
                self.logger.warning(
                    "outbound connection dropped",
                    metadata: ["pod": "\(pod.record.displayName)", "error": "\(error)"]
                )
                RelaySockets.reset(channel)
            case .success(let destination):
                self.forwardOutbound(channel, from: pod, to: destination)
            }
        }
    }

    private func forwardOutbound(_ channel: any Channel, from pod: CapturedPod, to destination: IPEndpoint) {
        let snapshot = store.snapshot
        let source = IPEndpoint(socketAddress: channel.remoteAddress ?? channel.localAddress!)
        // The source identity comes from which pod's listener accepted, never from the packet.
        guard let sourceWorkload = snapshot.workload(for: pod.record.key) else {
            logger.warning("\(NodeAgentError.unknownSourcePod(pod.record.displayName))")
            telemetry.rejected(
                direction: .outbound,
                labels: TrafficLabels(reporter: .source),
                source: source,
                destination: destination,
                flag: "CONNECT",
                reason: "\(NodeAgentError.unknownSourcePod(pod.record.displayName))"
            )
            RelaySockets.reset(channel)
            return
        }
        let route = OutboundRouter.route(to: destination, in: snapshot)
        var labels = TrafficLabels(
            reporter: .source,
            sourceWorkload: sourceWorkload.name,
            sourceWorkloadNamespace: sourceWorkload.namespace,
            sourcePrincipal: sourceWorkload.identity
        )
        switch route {
        case .unavailable(let what):
            telemetry.rejected(
                direction: .outbound,
                labels: labels,
                source: source,
                destination: destination,
                flag: "CONNECT",
                reason: "\(NodeAgentError.noHealthyEndpoint(what))"
            )
            RelaySockets.reset(channel)

        case .passthrough(let target, let workload, let service):
            labels.destinationWorkload = workload?.name ?? TrafficLabels.unknown
            labels.destinationWorkloadNamespace = workload?.namespace ?? TrafficLabels.unknown
            labels.destinationService = service ?? TrafficLabels.unknown
            let connection = track(.outbound, pod: pod, source: source, destination: target, labels: labels)
            let dialer = NetnsDialer(
                registry: registry,
                executor: executor,
                placement: .sourcePod,
                timeout: .seconds(10)
            )
            TCPPassthrough.relay(
                downstream: channel,
                to: target,
                from: pod.addresses.first { $0.isIPv4 == target.address.isIPv4 },
                dialer: dialer
            ) { summary in
                self.untrack(connection, pod: pod, summary: summary)
            }.whenFailure { error in
                self.connectFailed(connection, pod: pod, error: error)
            }

        case .hbone(let nextHop, let authority, let workload, let service):
            labels.destinationWorkload = workload.name
            labels.destinationWorkloadNamespace = workload.namespace
            labels.destinationPrincipal = workload.identity.uri
            labels.destinationService = service ?? TrafficLabels.unknown
            labels.connectionSecurityPolicy = .mutualTLS
            tunnel(
                channel,
                from: pod,
                source: (source, sourceWorkload),
                to: (nextHop, authority, workload.identity, service),
                labels: labels
            )

        case .waypoint(let nextHop, let authority, let waypoint, let service):
            // The destination's workload is the waypoint's to choose; its identity is what we verify.
            labels.destinationPrincipal = waypoint.identity.uri
            labels.destinationService = service ?? TrafficLabels.unknown
            labels.connectionSecurityPolicy = .mutualTLS
            tunnel(
                channel,
                from: pod,
                source: (source, sourceWorkload),
                to: (nextHop, authority, waypoint.identity, service),
                labels: labels
            )
        }
    }

    /// Carries a captured connection over HBONE with the source pod's identity.
    private func tunnel(
        _ channel: any Channel,
        from pod: CapturedPod,
        source: (endpoint: IPEndpoint?, workload: Workload),
        to target: (nextHop: IPEndpoint, authority: IPEndpoint, identity: SpiffeID, service: String?),
        labels: TrafficLabels
    ) {
        let (nextHop, authority) = (target.nextHop, target.authority)
        let sourceWorkload = source.workload
        let connection = track(.outbound, pod: pod, source: source.endpoint, destination: authority, labels: labels)
        let sourceAddress = pod.addresses.first { $0.isIPv4 == nextHop.address.isIPv4 }
        let certificate = channel.eventLoop.makePromise(of: WorkloadCertificate.self)
        let certificates = self.certificates
        certificate.completeWithTask { try await certificates.certificate(for: sourceWorkload.identity) }
        let headers = HBONEHeaders(
            forwardedFor: source.endpoint,
            forwardedHost: target.service,
            baggage: HBONEHeaders.baggage(
                namespace: sourceWorkload.namespace,
                workload: sourceWorkload.name,
                kind: "pod",
                service: sourceWorkload.pod.metadata.labels["app"],
                version: sourceWorkload.pod.metadata.labels["version"]
            ),
            traceparent: HBONEHeaders.newTraceparent()
        )
        certificate.futureResult.flatMap { certificate in
            self.client.tunnel(
                downstream: channel,
                request: HBONETunnelRequest(
                    sourceCertificate: certificate,
                    destinationIdentities: [target.identity],
                    nextHop: nextHop,
                    authority: authority,
                    sourceAddress: sourceAddress,
                    headers: headers,
                    onFinished: { summary in self.untrack(connection, pod: pod, summary: summary) }
                )
            )
        }.whenFailure { error in
            RelaySockets.reset(channel)
            self.logger.debug("outbound tunnel failed", metadata: ["to": "\(authority)", "error": "\(error)"])
            self.connectFailed(connection, pod: pod, error: error)
        }
    }

    func track(
        _ direction: TrackedConnection.Direction,
        pod: CapturedPod,
        source: IPEndpoint?,
        destination: IPEndpoint,
        labels: TrafficLabels,
        authorization: AuthorizationRequest? = nil
    ) -> TrackedConnection {
        let connection = TrackedConnection(
            id: telemetry.makeID(),
            direction: direction,
            source: source,
            destination: destination,
            labels: labels,
            authorization: authorization
        )
        pod.connections.insert(connection)
        telemetry.opened(connection)
        return connection
    }

    /// Ends a tracked connection once (the relay's summary and a failure may both report).
    func untrack(
        _ connection: TrackedConnection,
        pod: CapturedPod,
        summary: RelaySummary,
        responseFlags: String? = nil
    ) {
        guard pod.connections.removeIfPresent(connection.id) else { return }
        telemetry.finished(connection, summary: summary, responseFlags: responseFlags)
    }

    /// Ends a tracked connection whose upstream (tunnel or socket) never came up: counted with
    /// `response_flags="CONNECT"`; the downstream has been reset.
    func connectFailed(_ connection: TrackedConnection, pod: CapturedPod, error: any Error) {
        untrack(
            connection,
            pod: pod,
            summary: RelaySummary(requestBytes: 0, responseBytes: 0, error: "\(error)"),
            responseFlags: "CONNECT"
        )
    }
}
