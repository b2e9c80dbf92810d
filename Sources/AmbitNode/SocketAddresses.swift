import AmbitModel
import Glibc
import NIOCore

/// Reading the original destination of a captured socket through NIO's socket-option seam
/// (the descriptor stays inside NIO).
enum OriginalDestination {
    /// `SO_ORIGINAL_DST` (IPv4, SOL_IP) and `IP6T_SO_ORIGINAL_DST` (IPv6, SOL_IPV6) share the number 80.
    static let optionName: Int32 = 80

    static func read(_ channel: any Channel) -> EventLoopFuture<IPEndpoint> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(NodeAgentError.originalDestination("not a socket channel"))
        }
        let isIPv6: Bool
        switch channel.localAddress {
        case .v6?: isIPv6 = true
        case .v4?: isIPv6 = false
        default:
            return channel.eventLoop.makeFailedFuture(NodeAgentError.originalDestination("no local address"))
        }
        if isIPv6 {
            let future: EventLoopFuture<sockaddr_in6> = provider.unsafeGetSocketOption(
                level: NIOBSDSocket.OptionLevel(rawValue: Int32(IPPROTO_IPV6)),
                name: NIOBSDSocket.Option(rawValue: optionName)
            )
            return future.flatMapThrowing { address in
                let bytes = withUnsafeBytes(of: address.sin6_addr) { Array($0) }
                guard let ip = IPAddress(bytes: bytes) else {
                    throw NodeAgentError.originalDestination("malformed IPv6 address")
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
                throw NodeAgentError.originalDestination("malformed IPv4 address")
            }
            return IPEndpoint(ip, UInt16(bigEndian: address.sin_port))
        }
    }
}

/// Failures of the agent that end one connection or one pod's capture, with what went wrong.
enum NodeAgentError: Error, CustomStringConvertible {
    case originalDestination(String)
    case unknownSourcePod(String)
    case noNetworkNamespace(String)
    case noHealthyEndpoint(String)
    case capture(pod: String, reason: String)
    case ebpfUnavailable(String)

    var description: String {
        switch self {
        case .originalDestination(let reason): "cannot read the original destination: \(reason)"
        case .unknownSourcePod(let pod): "no workload known for captured pod \(pod); closing (fail closed)"
        case .noNetworkNamespace(let address): "no captured pod owns \(address)"
        case .noHealthyEndpoint(let service): "service \(service) has no healthy endpoint"
        case .capture(let pod, let reason): "cannot capture pod \(pod): \(reason)"
        case .ebpfUnavailable(let reason):
            "--capture ebpf cannot run here: \(reason) (use --capture nftables, or add --capture-fallback)"
        }
    }
}
