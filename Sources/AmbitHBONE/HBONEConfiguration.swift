public import NIOCore
import NIOHTTP2

/// Settings of HBONE connections, with the reference values of Istio's ztunnel as defaults.
public struct HBONEConfiguration: Hashable, Sendable {
    /// HTTP/2 flow-control window of each stream (SETTINGS_INITIAL_WINDOW_SIZE): 4 MiB.
    public var streamWindowSize = 4 << 20
    /// Flow-control window of the whole connection: 16 MiB.
    public var connectionWindowSize = 16 << 20
    /// SETTINGS_MAX_FRAME_SIZE: 1 MiB.
    public var maxFrameSize = 1 << 20
    /// SETTINGS_MAX_CONCURRENT_STREAMS a server advertises: 200.
    public var serverMaxConcurrentStreams = 200
    /// Streams a client puts on one connection before opening another: 100 (or fewer if the
    /// server advertises fewer).
    public var clientMaxStreamsPerConnection = 100
    /// Keep-alive PING interval and how long to wait for its ACK.
    public var pingInterval: TimeAmount = .seconds(10)
    public var pingTimeout: TimeAmount = .seconds(20)
    /// TCP connect plus TLS handshake plus HTTP/2 preface, for a new pooled connection.
    public var connectTimeout: TimeAmount = .seconds(10)
    /// How long the CONNECT response may take once the stream is open.
    public var responseTimeout: TimeAmount = .seconds(10)
    /// A pooled connection without streams for this long is closed.
    public var idleTimeout: TimeAmount = .seconds(60)
    /// On graceful shutdown, how long open streams may continue before connections are closed.
    public var drainDeadline: TimeAmount = .seconds(5)
    /// Bytes a stream may have queued towards HTTP/2 before the relay stops reading the other side.
    public var streamBufferHighWatermark = 1 << 20
    public var streamBufferLowWatermark = 512 << 10
    /// RST_STREAM frames (and stream errors) a peer may cause on one connection within `resetWindow` before the
    /// connection is closed (NIO's guard against HTTP/2 rapid reset). A tunnel whose application closes before the
    /// other side finished ends with RST_STREAM(CANCEL), so a pooled connection carrying hundreds of connections per
    /// second legitimately sends many: NIO's default of 200 per 30 s failed about 1 connection in 150 under load.
    /// NIO keeps a timestamp per allowed reset, allocated up front (8 bytes each, twice), so the allowance is a
    /// rate over a short window: 1,000 per second costs 16 KB per connection where 30,000 per 30 s cost 480 KB.
    /// The attack itself (streams reset before they are answered) is bounded by
    /// ``HBONEServerLimits/maxPrematureResets`` and ``HBONEServerLimits/maxPrematureResetsPerRead``.
    public var maxResetsPerWindow = 1_000
    public var resetWindow: TimeAmount = .seconds(1)
    /// What a server admits and for how long (resets of streams not yet answered included).
    public var serverLimits = HBONEServerLimits()

    public init() {}
}

extension HBONEConfiguration {
    /// The per-stream HTTP/2 settings both ends use.
    var streamConfiguration: NIOHTTP2Handler.StreamConfiguration {
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.targetWindowSize = streamWindowSize
        stream.outboundBufferSizeHighWatermark = streamBufferHighWatermark
        stream.outboundBufferSizeLowWatermark = streamBufferLowWatermark
        stream.streamResetFrameRateLimit.maximumCount = maxResetsPerWindow
        stream.streamResetFrameRateLimit.windowLength = resetWindow
        stream.streamErrorRateLimit.maximumCount = maxResetsPerWindow
        stream.streamErrorRateLimit.windowLength = resetWindow
        return stream
    }
}
