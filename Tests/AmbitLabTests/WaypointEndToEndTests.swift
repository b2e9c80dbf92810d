import AmbitTestSupport
import Foundation
import Testing

/// The waypoint end to end in the shipped waypoint lab (`examples/lab/waypoint`): real `ambit-waypoint` and
/// `ambit-node` processes, real curl as the client, the echo app as the servers. Part of the serialized lab suite.
extension LabRootTests {
    static var waypointExample: URL {
        LabCLI.packageRoot.appendingPathComponent("examples/lab/waypoint")
    }

    /// The example lab under a test's own name, its manifests referenced by absolute path.
    static func waypointLab(_ name: String) -> String {
        let text = (try? String(contentsOf: waypointExample.appendingPathComponent("lab.yaml"), encoding: .utf8)) ?? ""
        let directory = waypointExample.path
        return
            text
            .replacingOccurrences(of: "name: wp\n", with: "name: \(name)\n")
            .replacingOccurrences(
                of: "manifests: [routes.yaml, policies.yaml]",
                with: "manifests: [\(directory)/routes.yaml, \(directory)/policies.yaml]"
            )
    }

    static var grpcApp: String { LabCLI.packageRoot.appendingPathComponent("lab/apps/grpc_echo.py").path }

    /// Starts `command` inside pod `pod`'s network namespace, in the background (the caller terminates it).
    static func startInPod(_ lab: TestLab, _ pod: String, _ command: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        process.arguments = ["--net=/var/run/netns/ambit-\(lab.name)-p-\(pod)"] + command
        process.environment = ProcessInfo.processInfo.environment.merging(["AMBIT_LAB_POD": pod]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// `curl` in pod `pod` with `arguments`; returns stdout (`-s` is implied).
    static func curl(_ lab: TestLab, _ pod: String, _ arguments: String) throws -> String {
        let result = try exec(lab, pod, "curl -s -m 10 \(arguments)")
        return result.standardOutput
    }

    @Test(arguments: captureModes)
    func waypointAppliesL7PolicyRoutesAndReportsRequests(capture: String) throws {
        let lab = try TestLab(yaml: Self.waypointLab)
        defer { lab.cleanUp() }
        let up = try lab.lab(["up", "--file", lab.labFile, "--capture", capture])
        try #require(up.status == 0, "\(up.all)")
        #expect(up.standardOutput.contains("ambit-waypoint pid"), "\(up.all)")
        let pods = try lab.pods()
        // The waypoint pod opts itself out of capture; everything else in demo is captured.
        #expect(pods["waypoint"]?["captured"] as? Bool == false)
        #expect(pods["client"]?["captured"] as? Bool == true)
        let waypointIP = try #require(pods["waypoint"]?["ip"] as? String)
        let v1IP = try #require(pods["server-v1"]?["ip"] as? String)
        let vip = "http://10.96.8.10"

        // Through the waypoint: the app sees the waypoint as its client; W3C traceparent is generated.
        let hello = try Self.curl(lab, "client", "-i \(vip)/hello")
        #expect(hello.hasPrefix("HTTP/1.1 200 OK"), "\(hello)")
        #expect(hello.contains(" from \(waypointIP):"), "\(hello)")
        #expect(
            hello.range(of: #"traceparent=00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]"#, options: .regularExpression) != nil,
            "\(hello)"
        )
        // HTTP/2 with prior knowledge from the client; the waypoint speaks HTTP/1.1 to this HTTP/1.1 service.
        let h2 = try Self.curl(lab, "client", "-i --http2-prior-knowledge \(vip)/h2")
        #expect(h2.hasPrefix("HTTP/2 200"), "\(h2)")
        #expect(h2.contains("hello from demo/server-v"), "\(h2)")

        // L7 authorization (policies.yaml): client may do anything but /admin; tester may only GET.
        let admin = try Self.curl(lab, "client", "-i \(vip)/admin/users")
        #expect(admin.hasPrefix("HTTP/1.1 403 Forbidden"), "\(admin)")
        #expect(admin.hasSuffix("RBAC: access denied"), "\(admin)")
        // Paths are normalized before the policy sees them: no way around /admin by spelling it otherwise.
        for spelling in ["/x/../admin/users", "//admin/users", "/%61dmin/users", "/admin/./users"] {
            let code = try Self.curl(lab, "client", "--path-as-is -o /dev/null -w '%{http_code}' '\(vip)\(spelling)'")
            #expect(code == "403", "\(spelling): \(code)")
        }
        let badEscape = try Self.curl(lab, "client", "-i --path-as-is '\(vip)/a%zz'")
        #expect(badEscape.hasPrefix("HTTP/1.1 400"), "\(badEscape)")
        #expect(badEscape.contains("malformed percent-encoding in path"), "\(badEscape)")
        #expect(try Self.curl(lab, "tester", "-o /dev/null -w '%{http_code}' \(vip)/x") == "200")
        #expect(try Self.curl(lab, "tester", "-o /dev/null -w '%{http_code}' -X POST -d a=1 \(vip)/x") == "403")
        // DENY narrowed by namespace, host, port, a {*} template and a header (policies.yaml).
        func code(_ pod: String, _ arguments: String) throws -> String {
            try Self.curl(lab, pod, "-o /dev/null -w '%{http_code}' \(arguments)")
        }
        #expect(try code("client", "-H 'x-block: yes' \(vip)/private/x") == "403")
        #expect(try code("client", "\(vip)/private/x") == "200")  // no header
        #expect(try code("client", "-H 'x-block: no' \(vip)/private/x") == "200")  // other value
        #expect(try code("client", "-H 'x-block: yes' \(vip)/private/x/y") == "200")  // {*} is one segment
        #expect(try code("client", "-H 'x-block: yes' -H 'host: other.example' \(vip)/private/x") == "200")
        // AUDIT never changes the outcome; the waypoint logs the match.
        #expect(try code("client", "\(vip)/audited") == "200")
        // No bypass: straight to a pod behind the waypoint, the destination agent refuses the client.
        let bypass = try Self.exec(lab, "client", "curl -sS -m 5 http://\(v1IP):8080/")
        #expect(bypass.status == 56 || bypass.status == 52 || bypass.status == 7, "\(bypass.all)")

        // Routing (routes.yaml): header match + response header, redirect, rewrite + request header, query match.
        let canary = try Self.curl(lab, "client", "-i -H 'x-canary: always' \(vip)/x")
        #expect(canary.contains("x-route: canary-header"), "\(canary)")
        #expect(canary.contains("hello from demo/server-v2"), "\(canary)")
        let redirect = try Self.curl(lab, "client", "-i '\(vip)/old/page?q=1'")
        #expect(redirect.hasPrefix("HTTP/1.1 301"), "\(redirect)")
        #expect(redirect.contains("location: http://10.96.8.10/new/page?q=1"), "\(redirect)")
        let rewritten = try Self.curl(lab, "client", "-i '\(vip)/api/items?a=b'")
        #expect(rewritten.contains("X-Ambit-Lab-Request: GET /v1/items?a=b HTTP/1.1"), "\(rewritten)")
        #expect(rewritten.contains("x-rewritten=yes"), "\(rewritten)")
        #expect(rewritten.contains("hello from demo/server-v1"), "\(rewritten)")
        #expect(try Self.curl(lab, "client", "'\(vip)/any?pin=v2'").hasPrefix("hello from demo/server-v2"))
        // POST is not GET: the /api rule does not match it, the split rule does (no rewrite).
        let post = try Self.curl(lab, "client", "-i -X POST -d x=1 '\(vip)/api/items'")
        #expect(post.contains("X-Ambit-Lab-Request: POST /api/items HTTP/1.1"), "\(post)")
        // Exact and RegularExpression paths.
        let exact = try Self.curl(lab, "client", "-i \(vip)/exact")
        #expect(exact.contains("x-route: exact") && exact.contains("hello from demo/server-v1"), "\(exact)")
        #expect(!(try Self.curl(lab, "client", "-i \(vip)/exact/more")).contains("x-route: exact"))
        let regex = try Self.curl(lab, "client", "-i \(vip)/re/42")
        #expect(regex.contains("x-route: regex") && regex.contains("hello from demo/server-v2"), "\(regex)")
        #expect(!(try Self.curl(lab, "client", "-i \(vip)/re/abc")).contains("x-route: regex"))

        // Retries, faults, timeouts: the first try of /flaky gets a 503 and is retried.
        #expect(try Self.curl(lab, "client", "-o /dev/null -w '%{http_code}' \(vip)/flaky/fail-once/k1") == "200")
        let abort = try Self.curl(lab, "client", "-i \(vip)/faulty")
        #expect(abort.hasPrefix("HTTP/1.1 418"), "\(abort)")
        let delayed = try Self.curl(lab, "client", "-o /dev/null -w '%{http_code} %{time_total}' \(vip)/delayed")
        let delay = Double(delayed.split(separator: " ").last ?? "") ?? 0
        #expect(delayed.hasPrefix("200 ") && delay >= 0.3, "\(delayed)")
        let slow = try Self.curl(lab, "client", "-i \(vip)/slow/delay/3000")
        #expect(slow.hasPrefix("HTTP/1.1 504"), "\(slow)")
        #expect(slow.contains("upstream request timeout"), "\(slow)")

        // Mirroring: each /mirrored request also reaches server-v2 (on node1), as a tunnel from the waypoint.
        func mirroredCount() throws -> Int {
            let text = try Self.metrics(lab, node: "node1")
            return text.split(separator: "\n").filter {
                $0.hasPrefix("istio_tcp_connections_opened_total{reporter=\"destination\"")
                    && $0.contains("destination_workload=\"server-v2\"")
                    && $0.contains("source_principal=\"spiffe://cluster.local/ns/demo/sa/waypoint\"")
            }.compactMap { Int($0.split(separator: " ").last ?? "") }.reduce(0, +)
        }
        let before = try mirroredCount()
        for _ in 0..<3 {
            #expect(try Self.curl(lab, "client", "\(vip)/mirrored").hasPrefix("hello from demo/server-v1"))
        }
        let mirrored = Self.eventually(5) { (try? mirroredCount()) == before + 3 }
        #expect(mirrored, "mirrored \(((try? mirroredCount()) ?? 0) - before) of 3")

        // Bad HTTP: a malformed request gets 400, oversized headers 431, and the waypoint keeps serving.
        let malformed = try Self.exec(
            lab,
            "client",
            """
            python3 -c "import socket; s = socket.create_connection(('10.96.8.10', 80), timeout=5); \
            s.sendall(b'GET /x HTTP/1.1\\r\\nHost: a\\r\\nno colon here\\r\\n\\r\\n'); \
            print(s.recv(1000).decode().splitlines()[0])"
            """
        )
        #expect(malformed.standardOutput == "HTTP/1.1 400 Bad Request\n", "\(malformed.all)")
        let big = try Self.curl(
            lab,
            "client",
            "-o /dev/null -w '%{http_code}' -H \"x-big: $(head -c 70000 /dev/zero | tr '\\0' a)\" \(vip)/big"
        )
        #expect(big == "431", "\(big)")
        #expect(try Self.curl(lab, "client", "-o /dev/null -w '%{http_code}' \(vip)/after") == "200")

        // 1,000 requests on one connection split 90/10 by weight: within ±3 points of the weights.
        let urls = (0..<1000).map { "\(vip)/split/\($0)" }.joined(separator: " ")
        let split = try Self.curl(lab, "client", urls)
        let v1 = split.components(separatedBy: "hello from demo/server-v1").count - 1
        let v2 = split.components(separatedBy: "hello from demo/server-v2").count - 1
        #expect(v1 + v2 == 1000, "\(v1) + \(v2)")
        #expect((870...930).contains(v1), "server-v1 got \(v1) of 1000 (weight 90)")

        // gRPC with an independent implementation on both ends (Python grpcio): unary with metadata and
        // trailers, server streaming, a status error, and L7 policy on the method path (denied → 403, which
        // gRPC reads as PERMISSION_DENIED).
        let grpcServer = try Self.startInPod(
            lab,
            "grpc-server",
            ["/usr/bin/python3", Self.grpcApp, "serve", "--port", "9090"]
        )
        defer { kill(grpcServer.processIdentifier, SIGKILL) }  // SIGTERM may be blocked in a child of the runner
        func grpc(_ pod: String, _ method: String, _ message: String) throws -> String {
            try Self.exec(lab, pod, "/usr/bin/python3 \(Self.grpcApp) call 10.96.8.20:9090 \(method) \(message)")
                .standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(
            Self.eventually(10) { (try? grpc("client", "Say", "ping"))?.hasPrefix("OK echo ping") == true },
            "\((try? grpc("client", "Say", "ping")) ?? "")"
        )
        #expect(try grpc("client", "Say", "hi") == "OK echo hi from grpc-server (x-lab=meta-1) [trailer done]")
        #expect(try grpc("client", "Count", "5") == "OK 1,2,3,4,5")
        #expect(try grpc("client", "Fail", "thing") == "NOT_FOUND no such thing: thing")
        #expect(try grpc("tester", "Count", "2") == "OK 1,2")
        #expect(try grpc("tester", "Say", "hi").hasPrefix("PERMISSION_DENIED"))

        // h2load: 2,000 HTTP/2 requests over 4 connections, 10 streams each, all answered.
        let load = try Self.exec(lab, "client", "h2load -n 2000 -c 4 -m 10 \(vip)/h2load").standardOutput
        #expect(load.contains("2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored"), "\(load)")
        #expect(load.contains("status codes: 2000 2xx, 0 3xx, 0 4xx, 0 5xx"), "\(load)")

        // Telemetry: Istio's request metrics with reporter="waypoint" and response codes.
        let metrics = try Self.shell(
            "nsenter --net=/var/run/netns/ambit-\(lab.name)-p-waypoint curl -sS http://127.0.0.1:15020/metrics"
        ).output
        let requests = metrics.split(separator: "\n").filter { $0.hasPrefix("istio_requests_total{") }
        func count(_ fragments: [String]) -> Int {
            requests.filter { line in fragments.allSatisfy { line.contains($0) } }
                .compactMap { Int($0.split(separator: " ").last ?? "") }.reduce(0, +)
        }
        let common = [
            #"reporter="waypoint""#, #"source_workload="client""#,
            #"source_principal="spiffe://cluster.local/ns/demo/sa/client""#,
            #"destination_service="server.demo.svc.cluster.local""#, #"connection_security_policy="mutual_tls""#,
        ]
        #expect(count(common + [#"response_code="403""#, #"response_flags="DENY""#]) == 6, "\(requests)")
        #expect(count(common + [#"response_code="418""#, #"response_flags="FI""#]) == 1, "\(requests)")
        #expect(count(common + [#"response_code="504""#, #"response_flags="UT""#]) == 1, "\(requests)")
        #expect(count(common + [#"response_code="200""#, #"destination_workload="server-v1""#]) >= 870, "\(requests)")
        #expect(metrics.contains("istio_request_duration_milliseconds_bucket{"), "\(metrics.prefix(2000))")
        #expect(metrics.contains("istio_response_bytes_bucket{"))
        // One access-log line per request, with the route that decided.
        // (The log is written in batches, up to 50 ms after the line was logged.)
        var log = ""
        #expect(
            Self.eventually {
                log = (try? String(contentsOfFile: "\(lab.stateDirectory)/\(lab.name)/logs/pod-waypoint.log")) ?? ""
                return log.contains(#""message":"request complete""#) && log.contains(#""route":"demo/server""#)
                    && log.contains("AUDIT policy matched")
            },
            "\(log.suffix(2000))"
        )
        let audits = log.split(separator: "\n").filter { $0.contains("AUDIT policy matched") }
        #expect(audits.count == 1, "\(audits)")
        #expect(audits.first?.contains(#""policy":"demo/server-audit""#) == true, "\(audits)")
        #expect(audits.first?.contains(#""path":"/audited""#) == true, "\(audits)")

        try Self.checkRetriesTimeoutsFaultsAndOpaqueTCP(lab, waypointIP: waypointIP)
    }

    @Test func l7PolicyWithoutAWaypointFailsClosedAtL4() throws {
        // The same lab without the service's waypoint label: an ALLOW policy with L7 attributes on the
        // server pods (selector, enforced by the node agent) cannot be checked, so nothing is allowed.
        let lab = try TestLab { name in
            Self.waypointLab(name).replacingOccurrences(of: "    labels: {istio.io/use-waypoint: waypoint}\n", with: "")
                .replacingOccurrences(of: "\(Self.waypointExample.path)/policies.yaml", with: "")
                .replacingOccurrences(of: ", ]", with: "]")
        }
        defer { lab.cleanUp() }
        let policy = lab.directory.appendingPathComponent("l7-selector.yaml")
        try """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: get-only, namespace: demo}
        spec:
          selector: {matchLabels: {app: server}}
          rules: [{to: [{operation: {methods: ["GET"]}}]}]
        """.write(to: policy, atomically: true, encoding: .utf8)
        let up = try lab.lab(["up", "--file", lab.labFile])
        try #require(up.status == 0, "\(up.all)")
        #expect(try Self.curl(lab, "client", "-o /dev/null -w '%{http_code}' http://10.96.8.10/") == "200")
        let apply = try lab.lab(["apply", policy.path])
        try #require(apply.status == 0, "\(apply.all)")
        // Both agents (one per server endpoint) must have applied it: several requests in a row are refused.
        #expect(
            Self.eventually(10) {
                (0..<6).allSatisfy { _ in
                    (try? Self.exec(lab, "client", "curl -sS -m 3 http://10.96.8.10/"))?.status != 0
                }
            }
        )
        let denied = try Self.exec(lab, "client", "curl -sS -m 3 http://10.96.8.10/")
        #expect(denied.status == 56 || denied.status == 52, "\(denied.all)")
        let node2 = try Self.metrics(lab, node: "node2")
        #expect(node2.contains(#"response_flags="DENY""#), "\(node2)")
    }
}
