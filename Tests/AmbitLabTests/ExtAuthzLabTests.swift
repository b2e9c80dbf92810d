import AmbitTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// CUSTOM AuthorizationPolicies end to end: the waypoint asks an independent ext_authz server (Python
/// grpcio, in its own pod) about every request to `server`, and a CUSTOM policy that selects a pod
/// directly (no waypoint can enforce it) refuses that pod's traffic at the node. Part of the lab suite.
extension LabRootTests {
    static func extAuthzLab(_ name: String) -> String {
        """
        name: \(name)
        underlay: 172.31.0.0/24
        nodes:
          - {name: node1, podCIDR: 10.244.1.0/24}
          - {name: node2, podCIDR: 10.244.2.0/24}
        namespaces:
          - {name: demo, labels: {istio.io/dataplane-mode: ambient}}
          - {name: authz}
        pods:
          - {name: client, namespace: demo, node: node1, serviceAccount: client, labels: {app: client}}
          - {name: server, namespace: demo, node: node2, serviceAccount: server, labels: {app: server}, app: {ports: [8080]}}
          - {name: web, namespace: demo, node: node2, serviceAccount: web, labels: {app: web}, app: {ports: [8080]}}
          - {name: waypoint, namespace: demo, node: node2, serviceAccount: waypoint, waypoint: {for: service}}
          - {name: opa, namespace: authz, node: node1, labels: {app: opa}}
        services:
          - name: server
            namespace: demo
            clusterIP: 10.96.0.10
            labels: {istio.io/use-waypoint: waypoint}
            selector: {app: server}
            ports: [{name: http, port: 80, targetPort: 8080}]
          - {name: opa, namespace: authz, clusterIP: 10.96.0.20, selector: {app: opa}, ports: [{name: grpc, port: 9000, targetPort: 9000}]}
        manifests: [policies.yaml]
        meshConfig: mesh.yaml
        """
    }

    static let extAuthzPolicies = """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: ext-authz, namespace: demo}
        spec:
          targetRefs: [{kind: Service, group: "", name: server}]
          action: CUSTOM
          provider: {name: opa}
          rules: [{}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: web-needs-opa, namespace: demo}
        spec:
          selector: {matchLabels: {app: web}}
          action: CUSTOM
          provider: {name: opa}
          rules: [{}]
        """

    /// Istio's ConfigMap `istio`, as a cluster has it.
    static let extAuthzMeshConfig = """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: istio, namespace: istio-system}
        data:
          mesh: |-
            extensionProviders:
            - name: opa
              envoyExtAuthzGrpc: {service: opa.authz.svc.cluster.local, port: 9000, timeout: 2s}
        """

    @Test(arguments: captureModes)
    func customPoliciesAskTheExternalAuthorizerAndFailClosed(capture: String) throws {
        let lab = try TestLab(yaml: Self.extAuthzLab)
        defer { lab.cleanUp() }
        for (file, text) in [("policies.yaml", Self.extAuthzPolicies), ("mesh.yaml", Self.extAuthzMeshConfig)] {
            try text.write(to: lab.directory.appendingPathComponent(file), atomically: true, encoding: .utf8)
        }
        let up = try lab.lab(["up", "--file", lab.labFile, "--capture", capture])
        try #require(up.status == 0, "\(up.all)")
        let log = lab.directory.appendingPathComponent("checks.jsonl").path
        let script = LabCLI.packageRoot.appendingPathComponent("Tests/Interop/ext_authz_server.py").path
        let authorizer = try Self.startInPod(
            lab,
            "opa",
            ["/usr/bin/python3", script, "--host", "0.0.0.0", "--port", "9000", "--log", log]
        )
        defer { if authorizer.isRunning { kill(authorizer.processIdentifier, SIGKILL) } }
        let vip = "http://10.96.0.10"

        // Allowed by the authorizer, with the header it adds on the way to the app.
        var allowed = ""
        #expect(
            try Self.eventually {
                allowed = try Self.curl(lab, "client", "-i \(vip)/allow/x")
                return allowed.hasPrefix("HTTP/1.1 200")
            },
            "\(allowed)"
        )
        #expect(allowed.contains("x-ext-authz-check=allowed"), "\(allowed)")
        // Denied, with the authorizer's status, headers and body.
        let denied = try Self.curl(lab, "client", "-i \(vip)/deny")
        #expect(denied.hasPrefix("HTTP/1.1 403"), "\(denied)")
        #expect(denied.lowercased().contains("x-ext-authz: denied"), "\(denied)")
        #expect(denied.hasSuffix("denied by ext_authz"), "\(denied)")
        let teapot = try Self.curl(lab, "client", "-o /dev/null -w '%{http_code}' \(vip)/status/418")
        #expect(teapot == "418")
        // What the authorizer saw: Envoy's attributes, the client's identity.
        let checks = (try String(contentsOfFile: log, encoding: .utf8)).split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let first = try #require(checks.first { $0["path"] as? String == "/allow/x" })
        #expect(first["source_principal"] as? String == "spiffe://cluster.local/ns/demo/sa/client", "\(first)")
        #expect(first["destination_principal"] as? String == "spiffe://cluster.local/ns/demo/sa/waypoint")
        #expect(first["method"] as? String == "GET" && first["protocol"] as? String == "HTTP/1.1")

        // The authorizer is gone: denied, not let through.
        kill(authorizer.processIdentifier, SIGKILL)
        authorizer.waitUntilExit()
        let unreachable = try Self.curl(lab, "client", "-o /dev/null -w '%{http_code}' \(vip)/allow/x")
        #expect(unreachable == "403", "\(unreachable)")
        let waypointMetrics = try Self.shell(
            "nsenter --net=/var/run/netns/ambit-\(lab.name)-p-waypoint curl -sS http://127.0.0.1:15020/metrics"
        ).output
        let uaex = PrometheusSamples(waypointMetrics).sum(
            "istio_requests_total",
            ["response_code": "403", "response_flags": "UAEX", "destination_service_name": "server"]
        )
        #expect(uaex >= 2, "\(waypointMetrics)")

        // A CUSTOM policy selecting a pod directly: the node agent cannot call the authorizer, so the
        // pod's traffic is refused (Istio's ztunnel would let it through).
        let webIP = try #require(try lab.pods()["web"]?["ip"] as? String)
        let web = try Self.exec(lab, "client", "curl -sS -m 5 -o /dev/null -w '%{http_code}' http://\(webIP):8080/")
        #expect(web.status != 0 && web.standardOutput == "000", "\(web.all)")
        let nodeMetrics = try Self.metrics(lab, node: "node2")
        let refused = PrometheusSamples(nodeMetrics).sum(
            "istio_tcp_connections_closed_total",
            ["response_flags": "UAEX", "destination_workload": "web", "reporter": "destination"]
        )
        #expect(refused >= 1, "\(nodeMetrics)")
    }
}
