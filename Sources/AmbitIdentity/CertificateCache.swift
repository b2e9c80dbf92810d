public import AmbitModel
import FoundationEssentials
import Synchronization

/// Certificates by identity, readable synchronously (a TLS handshake asks for one per
/// connection); filled and refreshed from the ``CertificateManager``.
public final class CertificateCache: Sendable {
    public init() {}

    private let storage = Mutex<[SpiffeID: WorkloadCertificate]>([:])

    public func current(_ identity: SpiffeID) -> WorkloadCertificate? {
        storage.withLock { $0[identity] }.flatMap { $0.isValid(at: Date()) ? $0 : nil }
    }

    public func store(_ certificate: WorkloadCertificate) {
        storage.withLock { $0[certificate.identity] = certificate }
    }
}
