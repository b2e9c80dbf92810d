public import NIOCore

/// What port 15008 admits and for how long. Anyone who can reach a pod can open a TCP connection to
/// it, before any identity is known, so every resource a connection holds is bounded in number and
/// time, as Envoy and ztunnel bound a proxy that faces untrusted clients. Each limit, when hit, is
/// reported through ``HBONEServer``'s `onLimit` (the daemons count them in
/// `ambit_limit_hits_total{limit}`).
public struct HBONEServerLimits: Hashable, Sendable {
    /// From accept to a completed TLS handshake with ALPN `h2`.
    public var handshakeTimeout: TimeAmount = .seconds(10)
    /// A connection without open streams for this long is sent GOAWAY and closed (clients close their
    /// pooled connections after 60 s idle, so this catches only the ones that never will).
    public var idleTimeout: TimeAmount = .seconds(300)
    /// Once the server sent GOAWAY (idle, a missed PING, a protocol error, a drain), the connection is
    /// closed at the latest this much later (the drain deadline if longer), whatever its streams are
    /// doing and whether or not the peer answers.
    public var closeAfterGoAway: TimeAmount = .seconds(10)
    /// Connections open at once, over all of the process's HBONE listeners.
    public var maxConnections = 10_000
    /// Connections in their TLS handshake at once, over all of the process's HBONE listeners: the
    /// only state anyone who can reach a pod can make it hold without a mesh certificate.
    public var maxHandshakes = 1_000
    /// Connections open at once from one source address (an IPv6 /64 counts as one) (a client node pools its tunnels on a few).
    public var maxConnectionsPerSource = 512
    /// Streams the peer resets within their first second, before their CONNECT was answered, within
    /// `prematureResetWindow`, before the connection is closed: the HTTP/2 rapid-reset attack
    /// (CVE-2023-44487). Resets of streams that were answered do not count (a tunnel whose application
    /// closed first ends that way), nor those of a client that gave up on a slow answer.
    public var maxPrematureResets = 100
    public var prematureResetWindow: TimeAmount = .seconds(10)
    /// The same streams, counted within one read of the connection (one turn of its event loop): a
    /// rapid-reset burst brings hundreds at once, while an application's connections end one by one.
    /// The HTTP/2 handler stops at the stream that goes over either limit; what it has not looked at
    /// yet of that read opens no stream.
    public var maxPrematureResetsPerRead = 20

    public init() {}
}

/// Which bound was hit.
public enum HBONELimit: String, Sendable, CaseIterable {
    case connections = "hbone_connections"
    case connectionsPerSource = "hbone_connections_per_source"
    case handshakes = "hbone_handshakes"
    case handshakeTimeout = "hbone_handshake_timeout"
    case idleTimeout = "hbone_idle_timeout"
    case closeAfterGoAway = "hbone_close_after_goaway"
    case prematureResets = "hbone_premature_resets"
}
