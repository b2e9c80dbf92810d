import AmbitCapture
import AmbitModel
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Socket options and addresses in the current namespace (no privileges needed).
@Suite struct CaptureSocketsTests {
    @Test func listenerAndConnectOnLoopback() throws {
        let listener = try CaptureSockets.listener(
            address: IPEndpoint(.v4(0x7f00_0001), 0),
            mark: nil,
            reusePort: true,
            transparent: false
        )
        defer { close(listener) }
        let bound = try CaptureSockets.localAddress(fd: listener)
        #expect(bound.address == .v4(0x7f00_0001) && bound.port != 0)
        let client = try CaptureSockets.connect(
            to: bound,
            from: nil,
            mark: nil,
            transparent: false,
            timeout: .seconds(2)
        )
        defer { close(client) }
        #expect(try CaptureSockets.peerAddress(fd: client) == bound)
        #expect(fcntl(client, F_GETFL) & O_NONBLOCK != 0)
        #expect(fcntl(client, F_GETFD) & FD_CLOEXEC != 0)
    }

    @Test func ipv6ListenerIsV6Only() throws {
        let listener = try CaptureSockets.listener(
            address: IPEndpoint(.v6(high: 0, low: 1), 0),
            mark: nil,
            reusePort: false,
            transparent: false
        )
        defer { close(listener) }
        var value: Int32 = 0
        var length = socklen_t(4)
        #expect(getsockopt(listener, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &value, &length) == 0 && value == 1)
        #expect(try CaptureSockets.localAddress(fd: listener).address == .v6(high: 0, low: 1))
    }

    @Test func mixedFamiliesAreRejected() {
        #expect(throws: CaptureError.self) {
            try CaptureSockets.connect(
                to: IPEndpoint(.v4(0x7f00_0001), 1),
                from: .v6(high: 0, low: 1),
                mark: nil,
                transparent: false,
                timeout: .seconds(1)
            )
        }
    }
}
