/// A problem with certificates, keys or the CA, with what to do about it in the message.
public struct IdentityError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Hashable, Sendable {
        case caMissing
        case caUnreadable
        case caInvalid
        case caExists
        case invalidRequest
        case identityNotAllowed
        case signingFailed
        case invalidCertificate
        case fileWriteFailed
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
