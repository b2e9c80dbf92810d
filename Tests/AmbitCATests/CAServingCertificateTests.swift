import AmbitIdentity
import AmbitTestSupport
import Foundation
import Logging
import Prometheus
import Testing

@testable import AmbitCA

/// `ambit-ca` renews its own TLS serving certificate while it runs: a CA process that outlives the certificate it
/// started with must not break every agent's renewal.
@Suite(.timeLimit(.minutes(3))) struct CAServingCertificateTests {
    /// A 9 s serving certificate is replaced at about 6 s, with no restart: once the certificate first seen has
    /// expired, openssl is shown another one that verifies against the mesh roots, and a request is served.
    @Test func theServingCertificateIsRenewedBeforeItExpiresWithoutARestart() async throws {
        let world = try await CAServiceWorld.start(arguments: ["--serving-lifetime-seconds", "9"])
        defer { world.stop() }
        let pid = world.process.processIdentifier
        // Under load this may already be a renewed one: the test holds for whichever it is.
        let first = try world.servingCertificate()
        let before = try world.request(CAServiceInteropTests.client, token: try world.token())
        #expect(before.status == 0, "\(before.error)")

        // Past the first certificate's expiry (openssl prints whole seconds; one more covers the rounding).
        let expired = first.notAfter.timeIntervalSinceNow + 1
        if expired > 0 { try await Task.sleep(for: .milliseconds(Int(expired * 1000))) }
        let second = try world.servingCertificate()
        #expect(second.serial != first.serial)
        #expect(second.notAfter > Date())
        let after = try world.request(CAServiceInteropTests.client, token: try world.token())
        #expect(after.status == 0, "\(after.error)")
        #expect(world.process.isRunning && world.process.processIdentifier == pid)
        #expect(world.log.contains("renewed the TLS serving certificate"), "\(world.log)")
        #expect(world.log.contains(second.serial), "the renewal's log line names the serial openssl shows")

        let metrics = try world.metrics()
        let renewals = metrics.split(separator: "\n").first { $0.hasPrefix("ambit_ca_serving_cert_renewals_total ") }
        #expect(renewals.flatMap { Int($0.split(separator: " ")[1]) }.map { $0 >= 1 } == true, "\(metrics)")
        #expect(metrics.contains("ambit_ca_serving_cert_expiry_timestamp_seconds "), "\(metrics)")
        #expect(metrics.contains("citadel_server_success_cert_issuance_count 2"), "\(metrics)")
    }
}

/// The renewal schedule itself, without a process.
@Suite struct ServingCertificateScheduleTests {
    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    @Test func renewalIsDueTwoThirdsIntoTheLifetime() throws {
        let now = Date()
        let serving = try ServingCertificate(
            authority: try CertificateAuthority.generate(),
            names: ["ambit-ca.test"],
            lifetime: .seconds(3000),
            registry: PrometheusCollectorRegistry(),
            now: now
        )
        let due = try #require(serving.renewalTime)
        #expect(abs(due.timeIntervalSince(now) - 2000) < 1)
        #expect(abs(serving.validity.notAfter.timeIntervalSince(now) - 3000) < 1)
        #expect(serving.validity.serial.allSatisfy { $0.isHexDigit && !$0.isLowercase })
    }

    /// A CA certificate that expires before a whole serving lifetime caps the serving certificate: there is
    /// nothing to renew into, so the loop warns and ends at once instead of issuing over and over.
    @Test func aCACertificateExpiringFirstStopsTheRenewals() async throws {
        let authority = try CertificateAuthority.generate(lifetime: .seconds(600))
        let registry = PrometheusCollectorRegistry()
        let serving = try ServingCertificate(
            authority: authority,
            names: ["ambit-ca.test"],
            lifetime: .seconds(365 * 24 * 3600),
            registry: registry
        )
        #expect(serving.validity.notAfter == authority.certificate.notValidAfter)
        #expect(serving.renewalTime == nil)
        await serving.renewPeriodically(logger: Self.logger)  // returns: nothing is due, ever
        var page = [UInt8]()
        registry.emit(into: &page)
        #expect(String(decoding: page, as: UTF8.self).contains("ambit_ca_serving_cert_renewals_total 0"))
    }
}
