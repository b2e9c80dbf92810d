/// Why an HBONE tunnel could not be opened or was torn down.
public struct HBONEError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: Hashable, Sendable {
        /// The server answered CONNECT with this status.
        case status(Int)
        case connectTimeout
        case responseTimeout
        case connectFailed
        case handshakeFailed
        /// The server did not negotiate ALPN `h2`.
        case protocolNotNegotiated
        case noCertificate
        case connectionClosed
        case streamReset
        case shuttingDown
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
