public import X509

/// Whatever turns a CSR into a certificate chain: the local CA now, Istio's CA service later.
public protocol CertificateSigner: Sendable {
    /// Signs `request`, returning the leaf followed by its chain.
    func sign(_ request: CertificateSigningRequest, lifetime: Duration) async throws -> [Certificate]
    /// The roots peers' certificates must chain to.
    var trustAnchors: [Certificate] { get }
    /// Ends what the signer holds open (a CA service's connection), before its event loops stop.
    func close() async
}

extension CertificateSigner {
    public func close() async {}
}

/// Signs with a ``CertificateAuthority`` held in this process (local mode, tests, the lab).
public struct LocalCertificateSigner: CertificateSigner {
    public let authority: CertificateAuthority

    public init(authority: CertificateAuthority) {
        self.authority = authority
    }

    public func sign(_ request: CertificateSigningRequest, lifetime: Duration) async throws -> [Certificate] {
        try authority.sign(request, lifetime: lifetime)
    }

    public var trustAnchors: [Certificate] { [authority.root] }
}
