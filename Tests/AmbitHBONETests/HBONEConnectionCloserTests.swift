import AmbitModel
import NIOCore
import NIOEmbedded
import NIOHTTP2
import Testing

@testable import AmbitHBONE

/// The connection deadlines of `HBONEConnectionCloser` on virtual time, and how `SentGoAwayDetector`
/// finds a GOAWAY among the frames a server writes.
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

    static func channel(
        drainDeadline: TimeAmount = .zero
    ) throws -> (EmbeddedChannel, HBONEConnectionCloser, QuiesceRecorder, Hits) {
        let channel = EmbeddedChannel()
        let recorder = QuiesceRecorder()
        let hits = Hits()
        let closer = HBONEConnectionCloser(idle: .seconds(300), afterGoAway: .seconds(10), drainDeadline: drainDeadline)
        {
            hits.all.append($0)
        }
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
        _ = try? channel.finish()
    }

    @Test func aStreamWhileTheTimerIsSetMovesTheIdleDeadline() throws {
        let (channel, closer, recorder, hits) = try Self.channel()
        // The connection's one timer is due at 300 s; a stream from 100 to 150 s moves the deadline to 450 s
        // (the timer, when it fires at 300 s, sets itself again for the rest).
        channel.embeddedEventLoop.advanceTime(by: .seconds(100))
        closer.streamOpened()
        channel.embeddedEventLoop.advanceTime(by: .seconds(50))
        closer.streamClosed()
        channel.embeddedEventLoop.advanceTime(by: .seconds(299))
        #expect(recorder.requests == 0 && hits.all.isEmpty)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(recorder.requests == 1)
        #expect(hits.all == [.idleTimeout])
        _ = try? channel.finish()
    }

    @Test func aGoAwaySentClosesTheConnectionAtTheDeadlineWhateverItsStreams() throws {
        let (channel, closer, _, hits) = try Self.channel()
        closer.streamOpened()
        closer.goAwaySent()
        channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)
        #expect(hits.all == [.closeAfterGoAway])
    }

    @Test func aLongerDrainDeadlineIsNotCutShort() throws {
        let (channel, closer, _, _) = try Self.channel(drainDeadline: .seconds(30))
        closer.goAwaySent()
        channel.embeddedEventLoop.advanceTime(by: .seconds(29))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)
    }

    /// Frame header: length (24 bits), type, flags, stream id (31 bits).
    static func frame(type: UInt8, payload: Int) -> [UInt8] {
        [UInt8(payload >> 16), UInt8(payload >> 8 & 0xFF), UInt8(payload & 0xFF), type, 0, 0, 0, 0, 0]
            + [UInt8](repeating: 0x07, count: payload)  // payload bytes that look like GOAWAY types
    }

    @Test func theDetectorFindsAGoAwayAmongFramesSplitAnyWay() throws {
        let settings = Self.frame(type: 0x4, payload: 18)
        let data = Self.frame(type: 0x0, payload: 3_000)
        let goAway = Self.frame(type: 0x7, payload: 8)
        let bytes = settings + data + goAway
        for split in [1, 5, 9, 4096] {
            let channel = EmbeddedChannel()
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            var found = 0
            var foundEarly = false
            try channel.pipeline.syncOperations.addHandler(SentGoAwayDetector { found += 1 })
            var offset = 0
            while offset < bytes.count {
                let end = min(offset + split, bytes.count)
                try channel.writeOutbound(ByteBuffer(bytes: bytes[offset..<end]))
                if end <= settings.count + data.count, found > 0 { foundEarly = true }
                offset = end
            }
            #expect(found == 1 && !foundEarly, "split \(split)")
            _ = try channel.finish(acceptAlreadyClosed: true)
        }
    }

    @Test func anIPv6SourceCountsAsItsSlash64AndAMappedIPv4AsItself() throws {
        let key = { (text: String) in HBONEConnectionLimiter.sourceKey(try IPAddress(parsing: text)) }
        #expect(try key("2001:db8:1:2::7") == IPAddress(parsing: "2001:db8:1:2::"))
        #expect(try key("2001:db8:1:2:ffff::9") == key("2001:db8:1:2::1"))
        #expect(try key("2001:db8:1:3::1") != key("2001:db8:1:2::1"))
        #expect(try key("::ffff:10.0.0.1") == IPAddress(parsing: "::ffff:10.0.0.1"))
        #expect(try key("::ffff:10.0.0.1") != key("::ffff:10.0.0.2"))
        #expect(try key("10.0.0.1") == IPAddress(parsing: "10.0.0.1"))
    }
}
