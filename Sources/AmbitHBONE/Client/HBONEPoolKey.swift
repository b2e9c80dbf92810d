public import AmbitModel

/// Which pooled connections a tunnel may share, as in docs/protocols.md: the source identity, the
/// identities the destination may present, the next hop, and the source IP (a connection dialled
/// from one pod address is never used for another).
public struct HBONEPoolKey: Hashable, Sendable, CustomStringConvertible {
    public let sourceIdentity: SpiffeID
    /// Sorted, so that equal sets make equal keys.
    public let destinationIdentities: [SpiffeID]
    public let nextHop: IPEndpoint
    public let sourceAddress: IPAddress?

    public init(
        sourceIdentity: SpiffeID,
        destinationIdentities: Set<SpiffeID>,
        nextHop: IPEndpoint,
        sourceAddress: IPAddress?
    ) {
        self.sourceIdentity = sourceIdentity
        self.destinationIdentities = destinationIdentities.sorted()
        self.nextHop = nextHop
        self.sourceAddress = sourceAddress
    }

    public var description: String {
        let destinations = destinationIdentities.map(\.uri).joined(separator: ",")
        return "\(sourceIdentity) -> \(nextHop) [\(destinations)] from \(sourceAddress.map { "\($0)" } ?? "any")"
    }
}
