public import AmbitModel
import Crypto
public import FoundationEssentials
public import X509

/// The certificates Ambit issues, following docs/protocols.md and Istio's profiles:
///
/// - root: ECDSA P-256, self-signed, CA:TRUE (critical), keyCertSign + cRLSign (critical),
///   subject `O=<trust domain>, CN=Ambit root CA`, 10 years by default;
/// - workload leaf: ECDSA P-256 with SHA-256, empty subject, exactly one URI SAN (critical, as
///   an empty subject requires), CA:FALSE, digitalSignature + keyEncipherment, serverAuth +
///   clientAuth, 24 hours by default, back-dated two minutes for clock skew.
public enum CertificateProfiles {
    public static let defaultLeafLifetime: Duration = .seconds(24 * 3600)
    public static let defaultRootLifetime: Duration = .seconds(10 * 365 * 24 * 3600)
    /// Istio back-dates leaves by two minutes so peers with a slightly slow clock accept them.
    public static let clockSkewAllowance: TimeInterval = 120

    static func rootExtensions(publicKey: Certificate.PublicKey) throws -> Certificate.Extensions {
        try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
            Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            SubjectKeyIdentifier(hash: publicKey)
        }
    }

    static func leafExtensions(identity: SpiffeID, issuer: Certificate) throws -> Certificate.Extensions {
        let authorityKey =
            try issuer.extensions.subjectKeyIdentifier?.keyIdentifier
            ?? SubjectKeyIdentifier(hash: issuer.publicKey).keyIdentifier
        return try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
            try ExtendedKeyUsage([.serverAuth, .clientAuth])
            Critical(SubjectAlternativeNames([.uniformResourceIdentifier(identity.uri)]))
            AuthorityKeyIdentifier(keyIdentifier: authorityKey)
        }
    }

    /// A CSR for `identity` signed with `privateKey`: empty subject, the SPIFFE URI requested as SAN.
    public static func signingRequest(for identity: SpiffeID, privateKey: Certificate.PrivateKey) throws
        -> CertificateSigningRequest
    {
        let extensions = try Certificate.Extensions {
            Critical(SubjectAlternativeNames([.uniformResourceIdentifier(identity.uri)]))
        }
        return try CertificateSigningRequest(
            version: .v1,
            subject: DistinguishedName(),
            privateKey: privateKey,
            attributes: CertificateSigningRequest.Attributes([.init(ExtensionRequest(extensions: extensions))])
        )
    }

    /// The single SPIFFE identity in a certificate's URI SANs, or why there is none.
    public static func spiffeIdentity(of certificate: Certificate) throws -> SpiffeID {
        let names = try certificate.extensions.subjectAlternativeNames ?? SubjectAlternativeNames()
        return try singleSpiffeID(in: names, what: "certificate")
    }

    static func singleSpiffeID(in names: SubjectAlternativeNames, what: String) throws -> SpiffeID {
        var uris: [String] = []
        for name in names {
            guard case .uniformResourceIdentifier(let uri) = name else {
                throw IdentityError(
                    .invalidRequest,
                    "\(what) has a non-URI subject alternative name (\(name)); only one SPIFFE URI is allowed"
                )
            }
            uris.append(uri)
        }
        guard uris.count == 1 else {
            throw IdentityError(.invalidRequest, "\(what) must carry exactly one URI SAN, found \(uris.count)")
        }
        do {
            return try SpiffeID(parsing: uris[0])
        } catch {
            throw IdentityError(.invalidRequest, "\(what): \(error)")
        }
    }
}
