public import AmbitModel
import Glibc
public import NIOCore

/// Reading the original destination of a captured socket through NIO's socket-option seam
/// (the descriptor stays inside NIO).
public enum OriginalDestination {
    /// `SO_ORIGINAL_DST` (IPv4, SOL_IP) and `IP6T_SO_ORIGINAL_DST` (IPv6, SOL_IPV6) share the number 80.
    public static let optionName: Int32 = 80

    /// The destination the application asked for, before the capture's REDIRECT.
    public static func read(_ channel: any Channel) -> EventLoopFuture<IPEndpoint> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(OriginalDestinationError("not a socket channel"))
        }
        let isIPv6: Bool
        switch channel.localAddress {
        case .v6?: isIPv6 = true
        case .v4?: isIPv6 = false
        default:
            return channel.eventLoop.makeFailedFuture(OriginalDestinationError("no local address"))
        }
        if isIPv6 {
            let future: EventLoopFuture<sockaddr_in6> = provider.unsafeGetSocketOption(
                level: NIOBSDSocket.OptionLevel(rawValue: Int32(IPPROTO_IPV6)),
                name: NIOBSDSocket.Option(rawValue: optionName)
            )
            return future.flatMapThrowing { address in
                let bytes = withUnsafeBytes(of: address.sin6_addr) { Array($0) }
                guard let ip = IPAddress(bytes: bytes) else {
                    throw OriginalDestinationError("malformed IPv6 address")
                }
                return IPEndpoint(ip, UInt16(bigEndian: address.sin6_port))
            }
        }
        let future: EventLoopFuture<sockaddr_in> = provider.unsafeGetSocketOption(
            level: NIOBSDSocket.OptionLevel(rawValue: Int32(IPPROTO_IP)),
            name: NIOBSDSocket.Option(rawValue: optionName)
        )
        return future.flatMapThrowing { address in
            let bytes = withUnsafeBytes(of: address.sin_addr) { Array($0) }
            guard let ip = IPAddress(bytes: bytes) else {
                throw OriginalDestinationError("malformed IPv4 address")
            }
            return IPEndpoint(ip, UInt16(bigEndian: address.sin_port))
        }
    }
}

/// Why the original destination of a captured connection could not be read.
public struct OriginalDestinationError: Error, Hashable, Sendable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "cannot read the original destination: \(reason)" }
}
