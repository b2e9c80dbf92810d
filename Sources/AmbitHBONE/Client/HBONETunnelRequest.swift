public import AmbitIdentity
public import AmbitModel
public import AmbitRelay
public import NIOCore

/// One TCP connection to carry over HBONE.
public struct HBONETunnelRequest: Sendable {
    /// The source workload's certificate, presented to the server (and the pool key's identity).
    public var sourceCertificate: WorkloadCertificate
    /// Identities the server may present: the destination workload's, or its waypoint's.
    public var destinationIdentities: Set<SpiffeID>
    /// Where to dial: `<pod or waypoint IP>:15008`.
    public var nextHop: IPEndpoint
    /// `:authority`: `<pod IP>:<target port>`, or the original destination when going to a waypoint.
    public var authority: IPEndpoint
    /// The address to dial from (the source pod's); part of the pool key.
    public var sourceAddress: IPAddress?
    public var headers: HBONEHeaders

    public init(
        sourceCertificate: WorkloadCertificate,
        destinationIdentities: Set<SpiffeID>,
        nextHop: IPEndpoint,
        authority: IPEndpoint,
        sourceAddress: IPAddress? = nil,
        headers: HBONEHeaders = HBONEHeaders()
    ) {
        self.sourceCertificate = sourceCertificate
        self.destinationIdentities = destinationIdentities
        self.nextHop = nextHop
        self.authority = authority
        self.sourceAddress = sourceAddress
        self.headers = headers
    }

    var poolKey: HBONEPoolKey {
        HBONEPoolKey(
            sourceIdentity: sourceCertificate.identity,
            destinationIdentities: destinationIdentities,
            nextHop: nextHop,
            sourceAddress: sourceAddress
        )
    }
}

/// A tunnel the client is opening for a downstream socket.
public struct HBONETunnel: Sendable {
    /// Succeeds once the server answered 200 and the relay runs.
    public let established: EventLoopFuture<Void>
    /// Fails like `established` when the tunnel could not be opened (the downstream is left to its
    /// owner to end); otherwise succeeds once both sides have closed, with the bytes each way.
    public let finished: EventLoopFuture<RelaySummary>
}
