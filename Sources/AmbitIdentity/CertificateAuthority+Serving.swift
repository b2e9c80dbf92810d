public import AmbitModel
import Crypto
public import FoundationEssentials
import SwiftASN1
public import X509

extension CertificateAuthority {
    /// A TLS server certificate for a service of the mesh's control plane (the CA service itself): a
    /// fresh P-256 key made here, `names` as DNS SANs (IP literals as IP SANs), serverAuth only, issued
    /// by this CA so that clients verify it with the mesh roots. Returns the chain (leaf first) and key.
    public func servingCertificate(
        names: [String],
        lifetime: Duration,
        now: Date = Date()
    ) throws -> (chain: [Certificate], privateKey: Certificate.PrivateKey) {
        guard !names.isEmpty else {
            throw IdentityError(.invalidRequest, "a serving certificate needs at least one DNS name or IP address")
        }
        let alternativeNames: [GeneralName] = names.map { name in
            if let address = IPAddress(name) {
                return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(address.bytes)))
            }
            return .dnsName(name)
        }
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let notAfter = min(now + lifetime.timeInterval, certificate.notValidAfter)
        do {
            let leaf = try Certificate(
                version: .v3,
                serialNumber: Certificate.SerialNumber(),
                publicKey: key.publicKey,
                notValidBefore: now - CertificateProfiles.clockSkewAllowance,
                notValidAfter: notAfter,
                issuer: certificate.subject,
                subject: try DistinguishedName { CommonName(names[0]) },
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                    try ExtendedKeyUsage([.serverAuth])
                    SubjectAlternativeNames(alternativeNames)
                },
                issuerPrivateKey: privateKey
            )
            return ([leaf] + chain, key)
        } catch {
            throw IdentityError(.signingFailed, "issuing the serving certificate for \(names) failed: \(error)")
        }
    }
}
