import AmbitTestSupport
import Foundation
import NIOPosix
import Testing

/// `ambit-node`, `ambit-waypoint` and `ambit-ca` as processes, reading their configuration from a Kubernetes API
/// server (the fake one: HTTPS, token auth, the real list/watch and TokenReview wire format) through a kubeconfig.
@Suite struct KubernetesModeTests {
    final class Cluster {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let directory: TemporaryDirectory
        let server: FakeKubernetesAPIServer
        let kubeconfig: String
        let ca: String
        var processes: [Process] = []

        init() async throws {
            directory = try TemporaryDirectory(prefix: "ambit-k8s-mode")
            let authority = try TestTLSAuthority()
            let serving = try authority.server()
            server = try await FakeKubernetesAPIServer.start(
                certificatePEM: serving.certificatePEM,
                privateKeyPEM: serving.privateKeyPEM,
                group: group
            )
            server.acceptTokens(["node-token"])
            KubernetesFixtures.seed(server)
            kubeconfig = try directory.write(
                "kubeconfig",
                """
                apiVersion: v1
                kind: Config
                current-context: fake
                clusters:
                - name: fake
                  cluster:
                    server: https://127.0.0.1:\(server.port)
                    certificate-authority-data: \(Data(authority.certificatePEM.utf8).base64EncodedString())
                contexts:
                - name: fake
                  context: {cluster: fake, user: agent}
                users:
                - name: agent
                  user: {token: node-token}
                """
            )
            ca = directory.path + "/ca"
            let created = try ProcessRunner.run(TestBinaries.path("ambitctl"), ["ca", "init", "--dir", ca])
            guard created.status == 0 else { throw TestFailure("ca init: \(created.standardError)") }
        }

