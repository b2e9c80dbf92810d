import AmbitModel
import AmbitRelay
import AmbitTestSupport
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// The plain relay used for destinations outside the mesh: same relay semantics, no HBONE.
@Suite struct TCPPassthroughTests {
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)

    static func endpoint(_ port: Int) -> IPEndpoint { IPEndpoint(.v4(0x7F00_0001), UInt16(port)) }

    @Test func relaysBothWaysWithHalfClose() async throws {
        let digest = try await TestTCPServer.start(.digest, group: Self.group)
        let relay = try await TCPPassthrough.listen(
            host: "127.0.0.1",
            port: 0,
            group: Self.group,
            destination: Self.endpoint(digest.port)
        ).get()
        let result = try await TestTCPClient.exchange(
            port: relay.localAddress!.port!,
            payload: .pattern(8 << 20),
            group: Self.group
        )
        #expect(result.error == nil)
        #expect(result.text == "\(8 << 20) \(result.sentDigest)")
        try await relay.close()
        await digest.close()
    }

    @Test func aRefusedUpstreamResetsTheClient() async throws {
        let closed = try await TestTCPServer.start(.echo, group: Self.group)
        let target = Self.endpoint(closed.port)
        await closed.close()
        let relay = try await TCPPassthrough.listen(host: "127.0.0.1", port: 0, group: Self.group, destination: target)
            .get()
        let result = try await TestTCPClient.exchange(
            port: relay.localAddress!.port!,
            payload: .bytes(Array("x".utf8)),
            group: Self.group
        )
        #expect(result.receivedCount == 0)
        #expect(result.error != nil, "reset, not an empty reply")
        try await relay.close()
    }

    @Test func reportsBytesEachWay() async throws {
        let echo = try await TestTCPServer.start(.echo, group: Self.group)
        let summaries = RecordedSummaries()
        let listener = try await ServerBootstrap(group: Self.group)
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                do {
                    try RelaySockets.prepare(channel)
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
                TCPPassthrough.relay(downstream: channel, to: Self.endpoint(echo.port)).whenSuccess {
                    summaries.append($0)
                }
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            .bind(host: "127.0.0.1", port: 0).get()
        _ = try await TestTCPClient.exchange(
            port: listener.localAddress!.port!,
            payload: .bytes(Array(repeating: 7, count: 5000)),
            group: Self.group
        )
        #expect(await eventually { summaries.values.count == 1 })
        #expect(summaries.values.first?.requestBytes == 5000)
        #expect(summaries.values.first?.responseBytes == 5000)
        try await listener.close()
        await echo.close()
    }
}

final class RecordedSummaries: Sendable {
    private let storage = Mutex<[RelaySummary]>([])
    func append(_ summary: RelaySummary) { storage.withLock { $0.append(summary) } }
    var values: [RelaySummary] { storage.withLock { $0 } }
}
