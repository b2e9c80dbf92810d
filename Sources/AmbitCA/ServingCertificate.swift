import AmbitIdentity
import Foundation
import Logging
import NIOCertificateReloading
import NIOSSL
import Prometheus
import Synchronization
import X509

/// The CA service's own TLS certificate: issued by the CA for its server names, and issued anew, with a fresh
/// key, once two-thirds of its lifetime have passed, for as long as the process runs. The gRPC server asks for
/// the current one at every TLS handshake (a ``CertificateReloader``), so renewal needs no restart and refuses
/// no connection; connections already open keep the certificate they were opened with.
final class ServingCertificate: CertificateReloader, Sendable {
    private struct Current: Sendable {
        var override: NIOSSLContextConfigurationOverride
        var issued: Date
        var notAfter: Date
        var serial: String
    }

    private let authority: CertificateAuthority
    private let names: [String]
    private let lifetime: Duration
    private let current: Mutex<Current>
    private let expiry: Gauge
    private let renewals: Counter

    /// Issues the first certificate (an error here stops the server from starting).
    init(
        authority: CertificateAuthority,
        names: [String],
        lifetime: Duration,
        registry: PrometheusCollectorRegistry,
        now: Date = Date()
    ) throws {
        self.authority = authority
        self.names = names
        self.lifetime = lifetime
        current = Mutex(try Self.issue(authority: authority, names: names, lifetime: lifetime, now: now))
        expiry = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                metricName: "ambit_ca_serving_cert_expiry_timestamp",
                unitName: "seconds",
                helpText: "Unix time at which the CA service's current TLS serving certificate expires"
            )
        )
        renewals = registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "ambit_ca_serving_cert_renewals",
                unitName: "total",
                helpText: "TLS serving certificates the CA service issued itself after the first"
            )
        )
        expiry.set(current.withLock { $0.notAfter.timeIntervalSince1970 })
    }

    var sslContextConfigurationOverride: NIOSSLContextConfigurationOverride { current.withLock { $0.override } }

    /// When the certificate in use expires, and its serial number (hex), for logs and tests.
    var validity: (notAfter: Date, serial: String) { current.withLock { ($0.notAfter, $0.serial) } }

    /// When the certificate in use is due for renewal: two-thirds into its validity.
    var renewalTime: Date {
        current.withLock { $0.issued + $0.notAfter.timeIntervalSince($0.issued) * 2 / 3 }
    }

    /// Renews the certificate whenever it is due, until the task is cancelled. A failed renewal (it should not
    /// fail: the key is local) is logged and retried; the certificate in use serves until it expires. Once the CA
    /// certificate's own expiry is what limits the serving certificate, renewing again would not move its expiry:
    /// that is logged and renewal stops (a new CA certificate needs a restart).
    func renewPeriodically(logger: Logger) async {
        var failures = 0
        while !Task.isCancelled {
            let due = failures == 0 ? renewalTime : Date() + min(Double(failures) * 5, 60)
            let wait = max(due.timeIntervalSinceNow, 0.1)
            do {
                try await Task.sleep(for: .milliseconds(Int64(wait * 1000)))
            } catch {
                return
            }
            do {
                let renewed = try Self.issue(authority: authority, names: names, lifetime: lifetime, now: Date())
                current.withLock { $0 = renewed }
                expiry.set(renewed.notAfter.timeIntervalSince1970)
                renewals.increment()
                failures = 0
                let metadata: Logger.Metadata = ["expiry": "\(renewed.notAfter)", "serial": "\(renewed.serial)"]
                guard renewed.notAfter < authority.certificate.notValidAfter else {
                    logger.warning(
                        """
                        renewed the TLS serving certificate up to the CA certificate's own expiry; renew the CA \
                        certificate and restart ambit-ca before then
                        """,
                        metadata: metadata
                    )
                    return
                }
                logger.info("renewed the TLS serving certificate", metadata: metadata)
            } catch {
                failures += 1
                logger.error(
                    "cannot renew the TLS serving certificate; the current one serves until it expires",
                    metadata: ["error": "\(error)", "expiry": "\(validity.notAfter)"]
                )
            }
        }
    }

    private static func issue(
        authority: CertificateAuthority,
        names: [String],
        lifetime: Duration,
        now: Date
    ) throws -> Current {
        let serving = try authority.servingCertificate(names: names, lifetime: lifetime, now: now)
        let chain = try serving.chain.map { certificate in
            NIOSSLCertificateSource.certificate(
                try NIOSSLCertificate(bytes: Array(certificate.serializeAsPEM().pemString.utf8), format: .pem)
            )
        }
        let key = try NIOSSLPrivateKey(bytes: Array(serving.privateKey.serializeAsPEM().pemString.utf8), format: .pem)
        var override = NIOSSLContextConfigurationOverride()
        override.certificateChain = chain
        override.privateKey = .privateKey(key)
        let leaf = serving.chain[0]
        return Current(
            override: override,
            issued: now,
            notAfter: leaf.notValidAfter,
            serial: leaf.serialNumber.description
        )
    }
}
