import AmbitTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The lab's CA service: ambit-ca in its own network namespace, agents with a token and the root, never a key.
extension LabRootTests {
    static func caLab(_ name: String) -> String {
        """
        name: \(name)
        underlay: 172.31.0.0/24
        mesh: true
        nodes:
          - {name: node1, podCIDR: 10.244.1.0/24}
          - {name: node2, podCIDR: 10.244.2.0/24}
        namespaces:
          - {name: demo, labels: {istio.io/dataplane-mode: ambient}}
        pods:
          - {name: client, namespace: demo, node: node1, serviceAccount: client, labels: {app: client}}
          - {name: server, namespace: demo, node: node2, serviceAccount: server, labels: {app: server}, \
        app: {ports: [8080]}}
        """
    }

    @Test func agentsHoldNoCAKeyAreRefusedOtherNodesPodsAndSurviveACARestart() throws {
        let lab = try TestLab(yaml: Self.caLab)
        defer { lab.cleanUp() }
        let up = try lab.lab(["up", "--file", lab.labFile])
        try #require(up.status == 0, "\(up.all)")
        let root = "\(lab.stateDirectory)/\(lab.name)"
        let status = try lab.status()
        let ca = try #require(status["ca"] as? [String: Any], "lab status shows the CA")
        #expect(ca["address"] as? String == "172.31.0.10:15012" && ca["ready"] as? Bool == true, "\(ca)")
        let caPid = try #require(ca["pid"] as? Int)
        let nodes = try #require(status["nodes"] as? [[String: Any]])
        let agentPids = nodes.compactMap { $0["agentPid"] as? Int }
        try #require(agentPids.count == 2)

        // The CA key exists, but no file an agent can open holds a private key: the lab's state as the agent's
        // mount namespace shows it, and every file it has open.
        #expect(FileManager.default.fileExists(atPath: "\(root)/control-plane/ca/ca-key.pem"))
        #expect(Self.filesHoldingPrivateKeys(under: root).contains("\(root)/control-plane/ca/ca-key.pem"))
        for pid in agentPids {
            let seen = Self.filesHoldingPrivateKeys(under: "/proc/\(pid)/root\(root)")
            #expect(seen.isEmpty, "agent \(pid) can open private keys: \(seen)")
            let open = Self.openFiles(of: pid).filter { Self.holdsPrivateKey($0) }
            #expect(open.isEmpty, "agent \(pid) has private keys open: \(open)")
            let commandLine = try String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)
            #expect(!commandLine.contains("--ca-dir") && commandLine.contains("--ca-address"), "\(commandLine)")
            // Its own token, and no other daemon's.
            let tokens = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/root\(root)/tokens")
            #expect(tokens.count == 1 && commandLine.contains("\(root)/tokens/\(tokens[0])"), "\(tokens)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(root)/tokens").count == 2)

        // node1's token obtains node1's pods' identities, not node2's (independent client, from node1's netns).
        func ask(_ account: String, token node: String) throws -> (status: Int32, output: String) {
            try Self.shell(
                "nsenter --net=/var/run/netns/ambit-\(lab.name)-\(node) /usr/bin/python3 "
                    + "\(LabCLI.packageRoot.path)/Tests/Interop/istio_ca_client.py --address 172.31.0.10:15012 "
                    + "--ca \(root)/ca-roots.pem --spiffe spiffe://cluster.local/ns/demo/sa/\(account) "
                    + "--token-file \(root)/tokens/ambit-node-\(node).token --impersonate --timeout 60"
            )
        }
        let own = try ask("client", token: "node1")
        #expect(own.status == 0 && own.output.contains("BEGIN CERTIFICATE"), "\(own.output)")
        let other = try ask("server", token: "node1")
        #expect(
            other.status == 1 && other.output.contains("PERMISSION_DENIED")
                && other.output.contains(
                    "no pod with identity spiffe://cluster.local/ns/demo/sa/server is scheduled on node node1"
                ),
            "\(other.output)"
        )
        // (The log is written in batches, up to 50 ms after the line was logged.)
        var caLog = ""
        #expect(
            Self.eventually {
                caLog = (try? String(contentsOfFile: "\(root)/logs/ambit-ca.log", encoding: .utf8)) ?? ""
                return caLog.contains(#""caller":"system:serviceaccount:ambit-system:ambit-node on node node1""#)
            },
            "\(caLog.suffix(2000))"
        )

