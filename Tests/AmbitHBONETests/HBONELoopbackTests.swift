import AmbitHBONE
import AmbitModel
import AmbitTestSupport
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import Testing

/// Lets many tasks wait at one point until the test releases them.
actor Gate {
    private var arrived = 0
    private var released = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func arrive() async {
        arrived += 1
        if released { return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        released = true
        for waiter in waiters { waiter.resume() }
        waiters = []
    }

    var count: Int { arrived }
}

typealias ByteChannel = NIOAsyncChannel<ByteBuffer, ByteBuffer>

/// Opens a client connection whose reads and writes the test drives.
func openClient(port: Int, group: any EventLoopGroup) async throws -> ByteChannel {
    try await ClientBootstrap(group: group)
        .channelOption(.allowRemoteHalfClosure, value: true)
        .connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try ByteChannel(
                    wrappingChannelSynchronously: channel,
                    configuration: .init(isOutboundHalfClosureEnabled: true)
                )
            }
        }
}

/// Reads until `count` bytes arrived (or the stream ended) from an inbound iterator.
func read(_ count: Int, from iterator: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator) async throws
    -> [UInt8]
{
    var bytes: [UInt8] = []
    while bytes.count < count, let buffer = try await iterator.next() {
        bytes += buffer.readableBytesView
    }
    return bytes
}

/// Real TLS, real HTTP/2, real sockets on 127.0.0.1: client → forwarder → HBONE → server → upstream.
@Suite(.serialized) struct HBONELoopbackTests {
    static let upstreamGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    static func endpoint(_ port: Int) -> IPEndpoint { IPEndpoint(.v4(0x7F00_0001), UInt16(port)) }

    @Test func echoesThroughATunnelAndCountsBytes() async throws {
        let echo = try await TestTCPServer.start(.echo, group: Self.upstreamGroup)
        let world = try await HBONEWorld(destinations: [Self.endpoint(echo.port)])
        let port = try await world.forwarder(to: Self.endpoint(echo.port))
        let result = try await TestTCPClient.exchange(
            port: port,
            payload: .bytes(Array("hello through hbone".utf8)),
            group: world.clientGroup
        )
        #expect(result.text == "hello through hbone")
        #expect(result.error == nil)
        #expect(await eventually { world.inbound.summaries.count == 1 })
        let summary = try #require(world.inbound.summaries.first)
        #expect(summary.requestBytes == 19)
        #expect(summary.responseBytes == 19)
        #expect(summary.error == nil)
        let request = try #require(world.inbound.requests.first)
        #expect(request.peerIdentity == .test("demo", "client"))
        #expect(request.authority == Self.endpoint(echo.port))
        #expect(request.headers.baggage == "k8s.namespace.name=demo")
        #expect(request.headers.forwardedFor?.address == .v4(0x7F00_0001))
        #expect(request.headers.traceparent.map(HBONEHeaders.isValidTraceparent) == true)
        #expect(request.sourceAddress == .v4(0x7F00_0001))
        await world.shutdown()
        await echo.close()
    }

