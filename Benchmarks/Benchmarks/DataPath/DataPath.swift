import AmbitHBONE
import AmbitModel
import AmbitRelay
import AmbitTestSupport
import Benchmark
import Foundation
import Logging
import NIOCore
import NIOHTTP2
import NIOPosix

// The data path's hot loops on loopback: opening an HBONE stream on an established (pooled)
// mutual-TLS HTTP/2 connection, a request and its response through an HBONE stream, and moving
// bytes through Ambit's relay (the loop every proxied connection runs). Wall clock per operation,
// with allocations and read and write system calls (the read- and write-like calls Linux counts
// in /proc/self/io: read, recvmsg, write, sendmsg, ...), of every thread of the process: both
// ends are in it.

/// An HBONE server whose tunnels end in the server (no upstream connect): at once for port 8080,
/// echoing what they get for port 9090; and a client with one pooled connection to it.
final class StreamWorld: Sendable {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let serverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let server: HBONEServer
    let listener: any Channel
    let client: HBONEClient
    let request: HBONETunnelRequest
    let echoRequest: HBONETunnelRequest

    init() throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let pki = try TestPKI(now: Date() - 3600)
        let serverCertificate = try pki.issue(.test("bench", "server"), now: Date() - 60)
        let clientCertificate = try pki.issue(.test("bench", "client"), now: Date() - 60)
        server = HBONEServer(
            trustDomain: "cluster.local",
            roots: [pki.authority.root],
            certificate: { serverCertificate },
            inbound: EndOrEcho(),
            logger: logger
        )
        listener = try server.listen(host: "127.0.0.1", port: 0, group: serverGroup).wait()
        client = HBONEClient(trustDomain: "cluster.local", roots: [pki.authority.root], logger: logger)
        let port = UInt16(listener.localAddress!.port!)
        request = HBONETunnelRequest(
            sourceCertificate: clientCertificate,
            destinationIdentities: [.test("bench", "server")],
            nextHop: IPEndpoint(.v4(0x7F00_0001), port),
            authority: IPEndpoint(.v4(0x7F00_0001), 8080)
        )
        echoRequest = HBONETunnelRequest(
            sourceCertificate: clientCertificate,
            destinationIdentities: [.test("bench", "server")],
            nextHop: IPEndpoint(.v4(0x7F00_0001), port),
            authority: IPEndpoint(.v4(0x7F00_0001), 9090)
        )
    }

    /// An open stream to the echoing end, with `handler` reading what comes back.
    func echoStream(_ handler: RoundTrip) throws -> any Channel {
        let stream = try client.openStream(echoRequest, on: group.next()).wait()
        try stream.eventLoop.submit { try stream.pipeline.syncOperations.addHandler(handler) }.wait()
        return stream
    }

    /// Opens one stream (CONNECT answered 200) and closes it. Closing before either side ended
    /// its data is a reset (RST_STREAM CANCEL), which NIO reports as the close's error: expected
    /// here, as for any tunnel whose client gives up first.
    func openAndClose() throws {
        let stream = try client.openStream(request, on: group.next()).wait()
        do {
            try stream.close().wait()
        } catch let closed as NIOHTTP2Errors.StreamClosed where closed.errorCode == .cancel {
        }
    }
}

struct EndOrEcho: HBONEInboundHandler {
    func open(_ request: HBONEInboundRequest, on eventLoop: any EventLoop) -> EventLoopFuture<HBONEInboundResult> {
        guard request.authority.port == 9090 else {
            return eventLoop.makeSucceededFuture(.terminate(configure: { _ in }, finished: nil))
        }
        return eventLoop.makeSucceededFuture(
            .terminate(
                configure: { channel in try channel.pipeline.syncOperations.addHandler(RelayWorld.Echo()) },
                finished: nil
            )
        )
    }
}

/// An echo sink behind Ambit's plain TCP relay, and one client connection through it.
final class RelayWorld: Sendable {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let relayGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let sink: any Channel
    let relay: any Channel

    init() throws {
        sink = try ServerBootstrap(group: group)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Echo()) }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        let target = IPEndpoint(.v4(0x7F00_0001), UInt16(sink.localAddress!.port!))
        relay = try TCPPassthrough.listen(host: "127.0.0.1", port: 0, group: relayGroup, destination: target).wait()
    }

    final class Echo: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.writeAndFlush(data, promise: nil)
        }
    }
}

/// Sends `payload`, completes once as many bytes came back.
final class RoundTrip: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private var expected = 0
    private var promise: EventLoopPromise<Void>?

    func start(_ payload: ByteBuffer, on channel: any Channel) -> EventLoopFuture<Void> {
        channel.eventLoop.flatSubmit {
            let promise = channel.eventLoop.makePromise(of: Void.self)
            self.expected = payload.readableBytes
            self.promise = promise
            channel.writeAndFlush(payload, promise: nil)
            return promise.futureResult
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        expected -= unwrapInboundIn(data).readableBytes
        if expected <= 0 {
            promise?.succeed(())
            promise = nil
        }
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .readSyscalls, .writeSyscalls],
        maxDuration: .seconds(5),
        maxIterations: 100_000
    )
    let streams: StreamWorld
    let relays: RelayWorld
    do {
        streams = try StreamWorld()
        relays = try RelayWorld()
        try streams.openAndClose()  // the pooled connection is up before measuring
    } catch {
        fatalError("benchmark set-up failed: \(error)")
    }

    Benchmark("HBONE stream open (pooled connection, 200, reset)") { benchmark in
        for _ in benchmark.scaledIterations {
            try streams.openAndClose()
        }
    }

    Benchmark("HBONE stream, 1 KiB echoed (pooled connection)") { benchmark in
        let handler = RoundTrip()
        let stream = try streams.echoStream(handler)
        let payload = ByteBuffer(repeating: 0x61, count: 1024)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try handler.start(payload, on: stream).wait()
        }
        benchmark.stopMeasurement()
        do {
            try stream.close().wait()
        } catch let closed as NIOHTTP2Errors.StreamClosed where closed.errorCode == .cancel {
        }
    }

    accessLogBenchmarks()

    for size in [1024, 64 * 1024] {
        Benchmark("Relay loop, \(size / 1024) KiB echoed through TCPPassthrough") { benchmark in
            let handler = RoundTrip()
            let channel = try ClientBootstrap(group: relays.group)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) }
                }
                .connect(to: relays.relay.localAddress!).wait()
            let payload = ByteBuffer(repeating: 0x61, count: size)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                try handler.start(payload, on: channel).wait()
            }
            benchmark.stopMeasurement()
            try channel.close().wait()
        }
    }
}
