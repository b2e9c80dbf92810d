import AmbitHBONE
import AmbitIdentity
import AmbitModel
import AmbitRelay
import Foundation
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL
import X509

// A minimal HBONE path whose TLS handler can be swapped, for `HBONEBench tls-backends`:
//   client → forwarder ⇒ TLS (BoringSSL or OpenSSL) + HTTP/2 CONNECT ⇒ terminator → sink
// The same HTTP/2 settings, read sizes and certificates as Ambit's HBONE; one HBONE connection
// per tunnel, no pool, no policy. Only the TLS handler differs between the engines, so their
// difference is the TLS libraries' (and their NIO glue's) cost on the HBONE path.

/// Which TLS handler the minimal path uses.
struct TLSEngine: Sendable {
    let name: String
    let server: @Sendable () throws -> any ChannelHandler
    let client: @Sendable () throws -> any ChannelHandler

    /// swift-nio-ssl with Ambit's own contexts (MeshTLS), verified against the roots by BoringSSL.
    static func boringSSL(server: WorkloadCertificate, client: WorkloadCertificate, roots: [Certificate]) throws
        -> TLSEngine
    {
        let serverContext = try MeshTLS.serverContext(presenting: server, roots: roots)
        let clientContext = try MeshTLS.clientContext(presenting: client, roots: roots)
        return TLSEngine(
            name: "BoringSSL",
            server: { NIOSSLServerHandler(context: serverContext) },
            client: { try NIOSSLClientHandler(context: clientContext, serverHostname: nil) }
        )
    }

    /// The system's OpenSSL; `ciphersuites` nil is OpenSSL's default order (AES-256-GCM first).
    static func openSSL(
        server: WorkloadCertificate,
        client: WorkloadCertificate,
        roots: [Certificate],
        ciphersuites: String?
    ) throws -> TLSEngine {
        func pem(_ certificate: WorkloadCertificate) throws -> (chain: String, key: String) {
            (
                try certificate.chain.dropLast().map { try $0.serializeAsPEM().pemString }.joined(separator: "\n"),
                try certificate.privateKey.serializeAsPEM().pemString
            )
        }
        let rootsPEM = try roots.map { try $0.serializeAsPEM().pemString }.joined(separator: "\n")
        let (serverChain, serverKey) = try pem(server)
        let (clientChain, clientKey) = try pem(client)
        let serverContext = try OpenSSLContext(
            server: true,
            chainPEM: serverChain,
            keyPEM: serverKey,
            rootsPEM: rootsPEM,
            ciphersuites: ciphersuites
        )
        let clientContext = try OpenSSLContext(
            server: false,
            chainPEM: clientChain,
            keyPEM: clientKey,
            rootsPEM: rootsPEM,
            ciphersuites: ciphersuites
        )
        // OpenSSL's default order puts AES-256-GCM first.
        let expected = ciphersuites ?? "TLS_AES_256_GCM_SHA384"
        return TLSEngine(
            name: ciphersuites == nil ? "OpenSSL (default suites)" : "OpenSSL",
            server: { OpenSSLHandler(context: serverContext, expectedCipher: expected) },
            client: { OpenSSLHandler(context: clientContext, expectedCipher: expected) }
        )
    }
}

/// Errors end the tunnel; they are shown, as a benchmark that hides failures measures nothing.
func reportError(_ place: String, _ error: any Error) {
    FileHandle.standardError.write(Data("HBONEBench: \(place): \(error)\n".utf8))
}

/// Back-pressure: a tunnel's end reads only while the other end can take what it reads. Turning
/// `autoRead` on does not itself read, so a read is asked for too.
func setReading(_ channel: any Channel, _ reading: Bool) {
    channel.setOption(.autoRead, value: reading).whenComplete { result in
        switch result {
        case .success: if reading { channel.read() }
        case .failure: channel.close(promise: nil)
        }
    }
}

