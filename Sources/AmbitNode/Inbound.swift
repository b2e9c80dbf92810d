import AmbitConfig
import AmbitHBONE
import AmbitModel
import AmbitPolicy
import AmbitRelay
import AmbitTelemetry
import Logging
import NIOCore
import Synchronization

/// The destination-side decision for a connection to a captured pod, free of I/O: the target
/// must be one of the pod's addresses (and not an agent port), the pod must be known, and L4
/// authorization must allow it.
enum InboundDecision: Equatable {
    case allow(workload: Workload, authorization: AuthorizationRequest)
    case badRequest(String)
    case denied(String)
    case unavailable(String)

    static func decide(
        target: IPEndpoint,
        pod: PodRecord,
        peerIdentity: SpiffeID?,
        sourceAddress: IPAddress,
        plaintext: Bool,
        snapshot: ConfigSnapshot,
        logger: Logger? = nil
    ) -> InboundDecision {
        guard pod.addresses.contains(target.address) else {
            return .badRequest("authority \(target) is not an address of pod \(pod.displayName)")
        }
        guard ![MeshPorts.hbone, MeshPorts.outbound, MeshPorts.inboundPlaintext].contains(target.port) else {
            return .badRequest("port \(target.port) is reserved for the mesh")
        }
        guard let workload = snapshot.workload(for: pod.key) else {
            return .unavailable("pod \(pod.displayName) is not known to the agent's configuration")
        }
        if plaintext, snapshot.peerAuthenticationMode(for: workload.pod, port: target.port) == .strict {
            return .denied("PeerAuthentication STRICT: plaintext connection to \(pod.displayName) rejected")
        }
        // No bypass: a destination behind a waypoint accepts only the waypoint's identity.
        let guards = snapshot.waypointsGuarding(pod: workload.key, port: target.port)
        if !guards.isEmpty {
            for case .unresolved(let reason) in guards {
                return .denied(
                    "pod \(pod.displayName) port \(target.port) needs a waypoint that is unusable: \(reason)"
                )
            }
            let allowed = guards.compactMap(\.binding)
            guard let peerIdentity, allowed.contains(where: { $0.identity == peerIdentity }) else {
                let names = allowed.map(\.gateway.namespacedName).joined(separator: ", ")
                return .denied(
                    "pod \(pod.displayName) port \(target.port) is served by waypoint \(names): only its identity may "
                        + "connect, not \(peerIdentity.map { "\($0)" } ?? "a plaintext client")"
                )
            }
        }
        let request = AuthorizationRequest(
            to: workload,
            port: target.port,
            from: peerIdentity,
            sourceAddress: sourceAddress
        )
        let decision = snapshot.authorization.evaluate(request)
        if let logger {
            decision.logObservations(
                to: logger,
                [
                    "pod": "\(pod.displayName)", "dst.port": "\(target.port)",
                    "src.identity": "\(peerIdentity.map { "\($0)" } ?? "-")", "src.ip": "\(sourceAddress)",
                ]
            )
        }
        guard decision.isAllowed else { return .denied(decision.reason) }
        return .allow(workload: workload, authorization: request)
    }
}

/// The HBONE server's hook for one captured pod: authorize, then connect to the application
/// from the client's address so it sees the real source.
struct PodInbound: HBONEInboundHandler {
    let agent: NodeAgent
    let podUID: String
    private let live = LiveRequests()

    init(agent: NodeAgent, podUID: String) {
        self.agent = agent
        self.podUID = podUID
    }

    func open(_ request: HBONEInboundRequest, on eventLoop: any EventLoop) -> EventLoopFuture<HBONEInboundResult> {
        guard let pod = agent.registry.pod(uid: podUID) else {
            return eventLoop.makeSucceededFuture(.unavailable("pod \(podUID) is no longer captured"))
        }
        let snapshot = agent.store.snapshot
        let source = request.sourceAddress ?? request.authority.address
        let sourceEndpoint = request.peerAddress.flatMap(IPEndpoint.init(socketAddress:))
        let labels = {
            var labels = agent.inboundLabels(pod: pod, peer: request.peerIdentity, source: source, snapshot: snapshot)
            labels.connectionSecurityPolicy = .mutualTLS
            return labels
        }()
        let decision = InboundDecision.decide(
            target: request.authority,
            pod: pod.record,
            peerIdentity: request.peerIdentity,
            sourceAddress: source,
            plaintext: false,
            snapshot: snapshot,
            logger: agent.logger
        )
        switch decision {
        case .badRequest(let reason):
            return eventLoop.makeSucceededFuture(.badRequest(reason))
        case .unavailable(let reason):
            return eventLoop.makeSucceededFuture(.unavailable(reason))
        case .denied(let reason):
            agent.telemetry.rejected(
                direction: .inbound,
                labels: labels,
                source: sourceEndpoint,
                destination: request.authority,
                flag: "DENY",
                reason: reason
            )
            return eventLoop.makeSucceededFuture(.denied(reason))
        case .allow(_, let authorization):
            let dialer = NetnsDialer(
                registry: agent.registry,
                executor: agent.executor,
                placement: .destinationPod(pod),
                timeout: .seconds(10),
                transparentMark: agent.backend.transparentDialMark
            )
            let agent = self.agent
            let live = self.live
            return dialer.connect(to: request.authority, from: source, on: eventLoop, prepare: RelaySockets.prepare)
                .map { upstream -> HBONEInboundResult in
                    let connection = agent.track(
                        .inbound,
                        pod: pod,
                        source: sourceEndpoint,
                        destination: request.authority,
                        labels: labels,
                        authorization: authorization
                    )
                    connection.setAbort { RelaySockets.reset(upstream) }
                    live.insert(request.id, connection)
                    return .connected(upstream)
                }
                .flatMapErrorThrowing { error in
                    agent.telemetry.rejected(
                        direction: .inbound,
                        labels: labels,
                        source: sourceEndpoint,
                        destination: request.authority,
                        flag: "CONNECT",
                        reason: "\(error)"
                    )
                    return .unavailable("upstream \(request.authority): \(error)")
                }
        }
    }

