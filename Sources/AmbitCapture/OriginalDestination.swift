public import AmbitModel
public import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// The destination a captured connection had before the capture redirected it: what nftables'
/// `redirect` recorded in conntrack (`SO_ORIGINAL_DST`), or what the eBPF `cgroup/getsockopt`
/// program answers for the same option. One decoding for both ways of asking: a raw descriptor
/// (``CaptureSockets/originalDestination(fd:)``) and an accepted NIO channel (``read(_:)``).
public enum OriginalDestination {
    /// `SO_ORIGINAL_DST` (IPv4, `SOL_IP`) and `IP6T_SO_ORIGINAL_DST` (IPv6, `SOL_IPV6`) share the number 80.
    public static let optionName: Int32 = 80

    /// The option level for a socket whose local address is IPv4 or IPv6.
    static func level(isIPv4: Bool) -> Int32 { isIPv4 ? Int32(IPPROTO_IP) : Int32(IPPROTO_IPV6) }

    /// Decodes the option's answer (the kernel writes a `sockaddr_in` or `sockaddr_in6`).
    static func decode(_ storage: sockaddr_storage, socket: String) throws(CaptureError) -> IPEndpoint {
        guard let endpoint = Sockaddr.endpoint(from: storage) else {
            throw CaptureError.invalidArgument("SO_ORIGINAL_DST of \(socket) returned family \(storage.ss_family)")
        }
        return endpoint
    }

    /// The original destination of an accepted socket, read through NIO's socket-option seam on the
    /// channel's event loop (the descriptor stays inside NIO).
    public static func read(_ channel: any Channel) -> EventLoopFuture<IPEndpoint> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(CaptureError.invalidArgument("not a socket channel"))
        }
        let isIPv4: Bool
        switch channel.localAddress {
        case .v4?: isIPv4 = true
        case .v6?: isIPv4 = false
        default:
            return channel.eventLoop.makeFailedFuture(
                CaptureError.invalidArgument("an accepted socket without a local IP address")
            )
        }
        let answer: EventLoopFuture<sockaddr_storage> = provider.unsafeGetSocketOption(
            level: NIOBSDSocket.OptionLevel(rawValue: level(isIPv4: isIPv4)),
            name: NIOBSDSocket.Option(rawValue: optionName)
        )
        return answer.flatMapThrowing { storage in
            try decode(storage, socket: "\(channel.localAddress.map { "\($0)" } ?? "a socket")")
        }
    }
}
