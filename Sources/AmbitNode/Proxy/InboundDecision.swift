import AmbitConfig
import AmbitModel
import AmbitPolicy
import AmbitTelemetry
import Logging

/// The destination-side decision for a connection to a captured pod, free of I/O: the target
/// must be one of the pod's addresses (and not an agent port), the pod must be known, and L4
/// authorization must allow it.
enum InboundDecision: Equatable {
    case allow(workload: Workload, authorization: AuthorizationRequest)
    case badRequest(String)
    case denied(String)
    /// Denied because a CUSTOM policy selects the pod and only a waypoint can call its authorizer.
    case deniedWithoutAuthorizer(String)
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
            guard let peerIdentity, guards.contains(where: { $0.identity == peerIdentity }) else {
                let names = guards.map(\.gateway.namespacedName).joined(separator: ", ")
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
        guard decision.isAllowed else {
            if case .customWithoutAuthorizer = decision.basis { return .deniedWithoutAuthorizer(decision.reason) }
            return .denied(decision.reason)
        }
        return .allow(workload: workload, authorization: request)
    }

    /// The same decision for a connection's recorded inputs (the first check, and every re-check).
    static func decide(
        _ admission: ProxiedConnection.Admission,
        pod: PodRecord,
        snapshot: ConfigSnapshot,
        logger: Logger? = nil
    ) -> InboundDecision {
        decide(
            target: admission.target,
            pod: pod,
            peerIdentity: admission.peerIdentity,
            sourceAddress: admission.sourceAddress,
            plaintext: admission.plaintext,
            snapshot: snapshot,
            logger: logger
        )
    }

    /// Why the connection may not go ahead (`nil` when it may).
    var refusal: String? {
        switch self {
        case .allow: return nil
        case .badRequest(let reason), .denied(let reason), .deniedWithoutAuthorizer(let reason),
            .unavailable(let reason):
            return reason
        }
    }

    /// The response flag of a refusal: `UAEX` when no authorizer could be asked, else `DENY`.
    var refusalFlag: ResponseFlag {
        if case .deniedWithoutAuthorizer = self { return .unauthorizedExternalService }
        return .denied
    }
}
