public import NIOCore
import NIOPosix

/// A local TCP listener that carries every accepted connection through HBONE: the client side
/// of a tunnel without capture rules. Used by `ambitctl`, the benchmarks and the interop tests;
/// the node agent's outbound listener does the same with the original destination per socket.
public enum HBONEForwarder {
    /// Listens on `host:port` (0 picks a port). `request` builds the tunnel request for each
    /// accepted connection; `onResult` learns whether each tunnel was established.
    public static func listen(
        host: String,
        port: Int,
        group: any EventLoopGroup,
        client: HBONEClient,
        request: @escaping @Sendable (any Channel) -> HBONETunnelRequest,
        onResult: (@Sendable (Result<Void, any Error>) -> Void)? = nil
    ) -> EventLoopFuture<any Channel> {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.recvAllocator, value: SocketTuning.recvAllocator)
            .childChannelInitializer { channel in
                do {
                    try RelaySockets.prepare(channel)
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
                let tunnel = client.tunnel(downstream: channel, request: request(channel))
                if let onResult { tunnel.whenComplete(onResult) }
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            .bind(host: host, port: port)
    }
}
