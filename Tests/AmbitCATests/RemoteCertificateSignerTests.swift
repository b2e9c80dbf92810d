import AmbitCA
import AmbitIdentity
import AmbitModel
import AmbitTestSupport
import Foundation
import Logging
import NIOPosix
import Synchronization
import Testing
import X509

#if canImport(Glibc)
    import Glibc
#endif

/// The agents' side: the certificate manager with a ``RemoteCertificateSigner`` against a real `ambit-ca`.
@Suite(.serialized, .timeLimit(.minutes(3))) struct RemoteCertificateSignerTests {
    static let client = try! SpiffeID(parsing: "spiffe://cluster.local/ns/demo/sa/client")
    static let server = try! SpiffeID(parsing: "spiffe://cluster.local/ns/demo/sa/server")
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    func signer(_ world: CAServiceWorld, roots: String? = nil) throws -> RemoteCertificateSigner {
        let tokenFile = world.directory.path + "/node1.token"
        try (try world.token() + "\n").write(toFile: tokenFile, atomically: true, encoding: .utf8)
        var options = RemoteCAOptions(
            address: world.address,
            rootsFile: roots ?? world.rootsFile,
            tokenFile: tokenFile,
            impersonate: true
        )
        options.clusterID = "Kubernetes"
        options.timeout = .seconds(30)  // generous: the full suite loads both cores
        return try RemoteCertificateSigner(options: options, group: group)
    }

    @Test func theManagerObtainsAPodCertificateWithAKeyMadeHere() async throws {
        let world = try await CAServiceWorld.start()
        defer { world.stop() }
        let signer = try signer(world)
        let manager = CertificateManager(signer: signer, logger: Logger(label: "test"))
        let certificate = try await manager.certificate(for: Self.client)
        #expect(certificate.identity == Self.client && certificate.chain.count == 2)
        #expect(certificate.chain.last == signer.trustAnchors.first)
        #expect(world.log.contains("identity=\(Self.client.uri)"))
        await #expect(throws: IdentityError.self) { try await manager.certificate(for: Self.server) }
        let status = await manager.status().first { $0.identity == Self.server }
        #expect(
            status?.lastError?.contains("no pod with identity \(Self.server.uri) is scheduled on node node1") == true
        )
    }

    /// A CA that goes away: the certificate in force keeps serving, renewals fail and retry, and say so.
    @Test func aCAOutageKeepsTheCurrentCertificateAndRetries() async throws {
        let world = try await CAServiceWorld.start()
        let signer = try signer(world)
        let clock = Mutex(Date())
        let manager = CertificateManager(
            signer: signer,
            backoff: RetryBackoff(initial: .milliseconds(100), maximum: .seconds(1)),
            logger: Logger(label: "test"),
            now: { clock.withLock { $0 } }
        )
        let first = try await manager.certificate(for: Self.client)
        world.kill()
        defer { world.stop() }
        clock.withLock { $0 = first.renewalTime + 1 }
        await manager.renewDue()
        let status = try #require(await manager.status().first)
        #expect(status.consecutiveFailures == 1 && status.lastError != nil)
        let current = await manager.currentCertificate(for: Self.client)
        #expect(current?.leaf == first.leaf, "the certificate in force still serves")
    }

    @Test func rootsThatDoNotIncludeTheCAsAreRefusedAtTheHandshake() async throws {
        let world = try await CAServiceWorld.start()
        defer { world.stop() }
        // A root of another mesh (its own subject: BoringSSL picks a trust anchor by subject name).
        let stranger = try CertificateAuthority.generate(trustDomain: "other.example")
        let strangerFile = world.directory.path + "/stranger.pem"
        try PEMFiles.write(try PEMFiles.pem([stranger.root]), to: strangerFile, mode: 0o644)
        let wrong = try signer(world, roots: strangerFile)
        let manager = CertificateManager(signer: wrong, logger: Logger(label: "test"))
        await #expect(throws: IdentityError.self) { try await manager.certificate(for: Self.client) }
        #expect(!world.log.contains("certificate issued"))
        // Two roots (a rotation in progress): either verifies.
        let both = world.directory.path + "/both.pem"
        let rootText = try String(contentsOfFile: world.rootsFile, encoding: .utf8)
        try (try PEMFiles.pem([stranger.root]) + rootText).write(toFile: both, atomically: true, encoding: .utf8)
        let rotated = try signer(world, roots: both)
        #expect(rotated.trustAnchors.count == 2)
        let certificate = try await CertificateManager(signer: rotated, logger: Logger(label: "test"))
            .certificate(for: Self.client)
        #expect(certificate.identity == Self.client)
    }
}
