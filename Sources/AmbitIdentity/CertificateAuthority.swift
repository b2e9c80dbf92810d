public import AmbitModel
import Crypto
public import FoundationEssentials
import SwiftASN1
public import X509

/// A local certificate authority: signs workload certificates from CSRs, so a workload's
/// private key never leaves its owner. Used by `ambitctl ca` and by agents in local mode.
///
/// On disk it uses Istio's "plugged-in CA" layout, so existing Istio CA material works:
/// `ca-cert.pem`, `ca-key.pem` (mode 0600), `root-cert.pem`, `cert-chain.pem`.
public struct CertificateAuthority: Sendable {
    public let certificate: Certificate
    /// The signing certificate's chain up to and including the root (just the root when self-signed).
    public let chain: [Certificate]
    public let root: Certificate
    public let trustDomain: String
    /// Module-internal only so that `save(to:)` can write it; it is never logged or sent.
    let privateKey: Certificate.PrivateKey

    public static let certificateFile = "ca-cert.pem"
    public static let keyFile = "ca-key.pem"
    public static let rootFile = "root-cert.pem"
    public static let chainFile = "cert-chain.pem"

    /// Creates a self-signed ECDSA P-256 root for `trustDomain`, named `commonName` (two roots that clients trust
    /// side by side must differ in subject).
    public static func generate(
        trustDomain: String = SpiffeID.defaultTrustDomain,
        commonName: String = "Ambit root CA",
        lifetime: Duration = CertificateProfiles.defaultRootLifetime,
        now: Date = Date()
    ) throws -> CertificateAuthority {
        // Validates the trust domain with the SPIFFE rules.
        _ = try SpiffeID(trustDomain: trustDomain, namespace: "ns", serviceAccount: "sa")
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let name = try DistinguishedName {
            OrganizationName(trustDomain)
            CommonName(commonName)
        }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: key.publicKey,
            notValidBefore: now - CertificateProfiles.clockSkewAllowance,
            notValidAfter: now + lifetime.timeInterval,
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: CertificateProfiles.rootExtensions(publicKey: key.publicKey),
            issuerPrivateKey: key
        )
        return try CertificateAuthority(
            certificate: certificate,
            privateKey: key,
            chain: [certificate],
            trustDomain: trustDomain
        )
    }

    /// A CA from its certificate, key and chain. Checks that the key matches and the
    /// certificate may sign certificates.
    public init(certificate: Certificate, privateKey: Certificate.PrivateKey, chain: [Certificate], trustDomain: String)
        throws
    {
        guard privateKey.publicKey == certificate.publicKey else {
            throw IdentityError(.caInvalid, "the CA private key does not belong to the CA certificate")
        }
        guard let constraints = try? certificate.extensions.basicConstraints,
            case .isCertificateAuthority = constraints
        else {
            throw IdentityError(.caInvalid, "the CA certificate is not a CA (basicConstraints CA:TRUE is missing)")
        }
        self.certificate = certificate
        self.privateKey = privateKey
        self.chain = chain.isEmpty ? [certificate] : chain
        self.root = self.chain.last!
        self.trustDomain = trustDomain
    }

    /// Signs a workload CSR after checking it: valid signature, ECDSA P-256 key, exactly one
    /// SPIFFE URI SAN in this CA's trust domain. `allowed` lets the caller restrict which
    /// identities the requester may obtain (a node agent only gets its own pods' identities).
    /// Returns the leaf followed by the CA chain.
    public func sign(
        _ request: CertificateSigningRequest,
        lifetime: Duration = CertificateProfiles.defaultLeafLifetime,
        now: Date = Date(),
        allowed: (SpiffeID) -> Bool = { _ in true }
    ) throws -> [Certificate] {
        let identity = try Self.validate(request)
        guard identity.trustDomain == trustDomain else {
            throw IdentityError(
                .identityNotAllowed,
                "requested identity \(identity) is outside the trust domain \"\(trustDomain)\""
            )
        }
        guard allowed(identity) else {
            throw IdentityError(.identityNotAllowed, "the requester may not obtain identity \(identity)")
        }
        guard certificate.notValidAfter > now else {
            throw IdentityError(.caInvalid, "the CA certificate expired at \(certificate.notValidAfter); rotate the CA")
        }
        let notAfter = min(now + lifetime.timeInterval, certificate.notValidAfter)
        do {
            let leaf = try Certificate(
                version: .v3,
                serialNumber: Certificate.SerialNumber(),
                publicKey: request.publicKey,
                notValidBefore: now - CertificateProfiles.clockSkewAllowance,
                notValidAfter: notAfter,
                issuer: certificate.subject,
                subject: DistinguishedName(),
                // ECDSA with SHA-256 for a P-256 CA key, SHA-256 with RSA for an RSA one (Istio's cacerts).
                extensions: CertificateProfiles.leafExtensions(identity: identity, issuer: certificate),
                issuerPrivateKey: privateKey
            )
            return [leaf] + chain
        } catch {
            throw IdentityError(.signingFailed, "signing the certificate for \(identity) failed: \(error)")
        }
    }

    /// The identity a CSR asks for, once its signature, key type and SAN are checked.
    public static func validate(_ request: CertificateSigningRequest) throws -> SpiffeID {
        guard request.publicKey.isValidSignature(request.signature, for: request) else {
            throw IdentityError(.invalidRequest, "the CSR signature does not verify")
        }
        guard P256.Signing.PublicKey(request.publicKey) != nil else {
            throw IdentityError(.invalidRequest, "the CSR key must be ECDSA P-256")
        }
        let extensions = try request.attributes.extensionRequest?.extensions ?? Certificate.Extensions()
        guard let names = try extensions.subjectAlternativeNames else {
            throw IdentityError(
                .invalidRequest,
                "the CSR requests no subject alternative name; it must request one SPIFFE URI"
            )
        }
        return try CertificateProfiles.singleSpiffeID(in: names, what: "the CSR")
    }
}

extension Duration {
    /// The duration in seconds, as Foundation counts them.
    public var timeInterval: TimeInterval {
        let (seconds, attoseconds) = components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}
