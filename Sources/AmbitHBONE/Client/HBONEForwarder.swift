import AmbitRelay
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
        RelaySockets.acceptingBootstrap(group: group) { channel in
            let tunnel = client.tunnel(downstream: channel, request: request(channel))
            tunnel.established.whenFailure { _ in RelaySockets.reset(channel) }
            if let onResult { tunnel.established.whenComplete(onResult) }
        }
        .bind(host: host, port: port)
    }
}
