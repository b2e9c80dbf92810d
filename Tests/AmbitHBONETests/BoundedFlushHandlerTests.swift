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

    @Test func aLargeFlushReachesTLSInChunksInOrder() throws {
        let recorder = Recorder()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(recorder)
        try channel.pipeline.syncOperations.addHandler(BoundedFlushHandler(chunk: 100))
        for marker in UInt8(1)...6 {
            channel.write(ByteBuffer(repeating: marker, count: 40), promise: nil)
        }
        channel.flush()
        #expect(
            recorder.events == [
                "write 1x40", "write 2x40", "write 3x40", "flush",
                "write 4x40", "write 5x40", "write 6x40", "flush",
                "flush",
            ]
        )
        var written: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { written += buffer.readableBytesView }
        #expect(written == (UInt8(1)...6).flatMap { Array(repeating: $0, count: 40) })
        _ = try channel.finish()
    }

    @Test func smallFlushesPassUnchanged() throws {
        let recorder = Recorder()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(recorder)
        try channel.pipeline.syncOperations.addHandler(BoundedFlushHandler(chunk: 100))
        channel.write(ByteBuffer(repeating: 7, count: 60), promise: nil)
        channel.flush()
        channel.write(ByteBuffer(repeating: 8, count: 60), promise: nil)
        channel.flush()
        #expect(recorder.events == ["write 7x60", "flush", "write 8x60", "flush"])
        _ = try channel.finish()
    }
}
