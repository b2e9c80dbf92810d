import AmbitTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// What capture outlives an agent, and how it goes: an agent stopped with pods captured leaves their capture in
/// place (they fail closed), `ambit-node uninstall` removes it for good (refused while the agent runs), and an
/// agent stopped with no pod captured leaves nothing attached to the host. Real labs, both capture modes.
extension LabRootTests {
    @Test(arguments: captureModes)
    func uninstallRemovesWhatAStoppedAgentLeftAndAnIdleAgentLeavesNothing(capture: String) throws {
        let lab = try TestLab(yaml: Self.meshLab)
        defer { lab.cleanUp() }
        let up = try lab.lab(["up", "--file", lab.labFile, "--capture", capture])
        try #require(up.status == 0, "\(up.all)")
        let serverIP = try #require(try lab.pods()["server"]?["ip"] as? String)
        let clientIP = try #require(try lab.pods()["client"]?["ip"] as? String)
        let state = "\(lab.stateDirectory)/\(lab.name)/run/node1"
        // Uninstall runs where the agent ran, in node1's network namespace (nsenter keeps the host's /sys and
        // so its bpffs, which `ip netns exec` would remount).
        let node1 = "ambit-\(lab.name)-node1"
        let ambitNode = "/usr/bin/nsenter"
        let uninstall = [
            "--net=/var/run/netns/\(node1)", TestBinaries.path("ambit-node"), "uninstall", "--state-dir", state,
            "--bpf-pin-dir", Self.pins(lab, node: "node1"),
        ]
        let ebpfLinks = "ambit_connect4"
        let attachedBefore = try Self.cgroupPrograms(named: ebpfLinks)

        // While the agent runs: refused, and nothing is touched.
        let refused = try ProcessRunner.run(ambitNode, uninstall)
        #expect(refused.status != 0, "\(refused.all)")
        #expect(
            refused.standardError.range(
                of: #"an ambit-node \(pid [0-9]+\) holds "# + state + "/agent.lock: stop it first",
                options: .regularExpression
            ) != nil,
            "\(refused.all)"
        )
        #expect(try Self.exec(lab, "client", "curl -sS -m 5 http://\(serverIP):8080/").status == 0)

        // A connection still open at the drain deadline (client → peer, outside the mesh, both on node1) is reset,
        // not ended with a FIN as if it were complete.
        let peerIP = try #require(try lab.pods()["peer"]?["ip"] as? String)
        let live = try Background(
            netns: "ambit-\(lab.name)-p-client",
            ["python3", "-c", Self.connectionUntilItEnds, peerIP],
            output: lab.directory.appendingPathComponent("live.txt")
        )
        defer { live.stop() }
        #expect(Self.eventually { live.text.contains("echoed") }, "\(live.text)")

        // Stopped (SIGTERM, a clean drain) with pods captured: their capture stays and they fail closed.
        try Self.terminateAgent(lab, node: "node1")
        #expect(live.waitForExit(seconds: 10))
        #expect(live.text.contains("echoed\nreset"), "the drain deadline did not reset a live connection: \(live.text)")
        let closed = try Self.exec(lab, "client", "curl -sS -m 3 http://\(serverIP):8080/")
        #expect(closed.status == 7, "expected connection refused while the agent is down: \(closed.all)")
        #expect(FileManager.default.fileExists(atPath: Self.pins(lab, node: "node1")) == (capture == "ebpf"))

