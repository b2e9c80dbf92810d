import AmbitHBONE
import AmbitIdentity
import AmbitModel
import AmbitTestSupport
import Foundation
import NIOCore
import NIOPosix
import Testing
import X509

/// HBONE against an independent implementation: `Tests/Interop/hbone_peer.py`, written with the
/// Python `h2` package and `ssl` (Debian's python3-h2). Both directions: Python client → Swift
/// server, and Swift client → Python server.
@Suite(.serialized) struct HBONEInteropTests {
    static let upstreamGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    static let python = ProcessInfo.processInfo.environment["AMBIT_PYTHON"] ?? "/usr/bin/python3"
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Interop/hbone_peer.py").path

    static func endpoint(_ port: Int) -> IPEndpoint { IPEndpoint(.v4(0x7F00_0001), UInt16(port)) }

    /// Writes a certificate's chain (without the root), key and root for the Python peer.
    static func writePEM(
        _ certificate: WorkloadCertificate,
        root: Certificate,
        into directory: TemporaryDirectory,
        name: String
    )
        throws -> [String]
    {
        let cert = try directory.write("\(name)-cert.pem", PEMFiles.pem(Array(certificate.chain.dropLast())))
        let key = try directory.write("\(name)-key.pem", certificate.privateKey.serializeAsPEM().pemString + "\n")
        let ca = try directory.write("root.pem", PEMFiles.pem([root]))
        return ["--cert", cert, "--key", key, "--ca", ca]
    }

    struct ClientReport: Decodable {
        let status: Int?
        let server_identity: String?
        let sent: Int
        let sent_sha256: String
        let received: Int
        let received_sha256: String
        let frames_after_end: [String]
        let resumed: Bool
        let session_ticket: Bool?
        let second: SecondConnection?
    }

    /// With `--resume`: the connection that offered the first one's TLS session.
    struct SecondConnection: Decodable {
        let error: String?
        let status: Int?
        let resumed: Bool?
        let sent_sha256: String?
        let received_sha256: String?
    }

    static func runPythonClient(_ arguments: [String]) throws -> ClientReport {
        let result = try ProcessRunner.run(python, [script, "client"] + arguments)
        guard result.status == 0, let line = result.standardOutput.split(separator: "\n").last else {
            throw HBONEError(.connectFailed, "python client failed (\(result.status)): \(result.standardError)")
        }
        return try JSONDecoder().decode(ClientReport.self, from: Data(line.utf8))
    }

    /// The Python client with `world`'s client certificate, tunnelling to 127.0.0.1:`port` through `world`'s server.
    static func runPythonClient(against world: HBONEWorld, to port: Int, _ arguments: [String]) throws -> ClientReport {
        let files = try TemporaryDirectory()
        defer { files.remove() }
        let tls = try writePEM(world.clientCertificate, root: world.pki.authority.root, into: files, name: "client")
        return try runPythonClient(
            tls + ["--connect", world.serverEndpoint.description, "--authority", endpoint(port).description] + arguments
        )
    }

    @Test func pythonClientTunnelsThroughTheSwiftServer() async throws {
        let echo = try await TestTCPServer.start(.echo, group: Self.upstreamGroup)
        let world = try await HBONEWorld(destinations: [Self.endpoint(echo.port)])
        let report = try Self.runPythonClient(
            against: world,
            to: echo.port,
            [
                "--expect-id", "spiffe://cluster.local/ns/demo/sa/server", "--size", "1048576",
                "--forwarded-for", "10.1.2.3:45678",
            ]
        )
        #expect(report.status == 200)
        #expect(report.server_identity == "spiffe://cluster.local/ns/demo/sa/server")
        #expect(report.received == 1 << 20)
        #expect(report.received_sha256 == report.sent_sha256)
        let request = try #require(world.inbound.requests.first)
        #expect(request.peerIdentity == .test("demo", "client"))
        #expect(request.headers.forwardedFor?.description == "10.1.2.3:45678")
        #expect(request.headers.traceparent == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        await world.shutdown()
        await echo.close()
    }

