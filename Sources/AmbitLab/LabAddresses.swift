public import AmbitModel

/// What the lab adds to the model's address types: the strict form its files use for networks, and
/// address arithmetic inside one.
extension IPCIDR {
    public enum LabParseError: Error, Equatable {
        /// Not `a.b.c.d/len`.
        case malformed
        /// The address has bits set after the prefix; `network` is what was probably meant.
        case hostBitsSet(network: String)
    }

    /// Parses an IPv4 network the lab's way: `a.b.c.d/len` with an explicit length and no host bits
    /// (where the model clears them silently, as Istio and the kernel do).
    public static func lab(_ text: String) -> Result<IPCIDR, LabParseError> {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPAddress(parts[0]), address.isIPv4,
            let cidr = try? IPCIDR(parsing: text)
        else { return .failure(.malformed) }
        guard cidr.network == address else { return .failure(.hostBitsSet(network: cidr.description)) }
        return .success(cidr)
    }

    /// Number of addresses in the network, network and broadcast addresses included.
    public var size: UInt64 { network.isIPv4 ? UInt64(1) << UInt64(32 - prefixLength) : UInt64.max }

    /// Whether either network contains the other.
    public func overlaps(_ other: IPCIDR) -> Bool {
        contains(other.network) || other.contains(network)
    }

    /// The IPv4 address `offset` places after the network address (offset 1 is the first host).
    public func address(at offset: UInt32) -> IPAddress {
        guard case .v4(let value) = network else { preconditionFailure("lab networks are IPv4") }
        return .v4(value &+ offset)
    }
}
