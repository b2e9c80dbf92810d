import AmbitTestSupport
import Crypto
import Foundation
import Testing

/// `ambit-ca` against an independent client: Python grpcio with code generated from Istio's CA proto
/// (Tests/Interop/istio_ca_client.py). Good requests get a chain openssl verifies; each bad one gets its
/// gRPC status, a log line naming the caller, and nothing signed.
@Suite(.serialized, .timeLimit(.minutes(3))) struct CAServiceInteropTests {
    static let client = "spiffe://cluster.local/ns/demo/sa/client"
    static let server = "spiffe://cluster.local/ns/demo/sa/server"

    @Test func aNodeAgentGetsItsPodsCertificateAndOpenSSLVerifiesTheChain() async throws {
        let world = try await CAServiceWorld.start()
        defer { world.stop() }
        let keyFile = world.directory.path + "/leaf.key"
        let answer = try world.request(Self.client, token: try world.token(), keyOut: keyFile)
        #expect(answer.status == 0, "\(answer.error)")
        try #require(answer.chain.count == 2, "leaf then root: \(answer.chain.count)")
        try verifyWithOpenSSL(answer.chain, roots: world.rootsFile, keyFile: keyFile, spiffe: Self.client, in: world)
        #expect(world.log.contains("certificate issued") && world.log.contains("on node node1"))
        let metrics = try world.metrics()
        #expect(metrics.contains("citadel_server_success_cert_issuance_count 1"), "\(metrics)")
        #expect(metrics.contains("citadel_server_csr_count 1"))
    }

    /// A token bound only to a pod (Kubernetes before 1.30 puts no node in it): the node is the pod's, as istiod does.
    @Test func aNodeAgentTokenBoundOnlyToItsPodUsesThePodsNode() async throws {
        let world = try await CAServiceWorld.start()
        defer { world.stop() }
        let podToken = try world.token(node: nil, pod: "ambit-node-x7k2p")
        let own = try world.request(Self.client, token: podToken)
        #expect(own.status == 0 && own.chain.count == 2, "\(own.error)")
        let other = try world.request(Self.server, token: podToken)
        #expect(
            other.error.contains("no pod with identity \(Self.server) is scheduled on node node1"),
            "\(other.error)"
        )
        let impostor = try world.request(Self.server, token: try world.token(node: nil, pod: "impostor"))
        #expect(
            impostor.error.contains("PERMISSION_DENIED") && impostor.error.contains("is not a scheduled pod of"),
            "\(impostor.error)"
        )
        let unbound = try world.request(Self.client, token: try world.token(node: nil))
        #expect(unbound.error.contains("bound to neither a node nor a pod"), "\(unbound.error)")
    }

    @Test func sigtermDrainsAndExits() async throws {
        let world = try await CAServiceWorld.start()
        defer { world.stop() }
        kill(world.process.processIdentifier, SIGTERM)
        #expect(await eventually(timeout: .seconds(20)) { !world.process.isRunning }, "\(world.log)")
        world.process.waitUntilExit()
        #expect(world.process.terminationStatus == 0, "\(world.log)")
        #expect(world.log.contains("draining") && world.log.contains("ambit-ca stopped"), "\(world.log)")
    }

    @Test func anIstioSelfSignedCASecretSigns() async throws {
        let world = try await CAServiceWorld.start(.istioCASecret)
        defer { world.stop() }
        let keyFile = world.directory.path + "/leaf.key"
        let answer = try world.request(Self.client, token: try world.token(), keyOut: keyFile)
        #expect(answer.status == 0, "\(answer.error)\(world.log)")
        try #require(answer.chain.count == 2)
        try verifyWithOpenSSL(answer.chain, roots: world.rootsFile, keyFile: keyFile, spiffe: Self.client, in: world)
    }

    @Test func anRSACAInIstiosCacertsLayoutSigns() async throws {
        let world = try await CAServiceWorld.start(.rsaCacerts)
        defer { world.stop() }
        let keyFile = world.directory.path + "/leaf.key"
        let answer = try world.request(Self.client, token: try world.token(), keyOut: keyFile)
        #expect(answer.status == 0, "\(answer.error)")
        try #require(answer.chain.count == 2)
        try verifyWithOpenSSL(answer.chain, roots: world.rootsFile, keyFile: keyFile, spiffe: Self.client, in: world)
        let text = try ProcessRunner.run("/usr/bin/openssl", ["x509", "-noout", "-text"], input: answer.chain[0])
        #expect(text.standardOutput.contains("sha256WithRSAEncryption"), "the leaf is signed by the RSA key")
    }

    @Test func aWorkloadGetsOnlyItsOwnIdentity() async throws {
        let world = try await CAServiceWorld.start()
        defer { world.stop() }
        let own = try world.token(namespace: "demo", serviceAccount: "client", node: nil)
        let good = try world.request(Self.client, token: own, impersonate: false)
        #expect(good.status == 0 && good.chain.count == 2, "\(good.error)")
        let other = try world.request(Self.server, token: own, impersonate: false)
        #expect(other.status == 1 && other.error.contains("PERMISSION_DENIED (7)"), "\(other.error)")
        let impersonating = try world.request(Self.server, token: own, impersonate: true)
        #expect(
            impersonating.status == 1 && impersonating.error.contains("PERMISSION_DENIED (7)")
                && impersonating.error.contains("not a node agent account"),
            "\(impersonating.error)"
        )
        #expect(world.log.contains("caller=system:serviceaccount:demo:client"))
    }

    /// Every bad input of the issue, with the status it must get and what the log must name.
    @Test func badRequestsAreRefusedWithTheirStatusAndNothingIsSigned() async throws {
        let world = try await CAServiceWorld.start()
        defer { world.stop() }
        let node1 = try world.token()
        let otherKey = P256.Signing.PrivateKey()
        struct Case {
            let name: String
            let spiffe: String
            let token: String?
            let csr: String?
            let status: String
            let detail: String
        }
        let twoSANs = try world.openSSLCSR([
            "subjectAltName=critical,URI:\(Self.client),URI:spiffe://cluster.local/ns/demo/sa/other"
        ])
        let foreign = "spiffe://evil.example/ns/demo/sa/client"
        let cases: [Case] = [
            Case(
                name: "another node's pod",
                spiffe: Self.server,
                token: node1,
                csr: nil,
                status: "PERMISSION_DENIED (7)",
                detail: "no pod with identity \(Self.server) is scheduled on node node1"
            ),
            Case(
                name: "a SAN outside the trust domain",
                spiffe: foreign,
                token: node1,
                csr: nil,
                status: "PERMISSION_DENIED (7)",
                detail: "outside the trust domain"
            ),
            Case(
                name: "two SANs",
                spiffe: Self.client,
                token: node1,
                csr: twoSANs,
                status: "INVALID_ARGUMENT (3)",
                detail: "exactly one URI SAN, found 2"
            ),
            Case(
                name: "not a CSR",
                spiffe: Self.client,
                token: node1,
                csr: "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgQ1NS\n-----END CERTIFICATE REQUEST-----\n",
                status: "INVALID_ARGUMENT (3)",
                detail: "not a PEM certificate signing request"
            ),
            Case(
                name: "an oversized CSR",
                spiffe: Self.client,
                token: node1,
                csr: String(repeating: "A", count: 400_000),
                status: "RESOURCE_EXHAUSTED (8)",
                detail: "the CA accepts at most 16384"
            ),
            Case(
                name: "an oversized message",
                spiffe: Self.client,
                token: node1,
                csr: String(repeating: "A", count: 2_000_000),
                status: "CANCELLED (1)",
                detail: "RST_STREAM"
            ),
            Case(
                name: "no token",
                spiffe: Self.client,
                token: nil,
                csr: nil,
                status: "UNAUTHENTICATED (16)",
                detail: "no authorization header"
            ),
            Case(
                name: "a malformed token",
                spiffe: Self.client,
                token: "not.a-token",
                csr: nil,
                status: "UNAUTHENTICATED (16)",
                detail: "not a JWT"
            ),
            Case(
                name: "an expired token",
                spiffe: Self.client,
                token: try world.token(issued: Date() - 7200, lifetime: 3600),
                csr: nil,
                status: "UNAUTHENTICATED (16)",
                detail: "the token expired"
            ),
            Case(
                name: "a token signed by another key",
                spiffe: Self.client,
                token: try world.token(key: otherKey),
                csr: nil,
                status: "UNAUTHENTICATED (16)",
                detail: "does not verify"
            ),
            Case(
                name: "a token for another audience",
                spiffe: Self.client,
                token: try world.token(audience: "kubernetes"),
                csr: nil,
                status: "UNAUTHENTICATED (16)",
                detail: "audiences"
            ),
        ]
        for item in cases {
            let answer = try world.request(item.spiffe, token: item.token, csr: item.csr)
            #expect(answer.status == 1 && answer.chain.isEmpty, "\(item.name): signed or crashed: \(answer.error)")
            #expect(answer.error.contains(item.status), "\(item.name): \(answer.error)")
            #expect(answer.error.contains(item.detail), "\(item.name): \(answer.error)")
        }
        let log = world.log
        #expect(!log.contains("certificate issued"), "nothing signed")
        #expect(
            log.contains("caller=system:serviceaccount:ambit-system:ambit-node on node node1 code=permissionDenied")
        )
        #expect(log.contains("caller=unauthenticated code=unauthenticated"))
        let metrics = try world.metrics()
        #expect(metrics.contains("citadel_server_success_cert_issuance_count 0"))
        #expect(metrics.contains(#"ambit_ca_refusals_total{code="PERMISSION_DENIED"} 2"#), "\(metrics)")
        #expect(metrics.contains(#"ambit_ca_refusals_total{code="INVALID_ARGUMENT"} 2"#))
        #expect(metrics.contains(#"ambit_ca_refusals_total{code="UNAUTHENTICATED"} 5"#))
        #expect(
            metrics.contains(#"ambit_ca_refusals_total{code="RESOURCE_EXHAUSTED"} 1"#),
            "a message past 1 MiB never reaches the service: gRPC resets its stream"
        )
        #expect(world.process.isRunning)
    }

    /// openssl's view of a chain: it verifies to the root, carries the SPIFFE ID as its one URI SAN, and
    /// holds the public key of the client's own private key.
    private func verifyWithOpenSSL(
        _ chain: [String],
        roots: String,
        keyFile: String,
        spiffe: String,
        in world: CAServiceWorld
    ) throws {
        let leafFile = world.directory.path + "/leaf.pem"
        try chain[0].write(toFile: leafFile, atomically: true, encoding: .utf8)
        let verified = try ProcessRunner.run("/usr/bin/openssl", ["verify", "-CAfile", roots, leafFile])
        #expect(verified.status == 0 && verified.standardOutput.contains("OK"), "\(verified.standardError)")
        let san = try ProcessRunner.run(
            "/usr/bin/openssl",
            ["x509", "-noout", "-ext", "subjectAltName", "-in", leafFile]
        )
        #expect(san.standardOutput.contains("URI:\(spiffe)"), "\(san.standardOutput)")
        let certificateKey = try ProcessRunner.run("/usr/bin/openssl", ["x509", "-noout", "-pubkey", "-in", leafFile])
        let ownKey = try ProcessRunner.run("/usr/bin/openssl", ["pkey", "-pubout", "-in", keyFile])
        #expect(!ownKey.standardOutput.isEmpty && certificateKey.standardOutput == ownKey.standardOutput)
    }
}
