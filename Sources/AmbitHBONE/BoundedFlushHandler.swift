import NIOCore

/// Turns one large flush into flushes of about `chunk` bytes, between an HBONE connection's TLS handler
/// and its HTTP/2 handler.
///
/// NIOSSL encrypts everything written since the last flush into one buffer, which it keeps for reuse at
/// the largest size any flush needed (nio-ssl 2.37 passes `.max` for the preserved capacity whatever its
/// handler configuration says). HTTP/2 flushes a flow-control window's worth of DATA at once when a
/// WINDOW_UPDATE releases it (up to the 4 MiB stream window), so after one bulk transfer each pooled HBONE
/// connection kept a ciphertext buffer of about 4 MiB until it closed (heaptrack: 12.6 MiB in three
/// buffers over an agent's two connections after a 4-stream iperf3). With a flush every `chunk` bytes the
/// buffer stays near `chunk` plus one write (a DATA frame holds at most one read of a socket, 256 KiB).
/// Bytes keep their order; they only reach the socket sooner.
final class BoundedFlushHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    static let defaultChunk = 256 << 10
    /// A write at least this large ends a frame (a payload, or a whole frame), never a frame header.
    static let minimumFlushPoint = 1 << 10

    private let chunk: Int
    private var unflushed = 0

    init(chunk: Int = BoundedFlushHandler.defaultChunk) {
        self.chunk = chunk
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let size: Int
        switch unwrapOutboundIn(data) {
        case .byteBuffer(let buffer): size = buffer.readableBytes
        case .fileRegion(let region): size = region.readableBytes
        }
        context.write(data, promise: promise)
        unflushed += size
        // Only after a large write: HTTP/2 writes a DATA frame's 9-byte header and its payload separately, and a
        // flush between them could let a frame written from a completion callback land inside this one.
        if unflushed >= chunk && size >= Self.minimumFlushPoint {
            unflushed = 0
            context.flush()
        }
    }

    func flush(context: ChannelHandlerContext) {
        unflushed = 0
        context.flush()
    }
}
