public import AmbitModel
public import AmbitRelay
public import NIOCore

/// A validated CONNECT, handed to the ``HBONEInboundHandler``.
public struct HBONEInboundRequest: Sendable {
    /// The client's identity from its mTLS certificate.
    public let peerIdentity: SpiffeID
    /// The TCP peer of the HBONE connection: the source pod (or waypoint) address.
    public let peerAddress: SocketAddress?
    /// The address the HBONE connection arrived at.
    public let localAddress: SocketAddress?
    /// `:authority`, the destination the client wants: `<pod IP>:<target port>` or, at a
    /// waypoint, `<service VIP>:<port>`.
    public let authority: IPEndpoint
    public let headers: HBONEHeaders

    public init(
        peerIdentity: SpiffeID,
        peerAddress: SocketAddress?,
        localAddress: SocketAddress?,
        authority: IPEndpoint,
        headers: HBONEHeaders
    ) {
        self.peerIdentity = peerIdentity
        self.peerAddress = peerAddress
        self.localAddress = localAddress
        self.authority = authority
        self.headers = headers
    }

    /// The source IP of the connection: the TCP peer's, which the mesh vouches for.
    public var sourceAddress: IPAddress? {
        peerAddress.flatMap { IPAddress(socketAddress: $0) }
    }
}

/// What the inbound handler decided about a CONNECT.
public enum HBONEInboundResult: Sendable {
    /// The upstream is connected. The channel must be on the stream's event loop, created with
    /// `autoRead` off and remote half-closure allowed (see ``UpstreamConnector``). The server
    /// completes `finished` exactly once: with the bytes each way when the relay has ended, or
    /// with an error when the client went away before the relay could start (the upstream is
    /// then closed).
    case connected(any Channel, finished: EventLoopPromise<RelaySummary>?)
    /// The handler terminates the tunnel itself (a waypoint parsing HTTP inside it): after the
    /// `200`, `configure` adds its handlers to the stream channel, which reads and writes
    /// `ByteBuffer`, delivers the client's END_STREAM as `ChannelEvent.inputClosed` and turns
    /// `close(mode: .output)` into END_STREAM. `finished` is completed when the stream closes,
    /// with the bytes each way (or with an error when the tunnel never started).
    case terminate(configure: @Sendable (any Channel) throws -> Void, finished: EventLoopPromise<RelaySummary>?)
    /// 400: the authority does not match a local destination.
    case badRequest(String)
    /// 401: denied by policy.
    case denied(String)
    /// 503: the upstream refused or could not be reached.
    case unavailable(String)
}

/// The pluggable part of the HBONE server: decides (peer, source, destination) and opens the
/// upstream connection. The node agent implements it with L4 authorization and a connect from
/// the pod's network namespace; tests implement it directly. Whoever wants to know how a tunnel
/// ended passes a promise in the result.
public protocol HBONEInboundHandler: Sendable {
    func open(_ request: HBONEInboundRequest, on eventLoop: any EventLoop) -> EventLoopFuture<HBONEInboundResult>
}
