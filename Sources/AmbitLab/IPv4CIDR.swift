/// An IPv4 address as a host-order 32-bit integer; parsing is strict dotted-quad (no leading zeros).
public struct IPv4Address: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    public var value: UInt32

    public init(_ value: UInt32) {
        self.value = value
    }

    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), part.allSatisfy(\.isNumber),
                let octet = UInt32(part), octet <= 255, part == "0" || !part.hasPrefix("0")
            else { return nil }
            value = value << 8 | octet
        }
        self.value = value
    }

    public var description: String {
        [24, 16, 8, 0].map { String((value >> UInt32($0)) & 0xFF) }.joined(separator: ".")
    }

    public static func < (lhs: IPv4Address, rhs: IPv4Address) -> Bool { lhs.value < rhs.value }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let address = IPv4Address(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "bad IPv4"))
        }
        self = address
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// An IPv4 network `a.b.c.d/len` whose host bits are zero.
public struct IPv4CIDR: Hashable, Sendable, CustomStringConvertible, Codable {
    public var network: IPv4Address
    public var prefixLength: Int

    public enum ParseError: Error, Equatable {
        case malformed
        case hostBitsSet(network: String)
    }

    public init(network: IPv4Address, prefixLength: Int) {
        self.network = network
        self.prefixLength = prefixLength
    }

    /// Parses `a.b.c.d/len`; rejects a missing or out-of-range length and set host bits.
    public static func parse(_ text: String) -> Result<IPv4CIDR, ParseError> {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPv4Address(String(parts[0])),
            parts[1].allSatisfy(\.isNumber), let length = Int(parts[1]), (0...32).contains(length)
        else { return .failure(.malformed) }
        let mask = Self.mask(length)
        guard address.value & ~mask == 0 else {
            let network = IPv4CIDR(network: IPv4Address(address.value & mask), prefixLength: length)
            return .failure(.hostBitsSet(network: network.description))
        }
        return .success(IPv4CIDR(network: address, prefixLength: length))
    }

    public init?(_ text: String) {
        guard case .success(let cidr) = Self.parse(text) else { return nil }
        self = cidr
    }

    static func mask(_ length: Int) -> UInt32 {
        length == 0 ? 0 : UInt32.max << UInt32(32 - length)
    }

    public var mask: UInt32 { Self.mask(prefixLength) }

    /// Number of addresses in the network, including network and broadcast addresses.
    public var size: UInt64 { UInt64(1) << UInt64(32 - prefixLength) }

    public var description: String { "\(network)/\(prefixLength)" }

    public func contains(_ address: IPv4Address) -> Bool {
        address.value & mask == network.value
    }

    public func overlaps(_ other: IPv4CIDR) -> Bool {
        contains(other.network) || other.contains(network)
    }

    /// The address `offset` places after the network address (offset 1 is the first host).
    public func address(at offset: UInt32) -> IPv4Address {
        IPv4Address(network.value &+ offset)
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let cidr = IPv4CIDR(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "bad CIDR"))
        }
        self = cidr
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
