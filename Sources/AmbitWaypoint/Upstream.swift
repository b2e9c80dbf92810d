import AmbitConfig
import AmbitHBONE
import AmbitIdentity
import AmbitModel
import AmbitPolicy
import AmbitRelay
import AmbitTelemetry
import Logging
import NIOCore

/// One endpoint chosen for a request or a TCP tunnel.
struct ChosenEndpoint: Sendable {
    /// `<pod IP>:<target port>`: the CONNECT authority at the endpoint's node agent.
    let address: IPEndpoint
    let workload: Workload?
    /// `name.namespace.svc.<domain>` when the traffic was addressed to a service.
    let serviceName: String?
}

enum UpstreamError: Error, CustomStringConvertible {
    case noHealthyEndpoint(String)
    case notInMesh(String)

    var description: String {
        switch self {
        case .noHealthyEndpoint(let what): return "no healthy endpoint for \(what)"
        case .notInMesh(let what): return "\(what) is not in the mesh (a waypoint only forwards over HBONE)"
        }
    }
}

extension Waypoint {
    /// Picks a healthy endpoint of a backend at random (every request, so weights and load
    /// spread evenly over pods).
    func chooseEndpoint(
        _ backend: ForwardPlan.Backend,
        snapshot: ConfigSnapshot,
        avoiding tried: Set<IPEndpoint> = []
    ) throws -> ChosenEndpoint {
        switch backend {
        case .service(let binding):
            let name = "\(binding.service.name).\(binding.service.namespace).svc.\(snapshot.options.clusterDomain)"
            // A retry goes to an endpoint not tried yet when there is one (Istio's default `previous_hosts`).
            let untried = binding.healthyEndpoints.filter { !tried.contains($0.address) }
            var random = FastRandom()
            guard let endpoint = (untried.isEmpty ? binding.healthyEndpoints : untried).randomElement(using: &random)
            else {
                throw UpstreamError.noHealthyEndpoint(
                    "service \(binding.service.namespacedName) port \(binding.port.port)"
                )
            }
            return ChosenEndpoint(
                address: endpoint.address,
                workload: endpoint.pod.flatMap { snapshot.workload(for: $0) },
                serviceName: name
            )
        case .workload(let workload, let port):
            guard let address = workload.pod.podIPs.first else {
                throw UpstreamError.noHealthyEndpoint("pod \(workload.key.namespacedName)")
            }
            return ChosenEndpoint(address: IPEndpoint(address, port), workload: workload, serviceName: nil)
        }
    }

    /// Opens an HBONE stream from the waypoint's identity to the endpoint's node agent, on
    /// `eventLoop` (the downstream's, so both ends of the request share a thread).
    func openUpstream(
        to endpoint: ChosenEndpoint,
        tunnel: TunnelContext,
        traceparent: String?,
        on eventLoop: any EventLoop
    ) -> EventLoopFuture<any Channel> {
        if tunnel.toLocalApplication {
            // A sidecar's inbound request: the application listens in the same network namespace.
            return localDialer.connect(
                to: IPEndpoint(.v4(0x7F00_0001), endpoint.address.port),
                from: nil,
                on: eventLoop,
                prepare: nil
            ).flatMap { channel in
                // Read as an HTTP upstream does (a relay turns it off again for opaque TCP).
                channel.setOption(ChannelOptions.autoRead, value: true).map { channel }
            }
        }
        guard let workload = endpoint.workload, workload.enrollment.isEnrolled else {
            return eventLoop.makeFailedFuture(UpstreamError.notInMesh("endpoint \(endpoint.address)"))
        }
        let certificate = eventLoop.makePromise(of: WorkloadCertificate.self)
        let provider = self.certificate
        certificate.completeWithTask { try await provider() }
        let client = self.client
        return certificate.futureResult.flatMap { certificate in
            client.openStream(
                HBONETunnelRequest(
                    sourceCertificate: certificate,
                    destinationIdentities: [workload.identity],
                    nextHop: IPEndpoint(endpoint.address.address, MeshPorts.hbone),
                    authority: endpoint.address,
                    headers: HBONEHeaders(
                        forwardedFor: IPEndpoint(tunnel.peerAddress, 0),
                        forwardedHost: endpoint.serviceName,
                        traceparent: traceparent ?? tunnel.traceparent
                    )
                ),
                on: eventLoop
            )
        }
    }
}

