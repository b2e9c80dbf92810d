import NIOCore

/// The decisions of an HBONE connection pool, without I/O: which connection a new tunnel uses,
/// when to open, close or retire connections. ``HBONEConnectionPool`` performs the actions.
///
/// Invariants:
/// 1. A request is in exactly one place: waiting on one connection that is still connecting,
///    or handed a connection, or failed. It is never dropped silently.
/// 2. A ready connection is given at most `maxStreams` concurrent streams, where `maxStreams`
///    is the smaller of the client limit (100) and the server's SETTINGS_MAX_CONCURRENT_STREAMS;
///    a connecting connection accepts at most the client limit in waiters. Past the limit a new
///    connection is opened.
/// 3. A draining connection (GOAWAY received, or pool shutting down) gets no new streams and is
///    closed once its last stream ends.
/// 4. A ready connection without streams for `idleTimeout` is closed.
/// 5. After shutdown starts, new requests fail at once.
struct HBONEPoolStateMachine {
    struct ConnectionID: Hashable, Comparable, CustomStringConvertible {
        let value: Int
        static func < (lhs: Self, rhs: Self) -> Bool { lhs.value < rhs.value }
        var description: String { "conn-\(value)" }
    }

    struct RequestID: Hashable, CustomStringConvertible {
        let value: Int
        var description: String { "req-\(value)" }
    }

    enum ConnectionState: Equatable {
        case connecting
        case ready(maxStreams: Int)
        case draining
    }

    struct Connection {
        let id: ConnectionID
        let key: HBONEPoolKey
        var state: ConnectionState
        var activeStreams = 0
        var waiters: [RequestID] = []
        var idleSince: NIODeadline?
        /// An idle check is scheduled and has not run yet: becoming idle again only moves `idleSince`
        /// (the check re-arms itself for the rest), so a connection whose streams come and go keeps one
        /// timer, not one per stream.
        var idleCheckPending = false
    }

    enum Action: Equatable {
        /// Open a new connection for `key`.
        case startConnection(ConnectionID, HBONEPoolKey)
        /// Open a stream for the request on the connection (its stream count is already taken).
        case useConnection(RequestID, ConnectionID)
        case failRequest(RequestID, HBONEError)
        /// Close the connection (idle, drained, or shutting down with nothing left).
        case closeConnection(ConnectionID)
        /// Check again at this time whether the connection is still idle.
        case scheduleIdleCheck(ConnectionID, NIODeadline)
        /// Shutdown finished: no connection is left.
        case shutdownComplete
    }

    let clientMaxStreams: Int
    let idleTimeout: TimeAmount
    private(set) var connections: [ConnectionID: Connection] = [:]
    private var byKey: [HBONEPoolKey: [ConnectionID]] = [:]
    private var nextConnection = 0
    private(set) var shuttingDown = false

    init(clientMaxStreams: Int, idleTimeout: TimeAmount) {
        precondition(clientMaxStreams > 0)
        self.clientMaxStreams = clientMaxStreams
        self.idleTimeout = idleTimeout
    }

    /// A tunnel wants a stream towards `key`.
    mutating func lease(_ request: RequestID, key: HBONEPoolKey) -> [Action] {
        if shuttingDown {
            return [.failRequest(request, HBONEError(.shuttingDown, "the HBONE pool is shutting down"))]
        }
        let candidates = byKey[key] ?? []
        // Prefer the ready connection with the most streams that still has room: it keeps the
        // number of connections low and lets idle ones expire.
        var best: ConnectionID?
        var bestStreams = -1
        for id in candidates {
            guard let connection = connections[id], case .ready(let maxStreams) = connection.state,
                connection.activeStreams < maxStreams, connection.activeStreams > bestStreams
            else { continue }
            best = id
            bestStreams = connection.activeStreams
        }
        if let best {
            connections[best]!.activeStreams += 1
            connections[best]!.idleSince = nil
            return [.useConnection(request, best)]
        }
        for id in candidates {
            guard let connection = connections[id], connection.state == .connecting,
                connection.waiters.count < clientMaxStreams
            else { continue }
            connections[id]!.waiters.append(request)
            return []
        }
        let id = makeConnection(key: key)
        connections[id]!.waiters.append(request)
        return [.startConnection(id, key)]
    }

    /// The connection finished its handshakes and the server's SETTINGS arrived.
    mutating func connectionReady(_ id: ConnectionID, serverMaxStreams: Int?, now: NIODeadline) -> [Action] {
        guard var connection = connections[id], connection.state == .connecting else { return [] }
        let maxStreams = max(1, min(clientMaxStreams, serverMaxStreams ?? Int.max))
        connection.state = .ready(maxStreams: maxStreams)
        let waiters = connection.waiters
        connection.waiters = []
        let served = waiters.prefix(maxStreams)
        connection.activeStreams = served.count
        connections[id] = connection
        var actions = served.map { Action.useConnection($0, id) }
        if shuttingDown {
            connections[id]!.state = .draining
        }
        let overflow = Array(waiters.dropFirst(maxStreams))
        if !overflow.isEmpty {
            if shuttingDown {
                actions += overflow.map {
                    .failRequest($0, HBONEError(.shuttingDown, "the HBONE pool is shutting down"))
                }
            } else {
                let next = makeConnection(key: connection.key)
                connections[next]!.waiters = overflow
                actions.append(.startConnection(next, connection.key))
            }
        }
        if served.isEmpty {
            actions += becameIdle(id, now: now)
        }
        return actions
    }

