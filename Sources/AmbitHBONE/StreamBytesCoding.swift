import NIOCore
import NIOHTTP2

/// Turning the payloads of an established HBONE stream into bytes and back, shared by the
/// server and client stream handlers:
/// - DATA becomes `ByteBuffer` reads; END_STREAM (on DATA or trailers) becomes
///   `ChannelEvent.inputClosed`; RST_STREAM arrives as an error from the stream channel.
/// - `ByteBuffer` writes become DATA; `close(mode: .output)` becomes an empty DATA with
///   END_STREAM, so a relay can half-close a stream like a socket. Empty writes (an HTTP/1
///   encoder's end of message, say) send nothing: a peer counts empty DATA frames without
///   END_STREAM as a denial-of-service pattern (NIO allows one in a row) and drops the connection.
enum StreamBytesCoding {
    /// Delivers one inbound payload of an established stream.
    static func deliver(_ payload: HTTP2Frame.FramePayload, to context: ChannelHandlerContext) {
        switch payload {
        case .data(let data):
            if case .byteBuffer(let buffer) = data.data, buffer.readableBytes > 0 {
                context.fireChannelRead(NIOAny(buffer))
            }
            if data.endStream {
                context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            }
        case .headers(let headers) where headers.endStream:
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        default:
            break
        }
    }

    /// Writes `buffer` as DATA, or completes `promise` at once when it is empty (see above).
    static func write(_ buffer: ByteBuffer, to context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        guard buffer.readableBytes > 0 else {
            promise?.succeed(())
            return
        }
        context.write(NIOAny(dataFrame(buffer)), promise: promise)
    }

    static func dataFrame(_ buffer: ByteBuffer, endStream: Bool = false) -> HTTP2Frame.FramePayload {
        .data(HTTP2Frame.FramePayload.Data(data: .byteBuffer(buffer), endStream: endStream))
    }

    static func endStream(allocator: ByteBufferAllocator) -> HTTP2Frame.FramePayload {
        dataFrame(allocator.buffer(capacity: 0), endStream: true)
    }
}
