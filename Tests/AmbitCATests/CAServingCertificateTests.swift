import AmbitIdentity
import AmbitTestSupport
import Foundation
import Logging
import Prometheus
import Synchronization
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
    @Test func renewalIsDueTwoThirdsIntoTheLifetime() throws {
        let now = Date()
        let authority = try CertificateAuthority.generate()
        let serving = try ServingCertificate(
            authority: { authority },
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
    /// nothing to renew into, so the loop warns once and issues nothing (rather than over and over).
    @Test func aCACertificateExpiringFirstIsWarnedAboutAndNotRenewedInto() async throws {
        let authority = try CertificateAuthority.generate(lifetime: .seconds(600))
        let registry = PrometheusCollectorRegistry()
        let serving = try ServingCertificate(
            authority: { authority },
            names: ["ambit-ca.test"],
            lifetime: .seconds(365 * 24 * 3600),
            registry: registry
        )
        #expect(serving.validity.notAfter == authority.certificate.notValidAfter)
        #expect(serving.renewalTime == nil)
        let log = LogRecorder()
        let loop = Task { await serving.renewPeriodically(logger: log.logger) }
        #expect(await eventually { log.messages.contains { $0.contains("expires with the CA certificate") } })
        loop.cancel()
        await loop.value
        #expect(log.messages.count == 1, "\(log.messages)")
        var page = [UInt8]()
        registry.emit(into: &page)
        #expect(String(decoding: page, as: UTF8.self).contains("ambit_ca_serving_cert_renewals_total 0"))
    }
}

/// Log messages, kept.
final class LogRecorder: Sendable {
    private let recorded = Mutex<[String]>([])

    var messages: [String] { recorded.withLock { $0 } }

    var logger: Logger { Logger(label: "test") { _ in Handler(recorder: self) } }

    private struct Handler: LogHandler {
        let recorder: LogRecorder
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            recorder.recorded.withLock { $0.append("\(event.level) \(event.message)") }
        }
    }
}
