import AmbitTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A hitless agent upgrade in a real lab: a second `ambit-node` starts beside a node's agent (as the DaemonSet's
/// surge pod does), serves the node's pods as a standby with listeners of its own, and takes the node over when the
/// first one is told to stop; all the while a client opens one short connection after another. Part of the
/// serialized lab suite.
extension LabRootTests {
    /// The successor's operational ports: the lab's node network namespace already has the first agent's.
    static let successorPorts = ["--metrics-port", "25020", "--readiness-port", "25021", "--admin-port", "25000"]

    @Test(arguments: captureModes)
    func agentUpgradeUnderLoadRefusesNothingAndFinishesLiveConnections(capture: String) throws {
        let lab = try TestLab(yaml: Self.meshLab)
        defer { lab.cleanUp() }
        let up = try lab.lab(["up", "--file", lab.labFile, "--capture", capture])
        try #require(up.status == 0, "\(up.all)")
        let pods = try lab.pods()
        let nearIP = try #require(pods["near"]?["ip"] as? String)

        // The load: client (node1) → server (node2) through the service, a new connection per request, back to back.
        let results = lab.directory.appendingPathComponent("load.txt")
        let load = try Background(
            netns: "ambit-\(lab.name)-p-client",
            [
                "/bin/sh", "-c",
                "while :; do curl -sS -m 5 -o /dev/null -w '%{http_code} %{exitcode}\\n' http://10.96.0.10/ 2>&1; done",
            ],
            output: results
        )
        defer { load.stop() }
        func outcomes() -> [Substring] { load.text.split(separator: "\n") }
        func successes() -> Int { outcomes().filter { $0 == "200 0" }.count }
        #expect(Self.eventually(20) { successes() >= 10 }, "the load does not get through: \(load.text.suffix(500))")

        var successors: [Background] = []
        defer { successors.forEach { $0.stop() } }
        for node in ["node1", "node2"] {
            // On node1, a connection that lives across the hand-over (client → near, both on node1, echoed): open
            // before the successor starts, so the first agent carries it; it must end whole, not reset.
            var live: Background?
            let release = lab.directory.appendingPathComponent("release-live")
            if node == "node1" {
                live = try Background(
                    netns: "ambit-\(lab.name)-p-client",
                    ["python3", "-c", Self.liveConnection, nearIP, release.path],
                    output: lab.directory.appendingPathComponent("live.txt")
                )
                #expect(Self.eventually { live?.text.contains("echoed one") == true }, "\(live?.text ?? "")")
            }
            let (successor, predecessor) = try Self.startSuccessor(lab, node: node)
            successors.append(successor)
            #expect(
                try Self.successorMetric(lab, node: node, "ambit_node_active") == 0,
                "the successor must stand by while the first agent holds the node"
            )
            let handedOverAt = successes()
            kill(predecessor, SIGTERM)
            #expect(
                Self.eventually(10) { successor.text.contains("took over the node from the previous agent") },
                "\(successor.text.suffix(2000))"
            )
            #expect(try Self.successorMetric(lab, node: node, "ambit_node_active") == 1)
            if let live {
                // The first agent drains: it stays for the live connection, which then ends cleanly.
                #expect(kill(predecessor, 0) == 0, "the first agent left before its live connection ended")
                FileManager.default.createFile(atPath: release.path, contents: nil)
                #expect(live.waitForExit(seconds: 15))
                #expect(live.process.terminationStatus == 0 && live.text.contains("echoed two, closed"), "\(live.text)")
            }
            #expect(Self.eventually(20) { kill(predecessor, 0) != 0 }, "the first agent of \(node) did not exit")
            // The load keeps flowing through the successor alone.
            #expect(
                Self.eventually(30) { successes() >= handedOverAt + 20 },
                "the load stalled after \(node)'s hand-over: \(load.text.suffix(500))"
            )
            if node == "node1" {
                // The successor now owns capture: it captures a namespace enrolled after the hand-over.
                #expect(try lab.lab(["label", "namespace", "legacy", "istio.io/dataplane-mode=ambient"]).status == 0)
                #expect(
                    try Self.eventually(20) { try Self.successorCaptured(lab, node: node).contains("peer") },
                    "the successor did not capture the newly enrolled pod: \(successor.text.suffix(2000))"
                )
            }
        }
        load.stop()
        let failures = outcomes().filter { $0 != "200 0" }
        #expect(failures.isEmpty, "\(failures.count) requests failed during the upgrades: \(failures.prefix(10))")
        #expect(successes() >= 50)
    }

    /// A standby that dies before it takes over (a crashed or rolled-back upgrade) leaves the node served: with eBPF
    /// its death takes the pods' `inbound_listeners` entries (they named its sockets) and the active agent puts its
    /// own back; nothing of the capture was the standby's to remove.
    @Test(arguments: captureModes)
    func aStandbyThatDiesBeforeTakingOverLeavesTheNodeServing(capture: String) throws {
        let lab = try TestLab(yaml: Self.meshLab)
        defer { lab.cleanUp() }
        let up = try lab.lab(["up", "--file", lab.labFile, "--capture", capture])
        try #require(up.status == 0, "\(up.all)")
        let serverIP = try #require(try lab.pods()["server"]?["ip"] as? String)
        let (standby, active) = try Self.startSuccessor(lab, node: "node2")
        defer { standby.stop() }
        // Mesh traffic (HBONE to 15008) and plaintext from a pod outside the mesh (captured to 15006).
        func served() throws -> Bool {
            try Self.exec(lab, "client", "curl -sS -m 3 http://10.96.0.10/").standardOutput.hasPrefix("hello from")
                && Self.exec(lab, "peer", "curl -sS -m 3 http://\(serverIP):8080/").standardOutput.hasPrefix(
                    "hello from demo/server to \(serverIP):8080"
                )
        }
        #expect(try served())
        standby.stop()
        #expect(kill(active, 0) == 0)
        let log = "\(lab.stateDirectory)/\(lab.name)/logs/node2.log"
        if capture == "ebpf" {
            #expect(
                Self.eventually(15) {
                    ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains(
                        "inbound listener entry was missing and is restored"
                    )
                },
                "node2's agent did not restore the inbound listener entries its dead standby took"
            )
        }
        #expect(try Self.eventually(15) { try served() }, "node2 does not serve its pod again after its standby died")
        // The capture itself is untouched: the pod stays in the mesh, its capture in place.
        #expect(try lab.pods()["server"]?["captured"] as? Bool == true)
    }

    /// A client for one long connection to the echo app: echoes a line, waits for the file named by its second
    /// argument, echoes another line, half-closes and expects the app's clean close.
    static let liveConnection = """
        import os, socket, sys, time
        connection = socket.create_connection((sys.argv[1], 8080), timeout=30)
        def echo(line):
            connection.sendall(line)
            received = b""
            while len(received) < len(line):
                chunk = connection.recv(100)
                if not chunk:
                    sys.exit("closed early after %r" % received)
                received += chunk
            assert received == line, received
        echo(b"one\\n")
        print("echoed one", flush=True)
        while not os.path.exists(sys.argv[2]):
            time.sleep(0.05)
        echo(b"two\\n")
        connection.shutdown(socket.SHUT_WR)
        assert connection.recv(100) == b""
        print("echoed two, closed", flush=True)
        """

    /// Starts a second agent on `node` with the first one's command line (but its own operational ports), and
    /// waits until it is ready; returns it and the first agent's pid.
    static func startSuccessor(_ lab: TestLab, node: String) throws -> (Background, pid_t) {
        let pid = try #require(
            (try lab.status()["nodes"] as? [[String: Any]])?.first { $0["name"] as? String == node }?["agentPid"]
                as? Int
        )
        let commandLine = try String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)
            .split(separator: "\0").map(String.init)
        let successor = try Background(
            netns: "ambit-\(lab.name)-\(node)",
            commandLine + successorPorts,
            output: lab.directory.appendingPathComponent("successor-\(node).log")
        )
        let ready = try eventually(30) {
            try shell(
                "nsenter --net=/var/run/netns/ambit-\(lab.name)-\(node) curl -sf http://127.0.0.1:25021/healthz/ready"
            ).status == 0
        }
        if !ready { successor.stop() }
        try #require(ready, "the successor on \(node) did not become ready: \(successor.text.suffix(2000))")
        return (successor, pid_t(pid))
    }

    static func successorMetric(_ lab: TestLab, node: String, _ name: String) throws -> Double {
        let text = try shell(
            "nsenter --net=/var/run/netns/ambit-\(lab.name)-\(node) curl -sS http://127.0.0.1:25020/metrics"
        ).output
        return PrometheusSamples(text).sum(name, [:])
    }

    /// The names of the pods the successor on `node` reports captured (its admin port's config dump).
    static func successorCaptured(_ lab: TestLab, node: String) throws -> [String] {
        let body = try shell(
            "nsenter --net=/var/run/netns/ambit-\(lab.name)-\(node) curl -sS http://127.0.0.1:25000/config_dump"
        ).output
        let dump = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
        return (dump?["capturedPods"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
    }
}
