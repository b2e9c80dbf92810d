import AmbitCA
import AmbitConfig
import AmbitTestSupport
import NIOPosix
import Testing

/// ambit-ca's TokenReview authentication against a local HTTPS server answering as the API server does.
@Suite(.timeLimit(.minutes(1))) struct TokenReviewAuthenticatorTests {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    /// An API server reviewing `tokens` (it takes ambit-ca's own token, `ca-own-token`), and a TokenReview
    /// authenticator for `audiences` that asks it.
    func apiServer(
        reviewing tokens: [String: FakeKubernetesAPIServer.ReviewedToken],
        audiences: [String]
    ) async throws -> (FakeKubernetesAPIServer, TokenReviewAuthenticator) {
        let authority = try TestTLSAuthority()
        let serving = try authority.server()
        let server = try await FakeKubernetesAPIServer.start(
            certificatePEM: serving.certificatePEM,
            privateKeyPEM: serving.privateKeyPEM,
            group: group
        )
        server.acceptTokens(["ca-own-token"])
        server.reviewTokens(tokens)
        let cluster = KubernetesClusterConfig(
            host: "127.0.0.1",
            port: server.port,
            certificateAuthorityPEM: Array(authority.certificatePEM.utf8),
            credentials: .token("ca-own-token"),
            origin: "test"
        )
        let reviewer = try KubernetesTokenReviewer(cluster: cluster, group: group, userAgent: "ambit-ca-test")
        return (server, TokenReviewAuthenticator(reviewer: reviewer, audiences: audiences))
    }

    @Test func tokensAreReviewedWithTheCAsAudiencesAndTheCallersNode() async throws {
        let (server, authenticator) = try await apiServer(
            reviewing: [
                "node1-token": .init(
                    username: "system:serviceaccount:ambit-system:ambit-node",
                    audiences: ["ambit-ca"],
                    nodeName: "node1",
                    podName: "ambit-node-x7k2p"
                ),
                "kubelet-audience": .init(
                    username: "system:serviceaccount:demo:client",
                    audiences: ["https://kubernetes"]
                ),
                "a-user": .init(username: "alice", audiences: ["ambit-ca"]),
                // A webhook authenticator passing a user off as the node agent: not in the service-account group.
                "webhook": .init(
                    username: "system:serviceaccount:ambit-system:ambit-node",
                    audiences: ["ambit-ca"],
                    nodeName: "node2",
                    groups: ["system:authenticated"]
                ),
                "any-audience": .init(
                    username: "system:serviceaccount:demo:client",
                    audiences: ["somewhere-else"],
                    ignoresAudiences: true
                ),
            ],
            audiences: ["ambit-ca", "istio-ca"]
        )
        let caller = try await authenticator.authenticate(token: "node1-token")
        #expect(
            caller
                == CACaller(
                    namespace: "ambit-system",
                    serviceAccount: "ambit-node",
                    nodeName: "node1",
                    podName: "ambit-node-x7k2p"
                )
        )
        let review = try #require(server.requests.last { $0.path.hasSuffix("/tokenreviews") })
        #expect(review.method == "POST" && review.authorization == "Bearer ca-own-token")
        #expect(review.body.contains(#""audiences":["ambit-ca","istio-ca"]"#), "\(review.body)")

        for (token, reason) in [
            ("forged", "invalid bearer token"), ("kubelet-audience", "invalid for the target audiences"),
            ("a-user", "not a service account"), ("webhook", "not a service account"),
            ("any-audience", "did not confirm the token for the audiences"),
        ] {
            let error = await #expect(throws: CARefusal.self) { try await authenticator.authenticate(token: token) }
            #expect(
                error?.code == .unauthenticated && error?.message.contains(reason) == true,
                "\(String(describing: error))"
            )
        }
        await server.close()
        let error = await #expect(throws: CARefusal.self) { try await authenticator.authenticate(token: "node1-token") }
        #expect(error?.code == .unavailable, "an unreachable API server is not a bad token")
        try await group.shutdownGracefully()
    }

    /// As ambit-ca runs it: a node agent's token, sent with each of its pods' requests, is reviewed once;
    /// a token the API server refuses is asked about every time.
    @Test func aCachedReviewSparesTheAPIServer() async throws {
        let (server, reviews) = try await apiServer(
            reviewing: [
                "node1-token": .init(
                    username: "system:serviceaccount:ambit-system:ambit-node",
                    audiences: ["ambit-ca"],
                    nodeName: "node1"
                )
            ],
            audiences: ["ambit-ca"]
        )
        let authenticator = CachingCallerAuthenticator(reviews)
        func reviewed() -> Int { server.requests.filter { $0.path.hasSuffix("/tokenreviews") }.count }
        for _ in 0..<3 { #expect(try await authenticator.authenticate(token: "node1-token").nodeName == "node1") }
        #expect(reviewed() == 1)
        for _ in 0..<2 {
            let error = await #expect(throws: CARefusal.self) { try await authenticator.authenticate(token: "forged") }
            #expect(error?.code == .unauthenticated)
        }
        #expect(reviewed() == 3)
        await server.close()
        #expect(try await authenticator.authenticate(token: "node1-token").nodeName == "node1")
        try await group.shutdownGracefully()
    }
}
