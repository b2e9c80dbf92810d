import NIOCore
import NIOEmbedded
import NIOHTTP2
import Testing

@testable import AmbitHBONE

/// The connection deadlines of `HBONEConnectionCloser`, on virtual time.
@Suite struct HBONEConnectionCloserTests {
    /// Records the graceful-shutdown requests the closer sends down the pipeline.
    final class QuiesceRecorder: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame
        var requests = 0

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is ChannelShouldQuiesceEvent { requests += 1 }
            context.fireUserInboundEventTriggered(event)
        }
    }

    final class Hits {
        var all: [HBONELimit] = []
    }

    static func channel() throws -> (EmbeddedChannel, HBONEConnectionCloser, QuiesceRecorder, Hits) {
        let channel = EmbeddedChannel()
        let recorder = QuiesceRecorder()
        let hits = Hits()
        let closer = HBONEConnectionCloser(idle: .seconds(300), afterGoAway: .seconds(10)) { hits.all.append($0) }
        try channel.pipeline.syncOperations.addHandler(recorder)
        try channel.pipeline.syncOperations.addHandler(closer)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, closer, recorder, hits)
    }

    @Test func openStreamsHoldOffTheIdleDeadlineAndTheLastOneRestartsIt() throws {
        let (channel, closer, recorder, hits) = try Self.channel()
        channel.embeddedEventLoop.advanceTime(by: .seconds(200))
        closer.streamOpened()
        closer.streamOpened()
        channel.embeddedEventLoop.advanceTime(by: .seconds(400))
        closer.streamClosed()
        channel.embeddedEventLoop.advanceTime(by: .seconds(400))
        #expect(recorder.requests == 0 && hits.all.isEmpty)

        closer.streamClosed()
        channel.embeddedEventLoop.advanceTime(by: .seconds(299))
        #expect(recorder.requests == 0)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(recorder.requests == 1)
        #expect(hits.all == [.idleTimeout])
        #expect(channel.isActive, "the connection-management handler closes it gracefully, not the closer")
        _ = try? channel.finish()
    }

    @Test func aGoAwayReceivedClosesTheConnectionAtTheDeadlineWhateverItsStreams() throws {
        let (channel, closer, _, hits) = try Self.channel()
        closer.streamOpened()
        try channel.writeInbound(
            HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: 1, errorCode: .noError, opaqueData: nil))
        )
        channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)
        #expect(hits.all == [.closeAfterGoAway])
    }
}