        /// Starts a daemon with its output in `<directory>/<name>.log`.
        func start(_ binary: String, _ arguments: [String]) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: TestBinaries.path(binary))
            process.arguments = arguments
            let log = directory.path + "/\(binary).log"
            FileManager.default.createFile(atPath: log, contents: nil)
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            process.standardError = process.standardOutput
            try process.run()
            processes.append(process)
        }

        func log(_ binary: String) -> String {
            (try? String(contentsOfFile: directory.path + "/\(binary).log", encoding: .utf8)) ?? ""
        }

        func close() async {
            for process in processes where process.isRunning { kill(process.processIdentifier, SIGKILL) }
            for process in processes { process.waitUntilExit() }
            await server.close()
            directory.remove()
            try? await group.shutdownGracefully()
        }
    }

    struct TestFailure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static func get(_ url: String) -> (status: Int, body: String)? {
        guard let result = try? ProcessRunner.run("/usr/bin/curl", ["-s", "-m", "2", "-w", "\n%{http_code}", url]),
            result.status == 0
        else { return nil }
        var lines = result.standardOutput.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let status = Int(lines.removeLast()) ?? 0
        return (status, lines.joined(separator: "\n"))
    }

    static func eventually(_ seconds: Double = 20, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(100_000)
        }
        return condition()
    }

    static func json(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    @Test func theNodeAgentReadsTheClusterAndPublishesEnrollment() async throws {
        let cluster = try await Cluster()
        let state = cluster.directory.path + "/state"
        let netns = cluster.directory.path + "/netns"
        try FileManager.default.createDirectory(atPath: netns, withIntermediateDirectories: true)
        let (metrics, readiness, admin) = (TestPorts.free(), TestPorts.free(), TestPorts.free())
        try cluster.start(
            "ambit-node",
            [
                "--node-name", "node-9", "--kubeconfig", cluster.kubeconfig, "--ca-dir", cluster.ca,
                "--state-dir", state, "--netns-dir", netns, "--metrics-port", "\(metrics)",
                "--readiness-port", "\(readiness)", "--admin-port", "\(admin)", "--log-format", "json",
            ]
        )
        let ready = Self.eventually { Self.get("http://127.0.0.1:\(readiness)/healthz/ready")?.status == 200 }
        #expect(ready, "\(cluster.log("ambit-node"))")

        let dump = Self.json(Self.get("http://127.0.0.1:\(admin)/config_dump")?.body ?? "")
        let source = dump["configSource"] as? [String: Any] ?? [:]
        #expect(source["kind"] as? String == "kubernetes", "\(dump)")
        let collections = source["collections"] as? [[String: Any]] ?? []
        #expect(collections.count == 11 && collections.allSatisfy { $0["synced"] as? Bool == true }, "\(collections)")
        let workloads = dump["workloads"] as? [[String: Any]] ?? []
        let client = workloads.first { $0["name"] as? String == KubernetesFixtures.clientPod }
        #expect(client?["identity"] as? String == "spiffe://cluster.local/ns/demo/sa/client", "\(workloads)")
        #expect(client?["node"] as? String == "node-1")

        // The CNI plugin reads enrollment from the agent's file, which follows the namespace labels.
        func enrolled() -> [String]? {
            let text = try? String(contentsOfFile: state + "/enrollment.json", encoding: .utf8)
            return Self.json(text ?? "")["enrolledNamespaces"] as? [String]
        }
        #expect(enrolled() == ["demo"])
        cluster.server.put(
            KubernetesFixtures.namespaces,
            KubernetesFixtures.json("namespace-demo").replacingOccurrences(
                of: "\"istio.io/dataplane-mode\": \"ambient\",",
                with: ""
            )
        )
        #expect(Self.eventually { enrolled() == [] }, "\(String(describing: enrolled()))")
        // Every request carried the kubeconfig's token.
        #expect(cluster.server.requests.allSatisfy { $0.authorization == "Bearer node-token" })
        await cluster.close()
    }

    @Test func theWaypointReadsItsGatewayRoutesAndPolicies() async throws {
        let cluster = try await Cluster()
        let ports = (
            hbone: TestPorts.free(), metrics: TestPorts.free(), readiness: TestPorts.free(), admin: TestPorts.free()
        )
        try cluster.start(
            "ambit-waypoint",
            [
                "--gateway", "demo/server-waypoint", "--service-account", "server-waypoint",
                "--kubeconfig", cluster.kubeconfig, "--ca-dir", cluster.ca, "--listen", "127.0.0.1",
                "--hbone-port", "\(ports.hbone)", "--metrics-port", "\(ports.metrics)",
                "--readiness-port", "\(ports.readiness)", "--admin-port", "\(ports.admin)",
            ]
        )
        let ready = Self.eventually { Self.get("http://127.0.0.1:\(ports.readiness)/healthz/ready")?.status == 200 }
        #expect(ready, "\(cluster.log("ambit-waypoint"))")
        let dump = Self.json(Self.get("http://127.0.0.1:\(ports.admin)/config_dump")?.body ?? "")
        #expect(dump["identity"] as? String == "spiffe://cluster.local/ns/demo/sa/server-waypoint", "\(dump)")
        #expect((dump["configSource"] as? [String: Any])?["kind"] as? String == "kubernetes")
        // The recorded Gateway serves service account demo/server's pods: the client pod is not one of them.
        #expect(dump["workloads"] as? [String] == [], "\(dump)")
        await cluster.close()
    }

    /// `ambit-ca --token-review` asks the API server about a caller's token once: the same token on later
    /// requests is answered from its cache (a node agent sends its own token with each pod's request).
    @Test func theCAReviewsEachTokenOnceWithTheAPIServer() async throws {
        let cluster = try await Cluster()
        cluster.server.reviewTokens([
            "client-token": .init(username: "system:serviceaccount:demo:client", audiences: ["ambit-ca"])
        ])
        let (port, metrics, readiness) = (TestPorts.free(), TestPorts.free(), TestPorts.free())
        try cluster.start(
            "ambit-ca",
            [
                "--ca-dir", cluster.ca, "--kubeconfig", cluster.kubeconfig, "--token-review", "--listen", "127.0.0.1",
                "--port", "\(port)", "--server-name", "127.0.0.1", "--metrics-port", "\(metrics)",
                "--readiness-port", "\(readiness)", "--admin-port", "\(TestPorts.free())",
            ]
        )
        let ready = Self.eventually { Self.get("http://127.0.0.1:\(readiness)/healthz/ready")?.status == 200 }
        #expect(ready, "\(cluster.log("ambit-ca"))")
        let python = ProcessInfo.processInfo.environment["AMBIT_PYTHON"] ?? "/usr/bin/python3"
        let client = TestBinaries.packageRoot.appendingPathComponent("Tests/Interop/istio_ca_client.py").path
        func request(_ token: String) throws -> ProcessRunner.Result {
            try ProcessRunner.run(
                python,
                [
                    client, "--address", "127.0.0.1:\(port)", "--ca", cluster.ca + "/root-cert.pem", "--spiffe",
                    "spiffe://cluster.local/ns/demo/sa/client", "--token", token, "--timeout", "60",
                ]
            )
        }
        for _ in 0..<3 {
            let answer = try request("client-token")
            #expect(answer.status == 0, "\(answer.standardError)")
        }
        let refused = try request("forged")
        #expect(refused.status == 1 && refused.standardError.contains("UNAUTHENTICATED"), "\(refused.standardError)")
        let reviews = cluster.server.requests.filter { $0.path.hasSuffix("/tokenreviews") }
        #expect(reviews.count == 2, "one per token: \(reviews.map(\.body))")
        let scrape = Self.get("http://127.0.0.1:\(metrics)/metrics")?.body ?? ""
        let samples = PrometheusSamples(scrape)
        #expect(samples.sum("ambit_ca_token_authentications_total", ["answered_by": "api_server"]) == 2, "\(scrape)")
        #expect(samples.sum("ambit_ca_token_authentications_total", ["answered_by": "cache"]) == 2, "\(scrape)")
        #expect(samples.sum("citadel_server_success_cert_issuance_count") == 3, "\(scrape)")
        await cluster.close()

        // The cache's lifetime belongs to TokenReview: given with the other authentication it is refused.
        let misplaced = try ProcessRunner.run(
            TestBinaries.path("ambit-ca"),
            [
                "--ca-dir", cluster.ca, "--manifests", "/nonexistent", "--token-public-key", "k.pem",
                "--token-review-cache-seconds", "5",
            ]
        )
        #expect(misplaced.status != 0)
        #expect(misplaced.standardError.contains("--token-review-cache-seconds goes with --token-review"))
    }

    @Test func aBadKubeconfigStopsTheAgentWithTheReason() throws {
        let directory = try TemporaryDirectory(prefix: "ambit-k8s-bad")
        defer { directory.remove() }
        let kubeconfig = try directory.write(
            "kubeconfig",
            "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters: []\ncontexts: []\n"
        )
        let result = try ProcessRunner.run(
            TestBinaries.path("ambit-node"),
            ["--node-name", "n", "--kubeconfig", kubeconfig, "--ca-dir", directory.path]
        )
        #expect(result.status != 0)
        #expect(result.standardError.contains("no contexts entry named \"x\""), "\(result.standardError)")
        let both = try ProcessRunner.run(
            TestBinaries.path("ambit-node"),
            ["--node-name", "n", "--kubernetes", "--manifests", "/tmp", "--ca-dir", directory.path]
        )
        #expect(both.status != 0)
        #expect(both.standardError.contains("give exactly one configuration source"), "\(both.standardError)")
    }
}
