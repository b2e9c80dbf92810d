/// Why the CA service refuses a certificate request, with the gRPC status it answers (as istiod does).
public struct CARefusal: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// No token, a malformed, expired or unverifiable one.
        case unauthenticated
        /// An identity the caller may not obtain (another node's pod, another trust domain).
        case permissionDenied
        /// A request that is not a usable CSR (not PEM, two SANs, bad signature, a bad lifetime).
        case invalidArgument
        /// A request larger than the CA accepts.
        case resourceExhausted
        /// The CA cannot decide yet (configuration not loaded, the token reviewer unreachable).
        case unavailable
        /// Signing failed on the CA's side.
        case `internal`
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
