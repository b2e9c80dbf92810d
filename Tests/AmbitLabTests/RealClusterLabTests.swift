import AmbitTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// What a real cluster sends, in a lab: the kubelet's probes under STRICT mTLS and an ALLOW-only policy,
/// `kubernetes.default` (a Service without a selector whose endpoint is a node), workload names and
/// ztunnel's telemetry after real traffic (read with the reference Prometheus parser), and a far agent
/// killed and restarted under a pooled HBONE connection. Part of the serialized lab suite.
extension LabRootTests {
    static func realClusterLab(_ name: String) -> String {
        let examples = LabCLI.packageRoot.appendingPathComponent("examples/lab").path
        return """
            name: \(name)
            underlay: 172.31.0.0/24
            nodes:
              - {name: node1, podCIDR: 10.244.1.0/24}
              - {name: node2, podCIDR: 10.244.2.0/24}
            namespaces:
              - {name: demo, labels: {istio.io/dataplane-mode: ambient}}
              - {name: legacy}
            pods:
              - name: client
                namespace: demo
                node: node1
                serviceAccount: client
                labels: {app: client}
                workload: {kind: Deployment, name: frontend}
              - name: server
                namespace: demo
                node: node2
                serviceAccount: server
                labels: {app: server, version: v1}
                workload: {kind: StatefulSet, name: backend}
                app: {ports: [8080]}
                readinessProbe: {httpGet: {path: /ready, port: 8080}, periodSeconds: 1}
                livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
              - {name: legacy-client, namespace: legacy, node: node1, labels: {app: legacy-client}}
            services:
              - name: server
                namespace: demo
                clusterIP: 10.96.0.10
                selector: {app: server}
                ports: [{name: http, port: 80, targetPort: 8080}]
            manifests: [\(examples)/kubernetes-api.yaml, \(examples)/policies/strict.yaml, allow-client.yaml]
            """
    }

    /// ALLOW-only: nothing but the client's identity reaches the server (so a probe that kept its node
    /// address, or came in plaintext, would be refused).
    static let allowClientOnly = """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: allow-client, namespace: demo}
        spec:
          selector: {matchLabels: {app: server}}
          action: ALLOW
          rules: [{from: [{source: {principals: [cluster.local/ns/demo/sa/client]}}]}]
        """

