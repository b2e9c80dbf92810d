public import AmbitModel
import Crypto
public import FoundationEssentials
public import Logging
public import X509

/// What the manager knows about one identity, for the admin dump and metrics.
public struct CertificateStatus: Hashable, Sendable {
    public let identity: SpiffeID
    public let expiry: Date?
    public let renewalTime: Date?
    public let nextAttempt: Date
    public let consecutiveFailures: Int
    public let lastError: String?
}

/// Obtains and renews workload certificates.
///
/// For each identity it generates a P-256 key in this process, sends only a CSR to the signer,
/// renews at half-life with a fresh key, and on failure retries with exponential backoff while
/// it keeps serving the previous certificate until that one expires. After expiry no
/// certificate is served at all, so connections fail closed.
public actor CertificateManager {
    private let signer: any CertificateSigner
    private let lifetime: Duration
    private let backoff: RetryBackoff
    private let metrics: CertificateMetrics?
    private let logger: Logger
    private let now: @Sendable () -> Date
    private let onIssued: @Sendable (WorkloadCertificate) -> Void
    private var entries: [SpiffeID: Entry] = [:]

    private struct Entry {
        var certificate: WorkloadCertificate?
        var failures = 0
        var nextAttempt: Date
        var lastError: String?
        var pending: Task<WorkloadCertificate, any Error>?
    }

    public init(
        signer: any CertificateSigner,
        lifetime: Duration = CertificateProfiles.defaultLeafLifetime,
        backoff: RetryBackoff = RetryBackoff(),
        metrics: CertificateMetrics? = nil,
        logger: Logger,
        now: @escaping @Sendable () -> Date = { Date() },
        onIssued: @escaping @Sendable (WorkloadCertificate) -> Void = { _ in }
    ) {
        self.onIssued = onIssued
        self.signer = signer
        self.lifetime = lifetime
        self.backoff = backoff
        self.metrics = metrics
        self.logger = logger
        self.now = now
    }

    /// The roots peer certificates must chain to.
    public nonisolated var trustAnchors: [Certificate] { signer.trustAnchors }

    /// A valid certificate for `identity`, requesting one first if there is none. Concurrent
    /// callers share one request.
    public func certificate(for identity: SpiffeID) async throws -> WorkloadCertificate {
        if let certificate = currentCertificate(for: identity) { return certificate }
        return try await refresh(identity)
    }

    /// The certificate in force for `identity`, or `nil` when there is none or it has expired.
    public func currentCertificate(for identity: SpiffeID) -> WorkloadCertificate? {
        guard let certificate = entries[identity]?.certificate, certificate.isValid(at: now()) else { return nil }
        return certificate
    }

    /// Closes the signer (its connection to a CA service): at shutdown, before the event loops stop.
    public func close() async {
        for entry in entries.values { entry.pending?.cancel() }
        await signer.close()
    }

    /// Stops managing `identity` (its last pod left the node).
    public func forget(_ identity: SpiffeID) {
        entries.removeValue(forKey: identity)?.pending?.cancel()
        metrics?.remove(identity)
    }

    public func status() -> [CertificateStatus] {
        entries.keys.sorted().map { identity in
            let entry = entries[identity]!
            return CertificateStatus(
                identity: identity,
                expiry: entry.certificate?.expiry,
                renewalTime: entry.certificate?.renewalTime,
                nextAttempt: entry.nextAttempt,
                consecutiveFailures: entry.failures,
                lastError: entry.lastError
            )
        }
    }

    /// Renews every certificate whose renewal (or retry) time has come. Returns when the next
    /// one falls due, if any identity is managed.
    @discardableResult
    public func renewDue() async -> Date? {
        let current = now()
        for (identity, entry) in entries where entry.nextAttempt <= current && entry.pending == nil {
            _ = try? await refresh(identity)
        }
        return entries.values.map(\.nextAttempt).min()
    }

    /// Renews certificates as they fall due until the task is cancelled.
    public func run() async {
        while !Task.isCancelled {
            let next = await renewDue()
            let wait = next.map { max(0.01, min($0.timeIntervalSince(now()), 1)) } ?? 1
            do {
                try await Task.sleep(for: .milliseconds(Int(wait * 1000)))
            } catch {
                return
            }
        }
    }

    private func refresh(_ identity: SpiffeID) async throws -> WorkloadCertificate {
        if let pending = entries[identity]?.pending {
            return try await pending.value
        }
        let signer = self.signer
        let lifetime = self.lifetime
        let task = Task<WorkloadCertificate, any Error> {
            let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
            let request = try CertificateProfiles.signingRequest(for: identity, privateKey: key)
            let chain = try await signer.sign(request, lifetime: lifetime)
            return try WorkloadCertificate(identity: identity, chain: chain, privateKey: key)
        }
        entries[identity, default: Entry(nextAttempt: now())].pending = task
        do {
            let certificate = try await task.value
            guard entries[identity] != nil else { throw CancellationError() }  // forgotten meanwhile
            entries[identity]!.pending = nil
            entries[identity]!.certificate = certificate
            entries[identity]!.failures = 0
            entries[identity]!.lastError = nil
            entries[identity]!.nextAttempt = certificate.renewalTime
            metrics?.issued(certificate)
            onIssued(certificate)
            logger.info(
                "certificate issued",
                metadata: [
                    "identity": "\(identity)", "expiry": "\(certificate.expiry)",
                    "renewal": "\(certificate.renewalTime)",
                ]
            )
            return certificate
        } catch {
            guard entries[identity] != nil else { throw error }
            entries[identity]!.pending = nil
            entries[identity]!.failures += 1
            let failures = entries[identity]!.failures
            let delay = backoff.delay(afterFailures: failures)
            entries[identity]!.nextAttempt = now() + delay.timeInterval
            entries[identity]!.lastError = "\(error)"
            metrics?.failed(identity)
            let serving =
                entries[identity]!.certificate.map { "keeping the current certificate until \($0.expiry)" }
                ?? "no certificate to serve meanwhile"
            logger.error(
                "certificate request failed; retrying in \(delay) (\(serving))",
                metadata: ["identity": "\(identity)", "failures": "\(failures)", "error": "\(error)"]
            )
            // Whatever the signer threw (a CA's gRPC status, a malformed answer), callers see an identity failure.
            throw error as? IdentityError ?? IdentityError(.signingFailed, "no certificate for \(identity): \(error)")
        }
    }
}

extension CertificateManager {
    /// One line per identity whose last request failed (the CA unreachable or refusing), saying what is
    /// served meanwhile: for readiness pages, where an operator looks first.
    public func problems() -> [String] {
        status().compactMap { status in
            guard status.consecutiveFailures > 0 else { return nil }
            let serving =
                status.expiry.map { $0 > now() ? "serving the current one until \($0)" : "the current one expired" }
                ?? "none issued yet"
            return
                "certificate \(status.identity): \(status.consecutiveFailures) request(s) failed (\(status.lastError ?? "?")); \(serving)"
        }
    }
}