enum MiniHBONE {
    static let configuration = HBONEConfiguration()

    /// The per-stream settings of Ambit's HBONE (the reset limits left out: no resets here).
    static var streamConfiguration: NIOHTTP2Handler.StreamConfiguration {
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.targetWindowSize = configuration.streamWindowSize
        stream.outboundBufferSizeHighWatermark = configuration.streamBufferHighWatermark
        stream.outboundBufferSizeLowWatermark = configuration.streamBufferLowWatermark
        return stream
    }

    static func connectionConfiguration(server: Bool) -> NIOHTTP2Handler.ConnectionConfiguration {
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .initialWindowSize, value: configuration.streamWindowSize),
            HTTP2Setting(parameter: .maxFrameSize, value: configuration.maxFrameSize),
        ]
        if !server { connection.initialSettings.append(HTTP2Setting(parameter: .enablePush, value: 0)) }
        connection.targetWindowSize = configuration.connectionWindowSize
        return connection
    }

    /// TLS and HTTP/2 on a new HBONE connection, as Ambit's HBONE client and server configure them.
    static func configure(
        _ channel: any Channel,
        tls: any ChannelHandler,
        mode: NIOHTTP2Handler.ParserMode,
        inboundStream: @escaping NIOChannelInitializer
    ) throws -> NIOHTTP2Handler.StreamMultiplexer {
        try SocketTuning.tuneHBONEConnection(channel)
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(tls)
        return try sync.configureHTTP2Pipeline(
            mode: mode,
            connectionConfiguration: connectionConfiguration(server: mode == .server),
            streamConfiguration: streamConfiguration,
            inboundStreamInitializer: inboundStream
        )
    }

    /// The terminating end: TLS, HTTP/2, and per CONNECT stream a TCP connection to its authority.
    static func terminator(engine: TLSEngine, group: any EventLoopGroup) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    _ = try configure(channel, tls: try engine.server(), mode: .server) { stream in
                        stream.eventLoop.makeCompletedFuture {
                            try stream.pipeline.syncOperations.addHandler(StreamGlue(role: .server))
                        }
                    }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    /// The originating end: each accepted connection gets its own HBONE connection and one
    /// CONNECT stream to `authority` through `terminator`.
    static func forwarder(
        engine: TLSEngine,
        group: any EventLoopGroup,
        terminator: SocketAddress,
        authority: String
    ) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            // Nothing is read from the client until the tunnel is up.
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { inbound in
                inbound.eventLoop.makeCompletedFuture {
                    try inbound.pipeline.syncOperations.addHandler(SocketGlue())
                    let multiplexer = NIOLoopBoundBox<NIOHTTP2Handler.StreamMultiplexer?>(
                        nil,
                        eventLoop: inbound.eventLoop
                    )
                    let tunnel = ClientBootstrap(group: inbound.eventLoop)
                        .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                        .channelInitializer { connection in
                            connection.eventLoop.makeCompletedFuture {
                                multiplexer.value = try configure(connection, tls: try engine.client(), mode: .client) {
                                    $0.close()  // the terminator opens no streams
                                }
                            }
                        }
                        .connect(to: terminator)
                        .flatMap { connection in
                            // The forwarder's loop: the connection was made on it.
                            let stream = connection.eventLoop.makePromise(of: (any Channel).self)
                            multiplexer.value!.createStreamChannel(promise: stream) { channel in
                                channel.eventLoop.makeCompletedFuture {
                                    try channel.pipeline.syncOperations.addHandler(
                                        StreamGlue(role: .client(authority: authority, socket: inbound))
                                    )
                                }
                            }
                            return stream.futureResult
                        }
                    tunnel.whenFailure { error in
                        reportError("tunnel set-up", error)
                        inbound.close(promise: nil)
                    }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }
}