/// Opaque TCP inside a tunnel: L4 authorization (L7-only rules fail closed), then a relay to
/// one endpoint over a new HBONE tunnel.
enum TCPForwarding {
    static func start(_ channel: any Channel, tunnel: TunnelContext) throws {
        try StreamRelay.prepare(channel)
        let waypoint = tunnel.waypoint
        let state = waypoint.state
        let destination = labelsAndRequest(tunnel: tunnel, snapshot: state.snapshot)
        // Authorized where the traffic arrives: a sidecar's outbound side leaves it to the destination.
        let decision =
            tunnel.direction == .outbound
            ? AuthorizationDecision.allowedWithoutPolicy
            : state.tcpAuthorization.evaluate(destination.request, service: tunnel.target.serviceKey)
        decision.logObservations(
            to: waypoint.logger,
            ["authority": "\(tunnel.authority)", "src.identity": "\(tunnel.peerIdentity)"]
        )
        // A CUSTOM policy selecting the connection cannot be checked (ext_authz sees HTTP requests): refused.
        let authorizers =
            tunnel.direction == .outbound
            ? []
            : state.tcpAuthorization.externalAuthorizers(for: destination.request, service: tunnel.target.serviceKey)
        guard decision.isAllowed, authorizers.isEmpty else {
            let reason =
                decision.isAllowed
                ? "CUSTOM policies (authorizer \(authorizers.joined(separator: ", "))) select this connection, and "
                    + "opaque TCP cannot be sent to an external authorizer" : decision.reason
            waypoint.logger.info(
                "waypoint TCP connection denied",
                metadata: ["authority": "\(tunnel.authority)", "reason": "\(reason)"]
            )
            channel.close(promise: nil)
            return
        }
        let backend: ForwardPlan.Backend
        switch tunnel.target {
        case .service(let binding): backend = .service(binding)
        case .workload(let workload, let port): backend = .workload(workload, port: port)
        }
        let endpoint: ChosenEndpoint
        do {
            endpoint = try waypoint.chooseEndpoint(backend, snapshot: state.snapshot)
        } catch {
            waypoint.logger.info("waypoint TCP connection refused", metadata: ["error": "\(error)"])
            channel.close(promise: nil)
            return
        }
        let started = ContinuousClock.now
        waypoint.openUpstream(to: endpoint, tunnel: tunnel, traceparent: nil, on: channel.eventLoop)
            .flatMapThrowing { upstream in
                try StreamRelay.join(channel, upstream).whenSuccess { summary in
                    waypoint.accessLog.record(
                        AccessLogEntry(
                            direction: tunnel.reporter,
                            source: .init(address: tunnel.peerAddress.description, identity: tunnel.peerIdentity),
                            destination: .init(
                                address: endpoint.address.description,
                                workload: endpoint.workload?.name,
                                namespace: endpoint.workload?.namespace,
                                identity: endpoint.workload?.identity
                            ),
                            hboneAddress: tunnel.authority,
                            service: endpoint.serviceName,
                            requestBytes: summary.requestBytes,
                            responseBytes: summary.responseBytes,
                            duration: ContinuousClock.now - started,
                            responseFlags: .none,
                            error: summary.error
                        )
                    )
                }
            }
            .whenFailure { error in
                waypoint.logger.info("waypoint TCP upstream failed", metadata: ["error": "\(error)"])
                channel.close(promise: nil)
            }
    }

    static func labelsAndRequest(tunnel: TunnelContext, snapshot: ConfigSnapshot) -> (
        request: AuthorizationRequest, namespace: String
    ) {
        let namespace: String
        let labels: [String: String]
        switch tunnel.target {
        case .service(let binding):
            namespace = binding.service.namespace
            labels = snapshot.services[binding.service]?.metadata.labels ?? [:]
        case .workload(let workload, _):
            namespace = workload.namespace
            labels = workload.pod.metadata.labels
        }
        return (
            AuthorizationRequest(
                destinationNamespace: namespace,
                destinationLabels: labels,
                sourceIdentity: tunnel.peerIdentity,
                sourceAddress: tunnel.peerAddress,
                destinationAddress: tunnel.authority.address,
                destinationPort: tunnel.authority.port
            ),
            namespace
        )
    }
}

extension Duration {
    /// Whole and fractional milliseconds.
    var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}
