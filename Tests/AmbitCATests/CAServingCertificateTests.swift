import AmbitTestSupport
import Foundation
import Testing

/// `ambit-ca` renews its own TLS serving certificate while it runs: a CA process that outlives the certificate it
/// started with must not break every agent's renewal.
@Suite(.timeLimit(.minutes(3))) struct CAServingCertificateTests {
    /// A 6 s serving certificate is replaced at about 4 s, with no restart; a request made after the first
    /// certificate expired is served, and openssl verifies the new one against the mesh roots.
    @Test func theServingCertificateIsRenewedBeforeItExpiresWithoutARestart() async throws {
        let world = try await CAServiceWorld.start(arguments: ["--serving-lifetime-seconds", "6"])
        defer { world.stop() }
        let pid = world.process.processIdentifier
        let first = try world.servingCertificate()
        let before = try world.request(CAServiceInteropTests.client, token: try world.token())
        #expect(before.status == 0, "\(before.error)")

        #expect(
            await eventually(timeout: .seconds(30)) { world.log.contains("renewed the TLS serving certificate") },
            "\(world.log)"
        )
        let second = try world.servingCertificate()
        #expect(second.serial != first.serial)
        #expect(second.notAfter > first.notAfter)

        // Past the first certificate's expiry (openssl prints whole seconds; one more covers the rounding).
        let expired = first.notAfter.timeIntervalSinceNow + 1
        if expired > 0 { try await Task.sleep(for: .milliseconds(Int(expired * 1000))) }
        let after = try world.request(CAServiceInteropTests.client, token: try world.token())
        #expect(after.status == 0, "\(after.error)")
        #expect(try world.servingCertificate().notAfter > Date())
        #expect(world.process.isRunning && world.process.processIdentifier == pid)

        let metrics = try world.metrics()
        let renewals = metrics.split(separator: "\n").first { $0.hasPrefix("ambit_ca_serving_cert_renewals_total ") }
        #expect(renewals.flatMap { Int($0.split(separator: " ")[1]) }.map { $0 >= 1 } == true, "\(metrics)")
        #expect(metrics.contains("ambit_ca_serving_cert_expiry_timestamp_seconds "), "\(metrics)")
        #expect(metrics.contains("citadel_server_success_cert_issuance_count 2"), "\(metrics)")
    }
}
