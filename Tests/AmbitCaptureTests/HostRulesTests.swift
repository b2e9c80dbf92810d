import AmbitCapture
import AmbitModel
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The node-side rule for kubelet probes, with real nftables: the "client" namespace plays the node.
@Suite(.enabled(if: isRoot, "needs root for network namespaces and nftables"))
struct HostRulesTests {
    static let probeSource = IPAddress.v4(0xa9fe_077f)  // 169.254.7.127

    @Test func theNodesOwnConnectionsToACapturedPodArriveFromTheProbeAddressAndAreNotCaptured() async throws {
        let lab = try PodLab()
        // Replies to the probe address go back through the node, as a pod's default route sends them.
        try lab.pod.ip("route", "add", "169.254.7.127/32", "via", "10.77.0.2")
        let plaintext = try await lab.inboundPlaintextListener()
        defer { close(plaintext) }
        let application = try await lab.inPod {
            try CaptureSockets.listener(
                address: IPEndpoint(.v4(0), 8080),
                mark: nil,
                reusePort: false,
                transparent: false
            )
        }
        defer { close(application) }
        try await lab.inPod { try InPodRules.apply() }

        @Sendable func connectFromTheNode() async throws -> Int32 {
            try await lab.inClient {
                try CaptureSockets.connect(
                    to: IPEndpoint(PodLab.podIP, 8080),
                    from: nil,
                    mark: nil,
                    transparent: false,
                    timeout: .seconds(3)
                )
            }
        }

        // Without the node rule the node's connection is captured like any other plaintext client.
        let captured = try await connectFromTheNode()
        defer { close(captured) }
        let redirected = try SocketIO.accept(plaintext)
        defer { close(redirected) }
        #expect(try CaptureSockets.peerAddress(fd: redirected).address == PodLab.clientIP)

        try await lab.inClient { try HostRules.apply(podAddresses: [PodLab.podIP]) }
        #expect(try await lab.inClient { try HostRules.isApplied() })
        let listed = normalizedRuleset(try lab.client.nft("list", "table", "inet", HostRules.tableName))
        for line in HostRules.ruleLines(podAddresses: [PodLab.podIP]) {
            #expect(listed.contains(line), "\(listed)")
        }

        // With it, the probe reaches the application itself, from Istio's probe address.
        let probe = try await connectFromTheNode()
        defer { close(probe) }
        let accepted = try SocketIO.accept(application)
        defer { close(accepted) }
        #expect(try CaptureSockets.peerAddress(fd: accepted).address == Self.probeSource)
        try SocketIO.send(accepted, "ok")
        #expect(try SocketIO.receive(probe) == "ok", "replies find their way back through the node")
        #expect(!SocketIO.hasPendingConnection(plaintext))

        // A pod that is no longer captured leaves the set: the node's connections are plain again, and
        // with no pod left the table itself goes.
        try await lab.inClient { try HostRules.apply(podAddresses: []) }
        let plain = try await connectFromTheNode()
        defer { close(plain) }
        #expect(try CaptureSockets.peerAddress(fd: try SocketIO.accept(plaintext)).address == PodLab.clientIP)
        #expect(try await lab.inClient { try HostRules.isApplied() } == false)
        try await lab.inClient { try HostRules.apply(podAddresses: []) }  // nothing to remove: still fine

        try await lab.inClient { try HostRules.apply(podAddresses: [PodLab.podIP]) }
        try await lab.inClient { try HostRules.remove() }
        #expect(try await lab.inClient { try HostRules.isApplied() } == false)
        try await lab.inClient { try HostRules.remove() }  // already gone: still fine
    }

    @Test func oneRulePerPodAddressForEachFamily() {
        let lines = HostRules.ruleLines(podAddresses: [
            IPAddress("10.244.1.3")!, IPAddress("fd00::3")!, IPAddress("10.244.1.3")!,
        ])
        #expect(
            lines == [
                "ip daddr 10.244.1.3 meta l4proto tcp fib saddr type local snat ip to 169.254.7.127",
                "ip6 daddr fd00::3 meta l4proto tcp fib saddr type local snat ip6 to fd16:9254:7127:1337:ffff:ffff:ffff:ffff",
            ]
        )
    }
}
