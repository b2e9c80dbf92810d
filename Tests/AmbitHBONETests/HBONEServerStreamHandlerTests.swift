import AmbitModel
import AmbitTestSupport
import Glibc
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Synchronization
import Testing

@testable import AmbitHBONE

/// An inbound handler whose answer the test chooses.
struct ScriptedInbound: HBONEInboundHandler {
    let answer: @Sendable (HBONEInboundRequest, any EventLoop) -> EventLoopFuture<HBONEInboundResult>

    func open(_ request: HBONEInboundRequest, on eventLoop: any EventLoop) -> EventLoopFuture<HBONEInboundResult> {
        answer(request, eventLoop)
    }
}

/// Records `close(mode: .output)` instead of passing it on: EmbeddedChannel has no half-close.
final class HalfCloseRecorder: ChannelOutboundHandler {
    typealias OutboundIn = Any
    var outputClosed = false

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .output {
            outputClosed = true
            promise?.succeed(())
        } else {
            context.close(mode: mode, promise: promise)
        }
    }
}

@Suite struct HBONEServerStreamHandlerTests {
    static func connectHeaders(method: String = "CONNECT", authority: String = "10.0.0.5:8080")
        -> HTTP2Frame.FramePayload
    {
        var headers = HPACKHeaders()
        headers.add(name: ":method", value: method)
        headers.add(name: ":authority", value: authority)
        if method != "CONNECT" {
            headers.add(name: ":scheme", value: "https")
            headers.add(name: ":path", value: "/")
        }
        return .headers(.init(headers: headers))
    }

    static func status(of payload: HTTP2Frame.FramePayload?) -> (status: String?, endStream: Bool) {
        guard case .headers(let headers) = payload else { return (nil, false) }
        return (headers.headers.first(name: ":status"), headers.endStream)
    }

    static func makeStream(
        _ answer: @escaping @Sendable (HBONEInboundRequest, any EventLoop) -> EventLoopFuture<HBONEInboundResult>
    )
        throws -> EmbeddedChannel
    {
        let stream = EmbeddedChannel(
            handler: HBONEServerStreamHandler(
                peerIdentity: { .test("demo", "client") },
                inbound: ScriptedInbound(answer: answer)
            )
        )
        try stream.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return stream
    }

    @Test(arguments: [
        (HBONEInboundResult.denied("policy"), "401"),
        (.badRequest("not a local destination"), "400"),
        (.unavailable("refused"), "503"),
    ])
    func answersRefusalsAndCloses(result: HBONEInboundResult, expected: String) throws {
        let stream = try Self.makeStream { _, loop in loop.makeSucceededFuture(result) }
        try stream.writeInbound(Self.connectHeaders())
        // The upstream is opened once the read that brought the CONNECT is processed.
        stream.embeddedEventLoop.run()
        let response = Self.status(of: try stream.readOutbound(as: HTTP2Frame.FramePayload.self))
        #expect(response.status == expected)
        #expect(response.endStream)
        #expect(!stream.isActive)
    }

    @Test func rejectsNonCONNECTBeforeAskingTheInboundHandler() throws {
        let stream = try Self.makeStream { _, loop in
            Issue.record("the inbound handler must not be asked")
            return loop.makeSucceededFuture(.denied("x"))
        }
        try stream.writeInbound(Self.connectHeaders(method: "GET"))
        #expect(Self.status(of: try stream.readOutbound(as: HTTP2Frame.FramePayload.self)).status == "400")
        #expect(!stream.isActive)
    }

    @Test func rejectsABadAuthority() throws {
        let stream = try Self.makeStream { _, loop in loop.makeSucceededFuture(.denied("x")) }
        try stream.writeInbound(Self.connectHeaders(authority: "example.com:80"))
        #expect(Self.status(of: try stream.readOutbound(as: HTTP2Frame.FramePayload.self)).status == "400")
    }

