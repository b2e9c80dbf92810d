import AmbitIdentity
import FoundationEssentials
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
        /// The CA certificate it was issued from.
        var issuer: Certificate
        var serial: String
    }

    /// The CA in force (it may be replaced while the server runs: ``CAMaterial``).
    private let authority: @Sendable () -> CertificateAuthority
    private let names: [String]
    private let lifetime: Duration
    private let current: Mutex<Current>
    private let expiry: Gauge
    private let renewals: Counter

    /// Issues the first certificate (an error here stops the server from starting).
    init(
        authority: @escaping @Sendable () -> CertificateAuthority,
        names: [String],
        lifetime: Duration,
        registry: PrometheusCollectorRegistry,
        now: Date = Date()
    ) throws {
        self.authority = authority
        self.names = names
        self.lifetime = lifetime
        current = Mutex(try Self.issue(authority: authority(), names: names, lifetime: lifetime, now: now))
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

    /// When the certificate in use expires, and its serial number (hex, as openssl prints it), for logs and dumps.
    var validity: (notAfter: Date, serial: String) { current.withLock { ($0.notAfter, $0.serial) } }

    /// When the certificate in use is due for renewal, two-thirds into its validity; nil when the CA certificate's
    /// own expiry caps it, as renewing would then not move its expiry.
    var renewalTime: Date? {
        let ca = authority().certificate
        return current.withLock { current in
            // Issued by a CA that is no longer in force (a reload whose reissue failed or was overtaken): now.
            guard current.issuer == ca else { return Date() }
            guard current.notAfter < ca.notValidAfter else { return nil }
            return current.issued + current.notAfter.timeIntervalSince(current.issued) * 2 / 3
        }
    }

    /// Renews the certificate whenever it is due, until the task is cancelled. A failed renewal (it should not
    /// fail: the key is local) is logged and retried; the certificate in use serves until it expires. While the CA
    /// certificate's own expiry caps the serving certificate there is nothing to renew into: that is logged once,
    /// and renewal resumes if a reloaded CA lifts the cap. Waits are slept an hour at most at a time, so a
    /// corrected clock and a reloaded CA are seen.
    func renewPeriodically(logger: Logger) async {
        var retry: (failures: Int, at: Date)?
        var warned = false
        while !Task.isCancelled {
            let due: Date
            if let retry {
                due = retry.at
            } else if let renewal = renewalTime {
                due = renewal
                warned = false
            } else {
                if !warned { warnCappedByTheCA(logger: logger) }
                warned = true
                due = Date() + 3600
            }
            let wait = due.timeIntervalSinceNow
            if wait > 0 {
                do {
                    try await Task.sleep(for: .milliseconds(Int64(min(wait, 3600) * 1000)))
                } catch {
                    return
                }
                continue
            }
            do {
                try renew(logger: logger, reason: "renewed the TLS serving certificate")
                retry = nil
            } catch {
                let failures = (retry?.failures ?? 0) + 1
                retry = (failures, Date() + min(Double(failures) * 5, 60))
                logger.error(
                    "cannot renew the TLS serving certificate; the current one serves until it expires",
                    metadata: ["error": "\(error)", "expiry": "\(validity.notAfter)"]
                )
            }
        }
    }

    /// Issues a certificate now, from the CA in force (after a CA reload: the one in use may chain to a CA that
    /// is gone). New handshakes get it at once.
    func renew(logger: Logger, reason: Logger.Message) throws {
        let ca = authority()
        let renewed = try Self.issue(authority: ca, names: names, lifetime: lifetime, now: Date())
        let stored = current.withLock { current in
            // A CA reloaded while this one was issued: not stored (``renewalTime`` is due at once).
            guard authority().certificate == ca.certificate else { return false }
            current = renewed
            return true
        }
        guard stored else { return }
        expiry.set(renewed.notAfter.timeIntervalSince1970)
        renewals.increment()
        logger.info(reason, metadata: ["expiry": "\(renewed.notAfter)", "serial": "\(renewed.serial)"])
    }

    private func warnCappedByTheCA(logger: Logger) {
        let caExpiry = authority().certificate.notValidAfter
        if caExpiry <= Date() {
            logger.error(
                "the CA certificate has expired: no client accepts the TLS serving certificate or what is signed",
                metadata: [
                    "ca_expiry": "\(caExpiry)", "hint": "renew the CA certificate (ambit-ca reloads its directory)",
                ]
            )
        } else {
            logger.warning(
                "the TLS serving certificate expires with the CA certificate and cannot be renewed past it",
                metadata: [
                    "ca_expiry": "\(caExpiry)",
                    "hint": "renew the CA certificate before then (ambit-ca reloads its directory)",
                ]
            )
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
            issuer: authority.certificate,
            // As openssl prints it: upper-case hex digits, two per byte, no separators.
            serial: leaf.serialNumber.bytes.map { byte in
                (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }.joined()
        )
    }
}