    @Test func thousandConcurrentTunnelsOpenAConnectionPerHundredStreams() async throws {
        let echo = try await TestTCPServer.start(.echo, group: Self.upstreamGroup)
        let world = try await HBONEWorld(destinations: [Self.endpoint(echo.port)])
        let port = try await world.forwarder(to: Self.endpoint(echo.port))
        let count = 1000
        let gate = Gate()
        let clients = Task {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<count {
                    group.addTask {
                        let channel = try await openClient(port: port, group: world.clientGroup)
                        return try await channel.executeThenClose { inbound, outbound in
                            let message = Array(String(format: "tunnel %06d", index).utf8)
                            try await outbound.write(ByteBuffer(bytes: message))
                            var iterator = inbound.makeAsyncIterator()
                            let echoed = try await read(message.count, from: &iterator)
                            await gate.arrive()  // all tunnels stay open until the test looked
                            outbound.finish()
                            let rest = try await read(1, from: &iterator)
                            return echoed == message && rest.isEmpty
                        }
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
        }
        #expect(await eventually(timeout: .seconds(60)) { await gate.count == count })
        let status = await world.client.status()
        #expect(status.count == 1)
        #expect(status.values.first?.connections == 10)
        #expect(status.values.first?.streams == count)
        await gate.release()
        #expect(try await clients.value == count)
        #expect(await eventually { world.inbound.summaries.count == count })
        #expect(world.inbound.summaries.allSatisfy { $0.requestBytes == 13 && $0.responseBytes == 13 })
        await world.shutdown()
        await echo.close()
    }

    /// Each side verifies the other's chain once: the second connection's handshake accepts the
    /// same chain from memory, on both ends.
    @Test func aSecondConnectionWithTheSameCertificatesIsNotVerifiedAgain() async throws {
        let echo = try await TestTCPServer.start(.echo, group: Self.upstreamGroup)
        var configuration = HBONEConfiguration()
        configuration.clientMaxStreamsPerConnection = 1  // the second tunnel needs its own connection
        let world = try await HBONEWorld(destinations: [Self.endpoint(echo.port)], configuration: configuration)
        let port = try await world.forwarder(to: Self.endpoint(echo.port))
        var held: [ByteChannel] = []
        for index in 0..<2 {
            let channel = try await openClient(port: port, group: world.clientGroup)
            let message = Array("tunnel \(index)".utf8)
            try await channel.outbound.write(ByteBuffer(bytes: message))
            var iterator = channel.inbound.makeAsyncIterator()
            #expect(try await read(message.count, from: &iterator) == message)
            held.append(channel)  // open, so the next tunnel cannot share its connection
        }
        #expect(await world.client.status().values.first?.connections == 2)
        #expect(world.server.peerVerifier.verifiedCount == 1)
        #expect(world.server.peerVerifier.cachedCount == 1)
        #expect(world.client.peerVerifier.verifiedCount == 1)
        #expect(world.client.peerVerifier.cachedCount == 1)
        for channel in held { try await channel.channel.close() }
        await world.shutdown()
        await echo.close()
    }

    @Test func oneGibibyteKeepsItsDigest() async throws {
        let digest = try await TestTCPServer.start(.digest, group: Self.upstreamGroup)
        let world = try await HBONEWorld(destinations: [Self.endpoint(digest.port)])
        let port = try await world.forwarder(to: Self.endpoint(digest.port))
        let size = 1 << 30
        let result = try await TestTCPClient.exchange(port: port, payload: .pattern(size), group: world.clientGroup)
        #expect(result.error == nil)
        #expect(result.text == "\(size) \(result.sentDigest)")
        #expect(result.sentDigest == TestPattern.digest(count: size))
        await world.shutdown()
        await digest.close()
    }

    @Test func halfClosePropagatesFromClientToServer() async throws {
        let echo = try await TestTCPServer.start(.echo, group: Self.upstreamGroup)
        let world = try await HBONEWorld(destinations: [Self.endpoint(echo.port)])
        let port = try await world.forwarder(to: Self.endpoint(echo.port))
        let channel = try await openClient(port: port, group: world.clientGroup)
        let received = try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "before shutdown"))
            outbound.finish()  // shutdown(SHUT_WR): END_STREAM, then the upstream sees EOF and echoes its EOF back
            var bytes: [UInt8] = []
            for try await buffer in inbound { bytes += buffer.readableBytesView }
            return String(decoding: bytes, as: UTF8.self)
        }
        #expect(received == "before shutdown")
        await world.shutdown()
        await echo.close()
    }

    @Test func halfClosePropagatesFromServerToClient() async throws {
        let report = RecordedText()
        let upstream = try await TestTCPServer.start(
            .closeOutputFirst(report: { report.set($0) }),
            group: Self.upstreamGroup
        )
        let world = try await HBONEWorld(destinations: [Self.endpoint(upstream.port)])
        let port = try await world.forwarder(to: Self.endpoint(upstream.port))
        let channel = try await openClient(port: port, group: world.clientGroup)
        try await channel.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            // The upstream closed its output: we see end of stream while we can still send.
            #expect(try await iterator.next() == nil)
            try await outbound.write(ByteBuffer(string: "still sending"))
            outbound.finish()
        }
        let expected = "13 \(TestPattern.sha256(Array("still sending".utf8)))"
        #expect(await eventually { report.value == expected }, "got \(report.value ?? "nothing")")
        await world.shutdown()
        await upstream.close()
    }

    @Test func refusedUpstreamIs503() async throws {
        let closed = try await TestTCPServer.start(.echo, group: Self.upstreamGroup)
        let target = Self.endpoint(closed.port)
        await closed.close()
        let world = try await HBONEWorld(destinations: [target])
        let port = try await world.forwarder(to: target)
        let result = try await TestTCPClient.exchange(
            port: port,
            payload: .bytes(Array("x".utf8)),
            group: world.clientGroup
        )
        #expect(result.receivedCount == 0)
        #expect(result.error != nil, "a failed tunnel resets the downstream socket")
        #expect(await eventually { world.tunnelErrors.count == 1 })
        #expect(world.tunnelErrors.first?.code == .status(503))
        await world.shutdown()
    }

    @Test func policyDenialIs401() async throws {
        let echo = try await TestTCPServer.start(.echo, group: Self.upstreamGroup)
        let world = try await HBONEWorld(destinations: [Self.endpoint(echo.port)], allow: { _ in false })
        let port = try await world.forwarder(to: Self.endpoint(echo.port))
        let result = try await TestTCPClient.exchange(
            port: port,
            payload: .bytes(Array("x".utf8)),
            group: world.clientGroup
        )
        #expect(result.receivedCount == 0)
        #expect(result.error != nil, "a failed tunnel resets the downstream socket")
        #expect(await eventually { world.tunnelErrors.count == 1 })
        #expect(world.tunnelErrors.first?.code == .status(401))
        await world.shutdown()
        await echo.close()
    }

    @Test func authorityThatIsNotALocalDestinationIs400() async throws {
        let echo = try await TestTCPServer.start(.echo, group: Self.upstreamGroup)
        let world = try await HBONEWorld(destinations: [Self.endpoint(echo.port)])
        let port = try await world.forwarder(to: IPEndpoint(.v4(0x0A00_0009), 80))
        _ = try await TestTCPClient.exchange(port: port, payload: .bytes(Array("x".utf8)), group: world.clientGroup)
        #expect(await eventually { world.tunnelErrors.count == 1 })
        #expect(world.tunnelErrors.first?.code == .status(400))
        await world.shutdown()
        await echo.close()
    }

    @Test func unexpectedServerIdentityIsRefusedByTheClient() async throws {
        let echo = try await TestTCPServer.start(.echo, group: Self.upstreamGroup)
        let world = try await HBONEWorld(
            destinations: [Self.endpoint(echo.port)],
            serverIdentity: .test("demo", "impostor")
        )
        let port = try await world.forwarder(to: Self.endpoint(echo.port))
        _ = try await TestTCPClient.exchange(port: port, payload: .bytes(Array("x".utf8)), group: world.clientGroup)
        #expect(await eventually { world.tunnelErrors.count == 1 })
        let error = try #require(world.tunnelErrors.first)
        #expect(error.code == .handshakeFailed)
        #expect(
            error.message.contains(
                "peer identity spiffe://cluster.local/ns/demo/sa/impostor is not one of the expected identities"
            )
        )
        #expect(world.inbound.requests.isEmpty)
        await world.shutdown()
        await echo.close()
    }
}
