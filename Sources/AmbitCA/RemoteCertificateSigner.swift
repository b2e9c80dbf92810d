public import AmbitIdentity
import AmbitModel
import AmbitProto
import FoundationEssentials
import GRPCCore
import GRPCNIOTransportHTTP2Posix
public import NIOCore
import SwiftASN1
import SwiftProtobuf
public import X509

/// Where a node agent or waypoint gets its certificates when it holds no CA key: a CA service speaking
/// Istio's CA API (`ambit-ca`, or istiod on port 15012).
public struct RemoteCAOptions: Sendable, CustomStringConvertible {
    /// `host:port` of the CA service.
    public var address: String
    /// PEM file with the mesh's root certificate(s): they verify the CA's TLS certificate and are the trust
    /// anchors for peers. More than one root is how a root rotation is rolled out.
    public var rootsFile: String
    /// File holding the bearer token, read again for every request (Kubernetes rotates projected tokens).
    public var tokenFile: String?
    /// Name the CA's certificate must carry (default: the host of `address`).
    public var serverName: String?
    /// Sent as the `clusterid` header, as Istio's clients do.
    public var clusterID: String?
    /// Ask with `ImpersonatedIdentity` set to the identity requested (what a node agent does for its pods).
    public var impersonate: Bool
    public var timeout: Duration = .seconds(10)

    public init(address: String, rootsFile: String, tokenFile: String?, impersonate: Bool) {
        self.address = address
        self.rootsFile = rootsFile
        self.tokenFile = tokenFile
        self.impersonate = impersonate
    }

    public var description: String { "CA service \(address)" }

    /// Host and port of `address` (`host:port` or `[v6]:port`).
    func hostAndPort() throws -> (host: String, port: Int) {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
            (1...65535).contains(port)
        else {
            throw IdentityError(.caMissing, "the CA address \"\(address)\" is not host:port")
        }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw IdentityError(.caMissing, "the CA address \"\(address)\" has no host") }
        return (host, port)
    }
}

/// A ``CertificateSigner`` that sends the CSR to a CA service over gRPC and TLS. The private key stays in
/// this process; only the CSR and the bearer token leave it.
public final class RemoteCertificateSigner: CertificateSigner {
    public let options: RemoteCAOptions
    public let trustAnchors: [Certificate]
    private let client: GRPCClient<HTTP2ClientTransport.Posix>
    private let running: Task<Void, Never>

    /// `group` must be a NIO `MultiThreadedEventLoopGroup` (gRPC's transport runs on it).
    public init(options: RemoteCAOptions, group: any EventLoopGroup) throws {
        self.options = options
        let roots = try PEMFiles.certificates(in: options.rootsFile, code: .caUnreadable)
        trustAnchors = roots
        let (host, port) = try options.hostAndPort()
        let rootsPEM = try roots.map { Array(try $0.serializeAsPEM().pemString.utf8) }
        let target: any ResolvableTarget
        if let address = IPAddress(host) {
            target = address.isIPv4 ? .ipv4(address: host, port: port) : .ipv6(address: host, port: port)
        } else {
            target = .dns(host: host, port: port)
        }
        let serverName = options.serverName
        let transport = try HTTP2ClientTransport.Posix(
            target: target,
            transportSecurity: .tls(
                .defaults { tls in
                    tls.trustRoots = .certificates(rootsPEM.map { .bytes($0, format: .pem) })
                    tls.serverCertificateVerification = .fullVerification
                }
            ),
            config: .defaults { config in
                if let serverName { config.http2.authority = serverName }
            },
            eventLoopGroup: group
        )
        client = GRPCClient(transport: transport)
        running = Task { [client] in try? await client.runConnections() }
    }

    deinit {
        client.beginGracefulShutdown()
    }

    /// Ends the gRPC client and waits for its connections to close.
    public func close() async {
        client.beginGracefulShutdown()
        await running.value
    }

    public func sign(_ request: CertificateSigningRequest, lifetime: Duration) async throws -> [Certificate] {
        var message = Istio_V1_Auth_IstioCertificateRequest()
        message.csr = try request.serializeAsPEM().pemString
        message.validityDuration = lifetime.components.seconds
        if options.impersonate {
            let identity = try CertificateAuthority.validate(request)
            message.metadata = Google_Protobuf_Struct(fields: [
                CertificateService.impersonatedIdentityField: Google_Protobuf_Value(stringValue: identity.uri)
            ])
        }
        var metadata: Metadata = [:]
        if let tokenFile = options.tokenFile {
            let token = try PEMFiles.read(tokenFile, code: .caUnreadable).trimmingWhitespace()
            guard !token.isEmpty else { throw IdentityError(.caUnreadable, "the token file \(tokenFile) is empty") }
            metadata.addString("Bearer \(token)", forKey: "authorization")
        }
        if let clusterID = options.clusterID { metadata.addString(clusterID, forKey: "clusterid") }
        var callOptions = CallOptions.defaults
        callOptions.timeout = options.timeout
        let response: Istio_V1_Auth_IstioCertificateResponse
        do {
            response = try await Istio_V1_Auth_IstioCertificateService.Client(wrapping: client)
                .createCertificate(message, metadata: metadata, options: callOptions)
        } catch let error as RPCError {
            throw IdentityError(.signingFailed, "request to \(options) failed (\(error.code)): \(error.message)")
        }
        return try chain(of: response)
    }

    /// The answer's certificates (an element may hold several PEM blocks), leaf first; the last must be, or
    /// be issued by, one of the trust anchors.
    func chain(of response: Istio_V1_Auth_IstioCertificateResponse) throws -> [Certificate] {
        var chain: [Certificate] = []
        for element in response.certChain {
            do {
                chain += try PEMDocument.parseMultiple(pemString: element).map { try Certificate(pemDocument: $0) }
            } catch {
                throw IdentityError(
                    .invalidCertificate,
                    "\(options) answered a cert_chain element that is not PEM: \(error)"
                )
            }
        }
        guard let last = chain.last else {
            throw IdentityError(.invalidCertificate, "\(options) answered an empty cert_chain")
        }
        guard trustAnchors.contains(where: { $0 == last || $0.subject == last.issuer }) else {
            throw IdentityError(
                .invalidCertificate,
                "\(options) answered a chain that does not end at a root of \(options.rootsFile) (last issuer \(last.issuer))"
            )
        }
        return chain
    }
}
