import NIOCore
import NIOEmbedded
import Testing

@testable import AmbitHBONE

/// What reaches the TLS handler: writes in order, and a flush at most every `chunk` bytes.
@Suite struct BoundedFlushHandlerTests {
    /// Stands where NIOSSL sits: records each write's first byte and size, and each flush.
    final class Recorder: ChannelOutboundHandler {
        typealias OutboundIn = IOData
        var events: [String] = []

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            if case .byteBuffer(let buffer) = unwrapOutboundIn(data) {
                let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) ?? 0
                events.append("write \(first)x\(buffer.readableBytes)")
            }
            context.write(data, promise: promise)
        }

        func flush(context: ChannelHandlerContext) {
            events.append("flush")
            context.flush()
        }
    }

    /// A channel with the handler under test, and the recorder where TLS would be.
    static func pipeline(chunk: Int) throws -> (Recorder, EmbeddedChannel) {
        let recorder = Recorder()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(recorder)
        try channel.pipeline.syncOperations.addHandler(BoundedFlushHandler(chunk: chunk))
        return (recorder, channel)
    }

    @Test func aLargeFlushReachesTLSInChunksInOrder() throws {
        let (recorder, channel) = try Self.pipeline(chunk: 2500)
        for marker in UInt8(1)...6 {
            channel.write(ByteBuffer(repeating: marker, count: 1024), promise: nil)
        }
        channel.flush()
        #expect(
            recorder.events == [
                "write 1x1024", "write 2x1024", "write 3x1024", "flush",
                "write 4x1024", "write 5x1024", "write 6x1024", "flush",
                "flush",
            ]
        )
        var written: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { written += buffer.readableBytesView }
        #expect(written == (UInt8(1)...6).flatMap { Array(repeating: $0, count: 1024) })
        _ = try channel.finish()
    }

    /// A small write (a frame header) never ends a chunk, so no flush falls between a header and its payload.
    @Test func noFlushFollowsASmallWrite() throws {
        let (recorder, channel) = try Self.pipeline(chunk: 2048)
        channel.write(ByteBuffer(repeating: 1, count: 2040), promise: nil)
        channel.write(ByteBuffer(repeating: 2, count: 9), promise: nil)
        channel.write(ByteBuffer(repeating: 3, count: 1500), promise: nil)
        channel.flush()
        #expect(recorder.events == ["write 1x2040", "write 2x9", "write 3x1500", "flush", "flush"])
        _ = try channel.finish()
    }

    @Test func smallFlushesPassUnchanged() throws {
        let (recorder, channel) = try Self.pipeline(chunk: 100)
        channel.write(ByteBuffer(repeating: 7, count: 60), promise: nil)
        channel.flush()
        channel.write(ByteBuffer(repeating: 8, count: 60), promise: nil)
        channel.flush()
        #expect(recorder.events == ["write 7x60", "flush", "write 8x60", "flush"])
        _ = try channel.finish()
    }
}
