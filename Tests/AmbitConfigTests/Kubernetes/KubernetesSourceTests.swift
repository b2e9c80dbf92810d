import AmbitModel
import AmbitTestSupport
import Foundation
import Testing

@testable import AmbitConfig

/// The Kubernetes config source against a fake API server speaking the real list/watch wire
/// format over HTTPS, with objects recorded from a real cluster (`Fixtures/`).
@Suite struct KubernetesSourceTests {
    typealias World = KubernetesWorld

    @Test func listsEveryCollectionThenWatchesFromTheListVersion() async throws {
        let world = try await World()
        try await world.start()
        let snapshot = world.store.snapshot
        let client = try #require(snapshot.workload(at: IPAddress("10.244.1.7")!))
        #expect(client.key == World.client)
        #expect(client.identity == .test("demo", "client"))
        #expect(client.enrollment.isEnrolled)
        #expect(client.pod.nodeName == "node-1")
        let service = try #require(snapshot.service(at: IPEndpoint(IPAddress("10.96.14.22")!, 80)))
        #expect(service.service.name == "server")
        #expect(
            snapshot.authorizationPolicies[ObjectKey(.authorizationPolicy, namespace: "demo", name: "allow-client")]
                != nil
        )
        #expect(snapshot.gateways.values.first?.addresses == [IPAddress("10.96.200.5")!])
        #expect(snapshot.httpRoutes.values.first?.rules.first?.backendRefs.map(\.weight) == [90, 10])
        // A VirtualService as the API server returns it: the Istio fields a Gateway API CRD would prune.
        let virtualService = try #require(snapshot.virtualServices.values.first)
        #expect(virtualService.hosts == ["server-v1"])
        let rule = try #require(virtualService.http.first)
        #expect(rule.retry?.attempts == 3 && rule.retry?.perTryTimeout == .milliseconds(500))
        #expect(rule.retry?.retryOn == ["connect-failure", "reset", "503"])
        #expect(rule.fault?.abortStatus == 503 && rule.fault?.abortPercent == 5)
        #expect(rule.timeouts?.request == .seconds(2))
        #expect(rule.backendRefs.map(\.backend.name) == ["server-v1"] && rule.backendRefs.map(\.weight) == [100])
        #expect(snapshot.namespaces.keys.sorted() == ["demo", "istio-system"])
        #expect(await eventually { world.server.openWatches == KubernetesResource.all.count })

