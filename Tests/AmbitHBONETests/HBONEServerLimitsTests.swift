import AmbitHBONE
import AmbitIdentity
import AmbitModel
import AmbitTestSupport
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL
import Testing

/// Port 15008 faces anyone who can reach a pod, before any identity is known: every connection is
/// bounded in number and time, each limit reported when hit (see `HBONEServerLimits`).
@Suite struct HBONEServerLimitsTests {
    static func limited(_ change: (inout HBONEServerLimits) -> Void) -> HBONEConfiguration {
        var configuration = HBONEConfiguration()
        change(&configuration.serverLimits)
        return configuration
    }

    /// A plain TCP connection to the server, from `source` (a 127/8 address), that sends nothing.
    static func tcp(to world: HBONEWorld, from source: String = "127.0.0.1") async throws -> any Channel {
        try await ClientBootstrap(group: world.clientGroup)
            .bind(to: try SocketAddress(ipAddress: source, port: 0))
            .connect(host: "127.0.0.1", port: world.serverEndpoint.port.asInt)
            .get()
    }

    /// A mutual-TLS connection with the client's mesh certificate, with `handlers` after TLS.
    static func tls(
        to world: HBONEWorld,
        _ handlers: @escaping @Sendable (any Channel) throws -> Void = { _ in }
    ) async throws -> any Channel {
        let context = try HBONEAdmissionTests.clientTLS(presenting: world.clientCertificate)
        return try await ClientBootstrap(group: world.clientGroup)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        NIOSSLClientHandler(context: context, serverHostname: nil)
                    )
                    try handlers(channel)
                }
            }
            .connect(host: "127.0.0.1", port: world.serverEndpoint.port.asInt)
            .get()
    }

    /// An HTTP/2 client connection over mutual TLS, and its stream multiplexer.
    static func h2(to world: HBONEWorld) async throws -> (any Channel, NIOHTTP2Handler.StreamMultiplexer) {
        let configured = world.clientGroup.next().makePromise(of: NIOHTTP2Handler.StreamMultiplexer.self)
        let channel = try await tls(to: world) { channel in
            let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                mode: .client,
                connectionConfiguration: .init(),
                streamConfiguration: .init()
            ) { stream in stream.close() }
            configured.succeed(multiplexer)
        }
        return (channel, try await configured.futureResult.get())
    }

    /// Opens a stream, sends a CONNECT to `authority` and, when `reset`, resets the stream at once
    /// (RST_STREAM CANCEL) without waiting for the answer. Returns the stream.
    static func connect(
        _ authority: IPEndpoint,
        on multiplexer: NIOHTTP2Handler.StreamMultiplexer,
        eventLoop: any EventLoop,
        reset: Bool
    ) async throws -> any Channel {
        let promise = eventLoop.makePromise(of: (any Channel).self)
        multiplexer.createStreamChannel(promise: promise) { $0.eventLoop.makeSucceededVoidFuture() }
        let stream = try await promise.futureResult.get()
        let headers: HPACKHeaders = [":method": "CONNECT", ":authority": "\(authority)"]
        if reset {
            // HEADERS then RST_STREAM(CANCEL), in one turn of the event loop, so they leave together.
            try await stream.eventLoop.submit {
                stream.write(HTTP2Frame.FramePayload.headers(.init(headers: headers)), promise: nil)
                stream.flush()
                stream.close(promise: nil)
            }.get()
        } else {
            try await stream.writeAndFlush(HTTP2Frame.FramePayload.headers(.init(headers: headers)))
        }
        return stream
    }

    static func closed(_ channel: any Channel) async -> Bool {
        await eventually { !channel.isActive }
    }

    @Test func aConnectionThatNeverStartsTLSIsClosedAtTheHandshakeDeadline() async throws {
        let world = try await HBONEWorld(
            destinations: [],
            configuration: Self.limited { $0.handshakeTimeout = .milliseconds(200) }
        )
        let silent = try await Self.tcp(to: world)
        #expect(await Self.closed(silent))
        #expect(world.limitHits.all == [.handshakeTimeout])
        #expect(await eventually { world.limiter.open == 0 })
        await world.shutdown()
    }

    @Test func connectionsPerSourceAndInTotalAreBounded() async throws {
        let world = try await HBONEWorld(
            destinations: [],
            configuration: Self.limited {
                $0.maxConnectionsPerSource = 2
                $0.maxConnections = 3
                $0.handshakeTimeout = .seconds(600)  // these never start TLS, and must stay however slow the run
            }
        )
        let first = try await Self.tcp(to: world)
        let second = try await Self.tcp(to: world)
        #expect(await eventually { world.limiter.open == 2 })
        let third = try await Self.tcp(to: world)
        #expect(await Self.closed(third))
        #expect(world.limitHits.all == [.connectionsPerSource])
        #expect(first.isActive && second.isActive)

        // Another source still gets in, up to the total.
        let other = try await Self.tcp(to: world, from: "127.0.0.2")
        #expect(await eventually { world.limiter.open == 3 })
        let overTotal = try await Self.tcp(to: world, from: "127.0.0.3")
        #expect(await Self.closed(overTotal))
        #expect(world.limitHits.all == [.connectionsPerSource, .connections])

        // A closed connection gives its place back.
        try await first.close()
        #expect(await eventually { world.limiter.open == 2 })
        let again = try await Self.tcp(to: world)
        #expect(await eventually { world.limiter.open == 3 })
        #expect(again.isActive && other.isActive)
        for channel in [second, other, again] { try await channel.close() }
        #expect(await eventually { world.limiter.open == 0 })
        await world.shutdown()
    }

    @Test func connectionsStillInTheirHandshakeHaveABudgetOfTheirOwn() async throws {
        let world = try await HBONEWorld(
            destinations: [],
            configuration: Self.limited {
                $0.maxHandshakes = 2
                $0.handshakeTimeout = .seconds(600)  // these never start TLS, and must stay however slow the run
            }
        )
        // A mesh peer whose handshake is done does not count against it ...
        let (meshPeer, _) = try await Self.h2(to: world)
        // The client's handshake ends before the server's (it still waits for the client's Finished).
        #expect(await eventually { world.limiter.open == 1 && world.limiter.handshaking == 0 })
        let first = try await Self.tcp(to: world)
        let second = try await Self.tcp(to: world, from: "127.0.0.2")
        #expect(await eventually { world.limiter.open == 3 && world.limiter.handshaking == 2 })
        // ... silent connections do, from any source.
        let third = try await Self.tcp(to: world, from: "127.0.0.3")
        #expect(await Self.closed(third))
        #expect(world.limitHits.all == [.handshakes])
        #expect(meshPeer.isActive && first.isActive && second.isActive)
        try await first.close()
        #expect(await eventually { world.limiter.handshaking == 1 })
        let again = try await Self.tcp(to: world, from: "127.0.0.3")
        #expect(await eventually { world.limiter.handshaking == 2 })
        for channel in [meshPeer, second, again] { try await channel.close() }
        #expect(await eventually { world.limiter.open == 0 && world.limiter.handshaking == 0 })
        await world.shutdown()
    }

    @Test func junkAfterTheHandshakeGetsGoAwayAndTheConnectionCloses() async throws {
        var configuration = Self.limited { $0.closeAfterGoAway = .milliseconds(200) }
        configuration.drainDeadline = .milliseconds(100)
        let world = try await HBONEWorld(destinations: [], configuration: configuration)
        let channel = try await Self.tls(to: world)
        try await channel.writeAndFlush(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: pod\r\n\r\n"))
        #expect(await Self.closed(channel))
        #expect(world.limitHits.all == [.closeAfterGoAway])
        await world.shutdown()
    }

    @Test func aConnectionWithoutStreamsIsClosedWhenIdle() async throws {
        let world = try await HBONEWorld(
            destinations: [],
            configuration: Self.limited { $0.idleTimeout = .milliseconds(300) }
        )
        let (channel, _) = try await Self.h2(to: world)
        #expect(await Self.closed(channel))
        #expect(world.limitHits.all == [.idleTimeout])
        await world.shutdown()
    }

    @Test func anIdlePeerThatDoesNotAnswerTheGoAwayPingIsClosedAtTheDeadline() async throws {
        var configuration = Self.limited {
            $0.idleTimeout = .milliseconds(300)
            $0.closeAfterGoAway = .milliseconds(200)
        }
        configuration.drainDeadline = .milliseconds(100)
        let world = try await HBONEWorld(destinations: [], configuration: configuration)
        // An HTTP/2 client preface and SETTINGS, then silence: no ACK for the server's SETTINGS or PING.
        // (On a machine so loaded that the idle deadline passes before the preface is written, the server
        // has already sent its GOAWAY and closed; the outcome is the same.)
        let channel = try await Self.tls(to: world)
        try? await channel.writeAndFlush(
            ByteBuffer(bytes: Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0])
        )
        #expect(await Self.closed(channel))
        #expect(world.limitHits.all == [.idleTimeout, .closeAfterGoAway])
        await world.shutdown()
    }

    @Test func streamsResetBeforeTheirAnswerCloseTheConnectionPastTheLimit() async throws {
        let echo = try await TestTCPServer.start(.echo, group: HBONEAdmissionTests.upstreamGroup)
        let destination = HBONEAdmissionTests.endpoint(echo.port)
        let unanswered = HBONEAdmissionTests.endpoint(9)
        let world = try await HBONEWorld(
            destinations: [destination],
            configuration: Self.limited { $0.maxPrematureResets = 10 },
            held: unanswered
        )
        let (channel, multiplexer) = try await Self.h2(to: world)
        // Up to the limit, the connection serves on. A CONNECT reset in the read that brought it never reaches the
        // inbound side (no connection to its destination: rapid reset costs the server no dial).
        for _ in 0..<10 {
            _ = try await Self.connect(unanswered, on: multiplexer, eventLoop: channel.eventLoop, reset: true)
        }
        let answered = try await Self.connect(destination, on: multiplexer, eventLoop: channel.eventLoop, reset: false)
        #expect(await eventually { world.inbound.requests.contains { $0.authority == destination } })
        // Each stream's HEADERS and RST_STREAM leave in one turn of the client's event loop, but as two TLS records:
        // a server read may still split a pair, more often the busier the machine (5 of 10 seen under the full
        // suite). Before the fix every one was dialed; HBONEServerStreamHandlerTests pins the rule itself.
        let dialed = world.inbound.requests.filter { $0.authority == unanswered }.count
        #expect(dialed < 10, "all 10 streams reset at once still reached the inbound side")
        #expect(channel.isActive && answered.isActive)
        #expect(world.limitHits.all.isEmpty)
        // One more, and the connection is closed, with the tunnel it carried.
        _ = try await Self.connect(unanswered, on: multiplexer, eventLoop: channel.eventLoop, reset: true)
        #expect(await Self.closed(channel))
        #expect(world.limitHits.all == [.prematureResets])
        #expect(
            world.logs.lines.contains { $0.contains("too many streams reset before their CONNECT was answered") },
            "\(world.logs.lines)"
        )
        await world.shutdown()
        await echo.close()
    }

    /// Writes, in one go, `resets` CONNECTs each reset at once, then `open` CONNECTs left open (all to a port
    /// that is not a destination), as a rapid-reset client does; returns the frames the server sent until it
    /// closed the connection.
    static func burst(
        to world: HBONEWorld,
        resets: Int,
        open: Int
    ) async throws -> [(type: UInt8, stream: UInt32, payload: [UInt8])] {
        var burst = RawHTTP2.preface()
        for index in 0..<(resets + open) {
            let stream = UInt32(2 * index + 1)
            RawHTTP2.connect(to: "127.0.0.1:9", stream: stream, into: &burst)
            if index < resets {
                RawHTTP2.frame(type: 0x3, flags: 0, stream: stream, payload: [0, 0, 0, 0x8], into: &burst)
            }
        }
        let received = world.clientGroup.next().makePromise(of: [UInt8].self)
        let channel = try await Self.tls(to: world) { channel in
            try channel.pipeline.syncOperations.addHandler(CollectUntilClosed(done: received))
        }
        try await channel.writeAndFlush(ByteBuffer(bytes: burst))
        return RawHTTP2.frames(in: try await received.futureResult.get())
    }

    /// The stream a GOAWAY ENHANCE_YOUR_CALM names as the last one the server looked at.
    static func calmDown(in frames: [(type: UInt8, stream: UInt32, payload: [UInt8])]) -> UInt32? {
        guard let goAway = frames.first(where: { $0.type == 0x7 }), goAway.payload.count >= 8,
            goAway.payload[4..<8].elementsEqual([0, 0, 0, 0xB])
        else { return nil }
        return goAway.payload[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }

    @Test func aBurstOfResetStreamsStopsBeingProcessedAtTheLimit() async throws {
        let world = try await HBONEWorld(
            destinations: [],
            configuration: Self.limited { $0.maxPrematureResets = 10 }
        )
        // 11 CONNECTs each reset at once (streams 1-21), then 20 left open (23-61), in one write. The server must
        // stop at stream 21, the 11th reset, and never look at the rest; before, it worked through everything
        // it had read (that held its event loop ~10 ms per connection in Benchmarks/chaos/run's resets phase,
        // whatever the limit), and said nothing to the client.
        let frames = try await Self.burst(to: world, resets: 11, open: 20)
        #expect(Self.calmDown(in: frames) == 21, "\(frames.map(\.type))")
        #expect(world.inbound.requests.isEmpty, "streams past the limit reached the inbound side")
        #expect(world.limitHits.all == [.prematureResets])
        let warning = world.logs.lines.filter { $0.contains("too many streams reset") }
        #expect(warning.count == 1 && warning[0].contains(#""lastStream":"21""#), "\(warning)")
        await world.shutdown()
    }

    @Test func resetStreamsAreAlsoBoundedWithinOneRead() async throws {
        let world = try await HBONEWorld(destinations: [], configuration: HBONEConfiguration())
        // Defaults: 100 in 10 s, 20 in one read. 30 reset in one write: closed at the 21st (stream 41).
        let frames = try await Self.burst(to: world, resets: 30, open: 0)
        #expect(Self.calmDown(in: frames) == 41, "\(frames.map(\.type))")
        #expect(world.limitHits.all == [.prematureResets])
        await world.shutdown()
    }

    @Test func resetStreamsSpreadOverReadsCountOnlyAgainstTheWindow() async throws {
        // Their destination never answers, so each stream is unanswered when its reset comes, whichever read
        // brings it: every one counts. Window limit 30, per read 20 (the default).
        let held = HBONEAdmissionTests.endpoint(9)
        let world = try await HBONEWorld(
            destinations: [],
            configuration: Self.limited {
                $0.maxPrematureResets = 30
                $0.prematureResetWindow = .seconds(3_600)  // all 31 in the window, however slow the run
            },
            held: held
        )
        // 30 reset one by one, each after the server has answered a PING sent behind the one before (so never
        // two in one read): 30 counted, none over either limit; a CONNECT after them is served.
        let configured = world.clientGroup.next().makePromise(of: (PingAcks, NIOHTTP2Handler.StreamMultiplexer).self)
        let channel = try await Self.tls(to: world) { channel in
            let pings = PingAcks()
            let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                mode: .client,
                connectionConfiguration: .init(),
                streamConfiguration: .init()
            ) { stream in stream.close() }
            try channel.pipeline.syncOperations.addHandler(pings)
            configured.succeed((pings, multiplexer))
        }
        let (pings, multiplexer) = try await configured.futureResult.get()
        for index in 0..<30 {
            _ = try await Self.connect(held, on: multiplexer, eventLoop: channel.eventLoop, reset: true)
            try await pings.roundTrip(UInt64(index), on: channel)
        }
        let other = HBONEAdmissionTests.endpoint(10)
        _ = try await Self.connect(other, on: multiplexer, eventLoop: channel.eventLoop, reset: false)
        #expect(await eventually { world.inbound.requests.contains { $0.authority == other } })
        #expect(channel.isActive)
        #expect(world.limitHits.all.isEmpty)
        // The 31st goes over the window: the 30 before were counted, one read at a time.
        _ = try await Self.connect(held, on: multiplexer, eventLoop: channel.eventLoop, reset: true)
        #expect(await Self.closed(channel))
        #expect(world.limitHits.all == [.prematureResets])
        await world.shutdown()
    }
}