        // `ambit-node uninstall`: each recorded pod released, the node's probe rule and the pins (and with them
        // the programs) gone.
        #expect(try Self.shell("ip netns exec \(node1) nft list table inet ambit-host").status == 0)
        let removed = try ProcessRunner.run(ambitNode, uninstall)
        #expect(removed.status == 0, "\(removed.all)")
        let what = capture == "ebpf" ? "eBPF return-path routing and sysctls" : "nftables rules and policy routing"
        #expect(removed.standardOutput.contains("released  demo/client: \(what)"), "\(removed.all)")
        #expect(removed.standardOutput.contains("released  demo/near: \(what)"), "\(removed.all)")
        #expect(!FileManager.default.fileExists(atPath: Self.pins(lab, node: "node1")))
        #expect(removed.standardOutput.contains("removed   the node's probe rule"), "\(removed.all)")
        #expect(try Self.shell("ip netns exec \(node1) nft list table inet ambit-host").status != 0)
        #expect(try Self.shell("ip netns exec ambit-\(lab.name)-p-client nft list table inet ambit").status != 0)
        #expect(try Self.shell("ip netns exec ambit-\(lab.name)-p-client ip rule").output.contains("0x111") == false)
        if capture == "ebpf" {
            // node1's cgroup programs are detached; node2's agent still has its own attached.
            #expect(try Self.cgroupPrograms(named: ebpfLinks) == attachedBefore - 1)
        }
        // The client is out of the mesh now: it reaches the server directly, in plaintext, as a legacy pod would.
        let direct = try Self.exec(lab, "client", "curl -sS -m 5 http://\(serverIP):8080/")
        #expect(direct.standardOutput.hasPrefix("hello from demo/server to \(serverIP):8080 from \(clientIP):"))
        // Nothing is left to remove the second time.
        let again = try ProcessRunner.run(ambitNode, uninstall)
        #expect(again.status == 0 && !again.standardOutput.contains("released"), "\(again.all)")
        #expect(again.standardOutput.contains("unpinned  nothing at \(Self.pins(lab, node: "node1"))"))

        // An agent that stops with no pod captured (demo left the mesh) takes its eBPF programs off the host.
        #expect(try lab.lab(["label", "namespace", "demo", "istio.io/dataplane-mode-"]).status == 0)
        #expect(try Self.eventually { try lab.pods()["server"]?["captured"] as? Bool == false }, "server not released")
        try Self.terminateAgent(lab, node: "node2")
        #expect(!FileManager.default.fileExists(atPath: Self.pins(lab, node: "node2")))
        if capture == "ebpf" {
            #expect(try Self.cgroupPrograms(named: ebpfLinks) == attachedBefore - 2)
            let log = try String(contentsOfFile: "\(lab.stateDirectory)/\(lab.name)/logs/node2.log", encoding: .utf8)
            #expect(log.contains("no pod was captured, so the eBPF programs are detached and unpinned"), "\(log)")
        }
    }

    /// A client for one connection to the echo app: echoes a line, then waits for the connection to end and says
    /// how it ended ("reset" or "closed").
    static let connectionUntilItEnds = """
        import socket, sys
        connection = socket.create_connection((sys.argv[1], 8080), timeout=30)
        connection.sendall(b"one\\n")
        received = b""
        while received != b"one\\n":
            chunk = connection.recv(100)
            if not chunk:
                sys.exit("closed early after %r" % received)
            received += chunk
        print("echoed", flush=True)
        try:
            print("closed" if connection.recv(100) == b"" else "more data", flush=True)
        except ConnectionResetError:
            print("reset", flush=True)
        """

    /// SIGTERM to a node's agent (the lab starts it with a clean signal state), then waits for it to exit.
    static func terminateAgent(_ lab: TestLab, node: String) throws {
        let pid = try #require(
            (try lab.status()["nodes"] as? [[String: Any]])?.first { $0["name"] as? String == node }?["agentPid"]
                as? Int
        )
        kill(Int32(pid), SIGTERM)
        #expect(Self.eventually(20) { kill(Int32(pid), 0) != 0 }, "the agent of \(node) did not stop")
    }

    /// How many programs named `name` are attached to the host's cgroup-v2 root (every eBPF agent attaches one).
    static func cgroupPrograms(named name: String) throws -> Int {
        let listed = try shell("bpftool cgroup show \"$(awk '$3 == \"cgroup2\" {print $2; exit}' /proc/mounts)\"")
        #expect(listed.status == 0, "\(listed.output)")
        return listed.output.split(separator: "\n").filter { $0.contains(" \(name) ") || $0.hasSuffix(" \(name)") }
            .count
    }
}
