import AmbitHBONE
import AmbitModel
import AmbitRelay
import AmbitTestSupport
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// Flow control between streams of one connection, and graceful shutdown.
@Suite(.serialized) struct HBONEFlowTests {
    static let upstreamGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    static func endpoint(_ port: Int) -> IPEndpoint { IPEndpoint(.v4(0x7F00_0001), UInt16(port)) }

    /// A client connection to `port` (half-closure allowed) with `handler` in its pipeline.
    static func connect<Handler: ChannelHandler>(
        port: Int,
        group: any EventLoopGroup,
        handler: @escaping @Sendable () -> Handler
    ) async throws -> any Channel {
        try await ClientBootstrap(group: group)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler()) }
            }
            .connect(host: "127.0.0.1", port: port).get()
    }

    @Test func aSlowReaderDoesNotStallOtherStreamsOfTheConnection() async throws {
        let size = 64 << 20
        let source = try await TestTCPServer.start(.source(size), group: Self.upstreamGroup)
        let echo = try await TestTCPServer.start(.echo, group: Self.upstreamGroup)
        let world = try await HBONEWorld(destinations: [Self.endpoint(source.port), Self.endpoint(echo.port)])
        let slowPort = try await world.forwarder(to: Self.endpoint(source.port))
        let fastPort = try await world.forwarder(to: Self.endpoint(echo.port))

        // The slow client reads nothing for now: 64 MiB back up into its socket, the relay, the
        // stream window, and the server's upstream socket.
        let slow = try await openClient(port: slowPort, group: world.clientGroup)
        try await slow.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "go"))
            #expect(await eventually { await world.client.status().values.first?.streams == 1 })

            // Meanwhile another stream on the same connection moves 8 MiB both ways.
            let fast = try await TestTCPClient.exchange(
                port: fastPort,
                payload: .pattern(8 << 20),
                group: world.clientGroup
            )
            #expect(fast.error == nil)
            #expect(fast.receivedCount == 8 << 20)
            #expect(fast.receivedDigest == fast.sentDigest)
            let status = await world.client.status()
            #expect(status.count == 1)
            #expect(status.values.first?.connections == 1)  // both streams shared one connection

            // The slow reader now reads: everything arrives, in order.
            var received = 0
            var digest = TestPattern.StreamingDigest()
            for try await buffer in inbound {
                received += buffer.readableBytes
                digest.update(buffer)
            }
            #expect(received == size)
            #expect(digest.hex == TestPattern.digest(count: size))
        }
        await world.shutdown()
        await source.close()
        await echo.close()
    }

    /// The application stops reading, so the tunnel backs up (the server's relay waits for the
    /// application socket to become writable), and then closes while the client still sends:
    /// the tunnel must end — reset, the summary reported, the stream gone — not stay half-open
    /// holding its buffers and window (it did, and node agents grew by hundreds of MiB over a
    /// few iperf3 runs).
    @Test func anApplicationThatClosesWhileTheClientStillSendsEndsTheTunnel() async throws {
        let quitter = try await TestTCPServer.start(
            .closeAfterReading(1 << 20, stall: .milliseconds(500)),
            group: Self.upstreamGroup
        )
        let world = try await HBONEWorld(destinations: [Self.endpoint(quitter.port)])
        let port = try await world.forwarder(to: Self.endpoint(quitter.port))
        let started = ContinuousClock.now
        // Far more than every buffer and window on the way holds (about 24 MiB).
        // Like iperf3's client: it keeps sending until told otherwise, even after the other side
        // ended its output (half-close), and never closes by itself.
        let closed = world.clientGroup.next().makePromise(of: Void.self)
        let sender = try await Self.connect(port: port, group: world.clientGroup) { RelentlessSender(closed: closed) }
        let ended = await eventually(timeout: .seconds(15)) { !sender.isActive }
        #expect(ended, "the client's connection is still open: the tunnel is stuck")
        if !ended { try? await sender.close() }
        #expect(ContinuousClock.now - started < .seconds(16))
        #expect(await eventually { world.inbound.summaries.count == 1 }, "the server never finished the tunnel")
        #expect(await eventually { await world.client.status().values.first?.streams ?? 0 == 0 })
        await world.shutdown()
        await quitter.close()
    }

    /// An application that crashes (its socket resets) resets the client's connection at the other
    /// end of the tunnel — the server's relay resets the stream, the forwarder resets its socket —
    /// rather than ending it with a clean end of stream the client would take for a complete reply.
    @Test func anApplicationResetReachesTheClientAsAReset() async throws {
        let crasher = try await TestTCPServer.start(.resetAfterReading(5), group: Self.upstreamGroup)
        let world = try await HBONEWorld(destinations: [Self.endpoint(crasher.port)])
        let port = try await world.forwarder(to: Self.endpoint(crasher.port))
        let ended = world.clientGroup.next().makePromise(of: String.self)
        let client = try await Self.connect(port: port, group: world.clientGroup) { EndWatcher(ended: ended) }
        try await client.writeAndFlush(ByteBuffer(string: "hello"))
        #expect(try await ended.futureResult.get() == "reset")
        #expect(await eventually { world.inbound.summaries.count == 1 })
        await world.shutdown()
        await crasher.close()
    }

    /// The reverse: a client whose socket resets resets the application's connection (the
    /// forwarder sends RST_STREAM, the server's relay closes the upstream socket with SO_LINGER 0).
    /// A client that closes normally gives the application a clean end of stream.
    @Test(arguments: [true, false])
    func aClientResetReachesTheApplicationAsAReset(reset: Bool) async throws {
        let seen = Ends()
        let watcher = try await TestTCPServer.start(
            .reportEnd { end in seen.record(end) },
            group: Self.upstreamGroup
        )
        let world = try await HBONEWorld(destinations: [Self.endpoint(watcher.port)])
        let port = try await world.forwarder(to: Self.endpoint(watcher.port))
        let client = try await ClientBootstrap(group: world.clientGroup)
            .connect(host: "127.0.0.1", port: port).get()
        try await client.writeAndFlush(ByteBuffer(string: "hello"))
        #expect(await eventually { await world.client.status().values.first?.streams == 1 })
        if reset {
            RelaySockets.reset(client)
        } else {
            try await client.close()
        }
        #expect(await eventually { !seen.all.isEmpty })
        #expect(seen.all == [reset ? "reset" : "eof"])
        await world.shutdown()
        await watcher.close()
    }

    @Test func gracefulShutdownLetsOpenStreamsFinishAndRefusesNewOnes() async throws {
        let echo = try await TestTCPServer.start(.echo, group: Self.upstreamGroup)
        var configuration = HBONEConfiguration()
        configuration.drainDeadline = .seconds(10)
        let world = try await HBONEWorld(destinations: [Self.endpoint(echo.port)], configuration: configuration)
        let port = try await world.forwarder(to: Self.endpoint(echo.port))
        let open = try await openClient(port: port, group: world.clientGroup)
        try await open.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            try await outbound.write(ByteBuffer(string: "before"))
            #expect(try await read(6, from: &iterator) == Array("before".utf8))

            // GOAWAY; the listener closes; the open stream keeps working.
            let shutdown = world.server.shutdown(on: world.serverGroup.next())
            try await Task.sleep(for: .milliseconds(200))
            try await outbound.write(ByteBuffer(string: "during"))
            #expect(try await read(6, from: &iterator) == Array("during".utf8))

            // A new tunnel cannot start: the connection is draining and the listener is gone.
            let refused = try await TestTCPClient.exchange(
                port: port,
                payload: .bytes(Array("new".utf8)),
                group: world.clientGroup
            )
            #expect(refused.receivedCount == 0)
            #expect(await eventually { world.tunnelErrors.count == 1 })
            #expect(world.tunnelErrors.first?.code == .connectFailed)

            outbound.finish()
            #expect(try await read(1, from: &iterator).isEmpty)
            // With its last stream done, the server finishes shutting down well before the deadline.
            let started = ContinuousClock.now
            try await shutdown.get()
            #expect(ContinuousClock.now - started < .seconds(5))
        }
        await world.shutdown()
        await echo.close()
    }
}

