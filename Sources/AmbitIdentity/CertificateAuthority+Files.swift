import AmbitModel
import FoundationEssentials
import SwiftASN1
import X509

extension CertificateAuthority {
    /// Loads a CA from `directory`: Istio's plugged-in CA layout (`cacerts`: ca-cert.pem, ca-key.pem, and
    /// cert-chain.pem and root-cert.pem when the CA is an intermediate), or its self-signed `istio-ca-secret`
    /// (ca-cert.pem, ca-key.pem; its cert-chain.pem and root-cert.pem are empty). The trust domain is taken from
    /// `trustDomain` or, when `nil`, from the organisation (O) of the root's subject, where `ambitctl ca init` and
    /// Istio's self-signed CA both put it.
    public static func load(directory: String, trustDomain: String? = nil) throws -> CertificateAuthority {
        var isDirectory = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            throw IdentityError(
                .caMissing,
                "CA directory \(directory) does not exist (create one with `ambitctl ca init --dir \(directory)`)"
            )
        }
        guard isDirectory else {
            throw IdentityError(.caMissing, "\(directory) is not a directory")
        }
        let path = { (file: String) in FilePaths.join(directory, file) }
        let certificates = try PEMFiles.certificates(in: path(certificateFile))
        let keyText = try PEMFiles.read(path(keyFile))
        let key: Certificate.PrivateKey
        do {
            key = try Certificate.PrivateKey(pemEncoded: keyText)
        } catch {
            throw IdentityError(.caInvalid, "\(path(keyFile)) is not a valid private key: \(error)")
        }
        // Istio's self-signed istio-ca-secret has cert-chain.pem and root-cert.pem too, but empty: absent.
        func present(_ file: String) -> Bool {
            guard let data = FileManager.default.contents(atPath: path(file)) else { return false }
            return data.contains { !(Character(UnicodeScalar($0)).isWhitespace) }
        }
        var chain = certificates
        if present(chainFile) {
            chain = try PEMFiles.certificates(in: path(chainFile))
        }
        if present(rootFile) {
            let root = try PEMFiles.certificates(in: path(rootFile))[0]
            if chain.last != root { chain.append(root) }
        }
        if chain.first != certificates[0] { chain.insert(certificates[0], at: 0) }
        let domain: String
        if let trustDomain {
            domain = trustDomain
        } else if let organisation = chain.last!.subject.organisationName {
            domain = organisation
        } else {
            throw IdentityError(
                .caInvalid,
                "cannot tell the trust domain of the CA in \(directory): its root subject has no O= attribute; pass it explicitly"
            )
        }
        return try CertificateAuthority(
            certificate: certificates[0],
            privateKey: key,
            chain: chain,
            trustDomain: domain
        )
    }

    /// Writes the CA into `directory` (created with mode 0700 if needed). The key gets mode 0600.
    /// Refuses to overwrite an existing CA unless `overwrite`.
    public func save(to directory: String, overwrite: Bool = false) throws {
        do {
            try FileManager.default.createDirectory(
                atPath: directory,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700]
            )
        } catch {
            throw IdentityError(.fileWriteFailed, "cannot create \(directory): \(error.readableDescription)")
        }
        let path = { (file: String) in FilePaths.join(directory, file) }
        if !overwrite, FileManager.default.fileExists(atPath: path(Self.keyFile)) {
            throw IdentityError(
                .caExists,
                "\(directory) already holds a CA (\(Self.keyFile)); refusing to overwrite it"
            )
        }
        let keyPEM = try privateKey.serializeAsPEM().pemString
        try PEMFiles.write(keyPEM, to: path(Self.keyFile), mode: 0o600)
        try PEMFiles.write(PEMFiles.pem([certificate]), to: path(Self.certificateFile), mode: 0o644)
        try PEMFiles.write(PEMFiles.pem(chain), to: path(Self.chainFile), mode: 0o644)
        try PEMFiles.write(PEMFiles.pem([root]), to: path(Self.rootFile), mode: 0o644)
    }
}

extension DistinguishedName {
    /// The first O= attribute.
    var organisationName: String? {
        for rdn in self {
            for attribute in rdn where attribute.type == .RDNAttributeType.organizationName {
                return attribute.value.description
            }
        }
        return nil
    }
}
