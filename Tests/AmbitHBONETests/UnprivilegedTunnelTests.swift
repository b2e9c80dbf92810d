import AmbitModel
import AmbitTestSupport
import NIOPosix
import Testing

/// The waypoint runs as uid 1337 with every capability dropped (deploy/waypoint/waypoint.yaml), so
/// each socket option its listeners and dials set must be one an unprivileged process may set. One
/// was not: `.socketOption(.tcp_nodelay)` is `SO_DEBUG` (level `SOL_SOCKET`, option 1), which needs
/// `CAP_NET_ADMIN`; NIO closes an accepted socket whose option fails, so such a waypoint accepted
/// nothing on 15008.
@Suite struct UnprivilegedTunnelTests {
    @Test func aTunnelCarriesBytesWhenNoEventLoopMayAdministerTheNetwork() async throws {
        let upstreamGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        try await dropNetworkAdministration(on: upstreamGroup)
        let echo = try await TestTCPServer.start(.echo, group: upstreamGroup)
        let destination = IPEndpoint(.v4(0x7F00_0001), UInt16(echo.port))
        let world = try await HBONEWorld(destinations: [destination])
        // The server accepts and dials upstream on its loop, the forwarder accepts and dials the server on the client's.
        try await dropNetworkAdministration(on: world.serverGroup)
        try await dropNetworkAdministration(on: world.clientGroup)
        let port = try await world.forwarder(to: destination)
        let result = try await TestTCPClient.exchange(
            port: port,
            payload: .bytes(Array("no capabilities needed".utf8)),
            group: world.clientGroup
        )
        #expect(result.text == "no capabilities needed")
        #expect(result.error == nil)
        #expect(world.tunnelErrors.isEmpty)
        #expect(await eventually { world.inbound.summaries.count == 1 })
        await world.shutdown()
        await echo.close()
        try await upstreamGroup.shutdownGracefully()
    }
}
