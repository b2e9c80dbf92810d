import AmbitTestSupport
import Foundation
import Testing

/// The second half of the waypoint lab test (same lab, after its telemetry checks): retries on a per-try
/// timeout, on a reset and on a connect failure (to an endpoint not tried yet), `timeouts.backendRequest`,
/// an abort fault at 50 %, opaque TCP at L4 (passed where L4 policy allows it, refused where only L7 rules
/// could), and the waypoint's 400 for a CONNECT to something it does not serve.
extension LabRootTests {
    static func checkRetriesTimeoutsFaultsAndOpaqueTCP(_ lab: TestLab, waypointIP: String) throws {
        let vip = "http://10.96.8.10"
        func timed(_ path: String, host: String = vip) throws -> (code: String, seconds: Double) {
            let out = try curl(lab, "client", "-o /dev/null -w '%{http_code} %{time_total}' \(host)\(path)")
            let parts = out.split(separator: " ")
            return (parts.first.map(String.init) ?? out, Double(parts.last ?? "") ?? -1)
        }
        let metricsBefore = try waypointRequests(lab)

        // /flaky: retries {attempts: 2, perTryTimeout: 1s, retryOn: connect-failure,reset,503}.
        // The first try of delay-once waits 3 s: cut at 1 s, the second try answers at once.
        let patient = try timed("/flaky/delay-once/3000/t1")
        #expect(patient.code == "200" && patient.seconds >= 0.9 && patient.seconds < 2.5, "\(patient)")
        // The first try of reset-once is reset by the app (RST, no answer): retried.
        #expect(try timed("/flaky/reset-once/r1").code == "200")
        // Without a retry policy the same reset is the client's 503 (upstream reset).
        let reset = try curl(lab, "client", "-i \(vip)/api-less/reset-once/r2")
        #expect(reset.hasPrefix("HTTP/1.1 503"), "\(reset)")

        // /backend-slow: timeouts {backendRequest: 300ms} and no retries → 504 after one try.
        let backendSlow = try timed("/backend-slow/delay/3000")
        #expect(backendSlow.code == "504" && backendSlow.seconds < 2, "\(backendSlow)")

        // server-pool = server-v1 + grpc-server, where nothing listens on 8080. /failover retries once on
        // connect-failure, and a retry goes to an endpoint not tried yet: every request reaches server-v1.
        // /no-retry, the same pool without retries, fails about half the time (503 UF).
        let failover = try curl(lab, "client", (0..<20).map { "\(vip)/failover/\($0)" }.joined(separator: " "))
        #expect(failover.components(separatedBy: "hello from demo/server-v1").count - 1 == 20, "\(failover)")
        let noRetry = try codes(lab, (0..<20).map { "\(vip)/no-retry/\($0)" })
        #expect(noRetry.count == 20 && noRetry.contains("503") && noRetry.contains("200"), "\(noRetry)")

        // /sometimes: abort 418 at 50 %: of 200 requests, 418 for 70..130 of them (4 standard deviations).
        let sometimes = try codes(lab, (0..<200).map { "\(vip)/sometimes/\($0)" })
        let aborted = sometimes.filter { $0 == "418" }.count
        #expect(sometimes.count == 200 && (70...130).contains(aborted), "418 for \(aborted) of \(sometimes.count)")
        #expect(sometimes.allSatisfy { $0 == "418" || $0 == "200" }, "\(Set(sometimes))")

        // What the waypoint counted for these.
        let after = try waypointRequests(lab)
        func added(_ fragments: [String]) -> Int { after.count(fragments) - metricsBefore.count(fragments) }
        #expect(added([#"response_code="418""#, #"response_flags="FI""#]) == aborted)
        #expect(added([#"response_code="504""#, #"response_flags="UT""#]) == 1)
        #expect(added([#"response_code="503""#, #"response_flags="UR""#]) == 1)
        #expect(added([#"response_code="503""#, #"response_flags="UF""#]) == noRetry.filter { $0 == "503" }.count)

        // server-v1's VirtualService (routes.yaml): in order, first match wins, string prefixes, Istio's fields.
        let vsFault = try curl(lab, "client", "-i http://10.96.8.11/vs-fault")
        #expect(vsFault.hasPrefix("HTTP/1.1 429"), "\(vsFault)")
        #expect(try timed("http://10.96.8.11/vs-retry/fail-once/vs1", host: "").code == "200")
        let vsRewrite = try curl(lab, "client", "-i 'http://10.96.8.11/vsx/y?z=1'")
        #expect(vsRewrite.contains("X-Ambit-Lab-Request: GET /rewrittenx/y?z=1 HTTP/1.1"), "\(vsRewrite)")
        #expect(vsRewrite.contains("x-route: virtual-service"), "\(vsRewrite)")
        let vsDefault = try curl(lab, "client", "-i http://10.96.8.11/plain")
        #expect(vsDefault.contains("X-Ambit-Lab-Request: GET /plain HTTP/1.1") && !vsDefault.contains("x-route"))

        // Opaque TCP (no HTTP method first): server-v1's service has the waypoint and no L7 policy, so L4
        // allows it and the bytes come back from the echo app; for `server`, whose ALLOW rules all need HTTP
        // attributes, nothing can match at L4 and the connection is closed unanswered.
        func opaque(_ address: String) throws -> String {
            try exec(
                lab,
                "client",
                """
                python3 -c "import socket
                s = socket.create_connection(('\(address)', 80), timeout=5)
                s.sendall(b'\\x00opaque bytes\\n'); s.shutdown(socket.SHUT_WR); data = b''
                try:
                    while True:
                        chunk = s.recv(100)
                        if not chunk: break
                        data += chunk
                except OSError as error:
                    data += type(error).__name__.encode()
                print(repr(data))"
                """
            ).standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try opaque("10.96.8.11") == #"b'\x00opaque bytes\n'"#)
        let refused = try opaque("10.96.8.10")
        #expect(refused == "b''" || refused == "b'ConnectionResetError'", "\(refused)")

        // A CONNECT for what the waypoint does not serve → 400, from an independent HBONE client (Python h2)
        // with a workload certificate of the lab's CA, on node1 (outside any pod, so nothing captures it).
        let certs = lab.directory.appendingPathComponent("client-certs").path
        let issued = try ProcessRunner.run(
            LabCLI.ambitctl,
            [
                "cert", "issue", "--ca", "\(lab.stateDirectory)/\(lab.name)/control-plane/ca",
                "--spiffe", "spiffe://cluster.local/ns/demo/sa/client", "--out", certs,
            ]
        )
        try #require(issued.status == 0, "\(issued.all)")
        func connect(_ authority: String) throws -> [String: Any] {
            let run = try shell(
                "ip netns exec ambit-\(lab.name)-node1 /usr/bin/python3 \(hbonePeer) client "
                    + "--cert \(certs)/cert-chain.pem --key \(certs)/key.pem --ca \(certs)/root-cert.pem "
                    + "--connect \(waypointIP):15008 --authority \(authority) --size 16"
            )
            let line = run.output.split(separator: "\n").last.map(String.init) ?? ""
            return (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? [
                "output": run.output
            ]
        }
        let foreign = try connect("10.96.99.1:80")
        #expect(foreign["status"] as? Int == 400, "\(foreign)")
        #expect(foreign["server_identity"] as? String == "spiffe://cluster.local/ns/demo/sa/waypoint", "\(foreign)")
        let clientPod = try #require(try lab.pods()["client"]?["ip"] as? String)
        #expect(try connect("\(clientPod):8080")["status"] as? Int == 400, "a pod the waypoint does not serve")
        #expect(try connect("10.96.8.11:80")["status"] as? Int == 200, "a service the waypoint serves")
    }

    /// The status code of each URL, fetched by one curl in the client pod (one line per URL).
    static func codes(_ lab: TestLab, _ urls: [String]) throws -> [String] {
        try curl(lab, "client", "-w '%{http_code}\\n' " + urls.map { "-o /dev/null \($0)" }.joined(separator: " "))
            .split(separator: "\n").map(String.init)
    }

    static var hbonePeer: String { TestBinaries.packageRoot.appendingPathComponent("Tests/Interop/hbone_peer.py").path }

    /// The waypoint's `istio_requests_total` lines for client → server.
    static func waypointRequests(_ lab: TestLab) throws -> RequestCounts {
        let metrics = try shell(
            "nsenter --net=/var/run/netns/ambit-\(lab.name)-p-waypoint curl -sS http://127.0.0.1:15020/metrics"
        ).output
        return RequestCounts(
            lines: metrics.split(separator: "\n").filter {
                $0.hasPrefix("istio_requests_total{") && $0.contains(#"source_workload="client""#)
                    && $0.contains(#"destination_service="server.demo.svc.cluster.local""#)
            }.map(String.init)
        )
    }

    struct RequestCounts {
        var lines: [String]
        func count(_ fragments: [String]) -> Int {
            lines.filter { line in fragments.allSatisfy { line.contains($0) } }
                .compactMap { Int($0.split(separator: " ").last ?? "") }.reduce(0, +)
        }
    }
}
