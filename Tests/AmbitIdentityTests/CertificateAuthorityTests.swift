import AmbitIdentity
import AmbitModel
import AmbitTestSupport
import Crypto
import Foundation
import SwiftASN1
import Testing
import X509

@Suite struct CertificateAuthorityTests {
    let now = TestPKI.referenceTime

    @Test func rootFollowsTheProfile() throws {
        let authority = try CertificateAuthority.generate(trustDomain: "example.org", now: now)
        let root = authority.certificate
        #expect(root.subject == root.issuer)
        #expect(root.subject.description == "CN=Ambit root CA,O=example.org")
        #expect(try root.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: nil))
        #expect(try root.extensions.keyUsage == KeyUsage(keyCertSign: true, cRLSign: true))
        #expect(root.extensions.first { $0.oid == .X509ExtensionID.basicConstraints }?.critical == true)
        #expect(P256.Signing.PublicKey(root.publicKey) != nil)
        #expect(root.notValidAfter.timeIntervalSince(now) == 10 * 365 * 24 * 3600)
        #expect(authority.trustDomain == "example.org")
    }

    @Test func leafFollowsTheProfile() throws {
        let pki = try TestPKI()
        let identity = SpiffeID.test("demo", "client")
        let certificate = try pki.issue(identity, now: now)
        let leaf = certificate.leaf
        #expect(leaf.subject == DistinguishedName())
        #expect(leaf.signatureAlgorithm == .ecdsaWithSHA256)
        #expect(try leaf.extensions.basicConstraints == .notCertificateAuthority)
        #expect(try leaf.extensions.keyUsage == KeyUsage(digitalSignature: true, keyEncipherment: true))
        #expect(try leaf.extensions.extendedKeyUsage == ExtendedKeyUsage([.serverAuth, .clientAuth]))
        #expect(
            try leaf.extensions.subjectAlternativeNames
                == SubjectAlternativeNames([.uniformResourceIdentifier(identity.uri)])
        )
        #expect(leaf.extensions.first { $0.oid == .X509ExtensionID.subjectAlternativeName }?.critical == true)
        #expect(
            try leaf.extensions.authorityKeyIdentifier?.keyIdentifier
                == pki.authority.certificate.extensions.subjectKeyIdentifier?.keyIdentifier
        )
        #expect(leaf.notValidBefore == now - 120)
        #expect(leaf.notValidAfter == now + 24 * 3600)
        #expect(certificate.renewalTime == now - 120 + (24 * 3600 + 120) / 2)
        #expect(certificate.chain.count == 2)
    }

    @Test func leafVerifiesAgainstTheRoot() async throws {
        let pki = try TestPKI()
        let certificate = try pki.issue(.test("demo", "server"), now: now)
        let outcome = await SpiffePeerVerifier.verify(
            leaf: certificate.leaf,
            intermediates: [],
            roots: [pki.authority.root],
            trustDomain: "cluster.local",
            expected: [.test("demo", "server")],
            at: now + 60
        )
        guard case .verified(let identity, let chain) = outcome else {
            Issue.record("chain did not validate: \(outcome)")
            return
        }
        #expect(identity == .test("demo", "server"))
        #expect(chain == [certificate.leaf, pki.authority.root])
    }

    @Test func peerVerificationRejectsWhatItMust() async throws {
        let pki = try TestPKI()
        let other = try TestPKI()
        let foreign = try TestPKI(trustDomain: "evil.org")
        let server = try pki.issue(.test("demo", "server"), now: now)
        func verify(
            _ certificate: WorkloadCertificate,
            roots: [Certificate],
            expected: Set<SpiffeID>? = nil,
            at time: Date
        )
            async -> String
        {
            let outcome = await SpiffePeerVerifier.verify(
                leaf: certificate.leaf,
                intermediates: [],
                roots: roots,
                trustDomain: "cluster.local",
                expected: expected,
                at: time
            )
            if case .rejected(let reason) = outcome { return reason }
            return "verified"
        }
        #expect(await verify(server, roots: [pki.authority.root], at: now + 60) == "verified")
        #expect(
            await verify(server, roots: [other.authority.root], at: now + 60)
                == "peer certificate does not chain to a trusted mesh root"
        )
        #expect(await verify(server, roots: [pki.authority.root], at: now + 25 * 3600).contains("expired"))
        #expect(
            await verify(server, roots: [pki.authority.root], expected: [.test("demo", "client")], at: now + 60)
                == "peer identity spiffe://cluster.local/ns/demo/sa/server is not one of the expected identities (spiffe://cluster.local/ns/demo/sa/client)"
        )
        let stranger = try foreign.issue(.test("demo", "server", trustDomain: "evil.org"), now: now)
        #expect(
            await verify(stranger, roots: [foreign.authority.root], at: now + 60)
                == "peer identity spiffe://evil.org/ns/demo/sa/server is not in trust domain \"cluster.local\""
        )
    }

    @Test func leafLifetimeIsCappedByTheCA() throws {
        let authority = try CertificateAuthority.generate(lifetime: .seconds(3600), now: now)
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let request = try CertificateProfiles.signingRequest(for: .test("a", "b"), privateKey: key)
        let chain = try authority.sign(request, lifetime: .seconds(24 * 3600), now: now)
        #expect(chain[0].notValidAfter == authority.certificate.notValidAfter)
    }

    static func request(uris: [String], key: Certificate.PrivateKey = Certificate.PrivateKey(P256.Signing.PrivateKey()))
        throws -> CertificateSigningRequest
    {
        let extensions = try Certificate.Extensions {
            SubjectAlternativeNames(uris.map { .uniformResourceIdentifier($0) })
        }
        return try CertificateSigningRequest(
            version: .v1,
            subject: DistinguishedName(),
            privateKey: key,
            attributes: CertificateSigningRequest.Attributes([.init(ExtensionRequest(extensions: extensions))])
        )
    }

    @Test func refusesBadRequests() throws {
        let pki = try TestPKI()
        let cases: [(CertificateSigningRequest, String)] = [
            (try Self.request(uris: []), "the CSR must carry exactly one URI SAN, found 0"),
            (
                try Self.request(uris: ["spiffe://cluster.local/ns/a/sa/b", "spiffe://cluster.local/ns/a/sa/c"]),
                "the CSR must carry exactly one URI SAN, found 2"
            ),
            (
                try Self.request(uris: ["https://example.com"]),
                "the CSR: invalid SPIFFE ID \"https://example.com\": must start with \"spiffe://\""
            ),
            (
                try Self.request(uris: ["spiffe://evil.org/ns/a/sa/b"]),
                "requested identity spiffe://evil.org/ns/a/sa/b is outside the trust domain \"cluster.local\""
            ),
            (
                try Self.request(
                    uris: ["spiffe://cluster.local/ns/a/sa/b"],
                    key: Certificate.PrivateKey(P384.Signing.PrivateKey())
                ),
                "the CSR key must be ECDSA P-256"
            ),
        ]
        for (request, message) in cases {
            #expect(throws: IdentityError.self) { try pki.authority.sign(request, now: now) }
            do {
                _ = try pki.authority.sign(request, now: now)
            } catch let error as IdentityError {
                #expect(error.message == message)
            }
        }
        let allowedOnly = try Self.request(uris: ["spiffe://cluster.local/ns/a/sa/b"])
        #expect(
            throws: IdentityError(
                .identityNotAllowed,
                "the requester may not obtain identity spiffe://cluster.local/ns/a/sa/b"
            )
        ) {
            try pki.authority.sign(allowedOnly, now: now) { $0.namespace == "other" }
        }
    }

    @Test func refusesATamperedRequest() throws {
        let pki = try TestPKI()
        let good = try Self.request(uris: ["spiffe://cluster.local/ns/a/sa/b"])
        let other = try Self.request(uris: ["spiffe://cluster.local/ns/a/sa/admin"])
        // The admin identity with the signature of the other request.
        let forged = try CertificateSigningRequest(
            version: .v1,
            subject: other.subject,
            publicKey: other.publicKey,
            attributes: other.attributes,
            signatureAlgorithm: good.signatureAlgorithm,
            signature: good.signature
        )
        #expect(throws: IdentityError(.invalidRequest, "the CSR signature does not verify")) {
            try pki.authority.sign(forged, now: now)
        }
    }

    @Test func savesAndLoadsWithSafePermissions() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let caDirectory = directory.path + "/ca"
        let authority = try CertificateAuthority.generate(trustDomain: "mesh.example", now: now)
        try authority.save(to: caDirectory)
        let keyMode =
            try FileManager.default.attributesOfItem(atPath: caDirectory + "/ca-key.pem")[.posixPermissions] as? Int
        let directoryMode = try FileManager.default.attributesOfItem(atPath: caDirectory)[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
        #expect(directoryMode == 0o700)

        let loaded = try CertificateAuthority.load(directory: caDirectory)
        #expect(loaded.certificate == authority.certificate)
        #expect(loaded.trustDomain == "mesh.example")
        #expect(loaded.chain == [authority.certificate])

        #expect(
            throws: IdentityError(.caExists, "\(caDirectory) already holds a CA (ca-key.pem); refusing to overwrite it")
        ) {
            try authority.save(to: caDirectory)
        }
        try CertificateAuthority.generate(now: now).save(to: caDirectory, overwrite: true)
        #expect(try CertificateAuthority.load(directory: caDirectory).trustDomain == "cluster.local")
    }

    @Test func explainsUnusableCADirectories() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        #expect(
            throws: IdentityError(
                .caMissing,
                "CA directory \(directory.path)/none does not exist (create one with `ambitctl ca init --dir \(directory.path)/none`)"
            )
        ) {
            try CertificateAuthority.load(directory: directory.path + "/none")
        }
        #expect(throws: IdentityError(.caMissing, "\(directory.path)/ca-cert.pem does not exist")) {
            try CertificateAuthority.load(directory: directory.path)
        }
        try directory.write("ca-cert.pem", "garbage")
        #expect(throws: IdentityError(.caInvalid, "\(directory.path)/ca-cert.pem holds no certificate")) {
            try CertificateAuthority.load(directory: directory.path)
        }
        let authority = try CertificateAuthority.generate(now: now)
        try directory.write("ca-cert.pem", try PEMFiles.pem([authority.certificate]))
        try directory.write(
            "ca-key.pem",
            try Certificate.PrivateKey(P256.Signing.PrivateKey()).serializeAsPEM().pemString
        )
        #expect(throws: IdentityError(.caInvalid, "the CA private key does not belong to the CA certificate")) {
            try CertificateAuthority.load(directory: directory.path)
        }
        // A key path that exists but cannot be read as a file (root can read any mode-0 file).
        try FileManager.default.removeItem(atPath: directory.path + "/ca-key.pem")
        try FileManager.default.createDirectory(
            atPath: directory.path + "/ca-key.pem",
            withIntermediateDirectories: false
        )
        #expect(
            throws: IdentityError(.caUnreadable, "\(directory.path)/ca-key.pem cannot be read (check its permissions)")
        ) {
            try CertificateAuthority.load(directory: directory.path)
        }
    }
}
