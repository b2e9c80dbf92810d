import AmbitTestSupport
import Foundation
import Testing

/// Runs the identity and policy walkthrough (`./scripts/walkthrough`) against the ambitctl that
/// `swift build` produced, and checks what it printed.
@Suite struct WalkthroughTests {
    static var packageRoot: URL { TestBinaries.packageRoot }
    static var ambitctl: String { TestBinaries.path("ambitctl") }

    @Test func walkthroughRuns() throws {
        let result = try ProcessRunner.run(
            Self.packageRoot.appendingPathComponent("scripts/walkthrough").path,
            environment: ["AMBIT_SKIP_SETUP": "1", "AMBITCTL": Self.ambitctl],
            in: Self.packageRoot.path
        )
        #expect(result.status == 0, "stderr: \(result.standardError)")
        let out = result.standardOutput
        #expect(out.contains("Created CA for trust domain cluster.local"))
        #expect(out.contains("Issued spiffe://cluster.local/ns/demo/sa/client"))
        #expect(out.contains("identity:  spiffe://cluster.local/ns/demo/sa/client"))
        #expect(out.contains("cert-chain.pem: OK"))
        #expect(
            out.contains("demo/server      10.244.2.20  node-2  spiffe://cluster.local/ns/demo/sa/server     ambient")
        )
        #expect(
            out.contains("ALLOW  demo/client (spiffe://cluster.local/ns/demo/sa/client) → demo/server 10.244.2.20:8080")
        )
        #expect(
            out.contains(
                "DENY  legacy/intruder (spiffe://cluster.local/ns/legacy/sa/default) → demo/server 10.244.2.20:8080"
            )
        )
        #expect(out.contains("reason: denied by DENY policy istio-system/deny-legacy (rule 0)"))
        #expect(out.contains("reason: denied: no ALLOW policy matched (demo/allow-client)"))
        #expect(
            result.standardError.contains(
                "workloads.yaml:48: Pod demo/server: status.podIP: \"10.244.2.300\" is not a valid IPv4 or IPv6 address"
            )
        )
        #expect(result.standardError.contains("walkthrough finished"))
    }
}
