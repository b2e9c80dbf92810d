/// An error with a code to test against and a message that tells the operator what happened and,
/// where it can, what to do (in the style of swift-certificates' errors). Each module names its own:
/// `HBONEError` is `CodedError<HBONEErrorCode>`, `IdentityError` is `CodedError<IdentityErrorCode>`.
public struct CodedError<Code: Hashable & Sendable>: Error, Hashable, Sendable, CustomStringConvertible {
    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
