public import AmbitIdentity
public import AmbitModel
public import AmbitProto
import FoundationEssentials
public import GRPCCore
public import Logging
public import Prometheus
import SwiftProtobuf
import X509

/// `istio.v1.auth.IstioCertificateService/CreateCertificate`, as istiod serves it on port 15012: the
/// caller's bearer token (`authorization: Bearer …`) says who it is, the CSR which identity it wants, and
/// `metadata.ImpersonatedIdentity` that a node agent asks on behalf of a pod. Every refusal has its gRPC
/// status and a log line naming the caller; nothing is signed for a refused request.
public struct CertificateService: Istio_V1_Auth_IstioCertificateService.ServiceProtocol {
    /// The metadata field a node agent sets to the pod identity it asks for (Istio's name).
    public static let impersonatedIdentityField = "ImpersonatedIdentity"
    /// Largest CSR accepted; a P-256 CSR with one SAN is about 500 bytes.
    public static let maximumCSRLength = 16 * 1024

    public struct Options: Sendable {
        /// Leaf lifetime when the request asks for none (0), and the most a request may ask for.
        public var defaultLifetime: Duration = CertificateProfiles.defaultLeafLifetime
        public var maximumLifetime: Duration = .seconds(90 * 24 * 3600)
        public init() {}
    }

    /// The CA in force (``CAMaterial`` reads its directory again when it changes).
    private let authority: @Sendable () -> CertificateAuthority
    private let authenticator: any CallerAuthenticator
    private let authorizer: CertificateRequestAuthorizer
    private let options: Options
    private let metrics: CAMetrics
    private let logger: Logger

    public init(
        authority: @escaping @Sendable () -> CertificateAuthority,
        authenticator: any CallerAuthenticator,
        authorizer: CertificateRequestAuthorizer,
        options: Options = Options(),
        registry: PrometheusCollectorRegistry,
        logger: Logger
    ) {
        self.authority = authority
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.options = options
        self.metrics = CAMetrics(registry: registry)
        self.logger = logger
    }

    public func createCertificate(
        request: ServerRequest<Istio_V1_Auth_IstioCertificateRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Istio_V1_Auth_IstioCertificateResponse> {
        metrics.received()
        var caller: CACaller?
        do {
            let token = try Self.bearerToken(in: request.metadata)
            caller = try await authenticator.authenticate(token: token)
            let chain = try await sign(request.message, for: caller!)
            var response = Istio_V1_Auth_IstioCertificateResponse()
            do {
                response.certChain = try chain.map { try $0.serializeAsPEM().pemString + "\n" }
            } catch {
                throw CARefusal(.internal, "encoding the chain failed: \(error)")
            }
            metrics.issued()
            logger.info(
                "certificate issued",
                metadata: [
                    "caller": "\(caller!)", "peer": "\(context.remotePeer)",
                    "identity": "\((try? CertificateProfiles.spiffeIdentity(of: chain[0]))?.uri ?? "?")",
                    "expiry": "\(chain[0].notValidAfter)",
                ]
            )
            return ServerResponse(message: response)
        } catch let refusal as CARefusal {
            metrics.refused(refusal.code)
            logger.warning(
                "certificate request refused",
                metadata: [
                    "caller": "\(caller.map { "\($0)" } ?? "unauthenticated")", "peer": "\(context.remotePeer)",
                    "code": "\(refusal.code.rawValue)", "reason": "\(refusal.message)",
                ]
            )
            throw RPCError(code: refusal.code.rpcCode, message: refusal.message)
        }
    }

    /// The CSR checked, the caller authorized, the chain signed.
    func sign(_ request: Istio_V1_Auth_IstioCertificateRequest, for caller: CACaller) async throws(CARefusal)
        -> [Certificate]
    {
        guard request.csr.utf8.count <= Self.maximumCSRLength else {
            throw CARefusal(
                .resourceExhausted,
                "the CSR is \(request.csr.utf8.count) bytes; the CA accepts at most \(Self.maximumCSRLength)"
            )
        }
        let csr: CertificateSigningRequest
        do {
            csr = try CertificateSigningRequest(pemEncoded: request.csr)
        } catch {
            throw CARefusal(.invalidArgument, "the csr field is not a PEM certificate signing request: \(error)")
        }
        let requested: SpiffeID
        do {
            requested = try CertificateAuthority.validate(csr)
        } catch {
            throw CARefusal(.invalidArgument, "the CSR is not acceptable: \(Self.message(of: error))")
        }
        let impersonated = try Self.impersonatedIdentity(in: request)
        try await authorizer.authorize(caller, requested: requested, impersonated: impersonated)
        guard request.validityDuration >= 0 else {
            throw CARefusal(.invalidArgument, "validity_duration \(request.validityDuration) is negative")
        }
        var lifetime = options.defaultLifetime
        if request.validityDuration > 0 {
            lifetime = min(.seconds(request.validityDuration), options.maximumLifetime)
        }
        do {
            return try authority().sign(csr, lifetime: lifetime, allowed: { $0 == requested })
        } catch {
            throw CARefusal(.internal, "signing failed: \(Self.message(of: error))")
        }
    }

    static func bearerToken(in metadata: Metadata) throws(CARefusal) -> String {
        guard let value = metadata[stringValues: "authorization"].first(where: { _ in true }) else {
            throw CARefusal(.unauthenticated, "the request carries no authorization header (Bearer token)")
        }
        let prefix = "Bearer "
        let token =
            value.hasPrefix(prefix) ? String(value.dropFirst(prefix.count)).trimmingWhitespace(newlines: false) : ""
        guard !token.isEmpty else {
            throw CARefusal(.unauthenticated, "the authorization header is not \"Bearer <token>\"")
        }
        guard token.utf8.count <= ServiceAccountToken.maximumLength else {
            throw CARefusal(.unauthenticated, "the token is longer than \(ServiceAccountToken.maximumLength) bytes")
        }
        return token
    }

    static func impersonatedIdentity(in request: Istio_V1_Auth_IstioCertificateRequest) throws(CARefusal) -> SpiffeID? {
        guard request.hasMetadata, let value = request.metadata.fields[impersonatedIdentityField] else { return nil }
        guard case .stringValue(let text) = value.kind else {
            throw CARefusal(.invalidArgument, "metadata.\(impersonatedIdentityField) is not a string")
        }
        do {
            return try SpiffeID(parsing: text)
        } catch {
            throw CARefusal(.invalidArgument, "metadata.\(impersonatedIdentityField) \"\(text)\": \(error)")
        }
    }

    private static func message(of error: any Error) -> String {
        (error as? IdentityError)?.message ?? "\(error)"
    }
}

extension CARefusal.Code {
    var rpcCode: RPCError.Code {
        switch self {
        case .unauthenticated: return .unauthenticated
        case .permissionDenied: return .permissionDenied
        case .invalidArgument: return .invalidArgument
        case .resourceExhausted: return .resourceExhausted
        case .unavailable: return .unavailable
        case .internal: return .internalError
        }
    }
}
