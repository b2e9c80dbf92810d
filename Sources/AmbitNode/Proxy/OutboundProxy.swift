import AmbitCapture
import AmbitConfig
import AmbitHBONE
import AmbitIdentity
import AmbitModel
import AmbitRelay
import AmbitTelemetry
import NIOCore

/// The node agent's outbound side: a connection a pod's application made, captured on the pod's
/// port 15001, goes where ``OutboundRouter`` says: over HBONE with the pod's identity (to the
/// destination pod or its waypoint), as plain TCP to a destination outside the mesh, or nowhere.
struct OutboundProxy: Sendable {
    let inputs: ProxyInputs

    /// A connection accepted on `pod`'s outbound listener (autoRead off, relay handler in place).
    func accept(_ channel: any Channel, from pod: CapturedPod) {
        OriginalDestination.read(channel).whenComplete { result in
            switch result {
            case .failure(let error):
                // Nothing is known about where it was going: no connection to record, only the socket to end.
                inputs.logger.warning(
                    "outbound connection dropped",
                    metadata: ["pod": "\(pod.record.displayName)", "error": "\(error)"]
                )
                RelaySockets.reset(channel)
            case .success(let destination):
                forward(channel, from: pod, to: destination)
            }
        }
    }

    private func forward(_ channel: any Channel, from pod: CapturedPod, to destination: IPEndpoint) {
        let snapshot = inputs.store.snapshot
        let source = (channel.remoteAddress ?? channel.localAddress).flatMap(IPEndpoint.init(socketAddress:))
        let connection = ProxiedConnection(
            .outbound,
            pod: pod.record,
            source: source,
            destination: destination,
            labels: TrafficLabels(reporter: .source),
            downstream: channel,
            tracker: inputs.connections,
            telemetry: inputs.telemetry
        )
        // The source identity comes from which pod's listener accepted, never from the packet.
        guard let sourceWorkload = snapshot.workload(for: pod.record.key) else {
            let error = NodeAgentError.unknownSourcePod(pod.record.displayName)
            inputs.logger.warning("\(error)")
            connection.refuse(TrafficLabels(reporter: .source), flag: .connectFailure, reason: "\(error)")
            return
        }
        var labels = TrafficLabels(
            reporter: .source,
            sourceWorkload: sourceWorkload.name,
            sourceWorkloadNamespace: sourceWorkload.namespace,
            sourcePrincipal: sourceWorkload.identity
        )
        switch OutboundRouter.route(to: destination, in: snapshot) {
        case .unavailable(let what):
            connection.refuse(labels, flag: .connectFailure, reason: "\(NodeAgentError.noHealthyEndpoint(what))")

        case .passthrough(let target, let workload, let service):
            labels.destinationWorkload = workload?.name ?? TrafficLabels.unknown
            labels.destinationWorkloadNamespace = workload?.namespace ?? TrafficLabels.unknown
            labels.destinationService = service ?? TrafficLabels.unknown
            connection.admit(labels)
            connection.relay(
                TCPPassthrough.relay(
                    downstream: channel,
                    to: target,
                    from: pod.addresses.first { $0.isIPv4 == target.address.isIPv4 },
                    dialer: inputs.sourcePodDialer
                )
            )

        case .hbone(let nextHop, let authority, let workload, let service):
            labels.destinationWorkload = workload.name
            labels.destinationWorkloadNamespace = workload.namespace
            labels.destinationPrincipal = workload.identity
            labels.destinationService = service ?? TrafficLabels.unknown
            labels.connectionSecurityPolicy = .mutualTLS
            connection.admit(labels, hboneAddress: authority)
            tunnel(channel, connection, source: sourceWorkload, to: (nextHop, authority, workload.identity, service))

        case .waypoint(let nextHop, let authority, let waypoint, let service):
            // The destination's workload is the waypoint's to choose; its identity is what we verify.
            labels.destinationPrincipal = waypoint.identity
            labels.destinationService = service ?? TrafficLabels.unknown
            labels.connectionSecurityPolicy = .mutualTLS
            connection.admit(labels, hboneAddress: authority)
            tunnel(channel, connection, source: sourceWorkload, to: (nextHop, authority, waypoint.identity, service))
        }
    }

    /// Carries a captured connection over HBONE with the source pod's identity.
    private func tunnel(
        _ channel: any Channel,
        _ connection: ProxiedConnection,
        source: Workload,
        to target: (nextHop: IPEndpoint, authority: IPEndpoint, identity: SpiffeID, service: String?)
    ) {
        let pod = connection.pod
        let headers = HBONEHeaders(
            forwardedFor: connection.source,
            forwardedHost: target.service,
            baggage: HBONEHeaders.baggage(
                namespace: source.namespace,
                workload: source.name,
                kind: "pod",
                service: source.pod.metadata.labels["app"],
                version: source.pod.metadata.labels["version"]
            ),
            traceparent: HBONEHeaders.newTraceparent()
        )
        let certificate = channel.eventLoop.makePromise(of: WorkloadCertificate.self)
        let certificates = inputs.certificates
        certificate.completeWithTask { try await certificates.certificate(for: source.identity) }
        let client = inputs.client
        connection.relay(
            certificate.futureResult.flatMap { certificate in
                client.tunnel(
                    downstream: channel,
                    request: HBONETunnelRequest(
                        sourceCertificate: certificate,
                        destinationIdentities: [target.identity],
                        nextHop: target.nextHop,
                        authority: target.authority,
                        sourceAddress: pod.addresses.first { $0.isIPv4 == target.nextHop.address.isIPv4 },
                        headers: headers
                    )
                ).finished
            }
        )
    }
}