/// The TCP side of a tunnel: bytes read go to the stream as DATA; end of input ends the stream.
final class SocketGlue: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    var stream: (any Channel)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let payload = HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(unwrapInboundIn(data))))
        stream?.write(NIOAny(payload), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) { stream?.flush() }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            let end = HTTP2Frame.FramePayload.data(
                .init(data: .byteBuffer(context.channel.allocator.buffer(capacity: 0)), endStream: true)
            )
            stream?.writeAndFlush(NIOAny(end), promise: nil)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if let stream { setReading(stream, context.channel.isWritable) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        stream?.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        reportError("tunnel socket", error)
        context.close(promise: nil)
    }
}

/// The stream side of a tunnel: DATA goes to the socket; the end of the stream half-closes it.
final class StreamGlue: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    enum Role {
        case client(authority: String, socket: any Channel)
        case server
    }

    let role: Role
    var socket: (any Channel)?
    /// The socket's last write: the socket closes only after it.
    var lastWrite: EventLoopFuture<Void>?

    init(role: Role) { self.role = role }

    func channelActive(context: ChannelHandlerContext) {
        guard case .client(let authority, _) = role else { return }
        let headers = HPACKHeaders([(":method", "CONNECT"), (":authority", authority)])
        context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { channelActive(context: context) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let headers):
            answer(headers.headers, context: context)
        case .data(let data):
            guard let socket, case .byteBuffer(let bytes) = data.data else { return }
            if bytes.readableBytes > 0 { lastWrite = socket.write(NIOAny(bytes)) }
            if data.endStream {
                let done = socket.writeAndFlush(NIOAny(socket.allocator.buffer(capacity: 0)))
                lastWrite = done
                done.whenComplete { _ in socket.close(mode: .output, promise: nil) }
            }
        default:
            break
        }
    }

    private func answer(_ headers: HPACKHeaders, context: ChannelHandlerContext) {
        let stream = context.channel
        switch role {
        case .client(_, let socket):
            guard headers.first(name: ":status") == "200" else {
                context.close(promise: nil)
                return
            }
            attach(socket, to: stream)
            setReading(socket, true)
        case .server:
            guard let authority = headers.first(name: ":authority"),
                let address = try? IPEndpoint(parsing: authority)
            else {
                context.close(promise: nil)
                return
            }
            let glue = NIOLoopBound(self, eventLoop: context.eventLoop)
            ClientBootstrap(group: context.eventLoop)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelOption(.allowRemoteHalfClosure, value: true)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(SocketGlue())
                    }
                }
                .connect(host: "127.0.0.1", port: Int(address.port))
                .whenComplete { result in
                    switch result {
                    case .success(let socket):
                        glue.value.attach(socket, to: stream)
                        let ok = HTTP2Frame.FramePayload.headers(.init(headers: [":status": "200"]))
                        stream.writeAndFlush(NIOAny(ok), promise: nil)
                    case .failure:
                        stream.close(promise: nil)
                    }
                }
        }
    }

    private func attach(_ socket: any Channel, to stream: any Channel) {
        self.socket = socket
        // The socket was made on the stream's loop.
        (try? socket.pipeline.syncOperations.handler(type: SocketGlue.self))?.stream = stream
    }

    func channelReadComplete(context: ChannelHandlerContext) { socket?.flush() }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A tunnel's end closing the stream first resets it (CANCEL): that is how it ends, not a failure.
        if !(error is NIOHTTP2Errors.StreamClosed) { reportError("tunnel stream", error) }
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if let socket { setReading(socket, context.channel.isWritable) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        guard let socket else {
            if case .client(_, let waiting) = role { waiting.close(promise: nil) }
            return
        }
        let close: @Sendable (Result<Void, any Error>) -> Void = { _ in socket.close(promise: nil) }
        if let lastWrite { lastWrite.whenComplete(close) } else { socket.close(promise: nil) }
        // One HBONE connection per tunnel: the client closes it with the tunnel.
        if case .client = role { context.channel.parent?.close(promise: nil) }
    }
}