    func finished(_ request: HBONEInboundRequest, summary: RelaySummary) {
        guard let connection = live.remove(request.id), let pod = agent.registry.pod(uid: podUID) else { return }
        agent.untrack(connection, pod: pod, summary: summary)
    }
}

/// Tracked connections by HBONE request id.
final class LiveRequests: Sendable {
    private let storage = Mutex<[UInt64: TrackedConnection]>([:])
    func insert(_ id: UInt64, _ connection: TrackedConnection) { storage.withLock { $0[id] = connection } }
    func remove(_ id: UInt64) -> TrackedConnection? { storage.withLock { $0.removeValue(forKey: id) } }
}

extension NodeAgent {
    func inboundLabels(pod: CapturedPod, peer: SpiffeID?, source: IPAddress, snapshot: ConfigSnapshot) -> TrafficLabels
    {
        let destination = snapshot.workload(for: pod.record.key)
        let sourceWorkload = snapshot.workload(at: source)
        return TrafficLabels(
            reporter: .destination,
            sourceWorkload: sourceWorkload?.name ?? TrafficLabels.unknown,
            sourceWorkloadNamespace: sourceWorkload?.namespace ?? TrafficLabels.unknown,
            sourcePrincipal: peer,
            destinationWorkload: destination?.name ?? pod.record.name,
            destinationWorkloadNamespace: destination?.namespace ?? pod.record.namespace,
            destinationPrincipal: destination?.identity
        )
    }

    /// A plaintext connection redirected to `pod`'s port 15006 (a client outside the mesh).
    func handlePlaintextInbound(_ channel: any Channel, to pod: CapturedPod) {
        backend.inboundDestination(of: channel).whenComplete { result in
            guard case .success(let target) = result,
                let peer = channel.remoteAddress.flatMap(IPEndpoint.init(socketAddress:))
            else {
                self.logger.warning(
                    "inbound plaintext connection dropped",
                    metadata: ["pod": "\(pod.record.displayName)", "error": "\(result)"]
                )
                RelaySockets.reset(channel)
                return
            }
            let snapshot = self.store.snapshot
            let labels = self.inboundLabels(pod: pod, peer: nil, source: peer.address, snapshot: snapshot)
            let decision = InboundDecision.decide(
                target: target,
                pod: pod.record,
                peerIdentity: nil,
                sourceAddress: peer.address,
                plaintext: true,
                snapshot: snapshot,
                logger: self.logger
            )
            guard case .allow(_, let authorization) = decision else {
                let reason: String
                switch decision {
                case .badRequest(let text), .denied(let text), .unavailable(let text): reason = text
                case .allow: reason = ""
                }
                self.telemetry.rejected(
                    direction: .inbound,
                    labels: labels,
                    source: peer,
                    destination: target,
                    flag: "DENY",
                    reason: reason
                )
                RelaySockets.reset(channel)
                return
            }
            let connection = self.track(
                .inbound,
                pod: pod,
                source: peer,
                destination: target,
                labels: labels,
                authorization: authorization
            )
            connection.setAbort { RelaySockets.reset(channel) }
            let dialer = NetnsDialer(
                registry: self.registry,
                executor: self.executor,
                placement: .destinationPod(pod),
                timeout: .seconds(10),
                transparentMark: self.backend.transparentDialMark
            )
            TCPPassthrough.relay(downstream: channel, to: target, from: peer.address, dialer: dialer) { summary in
                self.untrack(connection, pod: pod, summary: summary)
            }.whenFailure { error in
                self.connectFailed(connection, pod: pod, error: error)
            }
        }
    }
}
