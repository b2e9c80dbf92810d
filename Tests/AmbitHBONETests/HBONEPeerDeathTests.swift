import AmbitHBONE
import AmbitModel
import AmbitTestSupport
import Foundation
import NIOCore
import NIOPosix
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// What the client does when the far end of its HBONE connection dies without a word (`kill -9` of the
/// agent: the kernel closes the socket, no GOAWAY): the independent Python server is the far end.
@Suite(.serialized, .timeLimit(.minutes(1))) struct HBONEPeerDeathTests {
    /// The Python HBONE server (`Tests/Interop/hbone_peer.py server`), relaying to `upstream`.
    final class PythonServer {
        let process = Process()
        let port: Int

        init(
            tls: [String],
            upstream: IPEndpoint,
            port: Int = 0,
            connections: Int = 8,
            dieAfter: Int? = nil,
            refuseStreams: Int = 0
        ) throws {
            process.executableURL = URL(fileURLWithPath: HBONEInteropTests.python)
            process.arguments =
                [HBONEInteropTests.script, "server"] + tls
                + [
                    "--upstream", upstream.description, "--allow-authority", upstream.description, "--linger", "60",
                    "--connections", String(connections), "--port", String(port),
                    "--refuse-streams", String(refuseStreams),
                ] + (dieAfter.map { ["--die-after", String($0)] } ?? [])
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            let line = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
            guard let listening = line.split(separator: "\n").first.flatMap({ $0.split(separator: " ").last }),
                let bound = Int(listening)
            else { throw HBONEError(.connectFailed, "python server did not start: \(line)") }
            self.port = bound
        }

        /// SIGSTOP / SIGCONT: a peer that is there (its kernel still acknowledges TCP) but answers nothing.
        func freeze(_ frozen: Bool) { Glibc.kill(process.processIdentifier, frozen ? SIGSTOP : SIGCONT) }

        /// SIGKILL: the process dies, its kernel closes its sockets; nothing is said on the wire.
        func kill() {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }

        deinit { if process.isRunning { kill() } }
    }

    struct Setup {
        let upstream: TestTCPServer
        let world: HBONEWorld
        let files: TemporaryDirectory
        let tls: [String]

        init(
            upstream behaviour: TestTCPBehaviour = .echo,
            configuration: HBONEConfiguration = HBONEConfiguration()
        ) async throws {
            upstream = try await TestTCPServer.start(behaviour, group: HBONEInteropTests.upstreamGroup)
            world = try await HBONEWorld(destinations: [], configuration: configuration)
            files = try TemporaryDirectory()
            let certificate = try world.pki.issue(.test("demo", "server"), now: Date() - 60)
            tls = try HBONEInteropTests.writePEM(
                certificate,
                root: world.pki.authority.root,
                into: files,
                name: "server"
            )
        }

        /// A forwarder to the upstream through the Python peer on `port`; its port.
        func forwarder(to port: Int) async throws -> Int {
            try await world.forwarder(
                to: HBONEInteropTests.endpoint(upstream.port),
                via: HBONEInteropTests.endpoint(port)
            )
        }

        func close() async {
            await world.shutdown()
            await upstream.close()
            files.remove()
        }
    }

    @Test func aPooledConnectionWhosePeerDiedIsNeverHandedOut() async throws {
        let setup = try await Setup()
        let first = try PythonServer(tls: setup.tls, upstream: HBONEInteropTests.endpoint(setup.upstream.port))
        let port = try await setup.forwarder(to: first.port)
        func exchanges(_ count: Int) async throws -> [TestTCPClient.Result] {
            var results: [TestTCPClient.Result] = []
            for _ in 0..<count {
                results.append(
                    try await TestTCPClient.exchange(
                        port: port,
                        payload: .pattern(4096),
                        group: setup.world.clientGroup
                    )
                )
            }
            return results
        }
        #expect(try await exchanges(4).allSatisfy { $0.error == nil && $0.receivedCount == 4096 })
        #expect(await setup.world.client.status().values.map(\.connections) == [1], "one pooled connection")
        first.kill()
        // The far agent is back on the same address; not one tunnel may go to the dead connection.
        let second = try PythonServer(
            tls: setup.tls,
            upstream: HBONEInteropTests.endpoint(setup.upstream.port),
            port: first.port
        )
        let after = try await exchanges(8)
        #expect(after.filter { $0.error != nil || $0.receivedCount != 4096 }.isEmpty, "\(after.map(\.error))")
        second.kill()
        await setup.close()
    }

    /// A server that is going away (an agent handing its node over) answers a CONNECT that crossed its GOAWAY with
    /// nothing: the stream is above the GOAWAY's last stream id. The client sends it again on a new connection, so
    /// the application never sees the hand-over.
    @Test func aConnectLeftUnprocessedByAGoAwayIsSentAgainOnANewConnection() async throws {
        let setup = try await Setup()
        let server = try PythonServer(
            tls: setup.tls,
            upstream: HBONEInteropTests.endpoint(setup.upstream.port),
            refuseStreams: 1
        )
        let port = try await setup.forwarder(to: server.port)
        let result = try await TestTCPClient.exchange(
            port: port,
            payload: .pattern(4096),
            group: setup.world.clientGroup
        )
        #expect(result.error == nil && result.receivedCount == 4096, "\(String(describing: result.error))")
        // Once more goes through the new connection, with nothing refused.
        let again = try await TestTCPClient.exchange(
            port: port,
            payload: .pattern(4096),
            group: setup.world.clientGroup
        )
        #expect(again.error == nil && again.receivedCount == 4096)
        server.kill()
        await setup.close()
    }

    @Test func aStreamCutByThePeersDeathResetsTheClientInsteadOfEndingIt() async throws {
        let setup = try await Setup(upstream: .source(64 << 20))
        // The peer's process exits after relaying 1 MiB: its connection ends with a bare FIN (no GOAWAY,
        // no close_notify, no RST_STREAM), so the stream just stops.
        let server = try PythonServer(
            tls: setup.tls,
            upstream: HBONEInteropTests.endpoint(setup.upstream.port),
            dieAfter: 1 << 20
        )
        let port = try await setup.forwarder(to: server.port)
        let result = try await TestTCPClient.exchange(
            port: port,
            payload: .bytes([]),
            halfClose: false,
            group: setup.world.clientGroup
        )
        #expect(result.receivedCount < 64 << 20)
        #expect(result.error != nil, "a stream lost with its connection must reach the client as a reset, not an end")
        server.process.waitUntilExit()
        await setup.close()
    }

    @Test func aConnectionWhosePeerStopsAnsweringPingsIsClosed() async throws {
        var configuration = HBONEConfiguration()
        configuration.pingInterval = .milliseconds(100)
        configuration.pingTimeout = .milliseconds(300)
        let setup = try await Setup(configuration: configuration)
        let server = try PythonServer(tls: setup.tls, upstream: HBONEInteropTests.endpoint(setup.upstream.port))
        let port = try await setup.forwarder(to: server.port)
        let first = try await TestTCPClient.exchange(
            port: port,
            payload: .pattern(4096),
            group: setup.world.clientGroup
        )
        #expect(first.error == nil && first.receivedCount == 4096)
        // Answered PINGs keep the idle connection through many intervals (ten PINGs, three timeouts).
        try await Task.sleep(for: .seconds(1))
        #expect(await setup.world.client.status().values.map(\.connections) == [1])
        // Unanswered, it goes (a node that lost power, a middlebox that dropped the flow).
        server.freeze(true)
        #expect(await eventually { await setup.world.client.status().values.allSatisfy { $0.connections == 0 } })
        server.freeze(false)
        server.kill()
        await setup.close()
    }
}
