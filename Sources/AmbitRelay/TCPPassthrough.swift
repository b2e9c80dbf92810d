public import AmbitModel
public import NIOCore
import NIOPosix

/// Plain TCP relaying without HBONE: the node agent's passthrough for destinations outside the
/// mesh, and the "plain relay" column of the benchmarks. Same relay, same backpressure and
/// half-close semantics as a tunnel, without TLS or HTTP/2.
public enum TCPPassthrough {
    /// Connects to `destination` on `downstream`'s event loop and relays both ways. `downstream`
    /// must have been prepared with ``RelaySockets/prepare(_:)`` and have `autoRead` off.
    ///
    /// The future fails when the connection cannot be made: the downstream is then left as it is,
    /// for its owner to end (usually with ``RelaySockets/reset(_:)``). Otherwise it succeeds once
    /// both sides have closed, with the bytes each way.
    public static func relay(
        downstream: any Channel,
        to destination: IPEndpoint,
        from source: IPAddress? = nil,
        dialer: any Dialer = DirectDialer()
    ) -> EventLoopFuture<RelaySummary> {
        let eventLoop = downstream.eventLoop
        return dialer.connect(to: destination, from: source, on: eventLoop, prepare: RelaySockets.prepare)
            .flatMapThrowing { upstream in
                let downstreamSide = try downstream.pipeline.syncOperations.relayHandler()
                let upstreamSide = try upstream.pipeline.syncOperations.relayHandler()
                let finished = eventLoop.makePromise(of: RelaySummary.self)
                RelayHandler.join(
                    requestSide: downstreamSide,
                    responseSide: upstreamSide,
                    stats: RelayStats { finished.succeed($0.summary) }
                )
                return finished.futureResult
            }
            .flatMap { $0 }
    }

    /// A listener relaying every accepted connection to `destination`.
    public static func listen(host: String, port: Int, group: any EventLoopGroup, destination: IPEndpoint)
        -> EventLoopFuture<any Channel>
    {
        RelaySockets.acceptingBootstrap(group: group) { channel in
            relay(downstream: channel, to: destination).whenFailure { _ in RelaySockets.reset(channel) }
        }
        .bind(host: host, port: port)
    }
}