    /// The connection could not be established; its waiters fail with `error`.
    mutating func connectionFailed(_ id: ConnectionID, error: HBONEError) -> [Action] {
        guard let connection = remove(id) else { return [] }
        return connection.waiters.map { .failRequest($0, error) } + shutdownCompletion()
    }

    /// A stream leased on the connection ended.
    mutating func streamClosed(on id: ConnectionID, now: NIODeadline) -> [Action] {
        guard connections[id] != nil else { return [] }
        connections[id]!.activeStreams = max(0, connections[id]!.activeStreams - 1)
        guard connections[id]!.activeStreams == 0 else { return [] }
        if connections[id]!.state == .draining {
            return [.closeConnection(id)]
        }
        return becameIdle(id, now: now)
    }

    /// The stream could not be opened after all (the connection refused it): give back the slot.
    mutating func streamFailed(on id: ConnectionID, now: NIODeadline) -> [Action] {
        streamClosed(on: id, now: now)
    }

    /// The server lowered or raised SETTINGS_MAX_CONCURRENT_STREAMS.
    mutating func serverMaxStreamsChanged(_ id: ConnectionID, to value: Int) {
        guard case .ready = connections[id]?.state else { return }
        connections[id]!.state = .ready(maxStreams: max(1, min(clientMaxStreams, value)))
    }

    /// GOAWAY from the server: no new streams; close when the last one ends.
    mutating func goAwayReceived(_ id: ConnectionID) -> [Action] {
        guard var connection = connections[id] else { return [] }
        if connection.state == .connecting {
            // Not ready yet: its waiters need another connection.
            let waiters = connection.waiters
            connection.waiters = []
            connection.state = .draining
            connections[id] = connection
            var actions: [Action] = []
            for waiter in waiters { actions += lease(waiter, key: connection.key) }
            return actions + [.closeConnection(id)]
        }
        connections[id]!.state = .draining
        return connection.activeStreams == 0 ? [.closeConnection(id)] : []
    }

    /// The connection's channel closed, for whatever reason.
    mutating func connectionClosed(_ id: ConnectionID) -> [Action] {
        guard let connection = remove(id) else { return [] }
        let error = HBONEError(.connectionClosed, "the HBONE connection to \(connection.key.nextHop) closed")
        return connection.waiters.map { .failRequest($0, error) } + shutdownCompletion()
    }

    /// An idle timer fired.
    mutating func idleCheck(_ id: ConnectionID, now: NIODeadline) -> [Action] {
        connections[id]?.idleCheckPending = false
        guard let connection = connections[id], connection.activeStreams == 0, let since = connection.idleSince,
            case .ready = connection.state
        else { return [] }
        if now - since >= idleTimeout {
            connections[id]!.state = .draining
            return [.closeConnection(id)]
        }
        connections[id]!.idleCheckPending = true
        return [.scheduleIdleCheck(id, since + idleTimeout)]
    }

    /// Starts shutdown: idle connections close now, busy ones drain.
    mutating func shutdown() -> [Action] {
        guard !shuttingDown else { return [] }
        shuttingDown = true
        var actions: [Action] = []
        for id in connections.keys.sorted() {
            let connection = connections[id]!
            switch connection.state {
            case .connecting:
                break  // closes once connected and its waiters are served
            case .ready, .draining:
                connections[id]!.state = .draining
                if connection.activeStreams == 0 { actions.append(.closeConnection(id)) }
            }
        }
        return actions + shutdownCompletion()
    }

    func connection(_ id: ConnectionID) -> Connection? { connections[id] }

    func connections(for key: HBONEPoolKey) -> [Connection] {
        (byKey[key] ?? []).compactMap { connections[$0] }
    }

    // MARK: Helpers.

    private mutating func makeConnection(key: HBONEPoolKey) -> ConnectionID {
        let id = ConnectionID(value: nextConnection)
        nextConnection += 1
        connections[id] = Connection(id: id, key: key, state: .connecting)
        byKey[key, default: []].append(id)
        return id
    }

    private mutating func becameIdle(_ id: ConnectionID, now: NIODeadline) -> [Action] {
        if shuttingDown {
            connections[id]!.state = .draining
            return [.closeConnection(id)]
        }
        connections[id]!.idleSince = now
        guard !connections[id]!.idleCheckPending else { return [] }
        connections[id]!.idleCheckPending = true
        return [.scheduleIdleCheck(id, now + idleTimeout)]
    }

    private mutating func remove(_ id: ConnectionID) -> Connection? {
        guard let connection = connections.removeValue(forKey: id) else { return nil }
        byKey[connection.key]?.removeAll { $0 == id }
        if byKey[connection.key]?.isEmpty == true { byKey.removeValue(forKey: connection.key) }
        return connection
    }

    private func shutdownCompletion() -> [Action] {
        shuttingDown && connections.isEmpty ? [.shutdownComplete] : []
    }
}
