public import NIOCore

/// Relaying between two HBONE streams a process terminated itself: a waypoint's opaque TCP,
/// from the tunnel it accepted (``HBONEInboundResult/terminate(configure:)``) to the tunnel it
/// opened (``HBONEClient/openStream(_:on:)``); either end may also be a plain socket (a
/// sidecar's captured connection, or its application). Same backpressure, half-close and reset
/// semantics as every other relay: a socket's half-close is a TCP shutdown, a stream's an END_STREAM.
public enum StreamRelay {
    /// Stops reading `stream` and puts a relay handler at its end that holds whatever arrives
    /// (bounded by the stream's flow-control window) until ``join(_:_:)``.
    public static func prepare(_ stream: any Channel) throws {
        try stream.pipeline.syncOperations.addHandler(RelayHandler(isSocket: isSocket(stream)))
        stream.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in stream.close(promise: nil) }
    }

    /// Joins a prepared `downstream` stream with `upstream` (both on one event loop) and starts the
    /// flow; the future succeeds once both have closed, with the bytes each way.
    public static func join(_ downstream: any Channel, _ upstream: any Channel) throws -> EventLoopFuture<RelaySummary>
    {
        precondition(downstream.eventLoop === upstream.eventLoop, "relayed streams must share an event loop")
        let downstreamSide = try downstream.pipeline.syncOperations.handler(type: RelayHandler.self)
        let upstreamSide = RelayHandler(isSocket: isSocket(upstream))
        try upstream.pipeline.syncOperations.addHandler(upstreamSide)
        upstream.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in upstream.close(promise: nil) }
        let finished = upstream.eventLoop.makePromise(of: RelaySummary.self)
        RelayHandler.join(
            requestSide: downstreamSide,
            responseSide: upstreamSide,
            stats: RelayStats { finished.succeed($0.summary) }
        )
        return finished.futureResult
    }

    private static func isSocket(_ channel: any Channel) -> Bool {
        channel is any SocketOptionProvider
    }
}
