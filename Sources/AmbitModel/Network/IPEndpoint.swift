/// An IP address and TCP port: a service VIP:port, a pod's target, an HBONE `:authority`.
/// Printed as `10.0.0.1:80` or `[fd00::1]:80`.
public struct IPEndpoint: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(_ address: IPAddress, _ port: UInt16) {
        self.address = address
        self.port = port
    }

    /// Parses `a.b.c.d:port` or `[v6]:port`, as found in an HBONE `:authority` (for every stream:
    /// the scan is over the UTF-8 bytes).
    public init(parsing text: some StringProtocol) throws {
        let text = Substring(text)
        let bytes = text.utf8
        let colon = UInt8(ascii: ":")
        let hostPart: Substring
        let portStart: String.Index
        let bracketed = bytes.first == UInt8(ascii: "[")
        if bracketed {
            guard let close = bytes.firstIndex(of: UInt8(ascii: "]")),
                bytes.index(after: close) < bytes.endIndex, bytes[bytes.index(after: close)] == colon
            else {
                throw IPEndpointError(text: String(text), reason: "expected [address]:port")
            }
            hostPart = text[bytes.index(after: bytes.startIndex)..<close]
            portStart = bytes.index(close, offsetBy: 2)
        } else {
            guard let last = bytes.lastIndex(of: colon), bytes.firstIndex(of: colon) == last else {
                throw IPEndpointError(
                    text: String(text),
                    reason: "expected address:port (IPv6 addresses go in brackets)"
                )
            }
            hostPart = text[..<last]
            portStart = bytes.index(after: last)
        }
        guard let address = IPAddress(hostPart) else {
            throw IPEndpointError(text: String(text), reason: "\"\(hostPart)\" is not an IP address")
        }
        if bracketed, address.isIPv4 {
            throw IPEndpointError(text: String(text), reason: "only IPv6 addresses go in brackets")
        }
        // 1...65535, in at most five decimal digits (leading zeros allowed).
        var port = 0
        var digits = 0
        for byte in bytes[portStart...] {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), digits < 5 else {
                digits = 0
                break
            }
            port = port * 10 + Int(byte - UInt8(ascii: "0"))
            digits += 1
        }
        guard digits > 0, port >= 1, port <= 65535 else {
            throw IPEndpointError(text: String(text), reason: "port \"\(text[portStart...])\" is not in 1...65535")
        }
        self.init(address, UInt16(port))
    }

    public var description: String {
        switch address {
        case .v4(let value):
            // 15 bytes of address, ':', 5 of port.
            return String(unsafeUninitializedCapacity: 21) { buffer in
                var index = IPAddress.writeV4(value, into: buffer, at: 0)
                buffer[index] = UInt8(ascii: ":")
                index += 1
                return IPAddress.writeDecimal(port, into: buffer, at: index)
            }
        case .v6:
            return "[\(address)]:\(port)"
        }
    }

    public static func < (lhs: IPEndpoint, rhs: IPEndpoint) -> Bool {
        (lhs.address, lhs.port) < (rhs.address, rhs.port)
    }
}

/// Text that is not `address:port`.
public struct IPEndpointError: Error, Hashable, CustomStringConvertible {
    public let text: String
    public let reason: String
    public var description: String { "invalid address \"\(text)\": \(reason)" }
}
