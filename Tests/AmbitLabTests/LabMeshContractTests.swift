import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `mesh: true` against stand-ins for `ambitctl ca init`, `ambit-node` and `ambit-cni` that check and record how
/// the lab calls them: the contract the real binaries must meet. With `ca: local` (no ambit-ca); the CA service's
/// lab is tested with the real binaries (CAServiceLabTests).
@Suite(.serialized, .enabled(if: getuid() == 0, "creates network namespaces: run as root"))
struct LabMeshContractTests {
    /// Accepts exactly the flags the lab passes, answers readiness on 15021 and a config dump on 15000 listing as
    /// captured the pods the stub plugin added (`captured.txt` in its --state-dir).
    static let agentStub = #"""
        #!/usr/bin/env python3
        import argparse, http.server, json, os, sys, threading
        p = argparse.ArgumentParser()
        for flag in ("--node-name", "--manifests", "--ca-dir", "--state-dir", "--cni-socket", "--enrollment-file",
                         "--netns-prefix", "--log-format"):
            p.add_argument(flag, required=True)
        a = p.parse_args()
        with open(os.environ["AMBIT_LAB_STUB_LOG"], "a") as f:
            f.write(json.dumps({"agent": sys.argv[1:]}) + "\n")
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/healthz/ready":
                    body = b"ready"
                elif self.path == "/config_dump":
                    try:
                        uids = open(os.path.join(a.state_dir, "captured.txt")).read().split()
                    except OSError:
                        uids = []
                    dump = {"capturedPods": [{"uid": u} for u in uids], "connections": {"active": 0}}
                    body = json.dumps(dump).encode()
                else:
                    self.send_response(404); self.end_headers(); return
                self.send_response(200); self.end_headers(); self.wfile.write(body)
            def log_message(self, *args): pass
        servers = [http.server.ThreadingHTTPServer(("127.0.0.1", port), H) for port in (15021, 15000)]
        threading.Thread(target=servers[1].serve_forever, daemon=True).start()
        servers[0].serve_forever()
        """#

    /// Checks the chained-plugin contract and passes prevResult through, like a real chained plugin.
    static let pluginStub = #"""
        #!/usr/bin/env python3
        import json, os, sys
        conf = json.load(sys.stdin)
        env = {k: v for k, v in os.environ.items() if k.startswith("CNI_")}
        with open(os.environ["AMBIT_LAB_STUB_LOG"], "a") as f:
            f.write(json.dumps({"cni": env, "conf": conf}) + "\n")
        args = dict(kv.split("=", 1) for kv in env["CNI_ARGS"].split(";"))
        state = os.path.join(os.path.dirname(conf["agentSocket"]), "captured.txt")
        uids = open(state).read().split() if os.path.exists(state) else []
        if env["CNI_COMMAND"] == "ADD":
            if "prevResult" not in conf:
                print(json.dumps({"cniVersion": "1.0.0", "code": 7, "msg": "no prevResult"})); sys.exit(1)
            uids.append(args["K8S_POD_UID"])
            open(state, "w").write("\n".join(uids))
            print(json.dumps(conf["prevResult"]))
        elif env["CNI_COMMAND"] == "DEL":
            open(state, "w").write("\n".join(u for u in uids if u != args["K8S_POD_UID"]))
        """#

    static let ctlStub = """
        #!/bin/sh
        # ambitctl ca init --dir DIR
        [ "$1 $2 $3" = "ca init --dir" ] || exit 2
        mkdir -p "$4" && echo stub > "$4/root-cert.pem"
        """

    @Test func meshLabStartsAgentsChainsAmbitCNIAndReportsCapture() throws {
        let name = LabCLI.uniqueLabName()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ambit-lab-mesh-\(UUID().uuidString)"
        )
        let bin = directory.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for (file, text) in [
            ("ambitctl", Self.ctlStub), ("ambit-node", Self.agentStub), ("ambit-cni", Self.pluginStub),
        ] {
            let url = bin.appendingPathComponent(file)
            try text.write(to: url, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
        }
        let labFile = directory.appendingPathComponent("lab.yaml").path
        try """
        name: \(name)
        underlay: 172.31.0.0/24
        ca: local
        nodes:
          - {name: node1, podCIDR: 10.244.1.0/24}
          - {name: node2, podCIDR: 10.244.2.0/24}
        namespaces:
          - {name: demo, labels: {istio.io/dataplane-mode: ambient}}
          - {name: legacy}
        pods:
          - {name: client, namespace: demo, node: node1, app: {ports: [8080]}}
          - {name: other, namespace: legacy, node: node2}
        """.write(toFile: labFile, atomically: true, encoding: .utf8)
        let stubLog = directory.appendingPathComponent("stub.jsonl").path
        let state = directory.appendingPathComponent("state").path
        let apps = LabCLI.packageRoot.appendingPathComponent("lab/apps").path
        let common = ["--state-dir", state, "--bin-dir", bin.path, "--apps-dir", apps]
        let environment = ["AMBIT_LAB_STUB_LOG": stubLog]
        defer { _ = try? LabCLI.lab(["down", "--name", name] + common, environment: environment) }

        let up = try LabCLI.lab(["up", "--file", labFile] + common, environment: environment)
        try #require(up.status == 0, "\(up.all)")
        #expect(up.standardOutput.contains("(cni bridge+ambit-cni)"))

        let status = try LabCLI.lab(["status", "--json"] + common)
        let report = try #require(
            try JSONSerialization.jsonObject(with: Data(status.standardOutput.utf8)) as? [String: Any]
        )
        let nodes = try #require(report["nodes"] as? [[String: Any]])
        #expect(nodes.allSatisfy { $0["agentAlive"] as? Bool == true && $0["tunnels"] as? Int == 0 })
        let pods = try #require(report["pods"] as? [[String: Any]])
        #expect(pods.allSatisfy { $0["captured"] as? Bool == true })
        #expect(pods.map { $0["enrolled"] as? Bool } == [true, false])

        let calls = try String(contentsOfFile: stubLog, encoding: .utf8).split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let agents = calls.compactMap { $0["agent"] as? [String] }
        let labRoot = "\(state)/\(name)"
        #expect(
            agents.first == [
                "--node-name", "node1", "--manifests", "\(labRoot)/manifests",
                "--ca-dir", "\(labRoot)/control-plane/ca",
                "--state-dir", "\(labRoot)/run/node1", "--cni-socket", "\(labRoot)/run/node1/cni.sock",
                "--enrollment-file", "\(labRoot)/run/node1/enrollment.json", "--netns-prefix", "ambit-\(name)-p-",
                "--log-format", "json",
            ]
        )
        let adds = calls.filter { ($0["cni"] as? [String: String])?["CNI_COMMAND"] == "ADD" }
        #expect(adds.count == 2)
        let first = try #require(adds.first)
        let conf = try #require(first["conf"] as? [String: Any])
        #expect(conf["type"] as? String == "ambit-cni" && conf["name"] as? String == "ambit-lab")
        #expect(conf["enrollmentFile"] as? String == "\(labRoot)/run/node1/enrollment.json")
        let prevIPs = try #require((conf["prevResult"] as? [String: Any])?["ips"] as? [[String: Any]])
        let clientIP = try #require(pods.first?["ip"] as? String)
        #expect(prevIPs.first?["address"] as? String == "\(clientIP)/24")
        let env = try #require(first["cni"] as? [String: String])
        #expect(env["CNI_NETNS"] == "/var/run/netns/ambit-\(name)-p-client")
        #expect(env["CNI_ARGS"]?.contains("K8S_POD_UID=\(pods.first?["uid"] as? String ?? "?")") == true)

        let down = try LabCLI.lab(["down", "--name", name] + common, environment: environment)
        #expect(down.status == 0, "\(down.all)")
        // ambit-cni DEL runs before bridge DEL and while the agents still run.
        let output = down.standardOutput
        let ambitDel = try #require(output.range(of: "CNI DEL ambit-cni for demo/client"))
        let bridgeDel = try #require(output.range(of: "CNI DEL bridge for demo/client"))
        let agentStop = try #require(output.range(of: "agent     node1:"))
        #expect(ambitDel.lowerBound < bridgeDel.lowerBound && bridgeDel.lowerBound < agentStop.lowerBound)
        let dels = try String(contentsOfFile: stubLog, encoding: .utf8).components(
            separatedBy: "\"CNI_COMMAND\": \"DEL\""
        )
        #expect(dels.count == 3)
        #expect(LabCLI.netnsList().filter { $0.hasPrefix("ambit-\(name)-") }.isEmpty)
    }
}
