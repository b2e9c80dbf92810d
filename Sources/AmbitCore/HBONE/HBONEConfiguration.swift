public import NIOCore

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

    public init() {}
}