        // The CA goes away: traffic keeps flowing on the certificates the agents hold.
        let serverIP = try #require(try lab.pods()["server"]?["ip"] as? String)
        func request() throws -> Bool {
            try Self.exec(lab, "client", "curl -sS -m 3 http://\(serverIP):8080/").standardOutput.hasPrefix(
                "hello from demo/server"
            )
        }
        #expect(try request())
        let caCommand = try String(contentsOfFile: "/proc/\(caPid)/cmdline", encoding: .utf8)
            .split(separator: "\0").map(String.init)
        kill(Int32(caPid), SIGKILL)
        #expect(Self.eventually { kill(Int32(caPid), 0) != 0 })
        #expect(try request(), "a CA outage broke traffic")
        let down = try #require(try lab.status()["ca"] as? [String: Any])
        #expect(down["alive"] as? Bool == false && down["ready"] as? Bool == false, "\(down)")

        // node2's agent restarts while the CA is down: it has no certificate for the server, so the connection
        // fails closed and its readiness page says why; once the CA is back its retries succeed.
        let agent2 = try #require(nodes.first { $0["name"] as? String == "node2" }?["agentPid"] as? Int)
        let agentCommand = try String(contentsOfFile: "/proc/\(agent2)/cmdline", encoding: .utf8)
            .split(separator: "\0").map(String.init)
        kill(Int32(agent2), SIGKILL)
        #expect(Self.eventually { kill(Int32(agent2), 0) != 0 })
        let restarted = try Background(
            netns: "ambit-\(lab.name)-node2",
            agentCommand,
            output: lab.directory.appendingPathComponent("agent2.log")
        )
        defer { restarted.stop() }
        let readiness =
            "nsenter --net=/var/run/netns/ambit-\(lab.name)-node2 curl -sS -m 2 http://127.0.0.1:15021/healthz/ready"
        #expect(Self.eventually(20) { (try? Self.shell(readiness).output.hasPrefix("ready")) == true })
        #expect(try !request(), "node2 served without a certificate")
        #expect(
            Self.eventually(10) {
                (try? Self.shell(readiness).output.contains(
                    "certificate spiffe://cluster.local/ns/demo/sa/server: "
                )) == true
            },
            "readiness does not name the failing certificate: \((try? Self.shell(readiness).output) ?? "")"
        )
        let metrics = try Self.metrics(lab, node: "node2")
        #expect(metrics.contains(#"result="failure""#), "no failure counted")
        let caAgain = try Background(
            netns: "ambit-\(lab.name)-cp",
            caCommand,
            output: lab.directory.appendingPathComponent("ca-restarted.log")
        )
        defer { caAgain.stop() }
        #expect(
            try Self.eventually(30) { try request() },
            "traffic did not flow after the CA came back: \(restarted.text.suffix(2000))"
        )
    }

    /// Regular files under `directory` (recursively) whose first MiB holds a PEM private key.
    static func filesHoldingPrivateKeys(under directory: String) -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return [] }
        var found: [String] = []
        while let relative = walker.nextObject() as? String {
            let path = directory + "/" + relative
            if holdsPrivateKey(path) { found.append(path) }
        }
        return found
    }

    static func holdsPrivateKey(_ path: String) -> Bool {
        var information = stat()
        guard stat(path, &information) == 0, information.st_mode & S_IFMT == S_IFREG,
            let handle = FileHandle(forReadingAtPath: path)
        else { return false }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: 1 << 20)) ?? Data()
        return String(decoding: data, as: UTF8.self).contains("PRIVATE KEY")
    }

    /// What `pid`'s descriptors point at.
    static func openFiles(of pid: Int) -> [String] {
        let directory = "/proc/\(pid)/fd"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return entries.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "\(directory)/\($0)") }
    }
}
