public import AmbitModel
public import NIOCore
import NIOPosix

/// Plain TCP relaying without HBONE: the node agent's passthrough for destinations outside the
/// mesh, and the "plain relay" column of the benchmarks. Same relay, same backpressure and
/// half-close semantics as a tunnel, without TLS or HTTP/2.
public enum TCPPassthrough {
    /// Connects to `destination` on `downstream`'s event loop and relays both ways. `downstream`
    /// must have been prepared with ``RelaySockets/prepare(_:)`` and have `autoRead` off. On a
    /// failed connect the downstream is reset.
    public static func relay(
        downstream: any Channel,
        to destination: IPEndpoint,
        from source: IPAddress? = nil,
        dialer: any Dialer = DirectDialer(),
        onFinished: (@Sendable (RelaySummary) -> Void)? = nil
    ) -> EventLoopFuture<Void> {
        let eventLoop = downstream.eventLoop
        return dialer.connect(to: destination, from: source, on: eventLoop, prepare: RelaySockets.prepare)
            .flatMapErrorThrowing { error in
                RelaySockets.reset(downstream)
                throw error
            }
            .flatMapThrowing { upstream in
                let downstreamSide = try downstream.pipeline.syncOperations.relayHandler()
                let upstreamSide = try upstream.pipeline.syncOperations.relayHandler()
                let stats = RelayStats { stats in onFinished?(stats.summary) }
                RelayHandler.join(requestSide: downstreamSide, responseSide: upstreamSide, stats: stats)
            }
    }

    /// A listener relaying every accepted connection to `destination`.
    public static func listen(host: String, port: Int, group: any EventLoopGroup, destination: IPEndpoint)
        -> EventLoopFuture<any Channel>
    {
        RelaySockets.acceptingBootstrap(group: group) { channel in
            _ = relay(downstream: channel, to: destination)
        }
        .bind(host: host, port: port)
    }
}
