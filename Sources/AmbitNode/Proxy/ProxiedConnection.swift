import AmbitModel
import AmbitPolicy
import AmbitRelay
import AmbitTelemetry
import NIOCore
import Synchronization

/// One connection the agent proxies, from the moment it was accepted until it has ended (ztunnel's
/// connection record). It is the one place where a connection's downstream is reset and where its
/// telemetry is written, exactly once, however it ends: refused before a byte moved, its upstream
/// unreachable, revoked by a policy change, or finished by its relay.
///
/// Life: created when the proxy knows where the connection goes (it is then tracked, so it shows in
/// `/config_dump` and drain waits for it), then either ``refuse(_:flag:reason:)``, or ``admit(_:)``
/// followed by ``relay(_:)``. ``revoke(reason:)`` may come at any time after ``admit(_:)``.
final class ProxiedConnection: Sendable {
    enum Direction: String, Sendable {
        case outbound
        case inbound
    }

    /// The inputs of the inbound decision that admitted the connection: re-evaluated, with the same
    /// function, when the configuration changes (``InboundProxy/recheck(_:)``).
    struct Admission: Sendable, Equatable {
        var target: IPEndpoint
        var peerIdentity: SpiffeID?
        var sourceAddress: IPAddress
        var plaintext: Bool
    }

    /// Who talks to whom: Istio's metric labels, and the pods' names the access log carries (ztunnel
    /// logs pods, its metrics workloads).
    struct Description: Sendable {
        var labels: TrafficLabels
        var sourcePod: String?
        var destinationPod: String?

        init(_ labels: TrafficLabels, sourcePod: String? = nil, destinationPod: String? = nil) {
            self.labels = labels
            self.sourcePod = sourcePod
            self.destinationPod = destinationPod
        }
    }

    /// How a connection ended, for ``ConnectionTelemetry``.
    struct Ending: Sendable {
        let description: Description
        var labels: TrafficLabels { description.labels }
        let flag: ResponseFlag
        let source: IPEndpoint?
        let destination: IPEndpoint
        let hboneAddress: IPEndpoint?
        let summary: RelaySummary
        let duration: Duration
        let error: String?
    }

    private struct State {
        var description: Description
        var admission: Admission?
        var hboneAddress: IPEndpoint?
        /// The socket whose reset ends the connection abortively: the application's socket the capture
        /// accepted, or, for an HBONE tunnel into a pod, the socket to the application.
        var resettable: (any Channel)?
        /// Why the agent ended the connection (a policy change, the drain deadline), and its flag.
        var revoked: (reason: String, flag: ResponseFlag)?
        var finished = false
    }

    let id: UInt64
    let direction: Direction
    let pod: PodRecord
    let source: IPEndpoint?
    let destination: IPEndpoint
    let started = ContinuousClock.now
    private let tracker: ConnectionTracker
    private let telemetry: ConnectionTelemetry
    private let state: Mutex<State>

    /// A connection `pod` sent (outbound) or receives (inbound), tracked from now on. `downstream` is
    /// the socket to reset if it fails: the accepted application socket; `nil` for an HBONE tunnel,
    /// whose server answers the client itself.
    init(
        _ direction: Direction,
        pod: PodRecord,
        source: IPEndpoint?,
        destination: IPEndpoint,
        description: Description,
        downstream: (any Channel)?,
        tracker: ConnectionTracker,
        telemetry: ConnectionTelemetry
    ) {
        self.id = telemetry.makeID()
        self.direction = direction
        self.pod = pod
        self.source = source
        self.destination = destination
        self.tracker = tracker
        self.telemetry = telemetry
        self.state = Mutex(State(description: description, resettable: downstream))
        tracker.insert(self)
    }

    var labels: TrafficLabels { state.withLock { $0.description.labels } }
    var admission: Admission? { state.withLock { $0.admission } }

    /// Refused before any byte moved (no route, policy, STRICT mTLS): counted as opened (as ztunnel counts
    /// it, before deciding) and closed under `flag`, logged with `reason`; the downstream, if any, is reset.
    func refuse(_ description: Description, flag: ResponseFlag, reason: String) {
        let channel = state.withLock { state -> (any Channel)? in
            state.description = description
            return state.resettable
        }
        if let channel { RelaySockets.reset(channel) }
        telemetry.opened(description.labels)
        finish(RelaySummary(requestBytes: 0, responseBytes: 0, error: nil), flag: flag, error: reason)
    }

    /// The proxy decided to carry the connection, described by `description` (counted as opened now).
    func admit(_ description: Description, admission: Admission? = nil, hboneAddress: IPEndpoint? = nil) {
        state.withLock { state in
            state.description = description
            state.admission = admission
            state.hboneAddress = hboneAddress
        }
        telemetry.opened(description.labels)
    }

