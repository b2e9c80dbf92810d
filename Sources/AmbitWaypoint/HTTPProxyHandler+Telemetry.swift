import AmbitTelemetry
import NIOHTTP1

/// How one request went, for its metrics and its access-log line.
struct RequestOutcome {
    let head: HTTPRequestHead
    let status: Int
    let flag: ResponseFlag
    let started: ContinuousClock.Instant
    let requestBytes: Int
    let responseBytes: Int
    let endpoint: ChosenEndpoint?
    let route: String
    let grpc: Bool
}

extension HTTPProxyHandler {
    /// Istio's request metrics and the shared access-log line (``AccessLogEntry``) for a request.
    func record(_ outcome: RequestOutcome) {
        let waypoint = tunnel.waypoint
        let snapshot = waypoint.state.snapshot
        let source = snapshot.workload(at: tunnel.peerAddress)
        let cluster = snapshot.options.clusterID
        var service = TrafficLabels.Service.unknown
        if case .service(let binding) = tunnel.target {
            service = .init(
                hostname: "\(binding.service.name).\(binding.service.namespace).svc.\(snapshot.options.clusterDomain)",
                name: binding.service.name,
                namespace: binding.service.namespace
            )
        }
        let destination = outcome.endpoint?.workload
        let labels = TrafficLabels(
            reporter: tunnel.reporter,
            source: source.map { .init($0.pod, principal: tunnel.peerIdentity, cluster: cluster) }
                ?? .init(principal: tunnel.peerIdentity),
            destination: destination.map { .init($0.pod, principal: $0.identity, cluster: cluster) } ?? .unknown,
            service: service,
            requestProtocol: outcome.grpc ? "grpc" : "http",
            responseFlags: outcome.flag,
            connectionSecurityPolicy: .mutualTLS
        )
        let serviceName: String? = service == .unknown ? nil : service.hostname
        let duration = ContinuousClock.now - outcome.started
        waypoint.metrics.http.record(
            labels,
            responseCode: outcome.status,
            milliseconds: duration.milliseconds,
            requestBytes: outcome.requestBytes,
            responseBytes: outcome.responseBytes
        )
        waypoint.accessLog.record(
            AccessLogEntry(
                direction: tunnel.reporter,
                source: .init(
                    address: tunnel.peerAddress.description,
                    workload: source?.name,
                    namespace: source?.namespace,
                    identity: tunnel.peerIdentity
                ),
                destination: .init(
                    address: outcome.endpoint?.address.description,
                    workload: destination?.name,
                    namespace: destination?.namespace,
                    identity: destination?.identity
                ),
                hboneAddress: tunnel.authority,
                service: serviceName,
                requestBytes: outcome.requestBytes,
                responseBytes: outcome.responseBytes,
                duration: duration,
                responseFlags: outcome.flag,
                request: .init(
                    method: outcome.head.method.rawValue,
                    path: outcome.head.uri,
                    protocolName: downstreamProtocol == .http2 ? "HTTP/2" : "HTTP/1.1",
                    status: outcome.status,
                    route: outcome.route,
                    traceparent: outcome.head.headers.first(name: "traceparent")
                )
            )
        )
    }
}