    /// The samples of `metrics` matching `labels`, summed per name, by the reference parser.
    static func samples(_ metrics: String, _ labels: [String: String]) throws -> [String: Any] {
        let script = LabCLI.packageRoot.appendingPathComponent("Tests/Interop/prometheus_samples.py").path
        let result = try ProcessRunner.run(
            "/usr/bin/python3",
            [script] + labels.map { "\($0.key)=\($0.value)" }.sorted(),
            input: metrics
        )
        #expect(result.status == 0, "the Prometheus parser rejected the exposition: \(result.standardError)")
        return (try? JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any]) ?? [:]
    }

    @Test(arguments: captureModes)
    func realClusterTrafficProbesAPIServerTelemetryAndARestartedPeer(capture: String) throws {
        let lab = try TestLab(yaml: Self.realClusterLab)
        defer { lab.cleanUp() }
        try Self.allowClientOnly.write(
            to: lab.directory.appendingPathComponent("allow-client.yaml"),
            atomically: true,
            encoding: .utf8
        )
        let up = try lab.lab(["up", "--file", lab.labFile, "--capture", capture])
        try #require(up.status == 0, "\(up.all)")
        let serverIP = try #require(try lab.pods()["server"]?["ip"] as? String)

        // 1. The kubelet's probes pass under STRICT + ALLOW-only; a plaintext client outside the mesh does not.
        var server: [String: Any] = [:]
        #expect(
            try Self.eventually(20) {
                server = try lab.pods()["server"] ?? [:]
                return server["ready"] as? Bool == true
            },
            "server never became Ready: \(server)"
        )
        let plaintext = try Self.exec(lab, "legacy-client", "curl -sS -m 5 http://\(serverIP):8080/")
        #expect(plaintext.status != 0, "a plaintext client reached a STRICT pod: \(plaintext.all)")
        #expect(try Self.curl(lab, "client", "http://10.96.0.10/").hasPrefix("hello from demo/server"))

        // 2. kubernetes.default: no selector, an EndpointSlice pointing at node1's address; from node2's pod
        // it is plain TCP to the node (the VIP rewritten), as ztunnel sends it.
        let apiServer = try Background(
            netns: "ambit-\(lab.name)-node1",
            ["/usr/bin/python3", "-m", "http.server", "6443", "--bind", "172.31.0.11", "--directory", "/"],
            output: lab.directory.appendingPathComponent("api-server.log")
        )
        defer { apiServer.stop() }
        var listing = ""
        #expect(
            try Self.eventually {
                listing = try Self.curl(lab, "server", "-o /dev/null -w '%{http_code}' http://10.96.0.1:443/")
                return listing == "200"
            },
            "kubernetes.default not reached through its VIP: \(listing)"
        )

        // 3. N request bytes and M response bytes, where ztunnel puts them, at both reporters.
        let labels = [
            "source_workload": "frontend", "source_canonical_service": "client", "destination_workload": "backend",
            "destination_app": "server", "destination_version": "v1", "destination_canonical_revision": "v1",
            "destination_service": "server.demo.svc.cluster.local", "destination_service_name": "server",
            "source_principal": "spiffe://cluster.local/ns/demo/sa/client", "request_protocol": "tcp",
            "connection_security_policy": "mutual_tls", "source_cluster": "Kubernetes",
        ]
        func counts(_ node: String, _ reporter: String) throws -> (received: Double, sent: Double) {
            let found = try Self.samples(
                try Self.metrics(lab, node: node),
                labels.merging(["reporter": reporter]) { $1 }
            )
            return (
                found["istio_tcp_received_bytes_total"] as? Double ?? 0,
                found["istio_tcp_sent_bytes_total"] as? Double ?? 0
            )
        }
        let before = (source: try counts("node1", "source"), destination: try counts("node2", "destination"))
        var (source, destination) = before
        let body = lab.directory.appendingPathComponent("body").path
        try String(repeating: "a", count: 3000).write(toFile: body, atomically: true, encoding: .utf8)
        let sizes = try Self.curl(
            lab,
            "client",
            "-o /dev/null -w '%{size_request} %{size_upload} %{size_header} %{size_download}' -H 'Expect:' "
                + "--data-binary @\(body) http://10.96.0.10/upload"
        ).split(separator: " ").compactMap { Double($0) }
        try #require(sizes.count == 4, "\(sizes)")
        // size_request counts the whole request, body included; the response is its header and body.
        let (requestBytes, responseBytes) = (sizes[0], sizes[2] + sizes[3])
        #expect(sizes[1] == 3000)
        #expect(requestBytes > 3000 && responseBytes > 0)
        // The closing connection is counted when both ends have finished: wait for the destination's count.
        #expect(
            try Self.eventually {
                destination = try counts("node2", "destination")
                return destination.received - before.destination.received == requestBytes
                    && destination.sent - before.destination.sent == responseBytes
            },
            "destination: \(destination) before \(before.destination), want \(requestBytes)/\(responseBytes)"
        )
        #expect(
            try Self.eventually {
                source = try counts("node1", "source")
                return source.received - before.source.received == requestBytes
                    && source.sent - before.source.sent == responseBytes
            },
            "source: \(source) before \(before.source), want \(requestBytes)/\(responseBytes)"
        )
        // The access log: ztunnel's keys, the pod names, bytes from each proxy's side.
        // (The log is written in batches, up to 50 ms after the line was logged.)
        var inbound: [String: Any]?
        _ = Self.eventually {
            let log = (try? String(contentsOfFile: "\(lab.stateDirectory)/\(lab.name)/logs/node2.log")) ?? ""
            inbound = log.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }.last { $0["message"] as? String == "connection complete" && $0["direction"] as? String == "inbound" }
            return inbound?["bytes_recv"] as? Double == requestBytes
        }
        let entry = try #require(inbound, "no inbound access log line")
        #expect(entry["src.workload"] as? String == "client" && entry["dst.workload"] as? String == "server")
        #expect(entry["src.identity"] as? String == "spiffe://cluster.local/ns/demo/sa/client")
        #expect(
            entry["bytes_recv"] as? Double == requestBytes && entry["bytes_sent"] as? Double == responseBytes,
            "\(entry)"
        )
        #expect((entry["duration"] as? String)?.hasSuffix("ms") == true)

        // 5. Kill -9 node2's agent under node1's pooled connection, start it again: once it is back, not one
        // request fails (the dead connection is never handed out).
        for _ in 0..<4 { #expect(try Self.curl(lab, "client", "http://10.96.0.10/").hasPrefix("hello from")) }
        let agentPid = try #require(
            (try lab.status()["nodes"] as? [[String: Any]])?.first { $0["name"] as? String == "node2" }?["agentPid"]
                as? Int
        )
        let commandLine = try String(contentsOfFile: "/proc/\(agentPid)/cmdline", encoding: .utf8)
            .split(separator: "\0").map(String.init)
        kill(Int32(agentPid), SIGKILL)
        #expect(Self.eventually { kill(Int32(agentPid), 0) != 0 })
        let restarted = try Background(
            netns: "ambit-\(lab.name)-node2",
            commandLine,
            output: lab.directory.appendingPathComponent("agent-restarted.log")
        )
        defer { restarted.stop() }
        #expect(
            try Self.eventually(20) {
                try Self.shell(
                    "nsenter --net=/var/run/netns/ambit-\(lab.name)-node2 curl -sf http://127.0.0.1:15021/healthz/ready"
                ).status == 0
            },
            "node2's agent did not become ready again: \(restarted.text.suffix(2000))"
        )
        var failures: [String] = []
        for index in 0..<8 {
            let reply = try Self.exec(lab, "client", "curl -sS -m 5 http://10.96.0.10/")
            if !reply.standardOutput.hasPrefix("hello from demo/server") { failures.append("#\(index): \(reply.all)") }
        }
        #expect(failures.isEmpty, "requests failed after the far agent came back: \(failures)")
    }
}
