public import AmbitModel
public import FoundationEssentials
public import X509

/// A workload's certificate chain and the private key that never left this process.
public struct WorkloadCertificate: Sendable {
    public let identity: SpiffeID
    /// Leaf first, then intermediates and the root.
    public let chain: [Certificate]
    public let privateKey: Certificate.PrivateKey

    public init(identity: SpiffeID, chain: [Certificate], privateKey: Certificate.PrivateKey) throws {
        guard let leaf = chain.first else {
            throw IdentityError(.invalidCertificate, "the CA returned an empty chain for \(identity)")
        }
        guard leaf.publicKey == privateKey.publicKey else {
            throw IdentityError(
                .invalidCertificate,
                "the CA returned a certificate for another key than the one requested for \(identity)"
            )
        }
        let issued = try CertificateProfiles.spiffeIdentity(of: leaf)
        guard issued == identity else {
            throw IdentityError(.invalidCertificate, "the CA issued \(issued) where \(identity) was requested")
        }
        self.identity = identity
        self.chain = chain
        self.privateKey = privateKey
    }

    public var leaf: Certificate { chain[0] }
    public var notBefore: Date { leaf.notValidBefore }
    public var expiry: Date { leaf.notValidAfter }

    /// Half-way through the validity period, when renewal should start.
    public var renewalTime: Date {
        notBefore + expiry.timeIntervalSince(notBefore) / 2
    }

    public func isValid(at date: Date) -> Bool {
        date >= notBefore && date < expiry
    }
}