    /// An HBONE tunnel into a pod reached the application: a revocation resets that socket (the relay
    /// then resets the tunnel's stream).
    func reached(_ application: any Channel) {
        let revoked = state.withLock { state -> Bool in
            state.resettable = application
            return state.revoked != nil
        }
        if revoked { RelaySockets.reset(application) }
    }

    /// Ends the connection when its relay has ended: the relay's bytes on success; on failure (the
    /// upstream was never reached) the downstream is reset and the connection counted with `CONNECT`.
    func relay(_ finished: EventLoopFuture<RelaySummary>) {
        finished.whenComplete { result in
            switch result {
            case .success(let summary):
                // Revoked: the revocation's flag. Ended by an error (a reset, a peer gone without an end of
                // stream): CONNECT, as ztunnel counts a copy that failed.
                let revoked = self.state.withLock { $0.revoked }
                let flag: ResponseFlag = revoked?.flag ?? (summary.error != nil ? .connectFailure : .none)
                self.finish(summary, flag: flag, error: revoked?.reason ?? summary.error)
            case .failure(let error):
                self.fail(error)
            }
        }
    }

    /// The upstream could not be reached: reset the downstream, count it with the flag ztunnel uses for
    /// that failure (``ResponseFlag/init(failure:)``).
    func fail(_ error: any Error) {
        let channel = state.withLock { $0.resettable }
        if let channel { RelaySockets.reset(channel) }
        finish(
            RelaySummary(requestBytes: 0, responseBytes: 0, error: nil),
            flag: ResponseFlag(failure: error),
            error: "\(error)"
        )
    }

    /// The connection may no longer go on (a policy change denies it, its pod left the mesh, the agent's
    /// drain deadline passed): it is reset, and its relay's end records it with `flag` and `reason` as the
    /// error.
    func revoke(reason: String, flag: ResponseFlag = .denied) {
        let channel = state.withLock { state -> (any Channel)? in
            guard !state.finished, state.revoked == nil else { return nil }
            state.revoked = (reason, flag)
            return state.resettable
        }
        if let channel { RelaySockets.reset(channel) }
    }

    /// Exactly once: leaves the tracker, writes the closed counter, bytes and the access-log line.
    private func finish(_ summary: RelaySummary, flag: ResponseFlag, error: String?) {
        let ending = state.withLock { state -> Ending? in
            guard !state.finished else { return nil }
            state.finished = true
            state.resettable = nil
            return Ending(
                description: state.description,
                flag: flag,
                source: source,
                destination: destination,
                hboneAddress: state.hboneAddress,
                summary: summary,
                duration: ContinuousClock.now - started,
                error: error
            )
        }
        guard let ending else { return }
        tracker.remove(self)
        telemetry.closed(ending)
    }
}

/// The connections the agent carries, per pod: for `/config_dump`, for draining, for re-checking
/// policy, and for closing a released pod's connections.
final class ConnectionTracker: Sendable {
    private struct State {
        var connections: [UInt64: ProxiedConnection] = [:]
        /// Set at the drain deadline (``resetAll(reason:flag:)``): a connection recorded from then on is reset
        /// as it is recorded.
        var resetting: (reason: String, flag: ResponseFlag)?
    }

    private let state = Mutex(State())
    /// Sockets accepted whose connection is not recorded yet (its original destination is being read).
    private let accepting = Atomic<Int>(0)

    func insert(_ connection: ProxiedConnection) {
        let reset = state.withLock { state in
            state.connections[connection.id] = connection
            return state.resetting
        }
        if let reset { connection.revoke(reason: reset.reason, flag: reset.flag) }
    }

    /// Resets every connection, and every one recorded from now on (a socket that was still being set up,
    /// a CONNECT that crossed its GOAWAY). Returns how many were open.
    func resetAll(reason: String, flag: ResponseFlag) -> Int {
        let open = state.withLock { state in
            state.resetting = (reason, flag)
            return Array(state.connections.values)
        }
        for connection in open { connection.revoke(reason: reason, flag: flag) }
        return open.count
    }

    func remove(_ connection: ProxiedConnection) {
        _ = state.withLock { $0.connections.removeValue(forKey: connection.id) }
    }

    /// Brackets the set-up of an accepted socket, up to its connection's ``insert(_:)`` (or its reset),
    /// so that a drain does not take an agent with a connection still being set up for an idle one.
    func beginAccept() { accepting.add(1, ordering: .relaxed) }
    func endAccept() { accepting.subtract(1, ordering: .relaxed) }

    var all: [ProxiedConnection] { state.withLock { Array($0.connections.values) } }
    var count: Int { state.withLock { $0.connections.count } }
    /// Recorded connections and accepted sockets still being set up.
    var inFlight: Int { count + accepting.load(ordering: .relaxed) }

    func of(pod uid: String) -> [ProxiedConnection] {
        state.withLock { $0.connections.values.filter { $0.pod.uid == uid } }
    }
}
