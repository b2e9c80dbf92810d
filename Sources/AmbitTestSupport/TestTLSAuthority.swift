import Crypto
import Foundation
import SwiftASN1
import X509

/// A plain TLS CA for test servers that are not mesh workloads (a fake Kubernetes API server):
/// server certificates with DNS and IP names, client certificates with a common name. Valid
/// from an hour ago for a day, because TLS libraries check against the real clock.
public struct TestTLSAuthority: Sendable {
    public struct Issued: Sendable {
        public let certificatePEM: String
        public let privateKeyPEM: String
    }

    private let key: Certificate.PrivateKey
    private let certificate: Certificate
    public let certificatePEM: String

    public init(name: String = "ambit test CA") throws {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let subject = try DistinguishedName { CommonName(name) }
        let now = Date()
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: key.publicKey,
            notValidBefore: now - 3600,
            notValidAfter: now + 86400,
            issuer: subject,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: key.publicKey)
            },
            issuerPrivateKey: key
        )
        self.key = key
        self.certificate = certificate
        certificatePEM = try certificate.serializeAsPEM().pemString
    }

    /// A server certificate for `dnsNames` and `ipAddresses` (dotted IPv4).
    public func server(dnsNames: [String] = ["localhost"], ipAddresses: [String] = ["127.0.0.1"]) throws -> Issued {
        var names: [GeneralName] = dnsNames.map { .dnsName($0) }
        for address in ipAddresses {
            let octets = address.split(separator: ".").compactMap { UInt8($0) }
            precondition(octets.count == 4, "IPv4 only: \(address)")
            names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(octets))))
        }
        return try issue(
            commonName: dnsNames.first ?? "server",
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(names)
            }
        )
    }

    /// A client certificate with `commonName` (and organisations, as Kubernetes reads user and groups).
    public func client(commonName: String, organizations: [String] = []) throws -> Issued {
        try issue(
            commonName: commonName,
            organizations: organizations,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.clientAuth])
            }
        )
    }

    private func issue(commonName: String, organizations: [String] = [], extensions: Certificate.Extensions) throws
        -> Issued
    {
        let leafKey = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let subject = try DistinguishedName {
            for organization in organizations { OrganizationName(organization) }
            CommonName(commonName)
        }
        let now = Date()
        let leaf = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: leafKey.publicKey,
            notValidBefore: now - 3600,
            notValidAfter: now + 86400,
            issuer: certificate.subject,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions,
            issuerPrivateKey: key
        )
        return Issued(
            certificatePEM: try leaf.serializeAsPEM().pemString,
            privateKeyPEM: try leafKey.serializeAsPEM().pemString
        )
    }
}
