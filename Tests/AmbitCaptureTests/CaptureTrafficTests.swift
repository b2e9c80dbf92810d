import AmbitCapture
import AmbitModel
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Real connections through the in-pod rules, between a pod and a client namespace (see `PodLab`).
@Suite(.enabled(if: isRoot, "needs root: creates network namespaces and nftables rules"))
struct CaptureTrafficTests {
    @Test func outboundConnectionIsRedirectedToTheOutboundListener() async throws {
        let lab = try PodLab()
        let listener = try await lab.inPod {
            try CaptureSockets.listener(
                address: IPEndpoint(.v4(0x7f00_0001), MeshPorts.outbound),
                mark: MeshMarks.agentSocket,
                reusePort: true,
                transparent: false
            )
        }
        defer { close(listener) }
        try await lab.inPod { try InPodRules.apply() }

        // An unmarked application socket dials "the internet"; the agent's listener gets it instead.
        let remote = IPEndpoint(PodLab.remoteIP, 8080)
        let app = try await lab.inPod {
            try CaptureSockets.connect(to: remote, from: nil, mark: nil, transparent: false, timeout: .seconds(3))
        }
        defer { close(app) }
        let accepted = try SocketIO.accept(listener)
        defer { close(accepted) }

        #expect(try CaptureSockets.originalDestination(fd: accepted) == remote)
        #expect(try CaptureSockets.localAddress(fd: accepted) == IPEndpoint(.v4(0x7f00_0001), MeshPorts.outbound))
        #expect(try CaptureSockets.peerAddress(fd: accepted) == CaptureSockets.localAddress(fd: app))
        #expect(try CaptureSockets.mark(fd: listener) == MeshMarks.agentSocket)
        try SocketIO.send(app, "hello")
        #expect(try SocketIO.receive(accepted) == "hello")
    }

    @Test func outboundIPv6ConnectionIsRedirectedToTheIPv6Listener() async throws {
        let lab = try PodLab()
        let listener = try await lab.inPod {
            try CaptureSockets.listener(
                address: IPEndpoint(.v6(high: 0, low: 1), MeshPorts.outbound),
                mark: MeshMarks.agentSocket,
                reusePort: true,
                transparent: false
            )
        }
        defer { close(listener) }
        try await lab.inPod { try InPodRules.apply() }

        let remote = IPEndpoint(PodLab.remoteIPv6, 443)
        let app = try await lab.inPod {
            try CaptureSockets.connect(to: remote, from: nil, mark: nil, transparent: false, timeout: .seconds(3))
        }
        defer { close(app) }
        let accepted = try SocketIO.accept(listener)
        defer { close(accepted) }
        #expect(try CaptureSockets.originalDestination(fd: accepted) == remote)
    }

    @Test func agentMarkedOutboundConnectionIsNotRedirected() async throws {
        let lab = try PodLab()
        let remote = IPEndpoint(PodLab.remoteIP, 8080)
        let capture = try await lab.inPod {
            try CaptureSockets.listener(
                address: IPEndpoint(.v4(0x7f00_0001), MeshPorts.outbound),
                mark: MeshMarks.agentSocket,
                reusePort: true,
                transparent: false
            )
        }
        defer { close(capture) }
        let server = try await lab.inClient {
            try CaptureSockets.listener(address: remote, mark: nil, reusePort: false, transparent: false)
        }
        defer { close(server) }
        try await lab.inPod { try InPodRules.apply() }

        let agent = try await lab.inPod {
            try CaptureSockets.connect(
                to: remote,
                from: nil,
                mark: MeshMarks.agentSocket,
                transparent: false,
                timeout: .seconds(3)
            )
        }
        defer { close(agent) }
        let accepted = try SocketIO.accept(server)
        defer { close(accepted) }

        #expect(try CaptureSockets.peerAddress(fd: accepted).address == PodLab.podIP)
        #expect(!SocketIO.hasPendingConnection(capture))
    }