/// Answers to the PINGs a client connection sends: a PING's ACK means the server has read everything
/// sent before it.
final class PingAcks: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTP2Frame
    private var waiting: [UInt64: EventLoopPromise<Void>] = [:]

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if case .ping(let ping, ack: true) = frame.payload {
            waiting.removeValue(forKey: ping.integer)?.succeed()
        }
        context.fireChannelRead(data)
    }

    /// Sends PING `value` and waits for its ACK. Touches its state on the channel's event loop only.
    func roundTrip(_ value: UInt64, on channel: any Channel) async throws {
        try await channel.eventLoop.flatSubmit {
            let acked = channel.eventLoop.makePromise(of: Void.self)
            self.waiting[value] = acked
            channel.writeAndFlush(
                HTTP2Frame(streamID: .rootStream, payload: .ping(HTTP2PingData(withInteger: value), ack: false)),
                promise: nil
            )
            return acked.futureResult
        }.get()
    }
}

/// HTTP/2 frames written and read byte by byte, for a client that sends what NIO's client would not.
enum RawHTTP2 {
    static func preface() -> [UInt8] {
        var bytes = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        frame(type: 0x4, flags: 0, stream: 0, payload: [], into: &bytes)
        return bytes
    }

    static func frame(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8], into bytes: inout [UInt8]) {
        let length = payload.count
        bytes += [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags]
        bytes += [
            UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF),
        ]
        bytes += payload
    }

    /// HEADERS (END_HEADERS) with `:method CONNECT` and `:authority`, as HPACK literals with indexed names.
    static func connect(to authority: String, stream: UInt32, into bytes: inout [UInt8]) {
        let block = [0x02, 7] + Array("CONNECT".utf8) + [0x01, UInt8(authority.utf8.count)] + Array(authority.utf8)
        frame(type: 0x1, flags: 0x4, stream: stream, payload: block, into: &bytes)
    }

    static func frames(in bytes: [UInt8]) -> [(type: UInt8, stream: UInt32, payload: [UInt8])] {
        var frames: [(type: UInt8, stream: UInt32, payload: [UInt8])] = []
        var offset = 0
        while bytes.count - offset >= 9 {
            let length = Int(bytes[offset]) << 16 | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2])
            guard bytes.count - offset - 9 >= length else { break }
            let stream = bytes[offset + 5..<offset + 9].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } & 0x7FFF_FFFF
            frames.append((bytes[offset + 3], stream, Array(bytes[offset + 9..<offset + 9 + length])))
            offset += 9 + length
        }
        return frames
    }
}

/// Everything a connection receives, handed over when it closes.
final class CollectUntilClosed: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let done: EventLoopPromise<[UInt8]>
    private var bytes: [UInt8] = []

    init(done: EventLoopPromise<[UInt8]>) { self.done = done }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        bytes += buffer.readableBytesView
    }

    func channelInactive(context: ChannelHandlerContext) {
        done.succeed(bytes)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A TLS close without close_notify still ends the connection; what was read is what counts.
    }
}
