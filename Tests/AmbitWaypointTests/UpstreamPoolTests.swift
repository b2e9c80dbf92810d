import AmbitModel
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import AmbitWaypoint

/// The keep-alive pool of upstream HTTP/1.1 connections, on EmbeddedChannels: what goes on the
/// wire, when a connection is reused, and when it is not.
@Suite struct UpstreamPoolTests {
    final class Recorder: UpstreamResponseDelegate {
        var events: [String] = []
        func upstreamHead(_ head: HTTPResponseHead, attempt: Int) {
            events.append("head \(head.status.code) #\(attempt)")
        }
        func upstreamBody(_ body: ByteBuffer, attempt: Int) { events.append("body \(body.readableBytes) #\(attempt)") }
        func upstreamEnd(_ trailers: HTTPHeaders?, attempt: Int) { events.append("end #\(attempt)") }
        func upstreamFailed(_ error: any Error, attempt: Int) { events.append("failed #\(attempt)") }
    }

    static let key = UpstreamPool.Key(address: IPEndpoint(IPAddress("10.244.2.2")!, 8080), local: false)

    static func request(_ path: String) -> HTTPRequestHead {
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
        head.headers.add(name: "host", value: "server")
        head.headers.add(name: "content-length", value: "0")
        return head
    }

    static func written(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            text += buffer.readString(length: buffer.readableBytes) ?? ""
        }
        return text
    }

    @Test func aKeepAliveConnectionIsReusedForTheNextRequest() throws {
        let loop = EmbeddedEventLoop()
        let pool = UpstreamPool(eventLoop: loop, idleTimeout: .seconds(60))
        let channel = EmbeddedChannel(loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "10.244.2.2", port: 8080)).wait()
        let upstream = try PooledUpstream.configure(channel, key: Self.key, pool: pool)
        let first = Recorder()
        upstream.send(head: Self.request("/a"), body: ByteBuffer(), trailers: nil, delegate: first, attempt: 1)
        #expect(try Self.written(channel).hasPrefix("GET /a HTTP/1.1\r\nhost: server\r\ncontent-length: 0\r\n"))
        #expect(!upstream.reusable, "a request is in flight")
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"))
        #expect(first.events == ["head 200 #1", "body 2 #1", "end #1"])
        #expect(upstream.reusable)
        pool.release(upstream)
        #expect(pool.idleCount == 1)

        let again = try #require(pool.take(Self.key))
        #expect(again === upstream && again.used)
        #expect(pool.take(Self.key) == nil, "in use, so no longer idle")
        let second = Recorder()
        again.send(head: Self.request("/b"), body: ByteBuffer(), trailers: nil, delegate: second, attempt: 1)
        #expect(try Self.written(channel).hasPrefix("GET /b HTTP/1.1\r\n"))
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 204 No Content\r\n\r\n"))
        #expect(second.events == ["head 204 #1", "end #1"])
        #expect(first.events.count == 3, "the first exchange hears nothing of the second")
    }

    @Test func connectionCloseAndHTTP10AreNotReused() throws {
        let loop = EmbeddedEventLoop()
        let pool = UpstreamPool(eventLoop: loop)
        for response in [
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n",
        ] {
            let channel = EmbeddedChannel(loop: loop)
            try channel.connect(to: SocketAddress(ipAddress: "10.244.2.2", port: 8080)).wait()
            let upstream = try PooledUpstream.configure(channel, key: Self.key, pool: pool)
            upstream.send(head: Self.request("/"), body: ByteBuffer(), trailers: nil, delegate: Recorder(), attempt: 1)
            try channel.writeInbound(ByteBuffer(string: response))
            #expect(!upstream.reusable, "\(response)")
            pool.release(upstream)
            #expect(pool.idleCount == 0)
            #expect(!channel.isActive, "closed instead of pooled")
        }
    }

    @Test func anIdleConnectionThatClosesOrTimesOutLeavesThePool() throws {
        let loop = EmbeddedEventLoop()
        let pool = UpstreamPool(eventLoop: loop, idleTimeout: .seconds(5))
        var upstreams: [PooledUpstream] = []
        for _ in 0..<2 {
            let channel = EmbeddedChannel(loop: loop)
            try channel.connect(to: SocketAddress(ipAddress: "10.244.2.2", port: 8080)).wait()
            let upstream = try PooledUpstream.configure(channel, key: Self.key, pool: pool)
            upstream.send(head: Self.request("/"), body: ByteBuffer(), trailers: nil, delegate: Recorder(), attempt: 1)
            try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"))
            pool.release(upstream)
            upstreams.append(upstream)
        }
        #expect(pool.idleCount == 2)
        try upstreams[0].channel.close().wait()  // the endpoint closed it
        #expect(pool.idleCount == 1)
        loop.advanceTime(by: .seconds(6))
        #expect(pool.idleCount == 0)
        #expect(!upstreams[1].channel.isActive)
    }

    @Test func aResetWhileInFlightFailsTheExchange() throws {
        let loop = EmbeddedEventLoop()
        let pool = UpstreamPool(eventLoop: loop)
        let channel = EmbeddedChannel(loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "10.244.2.2", port: 8080)).wait()
        let upstream = try PooledUpstream.configure(channel, key: Self.key, pool: pool)
        let recorder = Recorder()
        upstream.send(head: Self.request("/"), body: ByteBuffer(), trailers: nil, delegate: recorder, attempt: 3)
        _ = try? channel.finish()
        #expect(recorder.events == ["failed #3"])
        #expect(!upstream.reusable)
    }
}