    @Test func inboundConnectionIsRedirectedWithItsOriginalDestinationAndSource() async throws {
        let lab = try PodLab()
        let plaintext = try await lab.inboundPlaintextListener()
        defer { close(plaintext) }
        let hbone = try await lab.inPod {
            try CaptureSockets.listener(
                address: IPEndpoint(PodLab.podIP, MeshPorts.hbone),
                mark: MeshMarks.agentSocket,
                reusePort: true,
                transparent: false
            )
        }
        defer { close(hbone) }
        try await lab.inPod { try InPodRules.apply() }

        // Plain TCP to an application port lands on 15006, remembering where it was going.
        let client = try await lab.inClient {
            try CaptureSockets.connect(
                to: IPEndpoint(PodLab.podIP, 8080),
                from: nil,
                mark: nil,
                transparent: false,
                timeout: .seconds(3)
            )
        }
        defer { close(client) }
        let accepted = try SocketIO.accept(plaintext)
        defer { close(accepted) }
        #expect(try CaptureSockets.originalDestination(fd: accepted) == IPEndpoint(PodLab.podIP, 8080))
        #expect(try CaptureSockets.peerAddress(fd: accepted) == CaptureSockets.localAddress(fd: client))
        #expect(try CaptureSockets.peerAddress(fd: accepted).address == PodLab.clientIP)

        // HBONE on 15008 is never redirected.
        let tunnel = try await lab.inClient {
            try CaptureSockets.connect(
                to: IPEndpoint(PodLab.podIP, MeshPorts.hbone),
                from: nil,
                mark: nil,
                transparent: false,
                timeout: .seconds(3)
            )
        }
        defer { close(tunnel) }
        let hboneAccepted = try SocketIO.accept(hbone)
        defer { close(hboneAccepted) }
        #expect(try CaptureSockets.localAddress(fd: hboneAccepted) == IPEndpoint(PodLab.podIP, MeshPorts.hbone))
        #expect(!SocketIO.hasPendingConnection(plaintext))
    }

    /// The agent delivers an inbound connection to the application "as" the original client: a
    /// transparent socket bound to the client's address. The application's replies are addressed to
    /// the client, so without the return-path marks and route they would leave through the veth.
    @Test func transparentDialReachesTheAppWithTheClientAsSourceAndRepliesComeBack() async throws {
        let lab = try PodLab()
        let appAddress = IPEndpoint(PodLab.podIP, 8080)
        let app = try await lab.inPod {
            try CaptureSockets.listener(address: appAddress, mark: nil, reusePort: false, transparent: false)
        }
        defer { close(app) }
        @Sendable func dial(timeout: Duration) throws -> Int32 {
            try CaptureSockets.connect(
                to: appAddress,
                from: PodLab.clientIP,
                mark: MeshMarks.agentSocket,
                transparent: true,
                timeout: timeout
            )
        }

        // Control: without the rules the SYN-ACK goes to the real client, which resets it.
        let withoutRules = await #expect(throws: CaptureError.self) {
            try await lab.inPod { try dial(timeout: .milliseconds(700)) }
        }
        #expect(withoutRules?.isTimeout == true, "\(String(describing: withoutRules))")
        while SocketIO.hasPendingConnection(app) { close(try SocketIO.accept(app)) }

        try await lab.inPod { try InPodRules.apply() }
        let agent = try await lab.inPod { try dial(timeout: .seconds(3)) }
        defer { close(agent) }
        let accepted = try SocketIO.accept(app)
        defer { close(accepted) }

        let peer = try CaptureSockets.peerAddress(fd: accepted)
        #expect(peer.address == PodLab.clientIP)
        #expect(peer == (try CaptureSockets.localAddress(fd: agent)))
        try SocketIO.send(agent, "request")
        #expect(try SocketIO.receive(accepted) == "request")
        try SocketIO.send(accepted, "response")
        #expect(try SocketIO.receive(agent) == "response")
    }

    @Test func refusedConnectIsDistinguishable() async throws {
        let lab = try PodLab()
        let error = await #expect(throws: CaptureError.self) {
            try await lab.inClient {
                try CaptureSockets.connect(
                    to: IPEndpoint(PodLab.podIP, 9),
                    from: nil,
                    mark: nil,
                    transparent: false,
                    timeout: .seconds(3)
                )
            }
        }
        #expect(error?.isRefused == true, "\(String(describing: error))")
        #expect("\(error.map { "\($0)" } ?? "")".contains("connect to 10.77.0.1:9 failed: Connection refused"))
    }

    @Test func socketsRememberTheirNamespace() async throws {
        let lab = try PodLab()
        let listener = try await lab.inPod {
            try CaptureSockets.listener(
                address: IPEndpoint(.v4(0x7f00_0001), 0),
                mark: nil,
                reusePort: false,
                transparent: false
            )
        }
        defer { close(listener) }
        // Used from this (host namespace) thread, the socket still reports the pod's namespace.
        let podCookie = try CaptureSockets.netnsCookie(fd: listener)
        let hostCookie = try cookieOfNewSocket()
        let podCookieAgain = try await lab.inPod { try cookieOfNewSocket() }
        #expect(podCookie == podCookieAgain)
        #expect(podCookie != hostCookie)
    }
}

/// The namespace cookie of a socket opened in the calling thread's namespace.
private func cookieOfNewSocket() throws -> UInt64 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    return try CaptureSockets.netnsCookie(fd: fd)
}
