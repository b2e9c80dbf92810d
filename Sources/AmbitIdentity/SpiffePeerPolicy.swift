public import AmbitModel
public import FoundationEssentials
public import SwiftASN1
@_spi(FixedExpiryValidationTime) public import X509

/// Accepts a peer certificate chain only if its leaf names exactly one SPIFFE identity in the
/// mesh's trust domain and, when `expected` is given, that identity is one of them (the client's
/// check of the server it dialled). Combine with `RFC5280Policy` for signatures and validity.
public struct SpiffePeerPolicy: VerifierPolicy {
    public let trustDomain: String
    public let expected: Set<SpiffeID>?

    /// The leaf's SAN is critical (its subject is empty); this policy is what understands it.
    public let verifyingCriticalExtensions: [ASN1ObjectIdentifier] = [.X509ExtensionID.subjectAlternativeName]

    public init(trustDomain: String, expected: Set<SpiffeID>? = nil) {
        self.trustDomain = trustDomain
        self.expected = expected
    }

    public mutating func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) async -> PolicyEvaluationResult
    {
        let identity: SpiffeID
        do {
            identity = try CertificateProfiles.spiffeIdentity(of: chain.leaf)
        } catch {
            return .failsToMeetPolicy(reason: "peer certificate: \(error)")
        }
        let trustDomain = self.trustDomain
        guard identity.trustDomain == trustDomain else {
            return .failsToMeetPolicy(reason: "peer identity \(identity) is not in trust domain \"\(trustDomain)\"")
        }
        if let reason = Self.mismatch(identity, expected: expected) {
            return .failsToMeetPolicy(reason: reason)
        }
        return .meetsPolicy
    }

    /// Why `identity` is refused when only `expected` are (nil: it is not).
    public static func mismatch(_ identity: SpiffeID, expected: Set<SpiffeID>?) -> String? {
        guard let expected, !expected.contains(identity) else { return nil }
        let names = expected.sorted().map(\.uri).joined(separator: ", ")
        return "peer identity \(identity) is not one of the expected identities (\(names))"
    }
}

/// Verifies a peer's chain against the mesh roots at a point in time, returning its identity.
public enum SpiffePeerVerifier {
    public enum Outcome: Sendable {
        case verified(SpiffeID, chain: [Certificate])
        case rejected(String)
    }

    public static func verify(
        leaf: Certificate,
        intermediates: [Certificate],
        roots: [Certificate],
        trustDomain: String,
        expected: Set<SpiffeID>? = nil,
        at time: Date = Date()
    ) async -> Outcome {
        var verifier = Verifier(rootCertificates: CertificateStore(roots)) {
            RFC5280Policy(fixedExpiryValidationTime: time)
            SpiffePeerPolicy(trustDomain: trustDomain, expected: expected)
        }
        switch await verifier.validate(leaf: leaf, intermediates: CertificateStore(intermediates)) {
        case .validCertificate(let chain):
            guard let identity = try? CertificateProfiles.spiffeIdentity(of: leaf) else {
                return .rejected("peer certificate has no SPIFFE identity")
            }
            return .verified(identity, chain: Array(chain))
        case .couldNotValidate(let failures):
            if failures.isEmpty {
                return .rejected("peer certificate does not chain to a trusted mesh root")
            }
            return .rejected(failures.map { "\($0.policyFailureReason)" }.joined(separator: "; "))
        }
    }
}
