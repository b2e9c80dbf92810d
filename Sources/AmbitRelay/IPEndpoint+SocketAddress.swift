public import AmbitModel
public import NIOCore

extension IPAddress {
    /// The address of an IPv4 or IPv6 socket address.
    public init?(socketAddress: SocketAddress) {
        switch socketAddress {
        case .v4(let address):
            self = .v4(UInt32(bigEndian: address.address.sin_addr.s_addr))
        case .v6(let address):
            let bytes = withUnsafeBytes(of: address.address.sin6_addr) { Array($0) }
            guard let parsed = IPAddress(bytes: bytes) else { return nil }
            self = parsed
        case .unixDomainSocket:
            return nil
        }
    }
}

extension IPEndpoint {
    /// The IP and port of an IPv4 or IPv6 socket address.
    public init?(socketAddress: SocketAddress) {
        guard let address = IPAddress(socketAddress: socketAddress), let port = socketAddress.port, port > 0,
            port <= 65535
        else {
            return nil
        }
        self.init(address, UInt16(port))
    }

    /// The NIO socket address of this endpoint.
    public var socketAddress: SocketAddress {
        get throws { try SocketAddress(ipAddress: address.description, port: Int(port)) }
    }
}
