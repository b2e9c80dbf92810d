public import AmbitIdentity
public import AmbitModel
import Crypto
public import Foundation
import X509

/// An in-code CA at a fixed reference time, so certificate tests never depend on the clock
/// or on PEM fixtures that expire.
public struct TestPKI: Sendable {
    /// 2027-01-15T08:00:00Z.
    public static let referenceTime = Date(timeIntervalSince1970: 1_800_000_000)

    public let authority: CertificateAuthority

    public init(trustDomain: String = SpiffeID.defaultTrustDomain, now: Date = TestPKI.referenceTime) throws {
        authority = try CertificateAuthority.generate(trustDomain: trustDomain, now: now)
    }

    /// A workload certificate for `identity`, through the same CSR path production uses.
    public func issue(
        _ identity: SpiffeID,
        lifetime: Duration = .seconds(24 * 3600),
        now: Date = TestPKI.referenceTime
    ) throws -> WorkloadCertificate {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let request = try CertificateProfiles.signingRequest(for: identity, privateKey: key)
        let chain = try authority.sign(request, lifetime: lifetime, now: now)
        return try WorkloadCertificate(identity: identity, chain: chain, privateKey: key)
    }
}

extension SpiffeID {
    /// `spiffe://cluster.local/ns/<namespace>/sa/<account>`, for tests with literal, valid names.
    public static func test(_ namespace: String, _ account: String, trustDomain: String = SpiffeID.defaultTrustDomain)
        -> SpiffeID
    {
        do {
            return try SpiffeID(trustDomain: trustDomain, namespace: namespace, serviceAccount: account)
        } catch {
            preconditionFailure("invalid test identity: \(error)")
        }
    }
}
