import AmbitTestSupport
import Dispatch
import NIOCore
import NIOPosix
import Testing

@testable import AmbitRelay

#if canImport(Glibc)
    import Glibc
#endif

/// Closing a listener while a socket it accepted is still being set up on another event loop: NIO closes that
/// socket with a clean FIN, so a client that reached the listener gets an empty reply (what an agent upgrade
/// did to one request in a few hundred). Pausing first (``RelaySockets/pauseAccepting(_:group:on:)``) serves it.
@Suite struct ListenerPauseTests {
    /// Reports each socket the listener accepts, before NIO's accept handler sets it up.
    final class AcceptWatcher: ChannelInboundHandler, Sendable {
        typealias InboundIn = any Channel
        let accepted: AsyncStream<any Channel>.Continuation

        init(_ accepted: AsyncStream<any Channel>.Continuation) { self.accepted = accepted }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            accepted.yield(Self.unwrapInboundIn(data))
            context.fireChannelRead(data)
        }
    }

    /// Serves an accepted socket: says "served" and closes.
    final class Greeter: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        func channelActive(context: ChannelHandlerContext) {
            // A write to a fresh socket goes out at once: the close after it ends the stream behind it.
            context.writeAndFlush(Self.wrapOutboundOut(ByteBuffer(string: "served")), promise: nil)
            context.close(promise: nil)
        }
    }

    /// Says how a client connection ended: "reset", "closed" (a FIN), "data" or another error.
    final class EndWatcher: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let ended: EventLoopPromise<String>

        init(_ ended: EventLoopPromise<String>) { self.ended = ended }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) { ended.succeed("data") }
        func channelInactive(context: ChannelHandlerContext) { ended.succeed("closed") }
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            ended.succeed((error as? IOError)?.errnoCode == ECONNRESET ? "reset" : "\(error)")
            context.close(promise: nil)
        }
    }

    @Test(arguments: [true, false])
    func socketsAcceptedBeforeTheListenerClosesAreServed(paused: Bool) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let clients = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let gate = DispatchSemaphore(value: 0)
        var failure: (any Error)?
        do {
            try await exercise(paused: paused, group: group, clients: clients, gate: gate)
        } catch {
            failure = error
        }
        // A loop still held would never shut down.
        gate.signal()
        try await group.shutdownGracefully()
        try await clients.shutdownGracefully()
        if let failure { throw failure }
    }

    private func exercise(
        paused: Bool,
        group: MultiThreadedEventLoopGroup,
        clients: MultiThreadedEventLoopGroup,
        gate: DispatchSemaphore
    ) async throws {
        let (accepted, acceptedContinuation) = AsyncStream.makeStream(of: (any Channel).self)
        let listener = try await RelaySockets.acceptingBootstrap(group: group) { channel in
            try? channel.pipeline.syncOperations.addHandler(Greeter())
        }
        .serverChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(AcceptWatcher(acceptedContinuation))
            }
        }
        .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(listener.localAddress?.port)
        let listenerLoop = listener.eventLoop
        let otherLoop = try #require(group.makeIterator().first { $0 !== listenerLoop })

        // The other loop is held, so the sockets handed to it wait there, accepted but not set up.
        otherLoop.execute { gate.wait() }
        let count = 4
        let exchanges = (0..<count).map { _ in
            Task { try await TestTCPClient.exchange(port: port, payload: .bytes([]), group: clients) }
        }
        var iterator = accepted.makeAsyncIterator()
        var held = 0
        for _ in 0..<count {
            let child = try #require(await iterator.next())
            if child.eventLoop === otherLoop { held += 1 }
        }
        // Round robin over two loops: some of the sockets went to the held one.
        #expect(held > 0)

        let pause = paused ? RelaySockets.pauseAccepting([listener], group: group, on: listenerLoop) : nil
        if !paused { listener.close(promise: nil) }
        // The listener's loop has run the pause (or the close) before the held loop goes on.
        try await listenerLoop.submit {}.get()
        gate.signal()
        try await pause?.get()
        // Paused, the listener accepts nothing more: a client that connects now waits in the kernel's queue, and
        // the close (no other listener of the port here) resets it.
        var late: EventLoopFuture<String>?
        if paused {
            let ended = clients.next().makePromise(of: String.self)
            _ = try await ClientBootstrap(group: clients)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(EndWatcher(ended))
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
            late = ended.futureResult
        }
        try? await listener.close()
        acceptedContinuation.finish()
        #expect(await iterator.next() == nil, "the listener accepted after the pause")
        if let late { #expect(try await late.get() == "reset") }

        var served = 0
        var dropped = 0
        for exchange in exchanges {
            let result = try await exchange.value
            if result.text == "served" { served += 1 } else if result.received.isEmpty { dropped += 1 }
        }
        if paused {
            #expect(served == count)
        } else {
            // Without the pause, NIO closes every socket still being set up: the failure this guards against.
            #expect(dropped == held)
            #expect(served == count - held)
        }
    }
}
