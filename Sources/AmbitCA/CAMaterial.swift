import AmbitIdentity
import Crypto
import FoundationEssentials
import Logging
import Prometheus
import Synchronization
import X509

/// The CA that `ambit-ca` signs with, read from its directory at start and read again whenever the directory's
/// files change, as istiod does with a plugged-in `cacerts` Secret: an intermediate, its key or the whole CA can
/// be replaced without a restart. A directory that does not load or does not hold together (a key that does not
/// match its certificate, a chain mixed from two CAs in the middle of an update, an expired CA certificate)
/// changes nothing: the previous CA keeps signing, the error is logged once per content, and the next change is
/// tried again.
final class CAMaterial: Sendable {
    enum Outcome: Equatable {
        case unchanged
        case reloaded
        case failed(String)
    }

    let directory: String
    let trustDomain: String
    private struct State {
        var authority: CertificateAuthority
        /// What the files held when last read (loaded or not).
        var fingerprint: [UInt8]
    }

    private let state: Mutex<State>
    private let rootExpiry: Gauge
    private let registry: PrometheusCollectorRegistry

    init(directory: String, trustDomain: String, registry: PrometheusCollectorRegistry) throws {
        self.directory = directory
        self.trustDomain = trustDomain
        self.registry = registry
        let fingerprint = Self.fingerprint(of: directory)
        let authority = try CertificateAuthority.load(directory: directory, trustDomain: trustDomain)
        state = Mutex(State(authority: authority, fingerprint: fingerprint))
        rootExpiry = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                metricName: "citadel_server_root_cert_expiry_timestamp",
                helpText: "Unix time at which the root certificate expires"
            )
        )
        rootExpiry.set(authority.root.notValidAfter.timeIntervalSince1970)
        for result in ["success", "failure"] { _ = reloads(result) }
    }

    /// The CA in force.
    var authority: CertificateAuthority { state.withLock { $0.authority } }

    /// Reads the directory again if its files changed since they were last read.
    func reloadIfChanged(logger: Logger) -> Outcome {
        let fingerprint = Self.fingerprint(of: directory)
        let previous = state.withLock { state -> CertificateAuthority? in
            guard state.fingerprint != fingerprint else { return nil }
            state.fingerprint = fingerprint
            return state.authority
        }
        guard let previous else { return .unchanged }
        let loaded: CertificateAuthority
        do {
            loaded = try CertificateAuthority.load(directory: directory, trustDomain: trustDomain)
            try Self.check(loaded, now: Date())
        } catch {
            lookAgainIfChangedSince(fingerprint)
            reloads("failure").increment()
            logger.error(
                "cannot reload the CA; still signing with the previous one",
                metadata: ["directory": "\(directory)", "error": "\(error)"]
            )
            return .failed("\(error)")
        }
        state.withLock { $0.authority = loaded }
        lookAgainIfChangedSince(fingerprint)
        rootExpiry.set(loaded.root.notValidAfter.timeIntervalSince1970)
        reloads("success").increment()
        logger.info(
            "reloaded the CA",
            metadata: [
                "directory": "\(directory)", "subject": "\(loaded.certificate.subject)",
                "expiry": "\(loaded.certificate.notValidAfter)",
            ]
        )
        if loaded.root != previous.root {
            logger.warning(
                "the CA's root changed: only clients that already trust the new root accept what it signs",
                metadata: ["root": "\(loaded.root.subject)", "hint": "list the new root in every --ca-roots first"]
            )
        }
        return .reloaded
    }

    /// The files changed again while they were being read: the next look reads them again, whatever this read
    /// made of them (the fingerprint and the files loaded must be of the same content).
    private func lookAgainIfChangedSince(_ fingerprint: [UInt8]) {
        guard Self.fingerprint(of: directory) != fingerprint else { return }
        state.withLock { $0.fingerprint = [] }
    }

    /// What a CA read while the service runs must be before it replaces the one in force, beyond loading: each
    /// certificate of its chain signed by the next one (files of two CAs, caught in the middle of an update, are
    /// not), and its certificate valid now.
    static func check(_ authority: CertificateAuthority, now: Date) throws {
        for (certificate, issuer) in zip(authority.chain, authority.chain.dropFirst())
        where !issuer.publicKey.isValidSignature(certificate.signature, for: certificate) {
            throw IdentityError(
                .caInvalid,
                "\(certificate.subject) is not signed by the next certificate of its chain, \(issuer.subject) "
                    + "(files of two different CAs?)"
            )
        }
        let certificate = authority.certificate
        guard certificate.notValidAfter > now else {
            throw IdentityError(.caInvalid, "the CA certificate expired at \(certificate.notValidAfter)")
        }
        guard certificate.notValidBefore <= now + CertificateProfiles.clockSkewAllowance else {
            throw IdentityError(.caInvalid, "the CA certificate is not valid before \(certificate.notValidBefore)")
        }
    }

    /// Looks at the directory every `interval` until cancelled; `reloaded` runs after each CA that took effect.
    func watch(every interval: Duration, logger: Logger, reloaded: @Sendable () -> Void) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            if reloadIfChanged(logger: logger) == .reloaded { reloaded() }
        }
    }

    private func reloads(_ result: String) -> Counter {
        registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "ambit_ca_reloads",
                unitName: "total",
                helpText: "Changes of the CA directory read again, by result (a failure keeps the previous CA)"
            ),
            labels: [("result", result)]
        )
    }

    /// A digest of the CA files' names and contents (a missing file counts as absent). A Kubernetes Secret
    /// volume swaps all of them at once; a hand edit may be caught half-done, fail to load, and be tried again
    /// once it changes again.
    static func fingerprint(of directory: String) -> [UInt8] {
        var hasher = SHA256()
        for file in [
            CertificateAuthority.certificateFile, CertificateAuthority.keyFile, CertificateAuthority.chainFile,
            CertificateAuthority.rootFile,
        ] {
            hasher.update(data: Array(file.utf8))
            if let contents = FileManager.default.contents(atPath: directory + "/" + file) {
                hasher.update(data: [1] + withUnsafeBytes(of: UInt64(contents.count).littleEndian, Array.init))
                hasher.update(data: contents)
            } else {
                hasher.update(data: [0])
            }
        }
        return Array(hasher.finalize())
    }
}
