import NIOCore
import NIOEmbedded
import Testing

@testable import AmbitRelay

/// The relay's ends on EmbeddedChannels (half-closes and resets need real sockets: HBONEFlowTests).
@Suite struct RelayHandlerTests {
    final class Ends {
        let loop = EmbeddedEventLoop()
        let downstream: EmbeddedChannel
        let upstream: EmbeddedChannel
        var summary: RelaySummary?

        init() throws {
            downstream = EmbeddedChannel(loop: loop)
            upstream = EmbeddedChannel(loop: loop)
            let downstreamSide = RelayHandler(isSocket: false)
            let upstreamSide = RelayHandler(isSocket: false)
            try downstream.pipeline.syncOperations.addHandler(downstreamSide)
            try upstream.pipeline.syncOperations.addHandler(upstreamSide)
            try downstream.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            try upstream.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
            let stats = RelayStats { [weak self] stats in self?.summary = stats.summary }
            RelayHandler.join(requestSide: downstreamSide, responseSide: upstreamSide, stats: stats)
        }
    }

    @Test func bytesPassBothWays() throws {
        let ends = try Ends()
        try ends.downstream.writeInbound(ByteBuffer(string: "request"))
        #expect(try ends.upstream.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "request"))
        try ends.upstream.writeInbound(ByteBuffer(string: "response"))
        #expect(try ends.downstream.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "response"))
    }
}
