public import AmbitIdentity
public import NIOCore

/// Where a daemon gets its workload certificates: a CA held in this process (a CA directory; the lab's
/// simple mode and tests), or a CA service it sends CSRs to (`ambit-ca`, istiod), holding no CA key.
public enum CertificateSourceSelection: Sendable, CustomStringConvertible {
    case localCA(directory: String, trustDomain: String?)
    case remote(RemoteCAOptions, trustDomain: String)

    public var description: String {
        switch self {
        case .localCA(let directory, _): return "local CA in \(directory)"
        case .remote(let options, _): return "\(options) (roots \(options.rootsFile))"
        }
    }

    /// The signer and the trust domain. A local CA's trust domain is its root's O= unless one is given.
    public func makeSigner(group: any EventLoopGroup) throws -> (signer: any CertificateSigner, trustDomain: String) {
        switch self {
        case .localCA(let directory, let trustDomain):
            let authority = try CertificateAuthority.load(directory: directory, trustDomain: trustDomain)
            return (LocalCertificateSigner(authority: authority), authority.trustDomain)
        case .remote(let options, let trustDomain):
            return (try RemoteCertificateSigner(options: options, group: group), trustDomain)
        }
    }
}
