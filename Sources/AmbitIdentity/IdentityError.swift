public import AmbitModel

/// A problem with certificates, keys or the CA, with what to do about it in the message.
public typealias IdentityError = CodedError<IdentityErrorCode>

public enum IdentityErrorCode: String, Hashable, Sendable {
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
