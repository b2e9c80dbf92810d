/// An address block such as `10.0.0.0/8` or `fd00::/64`. A bare address means a single host
/// (`/32` or `/128`). Host bits after the prefix are cleared, as Istio and the kernel do.
public struct IPCIDR: Hashable, Sendable, CustomStringConvertible {
    public let network: IPAddress
    public let prefixLength: Int

    public init(parsing text: some StringProtocol) throws {
        let text = String(text)
        let addressPart: Substring
        let length: Int
        if let slash = text.firstIndex(of: "/") {
            addressPart = text[..<slash]
            let lengthText = text[text.index(after: slash)...]
            guard !lengthText.isEmpty, lengthText.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let value = Int(lengthText)
            else {
                throw IPCIDRError(text: text, reason: "prefix length \"\(lengthText)\" is not a number")
            }
            length = value
        } else {
            addressPart = text[...]
            length = -1
        }
        guard let address = IPAddress(addressPart) else {
            throw IPCIDRError(text: text, reason: "\"\(addressPart)\" is not a valid IPv4 or IPv6 address")
        }
        let width = address.bitWidth
        let prefix = length < 0 ? width : length
        guard prefix <= width else {
            throw IPCIDRError(text: text, reason: "prefix length \(prefix) is larger than \(width)")
        }
        self.init(address: address, prefixLength: prefix)
    }

    /// A block of `prefixLength` bits around `address` (host bits are cleared).
    public init(address: IPAddress, prefixLength: Int) {
        precondition(prefixLength >= 0 && prefixLength <= address.bitWidth, "prefix length out of range")
        self.prefixLength = prefixLength
        switch address {
        case .v4(let value):
            self.network = .v4(prefixLength == 0 ? 0 : value & ~UInt32(0) << (32 - prefixLength))
        case .v6(let high, let low):
            let (maskHigh, maskLow) = Self.v6Mask(prefixLength)
            self.network = .v6(high: high & maskHigh, low: low & maskLow)
        }
    }

    /// Whether `address` lies inside this block. Families never match each other.
    public func contains(_ address: IPAddress) -> Bool {
        switch (network, address) {
        case (.v4(let net), .v4(let value)):
            return prefixLength == 0 || (value ^ net) >> (32 - prefixLength) == 0
        case (.v6(let netHigh, let netLow), .v6(let high, let low)):
            let (maskHigh, maskLow) = Self.v6Mask(prefixLength)
            return (high ^ netHigh) & maskHigh == 0 && (low ^ netLow) & maskLow == 0
        default:
            return false
        }
    }

    public var description: String { "\(network)/\(prefixLength)" }

    /// The 128-bit mask of `length` leading ones, as high and low halves.
    private static func v6Mask(_ length: Int) -> (UInt64, UInt64) {
        let high: UInt64 = length >= 64 ? .max : (length == 0 ? 0 : .max << (64 - length))
        let low: UInt64 = length <= 64 ? 0 : (length == 128 ? .max : .max << (128 - length))
        return (high, low)
    }
}

/// Text that is not an address block.
public struct IPCIDRError: Error, Hashable, CustomStringConvertible {
    public let text: String
    public let reason: String
    public var description: String { "invalid CIDR \"\(text)\": \(reason)" }
}

/// In JSON and YAML an address block is its text, `10.244.1.0/24`.
extension IPCIDR: TextCodable {}
