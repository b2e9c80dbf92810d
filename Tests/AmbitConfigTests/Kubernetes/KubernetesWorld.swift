import AmbitModel
import AmbitTestSupport
import Foundation
import Logging
import NIOPosix
import Synchronization

@testable import AmbitConfig

/// A fake API server (HTTPS, real list/watch wire format) seeded with recorded objects, and a
/// ``KubernetesSource`` feeding a store from it.
final class KubernetesWorld: Sendable {
    static let namespaces = KubernetesFixtures.namespaces
    static let pods = KubernetesFixtures.pods
    static let services = KubernetesFixtures.services
    static let authorizationPolicies = KubernetesFixtures.authorizationPolicies
    static let peerAuthentications = KubernetesFixtures.peerAuthentications
    static let gateways = KubernetesFixtures.gateways
    static let httpRoutes = KubernetesFixtures.httpRoutes
    static let client = ObjectKey(.pod, namespace: "demo", name: KubernetesFixtures.clientPod)

    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let authority: TestTLSAuthority
    let server: FakeKubernetesAPIServer
    let directory: TemporaryDirectory
    let store = ConfigStore()
    let source: KubernetesSource
    let tokenFile: String
    private let running = Mutex<Task<Void, Never>?>(nil)

    /// `configure` adjusts the cluster config (credentials, CA) before the source is made.
    init(
        seed: Bool = true,
        clientCertificates: Bool = false,
        options: KubernetesSource.Options = KubernetesWorld.fastOptions,
        configure: (inout KubernetesClusterConfig, KubernetesWorld.Setup) throws -> Void = { _, _ in }
    ) async throws {
        authority = try TestTLSAuthority()
        let serving = try authority.server()
        server = try await FakeKubernetesAPIServer.start(
            certificatePEM: serving.certificatePEM,
            privateKeyPEM: serving.privateKeyPEM,
            clientRootsPEM: clientCertificates ? authority.certificatePEM : nil,
            group: group
        )
        directory = try TemporaryDirectory(prefix: "ambit-kube")
        tokenFile = try directory.write("token", "t1\n")
        server.acceptTokens(["t1"])
        var cluster = KubernetesClusterConfig(
            host: "127.0.0.1",
            port: server.port,
            certificateAuthorityPEM: Array(authority.certificatePEM.utf8),
            credentials: .tokenFile(tokenFile),
            origin: "test"
        )
        try configure(&cluster, Setup(authority: authority, directory: directory, port: server.port))
        var logger = Logger(label: "test.kubernetes")
        logger.logLevel = ProcessInfo.processInfo.environment["AMBIT_TEST_LOG"] == nil ? .critical : .warning
        source = try KubernetesSource(cluster: cluster, store: store, group: group, options: options, logger: logger)
        if seed { seedCluster() }
    }

    struct Setup {
        let authority: TestTLSAuthority
        let directory: TemporaryDirectory
        let port: Int
    }

    static var fastOptions: KubernetesSource.Options {
        var options = KubernetesSource.Options()
        options.backoff = RetryBackoff(initial: .milliseconds(20), maximum: .milliseconds(200))
        options.publishDelay = .milliseconds(10)
        options.absentRecheck = .milliseconds(200)
        return options
    }

    static func fixture(_ name: String) -> String { KubernetesFixtures.json(name) }

    func seedCluster() { KubernetesFixtures.seed(server) }

    /// Starts the source (returns once it synced) and keeps it running.
    func start() async throws {
        try await source.start()
        let source = self.source
        running.withLock { $0 = Task { try? await source.run() } }
    }

    func close() async {
        source.stop()
        await running.withLock { $0 }?.value
        try? await source.run()  // returns once every (cancelled) list and watch has ended
        await server.close()
        directory.remove()
        try? await group.shutdownGracefully()
    }

    static func pod(_ name: String, ip: String) -> String { KubernetesFixtures.pod(name, ip: ip) }

    func collection(_ kind: ResourceKind) -> KubernetesSource.CollectionStatus? {
        source.status().first { $0.kind == kind }
    }
}
