import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Real labs (network namespaces, the Debian CNI plugins, the echo app), driven through the `ambitctl` binary.
/// Root only; each test uses its own lab name and state directory and tears the lab down even when it fails.
@Suite(.serialized, .enabled(if: getuid() == 0, "creates network namespaces: run as root"))
struct LabRootTests {
    /// A lab on a fresh state directory; `down()` removes it (also called on failure paths via `defer`).
    struct TestLab {
        let name = LabCLI.uniqueLabName()
        let directory: URL
        var stateDirectory: String { directory.appendingPathComponent("state").path }
        var labFile: String { directory.appendingPathComponent("lab.yaml").path }
        var extra: [String] = []

        init(yaml: (String) -> String) throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "ambit-lab-test-\(UUID().uuidString)"
            )
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try yaml(name).write(toFile: labFile, atomically: true, encoding: .utf8)
        }

        /// `ambitctl lab <subcommand> --state-dir <ours> <extra> <rest>`: options go before a `--` in `rest`.
        func lab(_ arguments: [String], environment: [String: String] = [:]) throws -> LabCLI.Result {
            let options = ["--state-dir", stateDirectory] + extra
            return try LabCLI.lab(
                Array(arguments.prefix(1)) + options + arguments.dropFirst(),
                environment: environment
            )
        }

        func status() throws -> [String: Any] {
            let result = try lab(["status", "--json"])
            #expect(result.status == 0, "\(result.all)")
            return try #require(
                try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any]
            )
        }

        func pods() throws -> [String: [String: Any]] {
            let pods = try #require(try status()["pods"] as? [[String: Any]])
            return Dictionary(uniqueKeysWithValues: pods.map { ($0["name"] as? String ?? "", $0) })
        }

        func labNetns() -> [String] {
            LabCLI.netnsList().filter { $0.hasPrefix("ambit-\(name)-") }
        }

        func cleanUp() {
            _ = try? lab(["down", "--name", name])
            try? FileManager.default.removeItem(at: directory)
        }
    }

    static func plainLab(_ name: String) -> String {
        """
        name: \(name)
        underlay: 172.31.0.0/24
        mesh: false
        nodes:
          - {name: node1, podCIDR: 10.244.1.0/24}
          - {name: node2, podCIDR: 10.244.2.0/24}
        namespaces:
          - {name: demo, labels: {istio.io/dataplane-mode: ambient}}
          - {name: legacy}
        pods:
          - {name: client, namespace: demo, node: node1, serviceAccount: client, labels: {app: client}}
          - {name: server, namespace: demo, node: node2, labels: {app: server}, app: {ports: [8080, 9090]}}
          - {name: peer, namespace: legacy, node: node1, app: {ports: [8080]}}
        services:
          - name: server
            namespace: demo
            clusterIP: 10.96.0.10
            selector: {app: server}
            ports: [{port: 80, targetPort: 8080}]
        """
    }

    @Test func plainLabCarriesTrafficAcrossAndWithinNodesAndCleansUp() throws {
        let lab = try TestLab(yaml: Self.plainLab)
        defer { lab.cleanUp() }

        let up = try lab.lab(["up", "--file", lab.labFile])
        try #require(up.status == 0, "\(up.all)")
        #expect(up.standardOutput.contains("node      node2: netns ambit-\(lab.name)-node2, eth0 172.31.0.12"))
        #expect(up.standardOutput.contains("POD     NAMESPACE  NODE   IP"))
        #expect(lab.labNetns().count == 6)  // underlay, 2 nodes, 3 pods

        let pods = try lab.pods()
        #expect(Set(pods.keys) == ["client", "server", "peer"])
        let clientIP = try #require(pods["client"]?["ip"] as? String)
        let serverIP = try #require(pods["server"]?["ip"] as? String)
        let peerIP = try #require(pods["peer"]?["ip"] as? String)
        #expect(clientIP.hasPrefix("10.244.1.") && peerIP.hasPrefix("10.244.1.") && serverIP.hasPrefix("10.244.2."))
        #expect(pods["client"]?["enrolled"] as? Bool == true)
        #expect(pods["peer"]?["enrolled"] as? Bool == false)
        #expect(pods["server"]?["appAlive"] as? Bool == true)

        // Across nodes: pod -> cni0 -> node1 eth0 -> underlay br0 -> node2 -> pod, no NAT on the way.
        let across = try lab.lab(["exec", "client", "--", "curl", "-sS", "-m", "5", "http://\(serverIP):8080/"])
        #expect(across.status == 0, "\(across.all)")
        #expect(across.standardOutput.hasPrefix("hello from demo/server to \(serverIP):8080 from \(clientIP):"))
        let second = try lab.lab(["exec", "demo/client", "--", "curl", "-sS", "-m", "5", "http://\(serverIP):9090/"])
        #expect(second.standardOutput.hasPrefix("hello from demo/server to \(serverIP):9090 from \(clientIP):"))
        // Same node, through the node's cni0 bridge.
        let same = try lab.lab(["exec", "client", "--", "curl", "-sS", "-m", "5", "http://\(peerIP):8080/"])
        #expect(same.standardOutput.hasPrefix("hello from legacy/peer to \(peerIP):8080 from \(clientIP):"))
        // Raw TCP is echoed back.
        let script = """
            import socket
            s = socket.create_connection(("\(serverIP)", 8080), timeout=5)
            s.sendall(b"ping 123"); s.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := s.recv(100): data += chunk
            print(data.decode())
            """
        let echo = try lab.lab(["exec", "peer", "--", "python3", "-c", script])
        #expect(echo.standardOutput == "ping 123\n", "\(echo.all)")
        // Exit status of the command comes back.
        #expect(try lab.lab(["exec", "client", "--", "sh", "-c", "exit 7"]).status == 7)
        let missing = try lab.lab(["exec", "nobody", "--", "true"])
        #expect(missing.status == 1 && missing.standardError.contains("has no pod \"nobody\""))

        // Enrollment follows `lab label`.
        #expect(try lab.lab(["label", "namespace", "legacy", "istio.io/dataplane-mode=ambient"]).status == 0)
        #expect(try lab.pods()["peer"]?["enrolled"] as? Bool == true)
        #expect(try lab.lab(["label", "namespace", "legacy", "istio.io/dataplane-mode-"]).status == 0)
        #expect(try lab.pods()["peer"]?["enrolled"] as? Bool == false)

        let again = try lab.lab(["up", "--file", lab.labFile])
        #expect(again.status != 0)
        #expect(
            again.standardError.contains("already up") && again.standardError.contains("lab down --name \(lab.name)")
        )

        let appPid = try #require(pods["server"]?["appPid"] as? Int)
        let down = try lab.lab(["down", "--name", lab.name])
        #expect(down.status == 0, "\(down.all)")
        #expect(down.standardOutput.contains("CNI DEL bridge for demo/server"))
        #expect(lab.labNetns().isEmpty, "left: \(lab.labNetns())")
        #expect(!FileManager.default.fileExists(atPath: "\(lab.stateDirectory)/\(lab.name)"))
        // Stopped; the orphaned process is reaped by init shortly after.
        #expect(Self.eventually(5) { kill(Int32(appPid), 0) != 0 }, "app \(appPid) still runs")
        let twice = try lab.lab(["down", "--name", lab.name])
        #expect(twice.status == 0 && twice.standardOutput.contains("nothing to do"))
    }

    @Test func failingPluginShowsItsErrorAndDownCleansTheHalfBuiltLab() throws {
        var lab = try TestLab(yaml: Self.plainLab)
        defer { lab.cleanUp() }
        // A CNI directory whose bridge plugin fails the way a plugin must: CNI error JSON on stdout, exit 1.
        let cniDirectory = lab.directory.appendingPathComponent("cni")
        try FileManager.default.createDirectory(at: cniDirectory, withIntermediateDirectories: true)
        let failing = #"echo '{"cniVersion":"1.0.0","code":11,"msg":"try again later","details":"stub"}'; exit 1"#
        try writeExecutable(cniDirectory.appendingPathComponent("bridge"), "#!/bin/sh\ncat >/dev/null\n\(failing)\n")
        try writeExecutable(cniDirectory.appendingPathComponent("host-local"), "#!/bin/sh\nexit 1\n")
        lab.extra = ["--cni-bin-dir", cniDirectory.path]

        let up = try lab.lab(["up", "--file", lab.labFile])
        #expect(up.status == 1)
        #expect(
            up.standardError.contains(#"{"cniVersion":"1.0.0","code":11,"msg":"try again later","details":"stub"}"#)
        )
        #expect(up.standardError.contains("half built"), "\(up.all)")
        #expect(!lab.labNetns().isEmpty)
        let down = try lab.lab(["down"])
        #expect(down.status == 0, "\(down.all)")
        #expect(lab.labNetns().isEmpty, "left: \(lab.labNetns())")
    }

    func writeExecutable(_ url: URL, _ text: String) throws {
        try text.write(to: url, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
    }
}
