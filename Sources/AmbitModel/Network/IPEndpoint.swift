/// An IP address and TCP port: a service VIP:port, a pod's target, an HBONE `:authority`.
/// Printed as `10.0.0.1:80` or `[fd00::1]:80`.
public struct IPEndpoint: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(_ address: IPAddress, _ port: UInt16) {
        self.address = address
        self.port = port
    }

    /// Parses `a.b.c.d:port` or `[v6]:port`, as found in an HBONE `:authority`.
    public init(parsing text: some StringProtocol) throws {
        let text = String(text)
        let hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw IPEndpointError(text: text, reason: "expected [address]:port")
            }
            hostPart = text[text.index(after: text.startIndex)..<close]
            portPart = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), text.firstIndex(of: ":") == colon else {
                throw IPEndpointError(text: text, reason: "expected address:port (IPv6 addresses go in brackets)")
            }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        guard let address = IPAddress(hostPart) else {
            throw IPEndpointError(text: text, reason: "\"\(hostPart)\" is not an IP address")
        }
        if text.hasPrefix("["), address.isIPv4 {
            throw IPEndpointError(text: text, reason: "only IPv6 addresses go in brackets")
        }
        guard !portPart.isEmpty, portPart.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), portPart.count <= 5,
            let port = UInt16(portPart), port != 0
        else {
            throw IPEndpointError(text: text, reason: "port \"\(portPart)\" is not in 1...65535")
        }
        self.init(address, port)
    }

    public var description: String {
        address.isIPv4 ? "\(address):\(port)" : "[\(address)]:\(port)"
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