        // Each collection: a paginated list, then a watch with bookmarks from the list's version. (A list
        // that failed on a loaded machine is listed again first; the watch still starts from the version
        // of the list that succeeded.)
        let requests = world.server.requests
        for path in [World.namespaces, World.pods, World.services, World.authorizationPolicies, World.httpRoutes] {
            let forPath = requests.filter { $0.path == path }
            let lists = forPath.prefix { !$0.isWatch }
            #expect(!lists.isEmpty, "no list of \(path): \(forPath)")
            for list in lists {
                #expect(list.query["limit"] == "500", "\(list)")
                #expect(list.authorization == "Bearer t1")
            }
            let watch = try #require(forPath.first { $0.isWatch }, "no watch of \(path): \(forPath)")
            #expect(watch.isWatch && watch.query["allowWatchBookmarks"] == "true", "\(watch)")
            #expect(watch.query["resourceVersion"] == String(world.server.resourceVersion), "\(watch)")
            let timeout = try #require(watch.query["timeoutSeconds"].flatMap(Int.init))
            #expect((300...600).contains(timeout))
        }
        await world.close()
    }

    @Test func watchEventsChangeTheStore() async throws {
        let world = try await World()
        try await world.start()
        let ip = IPAddress("10.244.1.9")!
        world.server.put(World.pods, World.pod("server-1", ip: "10.244.1.9"))
        #expect(await eventually { world.store.snapshot.workload(at: ip) != nil })

        // Un-labelling the namespace (MODIFIED) releases its pods from the mesh.
        let unlabelled = World.fixture("namespace-demo").replacingOccurrences(
            of: "\"istio.io/dataplane-mode\": \"ambient\",",
            with: ""
        )
        world.server.put(World.namespaces, unlabelled)
        #expect(await eventually { world.store.snapshot.workload(at: ip)?.enrollment.isEnrolled == false })

        world.server.delete(World.pods, namespace: "demo", name: "server-1")
        #expect(await eventually { world.store.snapshot.workload(at: ip) == nil })
        #expect(world.store.snapshot.workload(for: World.client) != nil)
        await world.close()
    }

    @Test func pagesThroughLargeLists() async throws {
        var options = World.fastOptions
        options.pageSize = 2
        let world = try await World(options: options)
        for index in 0..<5 { world.server.put(World.pods, World.pod("p\(index)", ip: "10.244.2.\(index + 1)")) }
        try await world.start()
        #expect(world.store.snapshot.pods.count == 6)
        let lists = world.server.requests.filter { $0.path == World.pods && !$0.isWatch }
        #expect(
            lists.map { $0.query["continue"] ?? "-" } == [
                "-", "2-\(world.server.resourceVersion)", "4-\(world.server.resourceVersion)",
            ],
            "last error: \(world.collection(.pod)?.lastError ?? "none")"
        )
        #expect(world.collection(.pod)?.objects == 6)
        await world.close()
    }

    @Test func aBrokenWatchResumesFromTheLastBookmark() async throws {
        let world = try await World()
        try await world.start()
        #expect(await eventually { world.server.openWatches == KubernetesResource.all.count })
        let bookmark = world.server.bookmark()
        #expect(await eventually { world.collection(.pod)?.resourceVersion == String(bookmark) })
        let before = world.server.requests.count
        world.server.dropWatches()
        // Changes while the watch is down are delivered from the server's history once it resumes.
        world.server.put(World.pods, World.pod("late", ip: "10.244.3.3"))
        #expect(await eventually { world.store.snapshot.workload(at: IPAddress("10.244.3.3")!) != nil })
        // Each collection re-watches on its own schedule: wait for the namespaces one too.
        #expect(
            await eventually {
                world.server.requests.dropFirst(before).contains { $0.path == World.namespaces && $0.isWatch }
            }
        )
        let rewatch = try #require(
            world.server.requests.dropFirst(before).first { $0.path == World.namespaces && $0.isWatch }
        )
        #expect(rewatch.query["resourceVersion"] == String(bookmark), "\(rewatch)")
        let afterwards = world.server.requests.dropFirst(before)
        #expect(afterwards.allSatisfy { $0.isWatch }, "no re-list after a plain disconnect: \(afterwards)")
        await world.close()
    }

    /// `410 Gone` — as the HTTP status of a new watch, or as an `ERROR` event inside one — makes
    /// the source list again, which is how it learns of deletions it missed.
    @Test(arguments: [FakeKubernetesAPIServer.Expiry.status, .event])
    func anExpiredVersionMeansAFullRelist(expiry: FakeKubernetesAPIServer.Expiry) async throws {
        let world = try await World()
        world.server.setExpiry(expiry)
        world.server.put(World.pods, World.pod("doomed", ip: "10.244.4.4"))
        try await world.start()
        #expect(world.store.snapshot.workload(at: IPAddress("10.244.4.4")!) != nil)
        #expect(await eventually { world.server.openWatches == KubernetesResource.all.count })

        // Keep the source away while the pod goes and the server forgets its history.
        world.server.fail(World.pods, status: 503, count: 1_000_000)
        let before = world.server.requests.count
        world.server.dropWatches()
        #expect(await eventually { world.server.requests.dropFirst(before).contains { $0.path == World.pods } })
        world.server.delete(World.pods, namespace: "demo", name: "doomed")
        world.server.compact()
        world.server.clearFailures()

        #expect(await eventually { world.store.snapshot.workload(at: IPAddress("10.244.4.4")!) == nil })
        #expect(world.collection(.pod)?.relists == 1)
        let afterwards = world.server.requests.dropFirst(before).filter { $0.path == World.pods }
        #expect(afterwards.contains { !$0.isWatch }, "\(afterwards)")
        await world.close()
    }

    @Test func failuresAtStartAreRetriedWithBackoff() async throws {
        let world = try await World()
        world.server.fail(World.pods, status: 500, count: 2)
        try await world.start()
        let lists = world.server.requests.filter { $0.path == World.pods && !$0.isWatch }
        // Two refused, then one that succeeds; on a loaded machine a list can also time out and be listed again
        // (4 seen once under the full suite), so at least three.
        #expect(lists.count >= 3, "\(lists)")
        #expect(world.collection(.pod)?.lastError == nil)
        #expect(world.store.snapshot.workload(for: World.client) != nil)
        await world.close()
    }

    @Test func aRejectedObjectKeepsItsLastGoodVersion() async throws {
        let world = try await World()
        try await world.start()
        let broken = World.fixture("pod-client").replacingOccurrences(
            of: "\"nodeName\": \"node-1\"",
            with: "\"nodeName\": 7"
        )
        world.server.put(World.pods, broken)
        #expect(await eventually { world.collection(.pod)?.rejected == 1 })
        let rejected = world.source.statusDump()["rejectedObjects"] as? [String] ?? []
        #expect(
            rejected == [
                "kubernetes /api/v1/pods: Pod demo/client-7d9c8b6f4-x2vkq: spec.nodeName: expected a string, got an integer (7)"
            ],
            "\(rejected)"
        )
        #expect(world.store.snapshot.pods[World.client]?.nodeName == "node-1")

        let fixed = World.fixture("pod-client").replacingOccurrences(of: "\"node-1\"", with: "\"node-2\"")
        world.server.put(World.pods, fixed)
        #expect(await eventually { world.store.snapshot.pods[World.client]?.nodeName == "node-2" })
        #expect(world.collection(.pod)?.rejected == 0)
        await world.close()
    }

    @Test func collectionsTheClusterDoesNotServeAreEmptyNotFatal() async throws {
        let world = try await World()
        for path in [World.authorizationPolicies, World.peerAuthentications, World.gateways, World.httpRoutes] {
            world.server.setServed(path, false)
            world.server.setServed(path.replacingOccurrences(of: "/v1/", with: "/v1beta1/"), false)
        }
        try await world.start()
        #expect(world.store.snapshot.authorizationPolicies.isEmpty)
        #expect(world.collection(.authorizationPolicy)?.served == false)
        #expect(world.collection(.pod)?.served == true)
        #expect(world.store.snapshot.workload(for: World.client) != nil)
        // Installing the CRDs later is noticed.
        world.server.setServed(World.authorizationPolicies, true)
        #expect(await eventually { !world.store.snapshot.authorizationPolicies.isEmpty })
        #expect(world.collection(.authorizationPolicy)?.apiVersion == "security.istio.io/v1")
        await world.close()
    }

    @Test func anOlderServedVersionIsUsedWhenTheNewestIsNot() async throws {
        let world = try await World(seed: false)
        world.server.setServed(World.authorizationPolicies, false)
        world.server.put(
            "/apis/security.istio.io/v1beta1/authorizationpolicies",
            World.fixture("authorizationpolicy-allow-client").replacingOccurrences(
                of: "security.istio.io/v1\"",
                with: "security.istio.io/v1beta1\""
            )
        )
        try await world.start()
        #expect(world.store.snapshot.authorizationPolicies.count == 1)
        #expect(world.collection(.authorizationPolicy)?.apiVersion == "security.istio.io/v1beta1")
        await world.close()
    }

    @Test func rotatedTokensAreReadForEveryRequest() async throws {
        let world = try await World()
        try await world.start()
        #expect(await eventually { world.server.openWatches == KubernetesResource.all.count })
        try "t2".write(toFile: world.tokenFile, atomically: true, encoding: .utf8)
        world.server.acceptTokens(["t2"])
        let before = world.server.requests.count
        world.server.dropWatches()
        #expect(await eventually { world.server.openWatches == KubernetesResource.all.count })
        #expect(world.server.requests.dropFirst(before).allSatisfy { $0.authorization == "Bearer t2" })
        await world.close()
    }

    @Test func refusedCredentialsAndMissingRBACAreReportedWithTheFix() async throws {
        let world = try await World()
        world.server.acceptTokens(["someone-else"])
        let source = world.source
        let starting = Task { try await source.start() }
        // Up to 30 s: on a loaded machine a first attempt that timed out puts the next one behind a backoff.
        #expect(
            await eventually(timeout: .seconds(30)) {
                world.collection(.namespace)?.lastError?.contains("refused the credentials") == true
            }
        )
        world.server.acceptTokens(["t1"])
        world.server.fail(World.pods, status: 403, count: 1_000_000)
        #expect(
            await eventually(timeout: .seconds(30)) {
                world.collection(.pod)?.lastError?.contains("RBAC must allow get, list and watch on pods") == true
            }
        )
        #expect(world.store.snapshot.pods.isEmpty, "nothing is published before every collection synced")
        starting.cancel()
        await world.close()
    }

    @Test func kubeconfigWithAClientCertificate() async throws {
        let world = try await World(clientCertificates: true) { cluster, setup in
            let user = try setup.authority.client(commonName: "system:node:node-1", organizations: ["system:nodes"])
            func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }
            let path = try setup.directory.write(
                "kubeconfig",
                """
                apiVersion: v1
                kind: Config
                current-context: test
                clusters:
                - name: test
                  cluster:
                    server: https://127.0.0.1:\(setup.port)
                    certificate-authority-data: \(base64(setup.authority.certificatePEM))
                contexts:
                - name: test
                  context: {cluster: test, user: node}
                users:
                - name: node
                  user:
                    client-certificate-data: \(base64(user.certificatePEM))
                    client-key-data: \(base64(user.privateKeyPEM))
                """
            )
            cluster = try KubernetesClusterConfig.kubeconfig(path: path)
        }
        world.server.acceptTokens([])
        try await world.start()
        #expect(world.store.snapshot.workload(for: World.client) != nil)
        #expect(world.server.requests.allSatisfy { $0.authorization == nil })
        await world.close()
    }

    @Test func anUntrustedServerCertificateIsRefused() async throws {
        let world = try await World { cluster, _ in
            cluster.certificateAuthorityPEM = Array(try TestTLSAuthority(name: "another CA").certificatePEM.utf8)
        }
        let source = world.source
        let starting = Task { try await source.start() }
        #expect(
            await eventually(timeout: .seconds(30)) {
                world.collection(.namespace)?.lastError?.contains("TLS with the API server") == true
            },
            "\(world.collection(.namespace)?.lastError ?? "no error")"
        )
        #expect(world.server.requests.isEmpty)
        starting.cancel()
        await world.close()
    }
}