    /// A TLS session is never resumed: the identity of a client comes from the verification of the
    /// chain it sends in a full handshake (a resumed session sends none, so every stream of such a
    /// connection would be refused for want of a verified identity). The server issues no session
    /// tickets, and a client that would resume gets a full handshake and is served.
    @Test func aClientThatWouldResumeGetsAFullHandshakeAndIsServed() async throws {
        let echo = try await TestTCPServer.start(.echo, group: Self.upstreamGroup)
        let world = try await HBONEWorld(destinations: [Self.endpoint(echo.port)])
        let report = try Self.runPythonClient(against: world, to: echo.port, ["--size", "1000", "--resume"])
        #expect(report.status == 200)
        #expect(report.session_ticket == false)
        let second = try #require(report.second)
        #expect(second.error == nil)
        #expect(second.status == 200)
        #expect(second.resumed == false)
        #expect(second.received_sha256 == second.sent_sha256)
        #expect(world.inbound.requests.map(\.peerIdentity) == [.test("demo", "client"), .test("demo", "client")])
        await world.shutdown()
        await echo.close()
    }

    /// The application closes first, the client's END_STREAM comes last: the stream is then closed on the
    /// wire, and the server does not reset it (it used to send RST_STREAM(CANCEL): a frame, a write and a
    /// wake-up of the peer for every tunnel).
    @Test func aTunnelThatEndedCleanlyIsNotResetAfterwards() async throws {
        let upstream = try await TestTCPServer.start(.closeOutputFirst(report: { _ in }), group: Self.upstreamGroup)
        let world = try await HBONEWorld(destinations: [Self.endpoint(upstream.port)])
        let report = try Self.runPythonClient(against: world, to: upstream.port, ["--size", "1000", "--settle", "1"])
        #expect(report.status == 200)
        #expect(report.received == 0)
        #expect(await eventually { world.inbound.summaries.count == 1 })
        #expect(world.inbound.summaries.first?.requestBytes == 1000)
        #expect(world.inbound.summaries.first?.error == nil)
        // WINDOW_UPDATE for the request bytes may still come (the server's receiving side is open); a reset may not.
        #expect(!report.frames_after_end.contains("RST_STREAM"))
        await world.shutdown()
        await upstream.close()
    }

    @Test func pythonClientGetsTheStatusCodesOfTheProtocol() async throws {
        let echo = try await TestTCPServer.start(.echo, group: Self.upstreamGroup)
        let world = try await HBONEWorld(
            destinations: [Self.endpoint(echo.port)],
            allow: { $0.headers.forwardedFor?.port != 401 }
        )
        let files = try TemporaryDirectory()
        defer { files.remove() }
        let tls = try Self.writePEM(
            world.clientCertificate,
            root: world.pki.authority.root,
            into: files,
            name: "client"
        )
        let server = world.serverEndpoint.description
        let echoAuthority = Self.endpoint(echo.port).description
        let get = try Self.runPythonClient(
            tls + ["--connect", server, "--authority", echoAuthority, "--method", "GET"]
        )
        #expect(get.status == 400)
        let wrongAuthority = try Self.runPythonClient(tls + ["--connect", server, "--authority", "10.9.9.9:80"])
        #expect(wrongAuthority.status == 400)
        let denied = try Self.runPythonClient(
            tls + ["--connect", server, "--authority", echoAuthority, "--forwarded-for", "10.0.0.1:401"]
        )
        #expect(denied.status == 401)
        await world.shutdown()
        await echo.close()
    }

    @Test func swiftClientTunnelsThroughThePythonServer() async throws {
        let echo = try await TestTCPServer.start(.echo, group: Self.upstreamGroup)
        let world = try await HBONEWorld(destinations: [])
        let files = try TemporaryDirectory()
        defer { files.remove() }
        let serverCertificate = try world.pki.issue(.test("demo", "server"), now: Date() - 60)
        let tls = try Self.writePEM(serverCertificate, root: world.pki.authority.root, into: files, name: "server")
        let authority = Self.endpoint(echo.port).description

        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.python)
        process.arguments =
            [Self.script, "server"] + tls + ["--upstream", authority, "--allow-authority", authority, "--linger", "20"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        defer { process.terminate() }
        let firstLine = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        let port = try #require(
            firstLine.split(separator: "\n").first.flatMap { $0.split(separator: " ").last }.flatMap { Int($0) }
        )

        let forwarder = try await world.forwarder(to: Self.endpoint(echo.port), via: Self.endpoint(port))
        let result = try await TestTCPClient.exchange(
            port: forwarder,
            payload: .pattern(4 << 20),
            group: world.clientGroup
        )
        #expect(result.error == nil)
        #expect(result.receivedCount == 4 << 20)
        #expect(result.receivedDigest == result.sentDigest)
        await world.shutdown()
        await echo.close()
    }
}
