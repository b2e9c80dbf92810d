import AmbitIdentity
import AmbitModel
import AmbitTestSupport
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Testing
import X509

/// What a bare TLS client saw from the HBONE server: application data (the server accepted
/// it and sent its HTTP/2 SETTINGS), or an error, or a close.
final class FirstEventRecorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let promise: EventLoopPromise<String>

    init(promise: EventLoopPromise<String>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        promise.succeed("data")
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.succeed("error: \(error)")
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.succeed("closed")
    }
}

/// Who may open HBONE connections: only clients with a valid certificate from the mesh roots,
/// in the trust domain; and the client only accepts the server identities it expects.
@Suite(.serialized) struct HBONEAdmissionTests {
    static let upstreamGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    static func endpoint(_ port: Int) -> IPEndpoint { IPEndpoint(.v4(0x7F00_0001), UInt16(port)) }

    /// A TLS 1.3 client context with ALPN h2 that does not check the server, presenting `certificate` if any.
    static func clientTLS(presenting certificate: WorkloadCertificate?) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.applicationProtocols = ["h2"]
        configuration.certificateVerification = .none
        if let certificate {
            configuration.certificateChain = try [
                .certificate(
                    NIOSSLCertificate(bytes: Array(certificate.leaf.serializeAsPEM().pemString.utf8), format: .pem)
                )
            ]
            configuration.privateKey = .privateKey(
                try NIOSSLPrivateKey(bytes: Array(certificate.privateKey.serializeAsPEM().pemString.utf8), format: .pem)
            )
        }
        return try NIOSSLContext(configuration: configuration)
    }

    /// Opens a TLS 1.3 connection with ALPN h2 and, optionally, a client certificate.
    static func bareTLS(
        to port: Int,
        presenting certificate: WorkloadCertificate?,
        roots: [Certificate],
        group: any EventLoopGroup
    )
        async throws -> String
    {
        let context = try clientTLS(presenting: certificate)
        let promise = group.next().makePromise(of: String.self)
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        NIOSSLClientHandler(context: context, serverHostname: nil)
                    )
                    try channel.pipeline.syncOperations.addHandler(FirstEventRecorder(promise: promise))
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
        // An HTTP/2 client preface, so an accepting server has a reason to answer.
        channel.writeAndFlush(ByteBuffer(string: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), promise: nil)
        defer { channel.close(promise: nil) }
        return try await promise.futureResult.get()
    }

    @Test func serverAcceptsAMeshCertificate() async throws {
        let world = try await HBONEWorld(destinations: [])
        let outcome = try await Self.bareTLS(
            to: world.serverEndpoint.port.asInt,
            presenting: world.clientCertificate,
            roots: [],
            group: world.clientGroup
        )
        #expect(outcome == "data")
        await world.shutdown()
    }

    @Test func serverRefusesAClientWithoutCertificate() async throws {
        let world = try await HBONEWorld(destinations: [])
        let outcome = try await Self.bareTLS(
            to: world.serverEndpoint.port.asInt,
            presenting: nil,
            roots: [],
            group: world.clientGroup
        )
        #expect(outcome.hasPrefix("error:") && outcome.lowercased().contains("certificate"), "\(outcome)")
        await world.shutdown()
    }

    /// A client certificate the server must refuse, with the reason the server logs.
    static func refused(
        _ certificate: (HBONEWorld) throws -> WorkloadCertificate,
        extraRoots: [Certificate] = [],
        reason: String
    )
        async throws
    {
        let echo = try await TestTCPServer.start(.echo, group: upstreamGroup)
        let world = try await HBONEWorld(destinations: [endpoint(echo.port)], extraRoots: extraRoots)
        let presented = try certificate(world)
        let port = try await world.forwarder(to: endpoint(echo.port), certificate: presented)
        let result = try await TestTCPClient.exchange(
            port: port,
            payload: .bytes(Array("x".utf8)),
            group: world.clientGroup
        )
        #expect(result.receivedCount == 0)
        #expect(await eventually { world.tunnelErrors.count == 1 })
        #expect(world.tunnelErrors.first?.code == .handshakeFailed)
        #expect(world.inbound.requests.isEmpty)
        #expect(
            world.logs.lines.contains { $0.contains("HBONE client certificate rejected") && $0.contains(reason) },
            "\(world.logs.lines)"
        )
        await world.shutdown()
        await echo.close()
    }

    @Test func serverRefusesAnUntrustedRoot() async throws {
        let stranger = try TestPKI(now: Date() - 3600)
        try await Self.refused(
            { _ in try stranger.issue(.test("demo", "client"), now: Date() - 60) },
            reason: "peer certificate does not chain to a trusted mesh root"
        )
    }

    @Test func serverRefusesAnotherTrustDomain() async throws {
        let foreign = try TestPKI(trustDomain: "evil.org", now: Date() - 3600)
        try await Self.refused(
            { _ in try foreign.issue(.test("demo", "client", trustDomain: "evil.org"), now: Date() - 60) },
            extraRoots: [foreign.authority.root],
            reason: "peer identity spiffe://evil.org/ns/demo/sa/client is not in trust domain"
        )
    }

    @Test func serverRefusesAnExpiredCertificate() async throws {
        try await Self.refused(
            { world in try world.pki.issue(.test("demo", "client"), lifetime: .seconds(1800), now: Date() - 3000) },
            reason: "expired"
        )
    }
}

extension UInt16 {
    var asInt: Int { Int(self) }
}