    @Test func answers200OnlyOnceConnectedAndRelaysBothWays() throws {
        let loop = EmbeddedEventLoop()
        let upstream = EmbeddedChannel(loop: loop)
        let recorder = HalfCloseRecorder()
        try upstream.pipeline.syncOperations.addHandler(recorder)
        try upstream.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        let upstreamPromise = loop.makePromise(of: HBONEInboundResult.self)
        let seen = RecordedText()
        let stream = EmbeddedChannel(
            handler: HBONEServerStreamHandler(
                peerIdentity: { .test("demo", "client") },
                inbound: ScriptedInbound { request, _ in
                    seen.set("\(request.peerIdentity) \(request.authority)")
                    return upstreamPromise.futureResult
                }
            ),
            loop: loop
        )
        try stream.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try stream.writeInbound(Self.connectHeaders())
        // The upstream is opened once the read that brought the CONNECT is processed.
        stream.embeddedEventLoop.run()
        // Early data waits for the upstream.
        try stream.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(string: "early")))))
        #expect(try stream.readOutbound(as: HTTP2Frame.FramePayload.self) == nil)
        #expect(seen.value == "spiffe://cluster.local/ns/demo/sa/client 10.0.0.5:8080")

        upstreamPromise.succeed(.connected(upstream, finished: nil))
        #expect(Self.status(of: try stream.readOutbound(as: HTTP2Frame.FramePayload.self)) == ("200", false))
        #expect(try upstream.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "early"))

        try stream.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(string: "ping")))))
        #expect(try upstream.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "ping"))

        try upstream.writeInbound(ByteBuffer(string: "pong"))
        guard case .data(let data) = try stream.readOutbound(as: HTTP2Frame.FramePayload.self),
            case .byteBuffer(let body) = data.data
        else {
            Issue.record("expected DATA")
            return
        }
        #expect(body == ByteBuffer(string: "pong"))
        #expect(!data.endStream)

        // The client's END_STREAM half-closes the upstream...
        try stream.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)))
        #expect(recorder.outputClosed)
        // ...and the upstream's end of input becomes END_STREAM towards the client.
        upstream.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        guard case .data(let last) = try stream.readOutbound(as: HTTP2Frame.FramePayload.self) else {
            Issue.record("expected END_STREAM")
            return
        }
        #expect(last.endStream)
    }

    /// HTTP/2 rapid reset: a CONNECT whose stream is reset in the same read never opens an upstream.
    @Test func aConnectResetInTheReadThatBroughtItOpensNoUpstream() throws {
        let asked = CallCount()
        let stream = try Self.makeStream { _, loop in
            asked.count.withLock { $0 += 1 }
            return loop.makeSucceededFuture(.unavailable("not expected"))
        }
        try stream.writeInbound(Self.connectHeaders())
        // The peer's RST_STREAM, processed in the same read: NIO closes the stream channel.
        try stream.close().wait()
        stream.embeddedEventLoop.run()
        #expect(asked.count.withLock { $0 } == 0)
    }

    @Test func anUpstreamResetResetsTheStream() throws {
        let loop = EmbeddedEventLoop()
        let upstream = EmbeddedChannel(loop: loop)
        try upstream.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        let stream = EmbeddedChannel(
            handler: HBONEServerStreamHandler(
                peerIdentity: { .test("demo", "client") },
                inbound: ScriptedInbound { _, loop in loop.makeSucceededFuture(.connected(upstream, finished: nil)) }
            ),
            loop: loop
        )
        try stream.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try stream.writeInbound(Self.connectHeaders())
        // The upstream is opened once the read that brought the CONNECT is processed.
        stream.embeddedEventLoop.run()
        _ = try stream.readOutbound(as: HTTP2Frame.FramePayload.self)
        upstream.pipeline.fireErrorCaught(IOError(errnoCode: ECONNRESET, reason: "read"))
        #expect(!upstream.isActive)
        // Closing an HTTP/2 stream before END_STREAM is what sends RST_STREAM.
        #expect(!stream.isActive)
    }
}

/// A string set from a callback and read by the test.
final class RecordedText: Sendable {
    private let stored = Mutex<String?>(nil)
    func set(_ value: String) { stored.withLock { $0 = value } }
    var value: String? { stored.withLock { $0 } }
}

private final class CallCount: Sendable {
    let count = Mutex(0)
}