/// Writes 64 KiB chunks for as long as its channel is writable and open; ignores end of input.
final class RelentlessSender: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let closed: EventLoopPromise<Void>

    init(closed: EventLoopPromise<Void>) { self.closed = closed }

    func channelActive(context: ChannelHandlerContext) { pump(context) }
    func channelWritabilityChanged(context: ChannelHandlerContext) { pump(context) }

    private func pump(_ context: ChannelHandlerContext) {
        while context.channel.isActive && context.channel.isWritable {
            context.write(wrapOutboundOut(ByteBuffer(repeating: 0x62, count: 64 << 10)), promise: nil)
            context.flush()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {}  // keeps sending
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    func channelInactive(context: ChannelHandlerContext) { closed.succeed(()) }
}

/// How the application's connections ended, as ``TestTCPBehaviour/reportEnd(_:)`` reports them.
final class Ends: Sendable {
    private let ends = Mutex<[String]>([])
    func record(_ end: String) { ends.withLock { $0.append(end) } }
    var all: [String] { ends.withLock { $0 } }
}

/// Reports how its connection ended, once: `"eof"` (the peer's FIN), `"reset"` (ECONNRESET), or
/// `"closed"` (gone without either).
final class EndWatcher: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let ended: EventLoopPromise<String>
    private var done = false

    init(ended: EventLoopPromise<String>) { self.ended = ended }

    private func finish(_ how: String) {
        guard !done else { return }
        done = true
        ended.succeed(how)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            finish("eof")
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish((error as? IOError)?.errnoCode == ECONNRESET ? "reset" : "error: \(error)")
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) { finish("closed") }
}
